"""Expected per-entity totals, computed independently of the engine, straight from docs/sources.md.

The engine compiles the declarative catalog into SQL. This module is the cross-check: one
hand-written, set-based aggregate query per source that returns, for every
(entityType, entityId, metricType), the sum of `metricValue` (`total`) and the number of lines
(`events`) the live pipeline would have emitted for the rows before the cutoff. It shares no code
with the engine on purpose; every block below is transcribed from one fan-out table of docs/sources.md.

Shape of every query::

    WITH <source rows>,
         lines AS (one SELECT per fan-out line, UNION ALL)      -- entityType, entityId, userId,
                                                                 -- metricType, value
    SELECT entityType, entityId, metricType, sum(value) AS total, count(*) AS events
    FROM lines
    WHERE <README section 3 drop rule>                           -- not for earnedAmount
    GROUP BY entityType, entityId, metricType

Each line's own conditions (`cond` of docs/sources.md, parent-found lookups, the per-line cutoff test)
are written in its SELECT; the drop rule (no event when entityId IS NULL, or userId IS NULL or 0;
userId -1, entityId 0 and value 0 are kept) is applied once, on every line, by the outer query.

Parameters
----------
PostgreSQL queries (psycopg named placeholders; they always contain one, so run them *with*
parameters): ``%(cutoff)s`` — a naive UTC ``datetime``, compared as ``timestamp(3)``.

ClickHouse queries (clickhouse-connect server-side parameters): ``{cutoff:DateTime64(3)}``
(downloads, jobs) and ``{cutoff_date:Date}`` (both earnings paths: the first payout day NOT to
write). `ExpectedQuery.parameters()` builds the right dict for one query.

ClickHouse queries that need PostgreSQL lookups (jobs, earnings) read two plain tables filled by
`load_lookups` beforehand: ``<lookup_db>.pg_model_version (id, modelId)`` and
``<lookup_db>.pg_image (id, userId)``. Lookups are INNER JOINs, so a missing parent drops the line
(never a 0 from a LEFT JOIN default).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from string import Template
from types import MappingProxyType
from typing import Any, Final

from metric_backfill._errors import ConfigError
from metric_backfill.catalog import GENERATION_VALUE, REACTIONS

__all__ = [
    "BUZZTIP_USER_PAIRS",
    "DEFAULT_CH_TABLES",
    "ExpectedQuery",
    "LOOKUPS",
    "expected_queries",
]

#: Logical ClickHouse source table -> real qualified name (overridable with `ch_tables`).
DEFAULT_CH_TABLES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "modelVersionEvents": "default.modelVersionEvents",
        "jobs": "orchestration.jobs",
        "buzz_resource_compensation": "default.buzz_resource_compensation",
        "resourceCompensations": "orchestration.resourceCompensations",
    }
)

#: The BuzzTip pairs that do not depend on BuzzTip."entityType".
BUZZTIP_USER_PAIRS: Final[tuple[str, ...]] = (
    "User.tippedCount",
    "User.tippedAmount",
    "User.tipsGivenCount",
    "User.tipsGivenAmount",
)

_REACTIONS: Final[tuple[str, ...]] = REACTIONS  # the names the live pipeline writes (T8); data, not logic
_EARNINGS_SOURCES: Final[tuple[str, ...]] = ("resourceCompensations", "buzz_resource_compensation")


@dataclass(frozen=True)
class ExpectedQuery:
    """One source's expected aggregate.

    `sql` returns rows (entityType text, entityId int, metricType text, total bigint,
    events bigint); `pairs` lists every "Entity.metric" it can return.
    """

    source: str
    engine: str
    sql: str
    pairs: tuple[str, ...]
    values: tuple[tuple[str, Any], ...] = ()
    """More bound parameters of `sql` (e.g. the BuzzTip entity types)."""

    def parameters(self, *, cutoff: datetime, cutoff_date: date | None = None) -> dict[str, Any]:
        """The parameter dict for running `sql` (psycopg for "pg", clickhouse-connect for "ch")."""
        if self.engine == "pg":
            return {"cutoff": _naive_utc(cutoff), **dict(self.values)}
        params: dict[str, Any] = {}
        if "{cutoff:" in self.sql:
            params["cutoff"] = _naive_utc(cutoff)
        if "{cutoff_date:" in self.sql:
            if cutoff_date is None:
                raise ConfigError(f"expected query {self.source!r} needs cutoff_date (earnings are per payout day)")
            params["cutoff_date"] = _as_date(cutoff_date)
        return params


# =================================================================================================
# Query assembly
# =================================================================================================

_PG_CUTOFF: Final = "%(cutoff)s::timestamp(3)"

_PG_OUTER: Final = """
SELECT "entityType", "entityId", "metricType",
       sum(value)::bigint AS total,
       count(*)::bigint   AS events
FROM lines
-- drop rule (README section 3): no event without entityId, or with userId NULL or 0
WHERE "entityId" IS NOT NULL AND "userId" IS NOT NULL AND "userId" <> 0
GROUP BY "entityType", "entityId", "metricType"
"""

_CH_OUTER: Final = """
SELECT entityType, entityId, metricType,
       toInt64(sum(value)) AS total,
       toInt64(count())    AS events
FROM lines
-- drop rule (README section 3): no event without entityId, or with userId NULL or 0
WHERE entityId IS NOT NULL AND userId IS NOT NULL AND userId != 0
GROUP BY entityType, entityId, metricType
"""

# earnedAmount is written directly by the earnings writer with userId 0: exempt from the user rule.
_CH_OUTER_EARNINGS: Final = """
SELECT entityType, entityId, metricType,
       toInt64(sum(value)) AS total,
       toInt64(count())    AS events
FROM lines
-- earnings rows carry userId 0 and bypass the drop rule (README section 3 exception)
WHERE entityId IS NOT NULL
GROUP BY entityType, entityId, metricType
"""


def _assemble(ctes: Sequence[str], lines: Sequence[str], outer: str) -> str:
    """WITH <ctes>, lines AS (<lines joined by UNION ALL>) <outer>."""
    union = "\n    UNION ALL\n".join(block.strip("\n") for block in lines)
    parts = [c.strip("\n") for c in ctes] + ["lines AS (\n" + union + "\n)"]
    return "WITH " + ",\n".join(parts) + "\n" + outer.strip("\n") + "\n"


def _pg(source: str, pairs: Iterable[str], lines: Sequence[str], ctes: Sequence[str] = ()) -> ExpectedQuery:
    sql = _assemble(ctes, lines, _PG_OUTER).replace("$CUTOFF", _PG_CUTOFF)
    return ExpectedQuery(source=source, engine="pg", sql=sql, pairs=tuple(pairs))


def _ch(
    source: str,
    pairs: Iterable[str],
    lines: Sequence[str],
    ctes: Sequence[str],
    subst: Mapping[str, str],
    *,
    earnings: bool = False,
) -> ExpectedQuery:
    sql = _assemble(ctes, lines, _CH_OUTER_EARNINGS if earnings else _CH_OUTER)
    sql = Template(sql).substitute(subst)
    return ExpectedQuery(source=source, engine="ch", sql=sql, pairs=tuple(pairs))


def _ch_ident(name: str) -> str:
    """Back-quote a (possibly db-qualified) ClickHouse name: db.table -> `db`.`table` (names are
    letters, digits and _ only: anything else is refused, never passed through)."""
    import re

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", name):
        raise ConfigError(f"invalid ClickHouse name {name!r}: use letters, digits and _ (database.table)")
    return ".".join("`" + part + "`" for part in name.split("."))


# =================================================================================================
# PostgreSQL sources (docs/sources.md sections 1-20)
# =================================================================================================


def _user_engagement() -> ExpectedQuery:  # section 1
    ctes = [
        """
ue AS (
    SELECT ue."userId", ue."targetUserId", ue."type"::text AS type
    FROM "UserEngagement" ue
    WHERE ue."createdAt" < $CUTOFF          -- Block rows emit nothing (no line matches them)
)"""
    ]
    lines = [
        """
    -- User.followingCount: the actor follows someone
    SELECT 'User'::text AS "entityType", ue."userId" AS "entityId", ue."userId" AS "userId",
           'followingCount'::text AS "metricType", 1 AS value
    FROM ue WHERE ue.type = 'Follow'
""",
        """
    -- User.followerCount: credited to the target, attributed to the actor
    SELECT 'User', ue."targetUserId", ue."userId", 'followerCount', 1
    FROM ue WHERE ue.type = 'Follow'
""",
        """
    -- User.hiddenCount: credited to the target, attributed to the actor
    SELECT 'User', ue."targetUserId", ue."userId", 'hiddenCount', 1
    FROM ue WHERE ue.type = 'Hide'
""",
    ]
    return _pg("UserEngagement", ["User.followingCount", "User.followerCount", "User.hiddenCount"], lines, ctes)


def _image_reaction() -> ExpectedQuery:  # section 2
    ctes = [
        """
r AS (
    SELECT r."imageId", r."userId", r."reaction"::text AS reaction,
           (i."id" IS NOT NULL) AS image_found, i."postId", i."userId" AS "ownerId"
    FROM "ImageReaction" r
    LEFT JOIN "Image" i ON i."id" = r."imageId"   -- no FK in production: orphans exist
    WHERE r."createdAt" < $CUTOFF
)"""
    ]
    lines = [
        """
    -- Image.<reaction>: every reaction, also for orphans (the image row is gone)
    SELECT 'Image'::text AS "entityType", r."imageId" AS "entityId", r."userId" AS "userId",
           r.reaction AS "metricType", 1 AS value
    FROM r
""",
        """
    -- Post.<reaction>: only when the image exists and belongs to a post
    SELECT 'Post', r."postId", r."userId", r.reaction, 1
    FROM r WHERE r.image_found AND r."postId" IS NOT NULL
""",
        """
    -- Post.reactionCount: one per reaction (not per image)
    SELECT 'Post', r."postId", r."userId", 'reactionCount', 1
    FROM r WHERE r.image_found AND r."postId" IS NOT NULL
""",
        """
    -- User.reactionCount: reactions received by the image owner (self-reactions count)
    SELECT 'User', r."ownerId", r."userId", 'reactionCount', 1
    FROM r WHERE r.image_found
""",
    ]
    pairs = (
        [f"Image.{x}" for x in _REACTIONS]
        + [f"Post.{x}" for x in _REACTIONS]
        + ["Post.reactionCount", "User.reactionCount"]
    )
    return _pg("ImageReaction", pairs, lines, ctes)


def _article_reaction() -> ExpectedQuery:  # section 3
    ctes = [
        """
r AS (
    SELECT r."articleId", r."userId", r."reaction"::text AS reaction,
           (a."id" IS NOT NULL) AS article_found, a."userId" AS "ownerId"
    FROM "ArticleReaction" r
    LEFT JOIN "Article" a ON a."id" = r."articleId"
    WHERE r."createdAt" < $CUTOFF
)"""
    ]
    lines = [
        """
    -- Article.<reaction>
    SELECT 'Article'::text AS "entityType", r."articleId" AS "entityId", r."userId" AS "userId",
           r.reaction AS "metricType", 1 AS value
    FROM r
""",
        """
    -- User.reactionCount: the article author receives it
    SELECT 'User', r."ownerId", r."userId", 'reactionCount', 1
    FROM r WHERE r.article_found
""",
    ]
    pairs = [f"Article.{x}" for x in _REACTIONS] + ["User.reactionCount"]
    return _pg("ArticleReaction", pairs, lines, ctes)


def _bounty_entry_reaction() -> ExpectedQuery:  # section 4
    ctes = [
        """
r AS (
    SELECT r."bountyEntryId", r."userId", r."reaction"::text AS reaction, be."userId" AS "ownerId"
    FROM "BountyEntryReaction" r
    LEFT JOIN "BountyEntry" be ON be."id" = r."bountyEntryId"
    WHERE r."createdAt" < $CUTOFF
)"""
    ]
    lines = [
        """
    -- BountyEntry.<reaction>
    SELECT 'BountyEntry'::text AS "entityType", r."bountyEntryId" AS "entityId", r."userId" AS "userId",
           r.reaction AS "metricType", 1 AS value
    FROM r
""",
        """
    -- User.reactionCount: the entry author; a NULL author (deleted, SET NULL) is dropped
    SELECT 'User', r."ownerId", r."userId", 'reactionCount', 1
    FROM r WHERE r."ownerId" IS NOT NULL
""",
    ]
    pairs = [f"BountyEntry.{x}" for x in _REACTIONS] + ["User.reactionCount"]
    return _pg("BountyEntryReaction", pairs, lines, ctes)


def _article_status() -> ExpectedQuery:  # section 5
    lines = [
        """
    -- User.articleCount: transition into the current state Published, dated
    -- COALESCE(publishedAt, createdAt, null_ts); null_ts = the table's minimum non-NULL createdAt
    SELECT 'User'::text AS "entityType", a."userId" AS "entityId", a."userId" AS "userId",
           'articleCount'::text AS "metricType", 1 AS value
    FROM "Article" a
    WHERE a."status" = 'Published'
      AND COALESCE(a."publishedAt", a."createdAt",
                   (SELECT min(n."createdAt") FROM "Article" n)) < $CUTOFF
"""
    ]
    return _pg("Article", ["User.articleCount"], lines)


def _resource_review() -> ExpectedQuery:  # section 6
    ctes = [
        """
rr AS (
    SELECT rr."modelId", rr."modelVersionId", rr."userId",
           CASE WHEN rr."recommended" THEN 'thumbsUpCount' ELSE 'thumbsDownCount' END AS m
    FROM "ResourceReview" rr
    WHERE rr."createdAt" < $CUTOFF          -- exclude / tosViolation / nsfw / rating ignored
)"""
    ]
    lines = [
        """
    -- Model.<thumbsUpCount|thumbsDownCount> by current `recommended`
    SELECT 'Model'::text AS "entityType", rr."modelId" AS "entityId", rr."userId" AS "userId",
           rr.m::text AS "metricType", 1 AS value
    FROM rr
""",
        """
    -- ModelVersion.<thumbsUpCount|thumbsDownCount>
    SELECT 'ModelVersion', rr."modelVersionId", rr."userId", rr.m, 1 FROM rr
""",
        """
    -- Model.ratingCount: every review
    SELECT 'Model', rr."modelId", rr."userId", 'ratingCount', 1 FROM rr
""",
        """
    -- ModelVersion.ratingCount: every review
    SELECT 'ModelVersion', rr."modelVersionId", rr."userId", 'ratingCount', 1 FROM rr
""",
    ]
    pairs = [f"{e}.{m}" for e in ("Model", "ModelVersion") for m in ("thumbsUpCount", "thumbsDownCount", "ratingCount")]
    return _pg("ResourceReview", pairs, lines, ctes)


def _collection_item() -> ExpectedQuery:  # section 7
    ctes = [
        """
ci AS (
    SELECT ci."collectionId", ci."modelId", ci."postId", ci."imageId", ci."articleId",
           ci."addedById" AS u                -- NULL adder: the drop rule removes all five lines
    FROM "CollectionItem" ci
    WHERE COALESCE(ci."createdAt", (SELECT min(n."createdAt") FROM "CollectionItem" n)) < $CUTOFF
)"""
    ]  # status (ACCEPTED/REVIEW/REJECTED) is ignored
    lines = [
        """
    -- Collection.itemCount: every item (model3d items produce only this line)
    SELECT 'Collection'::text AS "entityType", ci."collectionId" AS "entityId", ci.u AS "userId",
           'itemCount'::text AS "metricType", 1 AS value
    FROM ci
""",
        """
    -- Model.collectedCount
    SELECT 'Model', ci."modelId", ci.u, 'collectedCount', 1 FROM ci WHERE ci."modelId" IS NOT NULL
""",
        """
    -- Post.collectedCount
    SELECT 'Post', ci."postId", ci.u, 'collectedCount', 1 FROM ci WHERE ci."postId" IS NOT NULL
""",
        """
    -- Image.Collection (not collectedCount)
    SELECT 'Image', ci."imageId", ci.u, 'Collection', 1 FROM ci WHERE ci."imageId" IS NOT NULL
""",
        """
    -- Article.collectedCount
    SELECT 'Article', ci."articleId", ci.u, 'collectedCount', 1 FROM ci WHERE ci."articleId" IS NOT NULL
""",
    ]
    pairs = [
        "Collection.itemCount",
        "Model.collectedCount",
        "Post.collectedCount",
        "Image.Collection",
        "Article.collectedCount",
    ]
    return _pg("CollectionItem", pairs, lines, ctes)


def _collection_contributor() -> ExpectedQuery:  # section 8
    ctes = [
        """
cc AS (
    SELECT cc."userId", cc."collectionId",
           -- any permission other than VIEW; NULL or empty permissions: not a contributor
           COALESCE(cc."permissions" && ARRAY['ADD', 'ADD_REVIEW', 'MANAGE']::"CollectionContributorPermission"[],
                    false) AS is_contributor
    FROM "CollectionContributor" cc
    WHERE COALESCE(cc."createdAt", (SELECT min(n."createdAt") FROM "CollectionContributor" n)) < $CUTOFF
)"""
    ]
    lines = [
        """
    -- Collection.followerCount: every row (VIEW-only rows and the owner's MANAGE row included)
    SELECT 'Collection'::text AS "entityType", cc."collectionId" AS "entityId", cc."userId" AS "userId",
           'followerCount'::text AS "metricType", 1 AS value
    FROM cc
""",
        """
    -- Collection.contributorCount
    SELECT 'Collection', cc."collectionId", cc."userId", 'contributorCount', 1 FROM cc WHERE cc.is_contributor
""",
    ]
    return _pg("CollectionContributor", ["Collection.followerCount", "Collection.contributorCount"], lines, ctes)


def _comment() -> ExpectedQuery:  # section 9
    lines = [
        """
    -- Model.commentCount: every old-style comment, replies / hidden / TOS included
    SELECT 'Model'::text AS "entityType", c."modelId" AS "entityId", c."userId" AS "userId",
           'commentCount'::text AS "metricType", 1 AS value
    FROM "Comment" c
    WHERE c."createdAt" < $CUTOFF
"""
    ]
    return _pg("Comment", ["Model.commentCount"], lines)


def _comment_v2() -> ExpectedQuery:  # section 10
    ctes = [
        """
c AS (
    -- entity columns come from the root thread when the thread has one, else from the thread;
    -- resolved per column, so a thread may yield more than one entity
    SELECT c."userId",
           COALESCE(r."postId",    t."postId")    AS "postId",
           COALESCE(r."imageId",   t."imageId")   AS "imageId",
           COALESCE(r."articleId", t."articleId") AS "articleId",
           COALESCE(r."bountyId",  t."bountyId")  AS "bountyId"
    FROM "CommentV2" c
    JOIN "Thread" t      ON t."id" = c."threadId"
    LEFT JOIN "Thread" r ON r."id" = t."rootThreadId"
    WHERE c."createdAt" < $CUTOFF
)"""
    ]
    lines = [
        """
    SELECT 'Post'::text AS "entityType", c."postId" AS "entityId", c."userId" AS "userId",
           'commentCount'::text AS "metricType", 1 AS value
    FROM c WHERE c."postId" IS NOT NULL
""",
        """
    SELECT 'Image', c."imageId", c."userId", 'commentCount', 1 FROM c WHERE c."imageId" IS NOT NULL
""",
        """
    SELECT 'Article', c."articleId", c."userId", 'commentCount', 1 FROM c WHERE c."articleId" IS NOT NULL
""",
        """
    SELECT 'Bounty', c."bountyId", c."userId", 'commentCount', 1 FROM c WHERE c."bountyId" IS NOT NULL
""",
    ]
    pairs = ["Post.commentCount", "Image.commentCount", "Article.commentCount", "Bounty.commentCount"]
    return _pg("CommentV2", pairs, lines, ctes)


def _image_resource_new() -> ExpectedQuery:  # section 11
    ctes = [
        """
ir AS (
    -- inner join: resources of missing images (orphans, no FK in production) emit nothing;
    -- the image's createdAt stands in for the insert time
    SELECT ir."modelVersionId", i."userId" AS "ownerId"
    FROM "ImageResourceNew" ir
    JOIN "Image" i ON i."id" = ir."imageId"
    WHERE i."createdAt" < $CUTOFF
)"""
    ]
    lines = [
        """
    -- ModelVersion.imageCount: attributed to the image owner; emitted even for unknown versions
    SELECT 'ModelVersion'::text AS "entityType", ir."modelVersionId" AS "entityId", ir."ownerId" AS "userId",
           'imageCount'::text AS "metricType", 1 AS value
    FROM ir
""",
        """
    -- Model.imageCount: needs the version row; two versions of one model on an image count 2
    SELECT 'Model', mv."modelId", ir."ownerId", 'imageCount', 1
    FROM ir JOIN "ModelVersion" mv ON mv."id" = ir."modelVersionId"
""",
    ]
    return _pg("ImageResourceNew", ["ModelVersion.imageCount", "Model.imageCount"], lines, ctes)


def _buzz_tip(entity_types: Sequence[str]) -> ExpectedQuery:  # section 12
    etypes = sorted(set(entity_types))
    # Bound by psycopg (never spelled into the SQL): a value read from the database is still data.
    etype_filter = 'bt."entityType" = ANY(%(etypes)s::text[])'
    ctes = [
        """
bt AS (
    -- amount is the accumulated total (current value replayed); amount <= 0 emits nothing;
    -- fromUserId 0 drops all six lines through the drop rule (userId = fromUserId everywhere)
    SELECT bt."entityType", bt."entityId", bt."toUserId", bt."fromUserId", bt."amount"
    FROM "BuzzTip" bt
    WHERE bt."createdAt" < $CUTOFF
      AND bt."amount" > 0
)"""
    ]
    lines = [
        f"""
    -- <entityType>.tippedCount, entityType verbatim (bountyEntry, ComicProject, ...), only for the
    -- entity types asked for; the User lines below do not depend on the entity type
    SELECT bt."entityType" AS "entityType", bt."entityId" AS "entityId", bt."fromUserId" AS "userId",
           'tippedCount'::text AS "metricType", 1 AS value
    FROM bt WHERE {etype_filter}
""",
        f"""
    -- <entityType>.tippedAmount
    SELECT bt."entityType", bt."entityId", bt."fromUserId", 'tippedAmount', bt."amount"
    FROM bt WHERE {etype_filter}
""",
        """
    -- User.tippedCount: the recipient (toUserId 0, the central account, is kept)
    SELECT 'User', bt."toUserId", bt."fromUserId", 'tippedCount', 1 FROM bt
""",
        """
    -- User.tippedAmount
    SELECT 'User', bt."toUserId", bt."fromUserId", 'tippedAmount', bt."amount" FROM bt
""",
        """
    -- User.tipsGivenCount: the tipper
    SELECT 'User', bt."fromUserId", bt."fromUserId", 'tipsGivenCount', 1 FROM bt
""",
        """
    -- User.tipsGivenAmount
    SELECT 'User', bt."fromUserId", bt."fromUserId", 'tipsGivenAmount', bt."amount" FROM bt
""",
    ]
    pairs = list(BUZZTIP_USER_PAIRS) + [f"{e}.{m}" for e in etypes for m in ("tippedCount", "tippedAmount")]
    q = _pg("BuzzTip", pairs, lines, ctes)
    return ExpectedQuery(q.source, q.engine, q.sql, q.pairs, (("etypes", list(etypes)),))


def _tag_engagement() -> ExpectedQuery:  # section 13
    ctes = [
        """
te AS (
    SELECT te."userId", te."tagId", te."type"::text AS type
    FROM "TagEngagement" te
    WHERE te."createdAt" < $CUTOFF          -- Allow (deprecated) emits nothing
)"""
    ]
    lines = [
        """
    SELECT 'Tag'::text AS "entityType", te."tagId" AS "entityId", te."userId" AS "userId",
           'followerCount'::text AS "metricType", 1 AS value
    FROM te WHERE te.type = 'Follow'
""",
        """
    SELECT 'Tag', te."tagId", te."userId", 'hiddenCount', 1 FROM te WHERE te.type = 'Hide'
""",
    ]
    return _pg("TagEngagement", ["Tag.followerCount", "Tag.hiddenCount"], lines, ctes)


def _bounty_engagement() -> ExpectedQuery:  # section 14
    ctes = [
        """
be AS (
    SELECT be."bountyId", be."userId", be."type"::text AS type
    FROM "BountyEngagement" be
    WHERE be."createdAt" < $CUTOFF
)"""
    ]
    lines = [
        """
    SELECT 'Bounty'::text AS "entityType", be."bountyId" AS "entityId", be."userId" AS "userId",
           'favoriteCount'::text AS "metricType", 1 AS value
    FROM be WHERE be.type = 'Favorite'
""",
        """
    SELECT 'Bounty', be."bountyId", be."userId", 'trackCount', 1 FROM be WHERE be.type = 'Track'
""",
    ]
    return _pg("BountyEngagement", ["Bounty.favoriteCount", "Bounty.trackCount"], lines, ctes)


def _bounty() -> ExpectedQuery:  # section 15
    lines = [
        """
    -- User.bountyCount: owner as entity and userId; owner NULL (deleted) is dropped
    SELECT 'User'::text AS "entityType", b."userId" AS "entityId", b."userId" AS "userId",
           'bountyCount'::text AS "metricType", 1 AS value
    FROM "Bounty" b
    WHERE b."createdAt" < $CUTOFF
"""
    ]
    return _pg("Bounty", ["User.bountyCount"], lines)


def _bounty_entry() -> ExpectedQuery:  # section 16
    lines = [
        """
    -- Bounty.entryCount: attributed to the entrant; entrant NULL (deleted) is dropped
    SELECT 'Bounty'::text AS "entityType", be."bountyId" AS "entityId", be."userId" AS "userId",
           'entryCount'::text AS "metricType", 1 AS value
    FROM "BountyEntry" be
    WHERE be."createdAt" < $CUTOFF
"""
    ]
    return _pg("BountyEntry", ["Bounty.entryCount"], lines)


def _bounty_benefactor() -> ExpectedQuery:  # section 17
    ctes = [
        """
bb AS (
    SELECT bb."bountyId", bb."userId", bb."unitAmount", bb."awardedToId",
           COALESCE(bb."awardedAt", bb."updatedAt") AS award_ts
    FROM "BountyBenefactor" bb
    WHERE bb."createdAt" < $CUTOFF          -- the row's INSERT must be before the cutoff
)"""
    ]
    lines = [
        """
    -- Bounty.benefactorCount
    SELECT 'Bounty'::text AS "entityType", bb."bountyId" AS "entityId", bb."userId" AS "userId",
           'benefactorCount'::text AS "metricType", 1 AS value
    FROM bb
""",
        """
    -- Bounty.unitAmount: current unitAmount, a 0 is written as a 0-valued event
    SELECT 'Bounty', bb."bountyId", bb."userId", 'unitAmount', bb."unitAmount" FROM bb
""",
        """
    -- BountyEntry.unitAmount: the award transition, on the awarded entry id, dated
    -- COALESCE(awardedAt, updatedAt) and tested against the cutoff on its own
    SELECT 'BountyEntry', bb."awardedToId", bb."userId", 'unitAmount', bb."unitAmount"
    FROM bb WHERE bb."awardedToId" IS NOT NULL AND bb.award_ts < $CUTOFF
""",
    ]
    return _pg(
        "BountyBenefactor", ["Bounty.benefactorCount", "Bounty.unitAmount", "BountyEntry.unitAmount"], lines, ctes
    )


def _comic_project_engagement() -> ExpectedQuery:  # section 18 (assumes readChapters exists)
    ctes = [
        """
e AS (
    SELECT e."userId", e."projectId", e."type"::text AS type,
           COALESCE(cardinality(e."readChapters"), 0) AS read_len
    FROM "ComicProjectEngagement" e
    WHERE e."createdAt" < $CUTOFF           -- type None emits no type line
)"""
    ]
    lines = [
        """
    SELECT 'Comic'::text AS "entityType", e."projectId" AS "entityId", e."userId" AS "userId",
           'followerCount'::text AS "metricType", 1 AS value
    FROM e WHERE e.type = 'Notify'
""",
        """
    SELECT 'Comic', e."projectId", e."userId", 'hiddenCount', 1 FROM e WHERE e.type = 'Hide'
""",
        """
    -- Comic.readerCount: +1 per engagement row with a non-empty readChapters
    SELECT 'Comic', e."projectId", e."userId", 'readerCount', 1 FROM e WHERE e.read_len > 0
""",
        """
    -- Comic.chapterReadCount: +number of chapters read
    SELECT 'Comic', e."projectId", e."userId", 'chapterReadCount', e.read_len FROM e WHERE e.read_len > 0
""",
    ]
    pairs = ["Comic.followerCount", "Comic.hiddenCount", "Comic.readerCount", "Comic.chapterReadCount"]
    return _pg("ComicProjectEngagement", pairs, lines, ctes)


def _post() -> ExpectedQuery:  # section 19
    lines = [
        """
    -- User.postCount: transition into published, dated publishedAt (NULL = unpublished,
    -- future/scheduled values fall after the cutoff)
    SELECT 'User'::text AS "entityType", p."userId" AS "entityId", p."userId" AS "userId",
           'postCount'::text AS "metricType", 1 AS value
    FROM "Post" p
    WHERE p."publishedAt" < $CUTOFF
"""
    ]
    return _pg("Post", ["User.postCount"], lines)


def _model_version() -> ExpectedQuery:  # section 20
    lines = [
        """
    -- User.uploadCount: status Published now (Scheduled not counted), credited to today's
    -- model owner, dated COALESCE(publishedAt, createdAt)
    SELECT 'User'::text AS "entityType", m."userId" AS "entityId", m."userId" AS "userId",
           'uploadCount'::text AS "metricType", 1 AS value
    FROM "ModelVersion" mv
    JOIN "Model" m ON m."id" = mv."modelId"
    WHERE mv."status" = 'Published'
      AND COALESCE(mv."publishedAt", mv."createdAt") < $CUTOFF
"""
    ]
    return _pg("ModelVersion", ["User.uploadCount"], lines)


# =================================================================================================
# ClickHouse sources (docs/sources.md sections 21-24)
# =================================================================================================


def _downloads(subst: Mapping[str, str]) -> ExpectedQuery:  # section 21
    ctes = [
        """
d AS (
    SELECT modelId, modelVersionId, userId
    FROM $modelVersionEvents
    WHERE type = 'Download'
      AND userId NOT IN (-1, 490053)        -- filtered before the pipeline; 0 (anonymous) by the drop rule
      AND time < {cutoff:DateTime64(3)}
)"""
    ]
    lines = [
        """
    SELECT 'Model' AS entityType, CAST(modelId AS Nullable(Int32)) AS entityId, userId,
           'downloadCount' AS metricType, toInt64(1) AS value
    FROM d
""",
        """
    SELECT 'ModelVersion', CAST(modelVersionId AS Nullable(Int32)), userId, 'downloadCount', toInt64(1) FROM d
""",
    ]
    return _ch("modelVersionEvents", ["Model.downloadCount", "ModelVersion.downloadCount"], lines, ctes, subst)


def _jobs(subst: Mapping[str, str], generation_value: str) -> ExpectedQuery:  # section 22
    g = GENERATION_VALUE[generation_value]
    ctes = [
        f"""
j AS (
    SELECT userId, toInt32OrNull(remixOfId) AS remixImageId, resourcesUsed, toInt64({g}) AS g
    FROM $jobs
    WHERE jobType IN ('TextToImageV2', 'TextToImage', 'Comfy')
      AND createdAt < {{cutoff:DateTime64(3)}}   -- userId 0 is removed by the drop rule
)""",
        """
jv AS (
    -- one row per element of resourcesUsed, duplicates kept
    SELECT userId, arrayJoin(resourcesUsed) AS v, g FROM j
)""",
    ]
    lines = [
        """
    -- Image.remixCount: remixOfId must parse as Int32 (empty / non-numeric: no line)
    SELECT 'Image' AS entityType, CAST(remixImageId AS Nullable(Int32)) AS entityId, userId,
           'remixCount' AS metricType, g AS value
    FROM j WHERE remixImageId IS NOT NULL
""",
        """
    -- User.remixCount: the remixed image's owner (PostgreSQL lookup; not found = no line)
    SELECT 'User', CAST(img.userId AS Nullable(Int32)), j.userId, 'remixCount', j.g
    FROM j INNER JOIN $lookup_db.pg_image AS img ON img.id = j.remixImageId
    WHERE j.remixImageId IS NOT NULL
""",
        """
    -- ModelVersion.generationCount: per element, also for versions unknown to PostgreSQL
    SELECT 'ModelVersion', CAST(v AS Nullable(Int32)), userId, 'generationCount', g FROM jv
""",
        """
    -- Model.generationCount: per element whose version is found
    SELECT 'Model', CAST(mv.modelId AS Nullable(Int32)), jv.userId, 'generationCount', jv.g
    FROM jv INNER JOIN $lookup_db.pg_model_version AS mv ON mv.id = jv.v
""",
    ]
    pairs = ["Image.remixCount", "User.remixCount", "ModelVersion.generationCount", "Model.generationCount"]
    return _ch("jobs", pairs, lines, ctes, subst)


_EARNINGS_LINES: Final[tuple[str, ...]] = (
    """
    -- ModelVersion.earnedAmount: one line per (day, version), userId 0, value may be 0
    SELECT 'ModelVersion' AS entityType, CAST(modelVersionId AS Nullable(Int32)) AS entityId,
           toInt32(0) AS userId, 'earnedAmount' AS metricType, toInt64(earned) AS value
    FROM dv
""",
    """
    -- Model.earnedAmount: one line per (day, model) = sum of that day's per-version values over
    -- the model's versions found in PostgreSQL (unknown versions: no Model contribution)
    SELECT 'Model', CAST(mv.modelId AS Nullable(Int32)), toInt32(0), 'earnedAmount', toInt64(sum(dv.earned))
    FROM dv INNER JOIN $lookup_db.pg_model_version AS mv ON mv.id = dv.modelVersionId
    GROUP BY dv.day, mv.modelId
""",
)


def _earnings_today(subst: Mapping[str, str], extra_filter: str = "") -> ExpectedQuery:  # section 24
    ctes = [
        f"""
dv AS (
    -- SummingMergeTree: parts may be unmerged, so sum() GROUP BY; all account types and sources;
    -- floored per (day, version)
    SELECT date AS day, modelVersionId, toInt64(floor(sum(amount))) AS earned
    FROM $resourceCompensations
    WHERE date < {{cutoff_date:Date}}{extra_filter}
    GROUP BY date, modelVersionId
)"""
    ]
    return _ch(
        "resourceCompensations",
        ["ModelVersion.earnedAmount", "Model.earnedAmount"],
        _EARNINGS_LINES,
        ctes,
        subst,
        earnings=True,
    )


def _earnings_sept_2025(subst: Mapping[str, str], extra_filter: str = "") -> ExpectedQuery:  # section 23
    ctes = [
        f"""
dv AS (
    -- ReplacingMergeTree(updated_at): FINAL picks the newest row per (date, version), then only
    -- closed days (final = 1) count; `total` is written as is
    SELECT date AS day, modelVersionId, toInt64(total) AS earned
    FROM $buzz_resource_compensation FINAL
    WHERE final = 1
      AND toDate(date) < {{cutoff_date:Date}}{extra_filter}
)"""
    ]
    return _ch(
        "buzz_resource_compensation",
        ["ModelVersion.earnedAmount", "Model.earnedAmount"],
        _EARNINGS_LINES,
        ctes,
        subst,
        earnings=True,
    )


# =================================================================================================
# Public API
# =================================================================================================


def expected_queries(
    *,
    buzztip_entity_types: Sequence[str],
    earnings_source: str = "resourceCompensations",
    generation_value: str = "one",
    include_comic: bool = False,
    ch_tables: Mapping[str, str] | None = None,
    lookup_db: str = "default",
) -> list[ExpectedQuery]:
    """One expected-aggregate query per source of docs/sources.md (see the module docstring).

    `buzztip_entity_types`: the BuzzTip."entityType" values whose `<etype>.tipped*` lines are
    expected (normally every distinct value in the table); the `User.*` tip lines are expected
    for every BuzzTip row regardless. `earnings_source`: "resourceCompensations" (section 24),
    "buzz_resource_compensation" (section 23) or "split:YYYY-MM-DD" (section 23 for payout days
    before that date, section 24 from that date on). `generation_value`: "one" or "blobs".
    `include_comic`: add ComicProjectEngagement (assumes the readChapters column exists).
    """
    if isinstance(buzztip_entity_types, str):
        raise ConfigError("buzztip_entity_types must be a sequence of entity types, not one string")
    if generation_value not in ("one", "blobs"):
        raise ConfigError(f"generation_value must be 'one' or 'blobs', not {generation_value!r}")
    tables = dict(DEFAULT_CH_TABLES)
    for key, value in (ch_tables or {}).items():
        if key not in DEFAULT_CH_TABLES:
            raise ConfigError(f"unknown ClickHouse source table {key!r}; expected one of {sorted(DEFAULT_CH_TABLES)}")
        tables[key] = value
    subst = {key: _ch_ident(value) for key, value in tables.items()}
    subst["lookup_db"] = _ch_ident(lookup_db)

    queries = [
        _user_engagement(),
        _image_reaction(),
        _article_reaction(),
        _bounty_entry_reaction(),
        _article_status(),
        _resource_review(),
        _collection_item(),
        _collection_contributor(),
        _comment(),
        _comment_v2(),
        _image_resource_new(),
        _buzz_tip(buzztip_entity_types),
        _tag_engagement(),
        _bounty_engagement(),
        _bounty(),
        _bounty_entry(),
        _bounty_benefactor(),
    ]
    if include_comic:
        queries.append(_comic_project_engagement())
    queries += [_post(), _model_version(), _downloads(subst), _jobs(subst, generation_value)]

    if earnings_source == "resourceCompensations":
        queries.append(_earnings_today(subst))
    elif earnings_source == "buzz_resource_compensation":
        queries.append(_earnings_sept_2025(subst))
    elif earnings_source.startswith("split:"):
        try:
            split = date.fromisoformat(earnings_source[len("split:") :])
        except ValueError:
            raise ConfigError(f"earnings source {earnings_source!r}: expected split:YYYY-MM-DD") from None
        day = f"toDate('{split.isoformat()}')"
        queries.append(_earnings_sept_2025(subst, f"\n      AND toDate(date) < {day}"))
        queries.append(_earnings_today(subst, f"\n      AND date >= {day}"))
    else:
        raise ConfigError(
            f"earnings source must be one of {list(_EARNINGS_SOURCES)} or split:<date>, not {earnings_source!r}"
        )
    return queries


LOOKUPS: Final[tuple[tuple[str, str, str], ...]] = (
    # (ClickHouse table, second column, PostgreSQL query)
    ("pg_model_version", "modelId", 'SELECT "id", "modelId" FROM "ModelVersion"'),
    ("pg_image", "userId", 'SELECT "id", "userId" FROM "Image"'),
)


def _naive_utc(value: datetime) -> datetime:
    """A naive UTC datetime (aware values are converted; naive ones are taken as UTC)."""
    if not isinstance(value, datetime):
        raise ConfigError(f"cutoff must be a datetime, not {type(value).__name__}")
    if value.utcoffset() is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _as_date(value: date) -> date:
    if isinstance(value, datetime):
        if value.time() != datetime.min.time():
            raise ConfigError(f"cutoff_date must be a whole day, not {value.isoformat()}")
        return value.date()
    return value
