"""`metric-backfill demo`: the whole tool on embedded servers, checked against the sources.

Starts a pip-installed PostgreSQL and an embedded ClickHouse under DIR, generates a skewed,
seeded dataset with every edge case of docs/traps.md, runs the backfill (stage + publish), and then
compares every (entityType, entityId, metricType) total in the target with the value computed
straight from the sources by the independent expected-totals SQL.
"""

from __future__ import annotations

import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from metric_backfill.catalog import BUZZTIP_ENTITY_TYPES, Pair
from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill._config import RunConfig, format_ts
from metric_backfill.demo._embedded import EmbeddedPostgres, chdb_dsn
from metric_backfill.verify._expected import expected_queries
from metric_backfill.demo._generate import DEFAULT_CUTOFF, generate
from metric_backfill.backends._postgres import Postgres
from metric_backfill.engine._run import Reporter, run
from metric_backfill.verify._compare import verify_totals
from metric_backfill.backends._sql import literal

__all__ = ["run_demo"]


def seed_drift(ch: ClickHouse, table: str, n: int) -> dict[str, int]:
    """Damage the target on purpose: a third of `n` entity counters lose their events, a third get
    them twice, a third get every value altered. Returns the drifted entities per pair."""
    keys = ch.query(
        f"SELECT entityType, entityId, metricType FROM {table} GROUP BY ALL HAVING sum(metricValue) != 0 "
        f"ORDER BY cityHash64(entityType, entityId, metricType) LIMIT {int(n)}"
    )
    thirds = [keys[i::3] for i in range(3)]

    def in_list(ks: list[tuple[Any, ...]]) -> str:
        return ", ".join(f"({literal(str(e))}, {int(i)}, {literal(str(m))})" for e, i, m in ks) or "('', 0, '')"

    cond = "(entityType, entityId, metricType) IN ({})"
    ch.command(f"DELETE FROM {table} WHERE {cond.format(in_list(thirds[0]))}", what="seeding drift")
    ch.command(
        f"INSERT INTO {table} SELECT * FROM {table} WHERE {cond.format(in_list(thirds[1]))}",
        settings={"async_insert": 0},
        what="seeding drift",
    )
    ch.command(
        f"ALTER TABLE {table} UPDATE metricValue = metricValue + 1 WHERE {cond.format(in_list(thirds[2]))}",
        settings={"mutations_sync": 2},
        what="seeding drift",
    )
    out: dict[str, int] = defaultdict(int)
    for e, _i, m in keys:
        out[f"{e}.{m}"] += 1
    return dict(out)


def run_demo(
    *,
    scale: float,
    directory: str,
    seed: int,
    concurrency: int,
    console: Console,
    err_console: Console,
    reporter: Reporter | None,
    drift: int = 0,
) -> bool:
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
        counts = generate(
            pg_url,
            ch,
            scale=scale,
            seed=seed,
            cutoff=DEFAULT_CUTOFF,
            progress=lambda m: err_console.print(f"[dim]generate: {m}"),
        )
        source_rows = sum(counts.values())
        console.print(f"generated {source_rows:,} rows in {time.monotonic() - t0:.1f}s (scale {scale}, seed {seed})")

        cfg = RunConfig(pg_url=pg_url, clickhouse_url=dsn, cutoff=DEFAULT_CUTOFF, concurrency=concurrency)
        t1 = time.monotonic()
        result = run(cfg, reporter=reporter)
        elapsed = time.monotonic() - t1
        events = sum(d.get("events", 0) for d in result.pairs.values())
        console.print(
            f"run {result.run_id}: {result.status}, {events:,} events in {elapsed:.1f}s "
            f"({events / max(elapsed, 1e-9):,.0f} events/s)"
        )

        target = "`default`.`entityMetricEvents`"
        actual = (
            f"SELECT entityType, entityId, metricType, sum(metricValue) AS total FROM {target} "
            "GROUP BY entityType, entityId, metricType"
        )
        with Postgres(pg_url).snapshot() as snap:
            from metric_backfill.engine._plan import discover_entity_types

            etypes = discover_entity_types(snap) or list(BUZZTIP_ENTITY_TYPES)
        pairs = [Pair.parse(p) for p in result.pairs]
        report = verify_totals(
            Postgres(pg_url),
            ch,
            queries=lambda lookup_db: expected_queries(buzztip_entity_types=etypes, lookup_db=lookup_db),
            actual_sql=actual,
            pairs=pairs,
            cutoff=cfg.cutoff,
            cutoff_date=cfg.earnings_cutoff(),
            scratch_database=cfg.state_database,
        )

        by_type: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for p in report.pairs:
            et = Pair.parse(p.pair).entity_type
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
            t.add_row(
                et,
                str(d["pairs"]),
                f"{d['events']:,}",
                f"{d['entities']:,}",
                f"{d['differing']:,}",
                "[green]yes" if d["differing"] == 0 else "[red]NO",
            )
        console.print(t)
        for p in report.pairs:
            if p.differing:
                console.print(f"[red]{p.pair}: {p.differing} entities differ, e.g. {p.worst[:3]}")
        console.print(
            ("[bold green]zero mismatches[/]" if report.ok else f"[bold red]{report.differing} mismatches[/]")
            + f" over {len(report.pairs)} pairs; data kept in {root}"
        )
        ok = report.ok
        if drift:
            ok = _drift_round(ch, cfg, target, drift, console, root) and ok
        ch.close()
        return ok
    finally:
        pg_server.stop()


def _drift_round(ch: ClickHouse, cfg: RunConfig, target: str, drift: int, console: Console, root: Path) -> bool:
    """Seeded drift → verify finds exactly it → reconcile → verify clean → the cutover report."""
    from metric_backfill.verify._verify import reconcile, verify
    from metric_backfill.verify.cutover._report import cutover_report
    from metric_backfill.verify.cutover._html import render_html

    seeded = seed_drift(ch, target, drift)
    console.print(
        f"seeded drift in {sum(seeded.values())} entity counters over {len(seeded)} pairs "
        "(events deleted, duplicated, altered)"
    )
    found = verify(cfg, as_of=cfg.cutoff).report
    got = {p.pair: p.differing for p in found.pairs if p.differing}
    exact = got == seeded
    console.print(
        f"verify: {found.differing} entities differ — "
        + ("[green]exactly the seeded ones" if exact else f"[red]expected {seeded}, found {got}")
    )
    fixed = reconcile(cfg, as_of=cfg.cutoff)
    after = verify(cfg, as_of=cfg.cutoff).report
    console.print(
        f"reconcile: {fixed.corrections} corrections (userId -2, run {fixed.reconcile_run}); verify: "
        + ("[green]clean" if after.ok else f"[red]{after.differing} still differ")
    )
    report = cutover_report(
        Postgres(cfg.pg_url),
        ch,
        target="default.entityMetricEvents",
        cutoff=cfg.cutoff,
        scratch_database=cfg.state_database,
    )
    html = root / "cutover.html"
    html.write_text(render_html(report), encoding="utf-8")
    changed = sum(p.changed for p in report.pairs if p.status == "compared")
    console.print(
        f"cutover report: {changed:,} displayed counters change over "
        f"{sum(1 for p in report.pairs if p.status == 'compared')} pairs → {html}"
    )
    return exact and after.ok
