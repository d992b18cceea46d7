"""Stage: read each chunk's source rows and write its events, with lineage, into staging.

A PostgreSQL chunk is one `COPY (query) TO STDOUT` inside the run's snapshot, streamed into one
ClickHouse `INSERT … SELECT <fan-out> FROM <the rows>`. A ClickHouse chunk first loads the
PostgreSQL lookups it needs, then runs one `INSERT … SELECT` inside ClickHouse.

Every attempt of a chunk writes under a new attempt number, and only the attempt recorded as
`done` is ever read back, so a chunk can be retried or redone after a crash without deleting
anything first and without ever counting a half-written attempt.
"""

from __future__ import annotations

from datetime import date, datetime
from string import Template
from typing import Any

from metric_backfill.catalog import Source
from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill.engine._compile import fanout_select, ts_structure
from metric_backfill.engine._plan import EPOCH, Chunk, SourcePlan
from metric_backfill.backends._postgres import Snapshot
from metric_backfill._config import format_ts
from metric_backfill.backends._sql import literal, pairs_sql, ts_literal
from metric_backfill.engine._state import STAGING_COLUMNS, StateStore

__all__ = ["ChunkStager", "dry_run_counts"]

_ID_BATCH = 50_000
_LOOKUP_STRUCTURE = "key Int32, value Nullable(Int32)"
# What bounds a stage statement's memory (measured at scale 20, concurrency 2: the tree's peak
# 1,065 → 697 MB, and no slower). Staging blocks of 64 Ki lines: the fan-out multiplies rows, and
# larger squashed blocks (ClickHouse's default is a million rows) let memory follow the chunk size;
# 256 Ki lines still peaked at 820 MB. One parsing thread: parallel parsing buffers several
# segments of the stream per statement for no gain when the COPY is the slower side.
STAGE_SETTINGS = {
    "max_insert_block_size": 65_536,
    "min_insert_block_size_rows": 65_536,
    "min_insert_block_size_bytes": 16 << 20,
    "input_format_parallel_parsing": 0,
}


# A ClickHouse-sourced chunk multiplies its rows before the fan-out does (jobs: an ARRAY JOIN over
# the resources used, then two lookup joins), so its blocks are read smaller: two 1 M-job chunks
# at once peaked at 631 MB of the tree with ClickHouse's default of 64 Ki rows, 543 MB with 8 Ki.
_CH_SOURCE_SETTINGS = {"max_block_size": 8192}


def _cutoff_sql(ts: datetime) -> str:
    return ts_literal(ts)


def _pair_filter(sp: SourcePlan) -> str:
    if not sp.partial:
        return ""
    return f"\nWHERE (entityType, metricType) IN ({pairs_sql(sp.pairs)})"


def _pg_params(sp: SourcePlan, chunk: Chunk) -> dict[str, Any]:
    return {
        "lo": int(chunk.lo),
        "hi": int(chunk.hi),
        "cutoff": sp.cutoff,
        "read_until": sp.read_until or sp.cutoff,
        "null_ts": sp.null_ts or EPOCH,
        "etype": chunk.part,
    }


def _ch_params(sp: SourcePlan, chunk: Chunk) -> dict[str, Any]:
    return {
        "lo": chunk.lo,
        "hi": chunk.hi,
        "cutoff": format_ts(sp.cutoff),
        "cutoff_date": (sp.cutoff_date or date(2100, 1, 1)).isoformat(),
    }


class ChunkStager:
    """Stages chunks of one run. Thread-safe: each thread has its own connections."""

    def __init__(
        self,
        run_id: str,
        state: StateStore,
        ch: ClickHouse,
        snap: Snapshot,
        ch_tables: dict[str, str],
        *,
        concurrency: int = 1,
    ) -> None:
        self.run_id = run_id
        # With several chunks staged at once, one thread per statement: the chunks already share
        # the cores, and each extra pipeline holds its own blocks (the peak, not the speed, grows).
        self.settings = {**STAGE_SETTINGS, **({"max_threads": 1} if concurrency > 1 else {})}
        self.state = state
        self.ch = ch
        self.snap = snap
        self.ch_tables = ch_tables

    def _insert(self, sp: SourcePlan, chunk: Chunk, attempt: int, rows_sql: str) -> str:
        lineage = f"{literal(self.run_id)}, {literal(sp.source.name)}, {int(chunk.chunk_id)}, {int(attempt)}"
        cols = ", ".join(STAGING_COLUMNS)
        return (
            f"INSERT INTO {self.state.t('staging')} ({cols})\n"
            f"SELECT {lineage}, entityType, entityId, userId, metricType, metricValue, createdAt, drop_reason, drifted\n"
            f"FROM (\n{fanout_select(sp.source, rows_sql, _cutoff_sql(sp.cutoff))}\n){_pair_filter(sp)}"
        )

    def stage(self, sp: SourcePlan, chunk: Chunk, attempt: int) -> int:
        """Stage one chunk attempt; returns the number of source rows read."""
        if sp.source.engine == "pg":
            return self._stage_pg(sp, chunk, attempt)
        return self._stage_ch(sp, chunk, attempt)

    def _stage_pg(self, sp: SourcePlan, chunk: Chunk, attempt: int) -> int:
        rows = self.snap.copy(sp.query, _pg_params(sp, chunk), what=f"reading {sp.source.name} chunk {chunk.chunk_id}")
        self.ch.feed.run(
            lambda rows_sql: self._insert(sp, chunk, attempt, rows_sql),
            ts_structure(sp.source.columns),
            rows,
            settings=self.settings,
        )
        return rows.rows

    def _lookup_keys(self, source: Source, sp: SourcePlan, chunk: Chunk, keys_expr: str) -> list[int]:
        base = Template(source.keys_from).safe_substitute(self.ch_tables)
        rows = self.ch.query(
            f"SELECT DISTINCT toInt32(k) FROM (SELECT {keys_expr} AS k FROM ({base})) WHERE k IS NOT NULL ORDER BY 1",
            parameters=_ch_params(sp, chunk),
            what=f"listing lookup keys of {source.name}",
        )
        return [int(r[0]) for r in rows]

    def _fetch_lookup(self, pg_sql: str, ids: list[int], what: str) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for i in range(0, len(ids), _ID_BATCH):
            out.extend(
                (int(k), int(v))
                for k, v in self.snap.fetch(pg_sql, {"ids": ids[i : i + _ID_BATCH]}, what=what)
                if v is not None
            )
        return out

    def lookups(self, sp: SourcePlan, chunk: Chunk) -> dict[str, list[tuple[int, int]]]:
        out: dict[str, list[tuple[int, int]]] = {}
        for lk in sp.source.lookups:
            ids = self._lookup_keys(sp.source, sp, chunk, lk.keys)
            out[lk.name] = self._fetch_lookup(lk.pg_sql, ids, f"looking up {lk.name} for {sp.source.name}")
        return out

    def _load_lookups(self, sp: SourcePlan, chunk: Chunk, attempt: int) -> dict[str, str]:
        """Stream each lookup's PostgreSQL rows (read under the run's snapshot) straight into the
        state's lookups table, as the stage streams source rows: no Python value per row."""
        subst = {}
        for lk in sp.source.lookups:
            ids = self._lookup_keys(sp.source, sp, chunk, lk.keys)
            what = f"looking up {lk.name} for {sp.source.name}"

            def statement(rows_sql: str, name: str = lk.name) -> str:
                return self.state.lookup_insert_sql(self.run_id, chunk.chunk_id, attempt, name, rows_sql)

            for i in range(0, len(ids), _ID_BATCH):
                rows = self.snap.copy(lk.pg_sql, {"ids": ids[i : i + _ID_BATCH]}, what=what)
                self.ch.feed.run(statement, _LOOKUP_STRUCTURE, rows, settings=self.settings)
            subst[f"lookup_{lk.name}"] = self.state.lookup_sql(self.run_id, chunk.chunk_id, attempt, lk.name)
        return subst

    def _stage_ch(self, sp: SourcePlan, chunk: Chunk, attempt: int) -> int:
        subst = self._load_lookups(sp, chunk, attempt)
        rows_sql = "(\n" + Template(sp.query).substitute(subst) + "\n)"
        self.ch.command(
            self._insert(sp, chunk, attempt, rows_sql),
            parameters=_ch_params(sp, chunk),
            settings={**self.settings, **_CH_SOURCE_SETTINGS, **sp.source.settings},
            what=f"staging {sp.source.name} chunk {chunk.chunk_id}",
        )
        return chunk.est_rows


def _values_sql(pairs: list[tuple[int, int]]) -> str:
    if not pairs:
        return "SELECT toInt32(0) AS key, toInt32(0) AS value WHERE 0"
    body = ",".join(f"({int(k)},{int(v)})" for k, v in pairs)
    return f"SELECT key, value FROM values('key Int32, value Int32', {body})"


def dry_run_counts(stager: ChunkStager, sp: SourcePlan, chunk: Chunk) -> list[tuple[Any, ...]]:
    """(entityType, metricType, drop_reason, events, value_sum, drifted keys [(entityId, userId)]) of one
    chunk; writes nothing."""

    def statement(rows_sql: str) -> str:
        return (
            f"SELECT entityType, metricType, drop_reason, count(), sum(metricValue), "
            "groupUniqArrayIf((entityId, userId), drifted = 1 AND drop_reason IN ('', 'ts_after_cutoff')) FROM (\n"
            f"{fanout_select(sp.source, rows_sql, _cutoff_sql(sp.cutoff))}\n){_pair_filter(sp)}\n"
            "GROUP BY entityType, metricType, drop_reason"
        )

    if sp.source.engine == "pg":
        rows = stager.snap.copy(sp.query, _pg_params(sp, chunk), what=f"reading {sp.source.name}")
        return stager.ch.feed.query(statement, ts_structure(sp.source.columns), rows, settings={})
    found = stager.lookups(sp, chunk)
    rows_sql = "(\n" + Template(sp.query).substitute({f"lookup_{k}": _values_sql(v) for k, v in found.items()}) + "\n)"
    return stager.ch.query(
        statement(rows_sql),
        parameters=_ch_params(sp, chunk),
        settings={"max_query_size": 1 << 30, **sp.source.settings},
        what=f"counting {sp.source.name}",
    )
