"""Netting against the live pipeline (`--net-against-live`, README "Net against live").

A plain replay writes the events of today's rows before the cutoff. Where the live pipeline has
already written events for a key since the cutoff — a −1 for a row deleted after the cutoff (T12),
−old/+new for a handled update (T13) — that replay and the live events do not add up to today's
rows. For every key `(entityType, entityId, metricType, userId)` *touched* since the cutoff — by a
live event with a negative value in the target (at or after the pair's cutoff, not written by this
tool), or by a drifted source row (a handled update after the cutoff) — the run writes, besides the
plain replay of its rows before the cutoff, one adjustment dated a millisecond before the cutoff:

    R_after(key) − L(key)

where R_after sums today's rows of the key at or after the cutoff (read up to the snapshot: the
PostgreSQL sources are read past the cutoff, those lines staged as counted `ts_after_cutoff`
drops) and L sums the target's live events of the key from the cutoff up to the snapshot's time.
Backfill then totals R(key) − L(key), and with the live events already there, R(key): today's rows.
Every other key gets the plain replay. The adjustments are staged as one more chunk of the run
(source `net`) and published like every other line: fenced, exactly once, pre-aggregated on a
replacing target, earnedAmount routed to its own table.

Valid only where the live pipeline's coverage since the cutoff is complete (its history is not,
T20), and only for keys it touched: what the live pipeline never saw (ignored updates, T14) is not
fixed by this.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from metric_backfill.catalog import Pair, routes_to_earnings_table
from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill._config import format_ts
from metric_backfill.engine._plan import NET_SOURCE
from metric_backfill.backends._sql import literal, pairs_sql, ts_literal
from metric_backfill.engine._state import STAGING_COLUMNS, ChunkState, RunRecord, StateStore, now, worker_name
from metric_backfill.engine._target import Target

__all__ = ["NET_SOURCE", "netting_sql", "stage_netting"]


def _pair_cutoffs(rec: RunRecord) -> list[tuple[Pair, datetime]]:
    from metric_backfill._config import parse_cutoff

    return [(Pair(*p), parse_cutoff(src["cutoff"])) for src in rec.manifest.get("sources", []) for p in src["pairs"]]


def netting_sql(
    state: StateStore, rec: RunRecord, main: Target, earnings: Target, until: datetime, backfill_version: int
) -> str:
    """WITH … the CTEs `touched` (netted keys) and `net` (key, adjustment, createdAt) of a run."""
    cutoffs = _pair_cutoffs(rec)
    values = ", ".join(
        f"({literal(p.entity_type)}, {literal(p.metric_type)}, {literal(format_ts(c))})" for p, c in cutoffs
    )
    pc = f"SELECT * FROM values('entityType String, metricType String, cutoff DateTime64(3, ''UTC'')', {values})"
    staged = (
        f"SELECT entityType, entityId, userId, metricType, metricValue, drop_reason, drifted "
        f"FROM {state.t('staging')} WHERE run_id = {literal(rec.run_id)} AND source != {literal(NET_SOURCE)} "
        f"AND drop_reason IN ('', 'ts_after_cutoff') AND (chunk_id, attempt) IN {state.done_attempts_sql(rec.run_id)}"
    )
    lives = []
    for target, mine in (
        (main, [p for p, _ in cutoffs if not routes_to_earnings_table(p)]),
        (earnings, [p for p, _ in cutoffs if routes_to_earnings_table(p)]),
    ):
        if not mine:
            continue
        # This tool never writes at or after a cutoff except reconcile corrections (userId −2); on
        # a versioned target its rows also carry the backfill version.
        own = f" AND e.version != {int(backfill_version)}" if target.has_version else ""
        lives.append(
            f"SELECT e.entityType AS entityType, e.entityId AS entityId, e.userId AS userId, "
            f"e.metricType AS metricType, toInt64(e.metricValue) AS v FROM {target.name} AS e "
            f"INNER JOIN pc ON pc.entityType = e.entityType AND pc.metricType = e.metricType "
            f"WHERE (e.entityType, e.metricType) IN ({pairs_sql(mine)}) AND e.createdAt >= pc.cutoff "
            f"AND e.createdAt < {ts_literal(until)} AND e.userId != -2{own}"
        )
    keys = "entityType, entityId, userId, metricType"
    return f"""WITH
pc AS ({pc}),
s AS ({staged}),
live AS (SELECT {keys}, sum(v) AS L, min(v) < 0 AS neg FROM ({
        " UNION ALL ".join(lives)
        or "SELECT " + "'' AS entityType, 0 AS entityId, 0 AS userId, '' AS metricType, toInt64(0) AS v WHERE 0"
    })
         GROUP BY {keys}),
touched AS (SELECT DISTINCT {keys} FROM s WHERE drifted = 1 UNION DISTINCT SELECT {keys} FROM live WHERE neg),
after AS (SELECT {keys}, sum(metricValue) AS R FROM s WHERE drop_reason = 'ts_after_cutoff' GROUP BY {keys}),
net AS (SELECT t.entityType AS entityType, t.entityId AS entityId, t.userId AS userId, t.metricType AS metricType,
               toInt64(a.R) - toInt64(l.L) AS v, pc.cutoff - toIntervalMillisecond(1) AS createdAt
        FROM touched AS t
        LEFT JOIN after AS a ON a.entityType = t.entityType AND a.entityId = t.entityId AND a.userId = t.userId
                             AND a.metricType = t.metricType
        LEFT JOIN live AS l ON l.entityType = t.entityType AND l.entityId = t.entityId AND l.userId = t.userId
                            AND l.metricType = t.metricType
        INNER JOIN pc ON pc.entityType = t.entityType AND pc.metricType = t.metricType)
"""


def stage_netting(
    ch: ClickHouse,
    state: StateStore,
    rec: RunRecord,
    *,
    chunk_id: int,
    main: Target,
    earnings: Target,
    until: datetime,
    backfill_version: int,
) -> dict[str, Any]:
    """Stage the run's adjustments as chunk `chunk_id` (done when it returns); returns what the manifest
    records: the instant L was read up to and the netted keys per pair."""
    attempt = secrets.randbits(31) or 1
    with_sql = netting_sql(state, rec, main, earnings, until, backfill_version)
    settings = {"join_use_nulls": 0}
    counts = ch.query(
        f"{with_sql}SELECT entityType, metricType, count() FROM touched GROUP BY entityType, metricType",
        settings=settings,
        what="finding the keys to net against the live events",
    )
    ch.command(
        f"INSERT INTO {state.t('staging')} ({', '.join(STAGING_COLUMNS)})\n{with_sql}"
        f"SELECT {literal(rec.run_id)}, {literal(NET_SOURCE)}, {int(chunk_id)}, {attempt}, entityType, entityId, "
        "userId, metricType, v, createdAt, '', 0 FROM net WHERE v != 0",
        settings=settings,
        what="staging the adjustments against the live events",
    )
    state.write_chunks(
        rec.run_id, [ChunkState(chunk_id, NET_SOURCE, "", "", "", 0, attempt, "done", 0, worker_name(), "", now())]
    )
    return {"until": format_ts(until), "keys": {str(Pair(str(et), str(mt))): int(n) for et, mt, n in counts}}
