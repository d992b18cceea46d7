"""Deterministic, seeded generator of realistic source data for the backfill.

`generate()` fills an EMPTY PostgreSQL database (the site's schema, sql/postgres.sql) and creates
and fills the ClickHouse source and truth-support tables of sql/clickhouse.sql (never the targets).
It serves the tests (scale 0.02), the demo and the benchmark (scale 1 = about one million source
event rows; linear in `scale`).

How it stays fast and deterministic:

* All rows are produced inside the databases by set-based SQL (`INSERT ... SELECT` over
  `generate_series` / `numbers`), never row by row in Python. The only bytes that travel through
  Python are lookups one engine needs from the other (version -> model for downloads, reaction rows
  for the ClickHouse reaction log, ClickHouse aggregates for the displayed *Metric values).
* No random()/setseed: every pseudo-random value is a hash of (seed, column salt, row number):
  PostgreSQL `hashint8extended(row, key)`, ClickHouse `cityHash64(key, row)`, where `key` is derived
  from (seed, salt) in Python. Explicit ids, `DISTINCT ON (...) ORDER BY ..., g` for de-duplication
  and `row_number() OVER (ORDER BY ts, g)` for id assignment make the content independent of plan
  shape and parallelism.
* Skew: entity choices use a power law on a uniform u (`rank = floor(n * u^k)`), scattered over the
  ids by the bijection `id = 1 + (rank * P + off) % n`. The same bijection is used for every table
  that points at one entity type, so the hot images of reactions are also the hot images of
  comments, tips and collections.
* Edge cases are assigned by exact counts, not by chance: rows are ranked by a seeded hash of their
  row number (a window function) and each "kind" takes the next max(min_rows, fraction * n) ranks.
  So every edge case exists at every scale and for every seed, independently of other columns.
* Time first: an event draws its time from the growth curve, then picks its (hot) parents among
  those that already existed then (parent ids ascend with time), so no table is skewed late.

Time: UTC wall clock, `timestamp(3)` with millisecond parts, from 2022-01-01 to cutoff + 60 days
with linear growth of activity, which puts roughly 5-10 % of each table at or after the cutoff.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.resources
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill.backends._postgres import DataLoader


__all__ = ["CH_SOURCE_TABLES", "DEFAULT_CUTOFF", "SOURCE_EVENT_TABLES", "generate"]

DEFAULT_CUTOFF = dt.datetime(2025, 10, 1)  # naive, UTC
HISTORY_START = dt.datetime(2022, 1, 1)
HORIZON = dt.timedelta(days=60)  # data continues this long after the cutoff
# Activity grows linearly over time (density ~ GROWTH_FLOOR + x on [0, 1]); with a 60-day horizon
# after a cutoff ~3.75 years in, about 7 % of the rows land at or after the cutoff.
GROWTH_FLOOR = 0.25
# BuzzTip rows older than its createdAt column carry the time that column was added (postgres.sql).
BUZZTIP_CREATED_AT_ADDED = dt.datetime(2023, 3, 14, 17, 0, 0)
# Special user ids of modelVersionEvents: -1 and 490053 are filtered before the live pipeline.
FILTERED_DOWNLOAD_USERS = (-1, 490053)

# Tables whose rows count as "source event rows" (docs/sources.md §1-§24); keys as returned by generate().
SOURCE_EVENT_TABLES: tuple[str, ...] = (
    "UserEngagement",
    "ImageReaction",
    "ArticleReaction",
    "BountyEntryReaction",
    "ResourceReview",
    "CollectionItem",
    "CollectionContributor",
    "Comment",
    "CommentV2",
    "ImageResourceNew",
    "BuzzTip",
    "TagEngagement",
    "BountyEngagement",
    "BountyBenefactor",
    "ComicProjectEngagement",
    "ch:modelVersionEvents",
    "ch:jobs",
    "ch:buzz_resource_compensation",
    "ch:resourceCompensations",
)
# ClickHouse objects created here: (logical database, name). Targets are never created.
CH_SOURCE_TABLES: tuple[tuple[str, str], ...] = (
    ("default", "modelVersionEvents"),
    ("orchestration", "jobs"),
    ("default", "buzz_resource_compensation"),
    ("orchestration", "resourceCompensations"),
    ("default", "daily_downloads_unique"),
    ("default", "daily_downloads_unique_mv"),
    ("orchestration", "daily_resource_generation_counts"),
    ("default", "reactions"),
)
_CH_VIEWS = {"daily_downloads_unique_mv"}
# Constraints declared by the ORM but missing in production ("[no FK in prod]"): dropped so that
# orphans can exist.
_DROPPED_FKS = (
    ("ImageReaction", "ImageReaction_imageId_fkey"),
    ("Thread", "Thread_imageId_fkey"),
    ("ImageResourceNew", "ImageResourceNew_imageId_fkey"),
    ("ImageResourceNew", "ImageResourceNew_modelVersionId_fkey"),
)

# --------------------------------------------------------------------------------------------
# Volumes: rows at scale 1 and a floor that keeps tiny scales meaningful. Event tables give the
# number of candidate rows; de-duplication on their unique keys removes a few percent.
# --------------------------------------------------------------------------------------------
_SIZES: dict[str, tuple[int, int]] = {
    # parents / lookups
    "User": (20_000, 400),
    "Tag": (1_500, 60),
    "Model": (3_000, 100),
    "ModelVersion": (6_000, 200),
    "Collection": (3_000, 100),
    "Post": (15_000, 300),
    "Image": (50_000, 1_000),
    "Article": (2_000, 100),
    "Bounty": (600, 40),
    "BountyEntry": (2_500, 120),
    "ComicProject": (200, 20),
    "ComicChapter": (1_000, 100),
    # event tables (candidates)
    "UserEngagement": (50_000, 1_000),
    "ImageReaction": (355_000, 7_100),
    "ArticleReaction": (20_000, 400),
    "BountyEntryReaction": (8_000, 160),
    "ResourceReview": (25_000, 500),
    "CollectionItem": (60_000, 1_200),
    "CollectionContributor": (12_000, 240),  # plus the owner's MANAGE row of every collection
    "Comment": (15_000, 300),
    "CommentV2": (50_000, 1_000),
    "ImageResourceNew": (60_000, 1_200),
    "BuzzTip": (30_000, 600),
    "TagEngagement": (15_000, 300),
    "BountyEngagement": (6_000, 150),
    "BountyBenefactor": (5_000, 100),  # plus the creator's own row of every bounty
    "ComicProjectEngagement": (6_000, 150),
    "ComicChapterRead": (5_000, 100),
    # truth-only tables
    "ArticleEngagement": (3_000, 60),
    "DonationGoal": (150, 10),
    "Donation": (1_500, 50),
    # ClickHouse
    "ch:modelVersionEvents": (150_000, 3_000),
    "ch:jobs": (100_000, 2_000),
    "ch:buzz_resource_compensation": (9_000, 180),  # (day, version) keys; 1-3 revisions each
    "ch:resourceCompensations": (6_000, 120),  # (day, version) keys; 1-3 account/source rows each
    "ch:reactions.other": (40_000, 800),  # log rows of the other reactable kinds
}


@dataclass(frozen=True)
class Edge:
    """An edge case: `fraction` of the table's rows, but never fewer than `min_rows`."""

    fraction: float
    min_rows: int


# --------------------------------------------------------------------------------------------
# Edge-case shares (see the module docstring: exact counts, present at every scale)
# --------------------------------------------------------------------------------------------
AT_CUTOFF = Edge(0.0001, 3)  # createdAt exactly = cutoff, in every event table
BEFORE_CUTOFF = Edge(0.0001, 3)  # createdAt = cutoff - 1 ms (- 1 s for DateTime columns)
USER_DELETED, USER_BANNED, USER_MODERATOR, USER_MUTED = Edge(0.01, 2), Edge(0.005, 2), Edge(0.001, 2), Edge(0.005, 2)
IMAGE_WITHOUT_POST = Edge(0.10, 10)
IMAGE_REACTION_ORPHAN = Edge(0.005, 5)  # imageId without an Image row
POST_DRAFT = Edge(0.08, 5)  # publishedAt NULL
POST_SCHEDULED = Edge(0.015, 4)  # createdAt < cutoff <= publishedAt (future, scheduled)
POST_CONTEST = Edge(0.01, 3)  # posted into a contest collection
MV_PUBLISHED_NULL_DATE = Edge(0.01, 4)
MV_SCHEDULED_FUTURE = Edge(0.03, 4)
MV_SCHEDULED_PAST = Edge(0.01, 4)
MV_DRAFT, MV_UNPUBLISHED = Edge(0.07, 4), Edge(0.06, 4)
ARTICLE_NULL_CREATED = Edge(0.02, 3)  # Published, createdAt NULL, publishedAt set
ARTICLE_NULL_BOTH = Edge(0.005, 2)  # Published, createdAt and publishedAt NULL
ARTICLE_PUBLISHED_NULL_DATE = Edge(0.01, 3)
ARTICLE_PUBLISHED_AFTER_CUTOFF = Edge(0.01, 3)  # created before, published at/after the cutoff
ARTICLE_DRAFT_NULL_CREATED = Edge(0.005, 2)
BOUNTY_NULL_USER = Edge(0.04, 3)
BOUNTY_ENTRY_NULL_USER = Edge(0.04, 4)
BER_ON_NULL_AUTHOR = Edge(0.03, 5)  # BountyEntryReaction on entries whose author is NULL
REVIEW_DOWN = Edge(0.12, 5)  # recommended = false
REVIEW_FLIPPED = Edge(0.02, 4)  # createdAt < cutoff <= updatedAt
REVIEW_EXCLUDE, REVIEW_TOS = Edge(0.02, 3), Edge(0.01, 3)
CI_NULL_ADDER = Edge(0.03, 5)
CI_NULL_CREATED = Edge(0.02, 5)
CI_REVIEW, CI_REJECTED = Edge(0.05, 3), Edge(0.03, 3)
CI_MODEL3D = Edge(0.04, 5)
CC_NULL_PERMISSIONS, CC_EMPTY_PERMISSIONS = Edge(0.03, 3), Edge(0.03, 3)
CC_ADD_ONLY, CC_ADD_REVIEW_ONLY, CC_CO_MANAGER = Edge(0.03, 3), Edge(0.02, 3), Edge(0.01, 2)
CC_NULL_CREATED = Edge(0.02, 3)
COMMENT_REPLY_SHARE = 0.2
COMMENT_TOS, COMMENT_HIDDEN = Edge(0.01, 3), Edge(0.02, 3)
THREAD_SPECIAL_COMMENTS = Edge(0.05, 24)  # root comments on model/review/entry/chapter/... threads
THREAD_DELETED, THREAD_QUESTION, THREAD_CLUB_POST, THREAD_OTHER = 0.002, 0.001, 0.001, 0.001
THREAD_ORPHAN_IMAGE = 0.0005  # root threads of images without an Image row
IRN_MISSING_IMAGE, IRN_MISSING_VERSION = Edge(0.005, 5), Edge(0.005, 5)
IRN_TWO_VERSIONS_SAME_MODEL = Edge(0.002, 5)  # images forced to use two versions of one model
TIP_TO_CENTRAL, TIP_FROM_ZERO = Edge(0.02, 3), Edge(0.01, 3)
TIP_AMOUNT_ZERO, TIP_AMOUNT_NEGATIVE = Edge(0.005, 3), Edge(0.005, 3)
TIP_LEGACY_CREATED = Edge(0.05, 3)  # createdAt = BUZZTIP_CREATED_AT_ADDED
TIP_TOPUP_AFTER_CUTOFF = Edge(0.03, 4)  # createdAt < cutoff <= updatedAt
TIP_TOPUP = 0.15
BENEFACTOR_ZERO = Edge(0.02, 3)
AWARD_BEFORE, AWARD_AFTER, AWARD_NULL_DATE = Edge(0.15, 4), Edge(0.02, 3), Edge(0.02, 3)
BENEFACTOR_DRIFT = Edge(0.03, 3)  # createdAt < cutoff <= updatedAt, not awarded
ENGAGEMENT_BOTH = Edge(0.05, 4)  # one user holds Favorite and Track on one bounty
COMIC_DRIFT = Edge(0.04, 3)
STALE_METRIC, MISSING_METRIC = Edge(0.10, 3), Edge(0.03, 2)  # *Metric rows: stale, missing entities

_SCATTER = 2147483647  # prime > any n: rank -> id bijection shared by all tables of an entity
_COVER_SCATTER = 2147483629  # another prime: Article g -> a distinct cover Image (unique coverId)
# Reaction mix (the rest is 'Like'); Dislike is counted by the pipeline too.
_REACTIONS = (
    ("'Heart'", Edge(0.12, 3)),
    ("'Laugh'", Edge(0.08, 3)),
    ("'Cry'", Edge(0.05, 3)),
    ("'Dislike'", Edge(0.07, 3)),
)
_CH_INSERT = {"async_insert": 0, "wait_for_async_insert": 1, "session_timezone": "UTC"}
_CH_QUERY = {"session_timezone": "UTC"}
_TRANSFER_BATCH = 1_000_000  # rows per PostgreSQL -> ClickHouse transfer statement

Progress = Callable[[str], None]
Case = tuple[str, Edge]


# --------------------------------------------------------------------------------------------
# Expression helpers
# --------------------------------------------------------------------------------------------
def _ms(t: dt.datetime) -> int:
    """Epoch milliseconds of a naive UTC datetime (exact integer arithmetic)."""
    return (t - dt.datetime(1970, 1, 1)) // dt.timedelta(milliseconds=1)


def _lit(t: dt.datetime) -> str:
    return f"TIMESTAMP '{t:%Y-%m-%d %H:%M:%S}.{t.microsecond // 1000:03d}'"


@dataclass
class _Expr:
    """SQL expression builders shared by both dialects; `pg` selects the PostgreSQL spelling."""

    seed: int
    cutoff: dt.datetime
    pg: bool

    @property
    def start(self) -> dt.datetime:
        return HISTORY_START

    @property
    def end(self) -> dt.datetime:
        return self.cutoff + HORIZON

    def key(self, salt: str) -> int:
        """63-bit hash key of (seed, salt); a valid bigint and UInt64."""
        digest = hashlib.blake2b(f"{self.seed}\x00{salt}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") >> 1

    def _int(self, x: str) -> str:
        return f"({x})::bigint" if self.pg else f"toUInt64({x})"

    def u(self, salt: str, g: str) -> str:
        """Uniform double in [0, 1) from (seed, salt, g): 53 hash bits."""
        if self.pg:
            return (
                f"(((hashint8extended(({g})::bigint, {self.key(salt)}) >> 11) & 9007199254740991)"
                f"::float8 / 9007199254740992.0)"
            )
        return f"(bitShiftRight(cityHash64({self.key(salt)}, {g}), 11) / 9007199254740992.0)"

    def rank(self, salt: str, n: int | str, power: float, g: str) -> str:
        """Power-law rank in [0, n): rank 0 is the hottest."""
        return self._int(f"floor(({n}) * pow({self.u(salt, g)}, {power}))")

    def scatter(self, rank: str, n: int | str) -> str:
        """Bijection rank -> id in [1, n], shared by every table that picks this entity type."""
        off = self.key("scatter") % 1_000_003
        id_ = f"(1 + (({rank}) * {_SCATTER} + {off}) % ({n}))"
        return f"({id_})::int" if self.pg else f"toInt32({id_})"

    def pick(self, salt: str, n: int | str, power: float, g: str) -> str:
        """A skewed id in [1, n]: a few ids get a large share of the picks."""
        return self.scatter(self.rank(salt, n, power, g), n)

    def kinds(
        self, salt: str, n: int | str, cases: Sequence[Case], default: str, g: str, partition: str | None = None
    ) -> str:
        """CASE giving each case exactly max(min_rows, round(fraction * n)) of the n rows.

        The rows are ranked by a seeded hash of g (a window function), so each case gets an exact
        count at every scale and the kinds of different columns are independent. Use it in a
        select list over exactly the n rows (`partition`: rank within that window partition).
        """
        k = self.key(salt)
        order = f"hashint8extended(({g})::bigint, {k}), {g}" if self.pg else f"cityHash64({k}, {g}), {g}"
        part = f"PARTITION BY {partition} " if partition else ""
        rank = f"(row_number() OVER ({part}ORDER BY {order}) - 1)"
        whens: list[str] = []
        acc: int | str = 0
        for value, edge in cases:
            frac, min_rows = edge.fraction, edge.min_rows
            if isinstance(n, int) and isinstance(acc, int):
                acc = min(n, acc + max(min_rows, round(frac * n)))
            else:
                acc = f"least(({n}), {acc} + greatest({min_rows}, round({frac} * ({n}))))"
            whens.append(f"WHEN {rank} < {acc} THEN {value}")
        return f"(CASE {' '.join(whens)} ELSE {default} END)"

    # -- time ----------------------------------------------------------------------------------
    def growth_ms(self, u: str, start: dt.datetime | None = None) -> str:
        """Epoch ms in [start, end] with linearly growing density (inverse CDF of a + x)."""
        s = _ms(start or self.start)
        span = _ms(self.end) - s
        a = GROWTH_FLOOR
        return f"({s} + floor((sqrt({a * a} + ({u}) * {2 * a + 1}) - {a}) * {span}))"

    def growth(self, u: str, start: dt.datetime | None = None) -> str:
        return self.ts_of_ms(self.growth_ms(u, start))

    def ts_of_ms(self, ms: str) -> str:
        if self.pg:
            return f"(TIMESTAMP '1970-01-01' + ({ms})::bigint * INTERVAL '1 millisecond')"
        return f"fromUnixTimestamp64Milli(toInt64({ms}), 'UTC')"

    def strat_u(self, salt: str, n: int, g: str) -> str:
        """Stratified uniform for serial parents: ((g - 1) + jitter) / n ascends with g."""
        return f"((({g}) - 1 + {self.u(salt, g)}) / {n}.0)"

    def strat(self, salt: str, n: int, g: str, start: dt.datetime | None = None) -> str:
        """Stratified growth time for serial parents: ids ascend with time, jitter within a stratum."""
        return self.growth(self.strat_u(salt, n, g), start)

    def fold(self, s: str, ut: str, n: int | str) -> str:
        """Fold a picked id `s` in [1, n] onto the ids that exist at the child's time growth(ut).

        Parent ids ascend with their creation time, so about n * ut of them exist at growth(ut).
        A pick of a parent that does not exist yet is mapped proportionally onto an older one:
        hot parents stay hot once they exist, and a child is (almost) never older than its parent.
        `s` and `ut` should be column references (they are repeated).
        """
        cap = f"greatest(1, floor(({n}) * {ut}))"
        if self.pg:
            return f"(CASE WHEN {s} <= {cap} THEN {s} ELSE 1 + (({s} - 1)::bigint * {cap}::bigint / ({n}))::int END)"
        return f"if({s} <= {cap}, {s}, toInt32(1 + intDiv(toUInt64({s} - 1) * toUInt64({cap}), {n})))"

    def soon(self, parent: str, salt: str, g: str) -> str:
        """`parent` plus 1 s .. 1 day: the earliest a child of that parent can be."""
        return f"({parent} + INTERVAL '1 second' * (1 + {self.u(salt, g)} * 86400))"

    def child_ts(self, ut: str, parents: Sequence[tuple[str, str]], g: str) -> str:
        """growth(ut), but never before any parent (parents: (timestamp expr, salt))."""
        terms = [self.growth(ut)] + [self.soon(p, salt, g) for p, salt in parents]
        return f"greatest({', '.join(terms)})"

    def after(self, parent: str, u: str, power: float) -> str:
        """A time between `parent` and the end, concentrated soon after the parent (u^power)."""
        assert self.pg
        return f"({parent} + greatest({_lit(self.end)} - ({parent}), INTERVAL '0') * pow({u}, {power}))"

    def at_cutoff_case(self, kind: str, ts: str) -> str:
        """Boundary override: kinds 'at' / 'before' pin the time to the cutoff / 1 ms before it."""
        if self.pg:
            return (
                f"(CASE {kind} WHEN 'at' THEN {_lit(self.cutoff)} WHEN 'before' THEN "
                f"{_lit(self.cutoff)} - INTERVAL '1 millisecond' ELSE {ts} END)"
            )
        c = _ms(self.cutoff)
        return f"multiIf({kind} = 'at', {self.ts_of_ms(str(c))}, {kind} = 'before', {self.ts_of_ms(str(c - 1))}, {ts})"

    def boundary_kind(self, salt: str, n: int | str, g: str) -> str:
        return self.kinds(salt, n, [("'at'", AT_CUTOFF), ("'before'", BEFORE_CUTOFF)], "''", g)

    def before_cutoff(self, ts: str, u: str) -> str:
        """`ts`, moved to 1-120 days before the cutoff when it is not already before it."""
        return f"least({ts}, {_lit(self.cutoff)} - INTERVAL '1 day' * (1 + {u} * 119))"

    def after_cutoff(self, u: str, days: float = 50) -> str:
        """A time in [cutoff, cutoff + days)."""
        return f"({_lit(self.cutoff)} + INTERVAL '1 day' * ({u} * {days}))"


# --------------------------------------------------------------------------------------------
# Run context
# --------------------------------------------------------------------------------------------
@dataclass
class _Ctx:
    conn: DataLoader
    ch: ClickHouse
    scale: float
    seed: int
    cutoff: dt.datetime
    dbs: dict[str, str]
    progress: Progress
    n: dict[str, int] = field(default_factory=dict)
    pgx: _Expr = field(init=False)
    chx: _Expr = field(init=False)
    t0: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.pgx = _Expr(self.seed, self.cutoff, pg=True)
        self.chx = _Expr(self.seed, self.cutoff, pg=False)
        self.n = {name: max(floor_, round(base * self.scale)) for name, (base, floor_) in _SIZES.items()}

    # PostgreSQL ---------------------------------------------------------------------------------
    def sql(self, statement: str, params: Sequence[Any] | None = None) -> None:
        self.conn.execute(statement, params)

    def scalar(self, query: str) -> Any:
        rows = self.conn.execute(query)
        return rows[0][0] if rows else None

    def done(self, what: str) -> None:
        self.progress(f"{what} ({time.monotonic() - self.t0:.1f}s)")

    # ClickHouse ---------------------------------------------------------------------------------
    def t(self, logical_db: str, name: str) -> str:
        return f"`{self.dbs[logical_db]}`.`{name}`"

    def ch_cmd(self, statement: str, settings: Mapping[str, Any] | None = None) -> None:
        self.ch.command(statement, settings={**_CH_INSERT, **(settings or {})})

    def ch_rows(self, query: str) -> list[tuple[Any, ...]]:
        return self.ch.query(query, settings=_CH_QUERY)


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------
def generate(
    pg_url: str,
    ch: ClickHouse,
    *,
    scale: float = 1.0,
    seed: int = 42,
    cutoff: dt.datetime = DEFAULT_CUTOFF,
    ch_databases: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Fill an empty PostgreSQL database and create + fill the ClickHouse source tables.

    `ch_databases` maps the logical database names of clickhouse.sql ("default",
    "orchestration") to real ones (identity by default); missing databases are created. The
    same (scale, seed, cutoff) always yields identical table contents. Returns row counts per
    table: PostgreSQL names as in the DDL, ClickHouse ones as "ch:<table>".
    """
    if scale <= 0:
        raise ValueError("scale must be positive")
    if cutoff.tzinfo is not None:
        cutoff = cutoff.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if cutoff - HISTORY_START < dt.timedelta(days=400):
        raise ValueError(f"cutoff must be at least 400 days after {HISTORY_START:%Y-%m-%d}")
    dbs = {"default": "default", "orchestration": "orchestration", **dict(ch_databases or {})}
    with DataLoader(pg_url) as conn:
        ctx = _Ctx(conn, ch, scale, seed, cutoff, dbs, progress or (lambda _m: None))
        # Big in-memory sorts for DISTINCT ON / row_number (session-local; the default spills).
        ctx.sql("SET work_mem = '256MB'")
        _check_empty(ctx)
        _create_postgres_schema(ctx)
        _create_clickhouse_tables(ctx)
        foreign_keys = _drop_foreign_keys(ctx)
        for step in _PG_STEPS:
            step(ctx)
        _restore_foreign_keys(ctx, foreign_keys)
        _reset_sequences(ctx)
        try:
            for ch_step in _CH_STEPS:
                ch_step(ctx)
        finally:
            ctx.ch_cmd(f"DROP TABLE IF EXISTS {ctx.t('default', '_gen_mv_lookup')}")
        _metrics(ctx)
        ctx.sql("ANALYZE")
        ctx.done("ANALYZE")
        return _counts(ctx)


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------
def _ddl(name: str) -> str:
    return (importlib.resources.files("metric_backfill.demo") / "sql" / name).read_text(encoding="utf-8")


def _check_empty(ctx: _Ctx) -> None:
    tables = ctx.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    if tables:
        raise ValueError("generate() needs an empty PostgreSQL database (public has tables)")
    for db, name in CH_SOURCE_TABLES:
        rows = ctx.ch_rows(f"SELECT count() FROM system.tables WHERE database = '{ctx.dbs[db]}' AND name = '{name}'")
        if rows[0][0]:
            raise ValueError(f"ClickHouse table {ctx.dbs[db]}.{name} already exists")


def _create_postgres_schema(ctx: _Ctx) -> None:
    ctx.sql(_ddl("postgres.sql"))
    for table, constraint in _DROPPED_FKS:
        ctx.sql(f'ALTER TABLE "{table}" DROP CONSTRAINT "{constraint}"')
    ctx.done("PostgreSQL schema")


def _ch_statements(ddl: str) -> list[str]:
    """Split clickhouse.sql into statements (comments removed)."""
    text = "\n".join(line for line in ddl.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in text.split(";") if s.strip()]


def _rewrite_ch(statement: str, dbs: Mapping[str, str]) -> str:
    """Point `default.x` / `orchestration.x` (names, MV TO targets, FROM clauses) at the real dbs."""
    return re.sub(r"\b(default|orchestration)\.(?=[A-Za-z_`])", lambda m: f"`{dbs[m.group(1)]}`.", statement)


def _create_clickhouse_tables(ctx: _Ctx) -> None:
    for db in sorted(set(ctx.dbs.values())):
        ctx.ch_cmd(f"CREATE DATABASE IF NOT EXISTS `{db}`")
    wanted = {name for _db, name in CH_SOURCE_TABLES}
    pattern = re.compile(r"CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS (\w+)\.(\w+)")
    for statement in _ch_statements(_ddl("clickhouse.sql")):
        m = pattern.match(statement)
        if m and m.group(2) in wanted:
            ctx.ch_cmd(_rewrite_ch(statement, ctx.dbs))
    # Keep unmerged parts (several rows per key) so that readers must use FINAL / sum() GROUP BY
    # (docs/traps.md T25), and so that raw row counts stay stable after generate() returns.
    for db, name in CH_SOURCE_TABLES:
        if name in _CH_VIEWS:
            continue
        try:
            ctx.ch.command(f"SYSTEM STOP MERGES {ctx.t(db, name)}")
        except Exception:  # noqa: BLE001 - a server may deny SYSTEM; merges then only fold parts
            ctx.progress(f"could not stop merges on {db}.{name}")
    ctx.done("ClickHouse tables")


def _drop_foreign_keys(ctx: _Ctx) -> list[tuple[str, str, str]]:
    """Drop the foreign keys for the bulk load (per-row FK triggers dominate the load time);
    `_restore_foreign_keys` re-creates them unchanged, which validates every row once."""
    rows = ctx.conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'f' AND connamespace = 'public'::regnamespace ORDER BY conname"
    )
    for table, name, _definition in rows:
        ctx.sql(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    return [(str(t), str(n), str(d)) for t, n, d in rows]


def _restore_foreign_keys(ctx: _Ctx, foreign_keys: Sequence[tuple[str, str, str]]) -> None:
    for table, name, definition in foreign_keys:
        ctx.sql(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    ctx.done("foreign keys validated")


def _reset_sequences(ctx: _Ctx) -> None:
    """Ids were inserted explicitly: move every serial sequence past the largest id."""
    rows = ctx.conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND column_default LIKE 'nextval%'"
    )
    for table, column in rows:
        ctx.sql(
            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', '{column}'), "
            f'coalesce(max("{column}"), 0) + 1, false) FROM "{table}"'
        )


# --------------------------------------------------------------------------------------------
# PostgreSQL: parents
# --------------------------------------------------------------------------------------------
def _users(ctx: _Ctx) -> None:
    x, n = ctx.pgx, ctx.n["User"]
    kind = x.kinds(
        "user.kind",
        n,
        [
            ("'deleted'", USER_DELETED),
            ("'banned'", USER_BANNED),
            ("'moderator'", USER_MODERATOR),
            ("'muted'", USER_MUTED),
        ],
        "''",
        "g",
    )
    ctx.sql(f"""
        INSERT INTO "User" ("id", "username", "name", "createdAt", "deletedAt", "bannedAt",
                            "isModerator", "muted", "excludeFromLeaderboards")
        SELECT g, 'user' || g, CASE WHEN {x.u("user.name", "g")} < 0.8 THEN 'User ' || g END, ts,
               CASE WHEN kind = 'deleted' THEN {x.after("ts", x.u("user.del", "g"), 1)} END,
               CASE WHEN kind = 'banned' THEN {x.after("ts", x.u("user.ban", "g"), 1)} END,
               kind = 'moderator', kind = 'muted', {x.u("user.lb", "g")} < 0.002
        FROM (SELECT g, {kind} AS kind, {x.strat("user.ts", n, "g")}::timestamp(3) AS ts
              FROM generate_series(1, {n}) g) s""")
    ctx.done(f"User {n}")


def _tags(ctx: _Ctx) -> None:
    x, n = ctx.pgx, ctx.n["Tag"]
    ttype = x.kinds(
        "tag.type",
        n,
        [("'Label'", Edge(0.10, 2)), ("'Moderation'", Edge(0.03, 2)), ("'System'", Edge(0.02, 2))],
        "'UserGenerated'",
        "g",
    )
    ctx.sql(f"""
        INSERT INTO "Tag" ("id", "name", "createdAt", "updatedAt", "type", "nsfwLevel", "unlisted")
        SELECT g, 'tag' || g, ts, ts, ({ttype})::"TagType",
               CASE WHEN {x.u("tag.nsfw", "g")} < 0.1 THEN 4 ELSE 1 END, {x.u("tag.unl", "g")} < 0.02
        FROM (SELECT g, {x.strat("tag.ts", n, "g")}::timestamp(3) AS ts FROM generate_series(1, {n}) g) s""")
    ctx.done(f"Tag {n}")


def _parent_rows(x: _Expr, salt: str, n: int, owner_power: float | None, n_users: int) -> str:
    """Rows g = 1..n of a serial parent: `ut` (its stratified time uniform), `ts` and, when
    owner_power is given, an `owner` who already existed at ts (hot creators own most rows)."""
    owner = f", {x.fold('pk_owner', 'ut', n_users)} AS owner" if owner_power is not None else ""
    pick = f", {x.pick(salt + '.owner', n_users, owner_power, 'g')} AS pk_owner" if owner_power is not None else ""
    return (
        f"(SELECT s0.*, {x.growth('ut')}::timestamp(3) AS ts{owner} "
        f"FROM (SELECT g, {x.strat_u(salt + '.ts', n, 'g')} AS ut{pick} FROM generate_series(1, {n}) g) s0)"
    )


def _models(ctx: _Ctx) -> None:
    x, n, nu = ctx.pgx, ctx.n["Model"], ctx.n["User"]
    mtype = x.kinds(
        "model.type",
        n,
        [
            ("'Checkpoint'", Edge(0.18, 2)),
            ("'TextualInversion'", Edge(0.07, 1)),
            ("'LoCon'", Edge(0.04, 1)),
            ("'DoRA'", Edge(0.02, 1)),
            ("'Controlnet'", Edge(0.02, 1)),
            ("'Hypernetwork'", Edge(0.01, 1)),
            ("'Upscaler'", Edge(0.01, 1)),
            ("'VAE'", Edge(0.01, 1)),
            ("'MotionModule'", Edge(0.01, 1)),
            ("'Workflows'", Edge(0.01, 1)),
            ("'Poses'", Edge(0.005, 1)),
            ("'Wildcards'", Edge(0.005, 1)),
            ("'Other'", Edge(0.01, 1)),
        ],
        "'LORA'",
        "g",
    )
    status = x.kinds(
        "model.status",
        n,
        [
            ("'Draft'", Edge(0.06, 2)),
            ("'Training'", Edge(0.02, 1)),
            ("'Unpublished'", Edge(0.05, 2)),
            ("'UnpublishedViolation'", Edge(0.01, 1)),
            ("'Deleted'", Edge(0.03, 2)),
            ("'Scheduled'", Edge(0.01, 1)),
            ("'GatherInterest'", Edge(0.01, 1)),
        ],
        "'Published'",
        "g",
    )
    ctx.sql(f"""
        INSERT INTO "Model" ("id", "name", "type", "userId", "status", "createdAt", "updatedAt",
                             "publishedAt", "deletedAt", "deletedBy", "nsfw", "nsfwLevel", "availability")
        SELECT g, 'Model ' || g, ({mtype})::"ModelType", owner, status::"ModelStatus",
               ts, ts + INTERVAL '1 hour' * {x.u("model.upd", "g")} * 48,
               CASE WHEN status IN ('Published', 'Unpublished', 'UnpublishedViolation', 'Deleted')
                    THEN ts + INTERVAL '1 minute' * {x.u("model.pub", "g")} * 600 END,
               CASE WHEN status = 'Deleted' THEN {x.after("ts", x.u("model.del", "g"), 1)} END,
               NULL, nsfw, CASE WHEN nsfw THEN 16 ELSE 1 END,
               (CASE WHEN {x.u("model.av", "g")} < 0.03 THEN 'EarlyAccess' ELSE 'Public' END)::"Availability"
        FROM (SELECT p.*, {status} AS status, {x.u("model.nsfw", "g")} < 0.15 AS nsfw
              FROM {_parent_rows(x, "model", n, 3, nu)} p) s""")
    ctx.done(f"Model {n}")


def _model_versions(ctx: _Ctx) -> None:
    """Version g <= #models is model g's first version; the others are later versions of popular
    models. Ids are then assigned in creation order, like a serial column."""
    x, n, nm = ctx.pgx, ctx.n["ModelVersion"], ctx.n["Model"]
    kind = x.kinds(
        "mv.kind",
        n,
        [
            ("'pub_null'", MV_PUBLISHED_NULL_DATE),
            ("'sched_future'", MV_SCHEDULED_FUTURE),
            ("'sched_past'", MV_SCHEDULED_PAST),
            ("'draft'", MV_DRAFT),
            ("'unpub'", MV_UNPUBLISHED),
            ("'at'", AT_CUTOFF),
            ("'before'", BEFORE_CUTOFF),
        ],
        "'pub'",
        "g",
    )
    base = (
        "CASE (floor({u} * 7))::int WHEN 0 THEN 'SD 1.5' WHEN 1 THEN 'SDXL 1.0' WHEN 2 THEN 'Pony' "
        "WHEN 3 THEN 'Flux.1 D' WHEN 4 THEN 'Illustrious' WHEN 5 THEN 'Wan Video' ELSE 'SDXL 1.0' END"
    ).format(u=x.u("mv.base", "s.g"))
    mc = 'm."createdAt"'
    created = (
        f"CASE WHEN s.g <= {nm} THEN {mc} + INTERVAL '1 second' * {x.u('mv.t0', 's.g')} * 600 "
        f"ELSE {x.child_ts('s.ut', [(mc, 'mv.soon')], 's.g')} END"
    )
    cutoff = _lit(ctx.cutoff)
    ctx.sql(f"""
        INSERT INTO "ModelVersion" ("id", "modelId", "name", "baseModel", "index", "status", "createdAt",
                                    "updatedAt", "publishedAt", "initialPublishedAt", "availability", "nsfwLevel")
        SELECT row_number() OVER (ORDER BY ts, g), mid, 'v' || g, base, idx,
               (CASE kind WHEN 'pub_null' THEN 'Published' WHEN 'sched_future' THEN 'Scheduled'
                          WHEN 'sched_past' THEN 'Scheduled' WHEN 'draft' THEN 'Draft'
                          WHEN 'unpub' THEN 'Unpublished' ELSE 'Published' END)::"ModelStatus",
               ts, ts + INTERVAL '1 minute' * {x.u("mv.upd", "g")} * 90, pub, pub, 'Public', nsfw
        FROM (
          SELECT g, mid, base, idx, kind, nsfw, ts,
                 (CASE kind
                    WHEN 'pub' THEN ts + INTERVAL '1 minute' * {x.u("mv.pub", "g")} * 2880
                    WHEN 'pub_null' THEN NULL
                    WHEN 'sched_future'
                      THEN greatest(ts, {cutoff}) + INTERVAL '1 hour' * (1 + {x.u("mv.sf", "g")} * 900)
                    WHEN 'sched_past' THEN ts + INTERVAL '1 hour' * (1 + {x.u("mv.sp", "g")} * 20)
                    WHEN 'unpub' THEN ts + INTERVAL '1 minute' * {x.u("mv.pub", "g")} * 2880
                    WHEN 'at' THEN {cutoff}
                    WHEN 'before' THEN {cutoff} - INTERVAL '1 millisecond'
                  END)::timestamp(3) AS pub
          FROM (
            SELECT s.g, s.mid, s.kind, {base} AS base, (s.g % 7) AS idx,
                   CASE WHEN m.nsfw THEN 16 ELSE 1 END AS nsfw,
                   (CASE WHEN s.kind IN ('sched_past', 'at', 'before')
                         THEN {x.before_cutoff(created, x.u("mv.pre", "s.g"))} ELSE {created} END)::timestamp(3) AS ts
            FROM (SELECT g, kind, ut, CASE WHEN g <= {nm} THEN g ELSE {x.fold("pk", "ut", nm)} END AS mid
                  FROM (SELECT g, {kind} AS kind, {x.u("mv.t", "g")} AS ut, {x.pick("model", nm, 2, "g")} AS pk
                        FROM generate_series(1, {n}) g) s0) s
            JOIN "Model" m ON m."id" = s.mid
          ) v
        ) w""")
    ctx.done(f"ModelVersion {n}")


def _collections(ctx: _Ctx) -> None:
    x, n, nu = ctx.pgx, ctx.n["Collection"], ctx.n["User"]
    ctype = x.kinds(
        "coll.type",
        n,
        [
            ("'Model'", Edge(0.20, 3)),
            ("'Post'", Edge(0.12, 3)),
            ("'Article'", Edge(0.08, 3)),
            ("'Model3D'", Edge(0.04, 3)),
            ("NULL", Edge(0.08, 2)),
        ],
        "'Image'",
        "g",
    )
    mode = x.kinds("coll.mode", n, [("'Contest'", Edge(0.02, 3)), ("'Bookmark'", Edge(0.25, 2))], "NULL", "g")
    ctx.sql(f"""
        INSERT INTO "Collection" ("id", "createdAt", "updatedAt", "name", "userId", "write", "read",
                                  "type", "mode", "nsfwLevel")
        SELECT g, ts, ts, 'Collection ' || g, owner,
               (CASE WHEN mode = 'Contest' THEN 'Review' WHEN {x.u("coll.w", "g")} < 0.1 THEN 'Public'
                     ELSE 'Private' END)::"CollectionWriteConfiguration",
               (CASE WHEN {x.u("coll.r", "g")} < 0.6 THEN 'Public' WHEN {x.u("coll.r", "g")} < 0.9
                     THEN 'Private' ELSE 'Unlisted' END)::"CollectionReadConfiguration",
               ctype::"CollectionType", mode::"CollectionMode", 1
        FROM (SELECT p.g, p.owner, {ctype} AS ctype, {mode} AS mode,
                     CASE WHEN {x.u("coll.nullts", "g")} < 0.02 THEN NULL ELSE p.ts END AS ts
              FROM {_parent_rows(x, "coll", n, 2, nu)} p) s""")
    ctx.done(f"Collection {n}")


def _posts(ctx: _Ctx) -> None:
    x, n, nu, nmv = ctx.pgx, ctx.n["Post"], ctx.n["User"], ctx.n["ModelVersion"]
    kind = x.kinds(
        "post.kind",
        n,
        [("'draft'", POST_DRAFT), ("'scheduled'", POST_SCHEDULED), ("'at'", AT_CUTOFF), ("'before'", BEFORE_CUTOFF)],
        "'pub'",
        "p.g",
    )
    contest = x.kinds("post.contest", n, [("true", POST_CONTEST)], "false", "p.g")
    cutoff = _lit(ctx.cutoff)
    ctx.sql(f"""
        WITH contest AS (SELECT "id", row_number() OVER (ORDER BY "id") - 1 AS rn
                         FROM "Collection" WHERE "mode" = 'Contest')
        INSERT INTO "Post" ("id", "userId", "modelVersionId", "title", "createdAt", "updatedAt",
                            "publishedAt", "collectionId", "unlisted", "nsfwLevel", "metadata")
        SELECT s.g, s.owner, CASE WHEN s.has_mv THEN {x.fold("s.pk_mv", "s.ut", nmv)} END, 'Post ' || s.g,
               s.ts, s.ts + INTERVAL '1 second' * {x.u("post.upd", "s.g")} * 300,
               (CASE s.kind
                  WHEN 'draft' THEN NULL
                  WHEN 'scheduled' THEN {x.after_cutoff(x.u("post.sched", "s.g"), 40)}
                  WHEN 'at' THEN {cutoff}
                  WHEN 'before' THEN {cutoff} - INTERVAL '1 millisecond'
                  ELSE s.ts + INTERVAL '1 second' * {x.u("post.pub", "s.g")} * 3600
                END)::timestamp(3),
               c."id", {x.u("post.unl", "s.g")} < 0.02, 1,
               CASE WHEN {x.u("post.meta", "s.g")} < 0.5 THEN '{{}}'::jsonb END
        FROM (SELECT p.g, p.ut, p.owner, {kind} AS kind, {contest} AS contest,
                     {x.u("post.hasmv", "p.g")} < 0.25 AS has_mv, {x.pick("modelVersion", nmv, 2, "p.g")} AS pk_mv,
                     (CASE WHEN {kind} IN ('scheduled', 'at', 'before')
                           THEN {x.before_cutoff("p.ts", x.u("post.pre", "p.g"))} ELSE p.ts END)::timestamp(3) AS ts
              FROM {_parent_rows(x, "post", n, 2.5, nu)} p) s
        LEFT JOIN contest c ON s.contest AND c.rn = s.g % (SELECT count(*) FROM contest)""")
    ctx.done(f"Post {n}")


def _images(ctx: _Ctx) -> None:
    """Images follow their post (owner, time, ids in post order); ~10 % have no post."""
    x, n, np_, nu = ctx.pgx, ctx.n["Image"], ctx.n["Post"], ctx.n["User"]
    kind = x.kinds(
        "img.kind", n, [("'nopost'", IMAGE_WITHOUT_POST), ("'at'", AT_CUTOFF), ("'before'", BEFORE_CUTOFF)], "''", "g"
    )
    mtype = x.kinds("img.type", n, [("'video'", Edge(0.06, 2)), ("'audio'", Edge(0.005, 1))], "'image'", "s.g")
    post_ts = f"p.\"createdAt\" + INTERVAL '1 second' * {x.u('img.ts', 's.g')} * 900"
    ctx.sql(f"""
        INSERT INTO "Image" ("id", "url", "userId", "postId", "createdAt", "updatedAt", "type", "index",
                             "nsfwLevel", "ingestion", "tosViolation")
        SELECT s.g, 'https://image.example/' || s.g,
               CASE WHEN s.kind = 'nopost' THEN {x.fold("s.pk_owner", "s.ut", nu)} ELSE p."userId" END,
               CASE WHEN s.kind = 'nopost' THEN NULL ELSE s.pid END,
               ts.ts, ts.ts + INTERVAL '1 second' * {x.u("img.upd", "s.g")} * 120,
               ({mtype})::"MediaType", s.g % 6,
               (ARRAY[1, 1, 1, 2, 4, 8, 16, 32])[1 + floor({x.u("img.nsfw", "s.g")} * 8)::int],
               (CASE WHEN {x.u("img.ing", "s.g")} < 0.95 THEN 'Scanned' WHEN {x.u("img.ing", "s.g")} < 0.98
                     THEN 'Pending' ELSE 'Blocked' END)::"ImageIngestionStatus",
               {x.u("img.tos", "s.g")} < 0.005
        FROM (SELECT g, {kind} AS kind, 1 + ((g - 1)::bigint * {np_} / {n})::int AS pid,
                     {x.strat_u("img.ts", n, "g")} AS ut, {x.pick("img.owner", nu, 2.5, "g")} AS pk_owner
              FROM generate_series(1, {n}) g) s
        JOIN "Post" p ON p."id" = s.pid
        CROSS JOIN LATERAL (SELECT (CASE WHEN s.kind = 'nopost' THEN {x.growth("s.ut")}
                                         ELSE {x.at_cutoff_case("s.kind", post_ts)} END)::timestamp(3) AS ts) ts""")
    # Cover images of image collections (Collection.imageId is set after the images exist).
    ctx.sql(f"""
        UPDATE "Collection" SET "imageId" = {x.pick("image", n, 2, '"id"')}
        WHERE "type" = 'Image' AND {x.u("coll.hascover", '"id"')} < 0.5""")
    ctx.done(f"Image {n}")


def _articles(ctx: _Ctx) -> None:
    x, n, nu, ni = ctx.pgx, ctx.n["Article"], ctx.n["User"], ctx.n["Image"]
    kind = x.kinds(
        "art.kind",
        n,
        [
            ("'null_created'", ARTICLE_NULL_CREATED),
            ("'null_both'", ARTICLE_NULL_BOTH),
            ("'pub_null'", ARTICLE_PUBLISHED_NULL_DATE),
            ("'pub_after'", ARTICLE_PUBLISHED_AFTER_CUTOFF),
            ("'draft_null'", ARTICLE_DRAFT_NULL_CREATED),
            ("'at'", AT_CUTOFF),
            ("'before'", BEFORE_CUTOFF),
            ("'Draft'", Edge(0.10, 3)),
            ("'Unpublished'", Edge(0.05, 3)),
            ("'UnpublishedViolation'", Edge(0.02, 2)),
            ("'Processing'", Edge(0.01, 2)),
        ],
        "'pub'",
        "p.g",
    )
    cutoff = _lit(ctx.cutoff)
    ctx.sql(f"""
        INSERT INTO "Article" ("id", "createdAt", "updatedAt", "title", "content", "coverId", "publishedAt",
                               "userId", "status", "unlisted", "nsfwLevel", "tosViolation")
        SELECT g, created, created + INTERVAL '1 minute' * {x.u("art.upd", "g")} * 300,
               'Article ' || g, 'Lorem ipsum ' || g,
               CASE WHEN {x.u("art.cover", "g")} < 0.6 THEN 1 + ((g::bigint * {_COVER_SCATTER}) % {ni})::int END,
               pub, owner,
               (CASE WHEN kind IN ('Draft', 'draft_null') THEN 'Draft'
                     WHEN kind IN ('Unpublished', 'UnpublishedViolation', 'Processing') THEN kind
                     ELSE 'Published' END)::"ArticleStatus",
               {x.u("art.unl", "g")} < 0.02, 1, {x.u("art.tos", "g")} < 0.01
        FROM (
          SELECT g, kind, owner,
                 (CASE WHEN kind IN ('null_created', 'null_both', 'draft_null') THEN NULL
                       WHEN kind IN ('pub_after', 'at', 'before') THEN {x.before_cutoff("ts", x.u("art.pre", "g"))}
                       ELSE ts END)::timestamp(3) AS created,
                 (CASE WHEN kind IN ('pub_null', 'null_both', 'Draft', 'draft_null', 'Processing') THEN NULL
                       WHEN kind = 'pub_after' THEN {x.after_cutoff(x.u("art.pa", "g"), 40)}
                       WHEN kind = 'at' THEN {cutoff}
                       WHEN kind = 'before' THEN {cutoff} - INTERVAL '1 millisecond'
                       WHEN kind = 'null_created' THEN {x.growth(x.u("art.old", "g") + " * 0.2")}
                       ELSE ts + INTERVAL '1 minute' * {x.u("art.pub", "g")} * 1440 END)::timestamp(3) AS pub
          FROM (SELECT p.*, {kind} AS kind FROM {_parent_rows(x, "art", n, 2.5, nu)} p) s
        ) a""")
    ctx.done(f"Article {n}")


def _bounties(ctx: _Ctx) -> None:
    x, n, nu = ctx.pgx, ctx.n["Bounty"], ctx.n["User"]
    null_user = x.kinds("bounty.nulluser", n, [("true", BOUNTY_NULL_USER)], "false", "p.g")
    btype = x.kinds(
        "bounty.type",
        n,
        [
            ("'ModelCreation'", Edge(0.15, 1)),
            ("'ImageCreation'", Edge(0.20, 1)),
            ("'EmbedCreation'", Edge(0.05, 1)),
            ("'DataSetCreation'", Edge(0.03, 1)),
            ("'DataSetCaption'", Edge(0.02, 1)),
            ("'VideoCreation'", Edge(0.03, 1)),
            ("'Other'", Edge(0.05, 1)),
        ],
        "'LoraCreation'",
        "g",
    )
    ctx.sql(f"""
        INSERT INTO "Bounty" ("id", "userId", "name", "description", "startsAt", "expiresAt", "createdAt",
                              "updatedAt", "type", "mode", "entryMode", "minBenefactorUnitAmount",
                              "maxBenefactorUnitAmount", "entryLimit", "complete", "refunded", "nsfwLevel")
        SELECT g, CASE WHEN NOT nu THEN owner END, 'Bounty ' || g, 'Describe ' || g,
               ts::date, ts::date + 7 + (g % 24), ts, ts + INTERVAL '1 minute' * {x.u("bounty.upd", "g")} * 60,
               ({btype})::"BountyType",
               (CASE WHEN {x.u("bounty.mode", "g")} < 0.8 THEN 'Individual' ELSE 'Split' END)::"BountyMode",
               (CASE WHEN {x.u("bounty.em", "g")} < 0.9 THEN 'Open' ELSE 'BenefactorsOnly' END)::"BountyEntryMode",
               minamt, CASE WHEN {x.u("bounty.max", "g")} < 0.3 THEN minamt * 10 END,
               1 + (g % 3), ts::date + 7 + (g % 24) < {_lit(ctx.cutoff)}::date AND {x.u("bounty.c", "g")} < 0.7,
               {x.u("bounty.ref", "g")} < 0.02, 1
        FROM (SELECT p.*, {null_user} AS nu, 100 * (1 + floor(pow({x.u("bounty.min", "p.g")}, 3) * 50))::int AS minamt
              FROM {_parent_rows(x, "bounty", n, 2, nu)} p) s""")
    ctx.done(f"Bounty {n}")


def _bounty_entries(ctx: _Ctx) -> None:
    x, n, nb, nu = ctx.pgx, ctx.n["BountyEntry"], ctx.n["Bounty"], ctx.n["User"]
    null_user = x.kinds("be.nulluser", n, [("true", BOUNTY_ENTRY_NULL_USER)], "false", "g")
    ctx.sql(f"""
        INSERT INTO "BountyEntry" ("id", "userId", "bountyId", "createdAt", "updatedAt", "locked", "description",
                                   "nsfwLevel")
        SELECT row_number() OVER (ORDER BY ts, g), uid, bid, ts, ts + INTERVAL '1 minute' * {x.u("be.upd", "g")} * 30,
               {x.u("be.lock", "g")} < 0.05, 'Entry ' || g, 1
        FROM (SELECT s.g, s.bid, CASE WHEN NOT s.nu THEN {x.fold("s.pk_user", "s.ut", nu)} END AS uid,
                     {x.child_ts("s.ut", [('b."createdAt"', "be.soon")], "s.g")}::timestamp(3) AS ts
              FROM (SELECT s0.*, {x.fold("pk_bounty", "ut", nb)} AS bid
                    FROM (SELECT g, {null_user} AS nu, {x.u("be.t", "g")} AS ut,
                                 {x.pick("bounty", nb, 2, "g")} AS pk_bounty,
                                 {x.pick("be.user", nu, 1.5, "g")} AS pk_user
                          FROM generate_series(1, {n}) g) s0) s
              JOIN "Bounty" b ON b."id" = s.bid) e""")
    ctx.done(f"BountyEntry {n}")


def _comics(ctx: _Ctx) -> None:
    """Comic projects and their chapters (positions 0, 1, ... per project in creation order)."""
    x, n, nc, nu = ctx.pgx, ctx.n["ComicProject"], ctx.n["ComicChapter"], ctx.n["User"]
    ctx.sql(f"""
        INSERT INTO "ComicProject" ("id", "userId", "name", "status", "nsfwLevel", "publishedAt", "createdAt",
                                    "updatedAt")
        SELECT g, owner, 'Comic ' || g,
               (CASE WHEN {x.u("cp.del", "g")} < 0.05 THEN 'Deleted' ELSE 'Active' END)::"ComicProjectStatus",
               1, CASE WHEN {x.u("cp.pub", "g")} < 0.8 THEN ts + INTERVAL '1 day' END, ts, ts
        FROM {_parent_rows(x, "cp", n, 2, nu)} p""")
    status = x.kinds("cc.status", nc, [("'Draft'", Edge(0.12, 2)), ("'Scheduled'", Edge(0.08, 2))], "'Published'", "g")
    ctx.sql(f"""
        INSERT INTO "ComicChapter" ("id", "projectId", "position", "name", "status", "publishedAt", "createdAt",
                                    "updatedAt")
        SELECT row_number() OVER (ORDER BY ts, g), pid, pos, 'Chapter ' || (pos + 1), status::"ComicChapterStatus",
               CASE WHEN status = 'Published' THEN ts + INTERVAL '1 hour'
                    WHEN status = 'Scheduled' THEN ts + INTERVAL '7 days' END,
               ts, ts
        FROM (SELECT c.*, row_number() OVER (PARTITION BY pid ORDER BY ts, g) - 1 AS pos
              FROM (SELECT s.g, s.pid, s.status,
                           {x.child_ts("s.ut", [('p."createdAt"', "cc.soon")], "s.g")}::timestamp(3) AS ts
                    FROM (SELECT s0.*, {x.fold("pk", "ut", n)} AS pid
                          FROM (SELECT g, {status} AS status, {x.u("cc.t", "g")} AS ut,
                                       {x.pick("comic", n, 1.5, "g")} AS pk
                                FROM generate_series(1, {nc}) g) s0) s
                    JOIN "ComicProject" p ON p."id" = s.pid) c) d""")
    ctx.done(f"ComicProject {n}, ComicChapter {nc}")


# --------------------------------------------------------------------------------------------
# PostgreSQL: event tables
#
# Pattern: each candidate row g draws its time first (`ut`, growth(ut)), then picks its parents
# among those that already existed (fold), so every table has the site's growth curve (~7 % at or
# after the cutoff); `child_ts` keeps the event after its parents. Unique keys are enforced with
# DISTINCT ON (key) ORDER BY key, g; serial ids follow createdAt.
# --------------------------------------------------------------------------------------------
def _user_engagement(ctx: _Ctx) -> None:
    x, n, nu = ctx.pgx, ctx.n["UserEngagement"], ctx.n["User"]
    etype = x.kinds("ue.type", n, [("'Hide'", Edge(0.08, 5)), ("'Block'", Edge(0.04, 5))], "'Follow'", "g")
    ts = x.child_ts("s.ut", [('a."createdAt"', "ue.a"), ('t."createdAt"', "ue.t")], "s.g")
    ctx.sql(f"""
        INSERT INTO "UserEngagement" ("userId", "targetUserId", "type", "createdAt")
        SELECT DISTINCT ON (s.actor, s.target) s.actor, s.target, s.etype::"UserEngagementType",
               {x.at_cutoff_case("s.bk", ts)}::timestamp(3)
        FROM (SELECT s0.*, {x.fold("pa", "ut", nu)} AS actor, {x.fold("pt", "ut", nu)} AS target
              FROM (SELECT g, {x.u("ue.ts", "g")} AS ut, {x.pick("ue.actor", nu, 1.5, "g")} AS pa,
                           {x.pick("ue.target", nu, 3, "g")} AS pt, {etype} AS etype,
                           {x.boundary_kind("ue.b", n, "g")} AS bk
                    FROM generate_series(1, {n}) g) s0) s
        JOIN "User" a ON a."id" = s.actor JOIN "User" t ON t."id" = s.target
        WHERE s.actor <> s.target
        ORDER BY s.actor, s.target, s.g""")
    ctx.done("UserEngagement")


def _reaction_kind(x: _Expr, salt: str, n: int, g: str = "g") -> str:
    return x.kinds(salt, n, _REACTIONS, "'Like'", g)


def _image_reactions(ctx: _Ctx) -> None:
    """The largest table. Hot images (u^3) and moderately hot reactors; a few orphan image ids
    (above the largest Image id: images deleted since, no FK in production)."""
    x, n, ni, nu = ctx.pgx, ctx.n["ImageReaction"], ctx.n["Image"], ctx.n["User"]
    orphan = x.kinds("ir.orphan", n, [("true", IMAGE_REACTION_ORPHAN)], "false", "g")
    ts = x.child_ts("s.ut", [('i."createdAt"', "ir.soon")], "s.g")  # NULL parent (orphan) is ignored
    ctx.sql(f"""
        INSERT INTO "ImageReaction" ("id", "imageId", "userId", "reaction", "createdAt", "updatedAt")
        SELECT row_number() OVER (ORDER BY ts, g), img, usr, reaction::"ReviewReactions", ts, ts
        FROM (
          SELECT DISTINCT ON (s.img, s.usr, s.reaction) s.g, s.img, s.usr, s.reaction,
                 {x.at_cutoff_case("s.bk", ts)}::timestamp(3) AS ts
          FROM (SELECT s0.g, s0.ut, s0.reaction, s0.bk, {x.fold("pu", "ut", nu)} AS usr,
                       CASE WHEN s0.orphan THEN {ni} + 1 + (s0.g % {max(3, ni // 200)})::int
                            ELSE {x.fold("pi", "ut", ni)} END AS img
                FROM (SELECT g, {x.u("ir.ts", "g")} AS ut, {orphan} AS orphan, {x.pick("image", ni, 3, "g")} AS pi,
                             {x.pick("ir.user", nu, 1.7, "g")} AS pu, {_reaction_kind(x, "ir.reaction", n)} AS reaction,
                             {x.boundary_kind("ir.b", n, "g")} AS bk
                      FROM generate_series(1, {n}) g) s0) s
          LEFT JOIN "Image" i ON i."id" = s.img
          ORDER BY s.img, s.usr, s.reaction, s.g
        ) d""")
    ctx.done("ImageReaction")


def _article_reactions(ctx: _Ctx) -> None:
    x, n, na, nu = ctx.pgx, ctx.n["ArticleReaction"], ctx.n["Article"], ctx.n["User"]
    # After the article's creation (not its publication: a hot article published late would move
    # all its reactions past the cutoff).
    ts = x.child_ts("s.ut", [('a."createdAt"', "ar.soon")], "s.g")
    ctx.sql(f"""
        INSERT INTO "ArticleReaction" ("id", "articleId", "userId", "reaction", "createdAt", "updatedAt")
        SELECT row_number() OVER (ORDER BY ts, g), art, usr, reaction::"ReviewReactions", ts, ts
        FROM (
          SELECT DISTINCT ON (s.art, s.usr, s.reaction) s.g, s.art, s.usr, s.reaction,
                 {x.at_cutoff_case("s.bk", ts)}::timestamp(3) AS ts
          FROM (SELECT s0.*, {x.fold("pa", "ut", na)} AS art, {x.fold("pu", "ut", nu)} AS usr
                FROM (SELECT g, {x.u("ar.ts", "g")} AS ut, {x.pick("article", na, 2.5, "g")} AS pa,
                             {x.pick("ar.user", nu, 1.7, "g")} AS pu, {_reaction_kind(x, "ar.reaction", n)} AS reaction,
                             {x.boundary_kind("ar.b", n, "g")} AS bk
                      FROM generate_series(1, {n}) g) s0) s
          JOIN "Article" a ON a."id" = s.art
          ORDER BY s.art, s.usr, s.reaction, s.g
        ) d""")
    ctx.done("ArticleReaction")


def _bounty_entry_reactions(ctx: _Ctx) -> None:
    x, n, nbe, nu = ctx.pgx, ctx.n["BountyEntryReaction"], ctx.n["BountyEntry"], ctx.n["User"]
    on_null = x.kinds("ber.null", n, [("true", BER_ON_NULL_AUTHOR)], "false", "g")
    ts = x.child_ts("c.ut", [('e."createdAt"', "ber.soon")], "c.g")
    ctx.sql(f"""
        WITH orphaned AS (SELECT "id", row_number() OVER (ORDER BY "id") - 1 AS rn
                          FROM "BountyEntry" WHERE "userId" IS NULL)
        INSERT INTO "BountyEntryReaction" ("bountyEntryId", "userId", "reaction", "createdAt")
        SELECT DISTINCT ON (c.eid, c.usr, c.reaction) c.eid, c.usr, c.reaction::"ReviewReactions",
               {x.at_cutoff_case("c.bk", ts)}::timestamp(3)
        FROM (SELECT s.g, s.ut, coalesce(o."id", {x.fold("s.pe", "s.ut", nbe)}) AS eid,
                     {x.fold("s.pu", "s.ut", nu)} AS usr, s.reaction, s.bk
              FROM (SELECT g, {x.u("ber.ts", "g")} AS ut, {on_null} AS on_null,
                           {x.pick("bountyEntry", nbe, 2, "g")} AS pe,
                           {x.pick("ber.user", nu, 1.5, "g")} AS pu, {_reaction_kind(x, "ber.reaction", n)} AS reaction,
                           {x.boundary_kind("ber.b", n, "g")} AS bk
                    FROM generate_series(1, {n}) g) s
              LEFT JOIN orphaned o ON s.on_null AND o.rn = s.g % (SELECT count(*) FROM orphaned)) c
        JOIN "BountyEntry" e ON e."id" = c.eid
        ORDER BY c.eid, c.usr, c.reaction, c.g""")
    ctx.done("BountyEntryReaction")


def _resource_reviews(ctx: _Ctx) -> None:
    x, n, nmv, nu = ctx.pgx, ctx.n["ResourceReview"], ctx.n["ModelVersion"], ctx.n["User"]
    down = x.kinds("rr.down", n, [("true", REVIEW_DOWN)], "false", "g")
    kind = x.kinds(
        "rr.kind",
        n,
        [("'flipped'", REVIEW_FLIPPED), ("'at'", AT_CUTOFF), ("'before'", BEFORE_CUTOFF), ("'edited'", Edge(0.08, 1))],
        "''",
        "g",
    )
    ts = x.child_ts("s.ut", [('mv."createdAt"', "rr.soon")], "s.g")
    ctx.sql(f"""
        INSERT INTO "ResourceReview" ("id", "modelId", "modelVersionId", "rating", "recommended", "details",
                                      "userId", "createdAt", "updatedAt", "exclude", "nsfw", "tosViolation")
        SELECT row_number() OVER (ORDER BY ts, g), mid, mvid,
               CASE WHEN down THEN 1 + (g % 3) ELSE 4 + (g % 2) END, NOT down,
               CASE WHEN {x.u("rr.details", "g")} < 0.4 THEN 'Review ' || g END, usr, ts,
               (CASE kind WHEN 'flipped' THEN {x.after_cutoff(x.u("rr.flip", "g"), 50)}
                          WHEN 'edited' THEN ts + INTERVAL '1 hour' * {x.u("rr.edit", "g")} * 100
                          ELSE ts END)::timestamp(3),
               exclude, {x.u("rr.nsfw", "g")} < 0.05, tos
        FROM (
          SELECT DISTINCT ON (s.mvid, s.usr) s.g, mv."modelId" AS mid, s.mvid, s.usr, s.down, s.kind,
                 s.exclude, s.tos,
                 (CASE WHEN s.kind = 'flipped' THEN {x.before_cutoff(ts, x.u("rr.pre", "s.g"))}
                       ELSE {x.at_cutoff_case("s.kind", ts)} END)::timestamp(3) AS ts
          FROM (SELECT s0.*, {x.fold("pm", "ut", nmv)} AS mvid, {x.fold("pu", "ut", nu)} AS usr
                FROM (SELECT g, {x.u("rr.ts", "g")} AS ut, {x.pick("modelVersion", nmv, 2.5, "g")} AS pm,
                             {x.pick("rr.user", nu, 1.5, "g")} AS pu, {down} AS down, {kind} AS kind,
                             {x.kinds("rr.excl", n, [("true", REVIEW_EXCLUDE)], "false", "g")} AS exclude,
                             {x.kinds("rr.tos", n, [("true", REVIEW_TOS)], "false", "g")} AS tos
                      FROM generate_series(1, {n}) g) s0) s
          JOIN "ModelVersion" mv ON mv."id" = s.mvid
          ORDER BY s.mvid, s.usr, s.g
        ) d""")
    ctx.done("ResourceReview")


def _collection_items(ctx: _Ctx) -> None:
    """The item kind matches the collection's type; the owner adds most items."""
    x, n = ctx.pgx, ctx.n["CollectionItem"]
    ni, nm, np_, na, nu = ctx.n["Image"], ctx.n["Model"], ctx.n["Post"], ctx.n["Article"], ctx.n["User"]
    ikind = x.kinds(
        "ci.kind",
        n,
        [
            ("'Model'", Edge(0.20, 5)),
            ("'Post'", Edge(0.14, 5)),
            ("'Article'", Edge(0.10, 5)),
            ("'Model3D'", CI_MODEL3D),
        ],
        "'Image'",
        "g",
    )
    adder = x.kinds("ci.adder", n, [("'null'", CI_NULL_ADDER), ("'other'", Edge(0.40, 5))], "'owner'", "g")
    status = x.kinds("ci.status", n, [("'REVIEW'", CI_REVIEW), ("'REJECTED'", CI_REJECTED)], "'ACCEPTED'", "g")
    tkind = x.kinds(
        "ci.ts", n, [("'null'", CI_NULL_CREATED), ("'at'", AT_CUTOFF), ("'before'", BEFORE_CUTOFF)], "''", "g"
    )
    pick_entity = (
        f"CASE {ikind} WHEN 'Image' THEN {x.pick('image', ni, 3, 'g')} "
        f"WHEN 'Model' THEN {x.pick('model', nm, 2.5, 'g')} "
        f"WHEN 'Post' THEN {x.pick('post', np_, 2.5, 'g')} "
        f"WHEN 'Article' THEN {x.pick('article', na, 2.5, 'g')} "
        f"ELSE 1 + floor(500 * pow({x.u('ci.m3d', 'g')}, 2))::int END"
    )
    n_entity = (
        f"CASE s.ikind WHEN 'Image' THEN {ni} WHEN 'Model' THEN {nm} WHEN 'Post' THEN {np_} "
        f"WHEN 'Article' THEN {na} ELSE 500 END"
    )
    coll_ts = f'coalesce(ct."createdAt", {_lit(HISTORY_START)})'
    ts = x.child_ts("s.ut", [(coll_ts, "ci.soon")], "s.g")
    ctx.sql(f"""
        WITH ct AS (SELECT "id", "userId", "createdAt", "type"::text AS type,
                           row_number() OVER (PARTITION BY "type" ORDER BY "id") AS rn,
                           count(*) OVER (PARTITION BY "type") AS cnt
                    FROM "Collection" WHERE "type" IS NOT NULL),
             tc AS (SELECT DISTINCT type, cnt FROM ct)
        INSERT INTO "CollectionItem" ("id", "createdAt", "updatedAt", "collectionId", "articleId", "postId",
                                      "imageId", "modelId", "model3dId", "addedById", "reviewedById", "reviewedAt",
                                      "status", "randomId")
        SELECT row_number() OVER (ORDER BY ts NULLS FIRST, g), ts, ts, cid,
               CASE WHEN ikind = 'Article' THEN eid END, CASE WHEN ikind = 'Post' THEN eid END,
               CASE WHEN ikind = 'Image' THEN eid END, CASE WHEN ikind = 'Model' THEN eid END,
               CASE WHEN ikind = 'Model3D' THEN eid END, adder,
               CASE WHEN status <> 'ACCEPTED' THEN owner END,
               CASE WHEN status <> 'ACCEPTED' THEN coalesce(ts, {_lit(HISTORY_START)}) + INTERVAL '1 day' END,
               status::"CollectionItemStatus", (hashint8extended(g, {x.key("ci.random")}) & 1073741823)::int
        FROM (
          SELECT DISTINCT ON (ct."id", s.ikind, s.eid) s.g, s.ikind, ct."id" AS cid, ct."userId" AS owner,
                 s.eid, s.status,
                 CASE s.adder WHEN 'owner' THEN ct."userId" WHEN 'other' THEN {x.fold("s.pu", "s.ut", nu)} END AS adder,
                 (CASE WHEN s.tkind = 'null' THEN NULL ELSE {x.at_cutoff_case("s.tkind", ts)} END)::timestamp(3) AS ts
          FROM (SELECT s0.*, tc.cnt, {x.fold("pe", "ut", n_entity.replace("s.", "s0."))} AS eid,
                       {x.scatter(x.rank("ci.coll", "tc.cnt", 2, "s0.g"), "tc.cnt")} AS pc
                FROM (SELECT g, {ikind} AS ikind, {adder} AS adder, {status} AS status, {tkind} AS tkind,
                             {x.u("ci.t", "g")} AS ut, {pick_entity} AS pe, {x.pick("ci.user", nu, 1.5, "g")} AS pu
                      FROM generate_series(1, {n}) g) s0
                JOIN tc ON tc.type = s0.ikind) s
          JOIN ct ON ct.type = s.ikind AND ct.rn = {x.fold("s.pc", "s.ut", "s.cnt")}
          ORDER BY ct."id", s.ikind, s.eid, s.g
        ) d""")
    ctx.done("CollectionItem")


def _collection_contributors(ctx: _Ctx) -> None:
    """Every owner's own MANAGE row, plus followers (VIEW) and contributors with varied permissions."""
    x, n, nc, nu = ctx.pgx, ctx.n["CollectionContributor"], ctx.n["Collection"], ctx.n["User"]
    perms = x.kinds(
        "cc.perm",
        n,
        [
            ("NULL", CC_NULL_PERMISSIONS),
            ("'{}'", CC_EMPTY_PERMISSIONS),
            ("'{ADD}'", CC_ADD_ONLY),
            ("'{ADD_REVIEW}'", CC_ADD_REVIEW_ONLY),
            ("'{VIEW,ADD,MANAGE}'", CC_CO_MANAGER),
            ("'{VIEW,ADD}'", Edge(0.12, 3)),
            ("'{VIEW,ADD_REVIEW}'", Edge(0.02, 2)),
        ],
        "'{VIEW}'",
        "g",
    )
    tkind = x.kinds(
        "cc.ts", n, [("'null'", CC_NULL_CREATED), ("'at'", AT_CUTOFF), ("'before'", BEFORE_CUTOFF)], "''", "g"
    )
    ts = x.child_ts("s.ut", [(f'coalesce(c."createdAt", {_lit(HISTORY_START)})', "cc.soon")], "s.g")
    ctx.sql(f"""
        INSERT INTO "CollectionContributor" ("createdAt", "updatedAt", "userId", "collectionId", "permissions")
        SELECT DISTINCT ON (uid, cid) ts, ts, uid, cid, perms::"CollectionContributorPermission"[]
        FROM (
          SELECT 0 AS src, c."id" AS g, c."userId" AS uid, c."id" AS cid, '{{MANAGE}}' AS perms, c."createdAt" AS ts
          FROM "Collection" c
          UNION ALL
          SELECT 1, s.g, s.uid, s.cid, s.perms,
                 (CASE WHEN s.tkind = 'null' THEN NULL ELSE {x.at_cutoff_case("s.tkind", ts)} END)::timestamp(3)
          FROM (SELECT s0.*, {x.fold("pu", "ut", nu)} AS uid, {x.fold("pc", "ut", nc)} AS cid
                FROM (SELECT g, {x.u("cc.t", "g")} AS ut, {x.pick("cc.user", nu, 1.2, "g")} AS pu,
                             {x.pick("collection", nc, 3, "g")} AS pc, {perms} AS perms, {tkind} AS tkind
                      FROM generate_series(1, {n}) g) s0) s
          JOIN "Collection" c ON c."id" = s.cid
        ) u
        ORDER BY uid, cid, src, g""")
    ctx.done("CollectionContributor")


def _comment_flags(x: _Expr, salt: str, count: int, nu: int) -> str:
    """Columns shared by comment generators: tos, hid (hidden), bk (cutoff boundary), ut, pu."""
    return (
        f"{x.kinds(salt + '.tos', count, [('true', COMMENT_TOS)], 'false', 'g')} AS tos, "
        f"{x.kinds(salt + '.hid', count, [('true', COMMENT_HIDDEN)], 'false', 'g')} AS hid, "
        f"{x.boundary_kind(salt + '.b', count, 'g')} AS bk, {x.u(salt + '.ts', 'g')} AS ut, "
        f"{x.pick(salt + '.user', nu, 1.5, 'g')} AS pu"
    )


def _comments(ctx: _Ctx) -> None:
    """Old model comments: roots first (ids by time), then replies to an older root of the same model."""
    x, n, nm, nu = ctx.pgx, ctx.n["Comment"], ctx.n["Model"], ctx.n["User"]
    n_replies = max(5, round(n * COMMENT_REPLY_SHARE))
    n_roots = n - n_replies
    cols = (
        '"id", "content", "createdAt", "updatedAt", "nsfw", "tosViolation", "parentId", "userId", '
        '"modelId", "locked", "hidden", "pinnedAt"'
    )
    root_ts = x.child_ts("s.ut", [('m."createdAt"', "c.soon")], "s.g")
    ctx.sql(f"""
        INSERT INTO "Comment" ({cols})
        SELECT row_number() OVER (ORDER BY ts, g), 'Comment ' || g, ts, ts, {x.u("c.nsfw", "g")} < 0.03, tos,
               NULL, usr, mid, false, hid, CASE WHEN {x.u("c.pin", "g")} < 0.002 THEN ts END
        FROM (SELECT s.*, {x.at_cutoff_case("s.bk", root_ts)}::timestamp(3) AS ts
              FROM (SELECT s0.*, {x.fold("pm", "ut", nm)} AS mid, {x.fold("pu", "ut", nu)} AS usr
                    FROM (SELECT g, {x.pick("model", nm, 2.5, "g")} AS pm, {_comment_flags(x, "c.root", n_roots, nu)}
                          FROM generate_series(1, {n_roots}) g) s0) s
              JOIN "Model" m ON m."id" = s.mid) r""")
    reply_ts = x.child_ts("s.ut", [('p."createdAt"', "c.rsoon")], "s.g")
    ctx.sql(f"""
        INSERT INTO "Comment" ({cols})
        SELECT {n_roots} + row_number() OVER (ORDER BY ts, g), 'Reply ' || g, ts, ts, false, tos, pid, usr, mid,
               false, hid, NULL
        FROM (SELECT s.g, s.tos, s.hid, s.usr, p."id" AS pid, p."modelId" AS mid,
                     {x.at_cutoff_case("s.bk", reply_ts)}::timestamp(3) AS ts
              FROM (SELECT s0.*, {x.fold("pp", "ut", n_roots)} AS parent, {x.fold("pu", "ut", nu)} AS usr
                    FROM (SELECT g, {x.pick("c.parent", n_roots, 2, "g")} AS pp,
                                 {_comment_flags(x, "c.reply", n_replies, nu)}
                          FROM generate_series(1, {n_replies}) g) s0) s
              JOIN "Comment" p ON p."id" = s.parent) r""")
    ctx.done("Comment")


def _threads_and_comments(ctx: _Ctx) -> None:
    """Root threads per entity, root comments, reply threads (+ nested), reply comments.

    Thread has no timestamp; ids follow the entity's creation time. Reply threads hang under a
    comment: commentId set, entity columns NULL, parentThreadId = the comment's thread,
    rootThreadId = the entity's root thread.
    """
    x, n, nu, ni = ctx.pgx, ctx.n["CommentV2"], ctx.n["User"], ctx.n["Image"]

    def few(frac: float, floor_: int = 3) -> int:
        return max(floor_, round(frac * n))

    ctx.sql(f"""
        CREATE TEMP TABLE _gen_root_thread AS
        SELECT row_number() OVER (ORDER BY ts, kind, eid, eid2) AS id, kind, eid, eid2, ts
        FROM (
          SELECT 'post' AS kind, "id" AS eid, 0 AS eid2, "createdAt" AS ts FROM "Post"
                    WHERE {x.u("t.post", '"id"')} < 0.45
          UNION ALL SELECT 'image', "id", 0, "createdAt" FROM "Image" WHERE {x.u("t.image", '"id"')} < 0.12
          UNION ALL SELECT 'image', {ni} + g, 0, {x.growth(x.u("t.oimg", "g"))}
                    FROM generate_series(1, {few(THREAD_ORPHAN_IMAGE, 2)}) g
          UNION ALL SELECT 'article', "id", 0, coalesce("createdAt", {_lit(HISTORY_START)}) FROM "Article"
                    WHERE {x.u("t.article", '"id"')} < 0.5
          UNION ALL SELECT 'bounty', "id", 0, "createdAt" FROM "Bounty" WHERE {x.u("t.bounty", '"id"')} < 0.6
          UNION ALL SELECT 'model', "id", 0, "createdAt" FROM "Model" WHERE {x.u("t.model", '"id"')} < 0.3
          UNION ALL SELECT 'review', "id", 0, "createdAt" FROM "ResourceReview" WHERE {x.u("t.review", '"id"')} < 0.03
          UNION ALL SELECT 'bountyEntry', "id", 0, "createdAt" FROM "BountyEntry" WHERE {x.u("t.be", '"id"')} < 0.1
          UNION ALL SELECT 'comicChapter', "projectId", "position", "createdAt" FROM "ComicChapter"
                    WHERE {x.u("t.cc", '"id"')} < 0.3
          UNION ALL SELECT 'question', g, 0, {x.growth(x.u("t.q", "g"))}
                    FROM generate_series(1, {few(THREAD_QUESTION)}) g
          UNION ALL SELECT 'clubPost', g, 0, {x.growth(x.u("t.club", "g"))}
                    FROM generate_series(1, {few(THREAD_CLUB_POST)}) g
          UNION ALL SELECT 'challenge', g, 0, {x.growth(x.u("t.ch", "g"))}
                    FROM generate_series(1, {few(THREAD_OTHER)}) g
          UNION ALL SELECT 'model3d', g, 0, {x.growth(x.u("t.m3d", "g"))} FROM generate_series(1, {few(THREAD_OTHER)}) g
          UNION ALL SELECT 'deleted', g, 0, {x.growth(x.u("t.del", "g"))}
                    FROM generate_series(1, {few(THREAD_DELETED)}) g
        ) t""")
    ctx.sql("ANALYZE _gen_root_thread")  # temp tables have no statistics; joins below need them

    def col(kind: str) -> str:
        return f"CASE WHEN kind = '{kind}' THEN eid END"

    ctx.sql(f"""
        INSERT INTO "Thread" ("id", "locked", "postId", "imageId", "articleId", "bountyId", "modelId", "reviewId",
                              "bountyEntryId", "comicProjectId", "comicChapterPosition", "questionId", "clubPostId",
                              "challengeId", "model3dId")
        SELECT id, {x.u("t.lock", "id")} < 0.01, {col("post")}, {col("image")}, {col("article")}, {col("bounty")},
               {col("model")}, {col("review")}, {col("bountyEntry")}, {col("comicChapter")},
               CASE WHEN kind = 'comicChapter' THEN eid2 END, {col("question")}, {col("clubPost")},
               {col("challenge")}, {col("model3d")}
        FROM _gen_root_thread""")
    n_rt = int(ctx.scalar("SELECT count(*) FROM _gen_root_thread"))
    n_nested = max(5, round(n * 0.03))
    n_reply = max(10, round(n * 0.25))
    n_root = n - n_reply - n_nested
    insert = (
        'INSERT INTO "CommentV2" ("id", "content", "createdAt", "updatedAt", "nsfw", "tosViolation", '
        '"userId", "threadId", "hidden", "reactionCount")'
    )
    special = x.kinds("c2.special", n_root, [("true", THREAD_SPECIAL_COMMENTS)], "false", "g")
    # Root comments. "special" ones cycle through the threads of the kinds that emit nothing
    # (model, review, entry, chapter, question, club post, ..., deleted entity) so each has comments.
    root_ts = x.child_ts("s.ut", [("t.ts", "c2.soon")], "s.g")
    ctx.sql(f"""
        WITH sp AS (SELECT id, row_number() OVER (ORDER BY rk, kind) - 1 AS rn
                    FROM (SELECT id, kind, row_number() OVER (PARTITION BY kind ORDER BY id) AS rk
                          FROM _gen_root_thread WHERE kind NOT IN ('post', 'image', 'article', 'bounty')) k),
             s0 AS (SELECT g, {special} AS special, {x.pick("c2.thread", n_rt, 2.2, "g")} AS pt,
                           {_comment_flags(x, "c2.root", n_root, nu)}
                    FROM generate_series(1, {n_root}) g),
             s AS (SELECT s0.*, {x.fold("pt", "ut", n_rt)} AS picked, {x.fold("pu", "ut", nu)} AS usr,
                          row_number() OVER (PARTITION BY special ORDER BY g) - 1 AS srn FROM s0)
        {insert}
        SELECT row_number() OVER (ORDER BY ts, g), 'Comment ' || g, ts, ts, false, tos, usr, tid, hid, g % 4
        FROM (SELECT s.g, s.tos, s.hid, s.usr, t.id AS tid, {x.at_cutoff_case("s.bk", root_ts)}::timestamp(3) AS ts
              FROM s LEFT JOIN sp ON s.special AND sp.rn = s.srn % (SELECT count(*) FROM sp)
              JOIN _gen_root_thread t ON t.id = coalesce(sp.id, s.picked)) c""")
    # Reply threads under ~12 % of root comments.
    ctx.sql(f"""
        INSERT INTO "Thread" ("id", "parentThreadId", "rootThreadId", "commentId")
        SELECT {n_rt} + row_number() OVER (ORDER BY c."id"), c."threadId", c."threadId", c."id"
        FROM "CommentV2" c WHERE {x.u("t.reply", 'c."id"')} < 0.12""")
    n_t2 = int(ctx.scalar(f'SELECT count(*) FROM "Thread" WHERE "id" > {n_rt}'))
    reply_ts = x.child_ts("s.ut", [('p."createdAt"', "c2.rsoon")], "s.g")
    ctx.sql(f"""
        {insert}
        SELECT {n_root} + row_number() OVER (ORDER BY ts, g), 'Reply ' || g, ts, ts, false, tos, usr, tid, hid, 0
        FROM (SELECT s.g, s.tos, s.hid, s.usr, t."id" AS tid, {x.at_cutoff_case("s.bk", reply_ts)}::timestamp(3) AS ts
              FROM (SELECT s0.*, {n_rt} + {x.fold("pt", "ut", n_t2)} AS tid, {x.fold("pu", "ut", nu)} AS usr
                    FROM (SELECT g, {x.pick("c2.rthread", n_t2, 1.5, "g")} AS pt,
                                 {_comment_flags(x, "c2.reply", n_reply, nu)}
                          FROM generate_series(1, {n_reply}) g) s0) s
              JOIN "Thread" t ON t."id" = s.tid JOIN "CommentV2" p ON p."id" = t."commentId") r""")
    # Nested reply threads (replies to replies): rootThreadId still points at the entity's thread.
    ctx.sql(f"""
        INSERT INTO "Thread" ("id", "parentThreadId", "rootThreadId", "commentId")
        SELECT {n_rt + n_t2} + row_number() OVER (ORDER BY c."id"), c."threadId", t."rootThreadId", c."id"
        FROM "CommentV2" c JOIN "Thread" t ON t."id" = c."threadId"
        WHERE c."id" > {n_root} AND ({x.u("t.nested", 'c."id"')} < 0.1 OR c."id" = {n_root + 1})""")
    n_t3 = int(ctx.scalar(f'SELECT count(*) FROM "Thread" WHERE "id" > {n_rt + n_t2}'))
    ctx.sql(f"""
        {insert}
        SELECT {n_root + n_reply} + row_number() OVER (ORDER BY ts, g), 'Nested ' || g, ts, ts, false, tos, usr,
               tid, hid, 0
        FROM (SELECT s.g, s.tos, s.hid, s.usr, t."id" AS tid, {reply_ts}::timestamp(3) AS ts
              FROM (SELECT s0.*, {n_rt + n_t2} + {x.fold("pt", "ut", n_t3)} AS tid, {x.fold("pu", "ut", nu)} AS usr
                    FROM (SELECT g, {x.pick("c2.nthread", n_t3, 1.5, "g")} AS pt,
                                 {_comment_flags(x, "c2.nested", n_nested, nu)}
                          FROM generate_series(1, {n_nested}) g) s0) s
              JOIN "Thread" t ON t."id" = s.tid JOIN "CommentV2" p ON p."id" = t."commentId") r""")
    ctx.sql("""
        UPDATE "Thread" t SET "commentCount" = c.cnt
        FROM (SELECT "threadId", count(*) AS cnt FROM "CommentV2" GROUP BY "threadId") c
        WHERE t."id" = c."threadId" """)
    ctx.sql("DROP TABLE _gen_root_thread")
    ctx.done("Thread, CommentV2")


def _image_resources(ctx: _Ctx) -> None:
    """~1.2 resources per image; hot versions; orphans both ways; forced two-versions-of-one-model."""
    x, n, ni, nmv = ctx.pgx, ctx.n["ImageResourceNew"], ctx.n["Image"], ctx.n["ModelVersion"]
    kind = x.kinds("irn.kind", n, [("'noimg'", IRN_MISSING_IMAGE), ("'nomv'", IRN_MISSING_VERSION)], "''", "g")
    n_two = max(IRN_TWO_VERSIONS_SAME_MODEL.min_rows, round(IRN_TWO_VERSIONS_SAME_MODEL.fraction * n))
    ctx.sql(f"""
        WITH multi AS (SELECT "modelId", min("id") AS v1, max("id") AS v2,
                              row_number() OVER (ORDER BY "modelId") - 1 AS rn
                       FROM "ModelVersion" GROUP BY "modelId" HAVING count(*) >= 2)
        INSERT INTO "ImageResourceNew" ("imageId", "modelVersionId", "strength", "detected")
        SELECT DISTINCT ON (img, mv) img, mv,
               CASE WHEN {x.u("irn.str", "g")} < 0.7 THEN 40 + (g % 61)::int END, {x.u("irn.det", "g")} < 0.2
        FROM (
          SELECT 0 AS src, g,
                 CASE WHEN kind = 'noimg' THEN {ni} + 1 + (g % {max(3, ni // 200)})::int
                      ELSE 1 + floor({ni} * {x.u("irn.img", "g")})::int END AS img,
                 CASE WHEN kind = 'nomv' THEN {nmv} + 1 + (g % {max(3, nmv // 100)})::int
                      ELSE {x.pick("modelVersion", nmv, 3, "g")} END AS mv
          FROM (SELECT g, {kind} AS kind FROM generate_series(1, {n}) g) s
          UNION ALL
          SELECT 1, k, 1 + floor({ni} * {x.u("irn.two", "k")})::int, CASE WHEN w = 1 THEN m.v1 ELSE m.v2 END
          FROM generate_series(1, {n_two}) k CROSS JOIN (VALUES (1), (2)) w(w)
          JOIN multi m ON m.rn = k % (SELECT count(*) FROM multi)
        ) c
        ORDER BY img, mv, src, g""")
    ctx.done("ImageResourceNew")


def _buzz_tips(ctx: _Ctx) -> None:
    """One row per (entityType, entityId, tipper); the recipient is the entity's owner."""
    x, n, nu, N = ctx.pgx, ctx.n["BuzzTip"], ctx.n["User"], ctx.n
    etype = x.kinds(
        "bt.type",
        n,
        [
            ("'Model'", Edge(0.15, 3)),
            ("'Post'", Edge(0.10, 3)),
            ("'Article'", Edge(0.08, 3)),
            ("'bountyEntry'", Edge(0.04, 3)),
            ("'ComicProject'", Edge(0.04, 3)),
            ("'ComicChapter'", Edge(0.03, 3)),
            ("'Model3D'", Edge(0.04, 3)),
        ],
        "'Image'",
        "g",
    )
    # (entityType as stored, pick salt, ids, power); Model3D ids point outside this schema.
    per_type = (
        ("Image", "image", N["Image"], 3.0),
        ("Model", "model", N["Model"], 3.0),
        ("Post", "post", N["Post"], 3.0),
        ("Article", "article", N["Article"], 2.5),
        ("bountyEntry", "bountyEntry", N["BountyEntry"], 2.0),
        ("ComicProject", "comic", N["ComicProject"], 2.0),
        ("ComicChapter", "chapter", N["ComicChapter"], 2.0),
        ("Model3D", "model3d", 300, 2.0),
    )
    pick_entity = (
        "CASE etype "
        + " ".join(f"WHEN '{t}' THEN {x.pick(salt, cnt, power, 'g')}" for t, salt, cnt, power in per_type)
        + " END"
    )
    n_entity = "CASE s0.etype " + " ".join(f"WHEN '{t}' THEN {cnt}" for t, _s, cnt, _p in per_type) + " END"
    to_kind = x.kinds("bt.to", n, [("'central'", TIP_TO_CENTRAL)], "''", "g")
    from_kind = x.kinds("bt.from", n, [("'zero'", TIP_FROM_ZERO)], "''", "g")
    amount = x.kinds("bt.amount", n, [("'zero'", TIP_AMOUNT_ZERO), ("'neg'", TIP_AMOUNT_NEGATIVE)], "''", "g")
    tkind = x.kinds(
        "bt.ts",
        n,
        [
            ("'legacy'", TIP_LEGACY_CREATED),
            ("'topup_after'", TIP_TOPUP_AFTER_CUTOFF),
            ("'at'", AT_CUTOFF),
            ("'before'", BEFORE_CUTOFF),
        ],
        "''",
        "g",
    )
    ctx.sql(f"""
        WITH owners AS (
          SELECT 'Image' AS etype, "id", "userId", "createdAt" FROM "Image"
          UNION ALL SELECT 'Model', "id", "userId", "createdAt" FROM "Model"
          UNION ALL SELECT 'Post', "id", "userId", "createdAt" FROM "Post"
          UNION ALL SELECT 'Article', "id", "userId", "createdAt" FROM "Article"
          UNION ALL SELECT 'bountyEntry', "id", "userId", "createdAt" FROM "BountyEntry"
          UNION ALL SELECT 'ComicProject', "id", "userId", "createdAt" FROM "ComicProject"
          UNION ALL SELECT 'ComicChapter', c."id", p."userId", c."createdAt"
                    FROM "ComicChapter" c JOIN "ComicProject" p ON p."id" = c."projectId")
        INSERT INTO "BuzzTip" ("entityType", "entityId", "toUserId", "fromUserId", "amount", "createdAt", "updatedAt")
        SELECT DISTINCT ON (etype, eid, from_user) etype, eid, to_user, from_user, amount, ts,
               (CASE WHEN tkind = 'topup_after' THEN {x.after_cutoff(x.u("bt.topup", "g"), 50)}
                     WHEN {x.u("bt.topup?", "g")} < {TIP_TOPUP} THEN {x.after("ts", x.u("bt.topup", "g"), 2)}
                     ELSE ts END)::timestamp(3)
        FROM (
          SELECT c.*,
                 (CASE WHEN c.tkind = 'legacy' THEN {_lit(BUZZTIP_CREATED_AT_ADDED)}
                       WHEN c.tkind = 'topup_after' THEN {x.before_cutoff("c.ts0", x.u("bt.pre", "c.g"))}
                       ELSE {x.at_cutoff_case("c.tkind", "c.ts0")} END)::timestamp(3) AS ts
          FROM (
            SELECT s.g, s.etype, s.eid, s.tkind,
                   CASE WHEN s.to_kind = 'central' THEN 0
                        WHEN s.etype = 'Model3D' THEN {x.fold("s.pu", "s.ut", nu)}
                        ELSE coalesce(o."userId", 0) END AS to_user,
                   CASE WHEN s.from_kind = 'zero' THEN 0 ELSE {x.fold("s.pf", "s.ut", nu)} END AS from_user,
                   CASE s.amount WHEN 'zero' THEN 0 WHEN 'neg' THEN -(10 + (s.g % 490))::int
                        ELSE (10 * floor(pow(1000, pow({x.u("bt.amt", "s.g")}, 2))))::int END AS amount,
                   {x.child_ts("s.ut", [('o."createdAt"', "bt.soon")], "s.g")} AS ts0
            FROM (SELECT s0.*, {x.fold("pe", "ut", n_entity)} AS eid
                  FROM (SELECT s1.*, {pick_entity} AS pe
                        FROM (SELECT g, {etype} AS etype, {to_kind} AS to_kind, {from_kind} AS from_kind,
                                     {amount} AS amount, {tkind} AS tkind, {x.u("bt.t", "g")} AS ut,
                                     {x.pick("bt.user", nu, 1.8, "g")} AS pf, {x.pick("bt.m3downer", nu, 2, "g")} AS pu
                              FROM generate_series(1, {n}) g) s1) s0) s
            LEFT JOIN owners o ON o.etype = s.etype AND o."id" = s.eid
          ) c
        ) d
        ORDER BY etype, eid, from_user, g""")
    ctx.done("BuzzTip")


def _tag_engagement(ctx: _Ctx) -> None:
    x, n, nt, nu = ctx.pgx, ctx.n["TagEngagement"], ctx.n["Tag"], ctx.n["User"]
    etype = x.kinds("te.type", n, [("'Hide'", Edge(0.20, 3)), ("'Allow'", Edge(0.03, 3))], "'Follow'", "g")
    ts = x.child_ts("s.ut", [('t."createdAt"', "te.t"), ('u."createdAt"', "te.u")], "s.g")
    ctx.sql(f"""
        INSERT INTO "TagEngagement" ("userId", "tagId", "type", "createdAt")
        SELECT DISTINCT ON (s.usr, s.tag) s.usr, s.tag, s.etype::"TagEngagementType",
               {x.at_cutoff_case("s.bk", ts)}::timestamp(3)
        FROM (SELECT s0.*, {x.fold("pu", "ut", nu)} AS usr, {x.fold("pt", "ut", nt)} AS tag
              FROM (SELECT g, {x.u("te.ts", "g")} AS ut, {x.pick("te.user", nu, 1.5, "g")} AS pu,
                           {x.pick("tag", nt, 2.5, "g")} AS pt, {etype} AS etype,
                           {x.boundary_kind("te.b", n, "g")} AS bk
                    FROM generate_series(1, {n}) g) s0) s
        JOIN "Tag" t ON t."id" = s.tag JOIN "User" u ON u."id" = s.usr
        ORDER BY s.usr, s.tag, s.g""")
    ctx.done("TagEngagement")


def _bounty_engagement(ctx: _Ctx) -> None:
    x, n, nb, nu = ctx.pgx, ctx.n["BountyEngagement"], ctx.n["Bounty"], ctx.n["User"]
    etype = x.kinds("beng.type", n, [("'both'", ENGAGEMENT_BOTH), ("'Track'", Edge(0.35, 3))], "'Favorite'", "g")
    ts = x.child_ts("s.ut", [('b."createdAt"', "beng.soon")], "s.g")
    ctx.sql(f"""
        INSERT INTO "BountyEngagement" ("userId", "bountyId", "type", "createdAt")
        SELECT DISTINCT ON (t.etype, s.bid, s.usr) s.usr, s.bid, t.etype::"BountyEngagementType",
               ({x.at_cutoff_case("s.bk", ts)} + INTERVAL '1 minute' * t.delay)::timestamp(3)
        FROM (SELECT s0.*, {x.fold("pb", "ut", nb)} AS bid, {x.fold("pu", "ut", nu)} AS usr
              FROM (SELECT g, {x.u("beng.ts", "g")} AS ut, {x.pick("bounty", nb, 2, "g")} AS pb,
                           {x.pick("beng.user", nu, 1.5, "g")} AS pu, {etype} AS etype,
                           {x.boundary_kind("beng.b", n, "g")} AS bk
                    FROM generate_series(1, {n}) g) s0) s
        JOIN "Bounty" b ON b."id" = s.bid
        CROSS JOIN LATERAL (SELECT e AS etype, CASE WHEN s.etype = 'both' AND e = 'Track' THEN 5 ELSE 0 END AS delay
                            FROM unnest(CASE WHEN s.etype = 'both' THEN ARRAY['Favorite', 'Track']
                                             ELSE ARRAY[s.etype] END) e) t
        ORDER BY t.etype, s.bid, s.usr, s.g""")
    ctx.done("BountyEngagement")


def _bounty_benefactors(ctx: _Ctx) -> None:
    """The creator of every bounty (when still present) plus other benefactors; awards to entries.

    Kinds are assigned after de-duplication over the final rows (counts in SQL); award kinds only
    among the remaining benefactors of bounties that have entries, so the kinds are disjoint."""
    x, n, nb, nu = ctx.pgx, ctx.n["BountyBenefactor"], ctx.n["Bounty"], ctx.n["User"]
    award = x.kinds(
        "bb.award",
        "f.m_e",
        [("'before'", AWARD_BEFORE), ("'after'", AWARD_AFTER), ("'null'", AWARD_NULL_DATE)],
        "''",
        "f.rn",
        partition="f.ecnt IS NOT NULL AND f.okind = ''",
    )
    other = x.kinds(
        "bb.kind",
        "f.m",
        [("'zero'", BENEFACTOR_ZERO), ("'drift'", BENEFACTOR_DRIFT), ("'at'", AT_CUTOFF), ("'before'", BEFORE_CUTOFF)],
        "''",
        "f.rn",
    )
    cutoff = _lit(ctx.cutoff)
    ctx.sql(f"""
        WITH ent AS (SELECT "bountyId", "id", row_number() OVER (PARTITION BY "bountyId" ORDER BY "id") - 1 AS rn,
                            count(*) OVER (PARTITION BY "bountyId") AS cnt FROM "BountyEntry"),
             cand AS (
               SELECT 0 AS src, b."id" AS g, b."id" AS bid, b."userId" AS uid, NULL::float8 AS ut
               FROM "Bounty" b WHERE b."userId" IS NOT NULL
               UNION ALL
               SELECT 1, g, {x.fold("pb", "ut", nb)}, {x.fold("pu", "ut", nu)}, ut
               FROM (SELECT g, {x.u("bb.t", "g")} AS ut, {x.pick("bounty", nb, 2, "g")} AS pb,
                            {x.pick("bb.user", nu, 1.5, "g")} AS pu FROM generate_series(1, {n}) g) s0),
             d AS (SELECT DISTINCT ON (bid, uid) * FROM cand ORDER BY bid, uid, src, g),
             e AS (SELECT d.*, ec.cnt AS ecnt, row_number() OVER (ORDER BY bid, uid) AS rn, count(*) OVER () AS m
                   FROM d LEFT JOIN (SELECT DISTINCT "bountyId", cnt FROM ent) ec ON ec."bountyId" = d.bid),
             e2 AS (SELECT f.*, {other} AS okind FROM e f),
             f AS (SELECT e2.*, count(*) OVER (PARTITION BY ecnt IS NOT NULL AND okind = '') AS m_e FROM e2),
             k AS (SELECT f.*, CASE WHEN f.ecnt IS NOT NULL AND f.okind = '' THEN {award} ELSE '' END AS akind,
                          CASE WHEN f.src = 0 THEN b."createdAt"
                               ELSE {x.child_ts("f.ut", [('b."createdAt"', "bb.soon")], "f.rn")} END AS ts0,
                          b."minBenefactorUnitAmount" AS minamt
                   FROM f JOIN "Bounty" b ON b."id" = f.bid),
             t AS (SELECT k.*, (CASE WHEN k.akind <> '' OR k.okind = 'drift'
                                     THEN {x.before_cutoff("k.ts0", x.u("bb.pre", "k.rn"))}
                                     ELSE {x.at_cutoff_case("k.okind", "k.ts0")} END)::timestamp(3) AS ts
                   FROM k),
             a AS (SELECT t.*, (CASE t.akind
                                  WHEN 'before' THEN t.ts + ({cutoff} - t.ts) * {x.u("bb.aw", "t.rn")}
                                  WHEN 'after' THEN {x.after_cutoff(x.u("bb.aw", "t.rn"), 45)}
                                  WHEN 'null' THEN {x.after("t.ts", x.u("bb.aw", "t.rn"), 2)}
                                END)::timestamp(3) AS award_ts
                   FROM t)
        INSERT INTO "BountyBenefactor" ("userId", "bountyId", "unitAmount", "createdAt", "updatedAt", "awardedAt",
                                        "awardedToId", "currency", "buzzTransactionId")
        SELECT a.uid, a.bid,
               CASE WHEN a.okind = 'zero' THEN 0 WHEN a.src = 0 THEN a.minamt
                    ELSE 100 * (1 + floor(pow({x.u("bb.amt", "a.rn")}, 3) * 50))::int END,
               a.ts,
               (CASE WHEN a.akind <> '' THEN a.award_ts
                     WHEN a.okind = 'drift' THEN {x.after_cutoff(x.u("bb.drift", "a.rn"), 45)}
                     ELSE a.ts END)::timestamp(3),
               CASE WHEN a.akind IN ('before', 'after') THEN a.award_ts END,
               CASE WHEN a.akind <> '' THEN en."id" END,
               (CASE WHEN {x.u("bb.cur", "a.rn")} < 0.92 THEN 'BUZZ' WHEN {x.u("bb.cur", "a.rn")} < 0.97 THEN 'USDC'
                     ELSE 'USD' END)::"Currency",
               CASE WHEN {x.u("bb.tx", "a.rn")} < 0.8 THEN ARRAY['tx-' || a.bid || '-' || a.uid]
                    ELSE ARRAY[]::text[] END
        FROM a LEFT JOIN ent en ON en."bountyId" = a.bid AND a.akind <> ''
                               AND en.rn = floor(a.ecnt * {x.u("bb.entry", "a.rn")})::int""")
    ctx.done("BountyBenefactor")


def _comic_engagement(ctx: _Ctx) -> None:
    x, n, ncp, nu = ctx.pgx, ctx.n["ComicProjectEngagement"], ctx.n["ComicProject"], ctx.n["User"]
    nch = ctx.n["ComicChapter"]
    etype = x.kinds("cpe.type", n, [("'None'", Edge(0.20, 3)), ("'Hide'", Edge(0.12, 3))], "'Notify'", "g")
    read = x.kinds("cpe.read", n, [("true", Edge(0.35, 3))], "false", "g")
    tkind = x.kinds(
        "cpe.ts", n, [("'drift'", COMIC_DRIFT), ("'at'", AT_CUTOFF), ("'before'", BEFORE_CUTOFF)], "''", "g"
    )
    ts = x.child_ts("s.ut", [('p."createdAt"', "cpe.soon")], "s.g")
    ctx.sql(f"""
        WITH ch AS (SELECT "projectId", array_agg("id" ORDER BY "position") AS ids FROM "ComicChapter"
                    GROUP BY "projectId")
        INSERT INTO "ComicProjectEngagement" ("userId", "projectId", "type", "createdAt", "updatedAt", "readChapters")
        SELECT DISTINCT ON (usr, pid) usr, pid, etype::"ComicEngagementType", ts,
               (CASE WHEN tkind = 'drift' THEN {x.after_cutoff(x.u("cpe.drift", "g"), 45)}
                     WHEN etype = 'None' THEN {x.after("ts", x.u("cpe.unf", "g"), 2)} ELSE ts END)::timestamp(3),
               CASE WHEN rd THEN coalesce(ids[1:1 + (g % 5)::int], '{{}}'::int[]) ELSE '{{}}'::int[] END
        FROM (SELECT s.*, ch.ids,
                     (CASE WHEN s.tkind = 'drift' THEN {x.before_cutoff(ts, x.u("cpe.pre", "s.g"))}
                           ELSE {x.at_cutoff_case("s.tkind", ts)} END)::timestamp(3) AS ts
              FROM (SELECT s0.*, {x.fold("pu", "ut", nu)} AS usr, {x.fold("pp", "ut", ncp)} AS pid
                    FROM (SELECT g, {x.u("cpe.t", "g")} AS ut, {x.pick("cpe.user", nu, 1.3, "g")} AS pu,
                                 {x.pick("comic", ncp, 2, "g")} AS pp, {etype} AS etype, {read} AS rd, {tkind} AS tkind
                          FROM generate_series(1, {n}) g) s0) s
              JOIN "ComicProject" p ON p."id" = s.pid LEFT JOIN ch ON ch."projectId" = s.pid) c
        ORDER BY usr, pid, g""")
    ts = x.child_ts("s.ut", [('c."createdAt"', "ccr.soon")], "s.g")
    ctx.sql(f"""
        INSERT INTO "ComicChapterRead" ("userId", "chapterId", "unread", "createdAt", "updatedAt")
        SELECT DISTINCT ON (s.usr, s.chid) s.usr, s.chid, {x.u("ccr.unread", "s.g")} < 0.05, ts.ts, ts.ts
        FROM (SELECT s0.*, {x.fold("pu", "ut", nu)} AS usr, {x.fold("pc", "ut", nch)} AS chid
              FROM (SELECT g, {x.u("ccr.t", "g")} AS ut, {x.pick("ccr.user", nu, 1.3, "g")} AS pu,
                           {x.pick("chapter", nch, 2, "g")} AS pc
                    FROM generate_series(1, {ctx.n["ComicChapterRead"]}) g) s0) s
        JOIN "ComicChapter" c ON c."id" = s.chid
        CROSS JOIN LATERAL (SELECT ({ts})::timestamp(3) AS ts) ts
        ORDER BY s.usr, s.chid, s.g""")
    ctx.done("ComicProjectEngagement, ComicChapterRead")


def _truth_only_tables(ctx: _Ctx) -> None:
    """Tables read only by the processors' truth queries: donations, article engagement, tag links,
    and a few not-yet-processed Outbox rows."""
    x, N = ctx.pgx, ctx.n
    nu, nmv, na = N["User"], N["ModelVersion"], N["Article"]
    ndg, nd = N["DonationGoal"], N["Donation"]
    ctx.sql(f"""
        INSERT INTO "DonationGoal" ("id", "userId", "title", "goalAmount", "entityType", "entityId", "modelVersionId",
                                    "createdAt", "active")
        SELECT g, m."userId", 'Goal ' || g, 1000 * (1 + g % 20),
               (CASE WHEN g % 10 = 0 THEN 'ComicChapter' ELSE 'ModelVersion' END)::"PaidAccessEntityType",
               CASE WHEN g % 10 = 0 THEN 1 + g % {N["ComicChapter"]} ELSE mv."id" END,
               CASE WHEN g % 10 = 0 THEN NULL ELSE mv."id" END,
               (mv."createdAt" + INTERVAL '1 day')::timestamp(3), {x.u("dg.active", "g")} < 0.8
        FROM generate_series(1, {ndg}) g
        JOIN "ModelVersion" mv ON mv."id" = {x.pick("modelVersion", nmv, 2, "g")}
        JOIN "Model" m ON m."id" = mv."modelId" """)
    ctx.sql(f"""
        INSERT INTO "Donation" ("id", "userId", "donationGoalId", "amount", "buzzTransactionId", "createdAt")
        SELECT g, {x.pick("don.user", nu, 1.5, "g")}, dg."id",
               10 * (1 + floor(pow({x.u("don.amt", "g")}, 2) * 100))::int,
               'don-' || g, {x.after('dg."createdAt"', x.u("don.ts", "g"), 2)}::timestamp(3)
        FROM generate_series(1, {nd}) g JOIN "DonationGoal" dg ON dg."id" = {x.pick("dg", ndg, 1.5, "g")}""")
    ctx.sql(f"""
        INSERT INTO "ArticleEngagement" ("userId", "articleId", "type", "createdAt")
        SELECT DISTINCT ON (usr, art) usr, art,
               (CASE WHEN {x.u("ae.type", "g")} < 0.8 THEN 'Favorite' ELSE 'Hide' END)::"ArticleEngagementType",
               {x.growth(x.u("ae.ts", "g"))}::timestamp(3)
        FROM (SELECT g, {x.pick("ae.user", nu, 1.5, "g")} AS usr, {x.pick("article", na, 2.5, "g")} AS art
              FROM generate_series(1, {N["ArticleEngagement"]}) g) s
        ORDER BY usr, art, g""")
    for table, entity, parent, per in (
        ("TagsOnModels", "modelId", "Model", 2),
        ("TagsOnPost", "postId", "Post", 2),
        ("TagsOnArticle", "articleId", "Article", 2),
    ):
        count = N[parent] * per
        ctx.sql(f"""
            INSERT INTO "{table}" ("{entity}", "tagId", "createdAt")
            SELECT DISTINCT ON (e, t) e, t, p."createdAt"
            FROM (SELECT g, 1 + ((g - 1) % {N[parent]}) AS e, {x.pick("tag", N["Tag"], 2.5, "g")} AS t
                  FROM generate_series(1, {count}) g) s
            JOIN "{parent}" p ON p."id" = s.e
            WHERE p."createdAt" IS NOT NULL
            ORDER BY e, t, g""")
    ctx.sql(f"""
        INSERT INTO "Outbox" ("id", "event", "entityType", "entityId", "createdAt", "details", "attempts")
        SELECT g, 'PUBLISHED', (CASE WHEN g % 2 = 0 THEN 'Post' ELSE 'ModelVersion' END)::"OutboxEntity",
               CASE WHEN g % 2 = 0 THEN {x.pick("post", N["Post"], 1, "g")}
                    ELSE {x.pick("modelVersion", nmv, 1, "g")} END,
               {_lit(ctx.cutoff + HORIZON)} - INTERVAL '1 second' * g, '{{}}'::jsonb, 0
        FROM generate_series(1, 5) g""")
    ctx.done("truth-only tables")


_PG_STEPS: tuple[Callable[[_Ctx], None], ...] = (
    _users,
    _tags,
    _models,
    _model_versions,
    _collections,
    _posts,
    _images,
    _articles,
    _bounties,
    _bounty_entries,
    _comics,
    _user_engagement,
    _image_reactions,
    _article_reactions,
    _bounty_entry_reactions,
    _resource_reviews,
    _collection_items,
    _collection_contributors,
    _comments,
    _threads_and_comments,
    _image_resources,
    _buzz_tips,
    _tag_engagement,
    _bounty_engagement,
    _bounty_benefactors,
    _comic_engagement,
    _truth_only_tables,
)


# --------------------------------------------------------------------------------------------
# PostgreSQL -> ClickHouse transfer (lookups only; TSV bytes, no per-row Python work)
# --------------------------------------------------------------------------------------------
def _copy_out(ctx: _Ctx, query: str) -> str:
    return ctx.conn.copy_out(query).decode()


def _transfer(ctx: _Ctx, table: str, columns: str, query: str, id_range: tuple[str, int] | None = None) -> None:
    """COPY a PostgreSQL query out as TSV and INSERT it into a ClickHouse table."""
    ranges: Iterable[tuple[int, int]] = [(0, 0)]
    if id_range:
        hi = int(id_range[1])
        ranges = [(lo, lo + _TRANSFER_BATCH) for lo in range(0, hi + 1, _TRANSFER_BATCH)]
    for lo, hi in ranges:
        q = query if not id_range else f"{query} WHERE {id_range[0]} >= {lo} AND {id_range[0]} < {hi}"
        data = _copy_out(ctx, q)
        if data:
            ctx.ch_cmd(f"INSERT INTO {table} ({columns}) FORMAT TabSeparated\n{data}")


# --------------------------------------------------------------------------------------------
# ClickHouse sources
# --------------------------------------------------------------------------------------------
def _ch_downloads(ctx: _Ctx) -> None:
    """modelVersionEvents; the MV feeds daily_downloads_unique (created before this insert)."""
    x, n = ctx.chx, ctx.n["ch:modelVersionEvents"]
    nmv, nm, nu = ctx.n["ModelVersion"], ctx.n["Model"], ctx.n["User"]
    lookup = ctx.t("default", "_gen_mv_lookup")
    ctx.ch_cmd(f"CREATE TABLE {lookup} (id Int32, modelId Int32, created_ms Int64) ENGINE = MergeTree ORDER BY id")
    _transfer(
        ctx,
        lookup,
        "id, modelId, created_ms",
        'SELECT "id", "modelId", (extract(epoch FROM "createdAt") * 1000)::bigint FROM "ModelVersion"',
    )
    etype = x.kinds(
        "mve.type",
        n,
        [
            ("'Create'", Edge(0.02, 3)),
            ("'Publish'", Edge(0.02, 3)),
            ("'Unpublish'", Edge(0.01, 3)),
            ("'HideDownload'", Edge(0.03, 3)),
        ],
        "'Download'",
        "number",
    )
    ukind = x.kinds(
        "mve.user",
        n,
        [("'anon'", Edge(0.25, 5)), ("'minus1'", Edge(0.01, 3)), ("'filtered'", Edge(0.01, 3))],
        "''",
        "number",
    )
    missing = x.kinds("mve.missing", n, [("1", Edge(0.005, 5))], "0", "number")
    bk = x.boundary_kind("mve.b", n, "number")
    # Time first (growth curve), then a hot version that already existed then; never before it.
    ts = (
        f"if(l.id = 0, {x.growth_ms('s.ut')}, greatest({x.growth_ms('s.ut')}, "
        f"l.created_ms + 1000 + floor({x.u('mve.soon', 'number')} * 86400000)))"
    )
    c = _ms(ctx.cutoff) // 1000
    ip = "concat('10.', toString(h % 256), '.', toString(intDiv(h, 256) % 256), '.', toString(intDiv(h, 65536) % 256))"
    ctx.ch_cmd(
        f"""
        INSERT INTO {ctx.t("default", "modelVersionEvents")}
            (type, time, userId, modelId, modelVersionId, nsfw, ip, userAgent, earlyAccess, deviceId)
        SELECT etype,
               multiIf(bk = 'at', toDateTime({c}, 'UTC'), bk = 'before', toDateTime({c - 1}, 'UTC'),
                       toDateTime(intDiv(toInt64({ts}), 1000), 'UTC')),
               multiIf(ukind = 'anon', 0, ukind = 'minus1', -1, ukind = 'filtered', {FILTERED_DOWNLOAD_USERS[1]},
                       {x.fold("s.pu", "s.ut", nu)}),
               if(l.id = 0, toInt32({nm} + 1 + mv % 17), l.modelId), mv,
               {x.u("mve.nsfw", "number")} < 0.15,
               if(ukind = 'anon' OR {x.u("mve.ip", "number")} < 0.5, {ip}, ''),
               if({x.u("mve.ua", "number")} < 0.7, 'Mozilla/5.0', 'python-requests/2.31'),
               {x.u("mve.ea", "number")} < 0.02,
               if({x.u("mve.dev", "number")} < 0.3, lower(hex(cityHash64({x.key("dev")}, number % 5000))), '')
        FROM (SELECT *, if(missing = 1, toInt32({nmv} + 1 + number % {max(3, nmv // 100)}),
                           {x.fold("pm", "ut", nmv)}) AS mv
              FROM (SELECT number, {etype} AS etype, {ukind} AS ukind, {bk} AS bk, {missing} AS missing,
                           {x.u("mve.ts", "number")} AS ut, {x.pick("modelVersion", nmv, 3, "number")} AS pm,
                           {x.pick("mve.user", nu, 1.5, "number")} AS pu,
                           cityHash64({x.key("mve.ipkey")}, number % {max(50, n // 3)}) AS h
                    FROM numbers({n}))) s
        LEFT JOIN {lookup} l ON l.id = s.mv
        """,
        settings={"max_threads": 1, "max_insert_threads": 1, "join_use_nulls": 0},
    )
    ctx.done("ch modelVersionEvents (+ daily_downloads_unique)")


def _ch_jobs(ctx: _Ctx) -> None:
    x, n = ctx.chx, ctx.n["ch:jobs"]
    nmv, ni, nu = ctx.n["ModelVersion"], ctx.n["Image"], ctx.n["User"]
    start = HISTORY_START + (ctx.cutoff - HISTORY_START) * 0.2  # generation arrived later than the site
    jtype = x.kinds(
        "job.type",
        n,
        [
            ("'TextToImage'", Edge(0.15, 3)),
            ("'Comfy'", Edge(0.15, 3)),
            ("'Training'", Edge(0.05, 3)),
            ("'ImageUpscale'", Edge(0.04, 3)),
            ("'VideoGen'", Edge(0.04, 3)),
            ("'TextToSpeech'", Edge(0.01, 2)),
        ],
        "'TextToImageV2'",
        "number",
    )
    anon = x.kinds("job.anon", n, [("1", Edge(0.01, 3))], "0", "number")
    res = x.kinds(
        "job.res",
        n,
        [("'empty'", Edge(0.03, 3)), ("'dup'", Edge(0.02, 3)), ("'unknown'", Edge(0.01, 3))],
        "''",
        "number",
    )
    remix = x.kinds(
        "job.remix",
        n,
        [("'empty'", Edge(0.03, 3)), ("'img'", Edge(0.08, 3)), ("'missing'", Edge(0.01, 3)), ("'text'", Edge(0.01, 3))],
        "'none'",
        "number",
    )
    bk = x.boundary_kind("job.b", n, "number")

    def v(salt: str) -> str:
        return x.pick(salt, nmv, 3, "number")

    elem = x.scatter(
        x._int(
            f"floor({nmv} * pow(bitShiftRight(cityHash64({x.key('job.elem')}, number, i), 11) / 9007199254740992.0, 3))"
        ),
        nmv,
    )
    c = _ms(ctx.cutoff)
    ctx.ch_cmd(f"""
        INSERT INTO {ctx.t("orchestration", "jobs")}
            (jobId, userId, jobType, createdAt, completedAt, provider, issuedBy, cost, creatorsTip, resourcesUsed,
             remixOfId, serviceUpgradeFee, claimDuration, blobsCount)
        SELECT concat(lower(hex(cityHash64({x.key("job.id")}, number))), '-', toString(number)),
               if(anon = 1, 0, {x.pick("job.user", nu, 1.5, "number")}), jtype, ts,
               ts + toIntervalMillisecond(toInt64(500 + {x.u("job.dur", "number")} * 60000)),
               ['a', 'b', 'c'][1 + number % 3], 'civitai', round({x.u("job.cost", "number")} * 50, 2),
               if({x.u("job.tip", "number")} < 0.1, round({x.u("job.tipv", "number")} * 5, 2), NULL),
               multiIf(res = 'empty', CAST([] AS Array(Int32)),
                       res = 'dup', [{v("job.v1")}, {v("job.v1")}, {v("job.v2")}],
                       res = 'unknown', [{v("job.v1")}, toInt32({nmv} + 1 + number % 7)],
                       arrayMap(i -> {elem}, range(1 + toUInt8({x.u("job.len", "number")} * 3.2)))),
               multiIf(remix = 'none', NULL, remix = 'empty', '',
                       remix = 'img', toString({x.pick("image", ni, 3, "number")}),
                       remix = 'missing', toString({ni} + 1 + number % 50),
                       concat('https://orchestration.example/blob/', lower(hex(cityHash64(number))))),
               if({x.u("job.fee", "number")} < 0.05, toInt16(10), NULL), {x.u("job.claim", "number")} * 2,
               if({x.u("job.blobs0", "number")} < 0.1, 0, toInt16(1 + number % 4))
        FROM (SELECT number, {jtype} AS jtype, {anon} AS anon, {res} AS res, {remix} AS remix,
                     multiIf({bk} = 'at', {x.ts_of_ms(str(c))}, {bk} = 'before', {x.ts_of_ms(str(c - 1))},
                             {x.ts_of_ms(x.growth_ms(x.u("job.ts", "number"), start))}) AS ts
              FROM numbers({n}))""")
    # Truth support: per (version, day) generation counts, filled directly (its feeder is not
    # public), roughly one per job x resource, plus one oversized count the processor ignores.
    gen = ctx.t("orchestration", "daily_resource_generation_counts")
    ctx.ch_cmd(f"""
        INSERT INTO {gen} (modelVersionId, createdDate, count)
        SELECT v, toDate(createdAt, 'UTC') AS d, count()
        FROM {ctx.t("orchestration", "jobs")} ARRAY JOIN resourcesUsed AS v
        WHERE jobType IN ('TextToImageV2', 'TextToImage', 'Comfy')
        GROUP BY v, d""")
    ctx.ch_cmd(
        f"INSERT INTO {gen} (modelVersionId, createdDate, count) "
        f"VALUES (1, toDate('{ctx.cutoff - dt.timedelta(days=3):%Y-%m-%d}'), 3000000000)"
    )
    ctx.done("ch jobs, daily_resource_generation_counts")


def _ch_buzz_resource_compensation(ctx: _Ctx) -> None:
    """Sept-2025 earnings path: 1-3 hourly revisions per (day, version), each a separate INSERT;
    only the newest revision of a closed day has final = 1."""
    x, n, nmv = ctx.chx, ctx.n["ch:buzz_resource_compensation"], ctx.n["ModelVersion"]
    first = (ctx.cutoff - dt.timedelta(days=540)).date()
    days = 540 + 45
    open_from = days - 5  # the last five days are still open (their newest revision is not final)
    missing = x.kinds("brc.missing", n, [("1", Edge(0.01, 3))], "0", "number")
    keys = f"""
        SELECT toDateTime(toDate('{first}') + intDiv(number * {days}, {n}), 'UTC') AS date,
               intDiv(number * {days}, {n}) AS di,
               if({missing} = 1, toInt32({nmv} + 1 + number % 11), {x.pick("modelVersion", nmv, 2, "number")}) AS mv,
               1 + cityHash64({x.key("brc.revs")}, number) % 3 AS revs,
               toUInt32(floor(5000 * pow({x.u("brc.total", "number")}, 3))) AS total
        FROM numbers({n}) ORDER BY number LIMIT 1 BY date, mv"""
    for rev in range(3):
        ctx.ch_cmd(f"""
            INSERT INTO {ctx.t("default", "buzz_resource_compensation")}
                (date, modelVersionId, comp, tip, total, updated_at, count, final)
            SELECT date, mv, toUInt32(floor(t * 0.8)), t - toUInt32(floor(t * 0.8)), t,
                   date + toIntervalHour(24 + {rev} + 1), toInt32(t / 3), toUInt8({rev} = revs - 1 AND di < {open_from})
            FROM (SELECT *, toUInt32(floor(total * ({rev} + 1) / revs)) AS t FROM ({keys}))
            WHERE {rev} < revs""")
    ctx.done("ch buzz_resource_compensation")


def _ch_resource_compensations(ctx: _Ctx) -> None:
    """Today's earnings path: fractional amounts per (day, version, accountType, source), each
    split into 1-3 partial rows spread over three separate INSERTs, so that several unmerged rows
    share a key and only sum() GROUP BY gives the day's value."""
    x, n, nmv = ctx.chx, ctx.n["ch:resourceCompensations"], ctx.n["ModelVersion"]
    first = (ctx.cutoff - dt.timedelta(days=720)).date()
    days = 720 + HORIZON.days
    missing = x.kinds("rc.missing", n, [("1", Edge(0.01, 3))], "0", "number")
    # combo c: accountType = types[c % 3], source = sources[c / 3]; 1-3 combos per (day, version).
    types, sources = "['yellow', 'blue', 'green']", "['compensation', 'licenseFee', 'tip']"
    amount = f"bitShiftRight(cityHash64({x.key('rc.amt')}, number, combo, part), 11) / 9007199254740992.0"
    for batch in range(3):
        ctx.ch_cmd(f"""
            INSERT INTO {ctx.t("orchestration", "resourceCompensations")}
                (date, modelVersionId, accountType, source, amount)
            SELECT date, mv, {types}[1 + (combo % 3)], {sources}[1 + intDiv(combo, 3)],
                   floor(64 * 800 * pow({amount}, 3)) / 64  -- multiples of 1/64: exact float sums
            FROM (SELECT number, date, mv,
                         arrayJoin(arraySlice([0, 3, 1, 6], 1,
                                              1 + cityHash64({x.key("rc.combos")}, number) % 3)) AS combo,
                         arrayJoin(range(1 + cityHash64({x.key("rc.parts")}, number, combo) % 3)) AS part
                  FROM (SELECT number, toDate('{first}') + intDiv(number * {days}, {n}) AS date,
                               if({missing} = 1, toInt32({nmv} + 1 + number % 13),
                                  {x.pick("modelVersion", nmv, 2, "number")}) AS mv
                        FROM numbers({n})))
            WHERE (part + number) % 3 = {batch}""")
    ctx.done("ch resourceCompensations")


def _ch_reactions_log(ctx: _Ctx) -> None:
    """Append-only reaction log: one *_Create per current reaction (PostgreSQL rows, owner resolved
    there), Create+Delete pairs of reactions removed since, and the other reactable kinds."""
    x, nu = ctx.chx, ctx.n["User"]
    log = ctx.t("default", "reactions")
    cols = "type, time, userId, entityId, reaction, ownerId"

    def epoch(col: str) -> str:
        return f"floor(extract(epoch FROM {col}))::bigint"

    # Owner of a reaction whose image is gone: whoever owned it then; any user will do.
    gone = f'1 + (hashint8extended(r."imageId", {ctx.pgx.key("log.gone")}) & 2147483647) % {nu}'
    max_ir = int(ctx.scalar('SELECT coalesce(max("id"), 0) FROM "ImageReaction"'))
    created = epoch('r."createdAt"')
    _transfer(
        ctx,
        log,
        cols,
        f'SELECT \'Image_Create\', {created}, r."userId", r."imageId", r."reaction", '
        f'coalesce(i."userId", {gone}) '
        f'FROM "ImageReaction" r LEFT JOIN "Image" i ON i."id" = r."imageId"',
        id_range=('r."id"', max_ir),
    )
    _transfer(
        ctx,
        log,
        cols,
        f'SELECT \'Article_Create\', {created}, r."userId", r."articleId", r."reaction", '
        f'a."userId" FROM "ArticleReaction" r JOIN "Article" a ON a."id" = r."articleId"',
    )
    _transfer(
        ctx,
        log,
        cols,
        f'SELECT \'BountyEntry_Create\', {created}, r."userId", r."bountyEntryId", '
        f'r."reaction", coalesce(e."userId", -1) FROM "BountyEntryReaction" r '
        f'JOIN "BountyEntry" e ON e."id" = r."bountyEntryId"',
    )
    # Reactions removed since: a Create and a later Delete of another reaction by the same user.
    ctx.ch_cmd(f"""
        INSERT INTO {log} ({cols})
        SELECT arrayJoin(['Image_Create', 'Image_Delete']) AS t,
               if(t = 'Image_Create', time - 86400, time - 3600), userId, entityId,
               ['Like', 'Dislike', 'Laugh', 'Cry', 'Heart'][1 + (toUInt8(reaction) + 1) % 5], ownerId
        FROM {log}
        WHERE type = 'Image_Create' AND cityHash64({x.key("log.del")}, entityId, userId, toUInt8(reaction)) % 20 = 0""")
    # Other reactable kinds (comments, reviews, questions, answers), never mirrored in PostgreSQL here.
    n = ctx.n["ch:reactions.other"]
    kinds = x.kinds(
        "log.kind",
        n,
        [
            ("'CommentV2_Create'", Edge(0.35, 2)),
            ("'Review_Create'", Edge(0.15, 2)),
            ("'Question_Create'", Edge(0.03, 2)),
            ("'Answer_Create'", Edge(0.03, 2)),
            ("'CommentV2_Delete'", Edge(0.02, 2)),
            ("'Comment_Delete'", Edge(0.01, 2)),
        ],
        "'Comment_Create'",
        "number",
    )
    ctx.ch_cmd(f"""
        INSERT INTO {log} ({cols})
        SELECT {kinds}, toDateTime(intDiv(toInt64({x.growth_ms(x.u("log.ts", "number"))}), 1000), 'UTC'),
               {x.pick("log.user", nu, 1.5, "number")}, toInt32(1 + number % 100000),
               {x.kinds("log.reaction", n, _REACTIONS, "'Like'", "number")},
               {x.pick("log.owner", nu, 3, "number")}
        FROM numbers({n})""")
    ctx.done("ch reactions")


_CH_STEPS: tuple[Callable[[_Ctx], None], ...] = (
    _ch_downloads,
    _ch_jobs,
    _ch_buzz_resource_compensation,
    _ch_resource_compensations,
    _ch_reactions_log,
)


# --------------------------------------------------------------------------------------------
# *Metric tables: "displayed" values = processor truth, stale for ~10 %, missing for ~3 %
# --------------------------------------------------------------------------------------------
def _ch_to_pg(ctx: _Ctx, table: str, columns: str, query: str) -> None:
    """Load a (small) ClickHouse aggregate into a PostgreSQL temp table."""
    ctx.sql(f"CREATE TEMP TABLE {table} ({columns})")
    ctx.conn.copy_rows_in(table, ctx.ch_rows(query))


def _metric_insert(
    ctx: _Ctx,
    table: str,
    key: str,
    n: int,
    timeframe: bool,
    truth: str,
    columns: Sequence[str],
    frozen: Mapping[str, str] | None = None,
) -> None:
    """Insert the truth rows of entities 1..n as displayed values: stale (older `updatedAt`, lower
    values) for a share of the entities, missing for a few; `frozen` columns get fixed expressions."""
    x = ctx.pgx
    k = f't."{key}"'
    kind = x.kinds(
        "metric." + table, n, [("'missing'", MISSING_METRIC), ("'stale'", STALE_METRIC)], "''", f't0."{key}"'
    )
    factor = f"(0.5 + 0.45 * {x.u('stalef.' + table, k)})"
    values = [
        f"least(2147483647, CASE WHEN kind = 'stale' THEN floor(coalesce(t.\"{c}\", 0) * {factor}) "
        f'ELSE coalesce(t."{c}", 0) END)::int'
        for c in columns
    ]
    now = _lit(ctx.cutoff + HORIZON)
    updated = (
        f"(CASE WHEN kind = 'stale' THEN {now} - INTERVAL '1 day' * (30 + {x.u('staled.' + table, k)} * 300) "
        f"ELSE {now} - INTERVAL '1 hour' * {x.u('fresh.' + table, k)} * 24 END)::timestamp(3)"
    )
    extra = dict(frozen or {})
    all_cols = (
        [f'"{key}"']
        + (['"timeframe"'] if timeframe else [])
        + [f'"{c}"' for c in columns]
        + [f'"{c}"' for c in extra]
        + ['"updatedAt"']
    )
    select = [k] + (["'AllTime'"] if timeframe else []) + values + list(extra.values()) + [updated]
    ctx.sql(f"""
        INSERT INTO "{table}" ({", ".join(all_cols)})
        SELECT {", ".join(select)} FROM (SELECT t0.*, {kind} AS kind FROM ({truth}) t0) t
        WHERE kind <> 'missing'""")


def _metrics(ctx: _Ctx) -> None:
    T = _lit(ctx.cutoff + HORIZON)  # the processors' "now" for scheduled versions
    _ch_to_pg(
        ctx,
        "_gen_ch_mv",
        '"modelVersionId" int, downloads bigint, generations bigint, earned bigint',
        f"""
        SELECT modelVersionId, sum(d), sum(g), sum(e) FROM (
          SELECT modelVersionId, toInt64(uniqMerge(users_state)) AS d, toInt64(0) AS g, toInt64(0) AS e
          FROM {ctx.t("default", "daily_downloads_unique")} GROUP BY modelVersionId
          UNION ALL
          SELECT modelVersionId, 0, toInt64(sum(count)), 0
          FROM {ctx.t("orchestration", "daily_resource_generation_counts")}
          WHERE createdDate <= today() AND count <= 2147483647 AND modelVersionId NOT IN (391999, 424706)
          GROUP BY modelVersionId
          UNION ALL
          SELECT modelVersionId, 0, 0, toInt64(floor(sum(amount)))
          FROM {ctx.t("orchestration", "resourceCompensations")}
          GROUP BY modelVersionId)
        GROUP BY modelVersionId""",
    )
    _ch_to_pg(
        ctx,
        "_gen_ch_user",
        '"userId" int, reactions bigint',
        f"""
        SELECT ownerId, sum(if(endsWith(toString(type), '_Create'), 1, -1))
        FROM {ctx.t("default", "reactions")}
        WHERE time < toDateTime('2024-04-27 00:00:00', 'UTC') OR userId != ownerId GROUP BY ownerId""",
    )
    ue = (
        'SELECT "targetUserId" AS uid, count(*) FILTER (WHERE "type" = \'Follow\') AS fol, '
        'count(*) FILTER (WHERE "type" = \'Hide\') AS hid FROM "UserEngagement" GROUP BY 1'
    )
    _metric_insert(
        ctx,
        "UserMetric",
        "userId",
        ctx.n["User"],
        True,
        f"""
        SELECT u."id" AS "userId", f.fol AS "followerCount", f.hid AS "hiddenCount", fg.c AS "followingCount",
               up.c AS "uploadCount", rv.c AS "reviewCount", cr.reactions AS "reactionCount"
        FROM "User" u
        LEFT JOIN ({ue}) f ON f.uid = u."id"
        LEFT JOIN (SELECT "userId", count(*) AS c FROM "UserEngagement" WHERE "type" = 'Follow' GROUP BY 1) fg
               ON fg."userId" = u."id"
        LEFT JOIN (SELECT m."userId", count(*) AS c FROM "ModelVersion" mv JOIN "Model" m ON m."id" = mv."modelId"
                   WHERE mv."status" = 'Published' OR (mv."status" = 'Scheduled' AND mv."publishedAt" <= {T})
                   GROUP BY 1) up ON up."userId" = u."id"
        LEFT JOIN (SELECT rr."userId", count(*) AS c FROM "ResourceReview" rr
                   JOIN "ModelVersion" mv ON mv."id" = rr."modelVersionId" WHERE mv."status" = 'Published'
                   GROUP BY 1) rv ON rv."userId" = u."id"
        LEFT JOIN _gen_ch_user cr ON cr."userId" = u."id"
        """,
        ["followerCount", "hiddenCount", "followingCount", "uploadCount", "reviewCount", "reactionCount"],
        {"answerCount": '(t."userId" % 3)', "answerAcceptCount": '(t."userId" % 2)'},
    )
    # Frozen leftovers of the retired timeframes (only AllTime is still written).
    ctx.sql(f"""INSERT INTO "UserMetric" ("userId", "timeframe", "followerCount", "reactionCount", "updatedAt")
                SELECT "userId", 'Month', "followerCount" / 2, "reactionCount" / 3, {_lit(dt.datetime(2024, 11, 3))}
                FROM "UserMetric" WHERE "userId" % 50 = 0""")
    reviews = """SELECT rr."{k}" AS id,
                        count(DISTINCT rr."userId") FILTER (WHERE rr."recommended") AS up,
                        count(DISTINCT rr."userId") FILTER (WHERE NOT rr."recommended") AS down
                 FROM "ResourceReview" rr WHERE NOT rr."exclude" AND NOT rr."tosViolation" GROUP BY 1"""
    donations = """SELECT dg."entityId" AS id, count(d."amount") AS c, sum(d."amount") AS a
                   FROM "Donation" d JOIN "DonationGoal" dg ON dg."id" = d."donationGoalId"
                   WHERE dg."entityType" = 'ModelVersion' AND dg."entityId" IS NOT NULL GROUP BY 1"""
    _metric_insert(
        ctx,
        "ModelVersionMetric",
        "modelVersionId",
        ctx.n["ModelVersion"],
        False,
        f"""
        SELECT mv."id" AS "modelVersionId", ch.downloads AS "downloadCount", ch.generations AS "generationCount",
               ch.earned AS "earnedAmount", r.up AS "thumbsUpCount", r.down AS "thumbsDownCount",
               dn.c AS "tippedCount", dn.a AS "tippedAmountCount", img.c AS "imageCount"
        FROM "ModelVersion" mv
        LEFT JOIN _gen_ch_mv ch ON ch."modelVersionId" = mv."id"
        LEFT JOIN ({reviews.format(k="modelVersionId")}) r ON r.id = mv."id"
        LEFT JOIN ({donations}) dn ON dn.id = mv."id"
        LEFT JOIN (SELECT ir."modelVersionId", count(*) AS c FROM "ImageResourceNew" ir
                   JOIN "Image" i ON i."id" = ir."imageId" JOIN "Post" p ON p."id" = i."postId"
                   JOIN "ModelVersion" v ON v."id" = ir."modelVersionId" JOIN "Model" m ON m."id" = v."modelId"
                   WHERE p."publishedAt" IS NOT NULL AND i."userId" <> m."userId" GROUP BY 1) img
               ON img."modelVersionId" = mv."id"
        """,
        [
            "downloadCount",
            "generationCount",
            "earnedAmount",
            "thumbsUpCount",
            "thumbsDownCount",
            "tippedCount",
            "tippedAmountCount",
            "imageCount",
        ],
        {"commentCount": '(t."modelVersionId" % 5)', "collectedCount": '(t."modelVersionId" % 7)'},
    )
    _metric_insert(
        ctx,
        "ModelMetric",
        "modelId",
        ctx.n["Model"],
        False,
        f"""
        SELECT m."id" AS "modelId", r.up AS "thumbsUpCount", r.down AS "thumbsDownCount", c.c AS "commentCount",
               coalesce(tp.c, 0) + coalesce(vt.c, 0) AS "tippedCount",
               coalesce(tp.a, 0) + coalesce(vt.a, 0) AS "tippedAmountCount",
               ro.d AS "downloadCount", ro.i AS "imageCount", ro.g AS "generationCount", ro.e AS "earnedAmount",
               col.c AS "collectedCount", m."userId" AS owner, m."status" AS mstatus
        FROM "Model" m
        LEFT JOIN ({reviews.format(k="modelId")}) r ON r.id = m."id"
        LEFT JOIN (SELECT "modelId", count(DISTINCT "userId") AS c FROM "Comment" WHERE NOT "tosViolation"
                   GROUP BY 1) c ON c."modelId" = m."id"
        LEFT JOIN (SELECT "entityId", count(*) AS c, sum("amount") AS a FROM "BuzzTip" WHERE "entityType" = 'Model'
                   GROUP BY 1) tp ON tp."entityId" = m."id"
        LEFT JOIN (SELECT mv."modelId", count(d."amount") AS c, sum(d."amount") AS a FROM "Donation" d
                   JOIN "DonationGoal" dg ON dg."id" = d."donationGoalId" AND dg."entityType" = 'ModelVersion'
                   JOIN "ModelVersion" mv ON mv."id" = dg."entityId" GROUP BY 1) vt ON vt."modelId" = m."id"
        LEFT JOIN (SELECT mv."modelId", sum(x."downloadCount") AS d, sum(x."imageCount") AS i,
                          sum(x."generationCount") AS g, sum(x."earnedAmount") AS e
                   FROM "ModelVersionMetric" x JOIN "ModelVersion" mv ON mv."id" = x."modelVersionId"
                   GROUP BY 1) ro ON ro."modelId" = m."id"
        LEFT JOIN (SELECT "modelId", count(DISTINCT "addedById") AS c FROM "CollectionItem"
                   WHERE "modelId" IS NOT NULL GROUP BY 1) col ON col."modelId" = m."id"
        """,
        [
            "thumbsUpCount",
            "thumbsDownCount",
            "commentCount",
            "tippedCount",
            "tippedAmountCount",
            "downloadCount",
            "imageCount",
            "generationCount",
            "earnedAmount",
            "collectedCount",
        ],
        {"userId": "t.owner", "status": "t.mstatus"},
    )
    reactions = """count(*) FILTER (WHERE r."reaction" = 'Like') AS "likeCount",
                   count(*) FILTER (WHERE r."reaction" = 'Dislike') AS "dislikeCount",
                   count(*) FILTER (WHERE r."reaction" = 'Laugh') AS "laughCount",
                   count(*) FILTER (WHERE r."reaction" = 'Cry') AS "cryCount",
                   count(*) FILTER (WHERE r."reaction" = 'Heart') AS "heartCount" """
    rcols = ["likeCount", "dislikeCount", "laughCount", "cryCount", "heartCount"]
    rsel = ", ".join(f'r."{c}"' for c in rcols)
    root_comments = """SELECT t."{k}" AS id, count(c."id") AS c FROM "Thread" t
                       JOIN "CommentV2" c ON c."threadId" = t."id" WHERE t."{k}" IS NOT NULL GROUP BY 1"""
    _metric_insert(
        ctx,
        "PostMetric",
        "postId",
        ctx.n["Post"],
        True,
        f"""
        SELECT p."id" AS "postId", {rsel}, cm.c AS "commentCount", col.c AS "collectedCount"
        FROM "Post" p
        LEFT JOIN (SELECT i."postId" AS id, {reactions} FROM "ImageReaction" r JOIN "Image" i ON i."id" = r."imageId"
                   WHERE i."postId" IS NOT NULL GROUP BY 1) r ON r.id = p."id"
        LEFT JOIN ({root_comments.format(k="postId")}) cm ON cm.id = p."id"
        LEFT JOIN (SELECT "postId" AS id, count(*) AS c FROM "CollectionItem" WHERE "postId" IS NOT NULL GROUP BY 1) col
               ON col.id = p."id"
        """,
        rcols + ["commentCount", "collectedCount"],
    )
    _metric_insert(
        ctx,
        "ArticleMetric",
        "articleId",
        ctx.n["Article"],
        True,
        f"""
        SELECT a."id" AS "articleId", {rsel}, cm.c AS "commentCount", tp.c AS "tippedCount",
               tp.a AS "tippedAmountCount", h.c AS "hideCount", col.c AS "collectedCount"
        FROM "Article" a
        LEFT JOIN (SELECT r."articleId" AS id, {reactions} FROM "ArticleReaction" r GROUP BY 1) r ON r.id = a."id"
        LEFT JOIN ({root_comments.format(k="articleId")}) cm ON cm.id = a."id"
        LEFT JOIN (SELECT "entityId" AS id, count(*) AS c, sum("amount") AS a FROM "BuzzTip"
                   WHERE "entityType" = 'Article' GROUP BY 1) tp ON tp.id = a."id"
        LEFT JOIN (SELECT "articleId" AS id, count(*) AS c FROM "ArticleEngagement" WHERE "type" = 'Hide'
                   GROUP BY 1) h ON h.id = a."id"
        LEFT JOIN (SELECT "articleId" AS id, count(*) AS c FROM "CollectionItem" WHERE "articleId" IS NOT NULL
                   GROUP BY 1) col ON col.id = a."id"
        """,
        rcols + ["commentCount", "tippedCount", "tippedAmountCount", "hideCount", "collectedCount"],
        {"viewCount": '(t."articleId" * 37 % 5000)', "favoriteCount": '(t."articleId" % 11)'},
    )
    _metric_insert(
        ctx,
        "CollectionMetric",
        "collectionId",
        ctx.n["Collection"],
        True,
        """
        SELECT c."id" AS "collectionId", cc.f AS "followerCount", cc.a AS "contributorCount", it.c AS "itemCount"
        FROM "Collection" c
        LEFT JOIN (SELECT "collectionId" AS id, count(*) FILTER (WHERE 'VIEW' = ANY("permissions")) AS f,
                          count(*) FILTER (WHERE 'ADD' = ANY("permissions")) AS a
                   FROM "CollectionContributor" GROUP BY 1) cc ON cc.id = c."id"
        LEFT JOIN (SELECT "collectionId" AS id, count(*) AS c FROM "CollectionItem" GROUP BY 1) it ON it.id = c."id"
        """,
        ["followerCount", "contributorCount", "itemCount"],
    )
    _metric_insert(
        ctx,
        "TagMetric",
        "tagId",
        ctx.n["Tag"],
        True,
        """
        SELECT t."id" AS "tagId", te.f AS "followerCount", te.h AS "hiddenCount", tm.c AS "modelCount",
               tp.c AS "postCount", ta.c AS "articleCount"
        FROM "Tag" t
        LEFT JOIN (SELECT "tagId" AS id, count(*) FILTER (WHERE "type" = 'Follow') AS f,
                          count(*) FILTER (WHERE "type" = 'Hide') AS h FROM "TagEngagement" GROUP BY 1) te
               ON te.id = t."id"
        LEFT JOIN (SELECT "tagId" AS id, count(*) AS c FROM "TagsOnModels" GROUP BY 1) tm ON tm.id = t."id"
        LEFT JOIN (SELECT "tagId" AS id, count(*) AS c FROM "TagsOnPost" GROUP BY 1) tp ON tp.id = t."id"
        LEFT JOIN (SELECT "tagId" AS id, count(*) AS c FROM "TagsOnArticle" GROUP BY 1) ta ON ta.id = t."id"
        """,
        ["followerCount", "hiddenCount", "modelCount", "postCount", "articleCount"],
        {"imageCount": '(t."tagId" * 13 % 997)'},
    )
    _metric_insert(
        ctx,
        "BountyMetric",
        "bountyId",
        ctx.n["Bounty"],
        True,
        f"""
        SELECT b."id" AS "bountyId", e.f AS "favoriteCount", e.t AS "trackCount", cm.c AS "commentCount",
               bb.c AS "benefactorCount", bb.a AS "unitAmountCount", en.c AS "entryCount"
        FROM "Bounty" b
        LEFT JOIN (SELECT "bountyId" AS id, count(*) FILTER (WHERE "type" = 'Favorite') AS f,
                          count(*) FILTER (WHERE "type" = 'Track') AS t FROM "BountyEngagement" GROUP BY 1) e
               ON e.id = b."id"
        LEFT JOIN ({root_comments.format(k="bountyId")}) cm ON cm.id = b."id"
        LEFT JOIN (SELECT "bountyId" AS id, count(*) AS c, sum("unitAmount") AS a FROM "BountyBenefactor" GROUP BY 1) bb
               ON bb.id = b."id"
        LEFT JOIN (SELECT "bountyId" AS id, count(*) AS c FROM "BountyEntry" GROUP BY 1) en ON en.id = b."id"
        """,
        ["favoriteCount", "trackCount", "commentCount", "benefactorCount", "unitAmountCount", "entryCount"],
    )
    _metric_insert(
        ctx,
        "BountyEntryMetric",
        "bountyEntryId",
        ctx.n["BountyEntry"],
        True,
        f"""
        SELECT be."id" AS "bountyEntryId", {rsel}, aw.a AS "unitAmountCount", tp.c AS "tippedCount",
               tp.a AS "tippedAmountCount"
        FROM "BountyEntry" be
        LEFT JOIN (SELECT r."bountyEntryId" AS id, {reactions} FROM "BountyEntryReaction" r GROUP BY 1) r
               ON r.id = be."id"
        LEFT JOIN (SELECT "awardedToId" AS id, sum("unitAmount") AS a FROM "BountyBenefactor"
                   WHERE "awardedToId" IS NOT NULL GROUP BY 1) aw ON aw.id = be."id"
        LEFT JOIN (SELECT "entityId" AS id, count(*) AS c, sum("amount") AS a FROM "BuzzTip"
                   WHERE "entityType" = 'bountyEntry' GROUP BY 1) tp ON tp.id = be."id"
        """,
        rcols + ["unitAmountCount", "tippedCount", "tippedAmountCount"],
    )
    _metric_insert(
        ctx,
        "ComicProjectMetric",
        "comicProjectId",
        ctx.n["ComicProject"],
        False,
        """
        SELECT cp."id" AS "comicProjectId", tp.c AS "tippedCount", tp.a AS "tippedAmountCount",
               e.f AS "followerCount", e.h AS "hiddenCount", rd.r AS "readerCount", rd.c AS "chapterReadCount"
        FROM "ComicProject" cp
        LEFT JOIN (SELECT "entityId" AS id, count(*) AS c, sum("amount") AS a FROM "BuzzTip"
                   WHERE "entityType" = 'ComicProject' GROUP BY 1) tp ON tp.id = cp."id"
        LEFT JOIN (SELECT "projectId" AS id, count(*) FILTER (WHERE "type" = 'Notify') AS f,
                          count(*) FILTER (WHERE "type" = 'Hide') AS h FROM "ComicProjectEngagement" GROUP BY 1) e
               ON e.id = cp."id"
        LEFT JOIN (SELECT cc."projectId" AS id, count(DISTINCT cr."userId") AS r, count(*) AS c
                   FROM "ComicChapterRead" cr JOIN "ComicChapter" cc ON cc."id" = cr."chapterId"
                   WHERE NOT cr."unread" GROUP BY 1) rd ON rd.id = cp."id"
        """,
        ["tippedCount", "tippedAmountCount", "followerCount", "hiddenCount", "readerCount", "chapterReadCount"],
    )
    ctx.sql("DROP TABLE _gen_ch_mv, _gen_ch_user")
    ctx.done("*Metric tables")


# --------------------------------------------------------------------------------------------
# Counts
# --------------------------------------------------------------------------------------------
def _counts(ctx: _Ctx) -> dict[str, int]:
    tables = [
        r[0] for r in ctx.conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    ]
    counts = {t: int(ctx.scalar(f'SELECT count(*) FROM "{t}"')) for t in tables}
    for db, name in CH_SOURCE_TABLES:
        if name not in _CH_VIEWS:
            counts[f"ch:{name}"] = int(ctx.ch_rows(f"SELECT count() FROM {ctx.t(db, name)}")[0][0])
    return counts
