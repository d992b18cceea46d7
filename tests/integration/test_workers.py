"""Several processes share one run through a ClickHouse server (static partitioning of the chunks).

An embedded engine belongs to one process, so this runs whenever METRIC_BACKFILL_TEST_CLICKHOUSE_URL
names a server (and is skipped, saying why, otherwise).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from metric_backfill.backends._clickhouse import ClickHouse

CUTOFF = "2025-10-01 00:00:00"  # the generator's default cutoff


SERVER = os.environ.get("METRIC_BACKFILL_TEST_CLICKHOUSE_URL")


@pytest.mark.server
@pytest.mark.skipif(
    not SERVER,
    reason="two processes can share a run only through a ClickHouse server "
    "(an embedded engine belongs to one process); set METRIC_BACKFILL_TEST_CLICKHOUSE_URL",
)
def test_two_processes_share_one_run_on_a_server(pg_url: str) -> None:  # pragma: no cover - needs a server
    """Three processes, one run: static partitioning of the chunks; worker 0 publishes."""
    import clickhouse_connect

    from metric_backfill.demo._generate import generate

    assert SERVER
    db = f"t_{uuid.uuid4().hex[:8]}"
    client = clickhouse_connect.get_client(dsn=SERVER)
    try:
        generate(
            pg_url, ClickHouse(SERVER), scale=0.02, seed=3, ch_databases={"default": db, "orchestration": db + "_orch"}
        )
        args = [
            "--pg",
            pg_url,
            "--clickhouse",
            SERVER,
            "--cutoff",
            CUTOFF,
            "--table",
            f"{db}.entityMetricEvents",
            "--state-db",
            f"{db}_state",
            "--chunk-rows",
            "500",
            "--run-id",
            "shared",
            "--ch-table",
            f"modelVersionEvents={db}.modelVersionEvents",
            "--ch-table",
            f"jobs={db}_orch.jobs",
            "--ch-table",
            f"resourceCompensations={db}_orch.resourceCompensations",
            "--ch-table",
            f"buzz_resource_compensation={db}.buzz_resource_compensation",
        ]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "metric_backfill", "run", *args, "--worker", f"{k}/3"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for k in (2, 1, 0)
        ]
        for p in procs:
            _, err = p.communicate(timeout=600)
            assert p.returncode == 0, err[-2000:]
        workers = client.query(
            f"SELECT DISTINCT worker FROM {db}_state.chunks FINAL WHERE run_id = 'shared'"
        ).result_rows
        assert len({w[0].split("/")[-1] for w in workers}) == 3
        single = subprocess.run(
            [
                sys.executable,
                "-m",
                "metric_backfill",
                "run",
                *args[:-2],
                "--run-id",
                "single",
                "--table",
                f"{db}.single",
                "--earnings-table",
                f"{db}.single",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert single.returncode == 0, single.stderr[-2000:]
        q = "SELECT count(), sum(metricValue), sum(cityHash64(*)) FROM {}.{}"
        assert (
            client.query(q.format(db, "entityMetricEvents")).result_rows
            == client.query(q.format(db, "single")).result_rows
        )
    finally:
        for d in (db, db + "_orch", db + "_state"):
            client.command(f"DROP DATABASE IF EXISTS {d}")
