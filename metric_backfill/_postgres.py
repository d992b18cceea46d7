"""PostgreSQL access: read-only sessions on one exported snapshot, rows streamed as COPY bytes.

Every session is read-only (`default_transaction_read_only`), in UTC with ISO dates so that
`timestamp(3)` values leave as UTC wall-clock text (T16), and every chunk reads inside a
REPEATABLE READ transaction that imports the run's exported snapshot (T30): joins and lookups
agree across chunks and workers.

Rows leave through `COPY (query) TO STDOUT` as raw text — no per-row Python objects — and go
straight to ClickHouse. COPY cannot take server-side parameters, so psycopg binds them on the
client with its own typed quoting; no value is ever formatted into SQL by this tool.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from ._errors import ConfigError, SourceError, TransientError, redact

__all__ = ["Postgres", "Snapshot", "check_pg_url"]

_SESSION_OPTIONS = "-c default_transaction_read_only=on -c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres"

# SQLSTATE classes worth a retry: connection exceptions, serialization/deadlock, admin shutdown,
# too many connections / out of resources.
_TRANSIENT_SQLSTATES = ("08", "40", "57P01", "57P02", "57P03", "53")


def check_pg_url(url: str) -> str:
    if not url:
        raise ConfigError("no PostgreSQL URL: pass --pg postgresql://user:pass@host:port/db "
                          "(or set METRIC_BACKFILL_PG_URL)")
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"PostgreSQL URL {redact(url)!r} must start with postgresql://")
    try:
        _ = parts.port  # parsing validates it
    except ValueError:
        raise ConfigError(f"PostgreSQL URL {redact(url)!r} has an invalid port") from None
    return url


def translate(exc: BaseException, what: str) -> Exception:
    """Map a psycopg error to the tool's hierarchy with a one-line, redacted message."""
    text = redact(" ".join(str(exc).split()))[:400]
    state = getattr(exc, "sqlstate", None) or ""
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return SourceError(f"PostgreSQL {what}: {text} — is --pg pointing at the site's database?")
    if isinstance(exc, psycopg.errors.UndefinedColumn):
        return SourceError(f"PostgreSQL {what}: {text} — the source schema differs from spec/postgres.sql")
    if isinstance(exc, psycopg.errors.InvalidPassword) or "password authentication failed" in text:
        return ConfigError(f"PostgreSQL refused the credentials: {text} — check the user and password in --pg")
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return TransientError(f"PostgreSQL {what} was cancelled: {text}")
    if state.startswith(_TRANSIENT_SQLSTATES) or isinstance(exc, psycopg.OperationalError):
        return TransientError(f"PostgreSQL {what} failed (transient): {text}")
    return SourceError(f"PostgreSQL {what} failed: {text}")


class Postgres:
    """Connection factory for one source database. Never writes."""

    def __init__(self, url: str, *, connect_timeout: int = 10, application_name: str = "metric-backfill") -> None:
        self.url = check_pg_url(url)
        self._connect_timeout = connect_timeout
        self._application_name = application_name

    def redacted_url(self) -> str:
        return redact(self.url)

    def connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, options=_SESSION_OPTIONS,
                                   connect_timeout=self._connect_timeout,
                                   application_name=self._application_name)
        except psycopg.Error as exc:
            err = translate(exc, "connect")
            if not isinstance(err, ConfigError):
                err = SourceError(f"cannot connect to PostgreSQL at {self.redacted_url()}: "
                                  f"{redact(' '.join(str(exc).split()))[:300]} — check host, port and that the server runs")
            raise err from exc

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """Open a REPEATABLE READ READ ONLY transaction and export its snapshot for the run."""
        conn = self.connect()
        try:
            conn.autocommit = False
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            snap_id = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
            yield Snapshot(self, str(snap_id), conn)
        finally:
            try:
                conn.rollback()
            finally:
                conn.close()


class Snapshot:
    """An exported snapshot: the holder connection keeps it alive; readers import it."""

    def __init__(self, pg: Postgres, snapshot_id: str, holder: psycopg.Connection[Any]) -> None:
        self.pg = pg
        self.id = snapshot_id
        self.holder = holder
        self._readers = threading.local()
        self._all: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    def _reader(self) -> psycopg.Connection[Any]:
        conn = getattr(self._readers, "conn", None)
        if conn is None or conn.closed:
            conn = self.pg.connect()
            self._readers.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self, conn: psycopg.Connection[Any] | None = None) -> Iterator[psycopg.Connection[Any]]:
        """A REPEATABLE READ READ ONLY transaction on this thread's reader, in the snapshot."""
        conn = conn or self._reader()
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self.id)))
        except psycopg.Error as exc:
            self._discard(conn)
            raise translate(exc, "snapshot import") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            self._discard(conn)
            raise

    def _discard(self, conn: psycopg.Connection[Any]) -> None:
        try:
            conn.close()
        finally:
            if getattr(self._readers, "conn", None) is conn:
                self._readers.conn = None

    def cancel_all(self) -> None:
        """Cancel every in-flight query of this snapshot's readers (Ctrl-C)."""
        with self._lock:
            conns = list(self._all)
        for conn in conns:
            try:
                if not conn.closed:
                    conn.cancel_safe(timeout=5)
            except Exception:  # noqa: BLE001
                pass

    def close(self) -> None:
        with self._lock:
            for c in self._all:
                try:
                    c.close()
                except Exception:  # noqa: BLE001
                    pass
            self._all.clear()

    # -- reads -------------------------------------------------------------------------------
    def copy(self, query: str, params: dict[str, Any], *, what: str) -> CopyStream:
        """COPY (query) TO STDOUT inside the snapshot, as an iterator of raw byte blocks — no per-row
        Python objects. The connection is this thread's reader, taken now, so the stream may be
        consumed by another thread (the pipe into ClickHouse); `rows` holds the row count after."""
        return CopyStream(self, self._reader(), query, params, what)

    def fetch(self, query: str | sql.Composable, params: Sequence[Any] | dict[str, Any] | None = None,
              *, what: str) -> list[tuple[Any, ...]]:
        with self.transaction() as conn:
            try:
                return list(conn.execute(query, params).fetchall())  # type: ignore[arg-type]
            except psycopg.Error as exc:
                raise translate(exc, what) from exc


class CopyStream:
    """One chunk's COPY output; iterate it once."""

    def __init__(self, snap: Snapshot, conn: psycopg.Connection[Any], query: str, params: dict[str, Any],
                 what: str) -> None:
        self._snap, self._conn, self._query, self._params, self._what = snap, conn, query, params, what
        self.rows = 0

    def __iter__(self) -> Iterator[bytes | bytearray | memoryview]:
        with self._snap.transaction(self._conn) as conn:
            cur = conn.cursor()
            try:
                with cur.copy(sql.SQL("COPY ({}) TO STDOUT").format(sql.SQL(self._query)), self._params) as cp:  # type: ignore[arg-type]
                    yield from cp
                self.rows = cur.rowcount
            except psycopg.Error as exc:
                raise translate(exc, self._what) from exc
