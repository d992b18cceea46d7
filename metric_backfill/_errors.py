"""Exceptions.

The hierarchy, and what the CLI does with each::

    BackfillError                     base class; `str(e)` is one line that names the problem and the fix
    ├── ConfigError                   bad input (cutoff, DSN, unknown source or metric)      exit 2
    ├── TerminalError                 the run cannot go on; retrying will not help           exit 3
    │   ├── SourceError               a source table/column is missing or PostgreSQL refused
    │   ├── TargetError               the target table is incompatible or unreachable
    │   ├── OverlapError              the fence found rows already in the target
    │   └── PublishConflict           a publish step is in an unknown state and needs a human
    ├── TransientError                worth retrying with backoff (connection reset, overload)
    └── Cancelled                     Ctrl-C; the run is left resumable                       exit 130

Every message is scrubbed of credentials before it is built (see `redact`).
"""

from __future__ import annotations

import re

__all__ = [
    "BackfillError",
    "Cancelled",
    "ConfigError",
    "OverlapError",
    "PublishConflict",
    "SourceError",
    "TargetError",
    "TerminalError",
    "TransientError",
    "redact",
]

# user:password@ in URLs, password=... in libpq keyword strings, and PGPASSWORD-like echoes.
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]*)@")
_KW_PASSWORD = re.compile(r"(?i)\b(password|pwd)\s*=\s*('[^']*'|\S+)")


def redact(text: str) -> str:
    """Remove passwords from URLs and keyword strings in `text`."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _KW_PASSWORD.sub(lambda m: f"{m.group(1)}=***", text)


class BackfillError(Exception):
    """Base class. The message is a single redacted line."""

    exit_code = 3

    def __init__(self, message: str) -> None:
        super().__init__(redact(" ".join(str(message).split())))


class ConfigError(BackfillError):
    """The command line or configuration is wrong; nothing was written."""

    exit_code = 2


class TerminalError(BackfillError):
    """A runtime failure that a retry cannot fix."""

    exit_code = 3


class SourceError(TerminalError):
    """PostgreSQL or a ClickHouse source table is unreachable, missing, or not as expected."""


class TargetError(TerminalError):
    """The target table is missing, incompatible, or refused a write."""


class OverlapError(TerminalError):
    """The target already holds rows for pairs this run would write (see --on-overlap)."""


class PublishConflict(TerminalError):
    """A publish step was interrupted and the target does not show a clean before/after state."""


class TransientError(BackfillError):
    """A failure worth retrying: connection reset, timeout, server overload."""

    exit_code = 3


class Cancelled(BackfillError):
    """The operator interrupted the run (Ctrl-C); it can be resumed."""

    exit_code = 130
