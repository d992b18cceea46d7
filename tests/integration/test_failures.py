"""Failures that must name their cause: PostgreSQL sessions ending under a run, locks, timeouts, the
embedded engine held by another process, and secrets in every spelling kept out of every message.

PostgreSQL failures are real (a backend terminated with pg_terminate_backend, a server restarted,
a lock held by another session); only a standby's recovery conflict is played by a test double.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from cliout import problem
from click.testing import CliRunner
from sourcedata import pg_exec
from totals import Totals, assert_exact

from metric_backfill import RunResult
from metric_backfill.cli._commands import cli as command
from metric_backfill.demo._embedded import EmbeddedPostgres, chdb_dsn
from metric_backfill.backends._postgres import CopyStream
from metric_backfill.engine._stage import ChunkStager

EMBEDDED = not os.environ.get("METRIC_BACKFILL_TEST_CLICKHOUSE_URL")


def terminate(pg: str, where: str) -> int:
    with psycopg.connect(pg, autocommit=True) as admin:
        rows = admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {where}").fetchall()
    return len(rows)


def snapshot_ids(ch_client: Any, ch_db: str, run_id: str) -> list[str]:
    import json

    manifest = ch_client.query(
        f"SELECT manifest FROM {ch_db}_state.runs FINAL WHERE run_id = {{r:String}}", parameters={"r": run_id}
    ).result_rows[0][0]
    return list(json.loads(manifest)["snapshot_ids"])


def test_a_backend_terminated_between_copy_and_commit_is_retried(
    world: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    pg: str,
    ch_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = target("events")
    killed: list[int] = []
    lock = threading.Lock()

    def copy_then_die(self: CopyStream) -> Any:
        with self._snap.transaction(self._conn) as conn:
            cur = conn.cursor()
            with cur.copy(
                psycopg.sql.SQL("COPY ({}) TO STDOUT").format(psycopg.sql.SQL(self._query)), self._params
            ) as cp:
                yield from cp
            self.rows = cur.rowcount
            with lock:
                if not killed:  # the rows are out; the COMMIT will meet a terminated backend
                    killed.append(terminate(pg, f"pid = {conn.info.backend_pid}"))

    monkeypatch.setattr(CopyStream, "__iter__", copy_then_die)
    result = engine()
    assert killed == [1] and result.status == "published"
    assert_exact(ch_client, ch_db, table, world)


def test_a_terminated_snapshot_holder_continues_under_a_new_snapshot(
    world: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    pg: str,
    ch_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = target("events")
    real = ChunkStager.stage
    done: list[int] = []

    def stage(self: ChunkStager, sp: Any, chunk: Any, attempt: int) -> int:
        if not done:
            done.append(
                terminate(
                    pg,
                    "application_name = 'metric-backfill' AND state = 'idle in transaction' "
                    "AND backend_xid IS NULL AND query LIKE '%pg_export_snapshot%'",
                )
            )
        return real(self, sp, chunk, attempt)

    monkeypatch.setattr(ChunkStager, "stage", stage)
    result = engine(concurrency=1)
    assert done == [1] and result.status == "published"
    assert len(snapshot_ids(ch_client, ch_db, result.run_id)) == 2
    assert_exact(ch_client, ch_db, table, world)


def test_a_postgres_restart_during_the_run_is_retried(
    world: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    pg_server: EmbeddedPostgres,
    ch_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = target("events")
    real = ChunkStager.stage
    restarted: list[bool] = []

    def stage(self: ChunkStager, sp: Any, chunk: Any, attempt: int) -> int:
        if not restarted and sp.source.name == "CollectionItem":
            restarted.append(True)
            pg_server.stop()
            pg_server.start()
        return real(self, sp, chunk, attempt)

    monkeypatch.setattr(ChunkStager, "stage", stage)
    result = engine(concurrency=1)
    assert restarted and result.status == "published"
    assert_exact(ch_client, ch_db, table, world)


def test_a_server_wide_idle_in_transaction_timeout_does_not_end_the_snapshot(
    world: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    pg: str,
    ch_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = target("events")
    pg_exec(pg, f"ALTER DATABASE {pg.rsplit('/', 1)[1]} SET idle_in_transaction_session_timeout = '300ms'")
    real = ChunkStager.stage
    slow: list[int] = []

    def stage(self: ChunkStager, sp: Any, chunk: Any, attempt: int) -> int:
        if len(slow) < 2:
            slow.append(1)
            time.sleep(0.8)  # longer than the timeout, with the snapshot holder idle in its transaction
        return real(self, sp, chunk, attempt)

    monkeypatch.setattr(ChunkStager, "stage", stage)
    result = engine(concurrency=1)
    assert len(snapshot_ids(ch_client, ch_db, result.run_id)) == 1
    assert_exact(ch_client, ch_db, table, world)


def test_a_recovery_conflict_on_a_standby_is_retried(
    world: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    ch_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = target("events")
    real = psycopg.Cursor.copy
    raised: list[int] = []
    lock = threading.Lock()

    def conflict(self: psycopg.Cursor[Any], *a: Any, **kw: Any) -> Any:
        with lock:
            if not raised:
                raised.append(1)
                # What a hot standby raises when replay removes rows a query still needs (test double).
                raise psycopg.errors.SerializationFailure("canceling statement due to conflict with recovery")
        return real(self, *a, **kw)

    monkeypatch.setattr(psycopg.Cursor, "copy", conflict)
    result = engine()
    assert raised and result.status == "published"
    assert_exact(ch_client, ch_db, table, world)


def mb(*args: str) -> list[str]:
    return [sys.executable, "-m", "metric_backfill", *args]


@pytest.fixture()
def locked(pg: str) -> Any:
    """Another session holding an ACCESS EXCLUSIVE lock on ImageReaction."""
    conn = psycopg.connect(pg)
    conn.execute('LOCK TABLE "ImageReaction" IN ACCESS EXCLUSIVE MODE')
    yield conn
    conn.rollback()
    conn.close()


def _run_args(pg: str, ch_dsn: str, ch_db: str) -> list[str]:
    return [
        "run",
        "--pg",
        pg,
        "--clickhouse",
        ch_dsn,
        "--cutoff",
        "2025-06-01 00:00:00",
        "--table",
        f"{ch_db}.entityMetricEvents",
        "--state-db",
        f"{ch_db}_state",
        "--sources",
        "ImageReaction",
        "--create-chdb",
    ]


def test_a_locked_table_is_reported_with_the_fix_not_waited_on(
    pg: str, ch: Any, ch_dsn: str, ch_db: str, locked: Any
) -> None:

    t0 = time.monotonic()
    result = CliRunner().invoke(command, [*_run_args(pg, ch_dsn, ch_db), "--pg-lock-timeout", "1"])
    assert time.monotonic() - t0 < 30
    err = problem(result.stderr)
    assert result.exit_code == 3, err
    assert len(err.splitlines()) == 1 and "locked by another session" in err and "--pg-lock-timeout" in err


@pytest.mark.skipif(not EMBEDDED, reason="drives the CLI as a process on an embedded engine of its own")
def test_ctrl_c_stops_within_seconds_while_waiting_for_a_lock(pg: str, tmp_path: Path, locked: Any) -> None:
    proc = subprocess.Popen(
        mb(*_run_args(pg, chdb_dsn(tmp_path / "ch"), "x")), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(4)  # the plan waits for the lock
    assert proc.poll() is None
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 10
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err


@pytest.mark.skipif(not EMBEDDED, reason="the embedded engine's one-process rule")
def test_a_second_process_on_one_embedded_engine_is_refused_at_once(pg: str, tmp_path: Path) -> None:
    path = tmp_path / "ch"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, clickhouse_connect; "
            f"c = clickhouse_connect.get_client(dsn={chdb_dsn(path)!r}); c.query('SELECT 1'); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        for args in (
            ["run", "--pg", pg, "--cutoff", "2025-06-01 00:00:00"],
            ["run", "--pg", pg, "--cutoff", "2025-06-01 00:00:00", "--run-id", "r", "--worker", "1/2"],
        ):
            t0 = time.monotonic()
            done = subprocess.run(mb(*args, "--clickhouse", chdb_dsn(path)), capture_output=True, text=True, timeout=60)
            assert time.monotonic() - t0 < 20
            assert done.returncode in (2, 3), done.stderr
            err = problem(done.stderr)
            assert len(err.splitlines()) == 1 and "Traceback" not in err
            assert f"in use by process {holder.pid}" in err or "embedded engine belongs to one process" in err
    finally:
        holder.kill()
        holder.wait()


# -- secrets in every spelling --------------------------------------------------------------------

HOSTILE = [
    "p%w",
    "p'w",
    'p"w',
    "p\\w",
    "p:w",
    "p/w",
    "p?w",
    "p#w",
    "p&w",
    "p=w",
    "p;w",
    "p@w",
    "p w",
    "%41%42%",
    "all % ' \" \\ : / ? # & = ; @ of them",
]


def _spellings(pw: str) -> set[str]:
    from urllib.parse import quote_plus, unquote

    return {s for s in (pw, quote(pw, safe=""), quote_plus(pw), unquote(pw)) if len(s) >= 3}


@pytest.mark.parametrize("pw", HOSTILE)
def test_no_spelling_of_a_hostile_password_reaches_any_message(pw: str, tmp_path: Path, ch_dsn: str) -> None:

    runner = CliRunner()
    attempts = [
        # raw in the URL, percent-encoded in the URL, through the environment; refused connections
        [
            "run",
            "--pg",
            f"postgresql://u:{pw}@127.0.0.1:1/db",
            "--clickhouse",
            ch_dsn,
            "--cutoff",
            "2025-06-01 00:00:00",
        ],
        [
            "run",
            "--pg",
            f"postgresql://u:{quote(pw, safe='')}@127.0.0.1:1/db",
            "--clickhouse",
            ch_dsn,
            "--cutoff",
            "2025-06-01 00:00:00",
        ],
        [
            "run",
            "--clickhouse",
            f"http://default:{pw}@127.0.0.1:1/default",
            "--pg",
            "postgresql://u@127.0.0.1:1/db",
            "--cutoff",
            "2025-06-01 00:00:00",
        ],
        [
            "run",
            "--clickhouse",
            f"http://default:{quote(pw, safe='')}@127.0.0.1:1/default",
            "--pg",
            "postgresql://u@127.0.0.1:1/db",
            "--cutoff",
            "2025-06-01 00:00:00",
        ],
        ["status", "--clickhouse", f"https://default:{quote(pw, safe='')}@127.0.0.1:9440/default"],
    ]
    for args in attempts:
        result = runner.invoke(command, args)
        text = result.output + result.stderr
        assert result.exit_code in (2, 3), text
        for s in _spellings(pw):
            assert s not in text, (args, text)
    env = {
        "METRIC_BACKFILL_PG_URL": f"postgresql://u:{quote(pw, safe='')}@127.0.0.1:1/db",
        "METRIC_BACKFILL_CLICKHOUSE_URL": ch_dsn,
    }
    result = runner.invoke(command, ["run", "--cutoff", "2025-06-01 00:00:00"], env=env)
    assert result.exit_code == 3
    for s in _spellings(pw):
        assert s not in result.output + result.stderr


def test_a_real_password_with_every_hostile_character_connects_and_never_shows(
    tmp_path: Path, ch_dsn: str, ch_client: Any, ch_db: str
) -> None:

    pw = "all % ' \" \\ : / ? # & = ; @ of them"
    server = EmbeddedPostgres(tmp_path / "pg", password=pw).start()
    try:
        base = f"postgresql://postgres:{quote(pw, safe='')}@127.0.0.1:{server.port}"
        with psycopg.connect(base + "/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE site")
        with psycopg.connect(base + "/site", autocommit=True) as conn:
            conn.execute('CREATE TABLE "BuzzTip" ("entityType" text)')
        ok = CliRunner().invoke(command, ["plan", "--pg", base + "/site", "--format", "json"])
        assert ok.exit_code == 0
        wrong = CliRunner().invoke(
            command,
            [
                "run",
                "--pg",
                base.replace(quote(pw, safe=""), quote(pw[:-1], safe="")) + "/site",
                "--clickhouse",
                ch_dsn,
                "--cutoff",
                "2025-06-01 00:00:00",
                "--state-db",
                f"{ch_db}_state",
            ],
        )
        assert wrong.exit_code == 2 and "refused the credentials" in wrong.stderr
        missing = CliRunner().invoke(
            command,
            [
                "run",
                "--pg",
                base + "/nope",
                "--clickhouse",
                ch_dsn,
                "--cutoff",
                "2025-06-01 00:00:00",
                "--state-db",
                f"{ch_db}_state",
            ],
        )
        assert missing.exit_code == 2 and "check the database name" in missing.stderr
        plan = ["plan", "--format", "json", "--pg"]
        nopass = CliRunner().invoke(command, [*plan, f"postgresql://postgres@127.0.0.1:{server.port}/site"])
        assert nopass.exit_code == 2 and "asks for a password" in nopass.stderr, nopass.stderr
        nobody = CliRunner().invoke(command, [*plan, base.replace("postgres:", "nobody:", 1) + "/site"])
        assert nobody.exit_code == 2, nobody.stderr
        assert "check the user" in nobody.stderr or "refused the credentials" in nobody.stderr
        for result in (wrong, missing, nopass, nobody):
            assert len(problem(result.stderr).splitlines()) == 1, result.stderr  # one line
        for result in (ok, wrong, missing, nopass, nobody):
            for s in _spellings(pw) | _spellings(pw[:-1]):
                assert s not in result.output + result.stderr
    finally:
        server.stop()
