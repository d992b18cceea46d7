"""Verify: compare per-entity expected totals (computed straight from the sources) with ClickHouse.

Nothing per-entity is pulled into Python. The expected aggregates of every source are streamed
into a scratch ClickHouse table — PostgreSQL ones as COPY bytes under one snapshot, ClickHouse ones
with INSERT … SELECT — and joined there against the actual totals, so a verify costs about one
pass over the sources plus one over the target.

The expected side comes from `_expected`, SQL written by hand from docs/sources.md independently of the
catalog the engine compiles: the two implementations check each other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from metric_backfill.catalog import Pair
from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill.verify._expected import LOOKUPS, ExpectedQuery
from metric_backfill.backends._postgres import Postgres, Snapshot
from metric_backfill.backends._sql import pairs_sql, qualified, quote_ident
from metric_backfill.engine._target import Target

__all__ = ["PairReport", "RollupReport", "VerifyReport", "compare_rollups", "verify_totals"]

_log = logging.getLogger("metric_backfill")

EXPECTED_STRUCTURE = "entityType String, entityId Int32, metricType String, total Int64, events Int64"


@dataclass
class PairReport:
    pair: str
    entities: int
    equal: int
    differing: int
    abs_diff: int
    expected_total: int
    actual_total: int
    worst: list[dict[str, int]] = field(default_factory=list)


@dataclass
class VerifyReport:
    pairs: list[PairReport]

    @property
    def differing(self) -> int:
        return sum(p.differing for p in self.pairs)

    @property
    def ok(self) -> bool:
        return self.differing == 0

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "differing_entities": self.differing, "pairs": [asdict(p) for p in self.pairs]}


def load_expected(
    pg: Postgres,
    ch: ClickHouse,
    table: str,
    queries: Sequence[ExpectedQuery],
    *,
    cutoff: datetime,
    cutoff_date: date | None,
    source_cutoffs: dict[str, datetime],
    lookup_db: str,
) -> None:
    """Fill `table` (EXPECTED_STRUCTURE) with every query's aggregates, read under one snapshot."""
    with pg.snapshot() as snap:
        started = time.monotonic()
        load_lookups(snap, ch, lookup_db)
        _log.info("copied the lookups in %.1f s", time.monotonic() - started, extra={"event": "lookups"})
        for k, q in enumerate(queries, 1):
            started = time.monotonic()
            params = q.parameters(cutoff=source_cutoffs.get(q.source, cutoff), cutoff_date=cutoff_date)
            insert = f"INSERT INTO {table} (entityType, entityId, metricType, total, events)\nSELECT * FROM "
            if q.engine == "pg":
                rows = snap.copy(q.sql, params, what=f"computing expected totals of {q.source}")

                def statement(rows_sql: str, insert: str = insert) -> str:
                    return insert + rows_sql

                ch.feed.run(statement, EXPECTED_STRUCTURE, rows, settings={})
            else:
                ch.command(
                    insert + f"(\n{q.sql}\n)", parameters=params, what=f"computing expected totals of {q.source}"
                )
            _log.info(
                "expected totals of %s (%d/%d) in %.1f s",
                q.source,
                k,
                len(queries),
                time.monotonic() - started,
                extra={"event": "expected", "source": q.source, "seconds": round(time.monotonic() - started, 3)},
            )


def _insert_into(target: str) -> Callable[[str], str]:
    return lambda rows_sql: f"INSERT INTO {target} SELECT * FROM {rows_sql}"


def load_lookups(snap: Snapshot, ch: ClickHouse, lookup_db: str) -> None:
    """The PostgreSQL lookups the expected ClickHouse queries join, copied under the snapshot into
    tables of `lookup_db` (a scratch database this command created)."""
    for table, column, select in LOOKUPS:
        target = qualified(lookup_db, table)
        ch.command(
            f"CREATE TABLE {target} (id Int32, {quote_ident(column)} Int32) ENGINE = MergeTree ORDER BY id",
            what="creating a lookup table",
        )
        ch.feed.run(
            _insert_into(target),
            f"id Int32, {column} Int32",
            snap.copy(select, {}, what=f"copying {table}"),
            settings={},
        )


def joined_sql(expected_table: str, actual_sql: str, pairs: Sequence[Pair]) -> str:
    """Per (entityType, entityId, metricType): expected `e` and actual `a` (a full outer join by union)."""
    in_pairs = pairs_sql(pairs)
    return f"""
        SELECT entityType, entityId, metricType, sum(e) AS e, sum(a) AS a FROM (
            SELECT entityType, entityId, metricType, total AS e, toInt64(0) AS a FROM {expected_table}
            UNION ALL
            SELECT entityType, entityId, metricType, toInt64(0), toInt64(total) FROM ({actual_sql})
        ) WHERE (entityType, metricType) IN ({in_pairs})
        GROUP BY entityType, entityId, metricType"""


def compare(
    ch: ClickHouse, expected_table: str, actual_sql: str, pairs: Sequence[Pair], *, worst: int = 5
) -> VerifyReport:
    """Join expected and actual per (entityType, entityId, metricType) inside ClickHouse.

    `actual_sql` returns (entityType, entityId, metricType, total)."""
    joined = joined_sql(expected_table, actual_sql, pairs)
    _log.info("comparing %d pairs entity by entity", len(pairs), extra={"event": "compare"})
    rows = ch.query(
        f"""SELECT entityType, metricType, count(), countIf(e = a), countIf(e != a),
                              sum(abs(e - a)), sum(e), sum(a)
                       FROM ({joined}) GROUP BY entityType, metricType ORDER BY entityType, metricType""",
        what="comparing totals",
    )
    reports = {
        Pair(str(r[0]), str(r[1])): PairReport(
            str(Pair(str(r[0]), str(r[1]))), int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6]), int(r[7])
        )
        for r in rows
    }
    if any(p.differing for p in reports.values()):
        for et, eid, mt, e, a in ch.query(
            f"SELECT entityType, entityId, metricType, e, a FROM ({joined}) WHERE e != a "
            f"ORDER BY abs(e - a) DESC, entityId LIMIT {int(worst)} BY entityType, metricType",
            what="listing the largest differences",
        ):
            reports[Pair(str(et), str(mt))].worst.append({"entityId": int(eid), "expected": int(e), "actual": int(a)})
    for p in pairs:
        reports.setdefault(p, PairReport(str(p), 0, 0, 0, 0, 0, 0))
    return VerifyReport([reports[k] for k in sorted(reports)])


def verify_totals(
    pg: Postgres,
    ch: ClickHouse,
    *,
    queries: Callable[[str], Sequence[ExpectedQuery]],
    actual_sql: str,
    pairs: Sequence[Pair],
    cutoff: datetime,
    cutoff_date: date | None,
    source_cutoffs: dict[str, datetime] | None = None,
    scratch_database: str,
    on_joined: Callable[[str, VerifyReport], None] | None = None,
) -> VerifyReport:
    """Expected (from the sources) vs actual (`actual_sql`) per entity, for `pairs`.

    `queries(lookup_db)` builds the expected queries reading their lookups from `lookup_db`."""
    with ch.scratch_database(f"{scratch_database}_verify") as scratch:
        table = qualified(scratch, "expected")
        ch.command(
            f"CREATE TABLE {table} (entityType LowCardinality(String), entityId Int32, "
            "metricType LowCardinality(String), total Int64, events Int64) "
            "ENGINE = MergeTree ORDER BY (entityType, metricType, entityId)",
            what="creating a scratch table",
        )
        load_expected(
            pg,
            ch,
            table,
            queries(scratch),
            cutoff=cutoff,
            cutoff_date=cutoff_date,
            source_cutoffs=source_cutoffs or {},
            lookup_db=scratch,
        )
        report = compare(ch, table, actual_sql, pairs)
        if on_joined is not None:  # while the scratch exists: stream the differences, write corrections
            on_joined(joined_sql(table, actual_sql, pairs), report)
        return report


@dataclass
class RollupReport:
    """A materialized view's table against the view's own SELECT over its target, key by key."""

    view: str
    table: str
    keys: int
    differing: int
    examples: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


def compare_rollups(ch: ClickHouse, target: Target, pairs: Sequence[Pair], *, examples: int = 5) -> list[RollupReport]:
    """Every rollup fed by `target` against its view's SELECT over the target's rows now (restricted
    to `pairs` where the view's table keeps entityType and metricType). A difference means the
    rollup counted something twice or missed it — or that rows were mutated or deleted in the target,
    which an insert-fired view never sees (T1)."""
    out: list[RollupReport] = []
    for k, view in enumerate(target.views, 1):
        _log.info(
            "comparing rollup %s with its view's SELECT (%d/%d)",
            view.label,
            k,
            len(target.views),
            extra={"event": "rollup"},
        )
        if not view.decidable:
            out.append(
                RollupReport(
                    view.label,
                    f"{view.to_database}.{view.to_table}",
                    0,
                    0,
                    note="not compared: its table has no summable column",
                )
            )
            continue
        cols = ch.columns(view.to_database, view.to_table)
        scoped = "entityType" in cols and "metricType" in cols
        rows = (
            f"(SELECT * FROM {target.name} WHERE (entityType, metricType) IN ({pairs_sql(pairs)}))"
            if scoped
            else target.name
        )
        where_r = f" WHERE (entityType, metricType) IN ({pairs_sql(pairs)})" if scoped else ""
        keys = ", ".join(view.key_columns)
        n = len(view.measures)
        expected = ", ".join(f"toInt128({m}) AS e{i}, toInt128(0) AS a{i}" for i, m in enumerate(view.measures))
        actual = ", ".join(f"toInt128(0) AS e{i}, toInt128({m}) AS a{i}" for i, m in enumerate(view.measures))
        sums = ", ".join(f"sum(e{i}) AS se{i}, sum(a{i}) AS sa{i}" for i in range(n))
        differ = " OR ".join(f"se{i} != sa{i}" for i in range(n))
        joined = (
            f"SELECT {keys}, {sums} FROM (SELECT {keys}, {expected} FROM ({view.select_over(rows)}) "
            f"UNION ALL SELECT {keys}, {actual} FROM {view.to_name}{where_r}) GROUP BY {keys}"
        )
        total, bad = ch.query(f"SELECT count(), countIf({differ}) FROM ({joined})", what=f"comparing {view.label}")[0]
        report = RollupReport(view.label, f"{view.to_database}.{view.to_table}", int(total), int(bad))
        if bad:
            for row in ch.query(
                f"SELECT * FROM ({joined}) WHERE {differ} LIMIT {int(examples)}",
                what=f"listing differences of {view.label}",
            ):
                k = len(view.key_columns)
                report.examples.append(
                    {
                        "key": [str(x) for x in row[:k]],
                        "view_over_target": [int(x) for x in row[k::2]],
                        "rollup": [int(x) for x in row[k + 1 :: 2]],
                    }
                )
        out.append(report)
    return out
