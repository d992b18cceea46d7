"""PostgreSQL access: read-only sessions on one exported snapshot, rows streamed as COPY bytes.

Every session is read-only (`default_transaction_read_only`), in UTC with ISO dates so that
`timestamp(3)` values leave as UTC wall-clock text (T16), bounded by `lock_timeout` and
`statement_timeout` (a table held by another session's lock is reported, never waited on forever),
and every chunk reads inside a REPEATABLE READ transaction that imports the run's exported
snapshot (T30): joins and lookups agree across chunks and workers.

Rows leave through `COPY (query) TO STDOUT` as raw text — no per-row Python objects — and go
straight to ClickHouse. COPY cannot take server-side parameters, so psycopg binds them on the
client with its own typed quoting (which follows the session's `standard_conforming_strings`);
no value is ever formatted into SQL by this tool.

Failures are translated once, here: every psycopg error (COMMIT and ROLLBACK included) becomes a
one-line `SourceError` naming the cause and the fix; the ones a retry can fix (a terminated
backend, a restart, a recovery conflict on a standby, a dropped connection) carry the `Transient`
marker; the loss of the session holding the exported snapshot is `SnapshotLost`, after which the
run continues under a new snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from metric_backfill._errors import (
    BackfillError,
    Cancelled,
    ConfigError,
    SnapshotLost,
    SourceError,
    TransientSourceError,
    redact,
    register_url_secrets,
)

__all__ = ["DataLoader", "Postgres", "Snapshot", "valid_pg_url", "create_database"]

# SQLSTATEs a retry can fix: connection exceptions, serialization failures and deadlocks (a
# standby's recovery conflict is 40001), admin/crash shutdown and "cannot connect now" (a restart),
# too many connections / out of resources.
_TRANSIENT_SQLSTATES = ("08", "40", "57P01", "57P02", "57P03", "53")


def valid_pg_url(url: str) -> str:
    if not url:
        raise ConfigError(
            "no PostgreSQL URL: pass --pg postgresql://user:pass@host:port/db (or set METRIC_BACKFILL_PG_URL)"
        )
    register_url_secrets(url)
    try:
        parts = urlsplit(url)
        _ = parts.port  # parsing validates it
    except ValueError:
        raise ConfigError(
            f"PostgreSQL URL {redact(url)!r} is malformed (percent-encode special characters of "
            "the password, e.g. %40 for @, %2F for /)"
        ) from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"PostgreSQL URL {redact(url)!r} must start with postgresql://")
    return url


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return redact(text)[:400] or type(exc).__name__


def translate(exc: BaseException, what: str, *, timeouts: tuple[float, float] | None = None) -> BackfillError:
    """Map a psycopg error to the tool's hierarchy: one redacted line, the cause, the fix."""
    if isinstance(exc, BackfillError):
        return exc
    text = _first_line(exc)
    state = getattr(exc, "sqlstate", None) or ""
    lock_s, stmt_s = timeouts or (0, 0)
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return SourceError(f"PostgreSQL {what}: {text} — is --pg pointing at the site's database?")
    if isinstance(exc, psycopg.errors.UndefinedColumn):
        return SourceError(
            f"PostgreSQL {what}: {text} — the source schema differs from the one the tool reads (docs/sources.md)"
        )
    if isinstance(exc, psycopg.errors.InvalidPassword) or "password authentication failed" in text:
        return ConfigError(f"PostgreSQL refused the credentials: {text} — check the user and password in --pg")
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return SourceError(
            f"PostgreSQL {what}: a table is locked by another session and the lock was not granted "
            f"within {lock_s:g} s ({text}) — wait for that session (see pg_locks) or raise "
            "--pg-lock-timeout"
        )
    if isinstance(exc, psycopg.errors.QueryCanceled):
        if "statement timeout" in text:
            return SourceError(
                f"PostgreSQL {what} ran longer than the statement timeout of {stmt_s:g} s — use "
                "smaller chunks (--chunk-rows) or raise --pg-statement-timeout"
            )
        if "user request" in text:
            return Cancelled(f"PostgreSQL {what} was cancelled: interrupted; run the same command again to resume")
        return TransientSourceError(f"PostgreSQL {what} was cancelled: {text}")
    if isinstance(exc, psycopg.errors.InvalidParameterValue) and "snapshot" in text:
        return SnapshotLost(f"PostgreSQL {what}: the run's exported snapshot is gone ({text})")
    if state.startswith(_TRANSIENT_SQLSTATES) or isinstance(exc, psycopg.OperationalError):
        return TransientSourceError(f"PostgreSQL {what} failed (transient): {text}")
    return SourceError(f"PostgreSQL {what} failed: {text}")


class Postgres:
    """Connection factory for one source database. Never writes."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: int = 10,
        application_name: str = "metric-backfill",
        lock_timeout: float = 60.0,
        statement_timeout: float = 3600.0,
    ) -> None:
        self.url = valid_pg_url(url)
        self._connect_timeout = connect_timeout
        self._application_name = application_name
        self.timeouts = (float(lock_timeout), float(statement_timeout))
        # The snapshot holder sits idle in its transaction for the whole run: a server-wide
        # idle_in_transaction_session_timeout would end it (and the snapshot) silently.
        self._options = (
            "-c default_transaction_read_only=on -c TimeZone=UTC -c DateStyle=ISO,YMD "
            "-c IntervalStyle=postgres -c idle_in_transaction_session_timeout=0 "
            f"-c lock_timeout={int(lock_timeout * 1000)} -c statement_timeout={int(statement_timeout * 1000)}"
        )

    def redacted_url(self) -> str:
        return redact(self.url)

    def translate(self, exc: BaseException, what: str) -> BackfillError:
        return translate(exc, what, timeouts=self.timeouts)

    def connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self.url,
                autocommit=True,
                options=self._options,
                connect_timeout=self._connect_timeout,
                application_name=self._application_name,
            )
        except psycopg.Error as exc:
            raise self._connect_error(exc) from None
        except (ValueError, UnicodeError) as exc:  # a conninfo libpq cannot even parse
            raise ConfigError(
                f"PostgreSQL URL {self.redacted_url()!r} is malformed ({_first_line(exc)}): "
                "percent-encode special characters of the password"
            ) from None

    def _connect_error(self, exc: psycopg.Error) -> BackfillError:
        text = _first_line(exc)
        err = self.translate(exc, "connect")
        if isinstance(err, ConfigError):
            return err
        if "does not exist" in text and "database" in text:
            return ConfigError(f"PostgreSQL at {self.redacted_url()}: {text} — check the database name in --pg")
        if "role" in text and "does not exist" in text:
            return ConfigError(f"PostgreSQL at {self.redacted_url()}: {text} — check the user name in --pg")
        if "no password supplied" in text or "password is required" in text:
            return ConfigError(
                f"PostgreSQL at {self.redacted_url()} asks for a password: {text} — put it in --pg "
                "(percent-encoded) or in PGPASSWORD / ~/.pgpass"
            )
        if "invalid" in text and ("URI" in text or "connection option" in text or "conninfo" in text):
            return ConfigError(f"PostgreSQL URL {self.redacted_url()!r} is malformed: {text}")
        return TransientSourceError(
            f"cannot connect to PostgreSQL at {self.redacted_url()}: {text} — check the "
            "host and port and that the server is running"
        )

    def query(
        self, query: str | sql.Composable, params: Sequence[Any] | dict[str, Any] | None = None, *, what: str
    ) -> list[tuple[Any, ...]]:
        """One statement in a read-only autocommit session of its own (no snapshot)."""
        conn = self.connect()
        try:
            return list(conn.execute(query, params).fetchall())  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise self.translate(exc, what) from None
        finally:
            with suppress(Exception):
                conn.close()

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """A REPEATABLE READ READ ONLY transaction exporting its snapshot for the run; closes every
        reader connection of the snapshot on the way out."""
        snap = Snapshot(self)
        try:
            snap.open()
            yield snap
        finally:
            snap.close()


class Snapshot:
    """An exported snapshot: the holder connection keeps it alive; readers (one per thread) import it.

    If the holder's session ends (terminated, server restart, a timeout) the snapshot is gone;
    `renew()` exports a new one, and readers import whichever is current (the run records each id)."""

    def __init__(self, pg: Postgres) -> None:
        self.pg = pg
        self.id = ""
        self.ids: list[str] = []
        self.started_at: Any = None
        """now() of the snapshot's transaction (naive UTC): events at or after it are the live pipeline's."""
        self._holder: psycopg.Connection[Any] | None = None
        self._readers = threading.local()
        self._all: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        conn = self.pg.connect()
        try:
            conn.autocommit = False
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            row = conn.execute("SELECT pg_export_snapshot(), (now() AT TIME ZONE 'UTC')::timestamp(3)").fetchone()
        except psycopg.Error as exc:
            with suppress(Exception):
                conn.close()
            raise self.pg.translate(exc, "exporting a snapshot") from None
        assert row is not None
        with self._lock:
            old, self._holder = self._holder, conn
            self.id, self.started_at = str(row[0]), row[1]
            self.ids.append(self.id)
        if old is not None:
            with suppress(Exception):
                old.close()

    def renew(self, failed_id: str) -> None:
        """Export a new snapshot unless another thread already replaced `failed_id`."""
        with self._lock:
            if self.id != failed_id:
                return
        self.open()

    def holder_alive(self) -> bool:
        holder = self._holder
        if holder is None or holder.closed:
            return False
        try:
            with self._lock:
                holder.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

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
        snap_id = self.id
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snap_id)))
        except psycopg.Error as exc:
            self._discard(conn)
            err = self.pg.translate(exc, "importing the run's snapshot")
            if not isinstance(err, SnapshotLost) and not self.holder_alive():
                err = SnapshotLost(f"the PostgreSQL session holding the run's snapshot is gone ({err})")
            if isinstance(err, SnapshotLost):
                err.snapshot_id = snap_id  # type: ignore[attr-defined]
            raise err from None
        try:
            yield conn
        except BaseException:
            self._discard(conn)  # closing the connection ends its transaction; no ROLLBACK to fail
            raise
        try:
            conn.execute("COMMIT")
        except psycopg.Error as exc:
            self._discard(conn)
            raise self.pg.translate(exc, "finishing a read (COMMIT)") from None

    def _discard(self, conn: psycopg.Connection[Any]) -> None:
        with suppress(Exception):
            conn.close()
        if getattr(self._readers, "conn", None) is conn:
            self._readers.conn = None

    def cancel_all(self) -> None:
        """Cancel every in-flight query of this snapshot's readers (Ctrl-C)."""
        with self._lock:
            conns = list(self._all)
        for conn in conns:
            with suppress(Exception):
                if not conn.closed:
                    conn.cancel_safe(timeout=5)

    def close(self) -> None:
        with self._lock:
            conns, self._all = list(self._all), []
            holder, self._holder = self._holder, None
        for c in [*conns, *([holder] if holder is not None else [])]:
            with suppress(Exception):
                c.close()

    # -- reads -------------------------------------------------------------------------------
    def copy(self, query: str, params: dict[str, Any], *, what: str) -> CopyStream:
        """COPY (query) TO STDOUT inside the snapshot, as an iterator of raw byte blocks — no per-row
        Python objects. The connection is this thread's reader, taken now, so the stream may be
        consumed by another thread (the pipe into ClickHouse); `rows` holds the row count after."""
        return CopyStream(self, self._reader(), query, params, what)

    def fetch(
        self, query: str | sql.Composable, params: Sequence[Any] | dict[str, Any] | None = None, *, what: str
    ) -> list[tuple[Any, ...]]:
        with self.transaction() as conn:
            try:
                return list(conn.execute(query, params).fetchall())  # type: ignore[arg-type]
            except psycopg.Error as exc:
                raise self.pg.translate(exc, what) from None

    # -- shapes of reads the planner needs (names quoted here, never by callers) --------------------
    def aggregate(
        self, table: str, selects: Sequence[tuple[str, str]], *, group_by: str | None = None, what: str
    ) -> list[tuple[Any, ...]]:
        """`SELECT <f(column)>, … FROM table [GROUP BY g ORDER BY g]` for (function, column) pairs,
        function one of min, max, count, distinct (the column itself, grouped)."""
        parts: list[sql.Composable] = []
        for fn, col in selects:
            if fn not in ("min", "max", "count", "value"):
                raise ValueError(fn)
            ident = sql.Identifier(col) if col != "*" else sql.SQL("*")
            parts.append(ident if fn == "value" else sql.SQL(fn + "({})").format(ident))
        q = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(parts), sql.Identifier(table))
        if group_by:
            q = sql.SQL("{} GROUP BY {g} ORDER BY {g}").format(q, g=sql.Identifier(group_by))
        return self.fetch(q, what=what)

    def result_columns(self, query: str, params: dict[str, Any], *, what: str) -> list[str]:
        """The output column names of a query (run with LIMIT 0)."""
        with self.transaction() as conn:
            try:
                cur = conn.execute(sql.SQL("SELECT * FROM ({}) q LIMIT 0").format(sql.SQL(query)), params)
                return [d.name for d in cur.description or []]
            except psycopg.Error as exc:
                raise self.pg.translate(exc, what) from None


class CopyStream:
    """One chunk's COPY output; iterate it once."""

    def __init__(
        self, snap: Snapshot, conn: psycopg.Connection[Any], query: str, params: dict[str, Any], what: str
    ) -> None:
        self._snap, self._conn, self._query, self._params, self._what = snap, conn, query, params, what
        self.rows = 0

    def __iter__(self) -> Iterator[bytes | bytearray | memoryview]:
        with self._snap.transaction(self._conn) as conn:
            cur = conn.cursor()
            try:
                with cur.copy(sql.SQL("COPY ({}) TO STDOUT").format(sql.SQL(self._query)), self._params) as cp:
                    yield from cp
                self.rows = cur.rowcount
            except psycopg.Error as exc:
                raise self._snap.pg.translate(exc, self._what) from None


class DataLoader:
    """A WRITABLE PostgreSQL session, for generated demo and test data only: the backfill never
    uses it (its sessions are read-only). Statements are sent as bytes: no client-side placeholder
    parsing, the generator's SQL is its own."""

    def __init__(self, url: str) -> None:
        valid_pg_url(url)
        try:
            self._conn = psycopg.connect(url, autocommit=True, options="-c TimeZone=UTC")
        except psycopg.Error as exc:
            raise translate(exc, "connect") from None

    def execute(self, statement: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        try:
            cur = self._conn.execute(statement.encode() if params is None else statement, params)
            return list(cur.fetchall()) if cur.description else []
        except psycopg.Error as exc:
            raise translate(exc, "loading data") from None

    def copy_out(self, query: str) -> bytes:
        with self._conn.cursor().copy(f"COPY ({query}) TO STDOUT".encode()) as copy:
            return b"".join(bytes(data) for data in copy)

    def copy_rows_in(self, table: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._conn.cursor().copy(f"COPY {table} FROM STDIN".encode()) as copy:
            for row in rows:
                copy.write_row(row)

    def close(self) -> None:
        with suppress(Exception):
            self._conn.close()

    def __enter__(self) -> DataLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_database(admin_url: str, name: str, *, drop: bool = False) -> None:
    """Create database `name` on the server of `admin_url` if it does not exist (demo and tests)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if drop:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
