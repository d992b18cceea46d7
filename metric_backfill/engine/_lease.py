"""The target lease: one publisher per target at a time, across processes and machines.

ClickHouse has no compare-and-set, so the lease is taken by *insert, then look*: a publisher
inserts a row naming itself, then reads every live lease row of the target. It holds the lease
only if it sees no one else; otherwise it withdraws its row and tries again after a random pause.
Two publishers can never both hold it: whichever looked second saw the other's row (each inserted
before looking), and on a single server a synchronous insert is visible to every later read.

A lease expires (`ttl` seconds after its last renewal, on the ClickHouse server's clock) unless a
background thread renews it. A holder on this machine whose process is gone is treated as expired
at once — after a kill -9 the same command goes on without waiting for the expiry; an embedded
engine belongs to one process, so there this is always the case.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType

from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill._errors import TargetError
from metric_backfill.backends._sql import qualified, quote_ident

__all__ = ["LEASES", "Lease"]

LEASES = "metric_backfill_leases"


def _alive(host: str, pid: int) -> bool:
    if host != socket.gethostname():
        return True  # another machine's process: only the expiry can tell
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lease:
    """`with Lease(ch, database, target_label, run_id): ...` — exclusive publishing into one target."""

    def __init__(
        self,
        ch: ClickHouse,
        database: str,
        target: str,
        run_id: str,
        *,
        ttl: float = 60.0,
        wait: float | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.ch = ch
        self.table = qualified(database, LEASES)
        self.database = database
        self.target = target
        self.run_id = run_id
        self.ttl = ttl
        self.wait = wait
        self.on_wait = on_wait
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renewed = time.monotonic()

    def _ensure(self) -> None:
        self.ch.command(f"CREATE DATABASE IF NOT EXISTS {quote_ident(self.database)}", what="creating the lease table")
        self.ch.command(
            f"""CREATE TABLE IF NOT EXISTS {self.table} (
            target String, holder String, run_id String, host String, pid UInt32,
            expires_at DateTime64(3, 'UTC'), released UInt8, at DateTime64(6, 'UTC')
        ) ENGINE = ReplacingMergeTree(at) ORDER BY (target, holder)""",
            what="creating the lease table",
        )

    def _write(self, released: int) -> None:
        # The server's clock decides expiry, so that machines with skewed clocks agree.
        self.ch.command(
            f"INSERT INTO {self.table} SELECT {{t:String}}, {{h:String}}, {{r:String}}, {{host:String}}, {{pid:UInt32}}, "
            f"now64(3, 'UTC') + toIntervalMillisecond({int(self.ttl * 1000)}), {int(released)}, now64(6, 'UTC')",
            parameters={
                "t": self.target,
                "h": self.holder,
                "r": self.run_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
            },
            settings={"async_insert": 0},
            what="writing the target lease",
        )

    def _others(self) -> list[tuple[str, str, str, int, float]]:
        rows = self.ch.query(
            f"SELECT holder, argMax(run_id, at), argMax(host, at), argMax(pid, at), "
            f"dateDiff('millisecond', now64(3, 'UTC'), argMax(expires_at, at)) AS left_ms "
            f"FROM {self.table} WHERE target = {{t:String}} GROUP BY holder "
            "HAVING argMax(released, at) = 0 AND left_ms > 0",
            parameters={"t": self.target},
            what="reading the target lease",
        )
        return [
            (str(h), str(r), str(host), int(pid), int(ms) / 1000)
            for h, r, host, pid, ms in rows
            if h != self.holder and _alive(str(host), int(pid))
        ]

    def acquire(self) -> None:
        self._ensure()
        deadline = None if self.wait is None else time.monotonic() + self.wait
        told = False
        while True:
            self._write(0)
            self._renewed = time.monotonic()
            others = self._others()
            if not others:
                break
            self._write(1)
            holder, run, host, pid, left = others[0]
            if deadline is not None and time.monotonic() > deadline:
                raise TargetError(
                    f"another publish into {self.target} holds its lease (run {run}, process {pid} on "
                    f"{host}, expires in {left:.0f} s unless renewed): wait for it to finish, then run "
                    "the command again"
                )
            if self.on_wait and not told:
                self.on_wait(
                    f"waiting for the publish of run {run} (process {pid} on {host}) into {self.target} "
                    f"to finish (its lease expires in {left:.0f} s unless renewed)"
                )
                told = True
            time.sleep(random.uniform(0.2, 1.0))
        self._thread = threading.Thread(target=self._renew, name="lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            with suppress(Exception):  # a failed renewal is retried; `check` tells when it is too late
                self._write(0)
                self._renewed = time.monotonic()

    def check(self) -> None:
        """Raise if the lease may have expired (renewals failing): another publisher may take it."""
        if time.monotonic() - self._renewed > self.ttl * 0.8:
            raise TargetError(
                f"the lease on {self.target} could not be renewed (ClickHouse unreachable?): stopped "
                "before the next step; run the same command again"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with suppress(Exception):
            self._write(1)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
