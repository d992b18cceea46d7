"""`metric-backfill demo`: the whole tool on embedded servers, checked against the sources.

Starts a pip-installed PostgreSQL and an embedded ClickHouse under DIR, generates a skewed,
seeded dataset with every edge case of traps.md, runs the backfill (stage + publish), and then
compares every (entityType, entityId, metricType) total in the target with the value computed
straight from the sources by the independent expected-totals SQL.
"""

from __future__ import annotations

import shutil
import time
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ._catalog import BUZZTIP_ENTITY_TYPES
from ._clickhouse import ClickHouse
from ._config import RunConfig, format_ts
from ._embedded import EmbeddedPostgres, chdb_dsn
from ._expected import expected_queries
from ._generate import DEFAULT_CUTOFF, generate
from ._postgres import Postgres
from ._run import run
from ._ui import ConsoleReporter
from ._verify import verify_totals

__all__ = ["run_demo"]


def run_demo(*, scale: float, directory: str, seed: int, concurrency: int, console: Console,
             err_console: Console) -> bool:
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    ch_path = root / "clickhouse"
    shutil.rmtree(ch_path, ignore_errors=True)  # a fresh engine: the demo starts from nothing
    pg_server = EmbeddedPostgres(root / "postgres").start()
    try:
        pg_url = pg_server.create_database("site", drop=True)
        dsn = chdb_dsn(ch_path)
        ch = ClickHouse(dsn)
        console.print(f"embedded PostgreSQL 16 on 127.0.0.1:{pg_server.port}, embedded ClickHouse at {ch_path}")

        t0 = time.monotonic()
        counts = generate(pg_url, ch.client, scale=scale, seed=seed, cutoff=DEFAULT_CUTOFF,
                          progress=lambda m: err_console.print(f"[dim]generate: {m}"))
        source_rows = sum(counts.values())
        console.print(f"generated {source_rows:,} rows in {time.monotonic() - t0:.1f}s (scale {scale}, seed {seed})")

        cfg = RunConfig(pg_url=pg_url, clickhouse_url=dsn, cutoff=DEFAULT_CUTOFF, concurrency=concurrency)
        t1 = time.monotonic()
        result = run(cfg, reporter=ConsoleReporter(err_console))
        elapsed = time.monotonic() - t1
        events = sum(d.get("events", 0) for d in result.pairs.values())
        console.print(f"run {result.run_id}: {result.status}, {events:,} events in {elapsed:.1f}s "
                      f"({events / max(elapsed, 1e-9):,.0f} events/s)")

        target = "`default`.`entityMetricEvents`"
        actual = f"SELECT entityType, entityId, metricType, sum(metricValue) AS total FROM {target} " \
                 "GROUP BY entityType, entityId, metricType"
        with Postgres(pg_url).snapshot() as snap:
            from ._plan import discover_entity_types
            etypes = discover_entity_types(snap) or list(BUZZTIP_ENTITY_TYPES)
            snap.close()
        pairs = list(result.pairs)
        report = verify_totals(
            Postgres(pg_url), ch,
            queries=lambda lookup_db: expected_queries(buzztip_entity_types=etypes, lookup_db=lookup_db),
            actual_sql=actual, pairs=pairs, cutoff=cfg.cutoff, cutoff_date=cfg.earnings_cutoff(),
            scratch_database=cfg.state_database)

        by_type: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for p in report.pairs:
            et = p.pair.split(".", 1)[0]
            d = by_type[et]
            d["pairs"] += 1
            d["events"] += result.pairs.get(p.pair, {}).get("events", 0)
            d["entities"] += p.entities
            d["differing"] += p.differing
        t = Table(title=f"demo: every total vs the value computed from the sources (cutoff {format_ts(cfg.cutoff)})")
        for col in ("entity type", "pairs covered", "events written", "entities checked", "mismatches", "ok"):
            t.add_column(col, justify="left" if col == "entity type" else "right")
        for et in sorted(by_type):
            d = by_type[et]
            t.add_row(et, str(d["pairs"]), f"{d['events']:,}", f"{d['entities']:,}", f"{d['differing']:,}",
                      "[green]yes" if d["differing"] == 0 else "[red]NO")
        console.print(t)
        for p in report.pairs:
            if p.differing:
                console.print(f"[red]{p.pair}: {p.differing} entities differ, e.g. {p.worst[:3]}")
        console.print(("[bold green]zero mismatches[/]" if report.ok else f"[bold red]{report.differing} mismatches[/]")
                      + f" over {len(report.pairs)} pairs; data kept in {root}")
        ch.close()
        return report.ok
    finally:
        pg_server.stop()
