"""Fixtures of the integration tests: the source schemas, in the per-test databases of tests/conftest.py."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sourcedata import CUTOFF, CUTOFF_DATE, NO_FK_IN_PROD, PARENTS, SQL_DIR, insert_all_scenarios, pg_exec
from totals import TARGETS, Totals, expected_totals, rollup_ddl

from metric_backfill import RunConfig, RunResult, run
from metric_backfill.catalog import Pair

from metric_backfill.verify._expected import DEFAULT_CH_TABLES
from metric_backfill.engine._target import target_ddl


@pytest.fixture()
def pg(pg_url: str) -> str:
    """A PostgreSQL database with the schema (minus the FKs production lacks) and PARENTS."""
    ddl = (SQL_DIR / "postgres.sql").read_text()
    drops = "\n".join(f"ALTER TABLE {t} DROP CONSTRAINT {c};" for t, c in NO_FK_IN_PROD)
    pg_exec(pg_url, ddl + "\n" + drops + "\n" + PARENTS)
    return pg_url


@pytest.fixture()
def ch(ch_client: Any, ch_db: str) -> dict[str, str]:
    """The four ClickHouse source tables of clickhouse.sql created in `ch_db`: logical -> qualified name."""
    text = (SQL_DIR / "clickhouse.sql").read_text()
    text = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    tables: dict[str, str] = {}
    for stmt in text.split(";"):
        m = re.search(r"CREATE TABLE IF NOT EXISTS (default|orchestration)\.(\w+)\s*\(", stmt)
        if m and m.group(2) in DEFAULT_CH_TABLES:
            ch_client.command(re.sub(r"\b(default|orchestration)\.", f"{ch_db}.", stmt))
            tables[m.group(2)] = f"{ch_db}.{m.group(2)}"
    assert set(tables) == set(DEFAULT_CH_TABLES)
    return tables


@pytest.fixture()
def engine(pg: str, ch: dict[str, str], ch_client: Any, ch_dsn: str, ch_db: str) -> Iterator[Callable[..., RunResult]]:
    """run(RunConfig(...)) against the test's databases; the state database is dropped afterwards.

    Keyword arguments override RunConfig fields (the target defaults to `<ch_db>.entityMetricEvents`);
    `run_kw` is passed to run() itself (stage_only, worker, run_id...)."""
    state = f"{ch_db}_state"

    def go(run_kw: dict[str, Any] | None = None, **kw: Any) -> RunResult:
        options: dict[str, Any] = {
            "cutoff": CUTOFF,
            "earnings_cutoff_date": CUTOFF_DATE,
            "table": f"{ch_db}.entityMetricEvents",
            "state_database": state,
            "ch_tables": dict(ch),
            **kw,
        }
        options["only"] = tuple(Pair.parse(p) if isinstance(p, str) else p for p in options.get("only", ()))
        return run(RunConfig(pg_url=pg, clickhouse_url=ch_dsn, **options), **(run_kw or {}))

    yield go
    ch_client.command(f"DROP DATABASE IF EXISTS {state} SYNC")


@pytest.fixture()
def target(ch_client: Any, ch_db: str) -> Callable[[str], str]:
    """Create a target of a shape with its summing rollup; returns the target's qualified name."""

    def make(shape: str = "events") -> str:
        table = f"{ch_db}.{TARGETS[shape][0]}"
        ch_client.command(target_ddl(shape, table))
        for stmt in rollup_ddl(ch_db, shape):
            ch_client.command(stmt)
        return table

    return make


@pytest.fixture()
def world(pg: str, ch: dict[str, str], ch_client: Any, ch_db: str) -> Totals:
    """Every scenario inserted; returns the independent expected totals of the default selection."""
    insert_all_scenarios(pg, ch_client, ch)
    return expected_totals(pg, ch_client, ch, ch_db)
