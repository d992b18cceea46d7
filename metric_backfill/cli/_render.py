"""Terminal presentation: progress bars per source and summary tables (rich). CLI layer only."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.markup import escape
from rich.table import Table

from metric_backfill.engine._plan import Chunk, Plan
from metric_backfill.engine._publish import Slice

__all__ = ["ConsoleReporter", "findings_table", "pairs_table", "prune_table", "run_table", "runs_table"]


class ConsoleReporter:
    """Progress bars for a person at a terminal: the whole run (by estimated rows, with an ETA), one
    bar per source, and the publish by slices. Everything said in words goes to the log."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._rows: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._overall: TaskID | None = None
        self._publish: TaskID | None = None

    def _start(self) -> Progress:
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description:<26}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[what]:>18}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
        return self._progress

    def planned(self, plan: Plan, todo: list[Chunk]) -> None:
        if not todo:
            return
        per_source: dict[str, int] = defaultdict(int)
        for c in todo:
            per_source[c.source] += 1
        p = self._start()
        # By estimated rows, so that the ETA weighs a big chunk more than a small one.
        self._overall = p.add_task("[bold]all sources", total=sum(max(1, c.est_rows) for c in todo), what="")
        for name, n in per_source.items():
            self._tasks[name] = p.add_task(name, total=n, what="0 rows")

    def chunk_done(self, chunk: Chunk, rows_read: int) -> None:
        with self._lock:
            self._rows[chunk.source] += rows_read
            if self._progress is None:
                return
            if chunk.source in self._tasks:
                self._progress.update(self._tasks[chunk.source], advance=1, what=f"{self._rows[chunk.source]:,} rows")
            if self._overall is not None:
                self._progress.update(self._overall, advance=max(1, chunk.est_rows))

    def publishing(self, slices: int) -> None:
        with self._lock:
            if slices:
                self._publish = self._start().add_task("[bold]publish (slices)", total=slices, what="0 rows")
                self._published = 0

    def slice_done(self, sl: Slice, rows: int, note: str) -> None:
        with self._lock:
            if self._progress is not None and self._publish is not None:
                self._published += rows
                self._progress.update(self._publish, advance=1, what=f"{self._published:,} rows")

    def finished(self) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.stop()
                self._progress = None


def pairs_table(title: str, pairs: dict[str, dict[str, int]]) -> Table:
    reasons = sorted({k for d in pairs.values() for k in d if k.startswith("dropped_")})
    if any("netted_keys" in d for d in pairs.values()):
        reasons.append("netted_keys")
    t = Table(title=title)
    t.add_column("pair")
    t.add_column("events", justify="right")
    t.add_column("value sum", justify="right")
    for r in reasons:
        t.add_column(r.removeprefix("dropped_").replace("_", " "), justify="right")
    for pair, d in pairs.items():
        t.add_row(
            escape(pair),
            f"{d.get('events', 0):,}",
            f"{d.get('value_sum', 0):,}",
            *[f"{d.get(r, 0):,}" for r in reasons],
        )
    tot: dict[str, Any] = defaultdict(int)
    for d in pairs.values():
        for k, v in d.items():
            tot[k] += v
    t.add_section()
    t.add_row("total", f"{tot['events']:,}", f"{tot['value_sum']:,}", *[f"{tot[r]:,}" for r in reasons])
    return t


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


_STATUS_STYLE = {"interrupted": "yellow", "failed": "red", "published": "green"}


def runs_table(runs: list[dict[str, Any]], *, live: str | None = None) -> Table:
    t = Table(title="runs" + (" (from the running process's progress file)" if live else ""))
    for col in ("run", "status", "target", "cutoff", "pairs", "chunks", "events", "started", "duration"):
        t.add_column(col, justify="right" if col in ("pairs", "chunks", "events", "duration") else "left")
    for r in runs:
        status = str(r.get("status") or "-") + (" (running)" if r.get("running") and not live else "")
        started = str(r.get("created_at") or r.get("started_at") or "")[:19]
        t.add_row(
            escape(str(r.get("run_id") or "-")),
            status,
            escape(str(r.get("target") or "-")),
            str(r.get("cutoff") or "-")[:23],
            str(r.get("pairs", "-")),
            f"{r.get('chunks_done', 0)}/{r.get('chunks', 0)}" if "chunks" in r else "-",
            f"{r.get('events', 0):,}" if "events" in r else "-",
            started or "-",
            _duration(r.get("duration_s")),
            style=_STATUS_STYLE.get(str(r.get("status"))),
        )
    return t


def run_table(st: dict[str, Any]) -> Table:
    phase = st.get("phase")
    title = f"run {st['run_id']}: {st['status']}"
    if st.get("running") and phase and phase != st["status"]:
        title += f" ({phase})"
    if st.get("live"):
        title += f" — process {st.get('pid')}, progress file updated {st.get('updated_at')}"
    pub = st.get("publish") or {}
    if pub.get("slices"):
        title += f"; publish {pub['done']}/{pub['slices']} slices, {pub['rows']:,} rows"
    if st["status"] == "interrupted":
        title += " — nothing works on it: run the same command again to resume"
    t = Table(title=title)
    for col in ("source", "chunks done/total", "running", "failed", "rows read", "events", "rate rows/s", "ETA"):
        t.add_column(col, justify="right" if col != "source" else "left")
    for src in st["sources"]:
        t.add_row(
            src["source"],
            f"{src['done']}/{src['total']}",
            str(src["running"]),
            str(src["failed"]),
            f"{src['rows_read']:,}",
            f"{src['events']:,}",
            f"{src['rate']:,.0f}" if src["rate"] else "-",
            src["eta"] or "-",
        )
    return t


_LEVEL = {"ok": "[green]ok", "warning": "[yellow]warning", "problem": "[red]PROBLEM", "info": "[dim]info"}


def findings_table(findings: list[Any]) -> Table:
    t = Table(title="check")
    for col in ("area", "item", "", "detail"):
        t.add_column(col)
    area = None
    for f in findings:
        if area is not None and f.area != area:
            t.add_section()
        t.add_row(escape(f.area) if f.area != area else "", escape(f.item), _LEVEL[f.level], escape(f.detail))
        area = f.area
    return t


def prune_table(items: list[Any]) -> Table:
    t = Table(title="prune")
    for col in ("what", "name", "staged rows", "action", "why"):
        t.add_column(col, justify="right" if col == "staged rows" else "left")
    for i in items:
        t.add_row(
            i.kind,
            escape(i.name),
            f"{i.rows:,}" if i.kind == "staging" else "",
            "[red]remove" if i.action == "remove" else "keep",
            escape(i.reason),
        )
    return t
