"""The catalog: every source the live pipeline reacts to, declared once, as data.

Each `Source` holds the one query that reads a chunk of its rows, the column it is chunked on, and
its fan-out `Rule`s — one line per event the live pipeline writes for one row (docs/sources.md). The
same declarations compile to ClickHouse SQL (`_compile`), print as documentation (`plan`), and are
checked against the reference pair lists (`plan --check`).

Conventions inside a declaration:
- PostgreSQL queries take psycopg placeholders `%(lo)s`, `%(hi)s`, `%(cutoff)s`, `%(read_until)s`,
  `%(null_ts)s`, `%(etype)s` and return the columns listed in `columns` (a ClickHouse structure: the
  rows are streamed as text into ClickHouse, which does the fan-out). `read_until` bounds the rows
  read (the cutoff, or — netting against the live pipeline — past it: lines at or after the cutoff
  are then staged as counted drops, for the netting); `cutoff` is what drift flags compare with.
- ClickHouse queries take server-side parameters `{lo:…}`, `{hi:…}`, `{cutoff:…}`,
  `{cutoff_date:Date}` and `$name` placeholders for configured table names and lookups.
- Rule fields are ClickHouse expressions over those columns. `when` decides whether the rule
  applies to a row at all (docs/sources.md's `cond`); `requires` marks a parent lookup — a row that
  fails it is counted as a drop ("parent_missing"), as are lines that hit the live drop rule
  (entityId NULL, userId NULL or 0) and lines dated at or after the cutoff.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from metric_backfill.catalog._model import BUZZTIP_ENTITY_TYPES, REACTIONS, ChunkBy, Lookup, Pair, Rule, Source, Values

__all__ = ["CATALOG", "EARNINGS_PAIRS", "pairs_of", "routes_to_earnings_table", "source_by_name"]


def _rx(entity: str, eid: str, **kw: Any) -> Rule:
    """The reaction line: metricType is the reaction verbatim (Like, never ReactionLike: T8)."""
    return Rule(entity_type=entity, entity_id=eid, user_id="userId", metric=Values("reaction", REACTIONS), **kw)


# ---------------------------------------------------------------------------------------------
# PostgreSQL sources (docs/sources.md §1–§20)
# ---------------------------------------------------------------------------------------------

USER_ENGAGEMENT = Source(
    name="UserEngagement",
    engine="pg",
    query="""SELECT ue."userId", ue."targetUserId", ue."type"::text AS type, ue."createdAt" AS ts
FROM "UserEngagement" ue
WHERE ue."userId" >= %(lo)s AND ue."userId" < %(hi)s
  AND ue."type" IN ('Follow', 'Hide')
  AND ue."createdAt" < %(read_until)s""",
    columns="userId Int32, targetUserId Int32, type String, ts DateTime64(3)",
    chunk=ChunkBy("UserEngagement", "userId"),
    rules=(
        Rule(entity_type="User", entity_id="userId", user_id="userId", metric="followingCount", when="type = 'Follow'"),
        Rule(
            entity_type="User",
            entity_id="targetUserId",
            user_id="userId",
            metric="followerCount",
            when="type = 'Follow'",
        ),
        Rule(
            entity_type="User", entity_id="targetUserId", user_id="userId", metric="hiddenCount", when="type = 'Hide'"
        ),
    ),
    notes="Block rows emit nothing; the current type is replayed (Follow<->Hide flips are lost, T14).",
)

IMAGE_REACTION = Source(
    name="ImageReaction",
    engine="pg",
    query="""SELECT r."id", r."imageId", r."userId", r."reaction"::text AS reaction, r."createdAt" AS ts,
       (i."id" IS NOT NULL)::int AS image_found, i."postId", i."userId" AS "ownerId"
FROM "ImageReaction" r
LEFT JOIN "Image" i ON i."id" = r."imageId"
WHERE r."id" >= %(lo)s AND r."id" < %(hi)s
  AND r."createdAt" < %(read_until)s""",
    columns=(
        "id Int32, imageId Int32, userId Int32, reaction String, ts DateTime64(3), "
        "image_found UInt8, postId Nullable(Int32), ownerId Nullable(Int32)"
    ),
    chunk=ChunkBy("ImageReaction", "id"),
    rules=(
        _rx("Image", "imageId"),
        # No `when` on the Post lines: an image without a post is a counted drop (entity_null),
        # as docs/sources.md lists it, and an orphan reaction a parent_missing one.
        _rx("Post", "postId", requires="image_found"),
        Rule(entity_type="Post", entity_id="postId", user_id="userId", metric="reactionCount", requires="image_found"),
        Rule(entity_type="User", entity_id="ownerId", user_id="userId", metric="reactionCount", requires="image_found"),
    ),
    notes="The Image line is emitted for orphans too; no Image.reactionCount; Dislike counts.",
)

ARTICLE_REACTION = Source(
    name="ArticleReaction",
    engine="pg",
    query="""SELECT r."id", r."articleId", r."userId", r."reaction"::text AS reaction, r."createdAt" AS ts,
       (a."id" IS NOT NULL)::int AS article_found, a."userId" AS "ownerId"
FROM "ArticleReaction" r
LEFT JOIN "Article" a ON a."id" = r."articleId"
WHERE r."id" >= %(lo)s AND r."id" < %(hi)s
  AND r."createdAt" < %(read_until)s""",
    columns=(
        "id Int32, articleId Int32, userId Int32, reaction String, ts DateTime64(3), "
        "article_found UInt8, ownerId Nullable(Int32)"
    ),
    chunk=ChunkBy("ArticleReaction", "id"),
    rules=(
        _rx("Article", "articleId"),
        Rule(
            entity_type="User", entity_id="ownerId", user_id="userId", metric="reactionCount", requires="article_found"
        ),
    ),
)

BOUNTY_ENTRY_REACTION = Source(
    name="BountyEntryReaction",
    engine="pg",
    query="""SELECT r."bountyEntryId", r."userId", r."reaction"::text AS reaction, r."createdAt" AS ts,
       (be."id" IS NOT NULL)::int AS entry_found, be."userId" AS "ownerId"
FROM "BountyEntryReaction" r
LEFT JOIN "BountyEntry" be ON be."id" = r."bountyEntryId"
WHERE r."bountyEntryId" >= %(lo)s AND r."bountyEntryId" < %(hi)s
  AND r."createdAt" < %(read_until)s""",
    columns=(
        "bountyEntryId Int32, userId Int32, reaction String, ts DateTime64(3), "
        "entry_found UInt8, ownerId Nullable(Int32)"
    ),
    chunk=ChunkBy("BountyEntryReaction", "bountyEntryId"),
    rules=(
        _rx("BountyEntry", "bountyEntryId"),
        Rule(entity_type="User", entity_id="ownerId", user_id="userId", metric="reactionCount", requires="entry_found"),
    ),
    notes="The User line needs an entry author (SET NULL when the author is deleted).",
)

ARTICLE_STATUS = Source(
    name="Article",
    engine="pg",
    query="""SELECT a."id", a."userId", COALESCE(a."publishedAt", a."createdAt", %(null_ts)s) AS ts
FROM "Article" a
WHERE a."id" >= %(lo)s AND a."id" < %(hi)s
  AND a."status" = 'Published'
  AND COALESCE(a."publishedAt", a."createdAt", %(null_ts)s) < %(read_until)s""",
    columns="id Int32, userId Int32, ts DateTime64(3)",
    chunk=ChunkBy("Article", "id"),
    rules=(Rule(entity_type="User", entity_id="userId", user_id="userId", metric="articleCount"),),
    base_ts="COALESCE(publishedAt, createdAt, :null_ts)",
    null_ts_table="Article",
    notes="Transition into Published (R2): one +1 per article whose status is Published now.",
)

RESOURCE_REVIEW = Source(
    name="ResourceReview",
    engine="pg",
    query="""SELECT rr."id", rr."modelId", rr."modelVersionId", rr."userId", rr."recommended"::int AS recommended,
       rr."createdAt" AS ts, (rr."updatedAt" >= %(cutoff)s)::int AS drifted
FROM "ResourceReview" rr
WHERE rr."id" >= %(lo)s AND rr."id" < %(hi)s
  AND rr."createdAt" < %(read_until)s""",
    columns=(
        "id Int32, modelId Int32, modelVersionId Int32, userId Int32, recommended UInt8, "
        "ts DateTime64(3), drifted UInt8"
    ),
    chunk=ChunkBy("ResourceReview", "id"),
    rules=tuple(
        Rule(entity_type=entity, entity_id=eid, user_id="userId", metric=metric)
        for entity, eid in (("Model", "modelId"), ("ModelVersion", "modelVersionId"))
        for metric in (
            Values("if(recommended = 1, 'thumbsUpCount', 'thumbsDownCount')", ("thumbsUpCount", "thumbsDownCount")),
            "ratingCount",
        )
    ),
    drift="drifted",
    notes="exclude/tosViolation/rating ignored; drifted = updatedAt >= cutoff (possible live flip, T13).",
)

COLLECTION_ITEM = Source(
    name="CollectionItem",
    engine="pg",
    query="""SELECT ci."id", ci."collectionId", ci."modelId", ci."postId", ci."imageId", ci."articleId",
       ci."addedById", COALESCE(ci."createdAt", %(null_ts)s) AS ts
FROM "CollectionItem" ci
WHERE ci."id" >= %(lo)s AND ci."id" < %(hi)s
  AND COALESCE(ci."createdAt", %(null_ts)s) < %(read_until)s""",
    columns=(
        "id Int32, collectionId Int32, modelId Nullable(Int32), postId Nullable(Int32), "
        "imageId Nullable(Int32), articleId Nullable(Int32), addedById Nullable(Int32), ts DateTime64(3)"
    ),
    chunk=ChunkBy("CollectionItem", "id"),
    rules=(
        Rule(entity_type="Collection", entity_id="collectionId", user_id="addedById", metric="itemCount"),
        Rule(
            entity_type="Model",
            entity_id="modelId",
            user_id="addedById",
            metric="collectedCount",
            when="modelId IS NOT NULL",
        ),
        Rule(
            entity_type="Post",
            entity_id="postId",
            user_id="addedById",
            metric="collectedCount",
            when="postId IS NOT NULL",
        ),
        Rule(
            entity_type="Image",
            entity_id="imageId",
            user_id="addedById",
            metric="Collection",
            when="imageId IS NOT NULL",
        ),
        Rule(
            entity_type="Article",
            entity_id="articleId",
            user_id="addedById",
            metric="collectedCount",
            when="articleId IS NOT NULL",
        ),
    ),
    base_ts="COALESCE(createdAt, :null_ts)",
    null_ts_table="CollectionItem",
    notes="NULL addedById drops every line, itemCount included; status ignored; model3dId items give itemCount only.",
)

COLLECTION_CONTRIBUTOR = Source(
    name="CollectionContributor",
    engine="pg",
    query="""SELECT cc."userId", cc."collectionId",
       COALESCE(cc."permissions" && ARRAY['ADD','ADD_REVIEW','MANAGE']::"CollectionContributorPermission"[], false)::int
         AS is_contributor,
       COALESCE(cc."createdAt", %(null_ts)s) AS ts
FROM "CollectionContributor" cc
WHERE cc."userId" >= %(lo)s AND cc."userId" < %(hi)s
  AND COALESCE(cc."createdAt", %(null_ts)s) < %(read_until)s""",
    columns="userId Int32, collectionId Int32, is_contributor UInt8, ts DateTime64(3)",
    chunk=ChunkBy("CollectionContributor", "userId"),
    rules=(
        Rule(entity_type="Collection", entity_id="collectionId", user_id="userId", metric="followerCount"),
        Rule(
            entity_type="Collection",
            entity_id="collectionId",
            user_id="userId",
            metric="contributorCount",
            when="is_contributor = 1",
        ),
    ),
    base_ts="COALESCE(createdAt, :null_ts)",
    null_ts_table="CollectionContributor",
    notes="followerCount for every row (VIEW-only and the owner's MANAGE row too); contributor = any non-VIEW permission.",
)

COMMENT = Source(
    name="Comment",
    engine="pg",
    query="""SELECT c."id", c."modelId", c."userId", c."createdAt" AS ts
FROM "Comment" c
WHERE c."id" >= %(lo)s AND c."id" < %(hi)s
  AND c."createdAt" < %(read_until)s""",
    columns="id Int32, modelId Int32, userId Int32, ts DateTime64(3)",
    chunk=ChunkBy("Comment", "id"),
    rules=(Rule(entity_type="Model", entity_id="modelId", user_id="userId", metric="commentCount"),),
    notes="Replies, hidden and TOS comments included.",
)

COMMENT_V2 = Source(
    name="CommentV2",
    engine="pg",
    query="""SELECT c."id", c."userId", c."createdAt" AS ts,
       COALESCE(r."postId",    t."postId")    AS "postId",
       COALESCE(r."imageId",   t."imageId")   AS "imageId",
       COALESCE(r."articleId", t."articleId") AS "articleId",
       COALESCE(r."bountyId",  t."bountyId")  AS "bountyId"
FROM "CommentV2" c
JOIN "Thread" t      ON t."id" = c."threadId"
LEFT JOIN "Thread" r ON r."id" = t."rootThreadId"
WHERE c."id" >= %(lo)s AND c."id" < %(hi)s
  AND c."createdAt" < %(read_until)s""",
    columns=(
        "id Int32, userId Int32, ts DateTime64(3), postId Nullable(Int32), imageId Nullable(Int32), "
        "articleId Nullable(Int32), bountyId Nullable(Int32)"
    ),
    chunk=ChunkBy("CommentV2", "id"),
    rules=tuple(
        Rule(entity_type=entity, entity_id=col, user_id="userId", metric="commentCount", when=f"{col} IS NOT NULL")
        for entity, col in (("Post", "postId"), ("Image", "imageId"), ("Article", "articleId"), ("Bounty", "bountyId"))
    ),
    notes="Entity from the root thread (replies count); other thread kinds emit nothing.",
)

IMAGE_RESOURCE = Source(
    name="ImageResourceNew",
    engine="pg",
    # LEFT JOIN instead of docs/sources.md's inner join: identical events, but orphans (no Image row)
    # come through flagged so they are counted as drops instead of vanishing.
    query="""SELECT ir."imageId", ir."modelVersionId", i."userId" AS "ownerId", mv."modelId",
       (i."id" IS NOT NULL)::int AS image_found, (mv."id" IS NOT NULL)::int AS version_found,
       COALESCE(i."createdAt", %(cutoff)s) AS ts
FROM "ImageResourceNew" ir
LEFT JOIN "Image" i         ON i."id"  = ir."imageId"
LEFT JOIN "ModelVersion" mv ON mv."id" = ir."modelVersionId"
WHERE ir."imageId" >= %(lo)s AND ir."imageId" < %(hi)s
  AND (i."createdAt" < %(read_until)s OR i."id" IS NULL)""",
    columns=(
        "imageId Int32, modelVersionId Int32, ownerId Nullable(Int32), modelId Nullable(Int32), "
        "image_found UInt8, version_found UInt8, ts DateTime64(3)"
    ),
    chunk=ChunkBy("ImageResourceNew", "imageId"),
    rules=(
        Rule(
            entity_type="ModelVersion",
            entity_id="modelVersionId",
            user_id="ownerId",
            metric="imageCount",
            requires="image_found",
        ),
        Rule(
            entity_type="Model",
            entity_id="modelId",
            user_id="ownerId",
            metric="imageCount",
            requires="image_found AND version_found",
        ),
    ),
    base_ts="Image.createdAt",
    notes="userId is the image owner; two versions of one model on an image add 2 to Model.imageCount.",
)

_POSITIVE_TIP = (("amount > 0", "amount_not_positive"),)

BUZZ_TIP = Source(
    name="BuzzTip",
    engine="pg",
    query="""SELECT bt."entityType", bt."entityId", bt."toUserId", bt."fromUserId", bt."amount",
       bt."createdAt" AS ts, (bt."updatedAt" >= %(cutoff)s)::int AS drifted
FROM "BuzzTip" bt
WHERE bt."entityType" = %(etype)s
  AND bt."entityId" >= %(lo)s AND bt."entityId" < %(hi)s
  AND bt."createdAt" < %(read_until)s""",
    columns=(
        "entityType String, entityId Int32, toUserId Int32, fromUserId Int32, amount Int32, "
        "ts DateTime64(3), drifted UInt8"
    ),
    chunk=ChunkBy("BuzzTip", "entityId", partition="entityType"),
    rules=tuple(
        Rule(entity_type=entity, entity_id=eid, user_id="fromUserId", metric=metric, value=value, guards=_POSITIVE_TIP)
        for entity, eid in (
            (Values("entityType", BUZZTIP_ENTITY_TYPES, dynamic=True), "entityId"),
            ("User", "toUserId"),
        )
        for metric, value in (("tippedCount", "1"), ("tippedAmount", "amount"))
    )
    + tuple(
        Rule(
            entity_type="User",
            entity_id="fromUserId",
            user_id="fromUserId",
            metric=metric,
            value=value,
            guards=_POSITIVE_TIP,
        )
        for metric, value in (("tipsGivenCount", "1"), ("tipsGivenAmount", "amount"))
    ),
    drift="drifted",
    notes="entityType verbatim (bountyEntry, ComicProject: T7); current accumulated amount; toUserId 0 kept.",
)

TAG_ENGAGEMENT = Source(
    name="TagEngagement",
    engine="pg",
    query="""SELECT te."userId", te."tagId", te."type"::text AS type, te."createdAt" AS ts
FROM "TagEngagement" te
WHERE te."userId" >= %(lo)s AND te."userId" < %(hi)s
  AND te."type" IN ('Follow', 'Hide')
  AND te."createdAt" < %(read_until)s""",
    columns="userId Int32, tagId Int32, type String, ts DateTime64(3)",
    chunk=ChunkBy("TagEngagement", "userId"),
    rules=(
        Rule(entity_type="Tag", entity_id="tagId", user_id="userId", metric="followerCount", when="type = 'Follow'"),
        Rule(entity_type="Tag", entity_id="tagId", user_id="userId", metric="hiddenCount", when="type = 'Hide'"),
    ),
)

BOUNTY_ENGAGEMENT = Source(
    name="BountyEngagement",
    engine="pg",
    query="""SELECT be."bountyId", be."userId", be."type"::text AS type, be."createdAt" AS ts
FROM "BountyEngagement" be
WHERE be."bountyId" >= %(lo)s AND be."bountyId" < %(hi)s
  AND be."createdAt" < %(read_until)s""",
    columns="bountyId Int32, userId Int32, type String, ts DateTime64(3)",
    chunk=ChunkBy("BountyEngagement", "bountyId"),
    rules=(
        Rule(
            entity_type="Bounty",
            entity_id="bountyId",
            user_id="userId",
            metric="favoriteCount",
            when="type = 'Favorite'",
        ),
        Rule(entity_type="Bounty", entity_id="bountyId", user_id="userId", metric="trackCount", when="type = 'Track'"),
    ),
)

BOUNTY = Source(
    name="Bounty",
    engine="pg",
    query="""SELECT b."id", b."userId", b."createdAt" AS ts
FROM "Bounty" b
WHERE b."id" >= %(lo)s AND b."id" < %(hi)s
  AND b."createdAt" < %(read_until)s""",
    columns="id Int32, userId Nullable(Int32), ts DateTime64(3)",
    chunk=ChunkBy("Bounty", "id"),
    rules=(Rule(entity_type="User", entity_id="userId", user_id="userId", metric="bountyCount"),),
    notes="Owner deleted (NULL userId): dropped.",
)

BOUNTY_ENTRY = Source(
    name="BountyEntry",
    engine="pg",
    query="""SELECT be."id", be."bountyId", be."userId", be."createdAt" AS ts
FROM "BountyEntry" be
WHERE be."id" >= %(lo)s AND be."id" < %(hi)s
  AND be."createdAt" < %(read_until)s""",
    columns="id Int32, bountyId Int32, userId Nullable(Int32), ts DateTime64(3)",
    chunk=ChunkBy("BountyEntry", "id"),
    rules=(Rule(entity_type="Bounty", entity_id="bountyId", user_id="userId", metric="entryCount"),),
    notes="Entrant deleted (NULL userId): dropped (the processors still count it).",
)

BOUNTY_BENEFACTOR = Source(
    name="BountyBenefactor",
    engine="pg",
    query="""SELECT bb."bountyId", bb."userId", bb."unitAmount", bb."createdAt" AS ts,
       bb."awardedToId", COALESCE(bb."awardedAt", bb."updatedAt") AS award_ts,
       (bb."updatedAt" >= %(cutoff)s)::int AS drifted
FROM "BountyBenefactor" bb
WHERE bb."bountyId" >= %(lo)s AND bb."bountyId" < %(hi)s
  AND bb."createdAt" < %(read_until)s""",
    columns=(
        "bountyId Int32, userId Int32, unitAmount Int32, ts DateTime64(3), "
        "awardedToId Nullable(Int32), award_ts DateTime64(3), drifted UInt8"
    ),
    chunk=ChunkBy("BountyBenefactor", "bountyId"),
    rules=(
        Rule(entity_type="Bounty", entity_id="bountyId", user_id="userId", metric="benefactorCount"),
        Rule(entity_type="Bounty", entity_id="bountyId", user_id="userId", metric="unitAmount", value="unitAmount"),
        Rule(
            entity_type="BountyEntry",
            entity_id="awardedToId",
            user_id="userId",
            metric="unitAmount",
            value="unitAmount",
            when="awardedToId IS NOT NULL",
            ts="award_ts",
        ),
    ),
    drift="drifted",
    notes="The award line is dated at the award and tested against the cutoff per line; 0 amounts are written.",
)

COMIC_ENGAGEMENT = Source(
    name="ComicProjectEngagement",
    engine="pg",
    query="""SELECT e."userId", e."projectId", e."type"::text AS type, $read_len AS read_len,
       e."createdAt" AS ts, (e."updatedAt" >= %(cutoff)s)::int AS drifted
FROM "ComicProjectEngagement" e
WHERE e."userId" >= %(lo)s AND e."userId" < %(hi)s
  AND e."createdAt" < %(read_until)s""",
    columns="userId Int32, projectId Int32, type String, read_len Int32, ts DateTime64(3), drifted UInt8",
    chunk=ChunkBy("ComicProjectEngagement", "userId"),
    rules=(
        Rule(
            entity_type="Comic", entity_id="projectId", user_id="userId", metric="followerCount", when="type = 'Notify'"
        ),
        Rule(entity_type="Comic", entity_id="projectId", user_id="userId", metric="hiddenCount", when="type = 'Hide'"),
        Rule(entity_type="Comic", entity_id="projectId", user_id="userId", metric="readerCount", when="read_len > 0"),
        Rule(
            entity_type="Comic",
            entity_id="projectId",
            user_id="userId",
            metric="chapterReadCount",
            value="read_len",
            when="read_len > 0",
        ),
    ),
    optional_columns={
        "read_len": ("ComicProjectEngagement.readChapters", 'COALESCE(cardinality(e."readChapters"), 0)', "0")
    },
    default_off=True,
    drift="drifted",
    notes="Optional: Comic counters are displayed from PostgreSQL. readChapters is production-only.",
)

POST_PUBLISHED = Source(
    name="Post",
    engine="pg",
    query="""SELECT p."id", p."userId", p."publishedAt" AS ts
FROM "Post" p
WHERE p."id" >= %(lo)s AND p."id" < %(hi)s
  AND p."publishedAt" < %(read_until)s""",
    columns="id Int32, userId Int32, ts DateTime64(3)",
    chunk=ChunkBy("Post", "id"),
    rules=(Rule(entity_type="User", entity_id="userId", user_id="userId", metric="postCount"),),
    base_ts="publishedAt",
    notes="Outbox transition into published (R2); scheduled posts (future publishedAt) fall after the cutoff (T11).",
)

VERSION_PUBLISHED = Source(
    name="ModelVersion",
    engine="pg",
    query="""SELECT mv."id", m."userId", COALESCE(mv."publishedAt", mv."createdAt") AS ts
FROM "ModelVersion" mv
JOIN "Model" m ON m."id" = mv."modelId"
WHERE mv."id" >= %(lo)s AND mv."id" < %(hi)s
  AND mv."status" = 'Published'
  AND COALESCE(mv."publishedAt", mv."createdAt") < %(read_until)s""",
    columns="id Int32, userId Int32, ts DateTime64(3)",
    chunk=ChunkBy("ModelVersion", "id"),
    rules=(Rule(entity_type="User", entity_id="userId", user_id="userId", metric="uploadCount"),),
    base_ts="COALESCE(publishedAt, createdAt)",
    notes="Outbox transition into Published (R2), credited to today's model owner; Scheduled not counted.",
)

# ---------------------------------------------------------------------------------------------
# ClickHouse sources (docs/sources.md §21–§24): they never leave ClickHouse (INSERT … SELECT).
# ---------------------------------------------------------------------------------------------

_MV_MODEL = Lookup("version_model", "", 'SELECT "id", "modelId" FROM "ModelVersion" WHERE "id" = ANY(%(ids)s)')

DOWNLOADS = Source(
    name="modelVersionEvents",
    engine="ch",
    query="""SELECT modelId, modelVersionId, userId, toDateTime64(time, 3, 'UTC') AS ts
FROM $modelVersionEvents
WHERE type = 'Download'
  AND userId NOT IN (-1, 490053)
  AND time >= {lo:DateTime64(3, 'UTC')} AND time < {hi:DateTime64(3, 'UTC')}
  AND time < {cutoff:DateTime64(3, 'UTC')}""",
    chunk=ChunkBy("$modelVersionEvents", "time", kind="time"),
    rules=(
        Rule(entity_type="Model", entity_id="modelId", user_id="userId", metric="downloadCount"),
        Rule(entity_type="ModelVersion", entity_id="modelVersionId", user_id="userId", metric="downloadCount"),
    ),
    base_ts="time",
    notes="Anonymous (userId 0) dropped by the rule; -1 and 490053 filtered before the pipeline.",
)

_JOBS_BASE = """SELECT userId, remixOfId, toInt32OrNull(remixOfId) AS remixImageId, resourcesUsed, blobsCount,
       createdAt AS ts
FROM $jobs
WHERE jobType IN ('TextToImageV2', 'TextToImage', 'Comfy')
  AND createdAt >= {lo:DateTime64(3, 'UTC')} AND createdAt < {hi:DateTime64(3, 'UTC')}
  AND createdAt < {cutoff:DateTime64(3, 'UTC')}"""

JOBS = Source(
    name="jobs",
    engine="ch",
    # One row per job (kind 'job', remix lines) plus one per element of resourcesUsed (kind
    # 'resource', generation lines; duplicates kept), joined to the per-chunk PostgreSQL lookups.
    query="""SELECT j.userId AS userId, j.kind AS kind, j.remixOfId AS remixOfId, j.remixImageId AS remixImageId,
       img.value AS remixOwnerId, isNotNull(img.value) AS image_found,
       j.versionId AS versionId, mv.value AS modelId, isNotNull(mv.value) AS version_found,
       $generation_value AS g, j.ts AS ts
FROM (
    SELECT userId, remixOfId, remixImageId, blobsCount, ts, el.1 AS kind, el.2 AS versionId
    FROM ("""
    + _JOBS_BASE
    + """) AS b
    ARRAY JOIN arrayConcat([tuple('job', CAST(NULL AS Nullable(Int32)))],
                           arrayMap(v -> tuple('resource', toNullable(v)), resourcesUsed)) AS el
) AS j
LEFT JOIN ($lookup_image_owner) AS img ON img.key = j.remixImageId
LEFT JOIN ($lookup_version_model) AS mv ON mv.key = j.versionId""",
    settings={"join_use_nulls": 1},
    chunk=ChunkBy("$jobs", "createdAt", kind="time"),
    rules=(
        Rule(
            entity_type="Image",
            entity_id="remixImageId",
            user_id="userId",
            metric="remixCount",
            value="g",
            when="kind = 'job' AND ifNull(remixOfId, '') != ''",
            requires="remixImageId IS NOT NULL",
            requires_reason="remix_id_not_numeric",
        ),
        Rule(
            entity_type="User",
            entity_id="remixOwnerId",
            user_id="userId",
            metric="remixCount",
            value="g",
            when="kind = 'job' AND ifNull(remixOfId, '') != ''",
            guards=(("remixImageId IS NOT NULL", "remix_id_not_numeric"),),
            requires="image_found",
        ),
        Rule(
            entity_type="ModelVersion",
            entity_id="versionId",
            user_id="userId",
            metric="generationCount",
            value="g",
            when="kind = 'resource'",
        ),
        Rule(
            entity_type="Model",
            entity_id="modelId",
            user_id="userId",
            metric="generationCount",
            value="g",
            when="kind = 'resource'",
            requires="version_found",
        ),
    ),
    lookups=(
        Lookup("image_owner", "remixImageId", 'SELECT "id", "userId" FROM "Image" WHERE "id" = ANY(%(ids)s)'),
        Lookup("version_model", "arrayJoin(resourcesUsed)", _MV_MODEL.pg_sql),
    ),
    keys_from=_JOBS_BASE,
    notes="Value 1 per job and resource (the live stream lacks blobsCount, T23); unknown versions still get ModelVersion lines.",
)

_EARNINGS_ROLLUP = """
SELECT 'version' AS grain, day, modelVersionId, CAST(NULL AS Nullable(Int32)) AS modelId,
       toInt64(earned) AS earned, 1 AS version_found
FROM v
UNION ALL
SELECT 'model', v.day, NULL, mv.value, toInt64(sum(v.earned)), 1
FROM v INNER JOIN ($lookup_version_model) AS mv ON mv.key = v.modelVersionId
GROUP BY v.day, mv.value
UNION ALL
SELECT 'model', v.day, NULL, NULL, toInt64(v.earned), 0
FROM v LEFT ANTI JOIN ($lookup_version_model) AS mv ON mv.key = v.modelVersionId"""

_EARNINGS_RULES = (
    Rule(
        entity_type="ModelVersion",
        entity_id="modelVersionId",
        user_id="0",
        metric="earnedAmount",
        value="earned",
        ts="toDateTime64(day, 3, 'UTC')",
        when="grain = 'version'",
        user_rule=False,
    ),
    Rule(
        entity_type="Model",
        entity_id="modelId",
        user_id="0",
        metric="earnedAmount",
        value="earned",
        ts="toDateTime64(day, 3, 'UTC')",
        when="grain = 'model'",
        requires="version_found = 1",
        user_rule=False,
    ),
)

_RC_BASE = """SELECT date AS day, modelVersionId, toInt64(floor(sum(amount))) AS earned
FROM $resourceCompensations
WHERE date >= toDate({lo:DateTime64(3, 'UTC')}) AND date < toDate({hi:DateTime64(3, 'UTC')})
  AND date < {cutoff_date:Date}
GROUP BY date, modelVersionId"""

RESOURCE_COMPENSATIONS = Source(
    name="resourceCompensations",
    engine="ch",
    query="WITH v AS (" + _RC_BASE + ")" + _EARNINGS_ROLLUP,
    chunk=ChunkBy("$resourceCompensations", "date", kind="day"),
    rules=_EARNINGS_RULES,
    lookups=(Lookup("version_model", "modelVersionId", _MV_MODEL.pg_sql),),
    keys_from=_RC_BASE,
    earnings="resourceCompensations",
    base_ts="date 00:00",
    notes="Today's earnings path: floor(sum) per (day, version); Model = sum of floors; userId 0, no drop rule.",
)

_BRC_BASE = """SELECT toDate(date) AS day, modelVersionId, toInt64(total) AS earned
FROM $buzz_resource_compensation FINAL
WHERE final = 1
  AND date >= {lo:DateTime64(3, 'UTC')} AND date < {hi:DateTime64(3, 'UTC')}
  AND date < toDateTime({cutoff_date:Date}, 'UTC')"""

BUZZ_RESOURCE_COMPENSATION = Source(
    name="buzz_resource_compensation",
    engine="ch",
    query="WITH v AS (" + _BRC_BASE + ")" + _EARNINGS_ROLLUP,
    chunk=ChunkBy("$buzz_resource_compensation", "date", kind="day"),
    rules=_EARNINGS_RULES,
    lookups=(Lookup("version_model", "modelVersionId", _MV_MODEL.pg_sql),),
    keys_from=_BRC_BASE,
    earnings="buzz_resource_compensation",
    read_final=True,
    base_ts="date",
    notes="Sept-2025 earnings path (FINAL, final = 1); attribution unverified (docs/sources.md §23).",
)

CATALOG: tuple[Source, ...] = (
    USER_ENGAGEMENT,
    IMAGE_REACTION,
    ARTICLE_REACTION,
    BOUNTY_ENTRY_REACTION,
    ARTICLE_STATUS,
    RESOURCE_REVIEW,
    COLLECTION_ITEM,
    COLLECTION_CONTRIBUTOR,
    COMMENT,
    COMMENT_V2,
    IMAGE_RESOURCE,
    BUZZ_TIP,
    TAG_ENGAGEMENT,
    BOUNTY_ENGAGEMENT,
    BOUNTY,
    BOUNTY_ENTRY,
    BOUNTY_BENEFACTOR,
    COMIC_ENGAGEMENT,
    POST_PUBLISHED,
    VERSION_PUBLISHED,
    DOWNLOADS,
    JOBS,
    BUZZ_RESOURCE_COMPENSATION,
    RESOURCE_COMPENSATIONS,
)


def source_by_name(name: str) -> Source:
    """The source named exactly `name` (names are case-sensitive, as everywhere else)."""
    for s in CATALOG:
        if s.name == name:
            return s
    raise KeyError(name)


def pairs_of(
    sources: Iterable[Source], dynamic_entity_types: Iterable[str] = BUZZTIP_ENTITY_TYPES
) -> Iterator[tuple[Source, Pair]]:
    dyn = tuple(dynamic_entity_types)
    for s in sources:
        for p in s.pairs(dyn):
            yield s, p


# metricTypes are fixed names: a dot in one would make `Entity.metric` ambiguous.
assert not any("." in m for s in CATALOG for r in s.rules for m in r.metrics()), "a metricType contains a dot"

# R6: the pairs the live earnings writer puts into its own table (default.entityMetricEvents),
# whatever table the other pairs go to. Derived from the declarations, named nowhere else.
EARNINGS_PAIRS: frozenset[Pair] = frozenset(p for s in CATALOG if s.earnings for p in s.pairs())


def routes_to_earnings_table(pair: Pair) -> bool:
    return pair in EARNINGS_PAIRS
