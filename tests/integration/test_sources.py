"""The engine, source by source: the exact events it publishes for the shared hand-made scenarios.

For every source of docs/sources.md the test inserts that source's scenario (sourcedata.py), runs the
engine restricted to the source (`RunConfig(sources=(name,))`, stage + publish into a fresh
`entityMetricEvents`), and asserts

1. the EXACT sorted list of target rows, all six columns (`EVENTS[name]`, written by hand from the
   fan-out tables of docs/sources.md: entityType spelling, entityId, userId attribution, metricType
   spelling, value, timestamp proxy);
2. the drop counters of `result.pairs` (`DROPS[name]`: pair -> {reason: lines}; exact, so a drop
   that is not listed fails too), and that the `events`/`value_sum` counters match the rows;
3. per (entityType, entityId, metricType), the sum and count of the rows equal what the
   independent expected-totals queries (metric_backfill._expected) return for the same rows.

Then: every scenario at once under the default selection (the union of the default sources'
events; the scenarios use disjoint keys), `--only` pair selection, generation_value = blobs,
per-source cutoffs, an earnings cutoff_date after the cutoff, one-row chunks, a missing
readChapters column, NULL createdAt stand-ins after the cutoff and verbatim BuzzTip entity types.

Timestamps: B = 2025-05-01 10:00, B2 = 2025-05-20 08:00, JUST = 2025-05-31 23:59:59.999 (kept),
AT = the cutoff 2025-06-01 (never written).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import psycopg
import pytest
from sourcedata import (
    CH_SCENARIOS,
    CUTOFF,
    PG_SOURCES,
    SCENARIOS,
    B,
    B2,
    JUST,
    Key,
    expected,
    insert_all_scenarios,
    insert_scenario,
    pg_exec,
    ts,
)

from metric_backfill import RunResult

Row = tuple[str, int, int, str, int, datetime]

D0501 = "2025-05-01 00:00:00"
D0502 = "2025-05-02 00:00:00"
D0503 = "2025-05-03 00:00:00"
D0531 = "2025-05-31 00:00:00"


def ev(entity_type: str, entity_id: int, user_id: int, metric_type: str, value: int, when: str) -> Row:
    return (entity_type, entity_id, user_id, metric_type, value, ts(when))


# -------------------------------------------------------------------------------------------------
# the expected events, per source (same order as docs/sources.md and sourcedata.py)
# -------------------------------------------------------------------------------------------------

EVENTS: dict[str, list[Row]] = {}
DROPS: dict[str, dict[str, dict[str, int]]] = {}

# §1 UserEngagement: Follow -> User <userId>.followingCount + User <targetUserId>.followerCount,
# Hide -> User <targetUserId>.hiddenCount; always attributed to the engaging user.
EVENTS["UserEngagement"] = [
    ev("User", 1, 1, "followingCount", 1, B),  # (1 -> 2 Follow)
    ev("User", 2, 1, "followerCount", 1, B),
    ev("User", 3, 3, "followingCount", 1, JUST),  # (3 -> 2 Follow) at the last millisecond
    ev("User", 2, 3, "followerCount", 1, JUST),
    ev("User", 2, 4, "hiddenCount", 1, B),  # (4 -> 2 Hide)
    ev("User", -1, -1, "followingCount", 1, B),  # (-1 -> 2 Follow): userId -1 is kept
    ev("User", 2, -1, "followerCount", 1, B),
    ev("User", 1, 1, "followingCount", 1, B),  # (1 -> 0 Follow): entityId 0 is kept
    ev("User", 0, 1, "followerCount", 1, B),
]
DROPS["UserEngagement"] = {  # (0 -> 3 Follow): both lines, userId 0
    "User.followingCount": {"user_null_or_0": 1},
    "User.followerCount": {"user_null_or_0": 1},
}

# §2 ImageReaction: Image <imageId>.<reaction> always; Post <postId>.<reaction> and
# Post.reactionCount when the image has a post; User <image owner>.reactionCount when the image
# exists; all by the reactor. Images 100 (owner 2) and 101 (owner 3) are in post 10, 102
# (owner 4) has no post, 999 is gone.
EVENTS["ImageReaction"] = [
    *[
        ev(e, i, u, m, 1, B)
        for u in (5, 6)  # reactions 1, 2: Like on image 100
        for e, i, m in (
            ("Image", 100, "Like"),
            ("Post", 10, "Like"),
            ("Post", 10, "reactionCount"),
            ("User", 2, "reactionCount"),
        )
    ],
    ev("Image", 100, 5, "Heart", 1, B),  # reaction 3
    ev("Post", 10, 5, "Heart", 1, B),
    ev("Post", 10, 5, "reactionCount", 1, B),
    ev("User", 2, 5, "reactionCount", 1, B),
    ev("Image", 101, 5, "Like", 1, JUST),  # reaction 4
    ev("Post", 10, 5, "Like", 1, JUST),
    ev("Post", 10, 5, "reactionCount", 1, JUST),
    ev("User", 3, 5, "reactionCount", 1, JUST),
    ev("Image", 101, 3, "Dislike", 1, B),  # reaction 5: self-reaction, Dislike counts
    ev("Post", 10, 3, "Dislike", 1, B),
    ev("Post", 10, 3, "reactionCount", 1, B),
    ev("User", 3, 3, "reactionCount", 1, B),
    ev("Image", 102, 5, "Cry", 1, B),  # reaction 6: image without a post
    ev("User", 4, 5, "reactionCount", 1, B),
    ev("Image", 999, 5, "Laugh", 1, B),  # reaction 7: orphan, Image line only
    ev("Image", 100, -1, "Cry", 1, B),  # reaction 10: userId -1 kept
    ev("Post", 10, -1, "Cry", 1, B),
    ev("Post", 10, -1, "reactionCount", 1, B),
    ev("User", 2, -1, "reactionCount", 1, B),
]
DROPS["ImageReaction"] = {
    "Image.Like": {"user_null_or_0": 1},  # 9
    "Post.Like": {"user_null_or_0": 1},  # 9
    "Post.Cry": {"entity_null": 1},  # 6 (no post)
    "Post.Laugh": {"parent_missing": 1},  # 7 (orphan)
    "Post.reactionCount": {"entity_null": 1, "parent_missing": 1, "user_null_or_0": 1},  # 6, 7, 9
    "User.reactionCount": {"parent_missing": 1, "user_null_or_0": 1},  # 7, 9
}

# §3 ArticleReaction: Article <articleId>.<reaction> + User <author>.reactionCount, by the reactor.
# Article 20 is by user 1, 21 by user 2.
EVENTS["ArticleReaction"] = [
    ev("Article", 20, 3, "Like", 1, B),
    ev("User", 1, 3, "reactionCount", 1, B),
    ev("Article", 20, 4, "Like", 1, JUST),
    ev("User", 1, 4, "reactionCount", 1, JUST),
    ev("Article", 21, 3, "Heart", 1, B),
    ev("User", 2, 3, "reactionCount", 1, B),
]
DROPS["ArticleReaction"] = {  # reaction 5: userId 0
    "Article.Cry": {"user_null_or_0": 1},
    "User.reactionCount": {"user_null_or_0": 1},
}

# §4 BountyEntryReaction: BountyEntry <id>.<reaction> + User <entry author>.reactionCount.
# Entry 40 is by user 2, entry 41 has no author (its User line is dropped).
EVENTS["BountyEntryReaction"] = [
    ev("BountyEntry", 40, 3, "Like", 1, B),
    ev("User", 2, 3, "reactionCount", 1, B),
    ev("BountyEntry", 40, 4, "Like", 1, JUST),
    ev("User", 2, 4, "reactionCount", 1, JUST),
    ev("BountyEntry", 41, 3, "Heart", 1, B),
]
DROPS["BountyEntryReaction"] = {
    "BountyEntry.Laugh": {"user_null_or_0": 1},  # (42, user 0)
    "User.reactionCount": {"entity_null": 1, "user_null_or_0": 1},  # (41: no author), (42, user 0)
}

# §5 Article status: one User <author>.articleCount per Published article, dated
# COALESCE(publishedAt, createdAt, null_ts = the table's minimum createdAt, 2025-01-01).
EVENTS["Article"] = [
    ev("User", 1, 1, "articleCount", 1, B),  # 50: publishedAt
    ev("User", 1, 1, "articleCount", 1, JUST),  # 51: createdAt
    ev("User", 2, 2, "articleCount", 1, "2025-01-01 00:00:00"),  # 52: null_ts
]
DROPS["Article"] = {}

# §6 ResourceReview: Model and ModelVersion, thumbsUp/DownCount by `recommended` + ratingCount.
EVENTS["ResourceReview"] = [
    *[
        ev(e, i, 2, m, 1, B)
        for e, i in (("Model", 60), ("ModelVersion", 600))
        for m in ("thumbsUpCount", "ratingCount")
    ],  # review 1 (up)
    *[
        ev(e, i, 3, m, 1, B)
        for e, i in (("Model", 60), ("ModelVersion", 600))
        for m in ("thumbsDownCount", "ratingCount")
    ],  # review 2 (down; exclude ignored)
    *[
        ev(e, i, 2, m, 1, JUST)
        for e, i in (("Model", 60), ("ModelVersion", 601))
        for m in ("thumbsUpCount", "ratingCount")
    ],  # review 3 (up)
]
DROPS["ResourceReview"] = {
    p: {"user_null_or_0": 1}
    for p in (  # review 5: userId 0, all four lines
        "Model.thumbsUpCount",
        "ModelVersion.thumbsUpCount",
        "Model.ratingCount",
        "ModelVersion.ratingCount",
    )
}

# §7 CollectionItem: Collection.itemCount + the item's Model/Post/Article.collectedCount or
# Image.Collection, by the adder; NULL createdAt -> null_ts = B.
EVENTS["CollectionItem"] = [
    ev("Collection", 70, 2, "itemCount", 1, B),  # 1
    ev("Model", 60, 2, "collectedCount", 1, B),
    ev("Collection", 70, 3, "itemCount", 1, B),  # 2
    ev("Post", 10, 3, "collectedCount", 1, B),
    ev("Collection", 71, 2, "itemCount", 1, B),  # 3 (REVIEW counts)
    ev("Image", 100, 2, "Collection", 1, B),
    ev("Collection", 71, 2, "itemCount", 1, B),  # 4 (createdAt NULL: null_ts)
    ev("Article", 20, 2, "collectedCount", 1, B),
    ev("Collection", 70, 4, "itemCount", 1, B),  # 6 (model3d: itemCount only)
    ev("Collection", 71, 3, "itemCount", 1, JUST),  # 8 (REJECTED counts)
    ev("Model", 60, 3, "collectedCount", 1, JUST),
]
DROPS["CollectionItem"] = {  # 5: adder NULL, every line
    "Collection.itemCount": {"user_null_or_0": 1},
    "Image.Collection": {"user_null_or_0": 1},
}

# §8 CollectionContributor: followerCount for every row, contributorCount for any non-VIEW
# permission; NULL createdAt -> null_ts = B.
EVENTS["CollectionContributor"] = [
    ev("Collection", 70, 1, "followerCount", 1, B),  # {VIEW,ADD,MANAGE}
    ev("Collection", 70, 1, "contributorCount", 1, B),
    ev("Collection", 70, 2, "followerCount", 1, B),  # {VIEW}
    ev("Collection", 70, 3, "followerCount", 1, B),  # NULL permissions
    ev("Collection", 70, 4, "followerCount", 1, JUST),  # {}
    ev("Collection", 70, 5, "followerCount", 1, B),  # {ADD_REVIEW}
    ev("Collection", 70, 5, "contributorCount", 1, B),
    ev("Collection", 71, 7, "followerCount", 1, B),  # {ADD}, createdAt NULL
    ev("Collection", 71, 7, "contributorCount", 1, B),
]
DROPS["CollectionContributor"] = {  # (0, 71): userId 0
    "Collection.followerCount": {"user_null_or_0": 1},
    "Collection.contributorCount": {"user_null_or_0": 1},
}

# §9 Comment: Model <modelId>.commentCount by the commenter (replies, hidden, TOS included).
EVENTS["Comment"] = [
    ev("Model", 60, 2, "commentCount", 1, B),  # 1
    ev("Model", 60, 3, "commentCount", 1, B),  # 2 (reply)
    ev("Model", 61, 2, "commentCount", 1, JUST),  # 3 (hidden)
    ev("Model", 61, 3, "commentCount", 1, B2),  # 6 (TOS violation)
]
DROPS["Comment"] = {"Model.commentCount": {"user_null_or_0": 1}}  # 5

# §10 CommentV2: <entity>.commentCount per non-null entity column of the root thread (else the
# thread itself), by the commenter.
EVENTS["CommentV2"] = [
    ev("Post", 10, 2, "commentCount", 1, B),  # 1
    ev("Post", 10, 3, "commentCount", 1, B),  # 2 (reply thread 6 -> root 1)
    ev("Image", 100, 2, "commentCount", 1, B),  # 3
    ev("Image", 100, 4, "commentCount", 1, JUST),  # 4 (reply thread 8 -> root 2)
    ev("Article", 20, 2, "commentCount", 1, B),  # 5
    ev("Bounty", 30, 2, "commentCount", 1, B),  # 6
    ev("Post", 10, 5, "commentCount", 1, B),  # 9 (postId from root 1, imageId 101 own)
    ev("Image", 101, 5, "commentCount", 1, B),
    ev("Image", 998, 3, "commentCount", 1, B),  # 12 (image row gone, thread keeps its id)
    ev("Article", 20, 4, "commentCount", 1, B2),  # 13 (hidden + TOS ignored)
]
DROPS["CommentV2"] = {"Post.commentCount": {"user_null_or_0": 1}}  # 11 (thread 1, userId 0)

# §11 ImageResourceNew: ModelVersion <v>.imageCount + Model <v's model>.imageCount, by the IMAGE
# owner, dated Image.createdAt.
EVENTS["ImageResourceNew"] = [
    ev("ModelVersion", 600, 2, "imageCount", 1, B),  # (200, 600)
    ev("Model", 60, 2, "imageCount", 1, B),
    ev("ModelVersion", 601, 2, "imageCount", 1, B),  # (200, 601): Model 60 again
    ev("Model", 60, 2, "imageCount", 1, B),
    ev("ModelVersion", 610, 3, "imageCount", 1, JUST),  # (201, 610)
    ev("Model", 61, 3, "imageCount", 1, JUST),
    ev("ModelVersion", 9999, 3, "imageCount", 1, JUST),  # (201, 9999): unknown version, no Model line
]
DROPS["ImageResourceNew"] = {
    "ModelVersion.imageCount": {"parent_missing": 1, "user_null_or_0": 1},  # orphan 999; owner 0 (203)
    "Model.imageCount": {"parent_missing": 2, "user_null_or_0": 1},  # orphan 999, version 9999; 203
}


def _tip(entity_type: str, entity_id: int, to_user: int, from_user: int, amount: int, when: str) -> list[Row]:
    return [
        ev(entity_type, entity_id, from_user, "tippedCount", 1, when),
        ev(entity_type, entity_id, from_user, "tippedAmount", amount, when),
        ev("User", to_user, from_user, "tippedCount", 1, when),
        ev("User", to_user, from_user, "tippedAmount", amount, when),
        ev("User", from_user, from_user, "tipsGivenCount", 1, when),
        ev("User", from_user, from_user, "tipsGivenAmount", amount, when),
    ]


# §12 BuzzTip: six lines per tip with amount > 0, entityType verbatim, by the tipper; the engine
# discovers every stored entityType (Model3D included).
EVENTS["BuzzTip"] = [
    *_tip("Image", 100, 2, 5, 50, B),
    *_tip("Image", 100, 2, 6, 20, JUST),  # current amount
    *_tip("bountyEntry", 40, 3, 5, 7, B),  # lower-case b, verbatim
    *_tip("ComicProject", 1, 0, 6, 30, B),  # toUserId 0: User 0 lines kept
    *_tip("Model3D", 5, 1, 7, 3, B),
]
DROPS["BuzzTip"] = {
    p: {"user_null_or_0": 1}
    for p in (  # Model 60 from user 0: all six lines
        "Model.tippedCount",
        "Model.tippedAmount",
        "User.tippedCount",
        "User.tippedAmount",
        "User.tipsGivenCount",
        "User.tipsGivenAmount",
    )
}
for _p in ("Post.tippedCount", "Post.tippedAmount"):  # Post 10: amounts 0 and -5
    DROPS["BuzzTip"][_p] = {"amount_not_positive": 2}
for _p in ("User.tippedCount", "User.tippedAmount", "User.tipsGivenCount", "User.tipsGivenAmount"):
    DROPS["BuzzTip"][_p]["amount_not_positive"] = 2

# §13 TagEngagement
EVENTS["TagEngagement"] = [
    ev("Tag", 1, 1, "followerCount", 1, B),
    ev("Tag", 1, 2, "followerCount", 1, JUST),
    ev("Tag", 1, 3, "hiddenCount", 1, B),
    ev("Tag", 2, 1, "hiddenCount", 1, B),
]
DROPS["TagEngagement"] = {"Tag.followerCount": {"user_null_or_0": 1}}  # (0, 2)

# §14 BountyEngagement
EVENTS["BountyEngagement"] = [
    ev("Bounty", 30, 1, "favoriteCount", 1, B),
    ev("Bounty", 30, 1, "trackCount", 1, B),  # the same user holds both
    ev("Bounty", 30, 2, "trackCount", 1, JUST),
    ev("Bounty", 31, 2, "favoriteCount", 1, B),
]
DROPS["BountyEngagement"] = {"Bounty.trackCount": {"user_null_or_0": 1}}  # (0, 31)

# §15 Bounty: User <owner>.bountyCount.
EVENTS["Bounty"] = [
    ev("User", 1, 1, "bountyCount", 1, B),  # 130
    ev("User", 1, 1, "bountyCount", 1, JUST),  # 131
    ev("User", -1, -1, "bountyCount", 1, B),  # 134: owner -1 kept
]
# 132: owner NULL ("rows with userId NULL", docs/sources.md §15). The line's entityId and userId are both
# the NULL owner; the engine tests the userId before the entityId, so it is counted as user_null_or_0.
DROPS["Bounty"] = {"User.bountyCount": {"user_null_or_0": 1}}

# §16 BountyEntry: Bounty <bountyId>.entryCount by the entrant.
EVENTS["BountyEntry"] = [
    ev("Bounty", 30, 2, "entryCount", 1, B),  # 140
    ev("Bounty", 30, 3, "entryCount", 1, JUST),  # 142
    ev("Bounty", 31, 4, "entryCount", 1, B),  # 144
]
DROPS["BountyEntry"] = {"Bounty.entryCount": {"user_null_or_0": 1}}  # 141: entrant NULL

# §17 BountyBenefactor: Bounty.benefactorCount + Bounty.unitAmount (dated createdAt) per row;
# BountyEntry <awardedToId>.unitAmount dated COALESCE(awardedAt, updatedAt) when that is before
# the cutoff; all by the benefactor.
EVENTS["BountyBenefactor"] = [
    *[
        r
        for u, amount in ((1, 100), (2, 0), (3, 50), (4, 25), (5, 10), (6, 15))
        for r in (ev("Bounty", 30, u, "benefactorCount", 1, B), ev("Bounty", 30, u, "unitAmount", amount, B))
    ],
    ev("BountyEntry", 40, 3, "unitAmount", 50, B2),  # awarded at B2
    ev("BountyEntry", 41, 5, "unitAmount", 10, JUST),  # award dated updatedAt
    *[
        r
        for u, amount in ((2, 60), (7, 5), (8, 3))
        for r in (ev("Bounty", 31, u, "benefactorCount", 1, B), ev("Bounty", 31, u, "unitAmount", amount, B))
    ],
    ev("BountyEntry", 42, 2, "unitAmount", 60, B),
    ev("BountyEntry", 42, 8, "unitAmount", 3, B),  # awardedAt wins over updatedAt
]
# awards at/after the cutoff: (30, 4) AFTER, (30, 6) updatedAt AFTER, (31, 7) AT
DROPS["BountyBenefactor"] = {"BountyEntry.unitAmount": {"ts_after_cutoff": 3}}

# §18 ComicProjectEngagement (optional): followerCount (Notify), hiddenCount (Hide), readerCount 1
# and chapterReadCount = cardinality(readChapters) when chapters were read.
EVENTS["ComicProjectEngagement"] = [
    ev("Comic", 1, 1, "followerCount", 1, B),
    ev("Comic", 1, 2, "hiddenCount", 1, B),
    ev("Comic", 1, 2, "readerCount", 1, B),
    ev("Comic", 1, 2, "chapterReadCount", 3, B),
    ev("Comic", 1, 3, "readerCount", 1, JUST),
    ev("Comic", 1, 3, "chapterReadCount", 1, JUST),
]
DROPS["ComicProjectEngagement"] = {
    p: {"user_null_or_0": 1}
    for p in (  # (0, Notify, {1,2})
        "Comic.followerCount",
        "Comic.readerCount",
        "Comic.chapterReadCount",
    )
}

# §19 Post: User <owner>.postCount dated publishedAt.
EVENTS["Post"] = [
    ev("User", 1, 1, "postCount", 1, B),
    ev("User", 1, 1, "postCount", 1, JUST),
    ev("User", 3, 3, "postCount", 1, B),
]
DROPS["Post"] = {}

# §20 ModelVersion: User <model owner>.uploadCount dated COALESCE(publishedAt, createdAt).
EVENTS["ModelVersion"] = [
    ev("User", 1, 1, "uploadCount", 1, B),  # 700 (model 60, user 1)
    ev("User", 1, 1, "uploadCount", 1, JUST),  # 701 (createdAt)
    ev("User", 2, 2, "uploadCount", 1, B),  # 712 (model 61, user 2)
]
DROPS["ModelVersion"] = {}

# §21 downloads: Model + ModelVersion downloadCount by the downloader, dated `time`.
EVENTS["modelVersionEvents"] = [
    *[ev(e, i, 5, "downloadCount", 1, B) for _ in range(2) for e, i in (("Model", 60), ("ModelVersion", 600))],
    ev("Model", 60, 6, "downloadCount", 1, "2025-05-31 23:59:59"),
    ev("ModelVersion", 601, 6, "downloadCount", 1, "2025-05-31 23:59:59"),
    ev("Model", 61, 7, "downloadCount", 1, B),
    ev("ModelVersion", 610, 7, "downloadCount", 1, B),
]
DROPS["modelVersionEvents"] = {  # the anonymous download (userId 0)
    "Model.downloadCount": {"user_null_or_0": 1},
    "ModelVersion.downloadCount": {"user_null_or_0": 1},
}

# §22 jobs: per resource element ModelVersion.generationCount (+ Model when the version is known);
# per job with a remixOfId Image.remixCount (+ User <image owner> when the image is known); g = 1.
EVENTS["jobs"] = [
    *[ev("ModelVersion", 600, 5, "generationCount", 1, B) for _ in range(2)],  # j1 (600 twice)
    ev("ModelVersion", 610, 5, "generationCount", 1, B),
    *[ev("Model", 60, 5, "generationCount", 1, B) for _ in range(2)],
    ev("Model", 61, 5, "generationCount", 1, B),
    ev("ModelVersion", 601, 6, "generationCount", 1, JUST),  # j2
    ev("ModelVersion", 9999, 6, "generationCount", 1, JUST),  # unknown version
    ev("Model", 60, 6, "generationCount", 1, JUST),
    ev("Image", 100, 6, "remixCount", 1, JUST),
    ev("User", 2, 6, "remixCount", 1, JUST),  # owner of image 100
    ev("Image", 777, 5, "remixCount", 1, B),  # j3: image unknown
    ev("ModelVersion", 610, 7, "generationCount", 1, B),  # j4 ("abc": no remix lines)
    ev("Model", 61, 7, "generationCount", 1, B),
    ev("ModelVersion", 610, -1, "generationCount", 1, B),  # j9: userId -1 kept
    ev("Model", 61, -1, "generationCount", 1, B),
    ev("Image", 101, -1, "remixCount", 1, B),
    ev("User", 3, -1, "remixCount", 1, B),
]
DROPS["jobs"] = {
    "Model.generationCount": {"parent_missing": 1, "user_null_or_0": 1},  # j2's 9999; j5
    "ModelVersion.generationCount": {"user_null_or_0": 1},  # j5
    "Image.remixCount": {"remix_id_not_numeric": 1, "user_null_or_0": 1},  # j4; j5
    # j3: image 777 unknown; j4: "abc" is not an image id at all — docs/sources.md: "A non-numeric
    # remixOfId makes the live insert fail: skip those Image/User lines and count them"; j5
    "User.remixCount": {"parent_missing": 1, "remix_id_not_numeric": 1, "user_null_or_0": 1},
}

# §23 buzz_resource_compensation (FINAL, final = 1): ModelVersion.earnedAmount per (day, version)
# and Model.earnedAmount per (day, model) = the day's sum; userId 0, dated the day, no drop rule.
EVENTS["buzz_resource_compensation"] = [
    ev("ModelVersion", 600, 0, "earnedAmount", 10, D0501),
    ev("ModelVersion", 601, 0, "earnedAmount", 5, D0501),
    ev("ModelVersion", 610, 0, "earnedAmount", 7, D0501),
    ev("Model", 60, 0, "earnedAmount", 15, D0501),
    ev("Model", 61, 0, "earnedAmount", 7, D0501),
    ev("ModelVersion", 600, 0, "earnedAmount", 3, D0502),  # 601's day 2 is not final
    ev("Model", 60, 0, "earnedAmount", 3, D0502),
    ev("ModelVersion", 9999, 0, "earnedAmount", 4, D0503),  # unknown version: no Model line
    ev("ModelVersion", 610, 0, "earnedAmount", 0, D0503),  # 0 is written
    ev("Model", 61, 0, "earnedAmount", 0, D0503),
]
DROPS["buzz_resource_compensation"] = {"Model.earnedAmount": {"parent_missing": 1}}  # 9999 on day 3

# §24 resourceCompensations: floor(sum(amount)) per (day, version); Model = sum of the floors.
EVENTS["resourceCompensations"] = [
    ev("ModelVersion", 600, 0, "earnedAmount", 4, D0501),  # floor(1.6 + 2.7 + 0.5)
    ev("ModelVersion", 601, 0, "earnedAmount", 0, D0501),  # floor(0.9)
    ev("ModelVersion", 610, 0, "earnedAmount", 3, D0501),
    ev("Model", 60, 0, "earnedAmount", 4, D0501),  # 4 + 0
    ev("Model", 61, 0, "earnedAmount", 3, D0501),
    ev("ModelVersion", 600, 0, "earnedAmount", 2, D0502),
    ev("ModelVersion", 601, 0, "earnedAmount", 2, D0502),
    ev("ModelVersion", 9999, 0, "earnedAmount", 5, D0502),  # unknown version: no Model line
    ev("Model", 60, 0, "earnedAmount", 4, D0502),
    ev("ModelVersion", 610, 0, "earnedAmount", 1, D0531),  # the last day before cutoff_date
    ev("Model", 61, 0, "earnedAmount", 1, D0531),
]
DROPS["resourceCompensations"] = {"Model.earnedAmount": {"parent_missing": 1}}  # 9999 on day 2

ALL_SOURCES = (*PG_SOURCES, *CH_SCENARIOS)
assert set(EVENTS) == set(DROPS) == set(ALL_SOURCES)

#: Sources the default selection leaves out (Comic.* is opt-in; one earnings path at a time).
NOT_DEFAULT = ("ComicProjectEngagement", "buzz_resource_compensation")

#: RunConfig options a source needs besides `sources=(name,)`.
RUN_OPTIONS: dict[str, dict[str, Any]] = {
    "buzz_resource_compensation": {"earnings_source": "buzz_resource_compensation"},
}


# -------------------------------------------------------------------------------------------------
# helpers and fixtures
# -------------------------------------------------------------------------------------------------


def target_rows(ch_client: Any, ch_db: str) -> list[Row]:
    rows = ch_client.query(
        f"SELECT entityType, entityId, userId, metricType, metricValue, createdAt "
        f"FROM {ch_db}.entityMetricEvents ORDER BY ALL"
    ).result_rows
    return [tuple(r) for r in rows]  # type: ignore[misc]


def totals(rows: list[Row]) -> dict[Key, tuple[int, int]]:
    out: dict[Key, tuple[int, int]] = {}
    for et, eid, _uid, mt, value, _ in rows:
        s, n = out.get((et, eid, mt), (0, 0))
        out[(et, eid, mt)] = (s + value, n + 1)
    return out


def drops_of(result: RunResult) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for pair, counters in result.pairs.items():
        d = {k.removeprefix("dropped_"): v for k, v in counters.items() if k.startswith("dropped_") and v}
        if d:
            out[pair] = d
    return out


def assert_counters_match_rows(result: RunResult, rows: list[Row]) -> None:
    """`events` and `value_sum` of result.pairs describe exactly the published rows."""
    by_pair: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for et, _eid, _uid, mt, value, _ in rows:
        by_pair[f"{et}.{mt}"][0] += 1
        by_pair[f"{et}.{mt}"][1] += value
    got = {
        p: [c.get("events", 0), c.get("value_sum", 0)]
        for p, c in result.pairs.items()
        if c.get("events", 0) or c.get("value_sum", 0)
    }
    assert got == dict(by_pair)


def expected_of(source: str, pg: str, ch_client: Any, ch: dict[str, str], ch_db: str) -> dict[Key, tuple[int, int]]:
    """The independent expected totals of one source on the same rows."""
    if source in SCENARIOS:
        return expected(pg, ch_client, source, include_comic=source == "ComicProjectEngagement")
    return expected(pg, ch_client, source, ch_tables=ch, lookup_db=ch_db, **RUN_OPTIONS.get(source, {}))


def drops_union(
    sources: list[str] | tuple[str, ...], pairs: tuple[str, ...] | None = None
) -> dict[str, dict[str, int]]:
    """DROPS of several sources added up (restricted to `pairs` if given)."""
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for s in sources:
        for pair, d in DROPS[s].items():
            if pairs is None or pair in pairs:
                out[pair].update(d)
    return {p: dict(c) for p, c in out.items()}


def add_totals(into: dict[Key, tuple[int, int]], more: dict[Key, tuple[int, int]]) -> None:
    for k, (s, n) in more.items():
        s0, n0 = into.get(k, (0, 0))
        into[k] = (s0 + s, n0 + n)


# -------------------------------------------------------------------------------------------------
# one source at a time
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ALL_SOURCES)
def test_source_events(
    source: str, engine: Callable[..., RunResult], pg: str, ch: dict[str, str], ch_client: Any, ch_db: str
) -> None:
    insert_scenario(source, pg, ch_client, ch)
    result = engine(sources=(source,), **RUN_OPTIONS.get(source, {}))
    assert result.status == "published"

    rows = target_rows(ch_client, ch_db)
    assert rows == sorted(EVENTS[source])
    assert_counters_match_rows(result, rows)
    assert result.published_rows == len(rows)
    assert totals(rows) == expected_of(source, pg, ch_client, ch, ch_db)
    assert drops_of(result) == DROPS[source]


def test_hand_written_events_are_plausible() -> None:
    """The lists above: every row before the cutoff, userId 0 only on earnings."""
    for source, rows in EVENTS.items():
        assert rows, source
        assert all(r[5] < CUTOFF for r in rows), source
        assert all(r[2] != 0 or r[3] == "earnedAmount" for r in rows), source


# -------------------------------------------------------------------------------------------------
# every scenario at once, and pair selection
# -------------------------------------------------------------------------------------------------


def test_default_selection_over_all_scenarios(
    engine: Callable[..., RunResult], pg: str, ch: dict[str, str], ch_client: Any, ch_db: str
) -> None:
    """Every scenario in one database: the default run writes the union of the default sources'
    events (no Comic.*, only today's earnings path), and its totals equal the union of the
    independent expected totals."""
    insert_all_scenarios(pg, ch_client, ch)
    result = engine()
    rows = target_rows(ch_client, ch_db)

    default_sources = [s for s in ALL_SOURCES if s not in NOT_DEFAULT]
    assert rows == sorted(r for s in default_sources for r in EVENTS[s])

    union: dict[Key, tuple[int, int]] = {}
    for s in default_sources:
        add_totals(union, expected_of(s, pg, ch_client, ch, ch_db))
    assert totals(rows) == union

    assert_counters_match_rows(result, rows)
    assert drops_of(result) == drops_union(default_sources)


def test_scenarios_do_not_collide(pg: str, ch: dict[str, str], ch_client: Any, ch_db: str) -> None:
    """Each source's expected totals are the same alone and with every other scenario present."""
    insert_all_scenarios(pg, ch_client, ch)
    for source in ALL_SOURCES:
        assert expected_of(source, pg, ch_client, ch, ch_db) == totals(EVENTS[source]), source


ONLY = ("Image.Like", "User.reactionCount")


@pytest.mark.parametrize("everything", [False, True], ids=["image-reactions", "all-scenarios"])
def test_only_selects_pairs(
    everything: bool, engine: Callable[..., RunResult], pg: str, ch: dict[str, str], ch_client: Any, ch_db: str
) -> None:
    """--only: exactly the ImageReaction events of the two pairs (with every scenario present, the
    User.reactionCount lines of ArticleReaction and BountyEntryReaction come along)."""
    if everything:
        insert_all_scenarios(pg, ch_client, ch)
    else:
        pg_exec(pg, SCENARIOS["ImageReaction"])
    result = engine(only=ONLY)
    rows = target_rows(ch_client, ch_db)

    sources = ("ImageReaction", "ArticleReaction", "BountyEntryReaction") if everything else ("ImageReaction",)
    assert rows == sorted(r for s in sources for r in EVENTS[s] if f"{r[0]}.{r[3]}" in ONLY)
    assert rows and {f"{r[0]}.{r[3]}" for r in rows} == set(ONLY)
    assert set(result.pairs) <= set(ONLY)
    assert_counters_match_rows(result, rows)
    want: dict[Key, tuple[int, int]] = {}
    for s in sources:
        got = expected_of(s, pg, ch_client, ch, ch_db)
        add_totals(want, {k: v for k, v in got.items() if f"{k[0]}.{k[2]}" in ONLY})
    assert totals(rows) == want
    assert drops_of(result) == drops_union(sources, ONLY)


def test_generation_value_blobs(
    engine: Callable[..., RunResult], pg: str, ch: dict[str, str], ch_client: Any, ch_db: str
) -> None:
    """generation_value = blobs: every jobs line is worth if(blobsCount > 0, blobsCount, 1)
    (j1 4, j2 1, j3 2, j4 3, j9 1); the lines themselves do not change."""
    insert_scenario("jobs", pg, ch_client, ch)
    engine(sources=("jobs",), generation_value="blobs")
    rows = target_rows(ch_client, ch_db)
    by_user = {6: 1, 7: 3, -1: 1}  # j2, j4, j9; user 5 ran j1 (4) and j3 (2: its only line is Image 777)

    def value(r: Row) -> int:
        return by_user.get(r[2], 2 if r[1] == 777 else 4)

    assert rows == sorted(r[:4] + (value(r), r[5]) for r in EVENTS["jobs"])
    assert totals(rows) == expected(pg, ch_client, "jobs", ch_tables=ch, lookup_db=ch_db, generation_value="blobs")


# -------------------------------------------------------------------------------------------------
# cutoffs, chunking and optional columns
# -------------------------------------------------------------------------------------------------

# Reaction 8 of the ImageReaction scenario is dated AT (the global cutoff) on image 100 by user 7.
REACTION_8 = [
    ev(e, i, 7, m, 1, "2025-06-01 00:00:00")
    for e, i, m in (
        ("Image", 100, "Laugh"),
        ("Post", 10, "Laugh"),
        ("Post", 10, "reactionCount"),
        ("User", 2, "reactionCount"),
    )
]


@pytest.mark.parametrize("override", [B2, "2025-07-01 00:00:00"], ids=["earlier", "later"])
def test_source_cutoff_override(
    override: str, engine: Callable[..., RunResult], pg: str, ch_client: Any, ch_db: str
) -> None:
    """docs/semantics.md §4: a per-source cutoff replaces the global one for that source, earlier or later."""
    pg_exec(pg, SCENARIOS["ImageReaction"])
    engine(sources=("ImageReaction",), source_cutoffs={"ImageReaction": ts(override)})
    rows = target_rows(ch_client, ch_db)
    want = [r for r in EVENTS["ImageReaction"] + REACTION_8 if r[5] < ts(override)]
    assert rows == sorted(want)
    assert totals(rows) == expected(pg, ch_client, "ImageReaction", source_cutoffs={"ImageReaction": ts(override)})


# The rows on 2025-06-01 of the two earnings scenarios (the day before a cutoff_date of 2025-06-02).
EARNINGS_0601 = {
    "resourceCompensations": [
        ev("ModelVersion", 600, 0, "earnedAmount", 100, "2025-06-01 00:00:00"),
        ev("Model", 60, 0, "earnedAmount", 100, "2025-06-01 00:00:00"),
    ],
    "buzz_resource_compensation": [
        ev("ModelVersion", 600, 0, "earnedAmount", 50, "2025-06-01 00:00:00"),
        ev("Model", 60, 0, "earnedAmount", 50, "2025-06-01 00:00:00"),
    ],
}


@pytest.mark.parametrize("source", list(EARNINGS_0601))
def test_earnings_cutoff_date_after_the_cutoff(
    source: str, engine: Callable[..., RunResult], pg: str, ch: dict[str, str], ch_client: Any, ch_db: str
) -> None:
    """docs/sources.md §23-§24, docs/semantics.md §4: earnings are cut by `cutoff_date` (the first payout day processed
    live), not by the global cutoff: with cutoff_date 2025-06-02, the payout day 2025-06-01 is
    written (dated 2025-06-01 00:00, which is not before the global cutoff 2025-06-01 00:00).
    RunConfig.earnings_cutoff_date: "earnings days before it are written"."""
    insert_scenario(source, pg, ch_client, ch)
    result = engine(sources=(source,), earnings_cutoff_date=date(2025, 6, 2), **RUN_OPTIONS.get(source, {}))
    rows = target_rows(ch_client, ch_db)
    assert rows == sorted(EVENTS[source] + EARNINGS_0601[source])
    assert drops_of(result) == DROPS[source]
    assert totals(rows) == expected(
        pg,
        ch_client,
        source,
        ch_tables=ch,
        lookup_db=ch_db,
        cutoff_date=date(2025, 6, 2),
        **RUN_OPTIONS.get(source, {}),
    )


def test_small_chunks_change_nothing(
    engine: Callable[..., RunResult], pg: str, ch: dict[str, str], ch_client: Any, ch_db: str
) -> None:
    """Chunks of one row (PostgreSQL) and one day (ClickHouse), run concurrently: the same events,
    the same drops, as the default run over all scenarios (half-open ranges, whole-day earnings)."""
    insert_all_scenarios(pg, ch_client, ch)
    result = engine(chunk_rows=1, ch_chunk_rows=1, concurrency=4)
    rows = target_rows(ch_client, ch_db)
    default_sources = [s for s in ALL_SOURCES if s not in NOT_DEFAULT]
    assert rows == sorted(r for s in default_sources for r in EVENTS[s])
    assert_counters_match_rows(result, rows)
    assert drops_of(result) == drops_union(default_sources)


def test_comic_without_read_chapters(engine: Callable[..., RunResult], pg: str, ch_client: Any, ch_db: str) -> None:
    """docs/sources.md §18: readChapters exists in production only; if the column is absent, read_len is 0
    (no readerCount/chapterReadCount lines), the type lines are unchanged."""
    pg_exec(pg, SCENARIOS["ComicProjectEngagement"])
    pg_exec(pg, 'ALTER TABLE "ComicProjectEngagement" DROP COLUMN "readChapters"')
    result = engine(sources=("ComicProjectEngagement",))
    rows = target_rows(ch_client, ch_db)
    assert rows == sorted(r for r in EVENTS["ComicProjectEngagement"] if r[3] in ("followerCount", "hiddenCount"))
    assert drops_of(result) == {"Comic.followerCount": {"user_null_or_0": 1}}


def test_null_created_at_uses_table_minimum_even_after_cutoff(
    engine: Callable[..., RunResult], pg: str, ch_client: Any, ch_db: str
) -> None:
    """docs/semantics.md §4: NULL createdAt is replayed at the table's minimum createdAt; when that is after the
    cutoff, the rows are not written (same rows as test_expected's test of that name)."""
    pg_exec(
        pg,
        """
    INSERT INTO "CollectionContributor" ("userId", "collectionId", "permissions", "createdAt") VALUES
        (1, 70, '{ADD}', '2025-07-01 00:00:00'), (2, 70, '{ADD}', NULL);
    INSERT INTO "CollectionItem" ("id", "collectionId", "addedById", "createdAt") VALUES
        (1, 70, 1, '2025-07-01 00:00:00'), (2, 70, 2, NULL);
    """,
    )
    result = engine(sources=("CollectionContributor", "CollectionItem"))
    assert target_rows(ch_client, ch_db) == []
    assert drops_of(result) == {}


@pytest.mark.parametrize(
    "etype",
    ["O'Brien 50%", "back\\slash", "tab\there", "new\nline", 'Ünï {a,b} "q"'],
    ids=["quote-percent", "backslash", "tab", "newline", "unicode-braces-dquote"],
)
def test_buzz_tip_entity_type_is_written_verbatim(
    etype: str, engine: Callable[..., RunResult], pg: str, ch_client: Any, ch_db: str
) -> None:
    """docs/sources.md §12: entityType is written as stored, whatever it holds (quotes, %, backslash, tab...)."""
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(
            'INSERT INTO "BuzzTip" ("entityType", "entityId", "toUserId", "fromUserId", "amount", '
            '"createdAt", "updatedAt") VALUES (%s, 1, 2, 3, 4, %s, %s)',
            (etype, ts(B), ts(B)),
        )
    engine(sources=("BuzzTip",))
    rows = target_rows(ch_client, ch_db)
    assert rows == sorted(_tip(etype, 1, 2, 3, 4, B))
