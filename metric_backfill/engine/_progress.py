"""What a running command is doing, for the people watching it.

Every engine event goes three ways through a `Tracker`:

- a log record (logger `metric_backfill`): one line per phase, per chunk and per publish slice,
  with the numbers as record attributes (`--log-format json` shows them as fields);
- the progress document, which a `Beacon` publishes for `status` in another process — as a
  heartbeat row in the state database, and beside an embedded engine also as a file (an embedded
  engine belongs to the running process, so `status` cannot open it meanwhile);
- the presentation `Reporter` (progress bars on a terminal), which sees only what it draws.

A run whose state says it is in progress but whose heartbeat is stale, or whose process is gone,
is *interrupted*: `status` says so instead of showing an ETA for work nobody does.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from metric_backfill._errors import Cancelled
from metric_backfill.backends._clickhouse import ClickHouse, embedded_path
from metric_backfill.engine._plan import Chunk, Plan

if TYPE_CHECKING:
    from metric_backfill.engine._publish import Slice
    from metric_backfill.engine._state import StateStore

__all__ = [
    "HEARTBEAT_STALE_S",
    "PROGRESS_FILE",
    "Beacon",
    "Reporter",
    "SilentReporter",
    "Tracker",
    "log",
    "read_progress_file",
]

log = logging.getLogger("metric_backfill")
log.addHandler(logging.NullHandler())  # a library: the application decides where records go

PROGRESS_FILE = "metric-backfill-progress.json"
FILE_EVERY_S = 1.0
HEARTBEAT_EVERY_S = 10.0
HEARTBEAT_STALE_S = 45.0
"""A heartbeat older than this (three missed beats and some) means nobody runs the run."""


class Reporter(Protocol):
    """Presentation of a command's progress (bars on a terminal); the log carries the narrative."""

    def planned(self, plan: Plan, todo: list[Chunk]) -> None: ...
    def chunk_done(self, chunk: Chunk, rows_read: int) -> None: ...
    def publishing(self, slices: int) -> None: ...
    def slice_done(self, sl: Slice, rows: int, note: str) -> None: ...
    def finished(self) -> None: ...


class SilentReporter:
    def planned(self, plan: Plan, todo: list[Chunk]) -> None:
        pass

    def chunk_done(self, chunk: Chunk, rows_read: int) -> None:
        pass

    def publishing(self, slices: int) -> None:
        pass

    def slice_done(self, sl: Slice, rows: int, note: str) -> None:
        pass

    def finished(self) -> None:
        pass


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Tracker:
    """The engine's one reporting channel (see the module docstring). Thread-safe."""

    def __init__(self, inner: Reporter | None = None, *, command: str = "run") -> None:
        self.inner: Reporter = inner or SilentReporter()
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._phase_t0 = self._t0
        self._stage_t0 = self._t0
        self._stage_rows = 0
        self.recorded = False
        """True once the run exists in the state database (heartbeats may be written from then on)."""
        self.changed = threading.Event()
        """Set on every event: a `Beacon` publishes soon after, not only on its interval."""
        self.doc: dict[str, Any] = {
            "command": command,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": _utc_now(),
            "run_id": None,
            "target": None,
            "cutoff": None,
            "phase": "starting",
            "sources": {},
            "publish": {"slices": 0, "done": 0, "rows": 0},
        }

    # -- identity and phases -----------------------------------------------------------------
    def set_run(self, run_id: str, *, target: str | None = None, cutoff: str | None = None) -> None:
        with self._lock:
            self.doc.update(run_id=run_id, target=target, cutoff=cutoff)
        self.changed.set()

    def phase(self, name: str, text: str | None = None, **fields: Any) -> None:
        with self._lock:
            self.doc["phase"] = name
            self._phase_t0 = time.monotonic()
        self.changed.set()
        if text:
            log.info(text, extra={"event": name, "run_id": self.doc["run_id"], **fields})

    def info(self, text: str, **fields: Any) -> None:
        log.info(text, extra={"event": "note", "run_id": self.doc["run_id"], **fields})

    def warning(self, text: str, **fields: Any) -> None:
        log.warning(text, extra={"event": "warning", "run_id": self.doc["run_id"], **fields})

    # -- staging -----------------------------------------------------------------------------
    def planned(self, plan: Plan, todo: list[Chunk], *, snapshot: str = "") -> None:
        per: dict[str, dict[str, Any]] = {}
        for c in plan.chunks:
            d = per.setdefault(
                c.source, {"total": 0, "done": 0, "rows": 0, "events": 0, "est_rows": 0, "est_left": 0, "running": 0}
            )
            d["total"] += 1
            d["est_rows"] += c.est_rows
        todo_ids = {c.chunk_id for c in todo}
        for c in plan.chunks:
            if c.chunk_id not in todo_ids:
                per[c.source]["done"] += 1
            else:
                per[c.source]["est_left"] += c.est_rows
        with self._lock:
            self.doc["sources"] = per
            self.doc["phase"] = "staging"
            self.doc["staging_started"] = _utc_now()
            self._stage_t0 = time.monotonic()
            self._stage_rows = 0
        self.changed.set()
        log.info(
            f"planned {len(plan.chunks)} chunks over {len(plan.sources)} sources; {len(todo)} to stage"
            + (f" (snapshot {snapshot})" if snapshot else ""),
            extra={
                "event": "planned",
                "run_id": self.doc["run_id"],
                "chunks": len(plan.chunks),
                "sources": len(plan.sources),
                "todo": len(todo),
                "snapshot": snapshot,
            },
        )
        self.inner.planned(plan, todo)

    def chunk_started(self, chunk: Chunk) -> None:
        with self._lock:
            d = self.doc["sources"].get(chunk.source)
            if d is not None:
                d["running"] += 1

    def chunk_done(self, chunk: Chunk, rows_read: int, events: int | None = None, seconds: float = 0.0) -> None:
        with self._lock:
            d = self.doc["sources"].get(chunk.source)
            if d is not None:
                d["done"] += 1
                d["running"] = max(0, d["running"] - 1)
                d["rows"] += rows_read
                d["events"] += events or 0
                d["est_left"] = max(0, d["est_left"] - chunk.est_rows)
                k, n = d["done"], d["total"]
            else:
                k = n = 0
            self._stage_rows += rows_read
        self.changed.set()
        log.info(
            f"staged {chunk.source} chunk {chunk.chunk_id}{chunk.part and ' (' + chunk.part + ')'} ({k}/{n}): "
            f"{rows_read:,} rows read"
            + (f", {events:,} events" if events is not None else "")
            + f" in {seconds:.1f} s",
            extra={
                "event": "chunk_staged",
                "run_id": self.doc["run_id"],
                "source": chunk.source,
                "chunk": chunk.chunk_id,
                "rows": rows_read,
                "events": events,
                "seconds": round(seconds, 3),
                "progress": True,
            },
        )
        self.inner.chunk_done(chunk, rows_read)

    def chunk_failed(self, chunk: Chunk) -> None:
        with self._lock:
            d = self.doc["sources"].get(chunk.source)
            if d is not None:
                d["running"] = max(0, d["running"] - 1)

    def retrying(self, chunk: Chunk, attempt: int, of: int, wait: float, error: BaseException) -> None:
        log.warning(
            f"{chunk.source} chunk {chunk.chunk_id}: attempt {attempt} of {of} failed, retrying in {wait:.0f} s: {error}",
            extra={
                "event": "retry",
                "run_id": self.doc["run_id"],
                "source": chunk.source,
                "chunk": chunk.chunk_id,
                "attempt": attempt,
                "of": of,
            },
        )

    # -- publishing --------------------------------------------------------------------------
    def publishing(self, slices: int, target: str = "") -> None:
        with self._lock:
            self.doc["phase"] = "publishing"
            self.doc["publish"] = {"slices": slices, "done": 0, "rows": 0}
        self.changed.set()
        log.info(
            f"publishing {slices} slices" + (f" into {target}" if target else ""),
            extra={"event": "publishing", "run_id": self.doc["run_id"], "slices": slices},
        )
        self.inner.publishing(slices)

    def slice_done(self, sl: Slice, rows: int, note: str, seconds: float = 0.0) -> None:
        with self._lock:
            p = self.doc["publish"]
            p["done"] += 1
            p["rows"] += rows
            k, n = p["done"], p["slices"]
        self.changed.set()
        log.info(
            f"{note} slice {sl.key} ({k}/{n}): {rows:,} rows" + (f" in {seconds:.1f} s" if seconds else ""),
            extra={
                "event": "slice",
                "run_id": self.doc["run_id"],
                "slice": sl.key,
                "note": note,
                "rows": rows,
                "seconds": round(seconds, 3),
                "progress": True,
            },
        )
        self.inner.slice_done(sl, rows, note)

    def finished(self) -> None:
        self.inner.finished()

    # -- the document ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            doc: dict[str, Any] = json.loads(json.dumps(self.doc, default=str))
            elapsed = time.monotonic() - self._stage_t0
            rows = self._stage_rows
        doc["updated_at"] = _utc_now()
        doc["elapsed_s"] = round(time.monotonic() - self._t0, 1)
        rate = rows / elapsed if rows and elapsed > 0 else 0.0
        for d in doc["sources"].values():
            d["eta_s"] = round(d["est_left"] / rate) if rate and d["est_left"] and doc["phase"] == "staging" else None
        doc["rate_rows_s"] = round(rate)
        left = sum(d["est_left"] for d in doc["sources"].values())
        doc["eta_s"] = round(left / rate) if rate and left and doc["phase"] == "staging" else None
        return doc


class Beacon:
    """`with Beacon(ch, state, tracker):` — publishes the tracker's document while the block runs.

    Beside an embedded engine the document is a file, rewritten every second (atomically) and
    removed at the end; in the state database it is a heartbeat row every ten seconds, written only
    once the run exists there (a refused command leaves nothing behind). The last heartbeat says how
    the command ended."""

    def __init__(self, ch: ClickHouse, state: StateStore, tracker: Tracker) -> None:
        self.ch, self.state, self.tracker = ch, state, tracker
        self.file = (
            Path(embedded_path(ch.dsn)) / PROGRESS_FILE
            if ch.embedded and os.path.isdir(embedded_path(ch.dsn))
            else None
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_beat = 0.0

    def __enter__(self) -> Beacon:
        self.beat()  # at once: `status` may be asked before the first interval is over
        self._thread = threading.Thread(target=self._loop, name="progress-beacon", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        every = FILE_EVERY_S if self.file else HEARTBEAT_EVERY_S
        while not self._stop.is_set():
            self.tracker.changed.wait(every)
            self.tracker.changed.clear()
            if self._stop.is_set():
                break
            self.beat()
            self._stop.wait(0.25)  # at most four writes a second, however fast chunks finish

    def beat(self, outcome: str | None = None) -> None:
        doc = self.tracker.snapshot()
        if outcome:
            doc["phase"] = outcome
        if self.file is not None:
            with suppress(OSError):  # progress is a courtesy: never fail the run over it
                tmp = self.file.with_name(self.file.name + f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
                os.replace(tmp, self.file)
        now = time.monotonic()
        if self.tracker.recorded and doc.get("run_id") and (outcome or now - self._last_beat >= HEARTBEAT_EVERY_S):
            self._last_beat = now
            with suppress(Exception):
                self.state.heartbeat(str(doc["run_id"]), doc)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self.tracker.changed.set()
        if self._thread is not None:
            self._thread.join()
        if exc_type is None:
            outcome = "finished"
        elif issubclass(exc_type, (KeyboardInterrupt, Cancelled)):
            outcome = "interrupted"
        else:
            outcome = "failed"
        self.file = None  # the engine is free again: `status` reads the state database from now on
        self.beat(outcome)
        path = Path(embedded_path(self.ch.dsn)) / PROGRESS_FILE if self.ch.embedded else None
        if path is not None:
            with suppress(OSError):
                path.unlink()


def read_progress_file(engine_dir: str) -> dict[str, Any] | None:
    """The progress document a command running on the embedded engine at `engine_dir` publishes."""
    try:
        doc = json.loads((Path(engine_dir) / PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
