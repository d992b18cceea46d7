"""Where the `metric_backfill` log records go, as the command line asks (`-v/-q`, `--log-format`,
`--log-file`). CLI layer only: the library only emits records.

- Off a terminal (nohup, CI, a pipe): one timestamped line per record on stderr — phases, every
  chunk and every publish slice — or one JSON object per line with `--log-format json`.
- On a terminal: progress bars stand for the per-chunk and per-slice records, so those are left
  out (`-v` shows them); the other records print above the bars.
- `--log-file FILE`: every record, timestamped (JSON with `--log-format json`), whatever stderr is.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pythonjsonlogger.json import JsonFormatter
from rich.console import Console
from rich.markup import escape

__all__ = ["configure_logging", "uses_bars"]

_LOGGER = "metric_backfill"
_TEXT = "%(asctime)s %(levelname)-7s %(message)s"
_FIELDS = ("event", "run_id", "source", "chunk", "rows", "events", "seconds", "slice", "note", "attempt", "of")


def _utc(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _utc(record)


class _UtcJsonFormatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _utc(record)

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record.pop("progress", None)
        for key in [k for k, v in log_record.items() if v is None]:
            del log_record[key]


def _json_formatter() -> logging.Formatter:
    return _UtcJsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
    )


class _ConsoleHandler(logging.Handler):
    """Records printed through the rich console, so that they appear above live progress bars."""

    def __init__(self, console: Console, *, skip_progress: bool) -> None:
        super().__init__()
        self.console = console
        self.skip_progress = skip_progress

    def emit(self, record: logging.LogRecord) -> None:
        if self.skip_progress and getattr(record, "progress", False):
            return
        try:
            text = escape(record.getMessage())
            if record.levelno >= logging.ERROR:
                text = f"[red]{text}"
            elif record.levelno >= logging.WARNING:
                text = f"[yellow]{text}"
            self.console.print(text, soft_wrap=True, highlight=False)
        except Exception:  # noqa: BLE001
            self.handleError(record)


def uses_bars(console: Console, log_format: str, quiet: bool) -> bool:
    """Progress bars only for a person at a terminal; logs everywhere else."""
    return console.is_terminal and log_format == "text" and not quiet


def configure_logging(
    console: Console, *, verbose: int = 0, quiet: bool = False, log_format: str = "text", log_file: str | None = None
) -> None:
    root = logging.getLogger(_LOGGER)
    for h in list(root.handlers):
        if not isinstance(h, logging.NullHandler):
            root.removeHandler(h)
            h.close()
    root.propagate = False
    level = logging.DEBUG if verbose > 1 else logging.INFO
    stderr_level = logging.WARNING if quiet else level
    if log_format == "json":
        stream: logging.Handler = logging.StreamHandler(console.file)
        stream.setFormatter(_json_formatter())
    elif console.is_terminal:
        stream = _ConsoleHandler(console, skip_progress=verbose == 0)
    else:
        stream = logging.StreamHandler(console.file)
        stream.setFormatter(_UtcFormatter(_TEXT))
    stream.setLevel(stderr_level)
    root.addHandler(stream)
    if log_file:
        f = logging.FileHandler(log_file, encoding="utf-8")
        f.setFormatter(_json_formatter() if log_format == "json" else _UtcFormatter(_TEXT))
        f.setLevel(level)
        root.addHandler(f)
    root.setLevel(min(level, stderr_level))
