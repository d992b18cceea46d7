"""Durable run state, kept in ClickHouse next to the data so every worker of a run shares it.

Tables (database `state_database`, default `metric_backfill`):

- `meta`        the schema version of these tables; another version is refused, never guessed at.
- `runs`        one row per run: fingerprint, status, redacted config, manifest (versioned rows).
- `chunks`      one row per chunk: planned → done | failed (versioned rows), with the id of the
                attempt that finished. Attempt ids are random, so two processes that ever work on
                the same chunk (a stalled worker and its replacement) can never mix their rows.
- `staging`     the staged events with their lineage (run, source, chunk, attempt), sorted by
                month only: cheap to write, and a publish slice reads its months by the index
                and hands the target nearly sorted blocks (measured: half the cost of a full key);
- `stats`       per (source, month, pair, drop reason) event counts, sums and value/time ranges of a
                run's finished staging, computed once when staging completes (`summarize`): what
                the publish is sized and range-checked by, and what reports show.
- `lookups`     PostgreSQL lookups that ClickHouse-sourced chunks join against.
- `heartbeats`  the newest progress document of each command working on a run, every ten seconds
                (see `_progress`): who runs it, how far it is, and — when it stops beating — that
                nobody does.

The publish ledger and the target leases live in the target's database (see `_publish`, `_lease`).

Versioned rows: each state change is a new row with a newer `updated_at`; readers take the newest
(ReplacingMergeTree + FINAL). No UPDATE/DELETE mutations are needed to move state forward.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill._errors import ConfigError
from metric_backfill.backends._sql import literal, qualified, quote_ident

__all__ = ["ChunkState", "RunRecord", "SCHEMA_VERSION", "StateStore", "now", "worker_name"]

SCHEMA_VERSION = 3
"""Version of the state tables' layout (1: the first round's, with a chunk_stats view; 2 lacked
events per chunk and heartbeats, and is upgraded in place: the changes only add)."""

STAGING_COLUMNS = (
    "run_id",
    "source",
    "chunk_id",
    "attempt",
    "entityType",
    "entityId",
    "userId",
    "metricType",
    "metricValue",
    "createdAt",
    "drop_reason",
    "drifted",
)

RunStatus = Literal["planned", "staging", "staged", "publishing", "published", "withdrawn", "abandoned"]
ChunkStatus = Literal["planned", "done", "failed"]


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
    status: ChunkStatus
    rows_read: int
    worker: str
    error: str
    updated_at: datetime
    events: int = 0
    """Events the attempt staged (not counting dropped ones)."""


@dataclass
class RunRecord:
    """One run as the `runs` table holds it (the newest version)."""

    run_id: str
    fingerprint: str
    status: RunStatus
    created_at: datetime
    config: dict[str, Any]
    manifest: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None

    @property
    def is_reconcile(self) -> bool:
        return "reconcile" in self.manifest


class StateStore:
    def __init__(self, ch: ClickHouse, database: str) -> None:
        self.ch = ch
        self.db = database
        self._ensured = False
        self._checked = False

    def t(self, name: str) -> str:
        return qualified(self.db, name)

    def exists(self) -> bool:
        if self.ch.engine(self.db, "runs") is None:
            return False
        self.refuse_other_schema()
        return True

    def _schema_version(self) -> int:
        rows = (
            self.ch.query(f"SELECT value FROM {self.t('meta')} FINAL WHERE key = 'schema_version'")
            if self.ch.engine(self.db, "meta") is not None
            else []
        )
        return int(rows[0][0]) if rows else 1

    def refuse_other_schema(self) -> None:
        if self._checked:
            return
        found = self._schema_version()
        if found == 2:
            self._upgrade_from_2()
            found = SCHEMA_VERSION
        if found != SCHEMA_VERSION:
            older = found < SCHEMA_VERSION
            raise ConfigError(
                f"the state database {self.db} holds schema version {found}, written by "
                f"{'an older' if older else 'a newer'} metric-backfill (this one reads {SCHEMA_VERSION}): "
                + (
                    "finish or abandon its runs with that version, or use a new --state-db"
                    if older
                    else "upgrade metric-backfill, or use another --state-db"
                )
            )
        self._checked = True

    def _upgrade_from_2(self) -> None:
        """Version 2 → 3 only adds (a column, an index, a table), so a version-2 tool's runs read on."""
        for sql in (
            f"ALTER TABLE {self.t('chunks')} ADD COLUMN IF NOT EXISTS events UInt64 DEFAULT 0",
            f"ALTER TABLE {self.t('staging')} ADD INDEX IF NOT EXISTS {self._CHUNK_INDEX}",
            self._heartbeats_ddl(),
        ):
            self.ch.command(sql, what="upgrading the state tables from schema version 2")
        self.ch.insert(
            self.t("meta"),
            [["schema_version", str(SCHEMA_VERSION), now()]],
            ["key", "value", "updated_at"],
            what="recording the state schema version",
        )

    # Staging parts are never merged, so each holds one chunk attempt: a min-max index over a whole
    # part lets a chunk's events be counted from its own parts alone.
    _CHUNK_INDEX = "by_chunk chunk_id TYPE minmax GRANULARITY 1000000000"

    def _heartbeats_ddl(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.t('heartbeats')} (run_id String, holder String, host String, "
            "pid UInt32, phase LowCardinality(String), beat_at DateTime64(3, 'UTC') DEFAULT now64(3), doc String) "
            "ENGINE = ReplacingMergeTree(beat_at) ORDER BY (run_id, holder)"
        )

    def ensure(self) -> None:
        if self._ensured:
            return
        if self.ch.engine(self.db, "runs") is not None:
            self.refuse_other_schema()
        db = quote_ident(self.db)
        # The version first: a command killed half-way through creating the tables leaves tables
        # that say which layout they are, never tables that look older than they are.
        self.ch.command(f"CREATE DATABASE IF NOT EXISTS {db}", what="creating the state database")
        self.ch.command(
            f"CREATE TABLE IF NOT EXISTS {self.t('meta')} (key String, value String, updated_at DateTime64(6, 'UTC')) "
            "ENGINE = ReplacingMergeTree(updated_at) ORDER BY key",
            what="creating the state tables",
        )
        if not self.ch.query(f"SELECT 1 FROM {self.t('meta')} WHERE key = 'schema_version'"):
            self.ch.insert(
                self.t("meta"),
                [["schema_version", str(SCHEMA_VERSION), now()]],
                ["key", "value", "updated_at"],
                what="recording the state schema version",
            )
        stmts = [
            f"""CREATE TABLE IF NOT EXISTS {self.t("runs")} (
                run_id String, fingerprint String, status LowCardinality(String),
                created_at DateTime64(3, 'UTC'), updated_at DateTime64(6, 'UTC'),
                config String, manifest String, summary String
            ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY run_id""",
            f"""CREATE TABLE IF NOT EXISTS {self.t("chunks")} (
                run_id String, chunk_id UInt32, source LowCardinality(String), part String,
                lo String, hi String, est_rows UInt64, attempt UInt32, status LowCardinality(String),
                rows_read UInt64, worker String, error String, updated_at DateTime64(6, 'UTC'),
                events UInt64 DEFAULT 0
            ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY (run_id, chunk_id)""",
            f"""CREATE TABLE IF NOT EXISTS {self.t("staging")} (
                run_id String, source LowCardinality(String), chunk_id UInt32, attempt UInt32,
                entityType LowCardinality(String), entityId Int32, userId Int32,
                metricType LowCardinality(String), metricValue Int64, createdAt DateTime64(3, 'UTC'),
                drop_reason LowCardinality(String), drifted UInt8,
                INDEX {self._CHUNK_INDEX}
            ) ENGINE = MergeTree PARTITION BY run_id ORDER BY toYYYYMM(createdAt)
            -- Written once, read once or twice: merging its parts would only compete with the
            -- run for CPU (measured: a third of the run's time on 2 cores). No merges, and room
            -- for the parts that accumulate instead: one per 64 Ki staged lines (STAGE_SETTINGS),
            -- so a million parts is 65 billion lines in one run.
            SETTINGS max_bytes_to_merge_at_max_space_in_pool = 1, parts_to_delay_insert = 1000000,
                     parts_to_throw_insert = 1000000, max_parts_in_total = 10000000""",
            f"""CREATE TABLE IF NOT EXISTS {self.t("stats")} (
                run_id String, token String, source LowCardinality(String), month UInt32,
                entityType LowCardinality(String), metricType LowCardinality(String),
                drop_reason LowCardinality(String), events UInt64, value_sum Int64, abs_sum Int128,
                min_value Int64, max_value Int64, min_ts DateTime64(3, 'UTC'), max_ts DateTime64(3, 'UTC'),
                drifted UInt64
            ) ENGINE = MergeTree ORDER BY (run_id, token)""",
            f"""CREATE TABLE IF NOT EXISTS {self.t("lookups")} (
                run_id String, chunk_id UInt32, attempt UInt32, name LowCardinality(String), key Int32, value Int32
            ) ENGINE = MergeTree PARTITION BY run_id ORDER BY (chunk_id, attempt, name, key)""",
            self._heartbeats_ddl(),
        ]
        for s in stmts:
            self.ch.command(s, what="creating the state tables")
        self._ensured = self._checked = True

    # -- runs --------------------------------------------------------------------------------
    def write_run(self, rec: RunRecord) -> None:
        rec.updated_at = now()
        self.ch.insert(
            self.t("runs"),
            [
                [
                    rec.run_id,
                    rec.fingerprint,
                    rec.status,
                    rec.created_at,
                    rec.updated_at,
                    json.dumps(rec.config, default=str),
                    json.dumps(rec.manifest, default=str),
                    json.dumps(rec.summary, default=str),
                ]
            ],
            ["run_id", "fingerprint", "status", "created_at", "updated_at", "config", "manifest", "summary"],
            what="recording the run",
        )

    def set_status(self, rec: RunRecord, status: RunStatus, **summary: Any) -> None:
        rec.status = status
        rec.summary = {**rec.summary, **summary}
        self.write_run(rec)

    def run(self, run_id: str) -> RunRecord | None:
        if not self.exists():
            return None
        rows = self.ch.query(
            f"SELECT run_id, fingerprint, status, created_at, config, manifest, summary, updated_at "
            f"FROM {self.t('runs')} FINAL WHERE run_id = {{r:String}}",
            parameters={"r": run_id},
        )
        return self._record(rows[0]) if rows else None

    @staticmethod
    def _record(r: Sequence[Any]) -> RunRecord:
        return RunRecord(
            run_id=str(r[0]),
            fingerprint=str(r[1]),
            status=r[2],
            created_at=r[3],
            config=json.loads(r[4]),
            manifest=json.loads(r[5]),
            summary=json.loads(r[6] or "{}"),
            updated_at=r[7],
        )

    def runs(self) -> list[RunRecord]:
        if not self.exists():
            return []
        rows = self.ch.query(
            f"SELECT run_id, fingerprint, status, created_at, config, manifest, summary, updated_at "
            f"FROM {self.t('runs')} FINAL ORDER BY created_at DESC"
        )
        return [self._record(r) for r in rows]

    def latest_run(self, fingerprint: str) -> str | None:
        """The newest run with this fingerprint (the same command run before), if any."""
        if not self.exists():
            return None
        rows = self.ch.query(
            f"SELECT run_id FROM {self.t('runs')} FINAL WHERE fingerprint = {{f:String}} "
            "AND status NOT IN ('withdrawn', 'abandoned') ORDER BY created_at DESC LIMIT 1",
            parameters={"f": fingerprint},
        )
        return str(rows[0][0]) if rows else None

    # -- chunks ------------------------------------------------------------------------------
    _CHUNK_COLS = [
        "run_id",
        "chunk_id",
        "source",
        "part",
        "lo",
        "hi",
        "est_rows",
        "attempt",
        "status",
        "rows_read",
        "worker",
        "error",
        "updated_at",
        "events",
    ]

    def write_chunks(self, run_id: str, states: Iterable[ChunkState]) -> None:
        rows = [
            [
                run_id,
                s.chunk_id,
                s.source,
                s.part,
                s.lo,
                s.hi,
                s.est_rows,
                s.attempt,
                s.status,
                s.rows_read,
                s.worker,
                s.error[:1000],
                s.updated_at,
                s.events,
            ]
            for s in states
        ]
        for i in range(0, len(rows), 50_000):
            self.ch.insert(self.t("chunks"), rows[i : i + 50_000], self._CHUNK_COLS, what="recording chunk state")

    def chunks(self, run_id: str) -> list[ChunkState]:
        rows = self.ch.query(
            f"SELECT chunk_id, source, part, lo, hi, est_rows, attempt, status, rows_read, worker, "
            f"error, updated_at, events FROM {self.t('chunks')} FINAL WHERE run_id = {{r:String}} "
            "ORDER BY chunk_id",
            parameters={"r": run_id},
        )
        return [
            ChunkState(
                int(r[0]),
                str(r[1]),
                str(r[2]),
                str(r[3]),
                str(r[4]),
                int(r[5]),
                int(r[6]),
                r[7],
                int(r[8]),
                str(r[9]),
                str(r[10]),
                r[11],
                int(r[12]),
            )
            for r in rows
        ]

    def chunk_totals(self) -> dict[str, tuple[int, int, int, int]]:
        """Per run: (chunks, chunks done, rows read, events staged)."""
        if not self.exists():
            return {}
        rows = self.ch.query(
            f"SELECT run_id, count(), countIf(status = 'done'), sumIf(rows_read, status = 'done'), "
            f"sumIf(events, status = 'done') FROM {self.t('chunks')} FINAL GROUP BY run_id",
            what="reading chunk totals",
        )
        return {str(r): (int(n), int(d), int(rr), int(e)) for r, n, d, rr, e in rows}

    def chunk_events(self, run_id: str, chunk_id: int, attempt: int) -> int:
        """Events one chunk attempt staged (read from its own parts, see `_CHUNK_INDEX`)."""
        rows = self.ch.query(
            f"SELECT count() FROM {self.t('staging')} WHERE run_id = {{r:String}} AND chunk_id = {{c:UInt32}} "
            "AND attempt = {a:UInt32} AND drop_reason = ''",
            parameters={"r": run_id, "c": chunk_id, "a": attempt},
            what="counting a chunk's events",
        )
        return int(rows[0][0])

    # -- heartbeats --------------------------------------------------------------------------
    def heartbeat(self, run_id: str, doc: dict[str, Any]) -> None:
        holder = f"{doc.get('host')}:{doc.get('pid')}:{doc.get('command')}"
        self.ch.insert(
            self.t("heartbeats"),
            [
                [
                    run_id,
                    holder,
                    str(doc.get("host", "")),
                    int(doc.get("pid", 0)),
                    str(doc.get("phase", "")),
                    now(),
                    json.dumps(doc),
                ]
            ],
            ["run_id", "holder", "host", "pid", "phase", "beat_at", "doc"],
            what="writing a heartbeat",
        )

    def heartbeats(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """The newest beat of each command per run: its document plus `age_s` on the server's clock."""
        if self.ch.engine(self.db, "heartbeats") is None:
            return []
        where = "WHERE run_id = {r:String}" if run_id else ""
        rows = self.ch.query(
            f"SELECT run_id, doc, dateDiff('millisecond', beat_at, now64(3)) / 1000 FROM {self.t('heartbeats')} "
            f"FINAL {where} ORDER BY beat_at",
            parameters={"r": run_id} if run_id else None,
            what="reading heartbeats",
        )
        out = []
        for rid, doc, age in rows:
            d = json.loads(doc)
            d["run_id"], d["age_s"] = str(rid), float(age)
            out.append(d)
        return out

    def done_attempts_sql(self, run_id: str) -> str:
        """SQL set of (chunk_id, attempt) whose staging is complete: the only staged rows that count."""
        return (
            f"(SELECT chunk_id, attempt FROM {self.t('chunks')} FINAL "
            f"WHERE run_id = {literal(run_id)} AND status = 'done')"
        )

    def staged_where(self, run_id: str) -> str:
        """The staged lines of a run that are events (not counted drops) of finished attempts."""
        return (
            f"run_id = {literal(run_id)} AND drop_reason = '' "
            f"AND (chunk_id, attempt) IN {self.done_attempts_sql(run_id)}"
        )

    # -- stats -------------------------------------------------------------------------------
    def summarize(self, rec: RunRecord) -> str:
        """Compute the stats of a run's finished staging once; returns the token naming them."""
        token = rec.summary.get("stats_token")
        if token:
            return str(token)
        token = secrets.token_hex(6)
        run = literal(rec.run_id)
        self.ch.command(
            f"INSERT INTO {self.t('stats')} SELECT {run}, {literal(token)}, source, toYYYYMM(createdAt) AS month, "
            "entityType, metricType, drop_reason, count(), sum(metricValue), sum(toInt128(abs(metricValue))), "
            "min(metricValue), max(metricValue), min(createdAt), max(createdAt), sum(drifted) "
            f"FROM {self.t('staging')} WHERE run_id = {run} AND (chunk_id, attempt) IN {self.done_attempts_sql(rec.run_id)} "
            "GROUP BY source, month, entityType, metricType, drop_reason",
            what="summarizing the staged events",
        )
        # The token is valid once the run record names it: a summary cut short is never read.
        self.set_status(rec, rec.status, stats_token=token)
        return token

    def stats(self, rec: RunRecord) -> list[tuple[Any, ...]]:
        """(source, entityType, metricType, drop_reason, events, value_sum) of a summarized run."""
        token = rec.summary.get("stats_token")
        if not token:
            return []
        return self.ch.query(
            f"SELECT source, entityType, metricType, drop_reason, sum(events), sum(value_sum) FROM {self.t('stats')} "
            "WHERE run_id = {r:String} AND token = {t:String} GROUP BY source, entityType, metricType, drop_reason "
            "ORDER BY source, entityType, metricType, drop_reason",
            parameters={"r": rec.run_id, "t": token},
        )

    def cells(self, rec: RunRecord) -> list[tuple[Any, ...]]:
        """(month, entityType, metricType, events, value_sum, abs_sum, min_value, max_value, min_ts, max_ts) of the
        publishable lines of a summarized run: what a publish is sized and range-checked by."""
        token = rec.summary.get("stats_token")
        if not token:
            raise ConfigError(f"run {rec.run_id} has no summary: finish staging it with the same `run` command")
        return self.ch.query(
            f"SELECT month, entityType, metricType, sum(events), sum(value_sum), sum(abs_sum), min(min_value), "
            f"max(max_value), min(min_ts), max(max_ts) FROM {self.t('stats')} "
            "WHERE run_id = {r:String} AND token = {t:String} AND drop_reason = '' "
            "GROUP BY month, entityType, metricType HAVING sum(events) > 0 ORDER BY month, entityType, metricType",
            parameters={"r": rec.run_id, "t": token},
            what="sizing the publish",
        )

    # -- lookups -----------------------------------------------------------------------------
    def lookup_insert_sql(self, run_id: str, chunk_id: int, attempt: int, name: str, rows_sql: str) -> str:
        """The statement that loads one lookup's (key, value) rows, streamed from PostgreSQL as
        `rows_sql`, under the chunk attempt that joins against them (rows without a value are
        not kept: the join's miss is what a missing key means)."""
        return (
            f"INSERT INTO {self.t('lookups')} (run_id, chunk_id, attempt, name, key, value)\n"
            f"SELECT {literal(run_id)}, {int(chunk_id)}, {int(attempt)}, {literal(name)}, key, assumeNotNull(value)\n"
            f"FROM {rows_sql} WHERE value IS NOT NULL"
        )

    def lookup_sql(self, run_id: str, chunk_id: int, attempt: int, name: str) -> str:
        # any(): a retried insert may have loaded the same keys twice, and a duplicate key would
        # duplicate joined rows (and events).
        return (
            f"SELECT key, any(value) AS value FROM {self.t('lookups')} WHERE run_id = {literal(run_id)} "
            f"AND chunk_id = {int(chunk_id)} AND attempt = {int(attempt)} AND name = {literal(name)} GROUP BY key"
        )
