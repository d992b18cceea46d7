"""Progress of a run, per source, from the durable state (works while other processes run it)."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from metric_backfill._errors import ConfigError
from metric_backfill.engine._state import StateStore

__all__ = ["run_status"]


def run_status(state: StateStore, run_id: str) -> dict[str, Any]:
    info = state.run(run_id)
    if info is None:
        raise ConfigError(f"unknown run {run_id!r}: `metric-backfill status` lists the runs")
    chunks = state.chunks(run_id)
    events_by_source: dict[str, int] = defaultdict(int)
    for source, _et, _mt, reason, n, _vs in state.stats(info):
        if not reason:
            events_by_source[str(source)] += int(n)
    per: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "total": 0,
            "done": 0,
            "running": 0,
            "failed": 0,
            "rows_read": 0,
            "events": 0,
            "est_left": 0,
            "first": None,
            "last": None,
        }
    )
    for c in chunks:
        d = per[c.source]
        d["total"] += 1
        if c.status == "done":
            d["done"] += 1
            d["rows_read"] += c.rows_read
            d["first"] = c.updated_at if d["first"] is None else min(d["first"], c.updated_at)
            d["last"] = c.updated_at if d["last"] is None else max(d["last"], c.updated_at)
        else:
            d["est_left"] += c.est_rows
            if c.status == "failed":
                d["failed"] += 1
    sources = []
    for name, d in per.items():
        rate = 0.0
        if d["first"] is not None and d["last"] is not None and d["done"] > 1:
            secs = (d["last"] - d["first"]).total_seconds()
            if secs > 0:
                # The first finished chunk's own duration is unknown; scale by (done-1)/done.
                rate = d["rows_read"] * (d["done"] - 1) / d["done"] / secs
        eta = str(timedelta(seconds=int(d["est_left"] / rate))) if rate and d["est_left"] else None
        sources.append(
            {
                "source": name,
                "total": d["total"],
                "done": d["done"],
                "running": d["running"],
                "failed": d["failed"],
                "rows_read": d["rows_read"],
                "events": events_by_source.get(name, 0),
                "rate": rate,
                "eta": eta if d["done"] < d["total"] else None,
            }
        )
    return {
        "run_id": run_id,
        "status": info.status,
        "created_at": info.created_at,
        "manifest": info.manifest,
        "sources": sources,
    }


def status(clickhouse_url: str, state_database: str, run_id: str | None = None) -> dict[str, Any]:
    """What `metric-backfill status` shows: {"runs": [...]} or one run's progress per source."""
    from metric_backfill.backends._clickhouse import ClickHouse

    with ClickHouse(clickhouse_url) as ch:
        state = StateStore(ch, state_database)
        if run_id:
            return run_status(state, run_id)
        return {
            "runs": [
                {"run_id": r.run_id, "status": r.status, "created_at": r.created_at, "updated_at": r.updated_at}
                for r in state.runs()
            ]
        }
