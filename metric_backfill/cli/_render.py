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

__all__ = ["ConsoleReporter", "pairs_table"]


class ConsoleReporter:
    """Reporter for the CLI: a bar per source on a terminal, plain lines otherwise."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._rows: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._slices: dict[str, int] = {}
        self._published = 0

    def message(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)

    def planned(self, plan: Plan, todo: list[Chunk]) -> None:
        if self.quiet:
            return
        per_source: dict[str, int] = defaultdict(int)
        for c in todo:
            per_source[c.source] += 1
        self.console.print(
            f"planned {len(plan.chunks)} chunks over {len(plan.sources)} sources; "
            f"{len(todo)} to stage (snapshot {plan.snapshot_id})"
        )
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description:<26}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rows]:>12,} rows"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            for name, n in per_source.items():
                self._tasks[name] = self._progress.add_task(name, total=n, rows=0)
            self._progress.start()

    def chunk_done(self, chunk: Chunk, rows_read: int) -> None:
        with self._lock:
            self._rows[chunk.source] += rows_read
            if self._progress is not None and chunk.source in self._tasks:
                self._progress.update(self._tasks[chunk.source], advance=1, rows=self._rows[chunk.source])

    def retrying(self, chunk: Chunk, attempt: int, error: BaseException) -> None:
        self.console.print(f"[yellow]retrying {chunk.source} chunk {chunk.chunk_id} after attempt {attempt}: {error}")

    def publishing(self, slices: int) -> None:
        pass

    def slice_done(self, sl: Slice, rows: int, note: str) -> None:
        with self._lock:
            self._slices[note] = self._slices.get(note, 0) + 1
            self._published += rows

    def finished(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._slices and not self.quiet:
            parts = ", ".join(f"{n} {note}" for note, n in sorted(self._slices.items()))
            self.console.print(f"publish: {parts} slices; {self._published:,} rows inserted")
            self._slices.clear()


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
