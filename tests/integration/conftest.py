"""Fixtures of the integration tests: the source schemas, in the per-test databases of tests/conftest.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sourcedata import NO_FK_IN_PROD, PARENTS, SQL_DIR, pg_exec

from metric_backfill._expected import DEFAULT_CH_TABLES


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
