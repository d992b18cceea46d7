"""Durable run state, kept in ClickHouse next to the data so every worker of a run shares it.

Tables (database `state_database`, default `metric_backfill`):

- `runs`        one row per run: fingerprint, status, redacted config, manifest (versioned rows).
- `chunks`      one row per chunk: planned → done | failed (versioned rows), with the id of the
                attempt that finished. Attempt ids are random, so two processes that ever work on
                the same chunk (a stalled worker and its replacement) can never mix their rows.
- `staging`     the staged events with their lineage (run, source, chunk, attempt), sorted by
                month only: cheap to write, and a publish slice reads its months by the index
                and hands the target nearly sorted blocks (measured: half the cost of a full key);
- `chunk_stats` fed by a materialized view on staging: per (chunk, attempt, pair, drop reason)
                event counts and sums, so progress, drop reports and verification never rescan staging.
- `lookups`     PostgreSQL lookups that ClickHouse-sourced chunks join against.

The publish ledger lives in the target's database (`metric_backfill_ledger`, README §5).

Versioned rows: each state change is a new row with a newer `updated_at`; readers take the newest
(ReplacingMergeTree + FINAL). No UPDATE/DELETE mutations are needed to move state forward, and a
crash can at worst leave a chunk "running" — which resume treats as "redo from scratch".
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ._clickhouse import ClickHouse, qualified, quote_ident

__all__ = ["ChunkState", "StateStore"]

STAGING_COLUMNS = ("run_id", "source", "chunk_id", "attempt", "entityType", "entityId", "userId",
                   "metricType", "metricValue", "createdAt", "drop_reason")


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class ChunkState:
    chunk_id: int
    source: str
    part: str
    lo: str
    hi: str
    est_rows: int
    attempt: int
    status: str
    rows_read: int
    worker: str
    error: str
    updated_at: datetime


class StateStore:
    def __init__(self, ch: ClickHouse, database: str) -> None:
        self.ch = ch
        self.db = database

    def t(self, name: str) -> str:
        return qualified(self.db, name)

    def exists(self) -> bool:
        return self.ch.engine(self.db, "runs") is not None

    def ensure(self) -> None:
        if getattr(self, "_ensured", False):
            return
        self._ensured = True
        db = quote_ident(self.db)
        stmts = [
            f"CREATE DATABASE IF NOT EXISTS {db}",
            f"""CREATE TABLE IF NOT EXISTS {self.t('runs')} (
                run_id String, fingerprint String, status LowCardinality(String),
                created_at DateTime64(3, 'UTC'), updated_at DateTime64(6, 'UTC'),
                config String, manifest String, summary String
            ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY run_id""",
            f"""CREATE TABLE IF NOT EXISTS {self.t('chunks')} (
                run_id String, chunk_id UInt32, source LowCardinality(String), part String,
                lo String, hi String, est_rows UInt64, attempt UInt32, status LowCardinality(String),
                rows_read UInt64, worker String, error String, updated_at DateTime64(6, 'UTC')
            ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY (run_id, chunk_id)""",
            f"""CREATE TABLE IF NOT EXISTS {self.t('staging')} (
                run_id String, source LowCardinality(String), chunk_id UInt32, attempt UInt32,
                entityType LowCardinality(String), entityId Int32, userId Int32,
                metricType LowCardinality(String), metricValue Int64, createdAt DateTime64(3, 'UTC'),
                drop_reason LowCardinality(String)
            ) ENGINE = MergeTree PARTITION BY run_id ORDER BY toYYYYMM(createdAt)
            -- Written once, read once or twice: merging its parts would only compete with the
            -- run for CPU (measured: a third of the run's time on 2 cores). No merges, and room
            -- for the parts that accumulate instead.
            SETTINGS max_bytes_to_merge_at_max_space_in_pool = 1, parts_to_delay_insert = 100000,
                     parts_to_throw_insert = 100000, max_parts_in_total = 1000000""",
            f"""CREATE TABLE IF NOT EXISTS {self.t('chunk_stats')} (
                run_id String, chunk_id UInt32, attempt UInt32, source LowCardinality(String),
                month UInt32, entityType LowCardinality(String), metricType LowCardinality(String),
                drop_reason LowCardinality(String), events UInt64, value_sum Int64
            ) ENGINE = SummingMergeTree((events, value_sum))
            ORDER BY (run_id, chunk_id, attempt, source, month, entityType, metricType, drop_reason)""",
            f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {self.t('chunk_stats_mv')} TO {self.t('chunk_stats')}
            AS SELECT run_id, chunk_id, attempt, source, toYYYYMM(createdAt) AS month, entityType, metricType,
                      drop_reason, count() AS events, sum(metricValue) AS value_sum
            FROM {self.t('staging')}
            GROUP BY run_id, chunk_id, attempt, source, month, entityType, metricType, drop_reason""",
            f"""CREATE TABLE IF NOT EXISTS {self.t('lookups')} (
                run_id String, chunk_id UInt32, attempt UInt32, name LowCardinality(String), key Int32, value Int32
            ) ENGINE = MergeTree PARTITION BY run_id ORDER BY (chunk_id, attempt, name, key)""",
        ]
        for s in stmts:
            self.ch.command(s, what="creating the state tables")

    # -- runs --------------------------------------------------------------------------------
    def write_run(self, run_id: str, fingerprint: str, status: str, created_at: datetime,
                  config: dict[str, Any], manifest: dict[str, Any], summary: dict[str, Any] | None = None) -> None:
        self.ch.insert(self.t("runs"), [[run_id, fingerprint, status, created_at, now(),
                                         json.dumps(config, default=str), json.dumps(manifest, default=str),
                                         json.dumps(summary or {}, default=str)]],
                       ["run_id", "fingerprint", "status", "created_at", "updated_at", "config", "manifest", "summary"],
                       what="recording the run")

    def run(self, run_id: str) -> dict[str, Any] | None:
        if not self.exists():
            return None
        rows = self.ch.query(f"SELECT run_id, fingerprint, status, created_at, config, manifest, summary "
                             f"FROM {self.t('runs')} FINAL WHERE run_id = {{r:String}}", parameters={"r": run_id})
        if not rows:
            return None
        r = rows[0]
        return {"run_id": r[0], "fingerprint": r[1], "status": r[2], "created_at": r[3],
                "config": json.loads(r[4]), "manifest": json.loads(r[5]), "summary": json.loads(r[6] or "{}")}

    def runs(self) -> list[dict[str, Any]]:
        rows = self.ch.query(f"SELECT run_id, status, created_at, updated_at FROM {self.t('runs')} FINAL "
                             "ORDER BY created_at DESC")
        return [{"run_id": r[0], "status": r[1], "created_at": r[2], "updated_at": r[3]} for r in rows]

    def latest_run(self, fingerprint: str) -> str | None:
        """The newest run with this fingerprint (the same command run before), if any."""
        if not self.exists():
            return None
        rows = self.ch.query(f"SELECT run_id FROM {self.t('runs')} FINAL WHERE fingerprint = {{f:String}} "
                             "AND status NOT IN ('abandoned', 'withdrawn') ORDER BY created_at DESC LIMIT 1",
                             parameters={"f": fingerprint})
        return str(rows[0][0]) if rows else None

    # -- chunks ------------------------------------------------------------------------------
    _CHUNK_COLS = ["run_id", "chunk_id", "source", "part", "lo", "hi", "est_rows", "attempt", "status",
                   "rows_read", "worker", "error", "updated_at"]

    def write_chunks(self, run_id: str, states: Iterable[ChunkState]) -> None:
        rows = [[run_id, s.chunk_id, s.source, s.part, s.lo, s.hi, s.est_rows, s.attempt, s.status,
                 s.rows_read, s.worker, s.error[:1000], s.updated_at] for s in states]
        for i in range(0, len(rows), 50_000):
            self.ch.insert(self.t("chunks"), rows[i:i + 50_000], self._CHUNK_COLS, what="recording chunk state")

    def chunks(self, run_id: str) -> list[ChunkState]:
        rows = self.ch.query(f"SELECT chunk_id, source, part, lo, hi, est_rows, attempt, status, rows_read, worker, "
                             f"error, updated_at FROM {self.t('chunks')} FINAL WHERE run_id = {{r:String}} "
                             "ORDER BY chunk_id", parameters={"r": run_id})
        return [ChunkState(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), int(r[5]), int(r[6]), str(r[7]),
                           int(r[8]), str(r[9]), str(r[10]), r[11]) for r in rows]

    def done_attempts_sql(self, run_id_literal: str) -> str:
        """SQL set of (chunk_id, attempt) whose staging is complete: the only staged rows that count."""
        return (f"(SELECT chunk_id, attempt FROM {self.t('chunks')} FINAL "
                f"WHERE run_id = {run_id_literal} AND status = 'done')")

    def stats(self, run_id: str, *, done_only: bool = True) -> list[tuple[Any, ...]]:
        """(source, entityType, metricType, drop_reason, events, value_sum) over finished chunks."""
        from ._compile import literal

        cond = (f"AND (chunk_id, attempt) IN {self.done_attempts_sql(literal(run_id))}" if done_only else "")
        return self.ch.query(
            f"SELECT source, entityType, metricType, drop_reason, sum(events), sum(value_sum) "
            f"FROM {self.t('chunk_stats')} WHERE run_id = {{r:String}} {cond} "
            "GROUP BY source, entityType, metricType, drop_reason ORDER BY source, entityType, metricType, drop_reason",
            parameters={"r": run_id})

    def month_cells(self, run_id: str, pair_filter: str = "") -> list[tuple[Any, ...]]:
        """(month, entityType, metricType, events, value_sum) of a run's finished chunks — what a
        publish sizes its slices by, without reading staging."""
        from ._compile import literal

        return self.ch.query(
            f"SELECT month, entityType, metricType, sum(events), sum(value_sum) FROM {self.t('chunk_stats')} "
            f"WHERE run_id = {{r:String}} AND drop_reason = '' "
            f"AND (chunk_id, attempt) IN {self.done_attempts_sql(literal(run_id))}{pair_filter} "
            "GROUP BY month, entityType, metricType HAVING sum(events) > 0 ORDER BY month, entityType, metricType",
            parameters={"r": run_id}, what="sizing the publish")

    def chunk_lines(self, run_id: str) -> dict[tuple[int, int], int]:
        rows = self.ch.query(f"SELECT chunk_id, attempt, sum(events) FROM {self.t('chunk_stats')} "
                             "WHERE run_id = {r:String} AND drop_reason = '' GROUP BY chunk_id, attempt",
                             parameters={"r": run_id})
        return {(int(a), int(b)): int(c) for a, b, c in rows}

    # -- lookups -----------------------------------------------------------------------------
    def write_lookup(self, run_id: str, chunk_id: int, attempt: int, name: str,
                     pairs: Sequence[tuple[int, int]]) -> None:
        rows = [[run_id, chunk_id, attempt, name, int(k), int(v)] for k, v in pairs]
        for i in range(0, len(rows), 200_000):
            self.ch.insert(self.t("lookups"), rows[i:i + 200_000],
                           ["run_id", "chunk_id", "attempt", "name", "key", "value"], what="loading a PostgreSQL lookup")

    def lookup_sql(self, run_id_literal: str, chunk_id: int, attempt: int, name: str) -> str:
        # any(): a retried insert may have loaded the same keys twice, and a duplicate key would
        # duplicate joined rows (and events).
        from ._compile import literal

        return (f"SELECT key, any(value) AS value FROM {self.t('lookups')} WHERE run_id = {run_id_literal} "
                f"AND chunk_id = {int(chunk_id)} AND attempt = {int(attempt)} AND name = {literal(name)} GROUP BY key")
