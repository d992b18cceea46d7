"""The seeded source-data generator (metric_backfill._generate): determinism, edge cases, volumes.

One generation at scale 0.02 (seed 42) is shared by the module; the determinism and linearity tests
generate again into their own fresh databases. ClickHouse databases get unique names per
generation because the whole session shares one chDB engine.
"""

from __future__ import annotations

import os

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.resources import files
from typing import Any

import psycopg
import pytest

from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill.demo._embedded import EmbeddedPostgres
from metric_backfill.demo._generate import (
    CH_SOURCE_TABLES,
    DEFAULT_CUTOFF,
    SOURCE_EVENT_TABLES,
    generate,
)

SCALE = 0.02
CUTOFF = DEFAULT_CUTOFF
C = "TIMESTAMP '2025-10-01 00:00:00'"  # DEFAULT_CUTOFF as a PostgreSQL literal
CH_C = "toDateTime('2025-10-01 00:00:00', 'UTC')"

# Event tables of docs/sources.md with their event-time column (timestamp(3)).
PG_EVENT_TABLES = {
    "UserEngagement": "createdAt",
    "ImageReaction": "createdAt",
    "ArticleReaction": "createdAt",
    "BountyEntryReaction": "createdAt",
    "ResourceReview": "createdAt",
    "CollectionItem": "createdAt",
    "CollectionContributor": "createdAt",
    "Comment": "createdAt",
    "CommentV2": "createdAt",
    "BuzzTip": "createdAt",
    "TagEngagement": "createdAt",
    "BountyEngagement": "createdAt",
    "BountyBenefactor": "createdAt",
    "ComicProjectEngagement": "createdAt",
}
PG_PARENT_TABLES = (
    "User",
    "Model",
    "ModelVersion",
    "Post",
    "Image",
    "Article",
    "Bounty",
    "BountyEntry",
    "Collection",
    "Tag",
    "ComicProject",
    "ComicChapter",
)


@dataclass
class Generated:
    pg_url: str
    dbs: dict[str, str]
    counts: dict[str, int]

    def t(self, logical: str, table: str) -> str:
        return f"`{self.dbs[logical]}`.`{table}`"


def _new_dbs() -> dict[str, str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    return {"default": name, "orchestration": name + "_orch"}


def _generate(
    pg_server: EmbeddedPostgres,
    ch_client: Any,
    *,
    scale: float = SCALE,
    seed: int = 42,
    pg_settings: dict[str, str] | None = None,
) -> Generated:
    url = pg_server.create_database(f"t_{uuid.uuid4().hex[:10]}")
    if pg_settings:
        with psycopg.connect(url, autocommit=True) as conn:
            for key, value in pg_settings.items():
                conn.execute(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET {key} = {value}".encode())
    dbs = _new_dbs()
    counts = generate(url, _wrapped(ch_client), scale=scale, seed=seed, ch_databases=dbs)
    return Generated(url, dbs, counts)


def _wrapped(ch_client: Any) -> ClickHouse:
    """The tool's ClickHouse handle on the test's engine (the generator writes through it)."""
    return ClickHouse(os.environ.get("METRIC_BACKFILL_TEST_CLICKHOUSE_URL") or f"chdb://{ch_client.path}")


def _drop(ch_client: Any, gen: Generated) -> None:
    for db in gen.dbs.values():
        ch_client.command(f"DROP DATABASE IF EXISTS `{db}` SYNC")


@pytest.fixture(scope="module")
def gen(pg_server: EmbeddedPostgres, ch_client: Any) -> Iterator[Generated]:
    g = _generate(pg_server, ch_client)
    yield g
    _drop(ch_client, g)


def pg_scalar(gen: Generated, sql: str) -> Any:
    with psycopg.connect(gen.pg_url) as conn:
        row = conn.execute(sql.encode()).fetchone()
        return row[0] if row else None


def ch_scalar(ch_client: Any, sql: str) -> Any:
    return ch_client.query(sql, settings={"session_timezone": "UTC"}).result_rows[0][0]


# ----------------------------------------------------------------------------------------------
# Checksums
# ----------------------------------------------------------------------------------------------
def pg_checksums(url: str) -> dict[str, str]:
    """md5 over every table's rows in a total order (the row text itself)."""
    out: dict[str, str] = {}
    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()
        ]
        for t in tables:
            row = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) "
                f'FROM "{t}" x'.encode()
            ).fetchone()
            assert row is not None
            out[t] = f"{row[0]}:{row[1]}"
    return out


def ch_checksums(ch_client: Any, gen: Generated) -> dict[str, str]:
    """count() and the sum of a row hash over the stored rows (aggregate states finalized)."""
    out: dict[str, str] = {}
    for logical, table in CH_SOURCE_TABLES:
        if table == "daily_downloads_unique_mv":
            continue
        db = gen.dbs[logical]
        cols = ch_client.query(
            f"SELECT name, type FROM system.columns WHERE database = '{db}' AND table = '{table}' "
            f"AND default_kind != 'MATERIALIZED' ORDER BY position"
        ).result_rows
        exprs = [f"toString(finalizeAggregation({n}))" if t.startswith("AggregateFunction") else n for n, t in cols]
        # Through toString(tuple(...)): cityHash64 of a NULL argument is NULL and would drop the row.
        row = ch_client.query(
            f"SELECT count(), sum(cityHash64(toString(tuple({', '.join(exprs)})))) FROM `{db}`.`{table}`"
        ).result_rows[0]
        assert row[1] is not None
        out[table] = f"{row[0]}:{row[1]}"
    return out


# ----------------------------------------------------------------------------------------------
# (1) Determinism
# ----------------------------------------------------------------------------------------------
def test_same_seed_gives_identical_tables_and_another_seed_does_not(
    gen: Generated, pg_server: EmbeddedPostgres, ch_client: Any
) -> None:
    # The second run forces parallel plans wherever PostgreSQL can use them: contents must not care.
    parallel = {
        "max_parallel_workers_per_gather": "4",
        "parallel_setup_cost": "0",
        "parallel_tuple_cost": "0",
        "min_parallel_table_scan_size": "0",
        "min_parallel_index_scan_size": "0",
    }
    again = _generate(pg_server, ch_client, pg_settings=parallel)
    other = _generate(pg_server, ch_client, seed=43)
    try:
        first_pg, first_ch = pg_checksums(gen.pg_url), ch_checksums(ch_client, gen)
        assert len(first_pg) == 46 and len(first_ch) == 7
        assert pg_checksums(again.pg_url) == first_pg
        assert ch_checksums(ch_client, again) == first_ch
        assert again.counts == gen.counts

        other_pg, other_ch = pg_checksums(other.pg_url), ch_checksums(ch_client, other)
        changed_pg = [t for t in first_pg if other_pg[t] != first_pg[t]]
        changed_ch = [t for t in first_ch if other_ch[t] != first_ch[t]]
        assert changed_pg == list(first_pg)  # every table depends on the seed
        assert changed_ch == list(first_ch)
    finally:
        _drop(ch_client, again)
        _drop(ch_client, other)


# ----------------------------------------------------------------------------------------------
# (2) Edge cases: one exact count > 0 each
# ----------------------------------------------------------------------------------------------
PG_EDGE_CASES: dict[str, str] = {
    # CollectionItem
    "ci_null_added_by": 'SELECT count(*) FROM "CollectionItem" WHERE "addedById" IS NULL',
    "ci_null_created_at": 'SELECT count(*) FROM "CollectionItem" WHERE "createdAt" IS NULL',
    "ci_model_item": 'SELECT count(*) FROM "CollectionItem" WHERE "modelId" IS NOT NULL',
    "ci_post_item": 'SELECT count(*) FROM "CollectionItem" WHERE "postId" IS NOT NULL',
    "ci_image_item": 'SELECT count(*) FROM "CollectionItem" WHERE "imageId" IS NOT NULL',
    "ci_article_item": 'SELECT count(*) FROM "CollectionItem" WHERE "articleId" IS NOT NULL',
    "ci_model3d_only_item": 'SELECT count(*) FROM "CollectionItem" WHERE "model3dId" IS NOT NULL AND "modelId" IS NULL '
    'AND "postId" IS NULL AND "imageId" IS NULL AND "articleId" IS NULL',
    "ci_status_accepted": 'SELECT count(*) FROM "CollectionItem" WHERE "status" = \'ACCEPTED\'',
    "ci_status_review": 'SELECT count(*) FROM "CollectionItem" WHERE "status" = \'REVIEW\'',
    "ci_status_rejected": 'SELECT count(*) FROM "CollectionItem" WHERE "status" = \'REJECTED\'',
    "ci_null_adder_and_image": 'SELECT count(*) FROM "CollectionItem" WHERE "addedById" IS NULL AND "imageId" IS NOT NULL',
    # CollectionContributor
    "cc_view_only": 'SELECT count(*) FROM "CollectionContributor" WHERE "permissions" = \'{VIEW}\'',
    "cc_null_permissions": 'SELECT count(*) FROM "CollectionContributor" WHERE "permissions" IS NULL',
    "cc_empty_permissions": 'SELECT count(*) FROM "CollectionContributor" WHERE "permissions" = \'{}\'',
    "cc_add_review_only": 'SELECT count(*) FROM "CollectionContributor" WHERE "permissions" = \'{ADD_REVIEW}\'',
    "cc_add": 'SELECT count(*) FROM "CollectionContributor" WHERE \'ADD\' = ANY("permissions")',
    "cc_add_without_view": 'SELECT count(*) FROM "CollectionContributor" WHERE "permissions" = \'{ADD}\'',
    "cc_owner_manage_only": 'SELECT count(*) FROM "CollectionContributor" cc JOIN "Collection" c ON c."id" = cc."collectionId" '
    'AND c."userId" = cc."userId" WHERE cc."permissions" = \'{MANAGE}\'',
    "cc_null_created_at": 'SELECT count(*) FROM "CollectionContributor" WHERE "createdAt" IS NULL',
    # Article
    "article_null_created_at": 'SELECT count(*) FROM "Article" WHERE "createdAt" IS NULL',
    "article_published_null_created_at": 'SELECT count(*) FROM "Article" WHERE "createdAt" IS NULL AND "status" = \'Published\'',
    "article_published_null_published_at": 'SELECT count(*) FROM "Article" WHERE "status" = \'Published\' AND "publishedAt" IS NULL',
    "article_published_null_both": 'SELECT count(*) FROM "Article" WHERE "status" = \'Published\' AND "publishedAt" IS NULL '
    'AND "createdAt" IS NULL',
    "article_status_draft": 'SELECT count(*) FROM "Article" WHERE "status" = \'Draft\'',
    "article_status_published": 'SELECT count(*) FROM "Article" WHERE "status" = \'Published\'',
    "article_status_unpublished": 'SELECT count(*) FROM "Article" WHERE "status" = \'Unpublished\'',
    "article_status_violation": 'SELECT count(*) FROM "Article" WHERE "status" = \'UnpublishedViolation\'',
    "article_status_processing": 'SELECT count(*) FROM "Article" WHERE "status" = \'Processing\'',
    "article_published_after_cutoff": f'SELECT count(*) FROM "Article" WHERE "status" = \'Published\' AND "publishedAt" >= {C} '
    f'AND "createdAt" < {C}',
    # BuzzTip
    **{
        f"tip_type_{t}": f'SELECT count(*) FROM "BuzzTip" WHERE "entityType" = \'{t}\''
        for t in ("Image", "Model", "Article", "Post", "bountyEntry", "ComicProject", "ComicChapter", "Model3D")
    },
    "tip_only_exact_entity_types": 'SELECT 1 - count(*) FROM "BuzzTip" WHERE "entityType" NOT IN '
    "('Image', 'Model', 'Article', 'Post', 'bountyEntry', 'ComicProject', "
    "'ComicChapter', 'Model3D')",
    "tip_to_user_0": 'SELECT count(*) FROM "BuzzTip" WHERE "toUserId" = 0',
    "tip_from_user_0": 'SELECT count(*) FROM "BuzzTip" WHERE "fromUserId" = 0',
    "tip_amount_0": 'SELECT count(*) FROM "BuzzTip" WHERE "amount" = 0',
    "tip_amount_negative": 'SELECT count(*) FROM "BuzzTip" WHERE "amount" < 0',
    "tip_topped_up_after_cutoff": f'SELECT count(*) FROM "BuzzTip" WHERE "createdAt" < {C} AND "updatedAt" >= {C}',
    # Thread / CommentV2: root threads with comments, per kind
    **{
        f"thread_root_{col}_with_comments": f'SELECT count(*) FROM "Thread" t JOIN "CommentV2" c ON c."threadId" = t."id" '
        f'WHERE t."{col}" IS NOT NULL AND t."rootThreadId" IS NULL AND t."commentId" IS NULL'
        for col in (
            "postId",
            "imageId",
            "articleId",
            "bountyId",
            "modelId",
            "reviewId",
            "bountyEntryId",
            "comicProjectId",
            "questionId",
            "clubPostId",
        )
    },
    "thread_comic_chapter_position": 'SELECT count(*) FROM "Thread" WHERE "comicProjectId" IS NOT NULL '
    'AND "comicChapterPosition" IS NOT NULL',
    "thread_question_only": 'SELECT count(*) FROM "Thread" WHERE "questionId" IS NOT NULL AND num_nonnulls("postId", '
    '"imageId", "articleId", "bountyId", "modelId", "reviewId", "bountyEntryId", "commentId", '
    '"comicProjectId", "clubPostId") = 0',
    "thread_club_post_only": 'SELECT count(*) FROM "Thread" WHERE "clubPostId" IS NOT NULL AND num_nonnulls("postId", '
    '"imageId", "articleId", "bountyId", "modelId", "reviewId", "bountyEntryId", "commentId", '
    '"comicProjectId", "questionId") = 0',
    "thread_reply_with_comments": 'SELECT count(*) FROM "Thread" t JOIN "CommentV2" c ON c."threadId" = t."id" '
    'JOIN "Thread" r ON r."id" = t."rootThreadId" '
    'WHERE t."commentId" IS NOT NULL AND t."parentThreadId" IS NOT NULL '
    'AND num_nonnulls(t."postId", t."imageId", t."articleId", t."bountyId") = 0 '
    'AND num_nonnulls(r."postId", r."imageId", r."articleId", r."bountyId") = 1',
    "thread_nested_reply": 'SELECT count(*) FROM "Thread" t JOIN "CommentV2" c ON c."threadId" = t."id" '
    'WHERE t."parentThreadId" <> t."rootThreadId"',
    "thread_entity_deleted_with_comments": 'SELECT count(*) FROM "Thread" t JOIN "CommentV2" c ON c."threadId" = t."id" '
    'WHERE t."rootThreadId" IS NULL AND num_nonnulls(t."postId", t."imageId", t."articleId", t."bountyId", '
    't."modelId", t."reviewId", t."bountyEntryId", t."commentId", t."comicProjectId", t."questionId", '
    't."answerId", t."clubPostId", t."challengeId", t."model3dId", t."model3dReviewId", t."appListingId") = 0',
    "thread_image_missing": 'SELECT count(*) FROM "Thread" t WHERE t."imageId" IS NOT NULL '
    'AND NOT EXISTS (SELECT 1 FROM "Image" i WHERE i."id" = t."imageId")',
    "comment_v2_hidden": 'SELECT count(*) FROM "CommentV2" WHERE "hidden"',
    "comment_v2_tos": 'SELECT count(*) FROM "CommentV2" WHERE "tosViolation"',
    # Comment
    "comment_reply": 'SELECT count(*) FROM "Comment" c JOIN "Comment" p ON p."id" = c."parentId" AND p."modelId" = c."modelId"',
    "comment_tos": 'SELECT count(*) FROM "Comment" WHERE "tosViolation"',
    "comment_hidden": 'SELECT count(*) FROM "Comment" WHERE "hidden"',
    # Images and resources
    "image_without_post": 'SELECT count(*) FROM "Image" WHERE "postId" IS NULL',
    "image_reaction_orphan": 'SELECT count(*) FROM "ImageReaction" r WHERE NOT EXISTS '
    '(SELECT 1 FROM "Image" i WHERE i."id" = r."imageId")',
    "image_reaction_dislike": 'SELECT count(*) FROM "ImageReaction" WHERE "reaction" = \'Dislike\'',
    "image_reaction_on_post_image": 'SELECT count(*) FROM "ImageReaction" r JOIN "Image" i ON i."id" = r."imageId" '
    'WHERE i."postId" IS NOT NULL',
    "image_reaction_on_postless_image": 'SELECT count(*) FROM "ImageReaction" r JOIN "Image" i ON i."id" = r."imageId" '
    'WHERE i."postId" IS NULL',
    "irn_image_missing": 'SELECT count(*) FROM "ImageResourceNew" r WHERE NOT EXISTS '
    '(SELECT 1 FROM "Image" i WHERE i."id" = r."imageId")',
    "irn_version_missing": 'SELECT count(*) FROM "ImageResourceNew" r WHERE NOT EXISTS '
    '(SELECT 1 FROM "ModelVersion" v WHERE v."id" = r."modelVersionId")',
    "irn_two_versions_of_one_model": 'SELECT count(*) FROM (SELECT r."imageId", v."modelId" FROM "ImageResourceNew" r '
    'JOIN "ModelVersion" v ON v."id" = r."modelVersionId" '
    'JOIN "Image" i ON i."id" = r."imageId" GROUP BY 1, 2 HAVING count(*) >= 2) x',
    # ResourceReview
    "review_recommended": 'SELECT count(*) FROM "ResourceReview" WHERE "recommended"',
    "review_not_recommended": 'SELECT count(*) FROM "ResourceReview" WHERE NOT "recommended"',
    "review_flipped_after_cutoff": f'SELECT count(*) FROM "ResourceReview" WHERE "createdAt" < {C} AND "updatedAt" >= {C}',
    "review_exclude": 'SELECT count(*) FROM "ResourceReview" WHERE "exclude"',
    "review_tos": 'SELECT count(*) FROM "ResourceReview" WHERE "tosViolation"',
    "review_model_matches_version": 'SELECT 1 - count(*) FROM "ResourceReview" r JOIN "ModelVersion" v '
    'ON v."id" = r."modelVersionId" WHERE v."modelId" <> r."modelId"',
    # Engagements
    **{
        f"user_engagement_{t}": f'SELECT count(*) FROM "UserEngagement" WHERE "type" = \'{t}\''
        for t in ("Follow", "Hide", "Block")
    },
    **{
        f"tag_engagement_{t}": f'SELECT count(*) FROM "TagEngagement" WHERE "type" = \'{t}\''
        for t in ("Follow", "Hide", "Allow")
    },
    **{
        f"bounty_engagement_{t}": f'SELECT count(*) FROM "BountyEngagement" WHERE "type" = \'{t}\''
        for t in ("Favorite", "Track")
    },
    "bounty_engagement_both": 'SELECT count(*) FROM (SELECT "bountyId", "userId" FROM "BountyEngagement" '
    'GROUP BY 1, 2 HAVING count(DISTINCT "type") = 2) x',
    # Bounties
    "bounty_null_user": 'SELECT count(*) FROM "Bounty" WHERE "userId" IS NULL',
    "bounty_entry_null_user": 'SELECT count(*) FROM "BountyEntry" WHERE "userId" IS NULL',
    "bounty_entry_reaction_null_author": 'SELECT count(*) FROM "BountyEntryReaction" r JOIN "BountyEntry" e '
    'ON e."id" = r."bountyEntryId" WHERE e."userId" IS NULL',
    "benefactor_unit_amount_0": 'SELECT count(*) FROM "BountyBenefactor" WHERE "unitAmount" = 0',
    "benefactor_awarded_before_cutoff": f'SELECT count(*) FROM "BountyBenefactor" bb JOIN "BountyEntry" e '
    f'ON e."id" = bb."awardedToId" AND e."bountyId" = bb."bountyId" '
    f'WHERE bb."awardedAt" < {C}',
    "benefactor_awarded_after_cutoff": f'SELECT count(*) FROM "BountyBenefactor" WHERE "awardedToId" IS NOT NULL '
    f'AND "awardedAt" >= {C} AND "createdAt" < {C}',
    "benefactor_awarded_null_date": 'SELECT count(*) FROM "BountyBenefactor" WHERE "awardedToId" IS NOT NULL '
    'AND "awardedAt" IS NULL',
    "benefactor_updated_after_cutoff": f'SELECT count(*) FROM "BountyBenefactor" WHERE "createdAt" < {C} '
    f'AND "updatedAt" >= {C}',
    "benefactor_award_to_entry_of_same_bounty": 'SELECT 1 - count(*) FROM "BountyBenefactor" bb JOIN "BountyEntry" e '
    'ON e."id" = bb."awardedToId" WHERE e."bountyId" <> bb."bountyId"',
    # Comics
    **{
        f"comic_engagement_{t}": f'SELECT count(*) FROM "ComicProjectEngagement" WHERE "type" = \'{t}\''
        for t in ("None", "Notify", "Hide")
    },
    "comic_read_chapters_empty": 'SELECT count(*) FROM "ComicProjectEngagement" WHERE cardinality("readChapters") = 0',
    "comic_read_chapters_non_empty": 'SELECT count(*) FROM "ComicProjectEngagement" WHERE cardinality("readChapters") > 0',
    "comic_engagement_updated_after_cutoff": f'SELECT count(*) FROM "ComicProjectEngagement" WHERE "createdAt" < {C} '
    f'AND "updatedAt" >= {C}',
    "comic_chapter_read": 'SELECT count(*) FROM "ComicChapterRead"',
    # Post
    "post_unpublished": 'SELECT count(*) FROM "Post" WHERE "publishedAt" IS NULL',
    "post_published_before_cutoff": f'SELECT count(*) FROM "Post" WHERE "publishedAt" < {C}',
    "post_scheduled_after_cutoff": f'SELECT count(*) FROM "Post" WHERE "publishedAt" > {C} + INTERVAL \'1 day\'',
    "post_created_before_published_after": f'SELECT count(*) FROM "Post" WHERE "createdAt" < {C} AND "publishedAt" >= {C}',
    # ModelVersion
    **{
        f"model_version_{s}": f'SELECT count(*) FROM "ModelVersion" WHERE "status" = \'{s}\''
        for s in ("Published", "Scheduled", "Draft", "Unpublished")
    },
    "model_version_published_null_date": 'SELECT count(*) FROM "ModelVersion" WHERE "status" = \'Published\' '
    'AND "publishedAt" IS NULL',
    "model_version_scheduled_in_past": f'SELECT count(*) FROM "ModelVersion" WHERE "status" = \'Scheduled\' '
    f'AND "publishedAt" < {C}',
    "model_version_scheduled_in_future": f'SELECT count(*) FROM "ModelVersion" WHERE "status" = \'Scheduled\' '
    f'AND "publishedAt" >= {C}',
    "model_with_several_versions": 'SELECT count(*) FROM (SELECT "modelId" FROM "ModelVersion" GROUP BY 1 '
    "HAVING count(*) >= 2) x",
    # *Metric tables hold AllTime rows
    **{
        f"metric_rows_{t}": f'SELECT count(*) FROM "{t}"' + (" WHERE \"timeframe\" = 'AllTime'" if tf else "")
        for t, tf in (
            ("UserMetric", True),
            ("ModelVersionMetric", False),
            ("ModelMetric", False),
            ("PostMetric", True),
            ("ArticleMetric", True),
            ("CollectionMetric", True),
            ("TagMetric", True),
            ("BountyMetric", True),
            ("BountyEntryMetric", True),
            ("ComicProjectMetric", False),
        )
    },
    "metric_user_missing": 'SELECT count(*) FROM "User" u WHERE NOT EXISTS (SELECT 1 FROM "UserMetric" m '
    'WHERE m."userId" = u."id" AND m."timeframe" = \'AllTime\')',
    "metric_user_follower_stale": 'SELECT count(*) FROM "UserMetric" m JOIN (SELECT "targetUserId" AS id, count(*) AS c '
    'FROM "UserEngagement" WHERE "type" = \'Follow\' GROUP BY 1) t ON t.id = m."userId" '
    'WHERE m."timeframe" = \'AllTime\' AND m."followerCount" < t.c',
    "metric_user_follower_fresh": 'SELECT count(*) FROM "UserMetric" m JOIN (SELECT "targetUserId" AS id, count(*) AS c '
    'FROM "UserEngagement" WHERE "type" = \'Follow\' GROUP BY 1) t ON t.id = m."userId" '
    'WHERE m."timeframe" = \'AllTime\' AND m."followerCount" = t.c',
    "metric_version_downloads": 'SELECT count(*) FROM "ModelVersionMetric" WHERE "downloadCount" > 0',
    "metric_version_generations": 'SELECT count(*) FROM "ModelVersionMetric" WHERE "generationCount" > 0',
    "metric_version_earned": 'SELECT count(*) FROM "ModelVersionMetric" WHERE "earnedAmount" > 0',
    "metric_user_reactions": 'SELECT count(*) FROM "UserMetric" WHERE "reactionCount" > 0',
}


@pytest.mark.parametrize("name", list(PG_EDGE_CASES))
def test_postgres_edge_case_present(gen: Generated, name: str) -> None:
    assert pg_scalar(gen, PG_EDGE_CASES[name]) > 0, PG_EDGE_CASES[name]


@pytest.mark.parametrize("table", list(PG_EVENT_TABLES))
def test_event_rows_at_and_around_the_cutoff(gen: Generated, table: str) -> None:
    col = PG_EVENT_TABLES[table]
    at = pg_scalar(gen, f'SELECT count(*) FROM "{table}" WHERE "{col}" = {C}')
    before = pg_scalar(gen, f'SELECT count(*) FROM "{table}" WHERE "{col}" = {C} - INTERVAL \'1 millisecond\'')
    share = pg_scalar(gen, f'SELECT avg(("{col}" >= {C})::int) FROM "{table}" WHERE "{col}" IS NOT NULL')
    with_ms = pg_scalar(gen, f'SELECT count(*) FROM "{table}" WHERE date_trunc(\'second\', "{col}") <> "{col}"')
    assert at > 0 and before > 0
    assert 0.03 <= share <= 0.15, share
    assert with_ms > 0


@pytest.mark.parametrize("table", PG_PARENT_TABLES)
def test_parent_rows_after_the_cutoff(gen: Generated, table: str) -> None:
    share = pg_scalar(gen, f'SELECT avg(("createdAt" >= {C})::int) FROM "{table}" WHERE "createdAt" IS NOT NULL')
    assert 0.03 <= share <= 0.15, share


def test_unique_keys_hold_and_production_fks_are_absent(gen: Generated) -> None:
    dup = {
        "ImageReaction": '"imageId", "userId", "reaction"',
        "UserEngagement": '"userId", "targetUserId"',
        "BuzzTip": '"entityType", "entityId", "fromUserId"',
        "ResourceReview": '"modelVersionId", "userId"',
        "CollectionContributor": '"userId", "collectionId"',
        "ArticleReaction": '"articleId", "userId", "reaction"',
        "BountyEntryReaction": '"bountyEntryId", "userId", "reaction"',
        "TagEngagement": '"userId", "tagId"',
        "BountyEngagement": '"type", "bountyId", "userId"',
        "BountyBenefactor": '"bountyId", "userId"',
        "ComicProjectEngagement": '"userId", "projectId"',
        "ImageResourceNew": '"imageId", "modelVersionId"',
    }
    for table, key in dup.items():
        assert (
            pg_scalar(gen, f'SELECT count(*) FROM (SELECT {key} FROM "{table}" GROUP BY {key} HAVING count(*) > 1) x')
            == 0
        ), table
    fks = pg_scalar(gen, "SELECT array_agg(conname::text ORDER BY conname) FROM pg_constraint WHERE contype = 'f'")
    for missing in (
        "ImageReaction_imageId_fkey",
        "Thread_imageId_fkey",
        "ImageResourceNew_imageId_fkey",
        "ImageResourceNew_modelVersionId_fkey",
    ):
        assert missing not in fks
    assert "ImageReaction_userId_fkey" in fks and "Thread_commentId_fkey" in fks
    # All other declared foreign keys are back (and hold: they were validated when re-created).
    assert pg_scalar(gen, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated") == 0
    declared = (files("metric_backfill.demo") / "sql" / "postgres.sql").read_text().count("FOREIGN KEY")
    assert len(fks) == declared - 4


def _ch_edge_cases(g: Generated) -> dict[str, str]:
    mve, jobs = g.t("default", "modelVersionEvents"), g.t("orchestration", "jobs")
    brc, rc = g.t("default", "buzz_resource_compensation"), g.t("orchestration", "resourceCompensations")
    n_mv, n_img = g.counts["ModelVersion"], g.counts["Image"]
    return {
        "download_anonymous_with_ip": f"SELECT count() FROM {mve} WHERE type = 'Download' AND userId = 0 AND ip != ''",
        "download_user_minus_1": f"SELECT count() FROM {mve} WHERE type = 'Download' AND userId = -1",
        "download_user_490053": f"SELECT count() FROM {mve} WHERE type = 'Download' AND userId = 490053",
        "download_normal_user": f"SELECT count() FROM {mve} WHERE type = 'Download' AND userId > 0 AND userId != 490053",
        **{
            f"version_event_{t}": f"SELECT count() FROM {mve} WHERE type = '{t}'"
            for t in ("Create", "Publish", "Unpublish", "HideDownload")
        },
        "download_of_missing_version": f"SELECT count() FROM {mve} WHERE type = 'Download' AND modelVersionId > {n_mv}",
        "download_at_cutoff": f"SELECT count() FROM {mve} WHERE time = {CH_C}",
        "download_1s_before_cutoff": f"SELECT count() FROM {mve} WHERE time = {CH_C} - 1",
        **{
            f"job_type_{t}": f"SELECT count() FROM {jobs} WHERE jobType = '{t}'"
            for t in ("TextToImageV2", "TextToImage", "Comfy", "Training")
        },
        "job_user_0": f"SELECT count() FROM {jobs} WHERE userId = 0",
        "job_remix_null": f"SELECT count() FROM {jobs} WHERE remixOfId IS NULL",
        "job_remix_empty": f"SELECT count() FROM {jobs} WHERE remixOfId = ''",
        "job_remix_existing_image": f"SELECT count() FROM {jobs} WHERE toInt32OrZero(remixOfId) BETWEEN 1 AND {n_img}",
        "job_remix_missing_image": f"SELECT count() FROM {jobs} WHERE toInt32OrZero(remixOfId) > {n_img}",
        "job_remix_non_numeric": f"SELECT count() FROM {jobs} WHERE remixOfId != '' AND toInt32OrNull(remixOfId) IS NULL",
        "job_resources_duplicated": f"SELECT count() FROM {jobs} WHERE length(arrayDistinct(resourcesUsed)) < length(resourcesUsed)",
        "job_resources_empty": f"SELECT count() FROM {jobs} WHERE empty(resourcesUsed)",
        "job_resources_unknown_version": f"SELECT count() FROM {jobs} WHERE arrayExists(v -> v > {n_mv}, resourcesUsed)",
        "job_blobs_count_varied": f"SELECT uniqExact(blobsCount) - 2 FROM {jobs}",
        "job_at_cutoff": f"SELECT count() FROM {jobs} WHERE createdAt = toDateTime64('2025-10-01 00:00:00', 3, 'UTC')",
        "job_1ms_before_cutoff": f"SELECT count() FROM {jobs} WHERE createdAt = "
        f"toDateTime64('2025-09-30 23:59:59.999', 3, 'UTC')",
        "brc_several_versions_of_a_key": f"SELECT count() FROM (SELECT date, modelVersionId FROM {brc} "
        f"GROUP BY 1, 2 HAVING count() > 1)",
        "brc_final_picks_newest": f"SELECT count() FROM (SELECT date, modelVersionId, max(updated_at) AS m, "
        f"argMax(total, updated_at) AS t FROM {brc} GROUP BY 1, 2 HAVING count() > 1) a "
        f"JOIN (SELECT date, modelVersionId, updated_at, total FROM {brc} FINAL) f "
        f"USING (date, modelVersionId) WHERE f.updated_at = a.m AND f.total = a.t",
        "brc_unmerged_parts": f"SELECT count() - 1 FROM system.parts WHERE database = '{g.dbs['default']}' "
        f"AND table = 'buzz_resource_compensation' AND active",
        "brc_final_0": f"SELECT count() FROM {brc} WHERE final = 0",
        "brc_final_1": f"SELECT count() FROM {brc} WHERE final = 1",
        "brc_newest_not_final": f"SELECT count() FROM {brc} FINAL WHERE final = 0",
        "brc_whole_days": f"SELECT 1 - countIf(toStartOfDay(date) != date) FROM {brc}",
        "brc_unknown_version": f"SELECT count() FROM {brc} WHERE modelVersionId > {n_mv}",
        "rc_several_rows_per_key": f"SELECT count() FROM (SELECT date, modelVersionId, accountType, source FROM {rc} "
        f"GROUP BY ALL HAVING count() > 1)",
        "rc_unmerged_parts": f"SELECT count() - 1 FROM system.parts WHERE database = '{g.dbs['orchestration']}' "
        f"AND table = 'resourceCompensations' AND active",
        "rc_account_types": f"SELECT uniqExact(accountType) - 1 FROM {rc}",
        "rc_sources": f"SELECT uniqExact(source) - 1 FROM {rc}",
        "rc_fractional_amounts": f"SELECT count() FROM {rc} WHERE amount != floor(amount)",
        "rc_unknown_version": f"SELECT count() FROM {rc} WHERE modelVersionId > {n_mv}",
        "rc_days_after_cutoff": f"SELECT count() FROM {rc} WHERE date >= toDate('2025-10-01')",
        "generation_counts": f"SELECT count() FROM {g.t('orchestration', 'daily_resource_generation_counts')}",
        "downloads_unique_via_mv": f"SELECT count() FROM {g.t('default', 'daily_downloads_unique')}",
        "reactions_image_create": f"SELECT count() FROM {g.t('default', 'reactions')} WHERE type = 'Image_Create'",
        "reactions_image_delete": f"SELECT count() FROM {g.t('default', 'reactions')} WHERE type = 'Image_Delete'",
        "reactions_other_kinds": f"SELECT count() FROM {g.t('default', 'reactions')} "
        f"WHERE type NOT IN ('Image_Create', 'Image_Delete')",
        "reactions_owner_set": f"SELECT count() FROM {g.t('default', 'reactions')} WHERE ownerId > 0",
    }


CH_EDGE_CASE_NAMES = list(
    _ch_edge_cases(Generated("", {"default": "d", "orchestration": "o"}, {"ModelVersion": 1, "Image": 1}))
)


@pytest.mark.parametrize("name", CH_EDGE_CASE_NAMES)
def test_clickhouse_edge_case_present(gen: Generated, ch_client: Any, name: str) -> None:
    sql = _ch_edge_cases(gen)[name]
    assert ch_scalar(ch_client, sql) > 0, sql


def test_clickhouse_event_share_after_cutoff(gen: Generated, ch_client: Any) -> None:
    for table, col in (
        (gen.t("default", "modelVersionEvents"), "time"),
        (gen.t("orchestration", "jobs"), "createdAt"),
        (gen.t("default", "buzz_resource_compensation"), "date"),
        (gen.t("orchestration", "resourceCompensations"), "date"),
    ):
        share = ch_scalar(ch_client, f"SELECT avg({col} >= {CH_C}) FROM {table}")
        assert 0.03 <= share <= 0.15, (table, share)


def test_only_source_objects_are_created_in_the_mapped_databases(gen: Generated, ch_client: Any) -> None:
    rows = ch_client.query(
        f"SELECT database, name, create_table_query FROM system.tables "
        f"WHERE database IN ('{gen.dbs['default']}', '{gen.dbs['orchestration']}')"
    ).result_rows
    assert sorted((db, name) for db, name, _q in rows) == sorted(
        (gen.dbs[logical], name) for logical, name in CH_SOURCE_TABLES
    )
    mv = next(q for _db, name, q in rows if name == "daily_downloads_unique_mv")
    assert f"{gen.dbs['default']}.daily_downloads_unique" in mv.replace("`", "")
    assert f"FROM {gen.dbs['default']}.modelVersionEvents" in mv.replace("`", "")


# ----------------------------------------------------------------------------------------------
# (3) Counts and volume
# ----------------------------------------------------------------------------------------------
def test_returned_counts_match_the_tables(gen: Generated, ch_client: Any) -> None:
    actual = {}
    with psycopg.connect(gen.pg_url) as conn:
        for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall():
            actual[t] = conn.execute(f'SELECT count(*) FROM "{t}"'.encode()).fetchone()[0]  # type: ignore[index]
    for logical, name in CH_SOURCE_TABLES:
        if name != "daily_downloads_unique_mv":
            actual[f"ch:{name}"] = ch_scalar(ch_client, f"SELECT count() FROM {gen.t(logical, name)}")
    assert gen.counts == actual
    assert all(v > 0 for v in actual.values()), [k for k, v in actual.items() if not v]
    total = sum(gen.counts[t] for t in SOURCE_EVENT_TABLES)
    assert 0.30 <= gen.counts["ImageReaction"] / total <= 0.40
    assert 15_000 <= total <= 25_000  # scale 0.02 of ~1,000,000


def test_volume_is_linear_in_scale(gen: Generated, pg_server: EmbeddedPostgres, ch_client: Any) -> None:
    double = _generate(pg_server, ch_client, scale=2 * SCALE)
    try:
        small = sum(gen.counts[t] for t in SOURCE_EVENT_TABLES)
        large = sum(double.counts[t] for t in SOURCE_EVENT_TABLES)
        assert 2 * 0.75 <= large / small <= 2 * 1.25, (small, large)
    finally:
        _drop(ch_client, double)


def test_refuses_a_non_empty_database(gen: Generated, ch_client: Any) -> None:
    with pytest.raises(ValueError, match="empty"):
        generate(gen.pg_url, _wrapped(ch_client), scale=SCALE, ch_databases=_new_dbs())


def test_cutoff_moves_the_data(pg_server: EmbeddedPostgres, ch_client: Any) -> None:
    url = pg_server.create_database(f"t_{uuid.uuid4().hex[:10]}")
    dbs = _new_dbs()
    cutoff = datetime(2025, 3, 1)
    try:
        generate(url, _wrapped(ch_client), scale=SCALE, cutoff=cutoff, ch_databases=dbs)
        with psycopg.connect(url) as conn:
            row = conn.execute(
                'SELECT max("createdAt"), count(*) FILTER (WHERE "createdAt" = %s) FROM "ImageReaction"', (cutoff,)
            ).fetchone()
        assert row is not None
        assert row[0] <= cutoff + timedelta(days=60) and row[1] > 0
    finally:
        for db in dbs.values():
            ch_client.command(f"DROP DATABASE IF EXISTS `{db}` SYNC")
