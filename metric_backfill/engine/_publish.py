"""Publish: move a staged run into its target(s) — and every rollup fed by them — exactly once.

Insert-fired rollups (materialized views) on the target count every inserted row forever (T1), and
a view does not commit with the insert that feeds it: a crash of the process holding the engine
between the target's part and a view's part leaves the rollup short, and an insert spanning several
partitions can land some of them only. So the tool never lets one write span several tables. A
run is published in slices — months of one target, split by entityType and entityId hash when
large — and each slice goes through three steps:

1. **build** (in parallel, into private scratch tables in the state database): the slice's rows in
   the target's exact structure (`X`), and for every view of the target the view's own SELECT over
   `X` (`Y_v`, in the structure of the view's table). Scratch is the tool's own: rebuilt at will.
2. **commit** (one slice at a time): record in the ledger, as `committing`, the slice's picture —
   per target partition the target's count and sum in the slice's scope (rows of its pairs and
   months before the cutoff: no one else writes there), per view-table partition the exact sums of
   the view table's measures over the keys `Y_v` touches — and what `X` and each `Y_v` add to them.
   Then attach `X`'s partitions to the target (`ATTACH PARTITION … FROM`: atomic per partition,
   fires no view) and insert each `Y_v` into its view's table (atomic per partition). Record `done`.
3. **settle** (after any interruption, before anything else): for a slice left `committing`,
   measure again; per partition, the picture shows "before" (not landed: complete it), "before +
   the slice" (landed) or neither (someone else wrote there: stop with PublishConflict naming the
   table and the exact statement that would complete it). A multi-month slice cut short is
   completed partition by partition.

A target without views that cannot take ATTACH (a Distributed or Buffer table, or a user without
the privilege) gets `INSERT … SELECT * FROM X` instead: still one table per write. A target with
views that cannot take ATTACH is refused: its rollups could not be kept exact.

`--on-overlap replace` adds two kinds of slices around the run's own:
- `withdraw`: the negation of an earlier run's published rows for the overlapping pairs, read from
  that run's staging. Published before the new rows, so the rollups see −old then +new; nothing is
  ever deleted behind their back.
- `settle` (ReplacingMergeTree targets only): a 0-valued row for every key the earlier run had and
  the new run has not. Rows with equal keys replace each other there (the newest insert wins), so
  without it the withdrawal row itself would become the key's final value.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from metric_backfill.catalog import Pair, routes_to_earnings_table
from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill._errors import Cancelled, ConfigError, PublishConflict, TargetError
from metric_backfill.backends._sql import literal, pairs_sql, qualified, quote_ident, ts_literal, value_literal
from metric_backfill.engine._state import RunRecord, StateStore, now
from metric_backfill.engine._target import Target, View, local_engine

__all__ = ["LEDGER", "LEDGER_VERSION", "Publisher", "Slice", "refuse_out_of_range"]

LEDGER = "metric_backfill_ledger"
LEDGER_VERSION = 2

Picture = dict[str, list[int]]
"""partition id → exact sums (a target: [rows, value sum]; a view table: its measures, plain and weighted)."""


@dataclass(frozen=True)
class Slice:
    kind: str
    """publish | withdraw | settle"""
    source_run: str
    """The run whose staged rows the slice is made of."""
    target: Target
    months: tuple[int, ...]
    """Months (YYYYMM of createdAt) the slice covers: one, or several small ones packed together."""
    pairs: tuple[Pair, ...]
    buckets: int
    bucket: int
    staged_rows: int
    staged_sum: int

    @property
    def key(self) -> str:
        ets = sorted({p.entity_type for p in self.pairs})
        label = ets[0] if len(ets) == 1 else f"{len(ets)}types"
        span = str(self.months[0]) if len(self.months) == 1 else f"{self.months[0]}-{self.months[-1]}"
        digest = hashlib.sha1(repr((self.months, tuple(tuple(p) for p in self.pairs))).encode()).hexdigest()[:8]
        prefix = "" if self.kind == "publish" else f"{self.kind}:{self.source_run}:"
        return f"{prefix}{span}:{label}:{self.bucket}/{self.buckets}:{digest}"

    @property
    def cells(self) -> list[tuple[int, Pair]]:
        """The (month, pair) cells of the slice's scope."""
        return [(m, p) for m in self.months for p in self.pairs]


@dataclass
class BuiltView:
    """One view's rows over a slice, in scratch, and the sample of its keys a commit is measured on."""

    view: View
    scratch: str
    sample: dict[str, list[str]]
    """partition id → key tuples (SQL literals) of up to SAMPLE_KEYS of the slice's rows there"""
    rows: Picture
    """partition id → what the slice adds to the view table's measures at the sampled keys"""


@dataclass
class Built:
    """A slice's scratch tables and what they add to each table they will be written into."""

    x: str
    x_rows: Picture
    views: list[BuiltView] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(v[0] for v in self.x_rows.values())


def _add(a: list[int], b: list[int], sign: int = 1) -> list[int]:
    return [x + sign * y for x, y in zip(a, b)]


class Publisher:
    VIEW_SPILL_BYTES = 64 << 20
    """The memory a view's aggregation over one slice may take before it spills to disk."""

    def __init__(
        self,
        ch: ClickHouse,
        state: StateStore,
        run_id: str,
        *,
        main: Target,
        earnings: Target | None,
        cutoff: datetime,
        version: int,
        slice_rows: int,
        withdrawals: dict[str, list[Pair]] | None = None,
        concurrency: int = 1,
        lease_check: Callable[[], None] | None = None,
        stop: threading.Event | None = None,
        only_pairs: list[Pair] | None = None,
    ) -> None:
        self.ch = ch
        self.state = state
        self.run_id = run_id
        self.main = main
        self.earnings = earnings or main
        self.cutoff = cutoff
        self.version = version
        self.slice_rows = max(1, slice_rows)
        self.concurrency = max(1, concurrency)
        # Slices built in parallel share the cores already; one thread per build keeps each one's
        # blocks to a single pipeline (measured: the publish's peak 603 -> 579 MB, no slower).
        self._build_settings: dict[str, Any] = {
            "async_insert": 0,
            **({"max_threads": 1} if self.concurrency > 1 else {}),
        }
        # A view's own SELECT over a slice usually aggregates: past VIEW_SPILL_BYTES its hash table spills to
        # disk instead of growing with the slice (measured at scale 5 with the daily rollup: the
        # tree's peak 797 -> 576 MB, the publish about 6 % slower).
        self._view_build_settings = {
            **self._build_settings,
            "max_bytes_before_external_group_by": self.VIEW_SPILL_BYTES,
        }
        self.withdrawals = withdrawals or {}
        """earlier run id → pairs of it to withdraw (from the fence, --on-overlap replace)"""
        self._commit_lock = threading.Lock()
        self._lease_check = lease_check or (lambda: None)
        self.stop = stop or threading.Event()
        self._method: dict[str, str] = {}
        self.only_pairs = only_pairs
        """The run's own pairs to publish (None: all it staged); a publish-time skip removes some."""
        for t in {self.main.label: self.main, self.earnings.label: self.earnings}.values():
            if t.unsupported:
                raise TargetError(
                    f"the target {t.label} feeds dependents the tool cannot keep exact: "
                    f"{'; '.join(t.unsupported)} — publish into a table without them, or drop them "
                    "for the backfill and rebuild their tables afterwards"
                )

    # -- ledger ------------------------------------------------------------------------------
    @staticmethod
    def ledger(target: Target) -> str:
        return qualified(target.database, LEDGER)

    def ensure_ledger(self, target: Target) -> None:
        self.ch.command(
            f"""CREATE TABLE IF NOT EXISTS {self.ledger(target)} (
            run_id String, target String, slice String, kind LowCardinality(String), source_run String,
            pairs Array(Tuple(String, String)), step LowCardinality(String),
            rows UInt64, value_sum Int64, detail String, version UInt16,
            at DateTime64(6, 'UTC'), note String
        ) ENGINE = MergeTree ORDER BY (run_id, target, slice, at)""",
            what="creating the publish ledger",
        )
        cols = self.ch.columns(target.database, LEDGER)
        if "detail" not in cols or "version" not in cols:
            raise ConfigError(
                f"the publish ledger {target.database}.{LEDGER} was written by an older metric-backfill "
                f"(this one writes version {LEDGER_VERSION}): finish its runs with that version, or "
                "publish into another database"
            )

    def _entries(self, target: Target) -> dict[str, dict[str, Any]]:
        rows = self.ch.query(
            f"SELECT slice, step, detail, version FROM {self.ledger(target)} "
            "WHERE run_id = {r:String} AND target = {t:String} ORDER BY at",
            parameters={"r": self.run_id, "t": target.label},
            what="reading the publish ledger",
        )
        out: dict[str, dict[str, Any]] = {}
        for s, step, detail, version in rows:
            if int(version) > LEDGER_VERSION:
                raise ConfigError(
                    f"the publish ledger of {target.label} holds version {version} entries, written "
                    "by a newer metric-backfill: upgrade it to go on"
                )
            out.setdefault(str(s), {})[str(step)] = json.loads(detail or "{}")
        return out

    def _record(self, sl: Slice, step: str, rows: int, value_sum: int, detail: dict[str, Any], note: str = "") -> None:
        self.ch.insert(
            self.ledger(sl.target),
            [
                [
                    self.run_id,
                    sl.target.label,
                    sl.key,
                    sl.kind,
                    sl.source_run,
                    [tuple(p) for p in sl.pairs],
                    step,
                    rows,
                    value_sum,
                    json.dumps(detail),
                    LEDGER_VERSION,
                    now(),
                    note,
                ]
            ],
            [
                "run_id",
                "target",
                "slice",
                "kind",
                "source_run",
                "pairs",
                "step",
                "rows",
                "value_sum",
                "detail",
                "version",
                "at",
                "note",
            ],
            what="writing the publish ledger",
        )

    # -- slices ------------------------------------------------------------------------------
    def _target_for(self, pair: Pair) -> Target:
        return self.earnings if routes_to_earnings_table(pair) else self.main

    def plan_slices(
        self, kind: str = "publish", source_run: str | None = None, only_pairs: list[Pair] | None = None
    ) -> list[Slice]:
        """Cut a run's staged rows into slices of at most slice_rows rows, in month order.

        Small consecutive months are packed into one slice (per-statement overhead dominates
        small inserts); a month above slice_rows gets slices of its own, by entityType, and a big
        entityType is split by entityId hash. Pre-aggregation keys never cross a month, an
        entityType or an entityId, so every slice holds whole keys (T4). Slice scopes are
        disjoint: a slice's rows land in no other slice's scope."""
        source_run = source_run or self.run_id
        rec = self.state.run(source_run)
        if rec is None:
            raise ConfigError(f"unknown run {source_run!r}: `metric-backfill status` lists the runs")
        wanted = None if only_pairs is None else set(only_pairs)
        cells: dict[str, dict[int, dict[Pair, tuple[int, int]]]] = {}
        for m, et, mt, n, vs, *_ in self.state.cells(rec):
            pair = Pair(str(et), str(mt))
            if wanted is not None and pair not in wanted:
                continue
            cells.setdefault(self._target_for(pair).label, {}).setdefault(int(m), {})[pair] = (int(n), int(vs))
        sign = -1 if kind == "withdraw" else 1
        slices: list[Slice] = []
        for label, by_month in sorted(cells.items()):
            target = self.main if label == self.main.label else self.earnings
            pending: list[int] = []
            for month in sorted(by_month):
                month_rows = sum(c[0] for c in by_month[month].values())
                if month_rows <= self.slice_rows:
                    if sum(c[0] for m in pending for c in by_month[m].values()) + month_rows > self.slice_rows:
                        slices.append(self._packed(kind, source_run, target, pending, by_month, sign))
                        pending = []
                    pending.append(month)
                    continue
                if pending:
                    slices.append(self._packed(kind, source_run, target, pending, by_month, sign))
                    pending = []
                slices.extend(self._split_month(kind, source_run, target, month, by_month[month], sign))
            if pending:
                slices.append(self._packed(kind, source_run, target, pending, by_month, sign))
        return slices

    @staticmethod
    def _packed(
        kind: str,
        source_run: str,
        target: Target,
        months: list[int],
        by_month: dict[int, dict[Pair, tuple[int, int]]],
        sign: int,
    ) -> Slice:
        """Whole small months in one slice."""
        pairs = tuple(sorted({p for m in months for p in by_month[m]}))
        n = sum(c[0] for m in months for c in by_month[m].values())
        vs = sum(c[1] for m in months for c in by_month[m].values())
        return Slice(kind, source_run, target, tuple(months), pairs, 1, 0, n, sign * vs)

    def _split_month(
        self, kind: str, source_run: str, target: Target, month: int, cells: dict[Pair, tuple[int, int]], sign: int
    ) -> list[Slice]:
        out: list[Slice] = []
        by_type: dict[str, list[Pair]] = {}
        for pair in sorted(cells):
            by_type.setdefault(pair.entity_type, []).append(pair)
        pending: list[Pair] = []
        for _et, pairs in sorted(by_type.items()):
            n = sum(cells[p][0] for p in pairs)
            if n > self.slice_rows:
                k = -(-n // self.slice_rows)
                out.extend(Slice(kind, source_run, target, (month,), tuple(pairs), k, b, 0, 0) for b in range(k))
                continue
            if pending and sum(cells[p][0] for p in pending) + n > self.slice_rows:
                out.append(
                    Slice(
                        kind,
                        source_run,
                        target,
                        (month,),
                        tuple(pending),
                        1,
                        0,
                        sum(cells[p][0] for p in pending),
                        sign * sum(cells[p][1] for p in pending),
                    )
                )
                pending = []
            pending.extend(pairs)
        if pending:
            out.append(
                Slice(
                    kind,
                    source_run,
                    target,
                    (month,),
                    tuple(pending),
                    1,
                    0,
                    sum(cells[p][0] for p in pending),
                    sign * sum(cells[p][1] for p in pending),
                )
            )
        return out

    @staticmethod
    def _scope(sl: Slice) -> str:
        months = ", ".join(str(m) for m in sl.months)
        cond = f"toYYYYMM(createdAt) IN ({months}) AND (entityType, metricType) IN ({pairs_sql(sl.pairs)})"
        if sl.buckets > 1:
            cond += f" AND cityHash64(entityId) % {sl.buckets} = {sl.bucket}"
        return cond

    def _keys_sql(self, run_id: str, sl: Slice) -> str:
        """Pre-aggregated rows of `run_id` in the slice's scope, as the replacing target stores them."""
        return (
            f"SELECT entityType, entityId, userId, metricType, sum(metricValue) AS v, "
            f"toDateTime(createdAt, 'UTC') AS ts\nFROM {self.state.t('staging')}\n"
            f"WHERE {self.state.staged_where(run_id)} AND {self._scope(sl)}\n"
            "GROUP BY entityType, entityId, metricType, userId, ts HAVING sum(metricValue) != 0"
        )

    def select_sql(self, sl: Slice) -> str:
        """The slice's rows in the target's column order (entityType … createdAt[, version])."""
        t = sl.target
        version = f", toUInt8({int(self.version)}) AS ver" if t.has_version else ""
        conv = "toInt64" if t.value_type == "Int64" else "toInt32"  # in range: refuse_out_of_range ran first
        if sl.kind == "settle":
            # Keys of the earlier run that the new run does not write: a 0 row replaces them.
            return (
                f"SELECT entityType, entityId, userId, metricType, toInt32(0) AS v, ts{version}\n"
                f"FROM ({self._keys_sql(sl.source_run, sl)})\n"
                f"WHERE (entityType, entityId, userId, metricType, ts) NOT IN (\n"
                f"    SELECT entityType, entityId, userId, metricType, ts FROM ({self._keys_sql(self.run_id, sl)}))"
            )
        sign = "-" if sl.kind == "withdraw" else ""
        if t.replacing:
            # Collapse rows that share the replacing key, summing values; drop zero sums (T4).
            return (
                f"SELECT entityType, entityId, userId, metricType, {conv}({sign}v) AS v, "
                f"ts{version}\nFROM ({self._keys_sql(sl.source_run, sl)})"
            )
        ts = "toDateTime64(createdAt, 3, 'UTC')" if t.millis else "toDateTime(createdAt, 'UTC')"
        return (
            f"SELECT entityType, entityId, userId, metricType, {conv}({sign}metricValue) AS v, {ts} AS ts{version}\n"
            f"FROM {self.state.t('staging')}\nWHERE {self.state.staged_where(sl.source_run)} AND {self._scope(sl)}"
        )

    # -- pictures ----------------------------------------------------------------------------
    @staticmethod
    def _partition_expr(t: Target) -> str:
        return "_partition_id" if t.attachable else "'all'"

    def _target_pictures(self, slices: list[Slice]) -> dict[str, Picture]:
        """Per slice, the target's (count, sum) in the slice's scope now, per partition: one grouped
        query for the unbucketed slices of a target (their scopes are unions of cells), one each
        for hash buckets."""
        cutoff = ts_literal(self.cutoff)
        out: dict[str, Picture] = {}
        by_target: dict[str, list[Slice]] = {}
        for sl in slices:
            if sl.buckets > 1:
                rows = self.ch.query(
                    f"SELECT {self._partition_expr(sl.target)} AS p, count(), toInt64(sum(metricValue)) "
                    f"FROM {sl.target.name} WHERE {self._scope(sl)} AND createdAt < {cutoff} GROUP BY p",
                    what="measuring the target",
                )
                out[sl.key] = {str(p): [int(n), int(s)] for p, n, s in rows}
            else:
                by_target.setdefault(sl.target.label, []).append(sl)
        for group in by_target.values():
            target = group[0].target
            months = sorted({m for sl in group for m in sl.months})
            pairs = sorted({p for sl in group for p in sl.pairs})
            grid: dict[tuple[int, Pair], dict[str, list[int]]] = {}
            for p_id, m, et, mt, n, vs in self.ch.query(
                f"SELECT {self._partition_expr(target)} AS p, toYYYYMM(createdAt) AS m, entityType, metricType, "
                f"count(), toInt64(sum(metricValue)) FROM {target.name} "
                f"WHERE toYYYYMM(createdAt) IN ({', '.join(map(str, months))}) "
                f"AND (entityType, metricType) IN ({pairs_sql(pairs)}) AND createdAt < {cutoff} "
                "GROUP BY p, m, entityType, metricType",
                what="measuring the target",
            ):
                grid.setdefault((int(m), Pair(str(et), str(mt))), {})[str(p_id)] = [int(n), int(vs or 0)]
            for sl in group:
                pic: Picture = {}
                for cell in sl.cells:
                    for p_id, v in grid.get(cell, {}).items():
                        pic[p_id] = _add(pic.get(p_id, [0, 0]), v)
                out[sl.key] = pic
        return out

    SAMPLE_KEYS = 16
    """Keys per partition a view table is measured on. Parts land whole, so a few keys tell whether a
    part landed as well as all of them would — at the cost of an index look-up, not a scan."""

    @staticmethod
    def _weights(view: View) -> tuple[str, list[str]]:
        keys = ", ".join(view.key_columns)
        w = f"toInt128(cityHash64({keys}) % 1000003 + 1)"
        sums = [f"sum(toInt128({m}))" for m in view.measures] + [f"sum(toInt128({m}) * {w})" for m in view.measures]
        return keys, sums

    def _view_sample(self, view: View, scratch: str) -> tuple[dict[str, list[str]], Picture]:
        """Up to SAMPLE_KEYS keys per partition of a view's scratch rows (the first found: any will do),
        and the exact sums of the measures at those keys (plain and hash-weighted, so that different
        changes cannot look alike)."""
        keys = ", ".join(view.key_columns)
        rows = self.ch.query(
            f"SELECT _partition_id AS p, {keys} FROM {scratch} LIMIT {self.SAMPLE_KEYS} BY p",
            what=f"sampling view {view.label}'s rows",
        )
        sample: dict[str, list[str]] = {}
        for r in rows:
            key = value_literal(tuple(r[1:]))
            if key not in sample.setdefault(str(r[0]), []):
                sample[str(r[0])].append(key)
        return sample, self._view_picture(view, sample, scratch)

    def _view_picture(self, view: View, sample: dict[str, list[str]], table: str | None = None) -> Picture:
        """A view table's (or its scratch's) measures at the sampled keys, per partition."""
        listed = [t for ts in sample.values() for t in ts]
        if not listed:
            return {}
        keys, sums = self._weights(view)
        rows = self.ch.query(
            f"SELECT _partition_id AS p, {', '.join(sums) or '0'} FROM {table or view.to_name} "
            f"WHERE ({keys}) IN ({', '.join(listed)}) GROUP BY p",
            what=f"measuring {view.to_database}.{view.to_table}",
        )
        return {str(r[0]): [int(x) for x in r[1:]] for r in rows}

    # -- build -------------------------------------------------------------------------------
    def _scratch(self, sl: Slice, suffix: str) -> str:
        """A scratch table's name in the state database: derived from the run and the slice, so that
        an interrupted publish finds its own again (and only its own is ever dropped)."""
        digest = hashlib.sha1(f"{self.run_id}|{sl.target.label}|{sl.key}".encode()).hexdigest()[:20]
        return f"publish_{digest}_{suffix}"

    def _q(self, name: str) -> str:
        return qualified(self.state.db, name)

    def _drop_scratch(self, name: str) -> None:
        self.ch.command(f"DROP TABLE IF EXISTS {self._q(name)} SYNC", what="dropping a publish scratch table")

    def build(self, sl: Slice) -> Built:
        """The slice's rows, and each view's rows over them, in private tables (rebuilt from scratch)."""
        t = sl.target
        x = self._scratch(sl, "rows")
        self._drop_scratch(x)
        self.state.ensure()
        self.ch.command(
            f"CREATE TABLE {self._q(x)} AS {t.name} ENGINE = {t.scratch_engine()}", what="creating publish scratch"
        )
        cols = "entityType, entityId, userId, metricType, metricValue, createdAt" + (
            ", version" if t.has_version else ""
        )
        self.ch.command(
            f"INSERT INTO {self._q(x)} ({cols})\n{self.select_sql(sl)}",
            settings=self._build_settings,
            what=f"preparing slice {sl.key}",
        )
        rows = self.ch.query(
            f"SELECT {self._partition_expr(t)} AS p, count(), toInt64(sum(metricValue)) FROM {self._q(x)} GROUP BY p",
            what="measuring publish scratch",
        )
        built = Built(x, {str(p): [int(n), int(s)] for p, n, s in rows})
        for i, view in enumerate(t.views):
            y = self._scratch(sl, f"view{i}")
            self._drop_scratch(y)
            part = f" PARTITION BY {view.partition_key}" if view.partition_key else ""
            # In the view table's own shape when its parts can be attached to it (written once, sorted
            # once), else a plain table its rows are copied from.
            engine = local_engine(view.engine_full) if view.attachable else f"MergeTree{part} ORDER BY tuple()"
            self.ch.command(
                f"CREATE TABLE {self._q(y)} AS {view.to_name} ENGINE = {engine}",
                what=f"creating scratch for view {view.label}",
            )
            cols_sql = ", ".join(quote_ident(c) for c in view.columns)
            self.ch.command(
                f"INSERT INTO {self._q(y)} ({cols_sql}) SELECT {cols_sql} FROM ({view.select_over(self._q(x))})",
                settings=self._view_build_settings,
                what=f"applying view {view.label} to slice {sl.key}",
            )
            sample, rows_at = self._view_sample(view, self._q(y))
            built.views.append(BuiltView(view, y, sample, rows_at))
        return built

    # -- commit ------------------------------------------------------------------------------
    # One block per write, so that each partition of it lands as one part: all or nothing.
    _ONE_BLOCK = {
        "async_insert": 0,
        "insert_deduplicate": 0,
        "max_insert_threads": 1,
        "min_insert_block_size_rows": 1 << 40,
        "min_insert_block_size_bytes": 1 << 40,
    }

    def _commit_target(self, sl: Slice, built: Built, partitions: list[str]) -> None:
        t = sl.target
        method = self._method.get(t.label, "attach" if t.attachable else "insert")
        if method == "attach":
            for p in partitions:
                try:
                    self.ch.command(
                        f"ALTER TABLE {t.name} ATTACH PARTITION ID {literal(p)} FROM {self._q(built.x)}",
                        what=f"attaching slice {sl.key} to {t.label}",
                    )
                except TargetError as exc:
                    # Refused before anything landed (privilege, engine): insert instead, if no view needs attaching.
                    if getattr(exc, "code", None) not in (497, 48, 344) or t.views:
                        raise
                    self._method[t.label] = method = "insert"
                    break
            else:
                return
        where = f" WHERE _partition_id IN ({', '.join(literal(p) for p in partitions)})" if t.attachable else ""
        self.ch.command(
            f"INSERT INTO {t.name} SELECT * FROM {self._q(built.x)}{where}",
            settings=self._ONE_BLOCK,
            what=f"publishing slice {sl.key} into {t.label}",
        )

    def _commit_view(self, bv: BuiltView, partitions: list[str] | None = None) -> None:
        view = bv.view
        if view.attachable:
            parts = (
                partitions
                if partitions is not None
                else [str(r[0]) for r in self.ch.query(f"SELECT DISTINCT _partition_id FROM {self._q(bv.scratch)}")]
            )
            for p in parts:
                self.ch.command(
                    f"ALTER TABLE {view.to_name} ATTACH PARTITION ID {literal(p)} FROM {self._q(bv.scratch)}",
                    what=f"attaching view {view.label}'s rows of the slice",
                )
            return
        where = f" WHERE _partition_id IN ({', '.join(literal(p) for p in partitions)})" if partitions else ""
        self.ch.command(
            f"INSERT INTO {view.to_name} SELECT * FROM {self._q(bv.scratch)}{where}",
            settings=self._ONE_BLOCK,
            what=f"writing view {view.label}'s rows of the slice",
        )

    def commit(self, sl: Slice, built: Built, t_before: Picture) -> int:
        with self._commit_lock:
            if self.stop.is_set():
                raise Cancelled("interrupted before the next publish step; run the same command again to go on")
            self._lease_check()
            detail: dict[str, Any] = {
                "scratch": built.x,
                "t_before": t_before,
                "t_rows": built.x_rows,
                "views": [
                    {
                        "view": bv.view.label,
                        "table": f"{bv.view.to_database}.{bv.view.to_table}",
                        "scratch": bv.scratch,
                        "sample": bv.sample,
                        "before": self._view_picture(bv.view, bv.sample),
                        "rows": bv.rows,
                    }
                    for bv in built.views
                ],
            }
            n, vs = built.rows, sum(v[1] for v in built.x_rows.values())
            self._record(sl, "committing", n, vs, detail)
            self._commit_target(sl, built, sorted(built.x_rows))
            for bv in built.views:
                self._commit_view(bv)
            self._record(sl, "done", n, vs, {}, "")
        self._drop_built(built)
        return n

    def _drop_built(self, built: Built) -> None:
        for name in [built.x, *(bv.scratch for bv in built.views)]:
            self._drop_scratch(name)

    # -- settle ------------------------------------------------------------------------------
    def settle(self, sl: Slice, detail: dict[str, Any]) -> str:
        """Finish a slice whose commit was interrupted, partition by partition; returns a note."""
        t = sl.target
        views = {v.label: v for v in t.views}
        built = Built(str(detail["scratch"]), {p: list(v) for p, v in detail["t_rows"].items()})
        for vd in detail["views"]:
            if vd["view"] not in views:
                raise PublishConflict(
                    f"publish slice {sl.key} of run {self.run_id} was interrupted while the target "
                    f"{t.label} fed view {vd['view']}, which is gone now: restore the view, or "
                    f"rebuild {vd['table']} yourself, before going on"
                )
            built.views.append(
                BuiltView(
                    views[vd["view"]], str(vd["scratch"]), vd["sample"], {p: list(v) for p, v in vd["rows"].items()}
                )
            )
        self._ensure_scratch(sl, built)
        notes: list[str] = []
        now_t = self._target_pictures([sl])[sl.key]
        missing: list[str] = []
        for p, rows in sorted(built.x_rows.items()):
            before, cur = detail["t_before"].get(p, [0, 0]), now_t.get(p, [0, 0])
            if cur == _add(before, rows):
                continue
            if cur == before:
                missing.append(p)
                continue
            raise PublishConflict(
                f"publish slice {sl.key} of run {self.run_id} into {t.label} was interrupted and partition {p} of the "
                f"target now holds {cur[0]} rows in the slice's scope, neither the {before[0]} before nor the "
                f"{before[0] + rows[0]} after (someone else wrote there): inspect {t.label} and {self.ledger(t)} "
                "before going on"
            )
        if missing:
            self._commit_target(sl, built, missing)
            notes.append(f"target partitions {', '.join(missing)} completed")
        for bv in built.views:
            view = bv.view
            vd = next(v for v in detail["views"] if v["view"] == view.label)
            how = (
                f"ALTER TABLE {view.to_name} ATTACH PARTITION ID '…' FROM {self._q(bv.scratch)}"
                if view.attachable
                else f"INSERT INTO {view.to_name} SELECT * FROM {self._q(bv.scratch)}"
            )
            if not view.decidable:
                raise PublishConflict(
                    f"publish slice {sl.key} of run {self.run_id} was interrupted, and whether its rows reached view "
                    f"{view.label}'s table {vd['table']} cannot be measured (no summable column): if they did not, run "
                    f"{how}; then run the same command again"
                )
            cur_v = self._view_picture(view, bv.sample)
            lacking: list[str] = []
            for p, rows in sorted(bv.rows.items()):
                before, cur = vd["before"].get(p, [0] * len(rows)), cur_v.get(p, [0] * len(rows))
                if cur == _add(before, rows) or not any(rows):
                    continue
                if cur == before:
                    lacking.append(p)
                    continue
                raise PublishConflict(
                    f"publish slice {sl.key} of run {self.run_id} was interrupted, and view {view.label}'s table "
                    f"{vd['table']} (partition {p}) now shows neither its state before the slice nor before + the "
                    f"slice (another writer changed the same keys meanwhile): if the slice's rows are not in it, run "
                    f"{how.replace(chr(8230), p)} (partition {p}); then run the same command again"
                )
            if lacking:
                self._commit_view(bv, lacking)
                notes.append(f"view {view.label} completed ({', '.join(lacking)})")
        note = "settled after an interruption: " + ("; ".join(notes) if notes else "it had landed whole")
        self._record(sl, "done", built.rows, sum(v[1] for v in built.x_rows.values()), {}, note)
        self._drop_built(built)
        return note

    def _ensure_scratch(self, sl: Slice, built: Built) -> None:
        """The scratch of an interrupted slice, rebuilt if it is gone; it must hold what was recorded."""
        present = all(
            self.ch.engine(self.state.db, name) is not None for name in [built.x, *(bv.scratch for bv in built.views)]
        )
        if present:
            return
        again = self.build(sl)
        # The rebuilt view rows must add at the recorded keys what was recorded (the sample itself may
        # come out different: any keys will do).
        same = again.x_rows == built.x_rows and all(
            self._view_picture(a.view, b.sample, self._q(a.scratch)) == b.rows
            for a, b in zip(
                sorted(again.views, key=lambda v: v.view.label), sorted(built.views, key=lambda v: v.view.label)
            )
        )
        if not same:
            raise PublishConflict(
                f"publish slice {sl.key} of run {self.run_id} was interrupted and its rows, rebuilt "
                "from staging, differ from what was recorded: the run's staging changed; inspect "
                f"{self.ledger(sl.target)}"
            )
        built.x = again.x
        for b, a in zip(
            sorted(built.views, key=lambda v: v.view.label), sorted(again.views, key=lambda v: v.view.label)
        ):
            b.scratch = a.scratch

    # -- publish -----------------------------------------------------------------------------
    def phases(self) -> list[list[Slice]]:
        """The slices of this publish, in the order they must land: withdrawals of earlier runs,
        this run's rows, then settle rows. Within a phase, slice scopes are disjoint."""
        withdraw = [
            sl for old, pairs in sorted(self.withdrawals.items()) for sl in self.plan_slices("withdraw", old, pairs)
        ]
        settle = [
            sl
            for old, pairs in sorted(self.withdrawals.items())
            for sl in self.plan_slices("settle", old, pairs)
            if sl.target.replacing
        ]
        return [p for p in (withdraw, self.plan_slices(only_pairs=self.only_pairs), settle) if p]

    def publish(self, on_slice: Callable[[Slice, int, str, float], None] | None = None) -> tuple[int, int]:
        """Publish every slice not yet done; returns (rows inserted now, slices already done)."""
        targets = {self.main.label: self.main, self.earnings.label: self.earnings}
        for t in targets.values():
            self.ensure_ledger(t)
        inserted = skipped = 0
        on_slice = on_slice or (lambda *_: None)
        for phase in self.phases():
            entries = {label: self._entries(t) for label, t in targets.items()}
            todo: list[Slice] = []
            for sl in phase:
                entry = entries[sl.target.label].get(sl.key, {})
                if "done" in entry:
                    skipped += 1
                    on_slice(sl, 0, "already published", 0.0)
                elif "committing" in entry:
                    self._lease_check()
                    t0 = time.monotonic()
                    note = self.settle(sl, entry["committing"])
                    on_slice(sl, 0, note, time.monotonic() - t0)
                else:
                    todo.append(sl)
            if not todo:
                continue
            before = self._target_pictures(todo)

            def one(sl: Slice, before: dict[str, Picture] = before) -> int:
                if self.stop.is_set():
                    raise Cancelled("interrupted; run the same command again to go on")
                t0 = time.monotonic()
                built = self.build(sl)
                if not built.rows:
                    # An empty hash bucket: nothing to attach, nothing to settle later.
                    self._record(sl, "done", 0, 0, {}, "empty")
                    self._drop_built(built)
                    on_slice(sl, 0, "empty", time.monotonic() - t0)
                    return 0
                n = self.commit(sl, built, before[sl.key])
                kind = {"publish": "published", "withdraw": "withdrawn", "settle": "settled"}[sl.kind]
                on_slice(sl, n, kind, time.monotonic() - t0)
                return n

            # Builds run in parallel; commits go one at a time (see the module docstring).
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="publish") as pool:
                futures = [pool.submit(one, sl) for sl in todo]
                try:
                    while True:
                        done, pending = wait(futures, timeout=0.5, return_when=FIRST_EXCEPTION)
                        failed = [f for f in done if f.exception() is not None]
                        if failed or not pending:
                            break
                except KeyboardInterrupt:
                    self.stop.set()
                    for f in futures:
                        f.cancel()
                    raise
                if failed:
                    self.stop.set()
                    for f in futures:
                        f.cancel()
                    wait(futures)
                    exc = failed[0].exception()
                    assert exc is not None
                    raise exc
                inserted += sum(f.result() for f in futures)
        return inserted, skipped


def refuse_out_of_range(state: StateStore, rec: RunRecord, targets: dict[str, Target]) -> None:
    """Refuse, before anything is written, values or timestamps the target's columns cannot hold.

    `targets` maps "main"/"earnings" to the publish targets. Values are Int64 in staging; an Int32
    `metricValue` would wrap, a DateTime `createdAt` holds 1970-01-01 to 2106-02-07 only. On a
    ReplacingMergeTree target the same-second sums of a key are what is written, so a month whose
    absolute values could add up beyond the range is checked key by key."""
    epoch, end = datetime(1970, 1, 1), datetime(2106, 2, 7, 6, 28, 16)
    bad: dict[Pair, list[str]] = {}
    sums_to_check: dict[Pair, list[int]] = {}
    for m, et, mt, _n, _vs, abs_sum, lo, hi, t0, t1 in state.cells(rec):
        pair = Pair(str(et), str(mt))
        t = targets["earnings"] if routes_to_earnings_table(pair) else targets["main"]
        vmin, vmax = t.value_range
        if int(lo) < vmin or int(hi) > vmax:
            bad.setdefault(pair, []).append(
                f"a value of {lo if int(lo) < vmin else hi} in {m}, beyond {t.label}.metricValue ({t.value_type})"
            )
        elif t.replacing and int(abs_sum) > vmax:
            sums_to_check.setdefault(pair, []).append(int(m))
        if not t.millis and (t0 < epoch or t1 >= end):
            bad.setdefault(pair, []).append(
                f"createdAt {t0 if t0 < epoch else t1}, which {t.label}.createdAt ({t.ts_type}) cannot hold"
            )
    for pair, months in sums_to_check.items():
        t = targets["earnings"] if routes_to_earnings_table(pair) else targets["main"]
        vmin, vmax = t.value_range
        n, example = state.ch.query(
            f"SELECT count(), any(v) FROM (SELECT sum(metricValue) AS v FROM {state.t('staging')} "
            f"WHERE {state.staged_where(rec.run_id)} AND (entityType, metricType) IN ({pairs_sql([pair])}) "
            f"AND toYYYYMM(createdAt) IN ({', '.join(map(str, months))}) "
            "GROUP BY entityId, userId, toDateTime(createdAt, 'UTC')) "
            f"WHERE v < {vmin} OR v > {vmax}",
            what="checking value ranges",
        )[0]
        if int(n):
            bad.setdefault(pair, []).append(
                f"{n} same-second sums such as {example}, beyond {t.label}.metricValue ({t.value_type})"
            )
    if bad:
        listing = "; ".join(f"{pair}: {', '.join(v)}" for pair, v in sorted(bad.items()))
        raise ConfigError(
            f"refusing to publish run {rec.run_id} (nothing was written): {listing} — publish into a "
            "target whose columns hold them (Int64 metricValue, DateTime64(3) createdAt) or leave those "
            "pairs out with --only"
        )
