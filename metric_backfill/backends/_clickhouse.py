"""ClickHouse access: one clickhouse-connect client, two ways to feed it a stream of rows.

Everything goes through clickhouse-connect, so the embedded engine (`chdb:///abs/path`) and a
server (`http(s)://user:pass@host:port/db`) share one code path. The single place where they
differ is how a stream of rows produced outside ClickHouse (PostgreSQL's COPY output) reaches a
`SELECT`: a server reads the request body through `input()`; chDB cannot (docs/performance.md: `input()`
inserts nothing there), so the rows are spooled to a file and read with `file()`. That difference
is the `RowFeed` protocol and its two small implementations.

Errors are mapped once, here, to the tool's hierarchy: transient ones (network, overload,
timeouts) are retried by the engine; everything else is terminal. The server's error code is kept.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from metric_backfill._errors import (
    BackfillError,
    ConfigError,
    TargetError,
    TransientTargetError,
    redact,
    register_url_secrets,
)
from metric_backfill.backends._sql import literal, qualified, quote_ident, value_literal

__all__ = ["Capabilities", "ClickHouse", "RowFeed", "refuse_missing_engine", "valid_dsn", "quote_ident", "qualified"]

Chunk = bytes | bytearray | memoryview
"""A block of TabSeparated rows, as COPY hands them over."""

# ClickHouse error codes worth a retry with backoff.
TRANSIENT_CODES = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE
        32,  # ATTEMPT_TO_READ_AFTER_EOF
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
    }
)
AUTH_CODES = frozenset({192, 193, 194, 516})  # UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, AUTHENTICATION_FAILED
DISK_CODES = frozenset({243})  # NOT_ENOUGH_SPACE
ACCESS_CODES = frozenset({497})  # ACCESS_DENIED

# The embedded engine's allocator (jemalloc, which chDB configures from JE_MALLOC_CONF when it is
# loaded): freed memory goes back to the system within a second, purged by a background thread, in
# fewer arenas. Measured (bench/): about 15 % less peak RSS at the same speed; purging at once (decay
# 0) saves more but costs half again the time. An operator's own setting wins.
os.environ.setdefault("JE_MALLOC_CONF", "background_thread:true,narenas:4,dirty_decay_ms:1000,muzzy_decay_ms:0")

# Every statement the tool sends. async_insert is on by default in ClickHouse 26.x and would
# batch, delay and (with dependent views) duplicate our writes (T3).
SESSION_SETTINGS = {"async_insert": 0, "session_timezone": "UTC"}
SPOOL_PREFIX = "metric-backfill-"
NATIVE_PORTS = (9000, 9440)


@dataclass(frozen=True)
class Capabilities:
    """What differs between the embedded engine and a server, as values instead of DSN sniffing."""

    embedded: bool
    """The engine runs inside this process (chDB): one process per data path, and a kill of this
    process is a crash of the engine itself (what the publish's settle-and-repair is for)."""
    streams_request_body: bool
    """Rows produced outside ClickHouse reach a statement as the request body (`input()`); otherwise
    through a named pipe that `file()` reads."""
    multi_process: bool
    """Several processes may share one run (static worker partitioning)."""

    @classmethod
    def of(cls, dsn: str) -> Capabilities:
        """What a DSN's engine can do, known from the DSN alone (before connecting)."""
        embedded = urlsplit(valid_dsn(dsn)).scheme == "chdb"
        return cls(embedded=embedded, streams_request_body=not embedded, multi_process=not embedded)


def valid_dsn(dsn: str) -> str:
    """Validate a ClickHouse DSN's shape; raise ConfigError with the fix if it is wrong."""
    if not dsn:
        raise ConfigError(
            "no ClickHouse DSN: pass --clickhouse chdb:///abs/path or http(s)://user:pass@host:port/db "
            "(or set METRIC_BACKFILL_CLICKHOUSE_URL)"
        )
    register_url_secrets(dsn)
    try:
        parts = urlsplit(dsn)
        port = parts.port  # parsing validates it
    except ValueError:
        raise ConfigError(
            f"ClickHouse DSN {redact(dsn)!r} is malformed (percent-encode special characters of the "
            "password, e.g. %40 for @, %2F for /)"
        ) from None
    if parts.scheme == "chdb":
        path = dsn[len("chdb://") :].split("?", 1)[0]
        if not path.startswith("/"):
            raise ConfigError(f"ClickHouse DSN {dsn!r} must name an absolute path: chdb:///abs/path")
        return dsn
    if parts.scheme in ("http", "https", "clickhouse", "clickhouses"):
        if not parts.hostname:
            raise ConfigError(f"ClickHouse DSN {redact(dsn)!r} has no host: use http(s)://user:pass@host:port/db")
        if port in NATIVE_PORTS:
            http = 8443 if port == 9440 or parts.scheme in ("https", "clickhouses") else 8123
            raise ConfigError(
                f"ClickHouse DSN {redact(dsn)!r} names port {port}, the native TCP protocol's; the tool "
                f"speaks HTTP: use port {http} (e.g. http://{parts.hostname}:{http}/…)"
            )
        return dsn
    raise ConfigError(
        f"unsupported ClickHouse DSN scheme {parts.scheme or '(none)'!r}: "
        "use chdb:///abs/path (embedded) or http(s)://user:pass@host:port/db (server)"
    )


def translate(exc: BaseException, what: str) -> BackfillError:
    """Map a clickhouse-connect exception to the tool's hierarchy (message redacted)."""
    if isinstance(exc, BackfillError):
        return exc
    from clickhouse_connect.driver import exceptions as ce

    code = getattr(exc, "code", None)
    text = " ".join(str(exc).split())
    first = text.split(". Stack trace")[0][:400]
    err: BackfillError
    if code in AUTH_CODES:
        err = ConfigError(
            f"ClickHouse refused the credentials while {what}: {first} — check the user and password in the DSN"
        )
    elif code in DISK_CODES or "No space left on device" in text or "NOT_ENOUGH_SPACE" in text:
        err = TargetError(
            f"ClickHouse ran out of disk space while {what}: {first} — free space on the ClickHouse "
            "disk, then run the same command again (it resumes and settles the interrupted step)"
        )
    elif code in ACCESS_CODES:
        err = TargetError(f"ClickHouse refused {what}: {first} — grant the user that privilege")
    elif (
        isinstance(exc, ce.OperationalError)
        or code in TRANSIENT_CODES
        or isinstance(exc, (ConnectionError, TimeoutError))
    ):
        err = TransientTargetError(f"ClickHouse {what} failed (transient): {first}")
    else:
        err = TargetError(f"ClickHouse {what} failed: {first}")
    err.code = code
    return err


class RowFeed(Protocol):
    """Runs a statement whose FROM clause is a stream of TabSeparated rows made outside ClickHouse."""

    def run(
        self, statement: Callable[[str], str], structure: str, chunks: Iterable[Chunk], settings: dict[str, Any]
    ) -> None:
        """`statement(rows_sql)` builds the INSERT … SELECT … FROM rows_sql to execute."""

    def query(
        self, statement: Callable[[str], str], structure: str, chunks: Iterable[Chunk], settings: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Like `run`, for a SELECT; returns its rows (used by --dry-run: nothing is written)."""


class FileFeed:
    """chDB: stream the rows through a named pipe that `file()` reads while they are produced.

    PostgreSQL's COPY and ClickHouse's parse/fan-out then overlap, and no row touches the disk.
    A rows iterator that fails part-way closes the pipe early; the statement may then have
    inserted part of the rows, and the error is raised after it returns — callers write under
    attempt ids that only count once marked done, so a partial attempt is never read back.
    """

    def __init__(self, ch: ClickHouse) -> None:
        self._ch = ch

    @contextmanager
    def _pipe(self, chunks: Iterable[Chunk]) -> Iterator[str]:
        import errno
        import fcntl

        path = os.path.join(self._ch.spool_dir, f"rows-{uuid.uuid4().hex}.tsv")
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

    def run(
        self, statement: Callable[[str], str], structure: str, chunks: Iterable[Chunk], settings: dict[str, Any]
    ) -> None:
        with self._pipe(chunks) as path:
            self._ch.command(statement(self._rows_sql(path, structure)), settings=settings)

    def query(
        self, statement: Callable[[str], str], structure: str, chunks: Iterable[Chunk], settings: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        with self._pipe(chunks) as path:
            return self._ch.query(statement(self._rows_sql(path, structure)), settings=settings)


class BodyFeed:
    """A server: stream the rows as the HTTP request body behind the statement (`input()`)."""

    def __init__(self, ch: ClickHouse) -> None:
        self._ch = ch

    def run(
        self, statement: Callable[[str], str], structure: str, chunks: Iterable[Chunk], settings: dict[str, Any]
    ) -> None:
        sql = statement(f"input({literal(structure)})") + "\nFORMAT TabSeparated\n"

        def body() -> Iterator[bytes]:
            yield sql.encode()
            for chunk in chunks:
                yield bytes(chunk)

        try:
            # With no table, clickhouse-connect sends the block as the whole body: the server
            # reads the statement from its first line and the rows after it.
            self._ch._client.raw_insert(
                None,
                None,
                body(),
                settings={**SESSION_SETTINGS, **settings},
                fmt="TabSeparated",
            )
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, "inserting streamed rows") from None

    def query(
        self, statement: Callable[[str], str], structure: str, chunks: Iterable[Chunk], settings: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        from clickhouse_connect.driver.external import ExternalData

        data = ExternalData(file_name="rows", data=b"".join(chunks), structure=structure, fmt="TabSeparated")
        sql = statement("rows")
        try:
            return list(
                self._ch._client.query(sql, external_data=data, settings={**SESSION_SETTINGS, **settings}).result_rows
            )
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, "querying streamed rows") from None


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


# What chDB keeps in its folder: a folder with none of these is something else.
_ENGINE_ENTRIES = frozenset({"metadata", "store", "data", "status", "tmp", "user_files", "preprocessed_configs"})


def refuse_missing_engine(dsn: str, *, create: bool = False) -> None:
    """A chdb:// path must hold an embedded engine: a mistyped path would otherwise be created
    empty, and the error would then blame a missing source table. `create` allows a new one."""
    if not Capabilities.of(dsn).embedded:
        return
    path = embedded_path(dsn)
    if os.path.isfile(path):
        raise ConfigError(f"the chdb:// path {path} is a file, not an embedded ClickHouse folder: check --clickhouse")
    entries = set(os.listdir(path)) if os.path.isdir(path) else set()
    if entries and not entries & _ENGINE_ENTRIES:
        raise ConfigError(
            f"the folder {path} holds no embedded ClickHouse (no metadata/ or store/ in it): check the chdb:// "
            "path in --clickhouse"
        )
    if not entries and not create:
        raise ConfigError(
            f"no embedded ClickHouse at {path}: check the chdb:// path in --clickhouse, or pass --create-chdb "
            "to create a new one there"
        )


def embedded_path(dsn: str) -> str:
    return dsn[len("chdb://") :].split("?", 1)[0]


def _load_chdb_without_arrow() -> None:
    """Import chDB with its optional Arrow support left out, unless pyarrow is already loaded.

    chDB imports pyarrow (and with it numpy) when it is installed, for result formats the tool never
    asks for: about 45 MB of the process's resident memory (measured). Hiding it during chDB's own
    import only: a later `import pyarrow` elsewhere in the process works as usual."""
    import sys

    if "chdb" in sys.modules or "pyarrow" in sys.modules:
        return
    sys.modules["pyarrow"] = None  # type: ignore[assignment]  # makes `import pyarrow` fail
    try:
        import chdb.session  # noqa: F401  # loads chdb and its state module, which tries pyarrow
    finally:
        del sys.modules["pyarrow"]


def open_embedded(dsn: str, lock_wait: float = 0.0, on_wait: Callable[[str], None] | None = None, **kwargs: Any) -> Any:
    """A clickhouse-connect client on the embedded engine. An embedded engine belongs to one process:
    if another one holds it, wait up to `lock_wait` seconds (0: refuse at once, naming it)."""
    import time

    import clickhouse_connect

    _load_chdb_without_arrow()
    path = embedded_path(dsn)
    deadline = time.monotonic() + lock_wait
    told = False
    while True:
        pid = engine_holder(path)
        if pid is None or pid == str(os.getpid()):
            try:
                return clickhouse_connect.get_client(dsn=dsn, **kwargs)
            except Exception:
                if engine_holder(path) is None:
                    raise
        if time.monotonic() >= deadline:
            raise TargetError(
                f"the embedded ClickHouse at {path} is in use by process {pid or '?'} (an embedded "
                "engine belongs to one process): wait for it to finish or stop it, then run the command "
                "again — `metric-backfill status` shows what it is doing"
            )
        if on_wait and not told:
            on_wait(f"the embedded ClickHouse at {path} is in use by process {pid}; waiting for it")
            told = True
        time.sleep(0.2)


class ClickHouse:
    """The tool's handle on one ClickHouse (embedded or server); safe to share across threads."""

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: int = 10,
        lock_wait: float = 0.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.dsn = valid_dsn(dsn)
        self.capabilities = Capabilities.of(self.dsn)
        self._lock_wait = lock_wait
        self._on_wait = on_wait
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()
        self._connect_timeout = connect_timeout
        self._spool_dir: str | None = None
        self.feed: RowFeed = BodyFeed(self) if self.capabilities.streams_request_body else FileFeed(self)
        _ = self._client  # connect now: a bad DSN or password fails before anything else happens
        self.default_database = self._default_database()

    @property
    def spool_dir(self) -> str:
        """A private folder for the named pipes of the embedded feed, removed on close."""
        # Under the lock: chunks staged in parallel ask for it at the same moment, and a second
        # folder made by a racing thread would never be removed.
        with self._lock:
            if self._spool_dir is None:
                # The pid in the name lets `prune` tell the folders of killed processes from live ones.
                self._spool_dir = tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-")
            return self._spool_dir

    @property
    def embedded(self) -> bool:
        return self.capabilities.embedded

    def redacted_dsn(self) -> str:
        return redact(self.dsn)

    # clickhouse-connect clients are not thread-safe; each thread gets its own (on chDB each owns
    # a handle to the one engine, so queries of different threads run in parallel).
    @property
    def _client(self) -> Any:
        c = getattr(self._local, "client", None)
        if c is None:
            import clickhouse_connect

            try:
                if self.embedded:
                    c = open_embedded(self.dsn, self._lock_wait, self._on_wait, settings=dict(SESSION_SETTINGS))
                else:
                    c = clickhouse_connect.get_client(
                        dsn=self.dsn,
                        settings=dict(SESSION_SETTINGS),
                        connect_timeout=self._connect_timeout,
                        send_receive_timeout=3600,
                        autogenerate_session_id=False,
                    )
            except BackfillError:
                raise
            except Exception as exc:  # noqa: BLE001
                err = translate(exc, f"connecting to {self.redacted_dsn()}")
                if isinstance(err, TransientTargetError):
                    err = TransientTargetError(
                        f"cannot reach ClickHouse at {self.redacted_dsn()}: {err} — check the "
                        "host and port (HTTP: 8123, HTTPS: 8443) and that the server is running"
                    )
                raise err from None
            self._local.client = c
            with self._lock:
                self._clients.append(c)
        return c

    def _default_database(self) -> str:
        return str(self.query("SELECT currentDatabase()")[0][0])

    def close(self) -> None:
        with self._lock:
            for c in self._clients:
                with suppress(Exception):
                    c.close()
            self._clients.clear()
            spool, self._spool_dir = self._spool_dir, None
        self._local = threading.local()
        if spool:
            shutil.rmtree(spool, ignore_errors=True)

    def __enter__(self) -> ClickHouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- statements --------------------------------------------------------------------------
    def command(
        self,
        sql: str,
        *,
        parameters: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        what: str = "statement",
    ) -> Any:
        try:
            return self._client.command(sql, parameters=parameters, settings=settings or None)
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, what) from None

    def query(
        self,
        sql: str,
        *,
        parameters: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        what: str = "query",
    ) -> list[tuple[Any, ...]]:
        try:
            return list(self._client.query(sql, parameters=parameters, settings=settings or None).result_rows)
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, what) from None

    def stream(
        self, sql: str, *, parameters: dict[str, Any] | None = None, what: str = "query"
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of a query, block by block (never all in memory at once)."""
        try:
            with self._client.query_row_block_stream(sql, parameters=parameters) as blocks:
                for block in blocks:
                    yield from (tuple(r) for r in block)
        except BackfillError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, what) from None

    def insert(
        self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str], *, what: str = "insert"
    ) -> None:
        """Insert rows of Python values, as one `INSERT … VALUES` escaped by clickhouse-connect.

        Not the client's own `insert()`: that one imports pandas (half a second, and memory the run
        keeps) for the few small rows the tool's state and ledger write."""
        if not rows:
            return
        values = ",".join("(" + ",".join(value_literal(v) for v in row) + ")" for row in rows)
        cols = ", ".join(quote_ident(c) for c in columns)
        self.command(f"INSERT INTO {table} ({cols}) VALUES {values}", settings={"async_insert": 0}, what=what)

    def raw_insert(self, table: str, columns: Sequence[str], block: bytes, *, what: str) -> None:
        """Insert a block of TabSeparated rows."""
        try:
            self._client.raw_insert(
                table, list(columns), insert_block=block, fmt="TabSeparated", settings={"async_insert": 0}
            )
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, what) from None

    def columns(self, database: str, table: str) -> dict[str, str]:
        rows = self.query(
            "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} "
            "ORDER BY position",
            parameters={"db": database, "t": table},
        )
        return {str(n): str(t) for n, t in rows}

    def engine(self, database: str, table: str) -> str | None:
        rows = self.query(
            "SELECT engine FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            parameters={"db": database, "t": table},
        )
        return str(rows[0][0]) if rows else None

    @contextmanager
    def scratch_database(self, prefix: str) -> Iterator[str]:
        """A database of this command's own, under a random name (CREATE without IF NOT EXISTS: it
        fails rather than adopt one someone else made), dropped by that name only, on the way out."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.command(f"CREATE DATABASE {quote_ident(name)}", what="creating a scratch database")
        try:
            yield name
        finally:
            self.command(f"DROP DATABASE IF EXISTS {quote_ident(name)} SYNC", what="dropping the scratch database")

    def database_exists(self, database: str) -> bool:
        return bool(self.query("SELECT 1 FROM system.databases WHERE name = {d:String}", parameters={"d": database}))
