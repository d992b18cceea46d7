"""Exceptions, and the scrubbing of secrets from every message.

Two independent axes, as in dlt: *where* a failure comes from (the class) and *whether retrying can
help* (the `Transient` / `Terminal` marker mixins). The CLI maps the class to an exit code::

    BackfillError                  base; `str(e)` is one redacted line naming the problem and the fix
    ├── ConfigError                bad input or configuration; nothing was written          exit 2
    │   └── OverlapError           the fence found rows or runs a run would double          exit 2
    ├── SourceError                PostgreSQL or a ClickHouse source failed or is not as expected  exit 3
    ├── TargetError                the target (or the state/ledger) failed or is incompatible    exit 3
    │   └── PublishConflict        a publish is in a state the tool cannot settle alone          exit 3
    ├── DifferencesFound           the work is done, and the target still differs from what it should hold  exit 1
    └── Cancelled                  Ctrl-C; the run is left resumable                          exit 130

    Transient (mixin)   a retry with backoff may succeed: connection reset, restart, overload,
                        a recovery conflict, a lost snapshot. Combined with SourceError/TargetError.
    Terminal (mixin)    retrying cannot help (an error without the Transient marker is terminal too).

`TransientError` and `TerminalError` are the generic members of each axis (a transient failure
whose side is unknown, a terminal one that is neither source nor target).

Secrets: every URL or DSN the tool is given registers its password (`register_secret`) in every
spelling — raw, percent-decoded and percent-encoded — and `redact` removes each of them, plus
anything shaped like `user:password@` or `password=…`, from every message whatever library wrote it.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

__all__ = [
    "BackfillError",
    "Cancelled",
    "ConfigError",
    "DifferencesFound",
    "SnapshotLost",
    "OverlapError",
    "PublishConflict",
    "SourceError",
    "TargetError",
    "Terminal",
    "TerminalError",
    "Transient",
    "TransientError",
    "TransientSourceError",
    "TransientTargetError",
    "is_transient",
    "redact",
    "register_secret",
    "register_url_secrets",
]

# user:password@ in URLs (greedy to the last @ before the host), password=... in keyword strings.
_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>\S*)@(?=[^@\s]*(?:\s|$|[/?#]))"
)
_KW_PASSWORD = re.compile(r"(?i)\b(password|pwd|passwd)\s*[=:]\s*('[^']*'|\"[^\"]*\"|\S+)")

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(secret: str | None) -> None:
    """Remember `secret` in every spelling, so that no message can carry it."""
    if not secret:
        return
    spellings = {
        secret,
        unquote(secret),
        unquote_plus(secret),
        quote(secret, safe=""),
        quote_plus(secret),
        quote(unquote(secret), safe=""),
        quote_plus(unquote(secret)),
        repr(secret)[1:-1],
    }
    with _lock:
        # Very short fragments would blank out ordinary words; a one-letter password is not a secret.
        _secrets.update(s for s in spellings if len(s) >= 3)


def register_url_secrets(url: str) -> None:
    """Register the password of a URL/DSN, as the URL parser and as a human would read it."""
    if not url:
        return
    try:
        register_secret(urlsplit(url).password)
    except ValueError:
        pass
    # The raw text between `user:` and the last `@` (a password holding `/`, `?` or `#` confuses
    # URL parsers, whose error messages may then quote part of it).
    m = re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*:(.*)@[^@]*$", url)
    if m:
        register_secret(m.group(1))
        for part in re.split(r"[/?#]", m.group(1)):
            register_secret(part)


def redact(text: str) -> str:
    """`text` without any registered secret and without URL or keyword passwords."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, "***")
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _KW_PASSWORD.sub(lambda m: f"{m.group(1)}=***", text)


class Transient:
    """Marker: retrying (with backoff, as a fresh attempt) may succeed."""


class Terminal:
    """Marker: retrying cannot help; the command stops."""


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, Transient)


class BackfillError(Exception):
    """Base class. The message is a single redacted line."""

    exit_code = 3
    code: int | None = None
    """The server's error code behind it, where there is one."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(" ".join(str(message).split())))


class ConfigError(BackfillError, Terminal):
    """The command line or configuration is wrong; nothing was written."""

    exit_code = 2


class OverlapError(ConfigError):
    """The target already holds rows, or another run published pairs, that this run would double."""


class SourceError(BackfillError):
    """PostgreSQL or a ClickHouse source table is unreachable, missing, or not as expected."""


class TargetError(BackfillError):
    """The target table, the state or the ledger is missing, incompatible, or refused a write."""


class PublishConflict(TargetError, Terminal):
    """A publish was interrupted and what the target (or a rollup) shows cannot be settled alone."""


class DifferencesFound(BackfillError, Terminal):
    """The command did what it should, and measuring afterwards shows differences it cannot fix itself."""

    exit_code = 1


class TerminalError(BackfillError, Terminal):
    """A runtime failure that a retry cannot fix."""


class TransientError(BackfillError, Transient):
    """A failure worth retrying: connection reset, timeout, server overload."""


class TransientSourceError(SourceError, Transient):
    """PostgreSQL failed in a way a retry may fix (terminated backend, restart, recovery conflict)."""


class TransientTargetError(TargetError, Transient):
    """ClickHouse failed in a way a retry may fix (network, overload)."""


class SnapshotLost(TransientSourceError):
    """The session holding the run's exported snapshot is gone: a new snapshot is needed."""


class Cancelled(BackfillError, Terminal):
    """The operator interrupted the run (Ctrl-C); it can be resumed."""

    exit_code = 130
