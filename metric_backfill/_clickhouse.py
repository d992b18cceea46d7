"""ClickHouse access: one clickhouse-connect client, two ways to feed it a stream of rows.

Everything goes through clickhouse-connect, so the embedded engine (`chdb:///abs/path`) and a
server (`http(s)://user:pass@host:port/db`) share one code path. The single place where they
differ is how a stream of rows produced outside ClickHouse (PostgreSQL's COPY output) reaches a
`SELECT`: a server reads the request body through `input()`; chDB cannot (DESIGN.md: `input()`
inserts nothing there), so the rows are spooled to a file and read with `file()`. That difference
is the `RowFeed` protocol and its two small implementations.

Errors are mapped once, here, to the tool's hierarchy: transient ones (network, overload,
timeouts) are retried by the engine; everything else is terminal. The server's error code is kept.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from collections.abc import Iterator
from typing import Any, Protocol
from urllib.parse import urlsplit

from ._compile import literal
from ._errors import BackfillError, ConfigError, TargetError, TransientError, redact

__all__ = ["ClickHouse", "RowFeed", "check_dsn", "quote_ident", "qualified"]

Chunk = bytes | bytearray | memoryview
"""A block of TabSeparated rows, as COPY hands them over."""

# ClickHouse error codes worth a retry with backoff.
TRANSIENT_CODES = frozenset({
    3,    # UNEXPECTED_END_OF_FILE
    32,   # ATTEMPT_TO_READ_AFTER_EOF
    159,  # TIMEOUT_EXCEEDED
    160,  # TOO_SLOW
    164,  # READONLY (replica briefly read-only)
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    203,  # NO_FREE_CONNECTION
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    241,  # MEMORY_LIMIT_EXCEEDED (server-wide pressure passes)
    242,  # TABLE_IS_READ_ONLY
    252,  # TOO_MANY_PARTS
    319,  # UNKNOWN_STATUS_OF_INSERT
    425,  # SYSTEM_ERROR
    999,  # KEEPER_EXCEPTION
    1000,  # POCO_EXCEPTION
})
AUTH_CODES = frozenset({192, 193, 194, 516})  # UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, AUTHENTICATION_FAILED

# Every statement the tool sends. async_insert is on by default in ClickHouse 26.x and would
# batch, delay and (with dependent views) duplicate our writes (T3).
SESSION_SETTINGS = {"async_insert": 0, "session_timezone": "UTC"}


def quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def qualified(database: str, table: str) -> str:
    return f"{quote_ident(database)}.{quote_ident(table)}"


def check_dsn(dsn: str) -> str:
    """Validate a ClickHouse DSN's shape; raise ConfigError with the fix if it is wrong."""
    if not dsn:
        raise ConfigError("no ClickHouse DSN: pass --clickhouse chdb:///abs/path or http(s)://user:pass@host:port/db "
                          "(or set METRIC_BACKFILL_CLICKHOUSE_URL)")
    parts = urlsplit(dsn)
    if parts.scheme == "chdb":
        path = dsn[len("chdb://"):]
        if not path.startswith("/"):
            raise ConfigError(f"ClickHouse DSN {dsn!r} must name an absolute path: chdb:///abs/path")
        return dsn
    if parts.scheme in ("http", "https", "clickhouse", "clickhouses"):
        if not parts.hostname:
            raise ConfigError(f"ClickHouse DSN {redact(dsn)!r} has no host: use http(s)://user:pass@host:port/db")
        try:
            _ = parts.port  # parsing validates it
        except ValueError:
            raise ConfigError(f"ClickHouse DSN {redact(dsn)!r} has an invalid port") from None
        return dsn
    raise ConfigError(f"unsupported ClickHouse DSN scheme {parts.scheme or '(none)'!r}: "
                      "use chdb:///abs/path (embedded) or http(s)://user:pass@host:port/db (server)")


def translate(exc: BaseException, what: str) -> BackfillError:
    """Map a clickhouse-connect exception to the tool's hierarchy (message redacted)."""
    if isinstance(exc, BackfillError):
        return exc
    from clickhouse_connect.driver import exceptions as ce

    code = getattr(exc, "code", None)
    text = " ".join(str(exc).split())
    first = text.split(". Stack trace")[0][:400]
    if code in AUTH_CODES:
        return ConfigError(f"ClickHouse refused the credentials while {what}: {first} — check the user and password in the DSN")
    if isinstance(exc, ce.OperationalError) or code in TRANSIENT_CODES or isinstance(exc, (ConnectionError, TimeoutError)):
        err = TransientError(f"ClickHouse {what} failed (transient): {first}")
        err.code = code  # type: ignore[attr-defined]
        return err
    err2 = TargetError(f"ClickHouse {what} failed: {first}")
    err2.code = code  # type: ignore[attr-defined]
    return err2


class RowFeed(Protocol):
    """Runs a statement whose FROM clause is a stream of TabSeparated rows made outside ClickHouse."""

    def run(self, statement: Callable[[str], str], structure: str, chunks: Iterable[Chunk],
            settings: dict[str, Any]) -> None:
        """`statement(rows_sql)` builds the INSERT … SELECT … FROM rows_sql to execute."""

    def query(self, statement: Callable[[str], str], structure: str, chunks: Iterable[Chunk],
              settings: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Like `run`, for a SELECT; returns its rows (used by --dry-run: nothing is written)."""


class FileFeed:
    """chDB: stream the rows through a named pipe that `file()` reads while they are produced.

    PostgreSQL's COPY and ClickHouse's parse/fan-out then overlap, and no row touches the disk.
    A rows iterator that fails part-way closes the pipe early; the statement may then have
    inserted part of the rows, and the error is raised after it returns — callers write under
    attempt ids that only count once marked done, so a partial attempt is never read back.
    """

    def __init__(self, ch: ClickHouse, spool_dir: str) -> None:
        self._ch = ch
        self._dir = spool_dir

    @contextmanager
    def _pipe(self, chunks: Iterable[Chunk]) -> Iterator[str]:
        import errno
        import fcntl

        path = os.path.join(self._dir, f"rows-{uuid.uuid4().hex}.tsv")
        os.mkfifo(path, 0o600)
        finished = threading.Event()
        failure: list[BaseException] = []

        def pump() -> None:
            fd = -1
            try:
                while fd < 0:  # a non-blocking open fails until the statement opens its end
                    try:
                        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                    except OSError as e:
                        if e.errno != errno.ENXIO or finished.is_set():
                            return
                        finished.wait(0.002)
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
                with os.fdopen(fd, "wb", buffering=1 << 20) as f:
                    fd = -2
                    for chunk in chunks:
                        f.write(chunk)
            except BrokenPipeError:
                pass  # the statement stopped reading (it failed): its error is the one to report
            except BaseException as exc:  # noqa: BLE001
                failure.append(exc)
            finally:
                if fd >= 0:
                    os.close(fd)

        writer = threading.Thread(target=pump, name="rows-pipe", daemon=True)
        writer.start()
        try:
            yield path
        finally:
            finished.set()
            writer.join()
            os.unlink(path)
        if failure:
            raise failure[0]

    def _rows_sql(self, path: str, structure: str) -> str:
        return f"file({literal(path)}, 'TabSeparated', {literal(structure)})"

    def run(self, statement: Callable[[str], str], structure: str, chunks: Iterable[Chunk],
            settings: dict[str, Any]) -> None:
        with self._pipe(chunks) as path:
            self._ch.command(statement(self._rows_sql(path, structure)), settings=settings)

    def query(self, statement: Callable[[str], str], structure: str, chunks: Iterable[Chunk],
              settings: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self._pipe(chunks) as path:
            return self._ch.query(statement(self._rows_sql(path, structure)), settings=settings)


class BodyFeed:
    """A server: stream the rows as the HTTP request body behind the statement (`input()`)."""

    def __init__(self, ch: ClickHouse) -> None:
        self._ch = ch

    def run(self, statement: Callable[[str], str], structure: str, chunks: Iterable[Chunk],
            settings: dict[str, Any]) -> None:
        sql = statement(f"input({literal(structure)})") + "\nFORMAT TabSeparated\n"

        def body() -> Iterator[bytes]:
            yield sql.encode()
            for chunk in chunks:
                yield bytes(chunk)

        try:
            # With no table, clickhouse-connect sends the block as the whole body: the server
            # reads the statement from its first line and the rows after it.
            self._ch.client.raw_insert(None, None, body(), settings={**SESSION_SETTINGS, **settings},  # type: ignore[arg-type]
                                       fmt="TabSeparated")
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, "inserting streamed rows") from exc

    def query(self, statement: Callable[[str], str], structure: str, chunks: Iterable[Chunk],
              settings: dict[str, Any]) -> list[tuple[Any, ...]]:
        from clickhouse_connect.driver.external import ExternalData

        data = ExternalData(file_name="rows", data=b"".join(chunks), structure=structure, fmt="TabSeparated")
        sql = statement("rows")
        try:
            return list(self._ch.client.query(sql, external_data=data, settings={**SESSION_SETTINGS, **settings}).result_rows)
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, "querying streamed rows") from exc


def engine_holder(path: str) -> str | None:
    """The process holding the embedded engine at `path` (its status file lock), if any."""
    import fcntl

    status = os.path.join(path, "status")
    if not os.path.exists(status):
        return None
    with open(status, "rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            text = f.read().decode(errors="replace")
            pid = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("PID:")), "?")
            return pid
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return None


def wait_for_engine(path: str, timeout: float, on_wait: Callable[[str], None] | None) -> None:
    """An embedded engine belongs to one process at a time: wait while another one (e.g. a publisher
    left finishing by an interrupted run) holds it."""
    import time

    deadline = time.monotonic() + timeout
    told = False
    while (pid := engine_holder(path)) is not None and pid != str(os.getpid()):
        if time.monotonic() > deadline:
            raise TargetError(f"the embedded ClickHouse at {path} is in use by another process (pid {pid}): "
                              "wait for it to finish or stop it, then run the command again")
        if on_wait and not told:
            on_wait(f"the embedded ClickHouse at {path} is in use by process {pid}; waiting for it to finish")
            told = True
        time.sleep(0.5)


def open_embedded(dsn: str, lock_wait: float, on_wait: Callable[[str], None] | None, **kwargs: Any) -> Any:
    """A clickhouse-connect client on the embedded engine, waiting while another process holds it
    (checking first and retrying after a failed open: the holder may have just taken it)."""
    import time

    import clickhouse_connect

    path = dsn[len("chdb://"):]
    deadline = time.monotonic() + lock_wait
    while True:
        wait_for_engine(path, max(0.0, deadline - time.monotonic()), on_wait)
        try:
            return clickhouse_connect.get_client(dsn=dsn, **kwargs)
        except Exception:
            if engine_holder(path) is None or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class ClickHouse:
    """The tool's handle on one ClickHouse (embedded or server); safe to share across threads."""

    def __init__(self, dsn: str, *, spool_dir: str | None = None, connect_timeout: int = 10,
                 lock_wait: float = 600.0, on_wait: Callable[[str], None] | None = None) -> None:
        self.dsn = check_dsn(dsn)
        self.embedded = dsn.startswith("chdb://")
        self._lock_wait = lock_wait
        self._on_wait = on_wait
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()
        self._connect_timeout = connect_timeout
        self.spool_dir = spool_dir or tempfile.mkdtemp(prefix="metric-backfill-")
        self.feed: RowFeed = FileFeed(self, self.spool_dir) if self.embedded else BodyFeed(self)
        _ = self.client  # connect now: a bad DSN or password fails before anything else happens
        self.default_database = self._default_database()

    def redacted_dsn(self) -> str:
        return redact(self.dsn)

    # clickhouse-connect clients are not thread-safe; each thread gets its own (on chDB each owns
    # a handle to the one engine, so queries of different threads run in parallel).
    @property
    def client(self) -> Any:
        c = getattr(self._local, "client", None)
        if c is None:
            import clickhouse_connect

            try:
                kwargs: dict[str, Any] = {} if self.embedded else {
                    "connect_timeout": self._connect_timeout, "send_receive_timeout": 3600,
                    "autogenerate_session_id": False}
                if self.embedded:
                    c = open_embedded(self.dsn, self._lock_wait, self._on_wait, settings=dict(SESSION_SETTINGS))
                else:
                    c = clickhouse_connect.get_client(dsn=self.dsn, settings=dict(SESSION_SETTINGS), **kwargs)
            except Exception as exc:  # noqa: BLE001
                err = translate(exc, f"connecting to {self.redacted_dsn()}")
                if isinstance(err, TransientError):
                    err = TargetError(f"cannot reach ClickHouse at {self.redacted_dsn()}: {err} — check the host, port "
                                      "and that the server is running")
                raise err from exc
            self._local.client = c
            with self._lock:
                self._clients.append(c)
        return c

    def _default_database(self) -> str:
        return str(self.query("SELECT currentDatabase()")[0][0])

    def close(self) -> None:
        with self._lock:
            for c in self._clients:
                try:
                    c.close()
                except Exception:  # noqa: BLE001
                    pass
            self._clients.clear()
        self._local = threading.local()

    # -- statements --------------------------------------------------------------------------
    def command(self, sql: str, *, parameters: dict[str, Any] | None = None,
                settings: dict[str, Any] | None = None, what: str = "statement") -> Any:
        try:
            return self.client.command(sql, parameters=parameters, settings=settings or None)
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, what) from exc

    def query(self, sql: str, *, parameters: dict[str, Any] | None = None,
              settings: dict[str, Any] | None = None, what: str = "query") -> list[tuple[Any, ...]]:
        try:
            return list(self.client.query(sql, parameters=parameters, settings=settings or None).result_rows)
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, what) from exc

    def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str],
               *, what: str = "insert") -> None:
        if not rows:
            return
        try:
            self.client.insert(table, rows, column_names=list(columns), settings={"async_insert": 0})
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, what) from exc

    def columns(self, database: str, table: str) -> dict[str, str]:
        rows = self.query("SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} "
                          "ORDER BY position", parameters={"db": database, "t": table})
        return {str(n): str(t) for n, t in rows}

    def engine(self, database: str, table: str) -> str | None:
        rows = self.query("SELECT engine FROM system.tables WHERE database = {db:String} AND name = {t:String}",
                          parameters={"db": database, "t": table})
        return str(rows[0][0]) if rows else None
