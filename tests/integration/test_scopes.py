"""Verify and reconcile that cannot hurt a live target: scopes that are right by default, every
difference named, a reconcile that shows before it writes, and a run's identity that survives
another connection."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cliout import problem
from click.testing import CliRunner
from live import LivePipeline
from sourcedata import CUTOFF, CUTOFF_DATE, B, pg_exec
from test_live import SOURCES, TODAY, build_world, live_changes, make_target
from totals import Totals, table_totals

from metric_backfill import ConfigError, DifferencesFound, RunConfig, RunResult, run
from metric_backfill.verify._verify import reconcile, verify
from metric_backfill.cli._commands import cli


def cfg_for(pg: str, ch_dsn: str, ch_db: str, ch: dict[str, str], table: str, **kw: Any) -> RunConfig:
    options: dict[str, Any] = {
        "cutoff": CUTOFF,
        "earnings_cutoff_date": CUTOFF_DATE,
        "table": table,
        "earnings_table": table,
        "state_database": f"{ch_db}_state",
        "ch_tables": dict(ch),
        **kw,
    }
    return RunConfig(pg_url=pg, clickhouse_url=ch_dsn, **options)


def cli_args(pg: str, ch_dsn: str, ch_db: str, ch: dict[str, str], table: str, *extra: str) -> list[str]:
    tables = [a for k, v in ch.items() for a in ("--ch-table", f"{k}={v}")]
    return [
        "--pg",
        pg,
        "--clickhouse",
        ch_dsn,
        "--cutoff",
        "2025-06-01 00:00:00",
        "--table",
        table,
        "--earnings-table",
        table,
        "--state-db",
        f"{ch_db}_state",
        *tables,
        *extra,
    ]


@pytest.fixture()
def live_world(pg: str, ch_client: Any, ch_db: str) -> tuple[str, LivePipeline]:
    table = make_target(ch_client, ch_db, "events", "entityMetricEvents")
    live = LivePipeline(pg, ch_client, table, CUTOFF)
    build_world(pg, live)
    live_changes(live)
    return table, live


@pytest.mark.parametrize("netted", [True, False])
def test_on_a_live_target_verify_checks_the_backfills_window_by_default(
    netted: bool,
    live_world: tuple[str, LivePipeline],
    engine: Callable[..., RunResult],
    pg: str,
    ch: dict[str, str],
    ch_dsn: str,
    ch_db: str,
) -> None:
    table, live = live_world
    engine(table=table, earnings_table=table, sources=SOURCES, net_against_live=netted)
    cfg = cfg_for(pg, ch_dsn, ch_db, ch, table, sources=SOURCES)
    window = verify(cfg)
    assert window.report.ok and window.rollups_ok, [p for p in window.report.pairs if p.differing]
    assert sum(p.entities for p in window.report.pairs) > 20
    # Everything up to a moment after every live change: right when netted, off by the gap otherwise.
    everything = verify(cfg, as_of=TODAY)
    gap_entities = {(et, eid, mt) for (et, eid, mt, _uid), v in live.gap.items() if v}
    assert everything.report.ok == netted
    if not netted:
        assert 0 < everything.report.differing <= len(gap_entities)
    result = CliRunner().invoke(
        cli, ["verify", *cli_args(pg, ch_dsn, ch_db, ch, table, "--sources", ",".join(SOURCES))]
    )
    assert result.exit_code == 0, result.output + result.stderr


def test_as_of_within_the_live_lag_is_refused_naming_the_flag(
    pg: str, ch: dict[str, str], ch_dsn: str, ch_db: str, engine: Callable[..., RunResult]
) -> None:
    engine(sources=("ImageReaction",))
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    table = f"{ch_db}.entityMetricEvents"
    with pytest.raises(ConfigError, match="--live-lag"):
        verify(cfg_for(pg, ch_dsn, ch_db, ch, table), as_of=now - timedelta(minutes=10))
    for command in ("verify", "reconcile"):
        result = CliRunner().invoke(
            cli,
            [
                command,
                *cli_args(
                    pg,
                    ch_dsn,
                    ch_db,
                    ch,
                    table,
                    "--as-of",
                    str(now - timedelta(minutes=5)),
                    "--dry-run" if command == "reconcile" else "--target",
                ),
            ],
        )
        assert result.exit_code == 2 and "--live-lag" in result.stderr and len(problem(result.stderr).splitlines()) == 1
    # with a smaller lag it is a check like any other
    assert verify(cfg_for(pg, ch_dsn, ch_db, ch, table), as_of=now - timedelta(minutes=10), live_lag=60).report.pairs


def _seed_drift(ch_client: Any, table: str, n: int) -> set[tuple[str, int, str]]:
    keys = ch_client.query(
        f"SELECT entityType, entityId, metricType FROM {table} GROUP BY ALL "
        f"HAVING sum(metricValue) != 0 ORDER BY ALL LIMIT {n}"
    ).result_rows
    for et, eid, mt in keys:
        ch_client.insert(
            table,
            [[et, eid, 77, mt, 3, CUTOFF - timedelta(days=3)]],
            column_names=["entityType", "entityId", "userId", "metricType", "metricValue", "createdAt"],
            settings={"async_insert": 0},
        )
    return {(str(et), int(eid), str(mt)) for et, eid, mt in keys}


def test_every_difference_is_named_in_the_json_and_reconcile_shows_before_it_writes(
    world: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    pg: str,
    ch: dict[str, str],
    ch_client: Any,
    ch_dsn: str,
    ch_db: str,
    tmp_path: Path,
) -> None:
    table = target("events")
    engine(earnings_table=table)
    seeded = _seed_drift(ch_client, table, 12)
    args = cli_args(pg, ch_dsn, ch_db, ch, table)

    out = tmp_path / "verify.json"
    result = CliRunner().invoke(cli, ["verify", *args, "--json", str(out)])
    assert result.exit_code == 1
    doc = json.loads(out.read_text())
    assert {(d["entityType"], d["entityId"], d["metricType"]) for d in doc["differences"]} == seeded
    assert all(d["actual"] - d["expected"] == 3 and d["correction"] == -3 for d in doc["differences"])
    assert doc["differing_entities"] == 12 and doc["pairs"]
    stdout = CliRunner().invoke(cli, ["verify", *args, "--json", "-"])
    assert stdout.exit_code == 1 and len(json.loads(stdout.stdout)["differences"]) == 12

    before = table_totals(ch_client, table)
    plan = tmp_path / "plan.json"
    dry = CliRunner().invoke(cli, ["reconcile", *args, "--dry-run", "--json", str(plan)])
    assert dry.exit_code == 0 and "12 corrections would be written; nothing was written" in dry.output
    assert len(json.loads(plan.read_text())["differences"]) == 12
    assert table_totals(ch_client, table) == before
    refused = CliRunner().invoke(cli, ["reconcile", *args])  # off a terminal: only with --yes
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    declined = CliRunner().invoke(cli, ["reconcile", *args], input="n\n")
    assert declined.exit_code == 2 or "nothing was written" in declined.output
    assert table_totals(ch_client, table) == before

    fixed = CliRunner().invoke(cli, ["reconcile", *args, "--yes"])
    assert fixed.exit_code == 0 and "wrote 12 corrections" in fixed.output
    assert table_totals(ch_client, table) == world
    assert CliRunner().invoke(cli, ["verify", *args]).exit_code == 0
    runs = ch_client.query(f"SELECT count() FROM {ch_db}_state.runs FINAL WHERE run_id LIKE 'reconcile-%'").result_rows
    nothing = CliRunner().invoke(cli, ["reconcile", *args, "--yes"])
    assert nothing.exit_code == 0 and "no run was recorded" in nothing.output
    assert (
        ch_client.query(f"SELECT count() FROM {ch_db}_state.runs FINAL WHERE run_id LIKE 'reconcile-%'").result_rows
        == runs
    )


def test_replace_after_a_mutation_says_which_entities_it_could_not_make_exact(
    world: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    pg: str,
    ch: dict[str, str],
    ch_client: Any,
    ch_dsn: str,
    ch_db: str,
) -> None:
    table = target("events")
    engine(earnings_table=table)
    ch_client.command(
        f"ALTER TABLE {table} DELETE WHERE entityType = 'Image' AND entityId = 100 AND metricType = 'Like'",
        settings={"mutations_sync": 2},
    )
    with pytest.raises(DifferencesFound, match=r"Image.Like 100: -?\d+ instead of \d+"):
        engine(earnings_table=table, only=("Image.Like",), on_overlap="replace", cutoff=CUTOFF - timedelta(hours=1))
    # What it names, reconcile fixes.
    cfg = cfg_for(pg, ch_dsn, ch_db, ch, table, cutoff=CUTOFF - timedelta(hours=1), only=())
    fix = reconcile(cfg)
    assert fix.corrections >= 1
    assert verify(cfg).report.ok


def test_a_run_resumed_through_another_host_and_user_is_the_same_run(
    world: Totals, engine: Callable[..., RunResult], pg: str, ch: dict[str, str], ch_dsn: str, ch_db: str
) -> None:
    staged = engine(run_kw={"stage_only": True})
    pg_exec(pg, "CREATE ROLE other_reader LOGIN SUPERUSER")
    other = pg.replace("postgres@127.0.0.1", "other_reader@localhost")
    assert other != pg
    resumed = run(
        RunConfig(
            pg_url=other,
            clickhouse_url=ch_dsn,
            cutoff=CUTOFF,
            earnings_cutoff_date=CUTOFF_DATE,
            table=f"{ch_db}.entityMetricEvents",
            state_database=f"{ch_db}_state",
            ch_tables=dict(ch),
            pg_lock_timeout=5,
        )
    )
    assert resumed.run_id == staged.run_id and resumed.resumed and resumed.status == "published"


def test_a_cutoff_after_the_snapshot_is_refused(
    pg: str, ch: dict[str, str], ch_dsn: str, ch_db: str, engine: Callable[..., RunResult], ch_client: Any
) -> None:
    future = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0) + timedelta(days=1)
    with pytest.raises(ConfigError, match="after the source snapshot's time"):
        engine(sources=("ImageReaction",), cutoff=future)
    result = CliRunner().invoke(
        cli,
        [
            "run",
            *cli_args(pg, ch_dsn, ch_db, ch, f"{ch_db}.entityMetricEvents")[:4],
            "--cutoff",
            str(future),
            "--state-db",
            f"{ch_db}_state",
        ],
    )
    assert result.exit_code == 2 and len(problem(result.stderr).splitlines()) == 1


def test_dry_run_prints_the_keys_it_would_net(
    live_world: tuple[str, LivePipeline], pg: str, ch: dict[str, str], ch_dsn: str, ch_db: str
) -> None:
    table, _live = live_world
    result = CliRunner().invoke(
        cli,
        [
            "run",
            *cli_args(
                pg,
                ch_dsn,
                ch_db,
                ch,
                table,
                "--sources",
                ",".join(SOURCES),
                "--net-against-live",
                "--dry-run",
                "--json",
                "-",
            ),
        ],
    )
    assert result.exit_code == 0, result.stderr
    pairs = json.loads(result.stdout)["pairs"]
    assert pairs["Model.thumbsUpCount"]["netted_keys"] == 2 and pairs["Image.Like"]["netted_keys"] >= 2
    assert B  # the shared timestamps stay in use
