"""The independent expected-totals queries (metric_backfill._expected), checked on hand-made rows.

Every per-source test inserts the shared scenario of one source of docs/sources.md (sourcedata.py: a
handful of rows including that section's edge cases, each with a comment naming the lines it
emits; test_sources.py runs the engine on the same rows) and asserts the exact
{(entityType, entityId, metricType): (total, events)} dict. The conventions (CUTOFF, B, JUST, AT,
AFTER, PARENTS) are described in sourcedata.py; the `pg` and `ch` fixtures are in conftest.py.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sourcedata import (
    AFTER,
    CUTOFF,
    CUTOFF_DATE,
    ETYPES,
    SCENARIOS,
    LISTS,
    B,
    B2,
    fill_buzz_resource_compensation,
    fill_jobs,
    fill_resource_compensations,
    expected,
    insert_scenario,
    pg_exec,
    ts,
)

from expected_helpers import load_lookups, run_expected

from metric_backfill.verify._expected import (
    BUZZTIP_USER_PAIRS,
    ExpectedQuery,
    expected_queries,
)


def pairs_of(path: Path) -> set[str]:
    return {ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")}


# -------------------------------------------------------------------------------------------------
# the catalog as a whole
# -------------------------------------------------------------------------------------------------


def test_pairs_cover_both_lists_exactly() -> None:
    listed = pairs_of(LISTS / "metrics-2025-09.txt") | pairs_of(LISTS / "metrics-later.txt")
    assert len(pairs_of(LISTS / "metrics-2025-09.txt")) == 73

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
        "bountyEntry.tippedCount",
        "bountyEntry.tippedAmount",
        "Image.tippedCount",
        "Image.tippedAmount",
    }


def test_table_names_and_options() -> None:
    queries = expected_queries(
        buzztip_entity_types=[], ch_tables={"jobs": "x.j"}, lookup_db="lk", generation_value="blobs"
    )
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
def test_every_query_runs_and_parents_alone_emit_nothing(
    pg: str, ch_client: Any, ch: dict[str, str], ch_db: str, earnings_source: str
) -> None:
    queries = expected_queries(
        buzztip_entity_types=ETYPES,
        include_comic=True,
        earnings_source=earnings_source,
        generation_value="blobs",
        ch_tables=ch,
        lookup_db=ch_db,
    )
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
    pg_exec(
        pg,
        f"""
    INSERT INTO "TagEngagement" ("userId", "tagId", "type", "createdAt") VALUES (1, 1, 'Follow', '{B}');
    """,
    )
    (q,) = [q for q in expected_queries(buzztip_entity_types=ETYPES) if q.source == "TagEngagement"]
    with psycopg.connect(pg) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY ({q.sql}) TO STDOUT", q.parameters(cutoff=CUTOFF)) as copy:
            text = b"".join(bytes(chunk) for chunk in copy).decode()
    assert text == "Tag\t1\tfollowerCount\t1\t1\n"


# -------------------------------------------------------------------------------------------------
# PostgreSQL sources (docs/sources.md 1-20)
# -------------------------------------------------------------------------------------------------


def test_user_engagement(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["UserEngagement"])  # sourcedata.py: one row per line, with its events
    assert expected(pg, ch_client, "UserEngagement") == {
        ("User", 1, "followingCount"): (2, 2),
        ("User", 3, "followingCount"): (1, 1),
        ("User", -1, "followingCount"): (1, 1),
        ("User", 2, "followerCount"): (3, 3),
        ("User", 0, "followerCount"): (1, 1),
        ("User", 2, "hiddenCount"): (1, 1),
    }


def test_image_reaction(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["ImageReaction"])  # sourcedata.py: one row per line, with its events
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
    pg_exec(
        pg,
        f"""
    INSERT INTO "ImageReaction" ("id", "imageId", "userId", "reaction", "createdAt", "updatedAt") VALUES
        (1, 102, 5, 'Like', '{B}',  '{B}'),   -- before the per-source cutoff B2
        (2, 102, 6, 'Like', '{B2}', '{B}');   -- exactly at it: excluded
    """,
    )
    assert expected(pg, ch_client, "ImageReaction", source_cutoffs={"ImageReaction": ts(B2)}) == {
        ("Image", 102, "Like"): (1, 1),
        ("User", 4, "reactionCount"): (1, 1),
    }


def test_article_reaction(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["ArticleReaction"])  # sourcedata.py: one row per line, with its events
    assert expected(pg, ch_client, "ArticleReaction") == {
        ("Article", 20, "Like"): (2, 2),
        ("Article", 21, "Heart"): (1, 1),
        ("User", 1, "reactionCount"): (2, 2),
        ("User", 2, "reactionCount"): (1, 1),
    }


def test_bounty_entry_reaction(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["BountyEntryReaction"])  # sourcedata.py: one row per line, with its events
    assert expected(pg, ch_client, "BountyEntryReaction") == {
        ("BountyEntry", 40, "Like"): (2, 2),
        ("BountyEntry", 41, "Heart"): (1, 1),
        ("User", 2, "reactionCount"): (2, 2),
    }


def test_reaction_count_sums_over_three_sources(pg: str, ch_client: Any) -> None:
    # User 2 owns image 100, article 21 and bounty entry 40: one reaction on each.
    pg_exec(
        pg,
        f"""
    INSERT INTO "ImageReaction" ("id", "imageId", "userId", "reaction", "createdAt", "updatedAt")
        VALUES (1, 100, 5, 'Like', '{B}', '{B}');
    INSERT INTO "ArticleReaction" ("id", "articleId", "userId", "reaction", "createdAt", "updatedAt")
        VALUES (1, 21, 5, 'Like', '{B}', '{B}');
    INSERT INTO "BountyEntryReaction" ("bountyEntryId", "userId", "reaction", "createdAt")
        VALUES (40, 5, 'Like', '{B}');
    """,
    )
    queries = [
        q
        for q in expected_queries(buzztip_entity_types=ETYPES)
        if q.source in ("ImageReaction", "ArticleReaction", "BountyEntryReaction")
    ]
    got = run_expected(pg, ch_client, queries, cutoff=CUTOFF)
    assert got[("User", 2, "reactionCount")] == (3, 3)


def test_article_status(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["Article"])  # sourcedata.py: one row per line, with its events
    assert expected(pg, ch_client, "Article") == {
        ("User", 1, "articleCount"): (2, 2),
        ("User", 2, "articleCount"): (1, 1),
    }


def test_resource_review(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["ResourceReview"])  # sourcedata.py: one row per line, with its events
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
    pg_exec(pg, SCENARIOS["CollectionItem"])  # sourcedata.py: one row per line, with its events
    assert expected(pg, ch_client, "CollectionItem") == {
        ("Collection", 70, "itemCount"): (3, 3),
        ("Collection", 71, "itemCount"): (3, 3),
        ("Model", 60, "collectedCount"): (2, 2),
        ("Post", 10, "collectedCount"): (1, 1),
        ("Image", 100, "Collection"): (1, 1),
        ("Article", 20, "collectedCount"): (1, 1),
    }


def test_collection_contributor(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["CollectionContributor"])  # sourcedata.py: one row per line, with its events
    assert expected(pg, ch_client, "CollectionContributor") == {
        ("Collection", 70, "followerCount"): (5, 5),
        ("Collection", 70, "contributorCount"): (2, 2),
        ("Collection", 71, "followerCount"): (1, 1),
        ("Collection", 71, "contributorCount"): (1, 1),
    }


def test_null_created_at_uses_table_minimum_even_after_cutoff(pg: str, ch_client: Any) -> None:
    # The only non-NULL createdAt is after the cutoff, so null_ts is too: nothing is emitted.
    pg_exec(
        pg,
        f"""
    INSERT INTO "CollectionContributor" ("userId", "collectionId", "permissions", "createdAt") VALUES
        (1, 70, '{{ADD}}', '{AFTER}'), (2, 70, '{{ADD}}', NULL);
    INSERT INTO "CollectionItem" ("id", "collectionId", "addedById", "createdAt") VALUES
        (1, 70, 1, '{AFTER}'), (2, 70, 2, NULL);
    """,
    )
    assert expected(pg, ch_client, "CollectionContributor") == {}
    assert expected(pg, ch_client, "CollectionItem") == {}


def test_comment(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["Comment"])  # sourcedata.py: one row per line, with its events
    assert expected(pg, ch_client, "Comment") == {
        ("Model", 60, "commentCount"): (2, 2),
        ("Model", 61, "commentCount"): (2, 2),  # comments 3 (hidden) and 6 (TOS violation)
    }


def test_comment_v2(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["CommentV2"])  # sourcedata.py: one row per line, with its events
    assert expected(pg, ch_client, "CommentV2") == {
        ("Post", 10, "commentCount"): (3, 3),
        ("Image", 100, "commentCount"): (2, 2),
        ("Image", 101, "commentCount"): (1, 1),
        ("Image", 998, "commentCount"): (1, 1),
        ("Article", 20, "commentCount"): (2, 2),  # comments 5 and 13 (hidden + TOS: ignored)
        ("Bounty", 30, "commentCount"): (1, 1),
    }


def test_image_resource_new(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["ImageResourceNew"])  # sourcedata.py: one row per line, with its events
    assert expected(pg, ch_client, "ImageResourceNew") == {
        ("ModelVersion", 600, "imageCount"): (1, 1),
        ("ModelVersion", 601, "imageCount"): (1, 1),
        ("ModelVersion", 610, "imageCount"): (1, 1),
        ("ModelVersion", 9999, "imageCount"): (1, 1),
        ("Model", 60, "imageCount"): (2, 2),
        ("Model", 61, "imageCount"): (1, 1),
    }


def test_buzz_tip(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["BuzzTip"])  # sourcedata.py: one row per line, with its events
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
    pg_exec(
        pg,
        f"""
    INSERT INTO "BuzzTip" ("entityType", "entityId", "toUserId", "fromUserId", "amount", "createdAt", "updatedAt")
        VALUES ('O''Brien 50%', 1, 2, 3, 4, '{B}', '{B}');
    """,
    )
    got = expected(pg, ch_client, "BuzzTip", etypes=["O'Brien 50%"])
    assert got[("O'Brien 50%", 1, "tippedAmount")] == (4, 1)
    assert got[("User", 2, "tippedAmount")] == (4, 1)


def test_tag_engagement(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["TagEngagement"])  # sourcedata.py: one row per line, with its events
    assert expected(pg, ch_client, "TagEngagement") == {
        ("Tag", 1, "followerCount"): (2, 2),
        ("Tag", 1, "hiddenCount"): (1, 1),
        ("Tag", 2, "hiddenCount"): (1, 1),
    }


def test_bounty_engagement(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["BountyEngagement"])  # sourcedata.py: one row per line, with its events
    assert expected(pg, ch_client, "BountyEngagement") == {
        ("Bounty", 30, "favoriteCount"): (1, 1),
        ("Bounty", 30, "trackCount"): (2, 2),
        ("Bounty", 31, "favoriteCount"): (1, 1),
    }


def test_bounty(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["Bounty"])  # sourcedata.py: one row per line, with its events
    assert expected(pg, ch_client, "Bounty") == {
        ("User", 1, "bountyCount"): (2, 2),
        ("User", -1, "bountyCount"): (1, 1),
    }


def test_bounty_entry(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["BountyEntry"])  # sourcedata.py: one row per line, with its events
    assert expected(pg, ch_client, "BountyEntry") == {
        ("Bounty", 30, "entryCount"): (2, 2),
        ("Bounty", 31, "entryCount"): (1, 1),
    }


def test_bounty_benefactor(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["BountyBenefactor"])  # sourcedata.py: one row per line, with its events
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
    pg_exec(pg, SCENARIOS["ComicProjectEngagement"])  # sourcedata.py: one row per line, with its events
    assert expected(pg, ch_client, "ComicProjectEngagement", include_comic=True) == {
        ("Comic", 1, "followerCount"): (1, 1),
        ("Comic", 1, "hiddenCount"): (1, 1),
        ("Comic", 1, "readerCount"): (2, 2),
        ("Comic", 1, "chapterReadCount"): (4, 2),
    }


def test_post(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["Post"])  # sourcedata.py: one row per line, with its events
    assert expected(pg, ch_client, "Post") == {
        ("User", 1, "postCount"): (2, 2),
        ("User", 3, "postCount"): (1, 1),
    }


def test_model_version(pg: str, ch_client: Any) -> None:
    pg_exec(pg, SCENARIOS["ModelVersion"])  # sourcedata.py: one row per line, with its events
    assert expected(pg, ch_client, "ModelVersion") == {
        ("User", 1, "uploadCount"): (2, 2),
        ("User", 2, "uploadCount"): (1, 1),
    }


# -------------------------------------------------------------------------------------------------
# ClickHouse sources (docs/sources.md 21-24)
# -------------------------------------------------------------------------------------------------


def test_downloads(pg: str, ch_client: Any, ch: dict[str, str], ch_db: str) -> None:
    insert_scenario("modelVersionEvents", pg, ch_client, ch)
    assert expected(pg, ch_client, "modelVersionEvents", ch_tables=ch, lookup_db=ch_db) == {
        ("Model", 60, "downloadCount"): (3, 3),
        ("ModelVersion", 600, "downloadCount"): (2, 2),
        ("ModelVersion", 601, "downloadCount"): (1, 1),
        ("Model", 61, "downloadCount"): (1, 1),
        ("ModelVersion", 610, "downloadCount"): (1, 1),
    }


def test_jobs(pg: str, ch_client: Any, ch: dict[str, str], ch_db: str) -> None:
    fill_jobs(ch_client, ch)
    assert expected(pg, ch_client, "jobs", ch_tables=ch, lookup_db=ch_db) == {
        ("ModelVersion", 600, "generationCount"): (2, 2),
        ("ModelVersion", 601, "generationCount"): (1, 1),
        ("ModelVersion", 610, "generationCount"): (3, 3),  # j1, j4, j9
        ("ModelVersion", 9999, "generationCount"): (1, 1),
        ("Model", 60, "generationCount"): (3, 3),  # j1 x2, j2
        ("Model", 61, "generationCount"): (3, 3),  # j1, j4, j9
        ("Image", 100, "remixCount"): (1, 1),
        ("Image", 101, "remixCount"): (1, 1),
        ("Image", 777, "remixCount"): (1, 1),
        ("User", 2, "remixCount"): (1, 1),
        ("User", 3, "remixCount"): (1, 1),
    }


def test_jobs_blobs_value(pg: str, ch_client: Any, ch: dict[str, str], ch_db: str) -> None:
    # g = if(blobsCount > 0, blobsCount, 1): j1 4, j2 1, j3 2, j4 3, j9 1
    fill_jobs(ch_client, ch)
    assert expected(pg, ch_client, "jobs", ch_tables=ch, lookup_db=ch_db, generation_value="blobs") == {
        ("ModelVersion", 600, "generationCount"): (8, 2),  # j1: 2 elements x 4
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


def test_earnings_sept_2025_path(pg: str, ch_client: Any, ch: dict[str, str], ch_db: str) -> None:
    fill_buzz_resource_compensation(ch_client, ch)
    assert expected(
        pg,
        ch_client,
        "buzz_resource_compensation",
        ch_tables=ch,
        lookup_db=ch_db,
        earnings_source="buzz_resource_compensation",
    ) == {
        ("ModelVersion", 600, "earnedAmount"): (10 + 3, 2),
        ("ModelVersion", 601, "earnedAmount"): (5, 1),
        ("ModelVersion", 610, "earnedAmount"): (7 + 0, 2),
        ("ModelVersion", 9999, "earnedAmount"): (4, 1),
        ("Model", 60, "earnedAmount"): ((10 + 5) + 3, 2),  # one line per (day, model)
        ("Model", 61, "earnedAmount"): (7 + 0, 2),
    }


def test_earnings_today_path(pg: str, ch_client: Any, ch: dict[str, str], ch_db: str) -> None:
    fill_resource_compensations(ch_client, ch)
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
    fill_buzz_resource_compensation(ch_client, ch)
    fill_resource_compensations(ch_client, ch)
    assert expected(pg, ch_client, "earnings", ch_tables=ch, lookup_db=ch_db, earnings_source="split:2025-05-02") == {
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
        load_lookups(conn, ch_client, ch_db, batch_bytes=8)  # tiny batches: one insert per line or so
        load_lookups(conn, ch_client, ch_db)  # re-run replaces, never duplicates
    versions = ch_client.query(f"SELECT id, modelId FROM {ch_db}.pg_model_version ORDER BY id").result_rows
    images = ch_client.query(f"SELECT id, userId FROM {ch_db}.pg_image ORDER BY id").result_rows
    assert [tuple(r) for r in versions] == [(600, 60), (601, 60), (610, 61)]
    assert [tuple(r) for r in images] == [(100, 2), (101, 3), (102, 4)]
