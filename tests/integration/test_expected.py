"""The independent expected-totals queries (metric_backfill._expected), checked on hand-made rows.

Every test inserts a handful of rows for one source of events.md, including that section's edge
cases, and asserts the exact {(entityType, entityId, metricType): (total, events)} dict. The
numbers are meant to be checked by hand: each row carries a comment with the lines it emits.

Shared conventions:
- CUTOFF = 2025-06-01 00:00:00. `B` is well before it, `JUST` is its last millisecond (kept),
  `AT` is exactly the cutoff (excluded), `AFTER` is later (excluded).
- PARENTS (inserted in every PostgreSQL database) are all created AFTER the cutoff (and otherwise
  sit in a non-counting state: Draft, unpublished), so they never emit anything themselves:
  users -1..9; posts 10, 11 (user 1); images 100 (owner 2, post 10), 101 (owner 3, post 10),
  102 (owner 4, no post); models 60 (user 1), 61 (user 2); versions 600, 601 (model 60),
  610 (model 61); articles 20 (user 1), 21 (user 2); bounties 30, 31 (user 1); bounty entries
  40 (bounty 30, user 2), 41 (bounty 30, user NULL), 42 (bounty 31, user 4); collections 70, 71
  (user 1); tags 1, 2; comic project 1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

import metric_backfill._expected as expected_module
from metric_backfill._expected import (
    BUZZTIP_USER_PAIRS,
    DEFAULT_CH_TABLES,
    ExpectedQuery,
    expected_queries,
    load_lookups,
    run_expected,
)

SQL_DIR = Path(expected_module.__file__).parent / "sql"

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
# helpers and fixtures
# -------------------------------------------------------------------------------------------------

def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def pg_exec(pg_url: str, script: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(script)


@pytest.fixture()
def pg(pg_url: str) -> str:
    """A PostgreSQL database with the schema (minus the FKs production lacks) and PARENTS."""
    ddl = (SQL_DIR / "postgres.sql").read_text()
    drops = "\n".join(f"ALTER TABLE {t} DROP CONSTRAINT {c};" for t, c in NO_FK_IN_PROD)
    pg_exec(pg_url, ddl + "\n" + drops + "\n" + PARENTS)
    return pg_url


@pytest.fixture()
def ch(ch_client: Any, ch_db: str) -> dict[str, str]:
    """The four ClickHouse source tables of clickhouse.sql created in `ch_db`: logical -> qualified name."""
    text = (SQL_DIR / "clickhouse.sql").read_text()
    text = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    tables: dict[str, str] = {}
    for stmt in text.split(";"):
        m = re.search(r"CREATE TABLE IF NOT EXISTS (default|orchestration)\.(\w+)\s*\(", stmt)
        if m and m.group(2) in DEFAULT_CH_TABLES:
            ch_client.command(re.sub(r"\b(default|orchestration)\.", f"{ch_db}.", stmt))
            tables[m.group(2)] = f"{ch_db}.{m.group(2)}"
    assert set(tables) == set(DEFAULT_CH_TABLES)
    return tables


def ch_insert(ch_client: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    ch_client.insert(table, [list(r) for r in rows], column_names=list(columns), settings={"async_insert": 0})


def expected(pg_url: str, ch_client: Any, source: str, *, ch_tables: Mapping[str, str] | None = None,
             lookup_db: str | None = None, cutoff: datetime = CUTOFF, cutoff_date: date | None = CUTOFF_DATE,
             etypes: Sequence[str] = ETYPES, source_cutoffs: Mapping[str, datetime] | None = None,
             **options: Any) -> dict[Key, tuple[int, int]]:
    """Run the expected query (or queries) of one source and check every key is a declared pair."""
    queries = [q for q in expected_queries(buzztip_entity_types=etypes, ch_tables=ch_tables,
                                           lookup_db=lookup_db or "default", **options)
               if q.source == source or (source == "earnings" and q.pairs[0].endswith("earnedAmount"))]
    assert queries, source
    got = run_expected(pg_url, ch_client, queries, cutoff=cutoff, cutoff_date=cutoff_date,
                       source_cutoffs=source_cutoffs, load_lookups_into=lookup_db)
    declared = {p for q in queries for p in q.pairs}
    for entity_type, _, metric_type in got:
        assert f"{entity_type}.{metric_type}" in declared
    return got


def pairs_of(path: Path) -> set[str]:
    return {ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")}


# -------------------------------------------------------------------------------------------------
# the catalog as a whole
# -------------------------------------------------------------------------------------------------

def test_pairs_cover_both_lists_exactly() -> None:
    listed = pairs_of(SQL_DIR / "metrics-2025-09.txt") | pairs_of(SQL_DIR / "metrics-later.txt")
    assert len(pairs_of(SQL_DIR / "metrics-2025-09.txt")) == 73

    with_comic = expected_queries(buzztip_entity_types=ETYPES, include_comic=True)
    declared = {p for q in with_comic for p in q.pairs}
    assert declared == listed

    without = expected_queries(buzztip_entity_types=ETYPES)
    assert {p for q in without for p in q.pairs} == {p for p in listed if not p.startswith("Comic.")}
    assert "ComicProjectEngagement" not in {q.source for q in without}


def test_one_query_per_source_and_engines() -> None:
    queries = expected_queries(buzztip_entity_types=ETYPES, include_comic=True)
    sources = [q.source for q in queries]
    assert len(sources) == len(set(sources)) == 23
    ch_sources = {q.source for q in queries if q.engine == "ch"}
    assert ch_sources == {"modelVersionEvents", "jobs", "resourceCompensations"}
    sept = expected_queries(buzztip_entity_types=ETYPES, earnings_source="buzz_resource_compensation")
    assert {q.source for q in sept if q.engine == "ch"} == {"modelVersionEvents", "jobs", "buzz_resource_compensation"}
    for q in queries + sept:
        assert isinstance(q, ExpectedQuery)
        assert q.engine in ("pg", "ch")
        if q.engine == "pg":
            assert "%(cutoff)s::timestamp(3)" in q.sql and "$" not in q.sql
        else:
            assert "$" not in q.sql and ("{cutoff:DateTime64(3)}" in q.sql or "{cutoff_date:Date}" in q.sql)


def test_buzztip_pairs_follow_the_entity_types() -> None:
    (bt,) = [q for q in expected_queries(buzztip_entity_types=["bountyEntry", "Image"]) if q.source == "BuzzTip"]
    assert set(bt.pairs) == set(BUZZTIP_USER_PAIRS) | {
        "bountyEntry.tippedCount", "bountyEntry.tippedAmount", "Image.tippedCount", "Image.tippedAmount"}


def test_table_names_and_options() -> None:
    queries = expected_queries(buzztip_entity_types=[], ch_tables={"jobs": "x.j"}, lookup_db="lk",
                               generation_value="blobs")
    (jobs,) = [q for q in queries if q.source == "jobs"]
    assert "FROM `x`.`j`" in jobs.sql and "`lk`.pg_image" in jobs.sql and "blobsCount" in jobs.sql
    (dl,) = [q for q in queries if q.source == "modelVersionEvents"]
    assert "`default`.`modelVersionEvents`" in dl.sql
    with pytest.raises(Exception, match="generation_value"):
        expected_queries(buzztip_entity_types=[], generation_value="two")
    with pytest.raises(Exception, match="earnings source"):
        expected_queries(buzztip_entity_types=[], earnings_source="nope")
    with pytest.raises(Exception, match="unknown ClickHouse source table"):
        expected_queries(buzztip_entity_types=[], ch_tables={"job": "x.j"})


@pytest.mark.parametrize("earnings_source", ["resourceCompensations", "buzz_resource_compensation", "split:2025-05-02"])
def test_every_query_runs_and_parents_alone_emit_nothing(pg: str, ch_client: Any, ch: dict[str, str], ch_db: str,
                                                         earnings_source: str) -> None:
    queries = expected_queries(buzztip_entity_types=ETYPES, include_comic=True, earnings_source=earnings_source,
                               generation_value="blobs", ch_tables=ch, lookup_db=ch_db)
    assert run_expected(pg, ch_client, queries, cutoff=CUTOFF, cutoff_date=CUTOFF_DATE, load_lookups_into=ch_db) == {}
    # with a cutoff after every parent's timestamp, only the INSERT-driven parents count: bounties 30 and
    # 31 (owner 1) and entries 40 (bounty 30) and 42 (bounty 31); entry 41 has no user. Every other parent
    # is in a non-counting state (Draft, unpublished, no reactions...).
    assert run_expected(pg, ch_client, queries, cutoff=datetime(2030, 1, 1), cutoff_date=date(2030, 1, 1)) == {
        ("User", 1, "bountyCount"): (2, 2),
        ("Bounty", 30, "entryCount"): (1, 1),
        ("Bounty", 31, "entryCount"): (1, 1),
    }


def test_pg_queries_work_through_copy(pg: str) -> None:
    """The verify command may stream PostgreSQL results with COPY (client-side binding)."""
    pg_exec(pg, f"""
    INSERT INTO "TagEngagement" ("userId", "tagId", "type", "createdAt") VALUES (1, 1, 'Follow', '{B}');
    """)
    (q,) = [q for q in expected_queries(buzztip_entity_types=ETYPES) if q.source == "TagEngagement"]
    with psycopg.connect(pg) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY ({q.sql}) TO STDOUT", q.parameters(cutoff=CUTOFF)) as copy:
            text = b"".join(bytes(chunk) for chunk in copy).decode()
    assert text == "Tag\t1\tfollowerCount\t1\t1\n"


# -------------------------------------------------------------------------------------------------
# PostgreSQL sources (events.md 1-20)
# -------------------------------------------------------------------------------------------------

def test_user_engagement(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
    INSERT INTO "UserEngagement" ("userId", "targetUserId", "type", "createdAt") VALUES
        (1, 2, 'Follow', '{B}'),     -- User 1 following, User 2 follower
        (3, 2, 'Follow', '{JUST}'),  -- User 3 following, User 2 follower
        (4, 2, 'Hide',   '{B}'),     -- User 2 hidden
        (5, 2, 'Block',  '{B}'),     -- nothing
        (6, 2, 'Follow', '{AT}'),    -- at the cutoff: nothing
        (-1, 2, 'Follow', '{B}'),    -- userId -1 is kept: User -1 following, User 2 follower
        (0, 3, 'Follow', '{B}'),     -- userId 0: both lines dropped
        (1, 0, 'Follow', '{B}');     -- User 1 following, User 0 follower (entityId 0 kept)
    """)
    assert expected(pg, ch_client, "UserEngagement") == {
        ("User", 1, "followingCount"): (2, 2),
        ("User", 3, "followingCount"): (1, 1),
        ("User", -1, "followingCount"): (1, 1),
        ("User", 2, "followerCount"): (3, 3),
        ("User", 0, "followerCount"): (1, 1),
        ("User", 2, "hiddenCount"): (1, 1),
    }


def test_image_reaction(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
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
    """)
    assert expected(pg, ch_client, "ImageReaction") == {
        ("Image", 100, "Like"): (2, 2),
        ("Image", 100, "Heart"): (1, 1),
        ("Image", 100, "Cry"): (1, 1),
        ("Image", 101, "Like"): (1, 1),
        ("Image", 101, "Dislike"): (1, 1),
        ("Image", 102, "Cry"): (1, 1),
        ("Image", 999, "Laugh"): (1, 1),
        ("Post", 10, "Like"): (3, 3),
        ("Post", 10, "Heart"): (1, 1),
        ("Post", 10, "Dislike"): (1, 1),
        ("Post", 10, "Cry"): (1, 1),
        ("Post", 10, "reactionCount"): (6, 6),
        ("User", 2, "reactionCount"): (4, 4),
        ("User", 3, "reactionCount"): (2, 2),
        ("User", 4, "reactionCount"): (1, 1),
    }


def test_image_reaction_source_cutoff_override(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
    INSERT INTO "ImageReaction" ("id", "imageId", "userId", "reaction", "createdAt", "updatedAt") VALUES
        (1, 102, 5, 'Like', '{B}',  '{B}'),   -- before the per-source cutoff B2
        (2, 102, 6, 'Like', '{B2}', '{B}');   -- exactly at it: excluded
    """)
    assert expected(pg, ch_client, "ImageReaction", source_cutoffs={"ImageReaction": ts(B2)}) == {
        ("Image", 102, "Like"): (1, 1),
        ("User", 4, "reactionCount"): (1, 1),
    }


def test_article_reaction(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
    INSERT INTO "ArticleReaction" ("id", "articleId", "userId", "reaction", "createdAt", "updatedAt") VALUES
        (1, 20, 3, 'Like',  '{B}',    '{B}'),  -- Article 20 Like, User 1 (author)
        (2, 20, 4, 'Like',  '{JUST}', '{B}'),  -- Article 20 Like, User 1
        (3, 21, 3, 'Heart', '{B}',    '{B}'),  -- Article 21 Heart, User 2
        (4, 21, 5, 'Like',  '{AT}',   '{B}'),  -- at the cutoff: nothing
        (5, 21, 0, 'Cry',   '{B}',    '{B}');  -- userId 0: nothing
    """)
    assert expected(pg, ch_client, "ArticleReaction") == {
        ("Article", 20, "Like"): (2, 2),
        ("Article", 21, "Heart"): (1, 1),
        ("User", 1, "reactionCount"): (2, 2),
        ("User", 2, "reactionCount"): (1, 1),
    }


def test_bounty_entry_reaction(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
    INSERT INTO "BountyEntryReaction" ("bountyEntryId", "userId", "reaction", "createdAt") VALUES
        (40, 3, 'Like',  '{B}'),   -- BountyEntry 40 Like, User 2 (entry author)
        (40, 4, 'Like',  '{JUST}'),-- same
        (41, 3, 'Heart', '{B}'),   -- entry author NULL: BountyEntry 41 Heart only
        (40, 5, 'Cry',   '{AT}');  -- at the cutoff: nothing
    """)
    assert expected(pg, ch_client, "BountyEntryReaction") == {
        ("BountyEntry", 40, "Like"): (2, 2),
        ("BountyEntry", 41, "Heart"): (1, 1),
        ("User", 2, "reactionCount"): (2, 2),
    }


def test_reaction_count_sums_over_three_sources(pg: str, ch_client: Any) -> None:
    # User 2 owns image 100, article 21 and bounty entry 40: one reaction on each.
    pg_exec(pg, f"""
    INSERT INTO "ImageReaction" ("id", "imageId", "userId", "reaction", "createdAt", "updatedAt")
        VALUES (1, 100, 5, 'Like', '{B}', '{B}');
    INSERT INTO "ArticleReaction" ("id", "articleId", "userId", "reaction", "createdAt", "updatedAt")
        VALUES (1, 21, 5, 'Like', '{B}', '{B}');
    INSERT INTO "BountyEntryReaction" ("bountyEntryId", "userId", "reaction", "createdAt")
        VALUES (40, 5, 'Like', '{B}');
    """)
    queries = [q for q in expected_queries(buzztip_entity_types=ETYPES)
               if q.source in ("ImageReaction", "ArticleReaction", "BountyEntryReaction")]
    got = run_expected(pg, ch_client, queries, cutoff=CUTOFF)
    assert got[("User", 2, "reactionCount")] == (3, 3)


def test_article_status(pg: str, ch_client: Any) -> None:
    # null_ts for Article = the table's minimum non-NULL createdAt = 2025-01-01 (article 53, a draft)
    pg_exec(pg, f"""
    INSERT INTO "Article" ("id", "title", "content", "userId", "status", "publishedAt", "createdAt") VALUES
        (50, 't', 'c', 1, 'Published',   '{B}',    '2025-04-01'),  -- User 1, dated publishedAt
        (51, 't', 'c', 1, 'Published',   NULL,     '{JUST}'),      -- User 1, dated createdAt
        (52, 't', 'c', 2, 'Published',   NULL,     NULL),          -- User 2, dated null_ts 2025-01-01
        (53, 't', 'c', 2, 'Draft',       '{B}',    '2025-01-01'),  -- not Published: nothing
        (54, 't', 'c', 3, 'Published',   '{AT}',   '{B}'),         -- published at the cutoff: nothing
        (55, 't', 'c', 3, 'Unpublished', '{B}',    '{B}'),         -- nothing
        (56, 't', 'c', 4, 'Published',   '{AFTER}', '{B}');        -- publishedAt wins over createdAt: nothing
    """)
    assert expected(pg, ch_client, "Article") == {
        ("User", 1, "articleCount"): (2, 2),
        ("User", 2, "articleCount"): (1, 1),
    }


def test_resource_review(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
    INSERT INTO "ResourceReview" ("id", "modelId", "modelVersionId", "rating", "recommended", "userId",
                                  "createdAt", "updatedAt", "exclude") VALUES
        (1, 60, 600, 5, true,  2, '{B}',    '{B}',     false),  -- up on Model 60 and version 600, rating x2
        (2, 60, 600, 1, false, 3, '{B}',    '{AFTER}', true),   -- down (exclude ignored; drifted)
        (3, 60, 601, 5, true,  2, '{JUST}', '{B}',     false),  -- up on Model 60 and version 601
        (4, 60, 601, 5, true,  3, '{AT}',   '{B}',     false),  -- at the cutoff: nothing
        (5, 60, 601, 5, true,  0, '{B}',    '{B}',     false);  -- userId 0: nothing
    """)
    assert expected(pg, ch_client, "ResourceReview") == {
        ("Model", 60, "thumbsUpCount"): (2, 2),
        ("Model", 60, "thumbsDownCount"): (1, 1),
        ("Model", 60, "ratingCount"): (3, 3),
        ("ModelVersion", 600, "thumbsUpCount"): (1, 1),
        ("ModelVersion", 600, "thumbsDownCount"): (1, 1),
        ("ModelVersion", 600, "ratingCount"): (2, 2),
        ("ModelVersion", 601, "thumbsUpCount"): (1, 1),
        ("ModelVersion", 601, "ratingCount"): (1, 1),
    }


def test_collection_item(pg: str, ch_client: Any) -> None:
    # null_ts for CollectionItem = min non-NULL createdAt = B (item 1)
    pg_exec(pg, f"""
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
    """)
    assert expected(pg, ch_client, "CollectionItem") == {
        ("Collection", 70, "itemCount"): (3, 3),
        ("Collection", 71, "itemCount"): (3, 3),
        ("Model", 60, "collectedCount"): (2, 2),
        ("Post", 10, "collectedCount"): (1, 1),
        ("Image", 100, "Collection"): (1, 1),
        ("Article", 20, "collectedCount"): (1, 1),
    }


def test_collection_contributor(pg: str, ch_client: Any) -> None:
    # null_ts for CollectionContributor = min non-NULL createdAt = B
    pg_exec(pg, f"""
    INSERT INTO "CollectionContributor" ("userId", "collectionId", "permissions", "createdAt") VALUES
        (1, 70, '{{VIEW,ADD,MANAGE}}', '{B}'),     -- follower + contributor
        (2, 70, '{{VIEW}}',            '{B}'),     -- follower only
        (3, 70, NULL,                  '{B}'),     -- follower only
        (4, 70, '{{}}',                '{JUST}'),  -- follower only
        (5, 70, '{{ADD_REVIEW}}',      '{B}'),     -- follower + contributor
        (6, 70, '{{ADD}}',             '{AT}'),    -- at the cutoff: nothing
        (7, 71, '{{ADD}}',             NULL),      -- dated null_ts: follower + contributor of 71
        (0, 71, '{{MANAGE}}',          '{B}');     -- userId 0: nothing
    """)
    assert expected(pg, ch_client, "CollectionContributor") == {
        ("Collection", 70, "followerCount"): (5, 5),
        ("Collection", 70, "contributorCount"): (2, 2),
        ("Collection", 71, "followerCount"): (1, 1),
        ("Collection", 71, "contributorCount"): (1, 1),
    }


def test_null_created_at_uses_table_minimum_even_after_cutoff(pg: str, ch_client: Any) -> None:
    # The only non-NULL createdAt is after the cutoff, so null_ts is too: nothing is emitted.
    pg_exec(pg, f"""
    INSERT INTO "CollectionContributor" ("userId", "collectionId", "permissions", "createdAt") VALUES
        (1, 70, '{{ADD}}', '{AFTER}'), (2, 70, '{{ADD}}', NULL);
    INSERT INTO "CollectionItem" ("id", "collectionId", "addedById", "createdAt") VALUES
        (1, 70, 1, '{AFTER}'), (2, 70, 2, NULL);
    """)
    assert expected(pg, ch_client, "CollectionContributor") == {}
    assert expected(pg, ch_client, "CollectionItem") == {}


def test_comment(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
    INSERT INTO "Comment" ("id", "content", "modelId", "userId", "parentId", "hidden", "createdAt", "updatedAt") VALUES
        (1, 'x', 60, 2, NULL, false, '{B}',    '{B}'),  -- Model 60
        (2, 'x', 60, 3, 1,    false, '{B}',    '{B}'),  -- reply: Model 60
        (3, 'x', 61, 2, NULL, true,  '{JUST}', '{B}'),  -- hidden counts: Model 61
        (4, 'x', 60, 4, NULL, false, '{AT}',   '{B}'),  -- at the cutoff: nothing
        (5, 'x', 61, 0, NULL, false, '{B}',    '{B}');  -- userId 0: nothing
    """)
    assert expected(pg, ch_client, "Comment") == {
        ("Model", 60, "commentCount"): (2, 2),
        ("Model", 61, "commentCount"): (1, 1),
    }


def test_comment_v2(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
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
    INSERT INTO "CommentV2" ("id", "content", "threadId", "userId", "createdAt", "updatedAt") VALUES
        (1,  'x', 1,  2, '{B}',    '{B}'),  -- Post 10
        (2,  'x', 6,  3, '{B}',    '{B}'),  -- Post 10 (reply)
        (3,  'x', 2,  2, '{B}',    '{B}'),  -- Image 100
        (4,  'x', 8,  4, '{JUST}', '{B}'),  -- Image 100 (reply)
        (5,  'x', 3,  2, '{B}',    '{B}'),  -- Article 20
        (6,  'x', 4,  2, '{B}',    '{B}'),  -- Bounty 30
        (7,  'x', 5,  2, '{B}',    '{B}'),  -- nothing
        (8,  'x', 7,  2, '{B}',    '{B}'),  -- nothing
        (9,  'x', 9,  5, '{B}',    '{B}'),  -- Post 10 and Image 101
        (10, 'x', 1,  6, '{AT}',   '{B}'),  -- at the cutoff: nothing
        (11, 'x', 1,  0, '{B}',    '{B}'),  -- userId 0: nothing
        (12, 'x', 10, 3, '{B}',    '{B}');  -- Image 998
    """)
    assert expected(pg, ch_client, "CommentV2") == {
        ("Post", 10, "commentCount"): (3, 3),
        ("Image", 100, "commentCount"): (2, 2),
        ("Image", 101, "commentCount"): (1, 1),
        ("Image", 998, "commentCount"): (1, 1),
        ("Article", 20, "commentCount"): (1, 1),
        ("Bounty", 30, "commentCount"): (1, 1),
    }


def test_image_resource_new(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
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
    """)
    assert expected(pg, ch_client, "ImageResourceNew") == {
        ("ModelVersion", 600, "imageCount"): (1, 1),
        ("ModelVersion", 601, "imageCount"): (1, 1),
        ("ModelVersion", 610, "imageCount"): (1, 1),
        ("ModelVersion", 9999, "imageCount"): (1, 1),
        ("Model", 60, "imageCount"): (2, 2),
        ("Model", 61, "imageCount"): (1, 1),
    }


def test_buzz_tip(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
    INSERT INTO "BuzzTip" ("entityType", "entityId", "toUserId", "fromUserId", "amount", "createdAt", "updatedAt") VALUES
        ('Image',        100, 2, 5, 50,  '{B}',    '{B}'),      -- Image 100, User 2 tipped, User 5 given
        ('Image',        100, 2, 6, 20,  '{JUST}', '{AFTER}'),  -- current amount 20 (topped up later)
        ('bountyEntry',  40,  3, 5, 7,   '{B}',    '{B}'),      -- entityType verbatim, lower-case b
        ('ComicProject', 1,   0, 6, 30,  '{B}',    '{B}'),      -- to the central account: User 0 lines kept
        ('Model',        60,  1, 0, 100, '{B}',    '{B}'),      -- fromUserId 0: all six lines dropped
        ('Post',         10,  1, 7, 0,   '{B}',    '{B}'),      -- amount 0: nothing
        ('Post',         10,  1, 8, -5,  '{B}',    '{B}'),      -- negative amount: nothing
        ('Article',      20,  1, 5, 10,  '{AT}',   '{AT}'),     -- at the cutoff: nothing
        ('Model3D',      5,   1, 7, 3,   '{B}',    '{B}');      -- etype not asked for: User lines only
    """)
    etypes = [e for e in ETYPES if e != "Model3D"]
    assert expected(pg, ch_client, "BuzzTip", etypes=etypes) == {
        ("Image", 100, "tippedCount"): (2, 2),
        ("Image", 100, "tippedAmount"): (70, 2),
        ("bountyEntry", 40, "tippedCount"): (1, 1),
        ("bountyEntry", 40, "tippedAmount"): (7, 1),
        ("ComicProject", 1, "tippedCount"): (1, 1),
        ("ComicProject", 1, "tippedAmount"): (30, 1),
        ("User", 2, "tippedCount"): (2, 2),
        ("User", 2, "tippedAmount"): (70, 2),
        ("User", 3, "tippedCount"): (1, 1),
        ("User", 3, "tippedAmount"): (7, 1),
        ("User", 0, "tippedCount"): (1, 1),
        ("User", 0, "tippedAmount"): (30, 1),
        ("User", 1, "tippedCount"): (1, 1),
        ("User", 1, "tippedAmount"): (3, 1),
        ("User", 5, "tipsGivenCount"): (2, 2),
        ("User", 5, "tipsGivenAmount"): (57, 2),
        ("User", 6, "tipsGivenCount"): (2, 2),
        ("User", 6, "tipsGivenAmount"): (50, 2),
        ("User", 7, "tipsGivenCount"): (1, 1),
        ("User", 7, "tipsGivenAmount"): (3, 1),
    }
    with_all = expected(pg, ch_client, "BuzzTip")
    assert with_all[("Model3D", 5, "tippedCount")] == (1, 1)
    assert with_all[("Model3D", 5, "tippedAmount")] == (3, 1)


def test_buzz_tip_entity_type_quoting(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
    INSERT INTO "BuzzTip" ("entityType", "entityId", "toUserId", "fromUserId", "amount", "createdAt", "updatedAt")
        VALUES ('O''Brien 50%', 1, 2, 3, 4, '{B}', '{B}');
    """)
    got = expected(pg, ch_client, "BuzzTip", etypes=["O'Brien 50%"])
    assert got[("O'Brien 50%", 1, "tippedAmount")] == (4, 1)
    assert got[("User", 2, "tippedAmount")] == (4, 1)


def test_tag_engagement(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
    INSERT INTO "TagEngagement" ("userId", "tagId", "type", "createdAt") VALUES
        (1, 1, 'Follow', '{B}'),     -- Tag 1 follower
        (2, 1, 'Follow', '{JUST}'),  -- Tag 1 follower
        (3, 1, 'Hide',   '{B}'),     -- Tag 1 hidden
        (4, 1, 'Allow',  '{B}'),     -- nothing
        (5, 1, 'Follow', '{AT}'),    -- at the cutoff: nothing
        (1, 2, 'Hide',   '{B}'),     -- Tag 2 hidden
        (0, 2, 'Follow', '{B}');     -- userId 0: nothing
    """)
    assert expected(pg, ch_client, "TagEngagement") == {
        ("Tag", 1, "followerCount"): (2, 2),
        ("Tag", 1, "hiddenCount"): (1, 1),
        ("Tag", 2, "hiddenCount"): (1, 1),
    }


def test_bounty_engagement(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
    INSERT INTO "BountyEngagement" ("userId", "bountyId", "type", "createdAt") VALUES
        (1, 30, 'Favorite', '{B}'),     -- Bounty 30 favorite
        (1, 30, 'Track',    '{B}'),     -- one user may hold both: Bounty 30 track
        (2, 30, 'Track',    '{JUST}'),  -- Bounty 30 track
        (3, 30, 'Favorite', '{AT}'),    -- at the cutoff: nothing
        (2, 31, 'Favorite', '{B}'),     -- Bounty 31 favorite
        (0, 31, 'Track',    '{B}');     -- userId 0: nothing
    """)
    assert expected(pg, ch_client, "BountyEngagement") == {
        ("Bounty", 30, "favoriteCount"): (1, 1),
        ("Bounty", 30, "trackCount"): (2, 2),
        ("Bounty", 31, "favoriteCount"): (1, 1),
    }


BOUNTY_COLS = ('"id", "userId", "name", "description", "startsAt", "expiresAt", "createdAt", "updatedAt", '
               '"type", "minBenefactorUnitAmount"')


def test_bounty(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
    INSERT INTO "Bounty" ({BOUNTY_COLS}) VALUES
        (130, 1,    'b', 'd', '2025-01-01', '2025-12-31', '{B}',    '{B}', 'Other', 0),  -- User 1
        (131, 1,    'b', 'd', '2025-01-01', '2025-12-31', '{JUST}', '{B}', 'Other', 0),  -- User 1
        (132, NULL, 'b', 'd', '2025-01-01', '2025-12-31', '{B}',    '{B}', 'Other', 0),  -- owner NULL: dropped
        (133, 2,    'b', 'd', '2025-01-01', '2025-12-31', '{AT}',   '{B}', 'Other', 0),  -- at the cutoff
        (134, -1,   'b', 'd', '2025-01-01', '2025-12-31', '{B}',    '{B}', 'Other', 0);  -- User -1 kept
    """)
    assert expected(pg, ch_client, "Bounty") == {
        ("User", 1, "bountyCount"): (2, 2),
        ("User", -1, "bountyCount"): (1, 1),
    }


def test_bounty_entry(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
    INSERT INTO "BountyEntry" ("id", "bountyId", "userId", "createdAt", "updatedAt") VALUES
        (140, 30, 2,    '{B}',    '{B}'),  -- Bounty 30 entry
        (141, 30, NULL, '{B}',    '{B}'),  -- entrant NULL: dropped
        (142, 30, 3,    '{JUST}', '{B}'),  -- Bounty 30 entry
        (143, 31, 2,    '{AT}',   '{B}'),  -- at the cutoff: nothing
        (144, 31, 4,    '{B}',    '{B}');  -- Bounty 31 entry
    """)
    assert expected(pg, ch_client, "BountyEntry") == {
        ("Bounty", 30, "entryCount"): (2, 2),
        ("Bounty", 31, "entryCount"): (1, 1),
    }


def test_bounty_benefactor(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
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
    """)
    assert expected(pg, ch_client, "BountyBenefactor") == {
        ("Bounty", 30, "benefactorCount"): (6, 6),
        ("Bounty", 30, "unitAmount"): (100 + 0 + 50 + 25 + 10 + 15, 6),
        ("BountyEntry", 40, "unitAmount"): (50, 1),
        ("BountyEntry", 41, "unitAmount"): (10, 1),
        ("Bounty", 31, "benefactorCount"): (3, 3),
        ("Bounty", 31, "unitAmount"): (60 + 5 + 3, 3),
        ("BountyEntry", 42, "unitAmount"): (60 + 3, 2),
    }


def test_comic_project_engagement(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
    INSERT INTO "ComicProjectEngagement" ("userId", "projectId", "type", "readChapters", "createdAt", "updatedAt") VALUES
        (1, 1, 'Notify', '{{}}',      '{B}',    '{B}'),  -- follower
        (2, 1, 'Hide',   '{{1,2,3}}', '{B}',    '{B}'),  -- hidden; reader +1, chapters +3
        (3, 1, 'None',   '{{5}}',     '{JUST}', '{B}'),  -- no type line; reader +1, chapters +1
        (4, 1, 'Notify', '{{1}}',     '{AT}',   '{B}'),  -- at the cutoff: nothing
        (0, 1, 'Notify', '{{1,2}}',   '{B}',    '{B}'),  -- userId 0: nothing
        (5, 1, 'None',   '{{}}',      '{B}',    '{B}');  -- nothing
    """)
    assert expected(pg, ch_client, "ComicProjectEngagement", include_comic=True) == {
        ("Comic", 1, "followerCount"): (1, 1),
        ("Comic", 1, "hiddenCount"): (1, 1),
        ("Comic", 1, "readerCount"): (2, 2),
        ("Comic", 1, "chapterReadCount"): (4, 2),
    }


def test_post(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
    INSERT INTO "Post" ("id", "userId", "publishedAt", "createdAt", "updatedAt") VALUES
        (110, 1, '{B}',     '{B}', '{B}'),  -- User 1
        (111, 1, '{JUST}',  '{B}', '{B}'),  -- User 1
        (112, 2, NULL,      '{B}', '{B}'),  -- unpublished: nothing
        (113, 2, '{AT}',    '{B}', '{B}'),  -- published at the cutoff: nothing
        (114, 2, '{AFTER}', '{B}', '{B}'),  -- scheduled after the cutoff: nothing
        (115, 3, '{B}',     '{B}', '{B}');  -- User 3
    """)
    assert expected(pg, ch_client, "Post") == {
        ("User", 1, "postCount"): (2, 2),
        ("User", 3, "postCount"): (1, 1),
    }


def test_model_version(pg: str, ch_client: Any) -> None:
    pg_exec(pg, f"""
    INSERT INTO "ModelVersion" ("id", "modelId", "name", "baseModel", "status", "publishedAt", "createdAt", "updatedAt") VALUES
        (700, 60, 'v', 'b', 'Published', '{B}',     '{B}',    '{B}'),  -- User 1 (owner of model 60)
        (701, 60, 'v', 'b', 'Published', NULL,      '{JUST}', '{B}'),  -- dated createdAt: User 1
        (702, 60, 'v', 'b', 'Scheduled', '{B}',     '{B}',    '{B}'),  -- Scheduled: nothing
        (703, 60, 'v', 'b', 'Draft',     NULL,      '{B}',    '{B}'),  -- nothing
        (710, 61, 'v', 'b', 'Published', '{AT}',    '{B}',    '{B}'),  -- published at the cutoff: nothing
        (711, 61, 'v', 'b', 'Published', '{AFTER}', '{B}',    '{B}'),  -- publishedAt wins: nothing
        (712, 61, 'v', 'b', 'Published', '{B}',     '{B}',    '{B}');  -- User 2 (owner of model 61)
    """)
    assert expected(pg, ch_client, "ModelVersion") == {
        ("User", 1, "uploadCount"): (2, 2),
        ("User", 2, "uploadCount"): (1, 1),
    }


# -------------------------------------------------------------------------------------------------
# ClickHouse sources (events.md 21-24)
# -------------------------------------------------------------------------------------------------

def test_downloads(pg: str, ch_client: Any, ch: dict[str, str], ch_db: str) -> None:
    cols = ["type", "time", "userId", "modelId", "modelVersionId", "nsfw"]
    ch_insert(ch_client, ch["modelVersionEvents"], cols, [
        ("Download", ts(B), 5, 60, 600, False),                    # Model 60, ModelVersion 600
        ("Download", ts(B), 5, 60, 600, False),                    # repeated download counts again
        ("Download", ts("2025-05-31 23:59:59"), 6, 60, 601, False),  # Model 60, ModelVersion 601
        ("Download", ts(AT), 5, 60, 600, False),                   # at the cutoff: nothing
        ("Download", ts(B), 0, 60, 600, False),                    # anonymous: dropped
        ("Download", ts(B), -1, 60, 600, False),                   # filtered before the pipeline
        ("Download", ts(B), 490053, 60, 600, False),               # filtered before the pipeline
        ("Create", ts(B), 5, 61, 610, False),                      # other type: nothing
        ("Download", ts(B), 7, 61, 610, True),                     # Model 61, ModelVersion 610
    ])
    assert expected(pg, ch_client, "modelVersionEvents", ch_tables=ch, lookup_db=ch_db) == {
        ("Model", 60, "downloadCount"): (3, 3),
        ("ModelVersion", 600, "downloadCount"): (2, 2),
        ("ModelVersion", 601, "downloadCount"): (1, 1),
        ("Model", 61, "downloadCount"): (1, 1),
        ("ModelVersion", 610, "downloadCount"): (1, 1),
    }


JOB_COLS = ["jobId", "userId", "jobType", "createdAt", "resourcesUsed", "remixOfId", "blobsCount"]
JOBS = [
    ("j1", 5, "TextToImageV2", ts(B), [600, 600, 610], None, 4),   # MV 600 x2, MV 610; Model 60 x2, Model 61
    ("j2", 6, "Comfy", ts(JUST), [601, 9999], "100", 0),           # MV 601, MV 9999 (unknown), Model 60;
    #                                                                Image 100 remix, User 2 (owner)
    ("j3", 5, "TextToImage", ts(B), [], "777", 2),                 # Image 777 remix; owner not found: no User
    ("j4", 7, "TextToImageV2", ts(B), [610], "abc", 3),            # MV 610, Model 61; non-numeric remix: none
    ("j5", 0, "TextToImageV2", ts(B), [600], "100", 1),            # userId 0: nothing
    ("j6", 5, "TextToImageV2", ts(AT), [600], "101", 1),           # at the cutoff: nothing
    ("j7", 5, "Training", ts(B), [600], "101", 1),                 # other job type: nothing
    ("j8", 8, "Comfy", ts(B), [], "", 1),                          # empty remixOfId, no resources: nothing
    ("j9", -1, "TextToImage", ts(B), [610], "101", 0),             # userId -1 kept: MV 610, Model 61,
    #                                                                Image 101 remix, User 3 (owner)
]


def test_jobs(pg: str, ch_client: Any, ch: dict[str, str], ch_db: str) -> None:
    ch_insert(ch_client, ch["jobs"], JOB_COLS, JOBS)
    assert expected(pg, ch_client, "jobs", ch_tables=ch, lookup_db=ch_db) == {
        ("ModelVersion", 600, "generationCount"): (2, 2),
        ("ModelVersion", 601, "generationCount"): (1, 1),
        ("ModelVersion", 610, "generationCount"): (3, 3),     # j1, j4, j9
        ("ModelVersion", 9999, "generationCount"): (1, 1),
        ("Model", 60, "generationCount"): (3, 3),             # j1 x2, j2
        ("Model", 61, "generationCount"): (3, 3),             # j1, j4, j9
        ("Image", 100, "remixCount"): (1, 1),
        ("Image", 101, "remixCount"): (1, 1),
        ("Image", 777, "remixCount"): (1, 1),
        ("User", 2, "remixCount"): (1, 1),
        ("User", 3, "remixCount"): (1, 1),
    }


def test_jobs_blobs_value(pg: str, ch_client: Any, ch: dict[str, str], ch_db: str) -> None:
    # g = if(blobsCount > 0, blobsCount, 1): j1 4, j2 1, j3 2, j4 3, j9 1
    ch_insert(ch_client, ch["jobs"], JOB_COLS, JOBS)
    assert expected(pg, ch_client, "jobs", ch_tables=ch, lookup_db=ch_db, generation_value="blobs") == {
        ("ModelVersion", 600, "generationCount"): (8, 2),     # j1: 2 elements x 4
        ("ModelVersion", 601, "generationCount"): (1, 1),
        ("ModelVersion", 610, "generationCount"): (4 + 3 + 1, 3),
        ("ModelVersion", 9999, "generationCount"): (1, 1),
        ("Model", 60, "generationCount"): (8 + 1, 3),
        ("Model", 61, "generationCount"): (4 + 3 + 1, 3),
        ("Image", 100, "remixCount"): (1, 1),
        ("Image", 101, "remixCount"): (1, 1),
        ("Image", 777, "remixCount"): (2, 1),
        ("User", 2, "remixCount"): (1, 1),
        ("User", 3, "remixCount"): (1, 1),
    }


BRC_COLS = ["date", "modelVersionId", "total", "updated_at", "final"]


def fill_buzz_resource_compensation(ch_client: Any, table: str) -> None:
    d1, d2, d3 = ts("2025-05-01"), ts("2025-05-02"), ts("2025-05-03")
    old, new = ts("2025-05-05 01:00:00"), ts("2025-05-05 02:00:00")
    # first insert: rows that a later insert replaces
    ch_insert(ch_client, table, BRC_COLS, [
        (d1, 600, 99, old, 1),   # replaced by the newer row (10) below
        (d2, 601, 8, old, 1),    # replaced by a newer row that is not final: day 2 of 601 is gone
    ])
    ch_insert(ch_client, table, BRC_COLS, [
        (d1, 600, 10, new, 1),   # MV 600 +10; Model 60 day 1
        (d1, 601, 5, new, 1),    # MV 601 +5;  Model 60 day 1 (15 in all)
        (d1, 610, 7, new, 1),    # MV 610 +7;  Model 61 day 1
        (d2, 600, 3, new, 1),    # MV 600 +3;  Model 60 day 2
        (d2, 601, 9, new, 0),    # newest row not final: nothing
        (d3, 9999, 4, new, 1),   # unknown version: MV 9999 only
        (d3, 610, 0, new, 1),    # 0 is written: MV 610 +0, Model 61 day 3 +0
        (ts("2025-05-04"), 600, 6, new, 0),  # never final: nothing
        (ts("2025-06-01"), 600, 50, new, 1),  # the cutoff day: nothing
    ])


RC_COLS = ["date", "modelVersionId", "accountType", "source", "amount"]


def fill_resource_compensations(ch_client: Any, table: str) -> None:
    d1, d2 = date(2025, 5, 1), date(2025, 5, 2)
    # three inserts = three parts with the same key: sum() before floor()
    ch_insert(ch_client, table, RC_COLS, [
        (d1, 600, "user", "compensation", 1.6),
        (d1, 601, "creator", "compensation", 0.9),   # day 1 of 601: floor(0.9) = 0, still a line
        (d1, 610, "user", "licenseFee", 3.2),        # day 1 of 610: 3
    ])
    ch_insert(ch_client, table, RC_COLS, [
        (d1, 600, "user", "tip", 2.7),
        (d2, 600, "user", "compensation", 2.5),      # day 2 of 600: 2
        (d2, 601, "user", "compensation", 2.5),      # day 2 of 601: 2
        (d2, 9999, "user", "compensation", 5.0),     # unknown version: MV 9999 only
    ])
    ch_insert(ch_client, table, RC_COLS, [
        (d1, 600, "user", "compensation", 0.5),      # day 1 of 600: floor(1.6 + 2.7 + 0.5) = 4
        (date(2025, 5, 31), 610, "user", "compensation", 1.0),  # last day before cutoff_date: 1
        (date(2025, 6, 1), 600, "user", "compensation", 100.0),  # cutoff_date itself: nothing
    ])


def test_earnings_sept_2025_path(pg: str, ch_client: Any, ch: dict[str, str], ch_db: str) -> None:
    fill_buzz_resource_compensation(ch_client, ch["buzz_resource_compensation"])
    assert expected(pg, ch_client, "buzz_resource_compensation", ch_tables=ch, lookup_db=ch_db,
                    earnings_source="buzz_resource_compensation") == {
        ("ModelVersion", 600, "earnedAmount"): (10 + 3, 2),
        ("ModelVersion", 601, "earnedAmount"): (5, 1),
        ("ModelVersion", 610, "earnedAmount"): (7 + 0, 2),
        ("ModelVersion", 9999, "earnedAmount"): (4, 1),
        ("Model", 60, "earnedAmount"): ((10 + 5) + 3, 2),   # one line per (day, model)
        ("Model", 61, "earnedAmount"): (7 + 0, 2),
    }


def test_earnings_today_path(pg: str, ch_client: Any, ch: dict[str, str], ch_db: str) -> None:
    fill_resource_compensations(ch_client, ch["resourceCompensations"])
    assert expected(pg, ch_client, "resourceCompensations", ch_tables=ch, lookup_db=ch_db) == {
        ("ModelVersion", 600, "earnedAmount"): (4 + 2, 2),
        ("ModelVersion", 601, "earnedAmount"): (0 + 2, 2),
        ("ModelVersion", 610, "earnedAmount"): (3 + 1, 2),
        ("ModelVersion", 9999, "earnedAmount"): (5, 1),
        # Model line = sum of the per-version floors of the day: day 1 = 4 + 0 (not floor(5.7) = 5)
        ("Model", 60, "earnedAmount"): ((4 + 0) + (2 + 2), 2),
        ("Model", 61, "earnedAmount"): (3 + 1, 2),
    }


def test_earnings_split(pg: str, ch_client: Any, ch: dict[str, str], ch_db: str) -> None:
    # split:2025-05-02 = Sept-2025 path for 2025-05-01, today's path from 2025-05-02 on
    fill_buzz_resource_compensation(ch_client, ch["buzz_resource_compensation"])
    fill_resource_compensations(ch_client, ch["resourceCompensations"])
    assert expected(pg, ch_client, "earnings", ch_tables=ch, lookup_db=ch_db,
                    earnings_source="split:2025-05-02") == {
        ("ModelVersion", 600, "earnedAmount"): (10 + 2, 2),
        ("ModelVersion", 601, "earnedAmount"): (5 + 2, 2),
        ("ModelVersion", 610, "earnedAmount"): (7 + 1, 2),
        ("ModelVersion", 9999, "earnedAmount"): (5, 1),
        ("Model", 60, "earnedAmount"): (15 + 4, 2),
        ("Model", 61, "earnedAmount"): (7 + 1, 2),
    }


def test_earnings_need_cutoff_date(pg: str, ch_client: Any, ch: dict[str, str], ch_db: str) -> None:
    with pytest.raises(Exception, match="cutoff_date"):
        expected(pg, ch_client, "resourceCompensations", ch_tables=ch, lookup_db=ch_db, cutoff_date=None)


def test_load_lookups_batches_and_replaces(pg: str, ch_client: Any, ch_db: str) -> None:
    with psycopg.connect(pg) as conn:
        load_lookups(conn, ch_client, ch_db, batch_bytes=8)   # tiny batches: one insert per line or so
        load_lookups(conn, ch_client, ch_db)                  # re-run replaces, never duplicates
    versions = ch_client.query(f"SELECT id, modelId FROM {ch_db}.pg_model_version ORDER BY id").result_rows
    images = ch_client.query(f"SELECT id, userId FROM {ch_db}.pg_image ORDER BY id").result_rows
    assert [tuple(r) for r in versions] == [(600, 60), (601, 60), (610, 61)]
    assert [tuple(r) for r in images] == [(100, 2), (101, 3), (102, 4)]
