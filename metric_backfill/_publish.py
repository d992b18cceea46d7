"""Publish: move a staged run into its target(s) exactly once.

Insert-fired rollups on the target count every inserted row forever (T1), so each event may be
inserted exactly once. A run is published in slices — one target partition (month), split by
entityType and entityId hash when large — and each slice is:

1. measured: its row count and value sum, and the target's count/sum over the slice's scope
   (month, pairs, hash bucket, before the cutoff) — the "before" picture;
2. recorded in the ledger as `started`, with that picture;
3. inserted with one `INSERT … SELECT` squashed into a single block, so it lands as one part per
   partition and reaches each materialized view as one block: all or nothing;
4. recorded as `done`.

A slice with a `done` entry is never inserted again. A slice left `started` by a crash is settled
by looking, not by retrying blindly: if the target's scope still shows the "before" picture the
insert never landed and is redone; if it shows before + slice it landed and is marked done;
anything else stops with PublishConflict. The `insert_deduplication_token` is a second guard only
(T2: it does not protect views on non-replicated tables).

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
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ._clickhouse import ClickHouse, quote_ident
from ._compile import literal
from ._config import format_ts
from ._errors import PublishConflict
from ._state import StateStore, now
from ._target import Target

__all__ = ["LEDGER", "Publisher", "Slice"]

LEDGER = "metric_backfill_ledger"


@dataclass(frozen=True)
class Slice:
    kind: str
    """publish | withdraw | settle"""
    source_run: str
    """The run whose staged rows the slice is made of."""
    target: Target
    months: tuple[int, ...]
    """Target partitions (YYYYMM) the slice covers: one, or several small ones packed together."""
    pairs: tuple[tuple[str, str], ...]
    buckets: int
    bucket: int
    staged_rows: int
    staged_sum: int

    @property
    def key(self) -> str:
        ets = sorted({e for e, _ in self.pairs})
        label = ets[0] if len(ets) == 1 else f"{len(ets)}types"
        span = str(self.months[0]) if len(self.months) == 1 else f"{self.months[0]}-{self.months[-1]}"
        digest = hashlib.sha1(repr((self.months, self.pairs)).encode()).hexdigest()[:8]
        prefix = "" if self.kind == "publish" else f"{self.kind}:{self.source_run}:"
        return f"{prefix}{span}:{label}:{self.bucket}/{self.buckets}:{digest}"

    @property
    def cells(self) -> list[tuple[int, str, str]]:
        """The (month, entityType, metricType) cells of the slice's scope."""
        return [(m, e, t) for m in self.months for e, t in self.pairs]


def _pairs_sql(pairs: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> str:
    return ", ".join(f"({literal(e)}, {literal(m)})" for e, m in pairs)


class Publisher:
    def __init__(self, ch: ClickHouse, state: StateStore, run_id: str, *, main: Target,
                 earnings: Target | None, cutoff: datetime, version: int, slice_rows: int,
                 withdrawals: dict[str, list[str]] | None = None, concurrency: int = 1) -> None:
        self.ch = ch
        self.state = state
        self.run_id = run_id
        self.main = main
        self.earnings = earnings or main
        self.cutoff = cutoff
        self.version = version
        self.slice_rows = max(1, slice_rows)
        self.concurrency = max(1, concurrency)
        self.withdrawals = withdrawals or {}
        """earlier run id → pairs of it to withdraw (from the fence, --on-overlap replace)"""

    # -- ledger ------------------------------------------------------------------------------
    @staticmethod
    def ledger(target: Target) -> str:
        return f"{quote_ident(target.database)}.{quote_ident(LEDGER)}"

    def ensure_ledger(self, target: Target) -> None:
        self.ch.command(f"""CREATE TABLE IF NOT EXISTS {self.ledger(target)} (
            run_id String, target String, slice String, kind LowCardinality(String), source_run String,
            pairs Array(Tuple(String, String)), step LowCardinality(String),
            rows UInt64, value_sum Int64, before_rows UInt64, before_sum Int64,
            token String, at DateTime64(6, 'UTC'), note String
        ) ENGINE = MergeTree ORDER BY (run_id, target, slice, at)""", what="creating the publish ledger")

    def _ledger_entries(self, target: Target) -> dict[str, dict[str, Any]]:
        rows = self.ch.query(f"SELECT slice, step, rows, value_sum, before_rows, before_sum FROM {self.ledger(target)} "
                             "WHERE run_id = {r:String} AND target = {t:String} ORDER BY at",
                             parameters={"r": self.run_id, "t": target.label}, what="reading the publish ledger")
        out: dict[str, dict[str, Any]] = {}
        for s, step, n, vs, br, bs in rows:
            e = out.setdefault(s, {})
            if step == "started" and "started" not in e:
                e["started"] = (int(n), int(vs), int(br), int(bs))
            elif step == "done":
                e["done"] = (int(n), int(vs))
        return out

    def _record(self, sl: Slice, step: str, rows: int, value_sum: int, before: tuple[int, int], token: str,
                note: str = "") -> None:
        self._record_many([(sl, step, rows, value_sum, before, token, note)])

    def _record_many(self, entries: list[tuple[Slice, str, int, int, tuple[int, int], str, str]]) -> None:
        by_target: dict[str, list[list[Any]]] = {}
        targets: dict[str, Target] = {}
        for sl, step, rows, value_sum, before, token, note in entries:
            targets[sl.target.label] = sl.target
            by_target.setdefault(sl.target.label, []).append(
                [self.run_id, sl.target.label, sl.key, sl.kind, sl.source_run, list(sl.pairs), step, rows,
                 value_sum, before[0], before[1], token, now(), note])
        for label, ledger_rows in by_target.items():
            self.ch.insert(self.ledger(targets[label]), ledger_rows,
                           ["run_id", "target", "slice", "kind", "source_run", "pairs", "step", "rows", "value_sum",
                            "before_rows", "before_sum", "token", "at", "note"], what="writing the publish ledger")

    # -- slices ------------------------------------------------------------------------------
    def _staged_where(self, run_id: str) -> str:
        return (f"run_id = {literal(run_id)} AND drop_reason = '' "
                f"AND (chunk_id, attempt) IN {self.state.done_attempts_sql(literal(run_id))}")

    def plan_slices(self, kind: str = "publish", source_run: str | None = None,
                    only_pairs: list[str] | None = None) -> list[Slice]:
        """Cut a run's staged rows into slices of at most slice_rows rows, in target-partition order.

        Small consecutive months are packed into one slice (per-statement overhead dominates
        small inserts); a month above slice_rows gets slices of its own, by entityType, and a big
        entityType is split by entityId hash. Pre-aggregation keys never cross a month, an
        entityType or an entityId, so every slice holds whole keys (T4). Slice scopes are
        disjoint: a slice's rows land in no other slice's scope."""
        source_run = source_run or self.run_id
        pair_filter = ""
        if only_pairs is not None:
            if not only_pairs:
                return []
            pair_filter = f" AND (entityType, metricType) IN ({_pairs_sql([tuple(p.split('.', 1)) for p in only_pairs])})"  # type: ignore[misc]
        rows = self.state.month_cells(source_run, pair_filter)
        cells: dict[str, dict[int, dict[tuple[str, str], tuple[int, int]]]] = {}
        for m, et, mt, n, vs in rows:
            target = self.earnings if mt == "earnedAmount" else self.main
            cells.setdefault(target.label, {}).setdefault(int(m), {})[(str(et), str(mt))] = (int(n), int(vs))
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
    def _packed(kind: str, source_run: str, target: Target, months: list[int],
                by_month: dict[int, dict[tuple[str, str], tuple[int, int]]], sign: int) -> Slice:
        """Whole small months in one slice."""
        pairs = tuple(sorted({p for m in months for p in by_month[m]}))
        n = sum(c[0] for m in months for c in by_month[m].values())
        vs = sum(c[1] for m in months for c in by_month[m].values())
        return Slice(kind, source_run, target, tuple(months), pairs, 1, 0, n, sign * vs)

    def _split_month(self, kind: str, source_run: str, target: Target, month: int,
                     cells: dict[tuple[str, str], tuple[int, int]], sign: int) -> list[Slice]:
        out: list[Slice] = []
        by_type: dict[str, list[tuple[str, str]]] = {}
        for pair in sorted(cells):
            by_type.setdefault(pair[0], []).append(pair)
        pending: list[tuple[str, str]] = []
        for _et, pairs in sorted(by_type.items()):
            n = sum(cells[p][0] for p in pairs)
            if n > self.slice_rows:
                k = -(-n // self.slice_rows)
                out.extend(Slice(kind, source_run, target, (month,), tuple(pairs), k, b, 0, 0) for b in range(k))
                continue
            if pending and sum(cells[p][0] for p in pending) + n > self.slice_rows:
                out.append(Slice(kind, source_run, target, (month,), tuple(pending), 1, 0,
                                 sum(cells[p][0] for p in pending), sign * sum(cells[p][1] for p in pending)))
                pending = []
            pending.extend(pairs)
        if pending:
            out.append(Slice(kind, source_run, target, (month,), tuple(pending), 1, 0,
                             sum(cells[p][0] for p in pending), sign * sum(cells[p][1] for p in pending)))
        return out

    @staticmethod
    def _scope(sl: Slice) -> str:
        months = ", ".join(str(m) for m in sl.months)
        cond = f"toYYYYMM(createdAt) IN ({months}) AND (entityType, metricType) IN ({_pairs_sql(sl.pairs)})"
        if sl.buckets > 1:
            cond += f" AND cityHash64(entityId) % {sl.buckets} = {sl.bucket}"
        return cond

    def _keys_sql(self, run_id: str, sl: Slice) -> str:
        """Pre-aggregated rows of `run_id` in the slice's scope, as the replacing target stores them."""
        return (f"SELECT entityType, entityId, userId, metricType, toInt32(sum(metricValue)) AS v, "
                f"toDateTime(createdAt, 'UTC') AS ts\nFROM {self.state.t('staging')}\n"
                f"WHERE {self._staged_where(run_id)} AND {self._scope(sl)}\n"
                "GROUP BY entityType, entityId, metricType, userId, ts HAVING sum(metricValue) != 0")

    def select_sql(self, sl: Slice) -> str:
        t = sl.target
        version = f", toUInt8({int(self.version)}) AS ver" if t.has_version else ""
        sign = "-" if sl.kind == "withdraw" else ""
        if sl.kind == "settle":
            # Keys of the earlier run that the new run does not write: a 0 row replaces them.
            return (f"SELECT entityType, entityId, userId, metricType, toInt32(0) AS v, ts{version}\n"
                    f"FROM ({self._keys_sql(sl.source_run, sl)})\n"
                    f"WHERE (entityType, entityId, userId, metricType, ts) NOT IN (\n"
                    f"    SELECT entityType, entityId, userId, metricType, ts FROM ({self._keys_sql(self.run_id, sl)}))")
        if t.replacing:
            # Collapse rows that share the replacing key, summing values; drop zero sums (T4).
            return (f"SELECT entityType, entityId, userId, metricType, {sign}v AS v, ts{version}\n"
                    f"FROM ({self._keys_sql(sl.source_run, sl)})")
        ts = "toDateTime64(createdAt, 3, 'UTC')" if t.millis else "toDateTime(createdAt, 'UTC')"
        return (f"SELECT entityType, entityId, userId, metricType, {sign}toInt32(metricValue) AS v, {ts} AS ts{version}\n"
                f"FROM {self.state.t('staging')}\nWHERE {self._staged_where(sl.source_run)} AND {self._scope(sl)}")

    def _target_pictures(self, slices: list[Slice]) -> dict[str, tuple[int, int]]:
        """The target's (count, sum) in each slice's scope now; one grouped query for the
        unbucketed slices (their scopes are unions of (month, pair) cells), one each otherwise."""
        cutoff = f"toDateTime64({literal(format_ts(self.cutoff))}, 3, 'UTC')"
        out: dict[str, tuple[int, int]] = {}
        by_target: dict[str, list[Slice]] = {}
        for sl in slices:
            if sl.buckets > 1:
                r = self.ch.query(f"SELECT count(), toInt64(sum(metricValue)) FROM {sl.target.name} "
                                  f"WHERE {self._scope(sl)} AND createdAt < {cutoff}", what="measuring the target")[0]
                out[sl.key] = (int(r[0]), int(r[1] or 0))
            else:
                by_target.setdefault(sl.target.label, []).append(sl)
        for group in by_target.values():
            target = group[0].target
            months = sorted({m for sl in group for m in sl.months})
            pairs = sorted({p for sl in group for p in sl.pairs})
            grid: dict[tuple[int, str, str], tuple[int, int]] = {}
            for m, et, mt, n, vs in self.ch.query(
                    f"SELECT toYYYYMM(createdAt) AS m, entityType, metricType, count(), toInt64(sum(metricValue)) "
                    f"FROM {target.name} WHERE toYYYYMM(createdAt) IN ({', '.join(map(str, months))}) "
                    f"AND (entityType, metricType) IN ({_pairs_sql(pairs)}) AND createdAt < {cutoff} "
                    "GROUP BY m, entityType, metricType", what="measuring the target"):
                grid[(int(m), str(et), str(mt))] = (int(n), int(vs or 0))
            for sl in group:
                cells = [grid.get(c, (0, 0)) for c in sl.cells]
                out[sl.key] = (sum(c[0] for c in cells), sum(c[1] for c in cells))
        return out

    def _measure(self, sl: Slice) -> tuple[int, int]:
        """Rows and value sum the slice inserts: known from staging unless rows are aggregated
        (replacing target, settle rows) or the slice is a hash bucket."""
        if sl.buckets == 1 and sl.kind != "settle" and not sl.target.replacing:
            return sl.staged_rows, sl.staged_sum
        r = self.ch.query(f"SELECT count(), toInt64(sum(v)) FROM ({self.select_sql(sl)})",
                          what="measuring a publish slice")[0]
        return int(r[0]), int(r[1] or 0)

    # -- publish -----------------------------------------------------------------------------
    def phases(self) -> list[list[Slice]]:
        """The slices of this publish, in the order they must land: withdrawals of earlier runs,
        this run's rows, then settle rows. Within a phase, slice scopes are disjoint."""
        withdraw = [sl for old, pairs in sorted(self.withdrawals.items())
                    for sl in self.plan_slices("withdraw", old, pairs)]
        settle = [sl for old, pairs in sorted(self.withdrawals.items())
                  for sl in self.plan_slices("settle", old, pairs) if sl.target.replacing]
        return [p for p in (withdraw, self.plan_slices(), settle) if p]

    def publish(self, on_slice: Callable[[Slice, int, str], None] | None = None) -> tuple[int, int]:
        """Publish every slice not yet done; returns (rows inserted now, slices already done)."""
        targets = {self.main.label: self.main, self.earnings.label: self.earnings}
        for t in targets.values():
            self.ensure_ledger(t)
        inserted = skipped = 0
        for phase in self.phases():
            entries = {label: self._ledger_entries(t) for label, t in targets.items()}
            todo = []
            for sl in phase:
                entry = entries[sl.target.label].get(sl.key, {})
                if "done" in entry:
                    skipped += 1
                    if on_slice:
                        on_slice(sl, 0, "already published")
                else:
                    todo.append((sl, entry))
            if not todo:
                continue
            now_pictures = self._target_pictures([sl for sl, _ in todo])
            started = []
            for sl, entry in todo:
                picture = now_pictures[sl.key]
                if "started" not in entry:
                    n, vs = self._measure(sl)
                    if n == 0:  # an empty hash bucket: nothing to insert, nothing to settle later
                        self._record(sl, "done", 0, 0, picture, self._token(sl), "empty")
                        continue
                    started.append((sl, n, vs, picture))
                    continue
                r0, v0, b0, s0 = entry["started"]
                if picture == (b0 + r0, s0 + v0):
                    self._record(sl, "done", r0, v0, (b0, s0), self._token(sl), "settled after restart: the insert had landed")
                    if on_slice:
                        on_slice(sl, 0, "settled: it had landed before the interruption")
                    continue
                if picture != (b0, s0):
                    raise PublishConflict(
                        f"publish slice {sl.key} of run {self.run_id} into {sl.target.label} was interrupted and the "
                        f"target now holds {picture[0]} rows in its scope, neither the {b0} before nor the "
                        f"{b0 + r0} after: inspect {self.ledger(sl.target)} and the target before going on")
                started.append((sl, r0, v0, (b0, s0)))
            # Every slice's "before" picture is on record before the first insert of the phase.
            fresh = [(sl, n, vs, before) for sl, n, vs, before in started if "started" not in entries[sl.target.label].get(sl.key, {})]
            self._record_many([(sl, "started", n, vs, before, self._token(sl), "") for sl, n, vs, before in fresh])
            # Disjoint scopes and recorded befores make the slices of a phase independent: they
            # can land in parallel, and each is still settled on its own after a crash.
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="publish") as pool:
                futures = [pool.submit(self._insert, sl, n, vs, before, on_slice) for sl, n, vs, before in started]
                inserted += sum(f.result() for f in futures)
        return inserted, skipped

    def _token(self, sl: Slice) -> str:
        return f"metric-backfill:{self.run_id}:{sl.target.label}:{sl.key}"

    def _insert(self, sl: Slice, n: int, vs: int, before: tuple[int, int],
                on_slice: Callable[[Slice, int, str], None] | None) -> int:
        if n:
            cols = "entityType, entityId, userId, metricType, metricValue, createdAt" + \
                   (", version" if sl.target.has_version else "")
            settings = {
                "async_insert": 0,
                "insert_deduplicate": 1,
                "insert_deduplication_token": self._token(sl),
                "deduplicate_blocks_in_dependent_materialized_views": 1,
                # One block: one part per partition, one pass through each materialized view.
                "min_insert_block_size_rows": n + 1,
                "min_insert_block_size_bytes": 1 << 40,
                "max_insert_threads": 1,
            }
            self.ch.command(f"INSERT INTO {sl.target.name} ({cols})\n{self.select_sql(sl)}", settings=settings,
                            what=f"publishing slice {sl.key} into {sl.target.label}")
        self._record(sl, "done", n, vs, before, self._token(sl), "" if n else "empty")
        if on_slice:
            on_slice(sl, n, {"publish": "published", "withdraw": "withdrawn", "settle": "settled"}[sl.kind])
        return n
