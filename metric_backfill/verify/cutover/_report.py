"""Cutover diff (docs/semantics.md §6): how each displayed counter changes when the site reads it from the events.

For every pair with a displayed counter (docs/processor-truth.md) and every entity:

* ``D`` — the displayed value: the ``*Metric`` column (``AllTime`` rows only). Images have no
  ``*Metric`` table: their ``D`` is today's ClickHouse sum per (image, metricType) in the target, with
  the read path's folding of ``ReactionLike/Heart/Laugh/Cry`` into ``Like/Heart/Laugh/Cry`` (the
  legacy ``Comment`` and ``Buzz`` names are *not* folded into ``commentCount`` / ``tippedAmount``).
* ``T`` — the processor truth, recomputed now by the truth SQL of docs/processor-truth.md, and then
  written the way a processor writes: only for entities that exist in PostgreSQL (the ``*Metric``
  tables have foreign keys), an entity without a result row keeps its displayed value
  (``COALESCE(new, old, 0)``; only ``Model.commentCount`` is zero-seeded), and a counter the
  processors no longer compute (``ModelVersion.imageCount``) stays frozen at ``D``. For the pairs
  the processors read back from the events today (``*.collectedCount``, ``Collection.itemCount``)
  ``T`` uses the last PostgreSQL formula (otherwise ``T = N`` by construction).
* ``N`` — what the events give under the site's read semantics: the sum of ``metricValue`` over the
  pair's rows in the target (backfill + live events since the cutoff), or, for *presence* pairs
  (T19; default: the reaction metrics Like/Dislike/Laugh/Cry/Heart), the number of distinct users
  whose summed value for the entity is positive. Simplification: the site's newest read path looks
  at each user's *latest* value (by createdAt). Both agree while each user's events alternate
  +1/−1 in time order; they differ where ordering is odd, e.g. a backfilled +1 dated after a live
  −1 of the same user (the latest value says "present", the sum says "absent"). A
  ReplacingMergeTree target is read with FINAL (collapsed event identities).

``N − D = (T − D) + (N − T)``: *staleness* of the displayed table plus the *semantic* difference.
``N − T`` is attributed per entity to causes, all computed inside ClickHouse:

* catalog causes (``CAUSES`` below, data): per pair, a name and SQL giving a per-entity amount in
  the ``N − T`` direction ("the replay of today's rows counts this, the processor does not"),
  computed from the sources (PostgreSQL, the ClickHouse sources, the truth-support tables);
* built-in causes computed from the parts every pair has: ``R∞`` = the replay of *all* of today's
  rows (the independent expected-totals SQL of ``_expected`` run with no cutoff) and ``R`` = the same
  at the cutoff. ``N − T`` telescopes exactly into

  - presence vs sum (``N − Nsum``; presence pairs only),
  - target rows before the cutoff vs the replay (``Nbefore − R``: other writers, legacy names,
    earlier runs; zero after a clean backfill),
  - target rows since the cutoff vs the replay of the rows created since (``Nsince − (R∞ − R)``:
    rows without live events yet, deletes and handled updates after the cutoff, T12–T14),
  - replay vs processor truth (``R∞ − T``): the catalog causes, plus "frozen counter", "no truth row:
    the processor keeps the displayed value" and "entity missing in PostgreSQL";

  whatever the catalog causes do not explain of ``R∞ − T`` is reported as *unexplained*.

Everything per entity stays in ClickHouse: PostgreSQL aggregates (D, T, cause amounts, R) are
streamed as COPY bytes under one exported snapshot into a scratch database (the ``_verify``
pattern; ``R`` reuses ``_expected``'s queries and lookups, read in this report's own snapshot so
that D, T, the causes and R all see the same rows),
ClickHouse-side ones are ``INSERT … SELECT``-ed there, and only per-pair aggregates, top-20 lists
and histogram bins come back to Python. The scratch database is dropped at the end.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from string import Template
from typing import Any, Final

from metric_backfill.catalog import GENERATION_VALUE, REACTIONS, Pair
from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill._config import RunConfig, first_day_not_before
from metric_backfill._errors import ConfigError
from metric_backfill.engine._plan import discover_entity_types
from metric_backfill.verify._expected import DEFAULT_CH_TABLES, ExpectedQuery, expected_queries
from metric_backfill.backends._postgres import Postgres, Snapshot
from metric_backfill._config import checked_ident
from metric_backfill.backends._sql import literal, qualified, quote_ident
from metric_backfill.verify._compare import load_lookups

_log = logging.getLogger("metric_backfill")

__all__ = [
    "CAUSES",
    "DEFAULT_TRUTH_TABLES",
    "HISTOGRAM_BINS",
    "CauseShare",
    "CutoverReport",
    "PairCutover",
    "cause_catalog",
    "compared_pairs",
    "cutover",
    "cutover_report",
]

#: Logical truth-support table -> real qualified name (overridable with `truth_tables`).
DEFAULT_TRUTH_TABLES: Final[Mapping[str, str]] = {
    "daily_downloads_unique": "default.daily_downloads_unique",
    "daily_resource_generation_counts": "orchestration.daily_resource_generation_counts",
    "reactions": "default.reactions",
}

#: Bins of N − D: (label, lower bound inclusive, upper bound inclusive); None = unbounded.
HISTOGRAM_BINS: Final[tuple[tuple[str, int | None, int | None], ...]] = (
    ("<-100", None, -101),
    ("-100..-11", -100, -11),
    ("-10..-1", -10, -1),
    ("0", 0, 0),
    ("1..10", 1, 10),
    ("11..100", 11, 100),
    (">100", 101, None),
)

LEGACY_IMAGE_NAMES: Final = {
    "ReactionLike": "Like",
    "ReactionHeart": "Heart",
    "ReactionLaugh": "Laugh",
    "ReactionCry": "Cry",
}
_JOB_TYPES: Final = "('TextToImageV2', 'TextToImage', 'Comfy')"
_FAR_FUTURE: Final = datetime(2200, 1, 1)
_FAR_FUTURE_DATE: Final = date(2149, 1, 1)


# =================================================================================================
# Report types
# =================================================================================================


@dataclass
class CauseShare:
    cause: str
    entities: int
    """Entities for which this cause's amount is not 0."""
    amount: int
    """Σ over entities, in the N − T direction."""
    description: str = ""


@dataclass
class PairCutover:
    pair: str
    status: str
    """"compared" | "new" (no displayed counter) | "no data" (compared, but no entity anywhere)."""
    entities: int = 0
    changed: int = 0
    """Entities with N != D."""
    sum_diff: int = 0
    """Σ(N − D)."""
    sum_abs_diff: int = 0
    """Σ|N − D|."""
    staleness: int = 0
    """Σ(T − D)."""
    semantic: int = 0
    """Σ(N − T) = Σ causes + unexplained."""
    causes: list[CauseShare] = field(default_factory=list)
    unexplained: int = 0
    largest: list[dict[str, int]] = field(default_factory=list)
    """The 20 largest |N − D| changes: {entityId, D, T, N}."""
    histogram: list[tuple[str, int]] = field(default_factory=list)
    """Entities per bin of N − D (HISTOGRAM_BINS)."""
    changed_split: dict[str, int] = field(default_factory=dict)
    """Changed entities by kind: staleness only (N = T != D), semantic only (T = D != N), both."""
    unexplained_entities: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    """ΣD, ΣT, ΣN."""
    presence: bool = False
    """N counts distinct users with a positive sum (T19) instead of summing."""
    note: str = ""


@dataclass
class CutoverReport:
    generated_at: str
    cutoff: str
    target: str
    pairs: list[PairCutover]
    live_rows: int = 0
    """Target rows at or after the cutoff (the live pipeline's, and corrections): 0 means nothing wrote
    live events, and the causes "since the cutoff" only measure rows created since — an artifact of
    the data (a demo, or a check before the live pipeline ran), not a difference the site will see."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for p in out["pairs"]:
            p["histogram"] = [list(b) for b in p["histogram"]]
        return out

    def by_entity_type(self) -> dict[str, list[PairCutover]]:
        groups: dict[str, list[PairCutover]] = defaultdict(list)
        for p in self.pairs:
            groups[_split_pair(p.pair)[0]].append(p)
        return dict(sorted(groups.items(), key=lambda kv: kv[0].lower()))


# =================================================================================================
# Catalog (data): displayed columns, truth SQL, causes
# =================================================================================================


@dataclass(frozen=True)
class Displayed:
    """Where a pair's displayed value lives: `table`.`columns[metricType]`, keyed by `key`."""

    table: str
    key: str
    timeframe: bool
    columns: Mapping[str, str]


def _reaction_columns() -> dict[str, str]:
    return {r: r.lower() + "Count" for r in REACTIONS}


DISPLAYED: Final[Mapping[str, Displayed]] = {
    "User": Displayed(
        "UserMetric",
        "userId",
        True,
        {
            "followerCount": "followerCount",
            "followingCount": "followingCount",
            "hiddenCount": "hiddenCount",
            "uploadCount": "uploadCount",
            "reactionCount": "reactionCount",
        },
    ),
    "ModelVersion": Displayed(
        "ModelVersionMetric",
        "modelVersionId",
        False,
        {
            m: m
            for m in (
                "downloadCount",
                "generationCount",
                "earnedAmount",
                "thumbsUpCount",
                "thumbsDownCount",
                "imageCount",
            )
        },
    ),
    "Model": Displayed(
        "ModelMetric",
        "modelId",
        False,
        {
            **{
                m: m
                for m in (
                    "thumbsUpCount",
                    "thumbsDownCount",
                    "commentCount",
                    "collectedCount",
                    "tippedCount",
                    "downloadCount",
                    "generationCount",
                    "earnedAmount",
                    "imageCount",
                )
            },
            "tippedAmount": "tippedAmountCount",
        },
    ),
    "Post": Displayed(
        "PostMetric",
        "postId",
        True,
        {**_reaction_columns(), "commentCount": "commentCount", "collectedCount": "collectedCount"},
    ),
    "Collection": Displayed(
        "CollectionMetric", "collectionId", True, {m: m for m in ("followerCount", "contributorCount", "itemCount")}
    ),
    "Tag": Displayed("TagMetric", "tagId", True, {"followerCount": "followerCount", "hiddenCount": "hiddenCount"}),
    "Article": Displayed(
        "ArticleMetric",
        "articleId",
        True,
        {
            **_reaction_columns(),
            "commentCount": "commentCount",
            "collectedCount": "collectedCount",
            "tippedCount": "tippedCount",
            "tippedAmount": "tippedAmountCount",
        },
    ),
    "Bounty": Displayed(
        "BountyMetric",
        "bountyId",
        True,
        {
            **{m: m for m in ("favoriteCount", "trackCount", "commentCount", "benefactorCount", "entryCount")},
            "unitAmount": "unitAmountCount",
        },
    ),
    "BountyEntry": Displayed(
        "BountyEntryMetric", "bountyEntryId", True, {**_reaction_columns(), "unitAmount": "unitAmountCount"}
    ),
    # BuzzTip pairs keep BuzzTip."entityType" verbatim (T7): lower-case bountyEntry is its own type.
    "bountyEntry": Displayed(
        "BountyEntryMetric", "bountyEntryId", True, {"tippedCount": "tippedCount", "tippedAmount": "tippedAmountCount"}
    ),
    "ComicProject": Displayed(
        "ComicProjectMetric",
        "comicProjectId",
        False,
        {"tippedCount": "tippedCount", "tippedAmount": "tippedAmountCount"},
    ),
    "Comic": Displayed(
        "ComicProjectMetric",
        "comicProjectId",
        False,
        {m: m for m in ("followerCount", "hiddenCount", "readerCount", "chapterReadCount")},
    ),
}

#: Image pairs whose D comes from the target (no *Metric table).
IMAGE_DISPLAYED: Final = (*REACTIONS, "commentCount", "Collection", "tippedCount", "tippedAmount")

#: entityType -> id list (PostgreSQL) a *Metric row needs (foreign key); images have no *Metric table.
PARENT: Final[Mapping[str, str]] = {
    "User": "User",
    "ModelVersion": "ModelVersion",
    "Model": "Model",
    "Post": "Post",
    "Collection": "Collection",
    "Tag": "Tag",
    "Article": "Article",
    "Bounty": "Bounty",
    "BountyEntry": "BountyEntry",
    "bountyEntry": "BountyEntry",
    "ComicProject": "ComicProject",
    "Comic": "ComicProject",
}

#: Id lists loaded into the scratch table `ids (name, id)`.
LOOKUPS: Final[Mapping[str, str]] = {
    **{
        t: f'SELECT "id" FROM "{t}"'
        for t in (
            "User",
            "ModelVersion",
            "Model",
            "Post",
            "Collection",
            "Tag",
            "Article",
            "Bounty",
            "BountyEntry",
            "ComicProject",
        )
    },
    "BountyEntry:author": 'SELECT "id" FROM "BountyEntry" WHERE "userId" IS NOT NULL',
}


@dataclass(frozen=True)
class Query:
    """One aggregate. PostgreSQL (`engine="pg"`) runs under the report's snapshot with no parameters
    (so `%` is literal); ClickHouse (`"ch"`) gets `$name` substitutions: the source tables
    ($modelVersionEvents, $jobs, $resourceCompensations), the truth-support tables
    ($daily_downloads_unique, $daily_resource_generation_counts, $reactions), $scratch (holding
    pg_model_version, pg_image and ids) and $g (a generation's value).

    Truth queries return ("entityId", "metricType", value); cause queries ("entityId", amount).
    ClickHouse resolves SELECT aliases in WHERE: a ClickHouse query must not alias an output
    column to a name its source also has (rename the source column in a subquery first)."""

    engine: str
    sql: str
    lookups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Truth:
    entity_type: str
    metrics: tuple[str, ...]
    query: Query


@dataclass(frozen=True)
class Cause:
    """A per-entity amount in the N − T direction: what the replay of today's rows counts and the
    processor does not (negative: what only the processor counts). Several queries are summed."""

    name: str
    description: str
    queries: tuple[Query, ...]


def pg_sql(sql: str, *lookups: str) -> Query:
    return Query("pg", sql.strip("\n"), tuple(lookups))


def ch_sql(sql: str, *lookups: str) -> Query:
    return Query("ch", sql.strip("\n"), tuple(lookups))


def _unpivot(sub: str, key: str, columns: Mapping[str, str]) -> str:
    """Turn one row per entity with several counter columns into (entityId, metricType, value) rows,
    one per counter (a processor writes every column of an entity it has a result row for)."""
    values = ", ".join(f"('{m}', q.{c}::bigint)" for m, c in columns.items())
    return (
        f'SELECT q.{key} AS "entityId", v.m AS "metricType", v.x AS value\n'
        f"FROM (\n{sub}\n) q CROSS JOIN LATERAL (VALUES {values}) v(m, x)"
    )


def _reaction_filters(column: str = 'r."reaction"') -> str:
    return ",\n       ".join(f"count(*) FILTER (WHERE {column} = '{r}') AS n_{r.lower()}" for r in REACTIONS)


_REACTION_ALIASES: Final = {r: f"n_{r.lower()}" for r in REACTIONS}


def _reaction_counts(table: str, key: str) -> str:
    return _unpivot(
        f'SELECT r."{key}" AS k,\n       {_reaction_filters()}\nFROM "{table}" r\nGROUP BY r."{key}"',
        "k",
        _REACTION_ALIASES,
    )


def _root_comments(column: str) -> str:
    """Comments in the entity's own (root) thread: the processors' commentCount."""
    return (
        f'SELECT t."{column}" AS "entityId", \'commentCount\' AS "metricType", count(c."id") AS value\n'
        f'FROM "Thread" t JOIN "CommentV2" c ON c."threadId" = t."id"\n'
        f'WHERE t."{column}" IS NOT NULL GROUP BY t."{column}"'
    )


def _items(column: str, metric: str, distinct: bool = False) -> str:
    agg = 'count(DISTINCT ci."addedById")' if distinct else "count(*)"
    return (
        f'SELECT ci."{column}" AS "entityId", \'{metric}\' AS "metricType", {agg} AS value\n'
        f'FROM "CollectionItem" ci WHERE ci."{column}" IS NOT NULL GROUP BY ci."{column}"'
    )


def _tips(etype: str) -> str:
    return _unpivot(
        f'SELECT bt."entityId" AS k, count(*) AS c, sum(bt."amount") AS a\n'
        f'FROM "BuzzTip" bt WHERE bt."entityType" = \'{etype}\' GROUP BY bt."entityId"',
        "k",
        {"tippedCount": "c", "tippedAmount": "a"},
    )


_DOWNLOADS_TRUTH = """SELECT modelVersionId, toInt64(uniqMerge(users_state)) AS value
FROM $daily_downloads_unique GROUP BY modelVersionId"""
_GENERATIONS_TRUTH = """SELECT modelVersionId, toInt64(sum(count)) AS value
FROM $daily_resource_generation_counts
WHERE createdDate <= today() AND count <= 2147483647 AND modelVersionId NOT IN (391999, 424706)
GROUP BY modelVersionId"""
_EARNINGS_TRUTH = """SELECT modelVersionId, toInt64(floor(sum(amount))) AS value
FROM $resourceCompensations GROUP BY modelVersionId"""


def _per_model(version_sql: str) -> str:
    """Roll a per-version (modelVersionId, value) aggregate up to models through PostgreSQL's
    ModelVersion -> Model (the processors' roll-up; unknown versions have no model)."""
    return (
        f"SELECT mv.modelId AS entityId, toInt64(sum(x.value)) AS value\n"
        f"FROM (\n{version_sql}\n) x INNER JOIN $scratch.pg_model_version mv ON mv.id = x.modelVersionId\n"
        f"GROUP BY mv.modelId"
    )


def _with_metric(sql: str, metric: str, key: str = "entityId") -> str:
    """(key, value) rows -> (entityId, metricType, value) rows."""
    return f"SELECT {key} AS entityId, '{metric}' AS metricType, value FROM (\n{sql}\n)"


TRUTHS: Final[tuple[Truth, ...]] = (
    # ---- UserMetric -----------------------------------------------------------------------------
    Truth(
        "User",
        ("followerCount", "hiddenCount"),
        pg_sql(
            _unpivot(
                """SELECT "targetUserId" AS k, count(*) FILTER (WHERE "type" = 'Follow') AS f,
       count(*) FILTER (WHERE "type" = 'Hide') AS h
FROM "UserEngagement" GROUP BY "targetUserId\"""",
                "k",
                {"followerCount": "f", "hiddenCount": "h"},
            )
        ),
    ),
    Truth(
        "User",
        ("followingCount",),
        pg_sql(
            """SELECT "userId" AS "entityId", 'followingCount' AS "metricType", count(*) AS value
FROM "UserEngagement" WHERE "type" = 'Follow' GROUP BY "userId\""""
        ),
    ),
    Truth(
        "User",
        ("uploadCount",),
        pg_sql(
            """-- versions by the current model owner; Scheduled ones once their time has come (:T = now)
SELECT m."userId" AS "entityId", 'uploadCount' AS "metricType", count(*) AS value
FROM "ModelVersion" mv JOIN "Model" m ON m."id" = mv."modelId"
WHERE mv."status" = 'Published' OR (mv."status" = 'Scheduled' AND mv."publishedAt" <= (now() AT TIME ZONE 'UTC'))
GROUP BY m."userId\""""
        ),
    ),
    Truth(
        "User",
        ("reactionCount",),
        ch_sql(
            """-- reactions received over the append-only log, 8 kinds, self-reactions excluded after 2024-04-27
SELECT ownerId AS entityId, 'reactionCount' AS metricType,
       toInt64(sum(if(endsWith(toString(type), '_Create'), 1, -1))) AS value
FROM $reactions
WHERE time < toDateTime('2024-04-27 00:00:00', 'UTC') OR userId != ownerId
GROUP BY ownerId"""
        ),
    ),
    # ---- ModelVersionMetric ---------------------------------------------------------------------
    Truth(
        "ModelVersion",
        ("thumbsUpCount", "thumbsDownCount"),
        pg_sql(
            _unpivot(
                """SELECT rr."modelVersionId" AS k,
       count(DISTINCT rr."userId") FILTER (WHERE rr."recommended") AS up,
       count(DISTINCT rr."userId") FILTER (WHERE NOT rr."recommended") AS down
FROM "ResourceReview" rr WHERE NOT rr."exclude" AND NOT rr."tosViolation"
GROUP BY rr."modelVersionId\"""",
                "k",
                {"thumbsUpCount": "up", "thumbsDownCount": "down"},
            )
        ),
    ),
    Truth(
        "ModelVersion", ("downloadCount",), ch_sql(_with_metric(_DOWNLOADS_TRUTH, "downloadCount", "modelVersionId"))
    ),
    Truth(
        "ModelVersion",
        ("generationCount",),
        ch_sql(_with_metric(_GENERATIONS_TRUTH, "generationCount", "modelVersionId")),
    ),
    Truth("ModelVersion", ("earnedAmount",), ch_sql(_with_metric(_EARNINGS_TRUTH, "earnedAmount", "modelVersionId"))),
    # imageCount: not computed any more (frozen): T = D, see FROZEN.
    # ---- ModelMetric ----------------------------------------------------------------------------
    Truth(
        "Model",
        ("thumbsUpCount", "thumbsDownCount"),
        pg_sql(
            _unpivot(
                """SELECT rr."modelId" AS k,
       count(DISTINCT rr."userId") FILTER (WHERE rr."recommended") AS up,
       count(DISTINCT rr."userId") FILTER (WHERE NOT rr."recommended") AS down
FROM "ResourceReview" rr WHERE NOT rr."exclude" AND NOT rr."tosViolation"
GROUP BY rr."modelId\"""",
                "k",
                {"thumbsUpCount": "up", "thumbsDownCount": "down"},
            )
        ),
    ),
    Truth(
        "Model",
        ("commentCount",),
        pg_sql(
            """SELECT c."modelId" AS "entityId", 'commentCount' AS "metricType", count(DISTINCT c."userId") AS value
FROM "Comment" c WHERE NOT c."tosViolation" GROUP BY c."modelId\""""
        ),
    ),
    Truth("Model", ("tippedCount", "tippedAmount"), pg_sql(_tips("Model"))),
    Truth(
        "Model",
        ("tippedCount", "tippedAmount"),
        pg_sql(
            _unpivot(
                """-- donations to the model's versions, added by the processor
SELECT mv."modelId" AS k, count(d."amount") AS c, sum(d."amount") AS a
FROM "Donation" d
JOIN "DonationGoal" dg ON dg."id" = d."donationGoalId" AND dg."entityType" = 'ModelVersion'
JOIN "ModelVersion" mv ON mv."id" = dg."entityId"
GROUP BY mv."modelId\"""",
                "k",
                {"tippedCount": "c", "tippedAmount": "a"},
            )
        ),
    ),
    Truth("Model", ("downloadCount",), ch_sql(_with_metric(_per_model(_DOWNLOADS_TRUTH), "downloadCount"))),
    Truth("Model", ("generationCount",), ch_sql(_with_metric(_per_model(_GENERATIONS_TRUTH), "generationCount"))),
    Truth(
        "Model",
        ("generationCount",),
        pg_sql(
            """-- versions 391999 / 424706 are never refreshed: the roll-up adds their stored value
SELECT mv."modelId" AS "entityId", 'generationCount' AS "metricType", mvm."generationCount" AS value
FROM "ModelVersionMetric" mvm JOIN "ModelVersion" mv ON mv."id" = mvm."modelVersionId"
WHERE mvm."modelVersionId" IN (391999, 424706)"""
        ),
    ),
    Truth("Model", ("earnedAmount",), ch_sql(_with_metric(_per_model(_EARNINGS_TRUTH), "earnedAmount"))),
    Truth(
        "Model",
        ("imageCount",),
        pg_sql(
            """-- sum of the (frozen) stored version values
SELECT mv."modelId" AS "entityId", 'imageCount' AS "metricType", sum(mvm."imageCount") AS value
FROM "ModelVersionMetric" mvm JOIN "ModelVersion" mv ON mv."id" = mvm."modelVersionId"
GROUP BY mv."modelId\""""
        ),
    ),
    Truth("Model", ("collectedCount",), pg_sql(_items("modelId", "collectedCount", distinct=True))),
    # ---- PostMetric -----------------------------------------------------------------------------
    Truth(
        "Post",
        REACTIONS,
        pg_sql(
            _unpivot(
                """SELECT i."postId" AS k, """
                + _reaction_filters()
                + """
FROM "ImageReaction" r JOIN "Image" i ON i."id" = r."imageId"
WHERE i."postId" IS NOT NULL GROUP BY i."postId\"""",
                "k",
                _REACTION_ALIASES,
            )
        ),
    ),
    Truth("Post", ("commentCount",), pg_sql(_root_comments("postId"))),
    Truth("Post", ("collectedCount",), pg_sql(_items("postId", "collectedCount"))),
    # ---- Image (no *Metric table: PostgreSQL truth as docs/processor-truth.md suggests) ---------------
    Truth("Image", REACTIONS, pg_sql(_reaction_counts("ImageReaction", "imageId"))),
    Truth("Image", ("commentCount",), pg_sql(_root_comments("imageId"))),
    Truth("Image", ("Collection",), pg_sql(_items("imageId", "Collection"))),
    Truth("Image", ("tippedCount", "tippedAmount"), pg_sql(_tips("Image"))),
    # ---- CollectionMetric -----------------------------------------------------------------------
    Truth(
        "Collection",
        ("followerCount", "contributorCount"),
        pg_sql(
            _unpivot(
                """SELECT cc."collectionId" AS k,
       count(*) FILTER (WHERE 'VIEW' = ANY(cc."permissions")) AS f,
       count(*) FILTER (WHERE 'ADD' = ANY(cc."permissions")) AS a
FROM "CollectionContributor" cc GROUP BY cc."collectionId\"""",
                "k",
                {"followerCount": "f", "contributorCount": "a"},
            )
        ),
    ),
    Truth("Collection", ("itemCount",), pg_sql(_items("collectionId", "itemCount"))),
    # ---- TagMetric ------------------------------------------------------------------------------
    Truth(
        "Tag",
        ("followerCount", "hiddenCount"),
        pg_sql(
            _unpivot(
                """SELECT te."tagId" AS k, count(*) FILTER (WHERE te."type" = 'Follow') AS f,
       count(*) FILTER (WHERE te."type" = 'Hide') AS h
FROM "TagEngagement" te GROUP BY te."tagId\"""",
                "k",
                {"followerCount": "f", "hiddenCount": "h"},
            )
        ),
    ),
    # ---- ArticleMetric --------------------------------------------------------------------------
    Truth("Article", REACTIONS, pg_sql(_reaction_counts("ArticleReaction", "articleId"))),
    Truth("Article", ("commentCount",), pg_sql(_root_comments("articleId"))),
    Truth("Article", ("collectedCount",), pg_sql(_items("articleId", "collectedCount"))),
    Truth("Article", ("tippedCount", "tippedAmount"), pg_sql(_tips("Article"))),
    # ---- BountyMetric ---------------------------------------------------------------------------
    Truth(
        "Bounty",
        ("favoriteCount", "trackCount"),
        pg_sql(
            _unpivot(
                """SELECT e."bountyId" AS k, count(*) FILTER (WHERE e."type" = 'Favorite') AS f,
       count(*) FILTER (WHERE e."type" = 'Track') AS t
FROM "BountyEngagement" e GROUP BY e."bountyId\"""",
                "k",
                {"favoriteCount": "f", "trackCount": "t"},
            )
        ),
    ),
    Truth("Bounty", ("commentCount",), pg_sql(_root_comments("bountyId"))),
    Truth(
        "Bounty",
        ("benefactorCount", "unitAmount"),
        pg_sql(
            _unpivot(
                """SELECT bb."bountyId" AS k, count(*) AS c, sum(bb."unitAmount") AS a
FROM "BountyBenefactor" bb GROUP BY bb."bountyId\"""",
                "k",
                {"benefactorCount": "c", "unitAmount": "a"},
            )
        ),
    ),
    Truth(
        "Bounty",
        ("entryCount",),
        pg_sql(
            """SELECT be."bountyId" AS "entityId", 'entryCount' AS "metricType", count(*) AS value
FROM "BountyEntry" be GROUP BY be."bountyId\""""
        ),
    ),
    # ---- BountyEntryMetric ----------------------------------------------------------------------
    Truth("BountyEntry", REACTIONS, pg_sql(_reaction_counts("BountyEntryReaction", "bountyEntryId"))),
    Truth(
        "BountyEntry",
        ("unitAmount",),
        pg_sql(
            """SELECT bb."awardedToId" AS "entityId", 'unitAmount' AS "metricType", sum(bb."unitAmount") AS value
FROM "BountyBenefactor" bb WHERE bb."awardedToId" IS NOT NULL GROUP BY bb."awardedToId\""""
        ),
    ),
    Truth("bountyEntry", ("tippedCount", "tippedAmount"), pg_sql(_tips("bountyEntry"))),
    # ---- ComicProjectMetric ---------------------------------------------------------------------
    Truth("ComicProject", ("tippedCount", "tippedAmount"), pg_sql(_tips("ComicProject"))),
    Truth(
        "Comic",
        ("followerCount", "hiddenCount"),
        pg_sql(
            _unpivot(
                """SELECT e."projectId" AS k, count(*) FILTER (WHERE e."type" = 'Notify') AS f,
       count(*) FILTER (WHERE e."type" = 'Hide') AS h
FROM "ComicProjectEngagement" e GROUP BY e."projectId\"""",
                "k",
                {"followerCount": "f", "hiddenCount": "h"},
            )
        ),
    ),
    Truth(
        "Comic",
        ("readerCount", "chapterReadCount"),
        pg_sql(
            _unpivot(
                """SELECT cc."projectId" AS k, count(DISTINCT cr."userId") AS r, count(*) AS c
FROM "ComicChapterRead" cr JOIN "ComicChapter" cc ON cc."id" = cr."chapterId"
WHERE NOT cr."unread" GROUP BY cc."projectId\"""",
                "k",
                {"readerCount": "r", "chapterReadCount": "c"},
            )
        ),
    ),
)

#: Counters the processors no longer compute: T = D.
FROZEN: Final[frozenset[str]] = frozenset({"ModelVersion.imageCount"})
#: Counters the processor zero-seeds (an entity without source rows gets 0, not its old value).
ZERO_SEEDED: Final[frozenset[str]] = frozenset({"Model.commentCount"})
#: Compared pairs whose processor today reads the events back (T = N by construction); T uses the
#: last PostgreSQL formula instead.
CIRCULAR: Final[frozenset[str]] = frozenset(
    {"Model.collectedCount", "Post.collectedCount", "Article.collectedCount", "Collection.itemCount"}
)


# ---- cause SQL helpers --------------------------------------------------------------------------


def _null_adder(column: str) -> Cause:
    return Cause(
        "NULL adder (deleted user)",
        "items whose adder was deleted (addedById NULL): the processor counts them, the live pipeline drops the item",
        (
            pg_sql(
                f'SELECT ci."{column}" AS "entityId", -count(*) AS amount FROM "CollectionItem" ci\n'
                f'WHERE ci."{column}" IS NOT NULL AND ci."addedById" IS NULL GROUP BY ci."{column}"'
            ),
        ),
    )


def _replies(column: str) -> Cause:
    return Cause(
        "replies",
        "comments in reply threads: the processor counts the entity's own (root) thread only, the live "
        "pipeline resolves the root and counts replies too",
        (
            pg_sql(
                f'SELECT r."{column}" AS "entityId", count(c."id") AS amount\n'
                f'FROM "CommentV2" c JOIN "Thread" t ON t."id" = c."threadId"\n'
                f'JOIN "Thread" r ON r."id" = t."rootThreadId"\n'
                f'WHERE t."{column}" IS NULL AND r."{column}" IS NOT NULL GROUP BY r."{column}"'
            ),
        ),
    )


def _tip_causes(etype: str, metric: str) -> list[Cause]:
    agg = "count(*)" if metric == "tippedCount" else 'sum(bt."amount")'
    base = f'FROM "BuzzTip" bt WHERE bt."entityType" = \'{etype}\''
    return [
        Cause(
            "tips with amount <= 0",
            "BuzzTip rows with a non-positive amount: the processor counts/sums them, the live pipeline emits nothing",
            (
                pg_sql(
                    f'SELECT bt."entityId" AS "entityId", -{agg} AS amount {base} AND bt."amount" <= 0\n'
                    f'GROUP BY bt."entityId"'
                ),
            ),
        ),
        Cause(
            "tips from user 0",
            "tips with fromUserId 0: dropped by the live pipeline (userId 0), counted by the processor",
            (
                pg_sql(
                    f'SELECT bt."entityId" AS "entityId", -{agg} AS amount {base} AND bt."amount" > 0\n'
                    f'AND bt."fromUserId" = 0 GROUP BY bt."entityId"'
                ),
            ),
        ),
    ]


def _thumbs(key: str, recommended: bool, distinct: bool) -> list[Cause]:
    rec = 'rr."recommended"' if recommended else 'NOT rr."recommended"'
    causes = [
        Cause(
            "excluded or TOS reviews",
            "reviews marked exclude or tosViolation: the processor drops them, the live pipeline counts every review",
            (
                pg_sql(
                    f'SELECT rr."{key}" AS "entityId", count(*) AS amount FROM "ResourceReview" rr\n'
                    f'WHERE {rec} AND (rr."exclude" OR rr."tosViolation") GROUP BY rr."{key}"'
                ),
            ),
        )
    ]
    if distinct:
        causes.append(
            Cause(
                "distinct reviewers vs reviews",
                "one user reviewing several versions of the model: the processor counts distinct reviewers, "
                "the live pipeline one per review",
                (
                    pg_sql(
                        f'SELECT rr."{key}" AS "entityId", count(*) - count(DISTINCT rr."userId") AS amount\n'
                        f'FROM "ResourceReview" rr WHERE {rec} AND NOT rr."exclude" AND NOT rr."tosViolation"\n'
                        f'GROUP BY rr."{key}"'
                    ),
                ),
            )
        )
    return causes


_DOWNLOADS = "(SELECT modelId, modelVersionId, userId, ip FROM $modelVersionEvents WHERE type = 'Download')"
_REGISTERED = "userId NOT IN (0, -1, 490053)"
_JOB_ELEMENTS = (
    f"(SELECT userId, arrayJoin(resourcesUsed) AS modelVersionId, toInt64($g) AS g FROM $jobs "
    f"WHERE jobType IN {_JOB_TYPES})"
)
_EARNING_DAYS = (
    "(SELECT date, modelVersionId, floor(sum(amount)) AS day_floor, sum(amount) AS day_sum "
    "FROM $resourceCompensations GROUP BY date, modelVersionId)"
)


def _version_sql(select: str, where: str = "", source: str = _DOWNLOADS) -> str:
    """SELECT modelVersionId, <select> AS value FROM <source> [WHERE] GROUP BY modelVersionId."""
    w = f" WHERE {where}" if where else ""
    return f"SELECT modelVersionId, toInt64({select}) AS value FROM {source}{w} GROUP BY modelVersionId"


def _mv(sql: str) -> Query:
    """A per-version (modelVersionId, value) aggregate as a ModelVersion cause query."""
    return ch_sql(f"SELECT modelVersionId AS entityId, value AS amount FROM (\n{sql}\n)")


def _m(sql: str) -> Query:
    """The same aggregate rolled up to models through PostgreSQL's version -> model mapping."""
    return ch_sql(f"SELECT entityId, value AS amount FROM (\n{_per_model(sql)}\n)")


def _download_causes(level: str) -> list[Cause]:
    wrap = _mv if level == "ModelVersion" else _m
    key = "if(userId = 0, ip, toString(userId))"
    causes = [
        Cause(
            "repeat downloads",
            "a user downloading the same version again: +1 each live, once for the processor (distinct downloaders)",
            (wrap(_version_sql("count() - uniqExact(userId)", _REGISTERED)),),
        ),
        Cause(
            "anonymous downloaders",
            "anonymous downloads (userId 0): dropped live, counted by the processor as distinct IPs",
            (wrap(_version_sql("-uniqExact(ip)", "userId = 0")),),
        ),
        Cause(
            "users -1 / 490053",
            "downloads by users -1 and 490053: filtered before the live pipeline, counted by the processor",
            (wrap(_version_sql("-uniqExact(userId)", "userId IN (-1, 490053)")),),
        ),
        Cause(
            "approximate distinct count",
            "the processor's uniq() is approximate: exact distinct downloaders minus its estimate",
            (
                wrap(_version_sql(f"uniqExact({key})")),
                wrap(
                    "SELECT modelVersionId, -toInt64(uniqMerge(users_state)) AS value\n"
                    "FROM $daily_downloads_unique GROUP BY modelVersionId"
                ),
            ),
        ),
    ]
    if level == "Model":
        causes.insert(
            0,
            Cause(
                "version of another model",
                "downloads whose event modelId differs from PostgreSQL's version -> model (e.g. versions unknown to "
                "PostgreSQL): live credits the event's modelId, the processor rolls versions up",
                (
                    ch_sql(
                        f"SELECT modelId AS entityId, toInt64(count()) AS amount FROM {_DOWNLOADS} "
                        f"WHERE {_REGISTERED} GROUP BY modelId"
                    ),
                    _m(_version_sql("-count()", _REGISTERED)),
                ),
            ),
        )
    return causes


def _generation_causes(level: str) -> list[Cause]:
    wrap = _mv if level == "ModelVersion" else _m
    frozen = [wrap(_version_sql("sum(g)", "modelVersionId IN (391999, 424706)", _JOB_ELEMENTS))]
    if level == "Model":
        frozen.append(
            pg_sql(
                'SELECT mv."modelId" AS "entityId", -mvm."generationCount" AS amount\n'
                'FROM "ModelVersionMetric" mvm JOIN "ModelVersion" mv ON mv."id" = mvm."modelVersionId"\n'
                'WHERE mvm."modelVersionId" IN (391999, 424706)'
            )
        )
    return [
        Cause(
            "jobs by user 0",
            "generations of jobs with userId 0: dropped live, counted in the daily generation counts",
            (wrap(_version_sql("-sum(g)", "userId = 0", _JOB_ELEMENTS)),),
        ),
        Cause(
            "versions 391999 / 424706",
            "the processor never refreshes these two versions (frozen); the live pipeline counts their jobs",
            tuple(frozen),
        ),
    ]


def _earning_causes(level: str) -> list[Cause]:
    wrap = _mv if level == "ModelVersion" else _m
    return [
        Cause(
            "per-day flooring",
            "the live writer floors each day (Σ floor(day)), the processor floors the all-time sum (floor(Σ))",
            (wrap(_version_sql("sum(day_floor) - floor(sum(day_sum))", "", _EARNING_DAYS)),),
        )
    ]


_LOG = """(SELECT ownerId, userId, entityId AS content_id, time,
        if(endsWith(toString(type), '_Create'), 1, -1) AS s,
        splitByChar('_', toString(type))[1] AS kind,
        (time < toDateTime('2024-04-27 00:00:00', 'UTC') OR userId != ownerId) AS counted
 FROM $reactions)"""
_LIVE_KINDS = "('Image', 'Article', 'BountyEntry')"


CAUSES: Final[Mapping[str, tuple[Cause, ...]]] = {
    "User.uploadCount": (
        Cause(
            "Scheduled versions",
            "Scheduled versions whose publish time has passed: the processor counts them, live waits for the "
            "status to become Published",
            (
                pg_sql("""SELECT m."userId" AS "entityId", -count(*) AS amount
FROM "ModelVersion" mv JOIN "Model" m ON m."id" = mv."modelId"
WHERE mv."status" = 'Scheduled' AND mv."publishedAt" <= (now() AT TIME ZONE 'UTC')
GROUP BY m."userId\""""),
            ),
        ),
    ),
    "User.reactionCount": (
        Cause(
            "other reaction kinds",
            "reactions on comments, comments v2, reviews, questions and answers: the processor counts 8 "
            "reactable kinds, the live pipeline images, articles and bounty entries only",
            (
                ch_sql(
                    f"SELECT ownerId AS entityId, -toInt64(sum(s)) AS amount FROM {_LOG}\n"
                    f"WHERE kind NOT IN {_LIVE_KINDS} AND counted GROUP BY ownerId"
                ),
            ),
        ),
        Cause(
            "self-reactions since 2024-04-27",
            "the processor excludes self-reactions after 2024-04-27, the live pipeline counts them",
            (
                ch_sql(
                    f"SELECT ownerId AS entityId, toInt64(sum(s)) AS amount FROM {_LOG}\n"
                    f"WHERE kind IN {_LIVE_KINDS} AND NOT counted GROUP BY ownerId"
                ),
            ),
        ),
        Cause(
            "reactions on deleted content",
            "reactions whose image / article / bounty entry (or the entry's author) is gone: the processor "
            "keeps them in its log, the live pipeline drops the owner line",
            (
                ch_sql(
                    f"""SELECT ownerId AS entityId, -toInt64(sum(s)) AS amount FROM {_LOG}
WHERE (kind = 'Image' AND content_id NOT IN (SELECT id FROM $scratch.pg_image))
   OR (kind = 'Article' AND content_id NOT IN (SELECT id FROM $scratch.ids WHERE name = 'Article'))
   OR (kind = 'BountyEntry' AND content_id NOT IN (SELECT id FROM $scratch.ids WHERE name = 'BountyEntry:author'))
GROUP BY ownerId""",
                    "Article",
                    "BountyEntry:author",
                ),
            ),
        ),
    ),
    "ModelVersion.thumbsUpCount": tuple(_thumbs("modelVersionId", True, False)),
    "ModelVersion.thumbsDownCount": tuple(_thumbs("modelVersionId", False, False)),
    "ModelVersion.downloadCount": tuple(_download_causes("ModelVersion")),
    "ModelVersion.generationCount": tuple(_generation_causes("ModelVersion")),
    "ModelVersion.earnedAmount": tuple(_earning_causes("ModelVersion")),
    "Model.thumbsUpCount": tuple(_thumbs("modelId", True, True)),
    "Model.thumbsDownCount": tuple(_thumbs("modelId", False, True)),
    "Model.commentCount": (
        Cause(
            "TOS comments",
            "comments with tosViolation: the processor excludes them, live counts them",
            (
                pg_sql(
                    'SELECT c."modelId" AS "entityId", count(*) AS amount FROM "Comment" c\n'
                    'WHERE c."tosViolation" GROUP BY c."modelId"'
                ),
            ),
        ),
        Cause(
            "distinct commenters vs comments",
            "several comments (or replies) by one user: the processor counts distinct commenters, live one per comment",
            (
                pg_sql(
                    'SELECT c."modelId" AS "entityId", count(*) - count(DISTINCT c."userId") AS amount\n'
                    'FROM "Comment" c WHERE NOT c."tosViolation" GROUP BY c."modelId"'
                ),
            ),
        ),
    ),
    "Model.collectedCount": (
        Cause(
            "distinct collectors vs items",
            "one user collecting the model into several collections: the last PostgreSQL formula counted distinct "
            "collectors, live one per item",
            (
                pg_sql(
                    'SELECT ci."modelId" AS "entityId", count(ci."addedById") - count(DISTINCT ci."addedById") AS amount\n'
                    'FROM "CollectionItem" ci WHERE ci."modelId" IS NOT NULL GROUP BY ci."modelId"'
                ),
            ),
        ),
    ),
    "Model.tippedCount": (
        Cause(
            "version donations",
            "donations to the model's versions: added by the processor, no live event",
            (
                pg_sql(
                    'SELECT mv."modelId" AS "entityId", -count(d."amount") AS amount FROM "Donation" d\n'
                    'JOIN "DonationGoal" dg ON dg."id" = d."donationGoalId" AND dg."entityType" = \'ModelVersion\'\n'
                    'JOIN "ModelVersion" mv ON mv."id" = dg."entityId" GROUP BY mv."modelId"'
                ),
            ),
        ),
        *_tip_causes("Model", "tippedCount"),
    ),
    "Model.tippedAmount": (
        Cause(
            "version donations",
            "donation amounts to the model's versions: added by the processor, no live event",
            (
                pg_sql(
                    'SELECT mv."modelId" AS "entityId", -sum(d."amount") AS amount FROM "Donation" d\n'
                    'JOIN "DonationGoal" dg ON dg."id" = d."donationGoalId" AND dg."entityType" = \'ModelVersion\'\n'
                    'JOIN "ModelVersion" mv ON mv."id" = dg."entityId" GROUP BY mv."modelId"'
                ),
            ),
        ),
        *_tip_causes("Model", "tippedAmount"),
    ),
    "Model.downloadCount": tuple(_download_causes("Model")),
    "Model.generationCount": tuple(_generation_causes("Model")),
    "Model.earnedAmount": tuple(_earning_causes("Model")),
    "Model.imageCount": (
        Cause(
            "frozen version counters",
            "the processor sums the frozen ModelVersionMetric.imageCount values; live counts every ImageResourceNew "
            "row (two versions of one model on an image count twice)",
            (
                pg_sql("""SELECT mv."modelId" AS "entityId", count(*) AS amount
FROM "ImageResourceNew" ir JOIN "Image" i ON i."id" = ir."imageId"
JOIN "ModelVersion" mv ON mv."id" = ir."modelVersionId"
GROUP BY mv."modelId\""""),
                pg_sql("""SELECT mv."modelId" AS "entityId", -sum(mvm."imageCount") AS amount
FROM "ModelVersionMetric" mvm JOIN "ModelVersion" mv ON mv."id" = mvm."modelVersionId" GROUP BY mv."modelId\""""),
            ),
        ),
    ),
    "Post.commentCount": (_replies("postId"),),
    "Post.collectedCount": (_null_adder("postId"),),
    "Image.commentCount": (_replies("imageId"),),
    "Image.Collection": (_null_adder("imageId"),),
    "Image.tippedCount": tuple(_tip_causes("Image", "tippedCount")),
    "Image.tippedAmount": tuple(_tip_causes("Image", "tippedAmount")),
    "Collection.followerCount": (
        Cause(
            "rows without VIEW",
            "contributor rows without the VIEW permission (ADD-only, the owner's MANAGE row, NULL/empty): the "
            "processor counts VIEW rows, live every row",
            (
                pg_sql("""SELECT cc."collectionId" AS "entityId", count(*) AS amount FROM "CollectionContributor" cc
WHERE NOT COALESCE('VIEW' = ANY(cc."permissions"), false) GROUP BY cc."collectionId\""""),
            ),
        ),
    ),
    "Collection.contributorCount": (
        Cause(
            "non-VIEW rows without ADD",
            "ADD_REVIEW-only or MANAGE-only rows: the processor counts rows containing ADD, live any non-VIEW "
            "permission",
            (
                pg_sql("""SELECT cc."collectionId" AS "entityId", count(*) AS amount FROM "CollectionContributor" cc
WHERE COALESCE(cc."permissions" && ARRAY['ADD', 'ADD_REVIEW', 'MANAGE']::"CollectionContributorPermission"[], false)
  AND NOT COALESCE('ADD' = ANY(cc."permissions"), false)
GROUP BY cc."collectionId\""""),
            ),
        ),
    ),
    "Collection.itemCount": (_null_adder("collectionId"),),
    "Article.commentCount": (_replies("articleId"),),
    "Article.collectedCount": (_null_adder("articleId"),),
    "Article.tippedCount": tuple(_tip_causes("Article", "tippedCount")),
    "Article.tippedAmount": tuple(_tip_causes("Article", "tippedAmount")),
    "Bounty.commentCount": (_replies("bountyId"),),
    "Bounty.entryCount": (
        Cause(
            "entries of deleted users",
            "entries whose author was deleted (userId NULL): the processor counts them, live drops them",
            (
                pg_sql(
                    'SELECT be."bountyId" AS "entityId", -count(*) AS amount FROM "BountyEntry" be\n'
                    'WHERE be."userId" IS NULL GROUP BY be."bountyId"'
                ),
            ),
        ),
    ),
    "bountyEntry.tippedCount": tuple(_tip_causes("bountyEntry", "tippedCount")),
    "bountyEntry.tippedAmount": tuple(_tip_causes("bountyEntry", "tippedAmount")),
    "ComicProject.tippedCount": tuple(_tip_causes("ComicProject", "tippedCount")),
    "ComicProject.tippedAmount": tuple(_tip_causes("ComicProject", "tippedAmount")),
    "Comic.readerCount": (
        Cause(
            "readChapters vs ComicChapterRead",
            "live counted engagement rows with a non-empty readChapters (no longer written); the processor counts "
            "distinct readers in ComicChapterRead",
            (
                pg_sql("""SELECT e."projectId" AS "entityId", count(*) AS amount FROM "ComicProjectEngagement" e
WHERE COALESCE(cardinality(e."readChapters"), 0) > 0 GROUP BY e."projectId\""""),
                pg_sql("""SELECT cc."projectId" AS "entityId", -count(DISTINCT cr."userId") AS amount
FROM "ComicChapterRead" cr JOIN "ComicChapter" cc ON cc."id" = cr."chapterId"
WHERE NOT cr."unread" GROUP BY cc."projectId\""""),
            ),
        ),
    ),
    "Comic.chapterReadCount": (
        Cause(
            "readChapters vs ComicChapterRead",
            "live added the length of readChapters (no longer written); the processor counts ComicChapterRead rows",
            (
                pg_sql("""SELECT e."projectId" AS "entityId", sum(COALESCE(cardinality(e."readChapters"), 0)) AS amount
FROM "ComicProjectEngagement" e GROUP BY e."projectId\""""),
                pg_sql("""SELECT cc."projectId" AS "entityId", -count(*) AS amount
FROM "ComicChapterRead" cr JOIN "ComicChapter" cc ON cc."id" = cr."chapterId"
WHERE NOT cr."unread" GROUP BY cc."projectId\""""),
            ),
        ),
    ),
}

#: Built-in causes (computed from D, T, R, N per entity): column in the entity table -> (name, description).
BUILTIN_CAUSES: Final[tuple[tuple[str, str, str], ...]] = (
    (
        "b_presence",
        "presence vs sum",
        "the site counts distinct users with a positive sum, not the sum of the events; the difference between the two",
    ),
    (
        "b_before",
        "target before the cutoff vs replay",
        (
            "target rows before the cutoff that a replay of today's rows does not give: other writers, legacy or "
            "aggregate rows, earlier runs, rows deleted since the backfill"
        ),
    ),
    (
        "b_since",
        "since the cutoff: live events vs replay",
        (
            "rows created since the cutoff without (or with different) live events, and deletes / handled updates "
            "after the cutoff"
        ),
    ),
    (
        "b_frozen",
        "frozen counter",
        "the processors no longer compute this counter: T = D, the events count every source row",
    ),
    (
        "b_kept",
        "kept displayed value",
        "no source rows left for the entity: a processor writes no result row and keeps the displayed value",
    ),
    (
        "b_missing",
        "entity missing in PostgreSQL",
        (
            "no parent row in PostgreSQL: no *Metric row can be written, so T = 0 whatever the truth SQL gives "
            "(amount = that value); the events may still count the entity"
        ),
    ),
    ("b_new", "new counter", "no displayed counter today: the events introduce it"),
)

PAIR_NOTES: Final[Mapping[str, str]] = {
    **{p: "processor reads the events back today; T is the last PostgreSQL formula" for p in CIRCULAR},
    "ModelVersion.imageCount": "frozen: the processors no longer compute it (T = D)",
    "Model.commentCount": "zero-seeded by the processor",
    **{
        f"{e}.tippedAmount": "live emits a tip's first amount (top-ups are not captured): a top-up after the "
        "cutoff is missing from N; the replay uses the accumulated amount"
        for e in ("Model", "Image", "Article", "bountyEntry", "ComicProject")
    },
    "User.reactionCount": "truth from the reaction log (ClickHouse), live from images, articles and entries",
}


def cause_catalog() -> list[dict[str, Any]]:
    """The cause catalog as plain rows (pair, cause, description, [(engine, sql)]), for documentation."""
    return [
        {"pair": pair, "cause": c.name, "description": c.description, "queries": [(q.engine, q.sql) for q in c.queries]}
        for pair, causes in sorted(CAUSES.items())
        for c in causes
    ]


# =================================================================================================
# The report
# =================================================================================================

_FACTS = (
    "entityType LowCardinality(String), entityId Int32, metricType LowCardinality(String), "
    "kind LowCardinality(String), amount Int64"
)
_PG_TRUTH_STRUCTURE = "entityId Nullable(Int32), metricType String, value Nullable(Int64)"
_PG_CAUSE_STRUCTURE = "entityId Nullable(Int32), amount Nullable(Int64)"
_PG_ID_STRUCTURE = "id Nullable(Int32)"
_EXPECTED_STRUCTURE = "entityType String, entityId Nullable(Int32), metricType String, total Int64, events Int64"


def _naive_utc(value: datetime) -> datetime:
    if value.utcoffset() is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _split_pair(pair: str) -> tuple[str, str]:
    try:
        return tuple(Pair.parse(pair))  # type: ignore[return-value]
    except ValueError:
        raise ConfigError(f"pair {pair!r} must be Entity.metric") from None


def _split_table(name: str, default_db: str) -> tuple[str, str]:
    parts = [p.strip("`") for p in name.split(".", 1)] if name else []
    if not parts or not parts[-1]:
        raise ConfigError(f"target {name!r} must be a table name, db.table")
    return (parts[0], parts[1]) if len(parts) == 2 else (default_db, parts[0])


def _ch_name(name: str) -> str:
    """A possibly db-qualified ClickHouse name (letters, digits and _ only), back-quoted."""
    return ".".join(quote_ident(checked_ident(p, "ClickHouse table name")) for p in name.split("."))


def _tuple_list(pairs: Sequence[str]) -> str:
    return ", ".join(f"({literal(et)}, {literal(mt)})" for et, mt in (_split_pair(p) for p in pairs)) or "('', '')"


def compared_pairs() -> set[str]:
    """Every pair that has a displayed counter (and so a T and a D)."""
    out = {f"{t.entity_type}.{m}" for t in TRUTHS for m in t.metrics}
    out |= {f"Image.{m}" for m in IMAGE_DISPLAYED}
    out |= FROZEN
    return out


class _Run:
    """One report: the scratch database, the snapshot and the fact table."""

    def __init__(
        self,
        pg: Postgres,
        chc: ClickHouse,
        *,
        target: tuple[str, str],
        earnings_target: tuple[str, str],
        cutoff: datetime,
        cutoff_date: date,
        compared: list[str],
        new: list[str],
        presence: set[str],
        scratch: str,
        ch_tables: Mapping[str, str],
        truth_tables: Mapping[str, str],
        generation_value: str,
        earnings_source: str,
        etypes: list[str],
    ) -> None:
        self.pg, self.ch = pg, chc
        self.target, self.earnings_target = target, earnings_target
        self.cutoff, self.cutoff_date = cutoff, cutoff_date
        self.compared, self.new, self.presence = compared, new, presence
        self.scratch = scratch
        self.facts = qualified(scratch, "facts")
        self.ch_tables, self.truth_tables = ch_tables, truth_tables
        self.generation_value, self.earnings_source, self.etypes = generation_value, earnings_source, etypes
        g = GENERATION_VALUE[generation_value]
        self.subst = {
            **{k: _ch_name(v) for k, v in ch_tables.items()},
            **{k: _ch_name(v) for k, v in truth_tables.items()},
            "scratch": quote_ident(scratch),
            "g": g,
        }

    # -- helpers ---------------------------------------------------------------------------------
    def _subst(self, sql: str) -> str:
        return Template(sql).substitute(self.subst)

    def _insert_pg(self, snap: Snapshot, sql: str, structure: str, select: str, what: str) -> None:
        rows = snap.copy(sql, None, what=what)  # type: ignore[arg-type]
        self.ch.feed.run(
            lambda rows_sql: (
                f"INSERT INTO {self.facts} (entityType, entityId, metricType, kind, amount)\n"
                + select.replace("$ROWS", rows_sql)
            ),
            structure,
            rows,
            settings={},
        )

    def _insert_ch(self, select: str, what: str) -> None:
        self.ch.command(
            f"INSERT INTO {self.facts} (entityType, entityId, metricType, kind, amount)\n{select}", what=what
        )

    # -- setup -----------------------------------------------------------------------------------
    def create(self) -> None:
        self.ch.command(
            f"CREATE TABLE {self.facts} ({_FACTS}) ENGINE = MergeTree ORDER BY (entityType, metricType, entityId)",
            what="creating a scratch table",
        )
        self.ch.command(
            f"CREATE TABLE {qualified(self.scratch, 'ids')} (name LowCardinality(String), id Int32) "
            "ENGINE = MergeTree ORDER BY (name, id)",
            what="creating a scratch table",
        )
        self.ch.command(
            f"CREATE TABLE {qualified(self.scratch, 'conf')} (entityType String, metricType String, "
            "presence UInt8, frozen UInt8, zero_seeded UInt8, parent String, is_new UInt8) "
            "ENGINE = MergeTree ORDER BY (entityType, metricType)",
            what="creating a scratch table",
        )
        rows = []
        for p in self.compared + self.new:
            et, mt = _split_pair(p)
            rows.append(
                (
                    et,
                    mt,
                    int(mt in self.presence),
                    int(p in FROZEN),
                    int(p in ZERO_SEEDED),
                    PARENT.get(et, "") if p in self.compared else "",
                    int(p in self.new),
                )
            )
        self.ch.insert(
            qualified(self.scratch, "conf"),
            rows,
            ["entityType", "metricType", "presence", "frozen", "zero_seeded", "parent", "is_new"],
            what="writing the pair configuration",
        )

    def load_ids(self, snap: Snapshot, names: set[str]) -> None:
        table = qualified(self.scratch, "ids")
        for name in sorted(names):
            rows = snap.copy(LOOKUPS[name], None, what=f"listing {name} ids")  # type: ignore[arg-type]

            def statement(rows_sql: str, name: str = name) -> str:
                return f"INSERT INTO {table} (name, id) SELECT {literal(name)}, id FROM {rows_sql} WHERE id IS NOT NULL"

            self.ch.feed.run(statement, _PG_ID_STRUCTURE, rows, settings={})

    # -- D ---------------------------------------------------------------------------------------
    def load_displayed(self, snap: Snapshot) -> None:
        by_type: dict[str, list[str]] = defaultdict(list)
        for p in self.compared:
            et, mt = _split_pair(p)
            if et != "Image":
                by_type[et].append(mt)
        for et, metrics in sorted(by_type.items()):
            d = DISPLAYED[et]
            values = ", ".join(f"('{m}', m.\"{d.columns[m]}\"::bigint)" for m in metrics)
            where = " WHERE m.\"timeframe\" = 'AllTime'" if d.timeframe else ""
            sql = (
                f'SELECT m."{d.key}" AS "entityId", v.mt AS "metricType", v.x AS value\n'
                f'FROM "{d.table}" m CROSS JOIN LATERAL (VALUES {values}) v(mt, x){where}'
            )
            self._insert_pg(
                snap,
                sql,
                _PG_TRUTH_STRUCTURE,
                f"SELECT {literal(et)}, entityId, metricType, 'D', ifNull(value, 0) FROM $ROWS "
                f"WHERE entityId IS NOT NULL",
                f"reading {d.table}",
            )
        images = [_split_pair(p)[1] for p in self.compared if p.startswith("Image.")]
        if images:
            names = list(images) + [legacy for legacy, canon in LEGACY_IMAGE_NAMES.items() if canon in images]
            fold = (
                "multiIf("
                + ", ".join(f"metricType = {literal(a)}, {literal(b)}" for a, b in LEGACY_IMAGE_NAMES.items())
                + ", metricType)"
            )
            self._insert_ch(
                f"""SELECT 'Image', entityId, {fold} AS m, 'D', toInt64(sum(metricValue))
FROM {self._from_target(self.target)}
WHERE entityType = 'Image' AND metricType IN ({", ".join(literal(n) for n in names)})
GROUP BY entityId, m""",
                "reading today's image counters",
            )

    def _from_target(self, table: tuple[str, str]) -> str:
        engine = self.ch.engine(*table) or ""
        return qualified(*table) + (" FINAL" if "Replacing" in engine else "")

    # -- T and causes ----------------------------------------------------------------------------
    def load_truths(self, snap: Snapshot) -> None:
        wanted = set(self.compared)
        for t in TRUTHS:
            metrics = [m for m in t.metrics if f"{t.entity_type}.{m}" in wanted]
            if not metrics:
                continue
            keep = f"metricType IN ({', '.join(literal(m) for m in metrics)})"
            what = f"computing the truth of {t.entity_type}.{'/'.join(metrics)}"
            if t.query.engine == "pg":
                self._insert_pg(
                    snap,
                    t.query.sql,
                    _PG_TRUTH_STRUCTURE,
                    f"SELECT {literal(t.entity_type)}, entityId, metricType, 'T', ifNull(value, 0) "
                    f"FROM $ROWS WHERE entityId IS NOT NULL AND {keep}",
                    what,
                )
            else:
                self._insert_ch(
                    f"SELECT {literal(t.entity_type)}, toInt32(entityId), metricType, 'T', "
                    f"toInt64(value)\nFROM (\n{self._subst(t.query.sql)}\n) WHERE {keep}",
                    what,
                )

    def load_causes(self, snap: Snapshot) -> None:
        for p in self.compared:
            et, mt = _split_pair(p)
            for cause in CAUSES.get(p, ()):
                kind = literal("cause:" + cause.name)
                what = f"computing cause {cause.name!r} of {p}"
                for q in cause.queries:
                    if q.engine == "pg":
                        self._insert_pg(
                            snap,
                            q.sql,
                            _PG_CAUSE_STRUCTURE,
                            f"SELECT {literal(et)}, entityId, {literal(mt)}, {kind}, amount FROM $ROWS "
                            f"WHERE entityId IS NOT NULL AND amount IS NOT NULL AND amount != 0",
                            what,
                        )
                    else:
                        self._insert_ch(
                            f"SELECT {literal(et)}, toInt32(entityId), {literal(mt)}, {kind}, "
                            f"toInt64(amount)\nFROM (\n{self._subst(q.sql)}\n) WHERE amount != 0",
                            what,
                        )

    # -- R (replay of today's rows, at the cutoff and with no cutoff) ----------------------------
    def load_replay(self, snap: Snapshot) -> None:
        include_comic = any(p.startswith("Comic.") for p in self.compared)
        queries = expected_queries(
            buzztip_entity_types=self.etypes,
            include_comic=include_comic,
            earnings_source=self.earnings_source,
            generation_value=self.generation_value,
            ch_tables=self.ch_tables,
            lookup_db=self.scratch,
        )
        wanted = set(self.compared)
        keep = f"(entityType, metricType) IN ({_tuple_list(self.compared)})"
        for kind, cutoff, cutoff_date in (("Rc", self.cutoff, self.cutoff_date), ("Ri", _FAR_FUTURE, _FAR_FUTURE_DATE)):
            for q in queries:
                if not wanted.intersection(q.pairs):
                    continue
                self._load_expected(snap, q, kind, keep, cutoff, cutoff_date)

    def _load_expected(
        self, snap: Snapshot, q: ExpectedQuery, kind: str, keep: str, cutoff: datetime, cutoff_date: date
    ) -> None:
        """The `_verify.load_expected` pattern, inside this report's snapshot."""
        params = q.parameters(cutoff=cutoff, cutoff_date=cutoff_date)
        what = f"replaying {q.source}"
        select = f"SELECT entityType, toInt32(entityId), metricType, {literal(kind)}, toInt64(total)"
        if q.engine == "pg":
            rows = snap.copy(q.sql, params, what=what)
            insert = f"INSERT INTO {self.facts} (entityType, entityId, metricType, kind, amount)\n{select} FROM "
            self.ch.feed.run(
                lambda rows_sql: f"{insert}{rows_sql} WHERE entityId IS NOT NULL AND {keep}",
                _EXPECTED_STRUCTURE,
                rows,
                settings={},
            )
        else:
            self.ch.command(
                f"INSERT INTO {self.facts} (entityType, entityId, metricType, kind, amount)\n"
                f"{select} FROM (\n{q.sql}\n) WHERE entityId IS NOT NULL AND {keep}",
                parameters=params,
                what=what,
            )

    # -- N ---------------------------------------------------------------------------------------
    def load_events(self) -> None:
        pairs = self.compared + self.new
        earnings = [p for p in pairs if p.endswith(".earnedAmount")]
        others = [p for p in pairs if p not in earnings]
        cutoff = f"toDateTime64({literal(self.cutoff.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3])}, 3, 'UTC')"
        for table, chosen in ((self.target, others), (self.earnings_target, earnings)):
            if not chosen:
                continue
            src = self._from_target(table)
            self._insert_ch(
                f"""SELECT entityType, entityId, metricType, if(createdAt < {cutoff}, 'Npre', 'Npost') AS k,
       toInt64(sum(metricValue))
FROM {src} WHERE (entityType, metricType) IN ({_tuple_list(chosen)})
GROUP BY entityType, entityId, metricType, k""",
                "summing the target's events",
            )
            presence = [p for p in chosen if _split_pair(p)[1] in self.presence]
            if presence:
                self._insert_ch(
                    f"""SELECT entityType, entityId, metricType, 'Npres', toInt64(countIf(s > 0))
FROM (SELECT entityType, entityId, metricType, userId, sum(metricValue) AS s
      FROM {src} WHERE (entityType, metricType) IN ({_tuple_list(presence)})
      GROUP BY entityType, entityId, metricType, userId)
GROUP BY entityType, entityId, metricType""",
                    "counting users per entity (presence pairs)",
                )

    def live_rows(self) -> int:
        """Rows of the selected pairs at or after the cutoff in the target(s)."""
        cutoff = f"toDateTime64({literal(self.cutoff.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3])}, 3, 'UTC')"
        pairs = self.compared + self.new
        if not pairs:
            return 0
        n = 0
        for table in dict.fromkeys((self.target, self.earnings_target)):
            n += int(
                self.ch.query(
                    f"SELECT count() FROM {qualified(*table)} WHERE createdAt >= {cutoff} "
                    f"AND (entityType, metricType) IN ({_tuple_list(pairs)})",
                    what="counting the live events",
                )[0][0]
            )
        return n

    # -- join ------------------------------------------------------------------------------------
    def build_entities(self) -> None:
        ent = qualified(self.scratch, "entities")
        ids = qualified(self.scratch, "ids")
        conf = qualified(self.scratch, "conf")
        self.ch.command(
            f"""
CREATE TABLE {ent} ENGINE = MergeTree ORDER BY (entityType, metricType, entityId) AS
SELECT entityType, entityId, metricType, D, Traw, Rc, Ri, Npre, Npost, Nsum, N, T, C,
       b_presence, b_before, b_since, b_frozen, b_kept, b_missing, b_new,
       if(is_new = 1, 0, (N - T) - C - b_presence - b_before - b_since - b_frozen - b_kept - b_missing) AS unexplained
FROM (
    SELECT a.entityType AS entityType, a.entityId AS entityId, a.metricType AS metricType,
           a.D AS D, a.Traw AS Traw, a.hasT AS hasT, a.Rc AS Rc, a.Ri AS Ri, a.Npre AS Npre, a.Npost AS Npost,
           a.C AS C, c.is_new AS is_new, c.frozen AS frozen,
           a.Npre + a.Npost AS Nsum,
           if(c.presence = 1, a.Npres, Nsum) AS N,
           c.parent = '' OR (c.parent, a.entityId) IN (SELECT name, id FROM {ids}) AS exists_,
           multiIf(c.is_new = 1, 0, NOT exists_, 0, c.frozen = 1, a.D, a.hasT OR c.zero_seeded = 1, a.Traw, a.D) AS T,
           if(c.is_new = 1, 0, N - Nsum) AS b_presence,
           if(c.is_new = 1, 0, a.Npre - a.Rc) AS b_before,
           if(c.is_new = 1, 0, a.Npost - (a.Ri - a.Rc)) AS b_since,
           if(c.is_new = 0 AND c.frozen = 1, a.Ri - T, 0) AS b_frozen,
           if(c.is_new = 0 AND c.frozen = 0 AND exists_, a.Traw - T, 0) AS b_kept,
           if(c.is_new = 0 AND c.frozen = 0 AND NOT exists_, a.Traw - T, 0) AS b_missing,
           if(c.is_new = 1, N, 0) AS b_new
    FROM (
        SELECT entityType, entityId, metricType,
               sumIf(amount, kind = 'D') AS D, sumIf(amount, kind = 'T') AS Traw, countIf(kind = 'T') > 0 AS hasT,
               sumIf(amount, kind = 'Rc') AS Rc, sumIf(amount, kind = 'Ri') AS Ri,
               sumIf(amount, kind = 'Npre') AS Npre, sumIf(amount, kind = 'Npost') AS Npost,
               sumIf(amount, kind = 'Npres') AS Npres,
               sumIf(amount, startsWith(kind, 'cause:')) AS C
        FROM {self.facts} GROUP BY entityType, entityId, metricType
    ) a INNER JOIN {conf} c ON c.entityType = a.entityType AND c.metricType = a.metricType
)""",
            what="joining D, T and N per entity",
        )

    def summarize(self) -> dict[str, PairCutover]:
        ent = qualified(self.scratch, "entities")
        out: dict[str, PairCutover] = {}
        builtin_cols = [b[0] for b in BUILTIN_CAUSES]
        b_aggs = ", ".join(f"countIf({b} != 0), sum({b})" for b in builtin_cols)
        rows = self.ch.query(
            f"""
SELECT entityType, metricType, count(), countIf(N != D), sum(N - D), sum(abs(N - D)), sum(T - D), sum(N - T),
       sum(unexplained), countIf(unexplained != 0),
       countIf(N != D AND T != D AND N = T), countIf(N != D AND T = D), countIf(N != D AND T != D AND N != T),
       sum(D), sum(T), sum(N), {b_aggs}
FROM {ent} GROUP BY entityType, metricType""",
            what="summarizing the cutover diff",
        )
        builtins: dict[str, list[CauseShare]] = {}
        for r in rows:
            et, mt = str(r[0]), str(r[1])
            v = [int(x) for x in r[2:]]
            p = PairCutover(
                pair=f"{et}.{mt}",
                status="compared",
                entities=v[0],
                changed=v[1],
                sum_diff=v[2],
                sum_abs_diff=v[3],
                staleness=v[4],
                semantic=v[5],
                unexplained=v[6],
                unexplained_entities=v[7],
                changed_split={"staleness": v[8], "semantic": v[9], "both": v[10]},
                totals={"D": v[11], "T": v[12], "N": v[13]},
            )
            out[p.pair] = p
            shares = []
            for i, (_col, name, desc) in enumerate(BUILTIN_CAUSES):
                n, amount = v[14 + 2 * i], v[15 + 2 * i]
                if n:
                    shares.append(CauseShare(name, n, amount, desc))
            builtins[p.pair] = shares
        catalog: dict[tuple[str, str], tuple[int, int]] = {}
        for et, mt, kind, n, amount in self.ch.query(
            f"""
SELECT entityType, metricType, kind, countIf(s != 0), sum(s)
FROM (SELECT entityType, metricType, entityId, kind, sum(amount) AS s FROM {self.facts}
      WHERE startsWith(kind, 'cause:') GROUP BY entityType, metricType, entityId, kind)
GROUP BY entityType, metricType, kind""",
            what="summarizing the causes",
        ):
            catalog[(f"{et}.{mt}", str(kind)[len("cause:") :])] = (int(n), int(amount))
        for pair, p in out.items():
            declared = [
                CauseShare(c.name, *catalog.get((pair, c.name), (0, 0)), c.description) for c in CAUSES.get(pair, ())
            ]
            p.causes = declared + builtins.get(pair, [])
        for et, mt, eid, d, t, n in self.ch.query(
            f"""
SELECT entityType, metricType, entityId, D, T, N FROM {ent} WHERE N != D
ORDER BY abs(N - D) DESC, entityId LIMIT 20 BY entityType, metricType""",
            what="listing the largest changes",
        ):
            out[f"{et}.{mt}"].largest.append({"entityId": int(eid), "D": int(d), "T": int(t), "N": int(n)})
        bins = {label: i for i, (label, _lo, _hi) in enumerate(HISTOGRAM_BINS)}
        expr = (
            "multiIf("
            + ", ".join(f"d <= {hi}, {literal(label)}" for label, _lo, hi in HISTOGRAM_BINS[:-1] if hi is not None)
            + f", {literal(HISTOGRAM_BINS[-1][0])})"
        )
        hist: dict[str, dict[str, int]] = defaultdict(dict)
        for et, mt, label, n in self.ch.query(
            f"""
SELECT entityType, metricType, {expr} AS bin, count() FROM (SELECT entityType, metricType, N - D AS d FROM {ent})
GROUP BY entityType, metricType, bin""",
            what="binning the differences",
        ):
            hist[f"{et}.{mt}"][str(label)] = int(n)
        for pair, p in out.items():
            p.histogram = [(label, hist[pair].get(label, 0)) for label in bins]
        return out


def cutover_report(
    pg: Postgres,
    ch: ClickHouse,
    *,
    target: str,
    cutoff: datetime,
    pairs: Sequence[str] | None = None,
    presence_metrics: Sequence[str] = REACTIONS,
    scratch_database: str = "metric_backfill",
    ch_tables: Mapping[str, str] | None = None,
    truth_tables: Mapping[str, str] | None = None,
    earnings_target: str | None = None,
    earnings_source: str = "resourceCompensations",
    generation_value: str = "one",
) -> CutoverReport:
    """The cutover diff of docs/semantics.md §6 for `pairs` (default: every pair the pipeline emits, Comic.* excluded).

    `target` is the qualified events table the site will read (`db.table`); `earnedAmount` is read
    from `earnings_target` (default: `entityMetricEvents` in the target's database when it exists,
    else the target; README R6). `ch_tables` / `truth_tables` map the logical ClickHouse source and
    truth-support tables to real names. `earnings_source` and `generation_value` select the replay
    rules as for the run. The scratch database `<scratch_database>_cutover_<token>` is dropped at
    the end.
    """
    if isinstance(pairs, str) or isinstance(presence_metrics, str):
        raise ConfigError("pairs and presence_metrics must be sequences of names, not one string")
    cutoff = _naive_utc(cutoff)
    cutoff_date = first_day_not_before(cutoff)
    tables = dict(DEFAULT_CH_TABLES)
    for key, value in (ch_tables or {}).items():
        if key not in DEFAULT_CH_TABLES:
            raise ConfigError(f"unknown ClickHouse source table {key!r}; expected one of {sorted(DEFAULT_CH_TABLES)}")
        tables[key] = value
    truths = dict(DEFAULT_TRUTH_TABLES)
    for key, value in (truth_tables or {}).items():
        if key not in DEFAULT_TRUTH_TABLES:
            raise ConfigError(f"unknown truth-support table {key!r}; expected one of {sorted(DEFAULT_TRUTH_TABLES)}")
        truths[key] = value
    tgt = _split_table(target, ch.default_database)
    if ch.engine(*tgt) is None:
        raise ConfigError(f"target table {target!r} does not exist: name the events table the site reads (db.table)")
    if earnings_target:
        earn = _split_table(earnings_target, ch.default_database)
    else:
        earn = (tgt[0], "entityMetricEvents")
        if ch.engine(*earn) is None:
            earn = tgt

    generated_at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    with pg.snapshot() as snap:
        etypes = discover_entity_types(snap)
        catalog = sorted(
            {p for q in expected_queries(buzztip_entity_types=etypes, include_comic=True) for p in q.pairs}
        )
        if pairs is None:
            selected = [p for p in catalog if not p.startswith("Comic.")]
        else:
            selected = list(dict.fromkeys(pairs))
            unknown = [p for p in selected if p not in catalog and p not in compared_pairs()]
            if unknown:
                raise ConfigError(
                    f"unknown pair(s) {', '.join(unknown)}: the pipeline emits none of them "
                    "(BuzzTip entity types come from the data)"
                )
        known = compared_pairs()
        compared = [p for p in selected if p in known]
        new = [p for p in selected if p not in known]
        with ch.scratch_database(f"{scratch_database}_cutover") as scratch:
            run = _Run(
                pg,
                ch,
                target=tgt,
                earnings_target=earn,
                cutoff=cutoff,
                cutoff_date=cutoff_date,
                compared=compared,
                new=new,
                presence=set(presence_metrics),
                scratch=scratch,
                ch_tables=tables,
                truth_tables=truths,
                generation_value=generation_value,
                earnings_source=earnings_source,
                etypes=etypes,
            )
            steps = iter(range(1, 9))

            def step(what: str) -> None:
                _log.info("cutover report: %s (%d/8)", what, next(steps), extra={"event": "cutover"})

            step("creating the scratch tables")
            run.create()
            lookups: set[str] = {PARENT[_split_pair(p)[0]] for p in compared if _split_pair(p)[0] in PARENT}
            for p in compared:
                for c in CAUSES.get(p, ()):
                    for q in c.queries:
                        lookups.update(q.lookups)
            step("copying the lookups and entity ids")
            load_lookups(snap, ch, scratch)
            run.load_ids(snap, lookups)
            step("reading the displayed counters")
            run.load_displayed(snap)
            step("recomputing the processors' truth")
            run.load_truths(snap)
            step("measuring the causes")
            run.load_causes(snap)
            step("replaying today's rows")
            run.load_replay(snap)
            snap.close()  # the rest is ClickHouse's: give PostgreSQL its sessions back now
            step("summing the target's events")
            run.load_events()
            live_rows = run.live_rows()
            step("joining per entity")
            run.build_entities()
            summary = run.summarize()

    result: list[PairCutover] = []
    for p in selected:
        mt = _split_pair(p)[1]
        s = summary.get(p)
        if p in new:
            s = s or PairCutover(pair=p, status="new")
            s.status = "new"
            s.causes = [c for c in s.causes if c.cause == "new counter"]
            s.note = "no displayed counter today"
        elif s is None or s.entities == 0:
            s = PairCutover(pair=p, status="no data", histogram=[(b[0], 0) for b in HISTOGRAM_BINS])
        s.presence = mt in set(presence_metrics)
        if p in PAIR_NOTES and p not in new:
            s.note = PAIR_NOTES[p]
        if not s.histogram:
            s.histogram = [(b[0], 0) for b in HISTOGRAM_BINS]
        result.append(s)
    result.sort(key=lambda x: (_split_pair(x.pair)[0].lower(), _split_pair(x.pair)[0], x.status != "compared", x.pair))
    return CutoverReport(
        generated_at=generated_at,
        cutoff=cutoff.strftime("%Y-%m-%d %H:%M:%S"),
        target=f"{tgt[0]}.{tgt[1]}",
        pairs=result,
        live_rows=live_rows,
    )


def cutover(cfg: RunConfig, truth_tables: Mapping[str, str] | None = None) -> CutoverReport:
    """The cutover report for a run configuration's target and selection (what `verify --against
    processors` shows)."""
    from metric_backfill.engine._target import resolve_targets

    with ClickHouse(cfg.clickhouse_url) as ch:
        main, earn, name, _ = resolve_targets(ch, cfg, create=False)
        if main is None:
            raise ConfigError(f"target {name[0]}.{name[1]} does not exist: check --table")
        return cutover_report(
            Postgres(cfg.pg_url, lock_timeout=cfg.pg_lock_timeout, statement_timeout=cfg.pg_statement_timeout),
            ch,
            target=main.label,
            cutoff=cfg.cutoff,
            pairs=[str(p) for p in cfg.only] or None,
            scratch_database=cfg.state_database,
            ch_tables=cfg.ch_tables,
            truth_tables=dict(truth_tables or {}) or None,
            earnings_target=earn.label if earn else None,
            earnings_source=cfg.earnings_source,
            generation_value=cfg.generation_value,
        )
