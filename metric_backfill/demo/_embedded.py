"""Embedded servers for the demo, the tests and the benchmark.

PostgreSQL comes from the `pgserver` wheel (a PostgreSQL 16 build shipped on PyPI); we drive its
binaries ourselves instead of using `pgserver.get_server()` because that helper only listens on a
Unix socket. A TCP listener lets ClickHouse's `postgresql()` table function reach the same server
(the benchmark's read ceiling) and gives the tool a URL shaped exactly like a production one.
ClickHouse is chDB, reached through clickhouse-connect's `chdb://` DSN: nothing to start.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EmbeddedPostgres", "chdb_dsn"]


def chdb_dsn(path: str | os.PathLike[str]) -> str:
    """The clickhouse-connect DSN of an embedded chDB engine stored under `path`."""
    return "chdb://" + str(Path(path).resolve())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> Path:
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / name


@dataclass
class EmbeddedPostgres:
    """A throw-away PostgreSQL 16 server whose data directory is `data_dir`.

    `fast=True` turns durability off (fsync, full-page writes): right for generated demo data,
    and the reason the embedded server must never hold anything one cares about.
    """

    data_dir: Path
    port: int = 0
    fast: bool = True
    password: str | None = None
    """With a password, TCP logins need it (scram-sha-256); without, they are trusted."""

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self._run_as: str | None = None
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # PostgreSQL refuses to run as root; pgserver's helper creates an unprivileged user.
            from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

            self._run_as = "pgserver"
            ensure_user_exists(self._run_as)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            ensure_prefix_permissions(self.data_dir)
            for p in (
                _bin("postgres").parent,
                _bin("postgres").parent.parent / "lib",
                _bin("postgres").parent.parent / "share",
            ):
                os.system(f"chmod -R o+rX '{p}' 2>/dev/null")

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "sock"

    def _cmd(self, args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        done: subprocess.CompletedProcess[str] = subprocess.run(  # type: ignore[call-overload]
            args, check=True, capture_output=True, text=True, user=self._run_as, **kw
        )
        return done

    def _chown(self, path: Path) -> None:
        if self._run_as:
            shutil.chown(path, self._run_as, self._run_as)

    def start(self) -> EmbeddedPostgres:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.data_dir)
        if self.is_running():
            self.port = self._running_port()
            return self
        if not (self.pgdata / "PG_VERSION").exists():
            if self.pgdata.exists():
                shutil.rmtree(self.pgdata)
            auth = ["--auth=trust"]
            if self.password:
                pwfile = self.data_dir / "pwfile"
                pwfile.write_text(self.password + "\n")
                self._chown(pwfile)
                auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
            self._cmd(
                [
                    str(_bin("initdb")),
                    "-D",
                    str(self.pgdata),
                    *auth,
                    "-U",
                    "postgres",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            )
        self.socket_dir.mkdir(exist_ok=True)
        self._chown(self.socket_dir)
        self.port = self.port or _free_port()
        opts = [
            f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir}",
            "-c max_connections=100 -c shared_buffers=256MB -c work_mem=64MB",
            "-c max_worker_processes=8 -c max_parallel_workers_per_gather=0",
        ]
        if self.fast:
            opts.append("-c fsync=off -c full_page_writes=off -c synchronous_commit=off")
        args = [
            str(_bin("pg_ctl")),
            "-D",
            str(self.pgdata),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.data_dir / "postgres.log"),
            "-o",
            " ".join(opts),
            "start",
        ]
        self._cmd(args)
        return self

    def _running_port(self) -> int:
        pid_file = self.pgdata / "postmaster.pid"
        lines = pid_file.read_text().splitlines()
        return int(lines[3])

    def is_running(self) -> bool:
        # The postmaster's pid file and a signal 0, as `pg_ctl status` does, without a subprocess
        # (which a loaded machine made fail spuriously, so that a running server was "started" again).
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stop(self) -> None:
        if self.is_running():
            self._cmd([str(_bin("pg_ctl")), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"])

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- access ------------------------------------------------------------------------------
    def url(self, database: str = "postgres", password: str | None = None) -> str:
        pw = password if password is not None else self.password
        return f"postgresql://postgres{':' + pw if pw else ''}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, *, drop: bool = False) -> str:
        from metric_backfill.backends._postgres import create_database

        create_database(self.url(), name, drop=drop)
        return self.url(name)
