"""verify and reconcile with seeded drift: exactly the drifted entities are found, and fixed once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sourcedata import CUTOFF
from totals import rollup_totals, table_totals

from metric_backfill import RunConfig, RunResult
from metric_backfill.verify._verify import CORRECTION_USER, reconcile, verify


def config(pg: str, ch_dsn: str, ch_db: str, ch: dict[str, str]) -> RunConfig:
    return RunConfig(
        pg_url=pg,
        clickhouse_url=ch_dsn,
        cutoff=CUTOFF,
        table=f"{ch_db}.entityMetricEvents",
        state_database=f"{ch_db}_state",
        ch_tables=dict(ch),
    )


def differing(result: Any) -> dict[tuple[str, int, str], tuple[int, int]]:
    return {
        (p.pair.split(".")[0], w["entityId"], p.pair.split(".")[1]): (w["expected"], w["actual"])
        for p in result.report.pairs
        for w in p.worst
    }


def test_verify_finds_exactly_the_seeded_drift_and_reconcile_fixes_it_once(
    world: dict[Any, int],
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    pg: str,  # noqa: F811
    ch: dict[str, str],
    ch_client: Any,
    ch_dsn: str,
    ch_db: str,
) -> None:
    table = target("events")
    run = engine()
    cfg = config(pg, ch_dsn, ch_db, ch)

    clean = verify(cfg, as_of=CUTOFF)
    assert clean.report.ok and sum(p.entities for p in clean.report.pairs) == len(world)
    assert verify(cfg, run_id=run.run_id).report.ok  # the staged run checks out too

    # Drift: events deleted, duplicated and altered in the target.
    ch_client.command(f"DELETE FROM {table} WHERE entityType = 'Image' AND entityId = 100 AND metricType = 'Like'")
    ch_client.command(
        f"INSERT INTO {table} SELECT * FROM {table} WHERE entityType = 'User' AND entityId = 2 "
        "AND metricType = 'followerCount'",
        settings={"async_insert": 0},
    )
    ROWS_30 = ch_client.query(
        f"SELECT count() FROM {table} WHERE entityType = 'Bounty' AND entityId = 30 "  # noqa: N806
        "AND metricType = 'unitAmount'"
    ).result_rows[0][0]
    ch_client.command(
        f"ALTER TABLE {table} UPDATE metricValue = metricValue + 5 WHERE entityType = 'Bounty' "
        "AND entityId = 30 AND metricType = 'unitAmount' SETTINGS mutations_sync = 2"
    )
    want = {
        ("Image", 100, "Like"): (world[("Image", 100, "Like")], 0),
        ("User", 2, "followerCount"): (world[("User", 2, "followerCount")], 2 * world[("User", 2, "followerCount")]),
        ("Bounty", 30, "unitAmount"): (
            world[("Bounty", 30, "unitAmount")],
            world[("Bounty", 30, "unitAmount")] + 5 * ROWS_30,
        ),
    }
    drifted = verify(cfg, as_of=CUTOFF)
    assert drifted.report.differing == 3
    assert differing(drifted) == want

    fixed = reconcile(cfg, as_of=CUTOFF)
    assert fixed.corrections == 3 and fixed.reconcile_run
    rows = ch_client.query(
        f"SELECT entityType, entityId, userId, metricType, metricValue, createdAt FROM {table} "
        f"WHERE userId = {CORRECTION_USER} ORDER BY ALL"
    ).result_rows
    at = CUTOFF - timedelta(milliseconds=1)
    assert rows == sorted((et, eid, CORRECTION_USER, mt, e - a, at) for (et, eid, mt), (e, a) in want.items())
    assert verify(cfg, as_of=CUTOFF).report.ok
    assert table_totals(ch_client, table) == world
    # The rollup saw the duplicated insert and its correction, each once. It never sees DELETE or
    # UPDATE mutations (T1), so for those two entities it holds the original total plus the
    # correction: drift made by mutations must be repaired in the rollup itself, not by events.
    rollup = rollup_totals(ch_client, ch_db)
    for key, (e, a) in want.items():
        assert rollup.get(key, 0) == (e if key[0] == "User" else e + (e - a))
    assert {k: v for k, v in rollup.items() if k not in want} == {k: v for k, v in world.items() if k not in want}

    again = reconcile(cfg, as_of=CUTOFF)
    assert again.corrections == 0
    assert table_totals(ch_client, table) == world


def test_verify_of_an_unknown_run(pg: str, ch: dict[str, str], ch_dsn: str, ch_db: str) -> None:
    from metric_backfill import ConfigError

    with pytest.raises(ConfigError, match="unknown run 'nope'"):
        verify(config(pg, ch_dsn, ch_db, ch), run_id="nope")
