"""Hand-made source rows shared by the integration tests: one scenario per source of docs/sources.md.

`test_expected.py` checks the independent expected-totals queries (metric_backfill._expected) on
these rows and `test_sources.py` checks the engine's exact events on the same rows, so every
scenario is written once. Each row carries a comment with the lines it emits.

Shared conventions:
- CUTOFF = 2025-06-01 00:00:00. `B` is well before it, `JUST` is its last millisecond (kept),
  `AT` is exactly the cutoff (excluded), `AFTER` is later (excluded).
- PARENTS (inserted in every PostgreSQL database by the `pg` fixture) are all created AFTER the
  cutoff (and otherwise sit in a non-counting state: Draft, unpublished), so they never emit
  anything themselves: users -1..9; posts 10, 11 (user 1); images 100 (owner 2, post 10),
  101 (owner 3, post 10), 102 (owner 4, no post); models 60 (user 1), 61 (user 2); versions 600,
  601 (model 60), 610 (model 61); articles 20 (user 1), 21 (user 2); bounties 30, 31 (user 1);
  bounty entries 40 (bounty 30, user 2), 41 (bounty 30, user NULL), 42 (bounty 31, user 4);
  collections 70, 71 (user 1); tags 1, 2; comic project 1.
- The scenarios use disjoint keys (row ids, parent ids), so all of them can be inserted into one
  database at once (`insert_all_scenarios`) and still emit exactly the union of their events.

Scenarios:
- `SCENARIOS[name]`: the PostgreSQL insert script of source `name` (docs/sources.md §1–§20).
- `CH_SCENARIOS[name]`: `fill(ch_client, ch_tables)` for the ClickHouse sources (§21–§24);
  `ch_tables` maps the logical table name to "db.table" (the `ch` fixture's mapping).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg

import metric_backfill.verify._expected as expected_module
from expected_helpers import run_expected

from metric_backfill.verify._expected import expected_queries

__all__ = [
    "AFTER",
    "AT",
    "B",
    "B2",
    "BOUNTY_COLS",
    "BRC_COLS",
    "CH_SCENARIOS",
    "CUTOFF",
    "CUTOFF_DATE",
    "ETYPES",
    "JOBS",
    "JOB_COLS",
    "JUST",
    "Key",
    "NO_FK_IN_PROD",
    "PARENTS",
    "PG_SOURCES",
    "RC_COLS",
    "SCENARIOS",
    "LISTS",
    "SQL_DIR",
    "ch_insert",
    "expected",
    "fill_buzz_resource_compensation",
    "fill_jobs",
    "fill_model_version_events",
    "fill_resource_compensations",
    "insert_all_scenarios",
    "insert_scenario",
    "pg_exec",
    "ts",
]

SQL_DIR = Path(expected_module.__file__).parents[1] / "demo" / "sql"
LISTS = Path(expected_module.__file__).parents[1] / "catalog" / "lists"

CUTOFF = datetime(2025, 6, 1)
CUTOFF_DATE = date(2025, 6, 1)
B = "2025-05-01 10:00:00"
B2 = "2025-05-20 08:00:00"
JUST = "2025-05-31 23:59:59.999"
AT = "2025-06-01 00:00:00"
AFTER = "2025-07-01 00:00:00"

ETYPES = ("Article", "Image", "Model", "Post", "ComicProject", "ComicChapter", "Model3D", "bountyEntry")

NO_FK_IN_PROD = (
    ('"ImageReaction"', '"ImageReaction_imageId_fkey"'),
    ('"Thread"', '"Thread_imageId_fkey"'),
    ('"ImageResourceNew"', '"ImageResourceNew_imageId_fkey"'),
    ('"ImageResourceNew"', '"ImageResourceNew_modelVersionId_fkey"'),
)

PARENTS = f"""
INSERT INTO "User" ("id", "username") SELECT g, 'u' || g FROM generate_series(-1, 9) AS g;
INSERT INTO "Post" ("id", "userId", "createdAt", "updatedAt") VALUES
    (10, 1, '{AFTER}', '{AFTER}'), (11, 1, '{AFTER}', '{AFTER}');
INSERT INTO "Image" ("id", "url", "userId", "postId", "createdAt", "updatedAt") VALUES
    (100, 'x', 2, 10, '{AFTER}', '{AFTER}'), (101, 'x', 3, 10, '{AFTER}', '{AFTER}'),
    (102, 'x', 4, NULL, '{AFTER}', '{AFTER}');
INSERT INTO "Model" ("id", "name", "type", "userId", "createdAt", "updatedAt") VALUES
    (60, 'm60', 'LORA', 1, '{AFTER}', '{AFTER}'), (61, 'm61', 'LORA', 2, '{AFTER}', '{AFTER}');
INSERT INTO "ModelVersion" ("id", "modelId", "name", "baseModel", "createdAt", "updatedAt") VALUES
    (600, 60, 'v', 'SD 1.5', '{AFTER}', '{AFTER}'), (601, 60, 'v', 'SD 1.5', '{AFTER}', '{AFTER}'),
    (610, 61, 'v', 'SD 1.5', '{AFTER}', '{AFTER}');
INSERT INTO "Article" ("id", "title", "content", "userId", "createdAt") VALUES
    (20, 'a', 'c', 1, '{AFTER}'), (21, 'a', 'c', 2, '{AFTER}');
INSERT INTO "Bounty" ("id", "userId", "name", "description", "startsAt", "expiresAt", "createdAt",
                      "updatedAt", "type", "minBenefactorUnitAmount") VALUES
    (30, 1, 'b', 'd', '2025-01-01', '2025-12-31', '{AFTER}', '{AFTER}', 'Other', 0),
    (31, 1, 'b', 'd', '2025-01-01', '2025-12-31', '{AFTER}', '{AFTER}', 'Other', 0);
INSERT INTO "BountyEntry" ("id", "userId", "bountyId", "createdAt", "updatedAt") VALUES
    (40, 2, 30, '{AFTER}', '{AFTER}'), (41, NULL, 30, '{AFTER}', '{AFTER}'), (42, 4, 31, '{AFTER}', '{AFTER}');
INSERT INTO "Collection" ("id", "name", "userId", "createdAt") VALUES (70, 'c', 1, '{AFTER}'), (71, 'c', 1, '{AFTER}');
INSERT INTO "Tag" ("id", "name", "updatedAt") VALUES (1, 't1', '{AFTER}'), (2, 't2', '{AFTER}');
INSERT INTO "ComicProject" ("id", "userId", "name", "createdAt", "updatedAt") VALUES (1, 1, 'p', '{AFTER}', '{AFTER}');
"""

Key = tuple[str, int, str]


# -------------------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------------------


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def pg_exec(pg_url: str, script: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(script)


def ch_insert(ch_client: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    ch_client.insert(table, [list(r) for r in rows], column_names=list(columns), settings={"async_insert": 0})


def expected(
    pg_url: str,
    ch_client: Any,
    source: str,
    *,
    ch_tables: Mapping[str, str] | None = None,
    lookup_db: str | None = None,
    cutoff: datetime = CUTOFF,
    cutoff_date: date | None = CUTOFF_DATE,
    etypes: Sequence[str] = ETYPES,
    source_cutoffs: Mapping[str, datetime] | None = None,
    **options: Any,
) -> dict[Key, tuple[int, int]]:
    """Run the expected query (or queries) of one source and check every key is a declared pair."""
    queries = [
        q
        for q in expected_queries(
            buzztip_entity_types=etypes, ch_tables=ch_tables, lookup_db=lookup_db or "default", **options
        )
        if q.source == source or (source == "earnings" and q.pairs[0].endswith("earnedAmount"))
    ]
    assert queries, source
    got = run_expected(
        pg_url,
        ch_client,
        queries,
        cutoff=cutoff,
        cutoff_date=cutoff_date,
        source_cutoffs=source_cutoffs,
        load_lookups_into=lookup_db,
    )
    declared = {p for q in queries for p in q.pairs}
    for entity_type, _, metric_type in got:
        assert f"{entity_type}.{metric_type}" in declared
    return got


# -------------------------------------------------------------------------------------------------
# PostgreSQL scenarios (docs/sources.md 1-20)
# -------------------------------------------------------------------------------------------------

BOUNTY_COLS = (
    '"id", "userId", "name", "description", "startsAt", "expiresAt", "createdAt", "updatedAt", '
    '"type", "minBenefactorUnitAmount"'
)

SCENARIOS: dict[str, str] = {}

# §1
SCENARIOS["UserEngagement"] = f"""
INSERT INTO "UserEngagement" ("userId", "targetUserId", "type", "createdAt") VALUES
    (1, 2, 'Follow', '{B}'),     -- User 1 following, User 2 follower
    (3, 2, 'Follow', '{JUST}'),  -- User 3 following, User 2 follower
    (4, 2, 'Hide',   '{B}'),     -- User 2 hidden
    (5, 2, 'Block',  '{B}'),     -- nothing
    (6, 2, 'Follow', '{AT}'),    -- at the cutoff: nothing
    (-1, 2, 'Follow', '{B}'),    -- userId -1 is kept: User -1 following, User 2 follower
    (0, 3, 'Follow', '{B}'),     -- userId 0: both lines dropped
    (1, 0, 'Follow', '{B}');     -- User 1 following, User 0 follower (entityId 0 kept)
"""

# §2
SCENARIOS["ImageReaction"] = f"""
INSERT INTO "ImageReaction" ("id", "imageId", "userId", "reaction", "createdAt", "updatedAt") VALUES
    (1, 100, 5, 'Like',    '{B}',    '{B}'),  -- Image 100 Like, Post 10 Like + reactionCount, User 2
    (2, 100, 6, 'Like',    '{B}',    '{B}'),  -- same again
    (3, 100, 5, 'Heart',   '{B}',    '{B}'),  -- Image 100 Heart, Post 10 Heart + reactionCount, User 2
    (4, 101, 5, 'Like',    '{JUST}', '{B}'),  -- Image 101 Like, Post 10 Like + reactionCount, User 3
    (5, 101, 3, 'Dislike', '{B}',    '{B}'),  -- self-reaction counts: Image 101, Post 10, User 3
    (6, 102, 5, 'Cry',     '{B}',    '{B}'),  -- image without post: Image 102 Cry, User 4 only
    (7, 999, 5, 'Laugh',   '{B}',    '{B}'),  -- orphan: Image 999 Laugh only
    (8, 100, 7, 'Laugh',   '{AT}',   '{B}'),  -- at the cutoff: nothing
    (9, 100, 0, 'Like',    '{B}',    '{B}'),  -- userId 0: nothing
    (10, 100, -1, 'Cry',   '{B}',    '{B}');  -- userId -1 kept: Image 100 Cry, Post 10 Cry + rc, User 2
"""

# §3
SCENARIOS["ArticleReaction"] = f"""
INSERT INTO "ArticleReaction" ("id", "articleId", "userId", "reaction", "createdAt", "updatedAt") VALUES
    (1, 20, 3, 'Like',  '{B}',    '{B}'),  -- Article 20 Like, User 1 (author)
    (2, 20, 4, 'Like',  '{JUST}', '{B}'),  -- Article 20 Like, User 1
    (3, 21, 3, 'Heart', '{B}',    '{B}'),  -- Article 21 Heart, User 2
    (4, 21, 5, 'Like',  '{AT}',   '{B}'),  -- at the cutoff: nothing
    (5, 21, 0, 'Cry',   '{B}',    '{B}');  -- userId 0: nothing
"""

# §4
SCENARIOS["BountyEntryReaction"] = f"""
INSERT INTO "BountyEntryReaction" ("bountyEntryId", "userId", "reaction", "createdAt") VALUES
    (40, 3, 'Like',  '{B}'),   -- BountyEntry 40 Like, User 2 (entry author)
    (40, 4, 'Like',  '{JUST}'),-- same
    (41, 3, 'Heart', '{B}'),   -- entry author NULL: BountyEntry 41 Heart only
    (40, 5, 'Cry',   '{AT}'),  -- at the cutoff: nothing
    (42, 0, 'Laugh', '{B}');   -- userId 0: nothing (BountyEntry 42 and User 4 lines dropped)
"""

# §5 — null_ts for Article = the table's minimum non-NULL createdAt = 2025-01-01 (article 53, a draft)
SCENARIOS["Article"] = f"""
INSERT INTO "Article" ("id", "title", "content", "userId", "status", "publishedAt", "createdAt") VALUES
    (50, 't', 'c', 1, 'Published',   '{B}',    '2025-04-01'),  -- User 1, dated publishedAt
    (51, 't', 'c', 1, 'Published',   NULL,     '{JUST}'),      -- User 1, dated createdAt
    (52, 't', 'c', 2, 'Published',   NULL,     NULL),          -- User 2, dated null_ts 2025-01-01
    (53, 't', 'c', 2, 'Draft',       '{B}',    '2025-01-01'),  -- not Published: nothing
    (54, 't', 'c', 3, 'Published',   '{AT}',   '{B}'),         -- published at the cutoff: nothing
    (55, 't', 'c', 3, 'Unpublished', '{B}',    '{B}'),         -- nothing
    (56, 't', 'c', 4, 'Published',   '{AFTER}', '{B}');        -- publishedAt wins over createdAt: nothing
"""

# §6
SCENARIOS["ResourceReview"] = f"""
INSERT INTO "ResourceReview" ("id", "modelId", "modelVersionId", "rating", "recommended", "userId",
                              "createdAt", "updatedAt", "exclude") VALUES
    (1, 60, 600, 5, true,  2, '{B}',    '{B}',     false),  -- up on Model 60 and version 600, rating x2
    (2, 60, 600, 1, false, 3, '{B}',    '{AFTER}', true),   -- down (exclude ignored; drifted)
    (3, 60, 601, 5, true,  2, '{JUST}', '{B}',     false),  -- up on Model 60 and version 601
    (4, 60, 601, 5, true,  3, '{AT}',   '{B}',     false),  -- at the cutoff: nothing
    (5, 60, 601, 5, true,  0, '{B}',    '{B}',     false);  -- userId 0: nothing
"""

# §7 — null_ts for CollectionItem = min non-NULL createdAt = B (item 1)
SCENARIOS["CollectionItem"] = f"""
INSERT INTO "CollectionItem" ("id", "collectionId", "modelId", "postId", "imageId", "articleId", "model3dId",
                              "addedById", "status", "createdAt") VALUES
    (1, 70, 60,   NULL, NULL, NULL, NULL, 2,    'ACCEPTED', '{B}'),    -- Collection 70 item, Model 60
    (2, 70, NULL, 10,   NULL, NULL, NULL, 3,    'ACCEPTED', '{B}'),    -- Collection 70 item, Post 10
    (3, 71, NULL, NULL, 100,  NULL, NULL, 2,    'REVIEW',   '{B}'),    -- Collection 71 item, Image 100 'Collection'
    (4, 71, NULL, NULL, NULL, 20,   NULL, 2,    'ACCEPTED', NULL),     -- dated null_ts: Coll 71 item, Article 20
    (5, 71, NULL, NULL, 101,  NULL, NULL, NULL, 'ACCEPTED', '{B}'),    -- adder NULL: all lines dropped
    (6, 70, NULL, NULL, NULL, NULL, 5,    4,    'ACCEPTED', '{B}'),    -- model3d: Collection 70 item only
    (7, 70, NULL, NULL, 102,  NULL, NULL, 3,    'ACCEPTED', '{AT}'),   -- at the cutoff: nothing
    (8, 71, 60,   NULL, NULL, NULL, NULL, 3,    'REJECTED', '{JUST}'); -- status ignored: Coll 71 item, Model 60
"""

# §8 — null_ts for CollectionContributor = min non-NULL createdAt = B
SCENARIOS["CollectionContributor"] = f"""
INSERT INTO "CollectionContributor" ("userId", "collectionId", "permissions", "createdAt") VALUES
    (1, 70, '{{VIEW,ADD,MANAGE}}', '{B}'),     -- follower + contributor
    (2, 70, '{{VIEW}}',            '{B}'),     -- follower only
    (3, 70, NULL,                  '{B}'),     -- follower only
    (4, 70, '{{}}',                '{JUST}'),  -- follower only
    (5, 70, '{{ADD_REVIEW}}',      '{B}'),     -- follower + contributor
    (6, 70, '{{ADD}}',             '{AT}'),    -- at the cutoff: nothing
    (7, 71, '{{ADD}}',             NULL),      -- dated null_ts: follower + contributor of 71
    (0, 71, '{{MANAGE}}',          '{B}');     -- userId 0: nothing
"""

# §9
SCENARIOS["Comment"] = f"""
INSERT INTO "Comment" ("id", "content", "modelId", "userId", "parentId", "hidden", "tosViolation",
                       "createdAt", "updatedAt") VALUES
    (1, 'x', 60, 2, NULL, false, false, '{B}',    '{B}'),  -- Model 60
    (2, 'x', 60, 3, 1,    false, false, '{B}',    '{B}'),  -- reply: Model 60
    (3, 'x', 61, 2, NULL, true,  false, '{JUST}', '{B}'),  -- hidden counts: Model 61
    (4, 'x', 60, 4, NULL, false, false, '{AT}',   '{B}'),  -- at the cutoff: nothing
    (5, 'x', 61, 0, NULL, false, false, '{B}',    '{B}'),  -- userId 0: nothing
    (6, 'x', 61, 3, NULL, false, true,  '{B2}',   '{B}');  -- TOS violation counts: Model 61
"""

# §10
SCENARIOS["CommentV2"] = f"""
INSERT INTO "Thread" ("id", "postId", "imageId", "articleId", "bountyId", "modelId", "rootThreadId") VALUES
    (1, 10,   NULL, NULL, NULL, NULL, NULL),  -- Post 10's thread
    (2, NULL, 100,  NULL, NULL, NULL, NULL),  -- Image 100's thread
    (3, NULL, NULL, 20,   NULL, NULL, NULL),  -- Article 20's thread
    (4, NULL, NULL, NULL, 30,   NULL, NULL),  -- Bounty 30's thread
    (5, NULL, NULL, NULL, NULL, 60,   NULL),  -- a model thread: other kind, nothing
    (6, NULL, NULL, NULL, NULL, NULL, 1),     -- reply thread under Post 10's thread
    (7, NULL, NULL, NULL, NULL, NULL, NULL),  -- entity deleted (SET NULL): nothing
    (8, NULL, NULL, NULL, NULL, NULL, 2),     -- reply thread under Image 100's thread
    (9, NULL, 101,  NULL, NULL, NULL, 1),     -- per column: postId 10 from the root, imageId 101 own
    (10, NULL, 998, NULL, NULL, NULL, NULL);  -- image row gone (no FK in prod): still Image 998
INSERT INTO "CommentV2" ("id", "content", "threadId", "userId", "hidden", "tosViolation", "createdAt", "updatedAt") VALUES
    (1,  'x', 1,  2, false, false, '{B}',    '{B}'),  -- Post 10
    (2,  'x', 6,  3, false, false, '{B}',    '{B}'),  -- Post 10 (reply)
    (3,  'x', 2,  2, false, false, '{B}',    '{B}'),  -- Image 100
    (4,  'x', 8,  4, false, false, '{JUST}', '{B}'),  -- Image 100 (reply)
    (5,  'x', 3,  2, false, false, '{B}',    '{B}'),  -- Article 20
    (6,  'x', 4,  2, false, false, '{B}',    '{B}'),  -- Bounty 30
    (7,  'x', 5,  2, false, false, '{B}',    '{B}'),  -- nothing
    (8,  'x', 7,  2, false, false, '{B}',    '{B}'),  -- nothing
    (9,  'x', 9,  5, false, false, '{B}',    '{B}'),  -- Post 10 and Image 101
    (10, 'x', 1,  6, false, false, '{AT}',   '{B}'),  -- at the cutoff: nothing
    (11, 'x', 1,  0, false, false, '{B}',    '{B}'),  -- userId 0: nothing
    (12, 'x', 10, 3, false, false, '{B}',    '{B}'),  -- Image 998
    (13, 'x', 3,  4, true,  true,  '{B2}',   '{B}');  -- hidden and TOS are ignored: Article 20
"""

# §11
SCENARIOS["ImageResourceNew"] = f"""
INSERT INTO "Image" ("id", "url", "userId", "createdAt", "updatedAt") VALUES
    (200, 'x', 2, '{B}',    '{B}'),   -- owner 2
    (201, 'x', 3, '{JUST}', '{B}'),   -- owner 3
    (202, 'x', 4, '{AT}',   '{B}'),   -- created at the cutoff
    (203, 'x', 0, '{B}',    '{B}');   -- owner 0
INSERT INTO "ImageResourceNew" ("imageId", "modelVersionId", "detected") VALUES
    (200, 600,  false),  -- ModelVersion 600, Model 60
    (200, 601,  true),   -- ModelVersion 601, Model 60 again (two versions of one model: 2)
    (201, 610,  false),  -- ModelVersion 610, Model 61
    (201, 9999, false),  -- unknown version: ModelVersion 9999 only
    (202, 600,  false),  -- image at the cutoff: nothing
    (999, 600,  false),  -- orphan (image row gone): nothing
    (203, 610,  false);  -- owner 0 is the userId: dropped
"""

# §12
SCENARIOS["BuzzTip"] = f"""
INSERT INTO "BuzzTip" ("entityType", "entityId", "toUserId", "fromUserId", "amount", "createdAt", "updatedAt") VALUES
    ('Image',        100, 2, 5, 50,  '{B}',    '{B}'),      -- Image 100, User 2 tipped, User 5 given
    ('Image',        100, 2, 6, 20,  '{JUST}', '{AFTER}'),  -- current amount 20 (topped up later)
    ('bountyEntry',  40,  3, 5, 7,   '{B}',    '{B}'),      -- entityType verbatim, lower-case b
    ('ComicProject', 1,   0, 6, 30,  '{B}',    '{B}'),      -- to the central account: User 0 lines kept
    ('Model',        60,  1, 0, 100, '{B}',    '{B}'),      -- fromUserId 0: all six lines dropped
    ('Post',         10,  1, 7, 0,   '{B}',    '{B}'),      -- amount 0: nothing
    ('Post',         10,  1, 8, -5,  '{B}',    '{B}'),      -- negative amount: nothing
    ('Article',      20,  1, 5, 10,  '{AT}',   '{AT}'),     -- at the cutoff: nothing
    ('Model3D',      5,   1, 7, 3,   '{B}',    '{B}');      -- Model3D 5 (only when that etype is asked for), User 1
"""

# §13
SCENARIOS["TagEngagement"] = f"""
INSERT INTO "TagEngagement" ("userId", "tagId", "type", "createdAt") VALUES
    (1, 1, 'Follow', '{B}'),     -- Tag 1 follower
    (2, 1, 'Follow', '{JUST}'),  -- Tag 1 follower
    (3, 1, 'Hide',   '{B}'),     -- Tag 1 hidden
    (4, 1, 'Allow',  '{B}'),     -- nothing
    (5, 1, 'Follow', '{AT}'),    -- at the cutoff: nothing
    (1, 2, 'Hide',   '{B}'),     -- Tag 2 hidden
    (0, 2, 'Follow', '{B}');     -- userId 0: nothing
"""

# §14
SCENARIOS["BountyEngagement"] = f"""
INSERT INTO "BountyEngagement" ("userId", "bountyId", "type", "createdAt") VALUES
    (1, 30, 'Favorite', '{B}'),     -- Bounty 30 favorite
    (1, 30, 'Track',    '{B}'),     -- one user may hold both: Bounty 30 track
    (2, 30, 'Track',    '{JUST}'),  -- Bounty 30 track
    (3, 30, 'Favorite', '{AT}'),    -- at the cutoff: nothing
    (2, 31, 'Favorite', '{B}'),     -- Bounty 31 favorite
    (0, 31, 'Track',    '{B}');     -- userId 0: nothing
"""

# §15
SCENARIOS["Bounty"] = f"""
INSERT INTO "Bounty" ({BOUNTY_COLS}) VALUES
    (130, 1,    'b', 'd', '2025-01-01', '2025-12-31', '{B}',    '{B}', 'Other', 0),  -- User 1
    (131, 1,    'b', 'd', '2025-01-01', '2025-12-31', '{JUST}', '{B}', 'Other', 0),  -- User 1
    (132, NULL, 'b', 'd', '2025-01-01', '2025-12-31', '{B}',    '{B}', 'Other', 0),  -- owner NULL: dropped
    (133, 2,    'b', 'd', '2025-01-01', '2025-12-31', '{AT}',   '{B}', 'Other', 0),  -- at the cutoff
    (134, -1,   'b', 'd', '2025-01-01', '2025-12-31', '{B}',    '{B}', 'Other', 0);  -- User -1 kept
"""

# §16
SCENARIOS["BountyEntry"] = f"""
INSERT INTO "BountyEntry" ("id", "bountyId", "userId", "createdAt", "updatedAt") VALUES
    (140, 30, 2,    '{B}',    '{B}'),  -- Bounty 30 entry
    (141, 30, NULL, '{B}',    '{B}'),  -- entrant NULL: dropped
    (142, 30, 3,    '{JUST}', '{B}'),  -- Bounty 30 entry
    (143, 31, 2,    '{AT}',   '{B}'),  -- at the cutoff: nothing
    (144, 31, 4,    '{B}',    '{B}');  -- Bounty 31 entry
"""

# §17
SCENARIOS["BountyBenefactor"] = f"""
INSERT INTO "BountyBenefactor" ("bountyId", "userId", "unitAmount", "createdAt", "updatedAt",
                                "awardedAt", "awardedToId", "currency") VALUES
    -- Bounty 30: every row below emits benefactorCount 1 and unitAmount = its unitAmount
    (30, 1, 100, '{B}', '{B}',     NULL,      NULL, 'BUZZ'),  -- not awarded
    (30, 2, 0,   '{B}', '{B}',     NULL,      NULL, 'USD'),   -- unitAmount 0 is written
    (30, 3, 50,  '{B}', '{B2}',    '{B2}',    40,   'BUZZ'),  -- awarded before: BountyEntry 40 +50
    (30, 4, 25,  '{B}', '{AFTER}', '{AFTER}', 41,   'BUZZ'),  -- awarded after the cutoff: no entry line
    (30, 5, 10,  '{B}', '{JUST}',  NULL,      41,   'BUZZ'),  -- award dated updatedAt JUST: BountyEntry 41 +10
    (30, 6, 15,  '{B}', '{AFTER}', NULL,      40,   'BUZZ'),  -- award dated updatedAt AFTER: no entry line
    -- Bounty 31
    (31, 1, 40,  '{AT}', '{AT}',   '{AT}',    42,   'BUZZ'),  -- created at the cutoff: nothing at all
    (31, 2, 60,  '{B}', '{B}',     '{B}',     42,   'BUZZ'),  -- BountyEntry 42 +60
    (31, 7, 5,   '{B}', '{AT}',    '{AT}',    42,   'BUZZ'),  -- award exactly at the cutoff: no entry line
    (31, 8, 3,   '{B}', '{AFTER}', '{B}',     42,   'BUZZ');  -- awardedAt wins over updatedAt: BountyEntry 42 +3
"""

# §18 (optional source: Comic.*)
SCENARIOS["ComicProjectEngagement"] = f"""
INSERT INTO "ComicProjectEngagement" ("userId", "projectId", "type", "readChapters", "createdAt", "updatedAt") VALUES
    (1, 1, 'Notify', '{{}}',      '{B}',    '{B}'),  -- follower
    (2, 1, 'Hide',   '{{1,2,3}}', '{B}',    '{B}'),  -- hidden; reader +1, chapters +3
    (3, 1, 'None',   '{{5}}',     '{JUST}', '{B}'),  -- no type line; reader +1, chapters +1
    (4, 1, 'Notify', '{{1}}',     '{AT}',   '{B}'),  -- at the cutoff: nothing
    (0, 1, 'Notify', '{{1,2}}',   '{B}',    '{B}'),  -- userId 0: nothing
    (5, 1, 'None',   '{{}}',      '{B}',    '{B}');  -- nothing
"""

# §19
SCENARIOS["Post"] = f"""
INSERT INTO "Post" ("id", "userId", "publishedAt", "createdAt", "updatedAt") VALUES
    (110, 1, '{B}',     '{B}', '{B}'),  -- User 1
    (111, 1, '{JUST}',  '{B}', '{B}'),  -- User 1
    (112, 2, NULL,      '{B}', '{B}'),  -- unpublished: nothing
    (113, 2, '{AT}',    '{B}', '{B}'),  -- published at the cutoff: nothing
    (114, 2, '{AFTER}', '{B}', '{B}'),  -- scheduled after the cutoff: nothing
    (115, 3, '{B}',     '{B}', '{B}');  -- User 3
"""

# §20
SCENARIOS["ModelVersion"] = f"""
INSERT INTO "ModelVersion" ("id", "modelId", "name", "baseModel", "status", "publishedAt", "createdAt", "updatedAt") VALUES
    (700, 60, 'v', 'b', 'Published', '{B}',     '{B}',    '{B}'),  -- User 1 (owner of model 60)
    (701, 60, 'v', 'b', 'Published', NULL,      '{JUST}', '{B}'),  -- dated createdAt: User 1
    (702, 60, 'v', 'b', 'Scheduled', '{B}',     '{B}',    '{B}'),  -- Scheduled: nothing
    (703, 60, 'v', 'b', 'Draft',     NULL,      '{B}',    '{B}'),  -- nothing
    (710, 61, 'v', 'b', 'Published', '{AT}',    '{B}',    '{B}'),  -- published at the cutoff: nothing
    (711, 61, 'v', 'b', 'Published', '{AFTER}', '{B}',    '{B}'),  -- publishedAt wins: nothing
    (712, 61, 'v', 'b', 'Published', '{B}',     '{B}',    '{B}');  -- User 2 (owner of model 61)
"""

#: The PostgreSQL sources, in docs/sources.md order.
PG_SOURCES: tuple[str, ...] = tuple(SCENARIOS)


# -------------------------------------------------------------------------------------------------
# ClickHouse scenarios (docs/sources.md 21-24): fill(ch_client, ch_tables)
# -------------------------------------------------------------------------------------------------

MVE_COLS = ["type", "time", "userId", "modelId", "modelVersionId", "nsfw"]


def fill_model_version_events(ch_client: Any, ch_tables: Mapping[str, str]) -> None:  # §21
    ch_insert(
        ch_client,
        ch_tables["modelVersionEvents"],
        MVE_COLS,
        [
            ("Download", ts(B), 5, 60, 600, False),  # Model 60, ModelVersion 600
            ("Download", ts(B), 5, 60, 600, False),  # repeated download counts again
            ("Download", ts("2025-05-31 23:59:59"), 6, 60, 601, False),  # Model 60, ModelVersion 601
            ("Download", ts(AT), 5, 60, 600, False),  # at the cutoff: nothing
            ("Download", ts(B), 0, 60, 600, False),  # anonymous: dropped
            ("Download", ts(B), -1, 60, 600, False),  # filtered before the pipeline
            ("Download", ts(B), 490053, 60, 600, False),  # filtered before the pipeline
            ("Create", ts(B), 5, 61, 610, False),  # other type: nothing
            ("Download", ts(B), 7, 61, 610, True),  # Model 61, ModelVersion 610
        ],
    )


JOB_COLS = ["jobId", "userId", "jobType", "createdAt", "resourcesUsed", "remixOfId", "blobsCount"]
JOBS = [
    ("j1", 5, "TextToImageV2", ts(B), [600, 600, 610], None, 4),  # MV 600 x2, MV 610; Model 60 x2, Model 61
    ("j2", 6, "Comfy", ts(JUST), [601, 9999], "100", 0),  # MV 601, MV 9999 (unknown), Model 60;
    #                                                                Image 100 remix, User 2 (owner)
    ("j3", 5, "TextToImage", ts(B), [], "777", 2),  # Image 777 remix; owner not found: no User
    ("j4", 7, "TextToImageV2", ts(B), [610], "abc", 3),  # MV 610, Model 61; non-numeric remix: none
    ("j5", 0, "TextToImageV2", ts(B), [600], "100", 1),  # userId 0: nothing
    ("j6", 5, "TextToImageV2", ts(AT), [600], "101", 1),  # at the cutoff: nothing
    ("j7", 5, "Training", ts(B), [600], "101", 1),  # other job type: nothing
    ("j8", 8, "Comfy", ts(B), [], "", 1),  # empty remixOfId, no resources: nothing
    ("j9", -1, "TextToImage", ts(B), [610], "101", 0),  # userId -1 kept: MV 610, Model 61,
    #                                                                Image 101 remix, User 3 (owner)
]


def fill_jobs(ch_client: Any, ch_tables: Mapping[str, str]) -> None:  # §22
    ch_insert(ch_client, ch_tables["jobs"], JOB_COLS, JOBS)


BRC_COLS = ["date", "modelVersionId", "total", "updated_at", "final"]


def fill_buzz_resource_compensation(ch_client: Any, ch_tables: Mapping[str, str]) -> None:  # §23
    table = ch_tables["buzz_resource_compensation"]
    d1, d2, d3 = ts("2025-05-01"), ts("2025-05-02"), ts("2025-05-03")
    old, new = ts("2025-05-05 01:00:00"), ts("2025-05-05 02:00:00")
    # first insert: rows that a later insert replaces
    ch_insert(
        ch_client,
        table,
        BRC_COLS,
        [
            (d1, 600, 99, old, 1),  # replaced by the newer row (10) below
            (d2, 601, 8, old, 1),  # replaced by a newer row that is not final: day 2 of 601 is gone
        ],
    )
    ch_insert(
        ch_client,
        table,
        BRC_COLS,
        [
            (d1, 600, 10, new, 1),  # MV 600 +10; Model 60 day 1
            (d1, 601, 5, new, 1),  # MV 601 +5;  Model 60 day 1 (15 in all)
            (d1, 610, 7, new, 1),  # MV 610 +7;  Model 61 day 1
            (d2, 600, 3, new, 1),  # MV 600 +3;  Model 60 day 2
            (d2, 601, 9, new, 0),  # newest row not final: nothing
            (d3, 9999, 4, new, 1),  # unknown version: MV 9999 only
            (d3, 610, 0, new, 1),  # 0 is written: MV 610 +0, Model 61 day 3 +0
            (ts("2025-05-04"), 600, 6, new, 0),  # never final: nothing
            (ts("2025-06-01"), 600, 50, new, 1),  # the cutoff day: nothing
        ],
    )


RC_COLS = ["date", "modelVersionId", "accountType", "source", "amount"]


def fill_resource_compensations(ch_client: Any, ch_tables: Mapping[str, str]) -> None:  # §24
    table = ch_tables["resourceCompensations"]
    d1, d2 = date(2025, 5, 1), date(2025, 5, 2)
    # three inserts = three parts with the same key: sum() before floor()
    ch_insert(
        ch_client,
        table,
        RC_COLS,
        [
            (d1, 600, "user", "compensation", 1.6),
            (d1, 601, "creator", "compensation", 0.9),  # day 1 of 601: floor(0.9) = 0, still a line
            (d1, 610, "user", "licenseFee", 3.2),  # day 1 of 610: 3
        ],
    )
    ch_insert(
        ch_client,
        table,
        RC_COLS,
        [
            (d1, 600, "user", "tip", 2.7),
            (d2, 600, "user", "compensation", 2.5),  # day 2 of 600: 2
            (d2, 601, "user", "compensation", 2.5),  # day 2 of 601: 2
            (d2, 9999, "user", "compensation", 5.0),  # unknown version: MV 9999 only
        ],
    )
    ch_insert(
        ch_client,
        table,
        RC_COLS,
        [
            (d1, 600, "user", "compensation", 0.5),  # day 1 of 600: floor(1.6 + 2.7 + 0.5) = 4
            (date(2025, 5, 31), 610, "user", "compensation", 1.0),  # last day before cutoff_date: 1
            (date(2025, 6, 1), 600, "user", "compensation", 100.0),  # cutoff_date itself: nothing
        ],
    )


CH_SCENARIOS: dict[str, Callable[[Any, Mapping[str, str]], None]] = {
    "modelVersionEvents": fill_model_version_events,
    "jobs": fill_jobs,
    "buzz_resource_compensation": fill_buzz_resource_compensation,
    "resourceCompensations": fill_resource_compensations,
}


def insert_scenario(
    source: str, pg_url: str, ch_client: Any = None, ch_tables: Mapping[str, str] | None = None
) -> None:
    """Insert the shared scenario of one source (PostgreSQL script or ClickHouse fill)."""
    if source in SCENARIOS:
        pg_exec(pg_url, SCENARIOS[source])
    else:
        assert ch_client is not None and ch_tables is not None, f"{source} needs the ClickHouse tables"
        CH_SCENARIOS[source](ch_client, ch_tables)


def insert_all_scenarios(pg_url: str, ch_client: Any, ch_tables: Mapping[str, str]) -> None:
    """Every scenario in one database pair (their keys are disjoint)."""
    for source in (*SCENARIOS, *CH_SCENARIOS):
        insert_scenario(source, pg_url, ch_client, ch_tables)
