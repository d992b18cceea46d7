"""What `status` shows: the runs, or one run's progress per source — read from the durable state,
from the heartbeats of the commands working on it, or, while another process holds an embedded
engine, from the progress file that process keeps beside it.

A run the state calls in progress (planned, staging, publishing) that no live command works on is
*interrupted*: run the same command again to resume it.
"""

from __future__ import annotations

import os
import socket
from collections import defaultdict
from datetime import timedelta
from typing import Any

from metric_backfill._errors import ConfigError, TargetError
from metric_backfill.backends._clickhouse import Capabilities, ClickHouse, embedded_path, engine_holder
from metric_backfill.engine._progress import HEARTBEAT_STALE_S, read_progress_file
from metric_backfill.engine._state import RunRecord, StateStore

__all__ = ["IN_PROGRESS", "run_status", "status"]

IN_PROGRESS = ("planned", "staging", "publishing")
_ENDED = ("finished", "failed", "interrupted")


def _eta(seconds: float | None) -> str | None:
    return str(timedelta(seconds=int(seconds))) if seconds else None


def _alive(beat: dict[str, Any]) -> bool:
    if beat.get("phase") in _ENDED or float(beat.get("age_s", 1e9)) > HEARTBEAT_STALE_S:
        return False
    if beat.get("host") == socket.gethostname():
        try:
            os.kill(int(beat.get("pid", 0)), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, ValueError):
            pass
    return True


def _pairs(rec: RunRecord) -> int:
    return sum(len(src.get("pairs", [])) for src in rec.manifest.get("sources", []))


def _runs(state: StateStore, *, nobody_else: bool) -> list[dict[str, Any]]:
    chunk_totals = state.chunk_totals()
    live = defaultdict(list)
    for beat in state.heartbeats():
        if _alive(beat):
            live[beat["run_id"]].append(beat)
    out = []
    for r in state.runs():
        running = bool(live.get(r.run_id)) and not nobody_else
        shown = r.status if r.status not in IN_PROGRESS or running else "interrupted"
        chunks, done, rows, events = chunk_totals.get(r.run_id, (0, 0, 0, 0))
        out.append(
            {
                "run_id": r.run_id,
                "status": shown,
                "recorded_status": r.status,
                "running": running,
                "target": r.manifest.get("targets", {}).get("main"),
                "cutoff": r.config.get("cutoff"),
                "pairs": _pairs(r),
                "chunks": chunks,
                "chunks_done": done,
                "rows_read": rows,
                "events": int(r.summary.get("published_rows", 0)) if r.status == "published" else events,
                "created_at": r.created_at,
                "updated_at": r.updated_at,
                "duration_s": round((r.updated_at - r.created_at).total_seconds(), 1) if r.updated_at else None,
            }
        )
    return out


def run_status(state: StateStore, run_id: str, *, nobody_else: bool = False) -> dict[str, Any]:
    info = state.run(run_id)
    if info is None:
        raise ConfigError(f"unknown run {run_id!r}: `metric-backfill status` lists the runs")
    beats = [b for b in state.heartbeats(run_id) if _alive(b)] if not nobody_else else []
    running = bool(beats)
    chunks = state.chunks(run_id)
    per: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"total": 0, "done": 0, "failed": 0, "rows_read": 0, "events": 0, "est_left": 0}
    )
    first = last = None
    rows_done = 0
    for c in chunks:
        d = per[c.source]
        d["total"] += 1
        if c.status == "done":
            d["done"] += 1
            d["rows_read"] += c.rows_read
            d["events"] += c.events
            rows_done += c.rows_read
            first = c.updated_at if first is None else min(first, c.updated_at)
            last = c.updated_at if last is None else max(last, c.updated_at)
        else:
            d["est_left"] += c.est_rows
            if c.status == "failed":
                d["failed"] += 1
    rate = 0.0
    if running and first is not None and last is not None and last > first:
        rate = rows_done / (last - first).total_seconds()
    live_sources = beats[-1].get("sources", {}) if beats else {}
    sources = [
        {
            "source": name,
            "total": d["total"],
            "done": d["done"],
            "running": int(live_sources.get(name, {}).get("running", 0)),
            "failed": d["failed"],
            "rows_read": d["rows_read"],
            "events": d["events"],
            "rate": rate if d["done"] < d["total"] else 0.0,
            "eta": _eta(d["est_left"] / rate) if rate and d["est_left"] else None,
        }
        for name, d in per.items()
    ]
    shown = info.status if info.status not in IN_PROGRESS or running else "interrupted"
    return {
        "run_id": run_id,
        "status": shown,
        "recorded_status": info.status,
        "running": running,
        "phase": beats[-1].get("phase") if beats else None,
        "publish": beats[-1].get("publish") if beats else None,
        "created_at": info.created_at,
        "target": info.manifest.get("targets", {}).get("main"),
        "cutoff": info.config.get("cutoff"),
        "manifest": info.manifest,
        "sources": sources,
    }


def _from_progress_file(doc: dict[str, Any], run_id: str | None) -> dict[str, Any]:
    """One run's progress as the process holding the embedded engine publishes it."""
    if run_id and doc.get("run_id") != run_id:
        raise TargetError(
            f"the embedded engine is in use by process {doc.get('pid')}, which runs {doc.get('run_id') or 'no run yet'}, "
            f"not {run_id}: run `status` again when it has finished to see {run_id}"
        )
    sources = [
        {
            "source": name,
            "total": d["total"],
            "done": d["done"],
            "running": d.get("running", 0),
            "failed": 0,
            "rows_read": d["rows"],
            "events": d["events"],
            "rate": doc.get("rate_rows_s", 0.0) if d["done"] < d["total"] else 0.0,
            "eta": _eta(d.get("eta_s")),
        }
        for name, d in doc.get("sources", {}).items()
    ]
    return {
        "run_id": doc.get("run_id"),
        "status": doc.get("phase"),
        "running": True,
        "live": "progress file",
        "pid": doc.get("pid"),
        "updated_at": doc.get("updated_at"),
        "phase": doc.get("phase"),
        "publish": doc.get("publish"),
        "target": doc.get("target"),
        "cutoff": doc.get("cutoff"),
        "eta": _eta(doc.get("eta_s")),
        "sources": sources,
    }


def status(clickhouse_url: str, state_database: str, run_id: str | None = None) -> dict[str, Any]:
    """What `metric-backfill status` shows: {"runs": [...]} or one run's progress per source.

    Never waits for an embedded engine another process holds: reads that process's progress file."""
    if Capabilities.of(clickhouse_url).embedded:
        path = embedded_path(clickhouse_url)
        holder = engine_holder(path)
        if holder is not None and holder != str(os.getpid()):
            doc = read_progress_file(path)
            if doc is None or str(doc.get("pid")) != holder:
                raise TargetError(
                    f"the embedded ClickHouse at {path} is in use by process {holder}, which publishes no "
                    "progress (not a metric-backfill command, or one that is only starting): try again in a "
                    "moment, or when it has finished"
                )
            one = _from_progress_file(doc, run_id)
            return one if run_id else {"runs": [one], "live": "progress file"}
    with ClickHouse(clickhouse_url) as ch:
        state = StateStore(ch, state_database)
        # An embedded engine this process could open is one no other command is working on.
        nobody_else = ch.embedded
        if run_id:
            return run_status(state, run_id, nobody_else=nobody_else)
        return {"runs": _runs(state, nobody_else=nobody_else)}
