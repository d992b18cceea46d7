"""Exact totals of a target and of the site's rollup on it, and the independent expected totals."""

from __future__ import annotations

import re
from typing import Any

from sourcedata import CUTOFF, CUTOFF_DATE, ETYPES, SQL_DIR, Key

from expected_helpers import run_expected

from metric_backfill.verify._expected import expected_queries

__all__ = [
    "TARGETS",
    "Totals",
    "assert_exact",
    "expected_totals",
    "nonzero",
    "rollup_ddl",
    "rollup_totals",
    "table_totals",
]

Totals = dict[Key, int]


def rollup_ddl(db: str, shape: str) -> list[str]:
    """The site's summing rollup on the target, from demo/sql/clickhouse.sql, moved into `db`."""
    text = "\n".join(line.split("--", 1)[0] for line in (SQL_DIR / "clickhouse.sql").read_text().splitlines())
    names = (
        ("entityMetricDailyAgg", "entityMetricDaily")
        if shape == "events"
        else ("entityMetricSum", "entityMetricSum_mv")
    )
    out = []
    for stmt in text.split(";"):
        m = re.search(r"CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS default\.(\w+)", stmt)
        if m and m.group(1) in names:
            out.append(stmt.replace("default.", f"{db}."))
    return out


TARGETS = {
    "events": ("entityMetricEvents", "entityMetricDailyAgg"),
    "month": ("entityMetricEvents_month", "entityMetricSum"),
}


def nonzero(d: dict[Key, int]) -> dict[Key, int]:
    return {k: v for k, v in d.items() if v != 0}


def table_totals(ch_client: Any, table: str, *, final: bool = False) -> Totals:
    rows = ch_client.query(
        f"SELECT entityType, entityId, metricType, sum(metricValue) FROM {table}{' FINAL' if final else ''} "
        "GROUP BY ALL"
    ).result_rows
    return nonzero({(r[0], int(r[1]), r[2]): int(r[3]) for r in rows})


def rollup_totals(ch_client: Any, ch_db: str, shape: str = "events") -> Totals:
    rows = ch_client.query(
        f"SELECT entityType, entityId, metricType, sum(total) FROM {ch_db}.{TARGETS[shape][1]} GROUP BY ALL"
    ).result_rows
    return nonzero({(r[0], int(r[1]), r[2]): int(r[3]) for r in rows})


def expected_totals(
    pg: str,
    ch_client: Any,
    ch: dict[str, str],
    ch_db: str,
    *,
    cutoff: Any = CUTOFF,
    sources: tuple[str, ...] | None = None,
) -> Totals:
    queries = [
        q
        for q in expected_queries(buzztip_entity_types=ETYPES, ch_tables=ch, lookup_db=ch_db)
        if sources is None or q.source in sources
    ]
    got = run_expected(pg, ch_client, queries, cutoff=cutoff, cutoff_date=CUTOFF_DATE, load_lookups_into=ch_db)
    return nonzero({k: total for k, (total, _) in got.items()})


def assert_exact(ch_client: Any, ch_db: str, table: str, want: Totals, shape: str = "events") -> None:
    assert table_totals(ch_client, table) == want
    assert rollup_totals(ch_client, ch_db, shape) == want, "the rollup counted a row twice (or missed one)"
    if shape == "month":
        assert table_totals(ch_client, table, final=True) == want
