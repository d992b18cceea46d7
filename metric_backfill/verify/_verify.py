"""`verify` and `reconcile`: is ClickHouse right, and if not, make it right — exactly once, and never
against events that are merely still in flight.

Scopes:
- a run (`--run RUN`): the run's staged events against the sources replayed with the run's own
  cutoffs — the check to make before publishing;
- the window the backfill owns (the default for the target): target rows of each pair before that
  pair's cutoff against the sources replayed to that cutoff. A run's adjustments against the live
  pipeline (`--net-against-live`) are dated inside the window but answer live events after it:
  they are taken out of the actual side, so a netted backfill verifies clean;
- everything before `as_of` T (`--as-of T`): every row of the selected pairs in the target(s) —
  backfill, live events, earlier corrections — against the sources replayed to T. T must lie at
  least `live_lag` before now: events still in flight are not drift.

Reconcile corrects what the same verify finds, after `confirm` agreed (a dry run corrects
nothing): one corrective event per differing entity, metricValue = expected − actual. Convention
(so corrections can be told apart and audited): userId = −2 (never a real user; −1 is taken by
aggregate snapshots), createdAt = a millisecond before the scope's end (the pair's cutoff, or T),
version = the correction version (default 6) where the target has that column, and the whole set
is a run of its own ("reconcile-…"): staged with lineage, published through the protected path like
any run, so a retried or repeated reconcile never writes a correction twice, and a stale one
(another run published into its pairs after it measured) is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from metric_backfill.catalog import CATALOG, Pair, routes_to_earnings_table
from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill._config import RunConfig, first_day_not_before, format_ts
from metric_backfill._errors import ConfigError
from metric_backfill.verify._expected import expected_queries
from metric_backfill.engine._fence import active_runs, known_pairs
from metric_backfill.engine._plan import NET_SOURCE, discover_entity_types, select_pairs
from metric_backfill.backends._postgres import Postgres
from metric_backfill.engine._run import new_run_id, publish_staged
from metric_backfill.backends._sql import literal, pairs_sql
from metric_backfill.engine._state import ChunkState, RunRecord, StateStore, now, worker_name
from metric_backfill.engine._target import Target, resolve_targets
from metric_backfill.verify._compare import RollupReport, VerifyReport, compare_rollups, verify_totals

__all__ = ["CORRECTION_USER", "CheckResult", "Difference", "reconcile", "verify"]

_log = logging.getLogger("metric_backfill")

CORRECTION_USER = -2
DEFAULT_LIVE_LAG = 3600.0

Difference = tuple[str, int, str, int, int]
"""(entityType, entityId, metricType, expected, actual)"""


@dataclass
class CheckResult:
    scope: str
    as_of: str
    report: VerifyReport
    corrections: int = 0
    reconcile_run: str | None = None
    rollups: list[RollupReport] = field(default_factory=list)
    dry_run: bool = False

    @property
    def rollups_ok(self) -> bool:
        return not any(r.differing for r in self.rollups)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "as_of": self.as_of,
            "corrections": self.corrections,
            "reconcile_run": self.reconcile_run,
            "dry_run": self.dry_run,
            **self.report.to_dict(),
            "rollups": [asdict(r) for r in self.rollups],
        }


def _queries(cfg: RunConfig, etypes: list[str], pairs: list[Pair]):  # type: ignore[no-untyped-def]
    comic = any(p.entity_type == "Comic" for p in pairs)
    return lambda lookup_db: expected_queries(
        buzztip_entity_types=etypes,
        earnings_source=cfg.earnings_source,
        generation_value=cfg.generation_value,
        include_comic=comic,
        ch_tables=cfg.ch_tables,
        lookup_db=lookup_db,
    )


def _pair_cutoffs(cfg: RunConfig, selection: dict[str, list[Pair]]) -> dict[Pair, datetime]:
    """The end of the window each pair's backfill owns: its source's cutoff; earnings: the midnight of
    the first payout day processed live."""
    by_name = {s.name: s for s in CATALOG}
    out: dict[Pair, datetime] = {}
    for name, pairs in selection.items():
        s = by_name[name]
        c = datetime.combine(cfg.earnings_cutoff(s), datetime.min.time()) if s.earnings else cfg.cutoff_for(s)
        for p in pairs:
            out[p] = c
    return out


def _cutoffs_cte(cutoffs: dict[Pair, datetime]) -> str:
    values = ", ".join(
        f"({literal(p.entity_type)}, {literal(p.metric_type)}, {literal(format_ts(c))})" for p, c in cutoffs.items()
    )
    return f"SELECT * FROM values('entityType String, metricType String, cutoff DateTime64(3, ''UTC'')', {values})"


def _target_actual(
    ch: ClickHouse,
    state: StateStore,
    targets: list[tuple[Target, bool | None]],
    cutoffs: dict[Pair, datetime],
    window: bool,
) -> str:
    """Per (entityType, entityId, metricType) the target's total in the scope; in the window, minus the
    adjustments against live events of the runs active in the target (they answer events after it)."""
    pc = _cutoffs_cte(cutoffs)
    parts = []
    for t, earnings in targets:
        mine = [p for p in cutoffs if earnings is None or routes_to_earnings_table(p) == earnings]
        if not mine:
            continue
        parts.append(
            f"SELECT e.entityType AS entityType, e.entityId AS entityId, e.metricType AS metricType, "
            f"toInt64(sum(e.metricValue)) AS total FROM {t.name} AS e INNER JOIN ({pc}) AS pc "
            "ON pc.entityType = e.entityType AND pc.metricType = e.metricType "
            f"WHERE e.createdAt < pc.cutoff AND (e.entityType, e.metricType) IN ({pairs_sql(mine)}) "
            "GROUP BY entityType, entityId, metricType"
        )
        if window and state.exists():
            for run, pairs in active_runs(ch, t).items():
                netted = [p for p in pairs if p in mine]
                if netted:
                    parts.append(
                        f"SELECT entityType, entityId, metricType, -toInt64(sum(metricValue)) FROM "
                        f"{state.t('staging')} WHERE run_id = {literal(run)} AND source = {literal(NET_SOURCE)} "
                        f"AND (entityType, metricType) IN ({pairs_sql(netted)}) AND (chunk_id, attempt) IN "
                        f"{state.done_attempts_sql(run)} GROUP BY entityType, entityId, metricType"
                    )
    return "\nUNION ALL\n".join(parts)


def _targets(ch: ClickHouse, cfg: RunConfig) -> list[tuple[Target, bool | None]]:
    main, earn, main_name, _ = resolve_targets(ch, cfg, create=False)
    if main is None:
        raise ConfigError(f"target {main_name[0]}.{main_name[1]} does not exist: check --table")
    if earn is None or earn.label == main.label:
        return [(main, None)]
    return [(main, False), (earn, True)]


def verify(
    cfg: RunConfig,
    *,
    run_id: str | None = None,
    as_of: datetime | None = None,
    live_lag: float = DEFAULT_LIVE_LAG,
    on_differences: Callable[[Iterator[Difference]], None] | None = None,
) -> CheckResult:
    """Compare expected and actual per entity for every selected pair; nothing is written.

    `on_differences` receives every differing (entityType, entityId, metricType, expected, actual),
    streamed (a million differences never sit in memory at once)."""
    return _check(cfg, run_id=run_id, as_of=as_of, live_lag=live_lag, on_differences=on_differences)


def reconcile(
    cfg: RunConfig,
    *,
    as_of: datetime | None = None,
    correction_version: int = 6,
    live_lag: float = DEFAULT_LIVE_LAG,
    dry_run: bool = False,
    confirm: Callable[[CheckResult], bool] | None = None,
    on_differences: Callable[[Iterator[Difference]], None] | None = None,
) -> CheckResult:
    """Verify the scope, then — unless `dry_run`, and only if `confirm(result)` agrees — write one
    corrective event per differing entity, exactly once."""
    return _check(
        cfg,
        run_id=None,
        as_of=as_of,
        live_lag=live_lag,
        write=not dry_run,
        confirm=confirm,
        correction_version=correction_version,
        on_differences=on_differences,
    )


def _check(
    cfg: RunConfig,
    *,
    run_id: str | None,
    as_of: datetime | None,
    live_lag: float,
    write: bool = False,
    confirm: Callable[[CheckResult], bool] | None = None,
    correction_version: int = 6,
    on_differences: Callable[[Iterator[Difference]], None] | None = None,
) -> CheckResult:
    pg = Postgres(cfg.pg_url, lock_timeout=cfg.pg_lock_timeout, statement_timeout=cfg.pg_statement_timeout)
    with ClickHouse(cfg.clickhouse_url) as ch:
        state = StateStore(ch, cfg.state_database)
        with pg.snapshot() as snap:
            etypes = discover_entity_types(snap)
            snapshot_now = snap.started_at
        if as_of is not None and as_of > snapshot_now - timedelta(seconds=live_lag):
            raise ConfigError(
                f"--as-of {format_ts(as_of)} is less than --live-lag ({live_lag:g} s) before now "
                f"({format_ts(snapshot_now)} UTC): events still in flight would count as drift; choose "
                "an earlier --as-of, a smaller --live-lag, or leave --as-of out to check the backfill's "
                "own window"
            )
        targets: list[tuple[Target, bool | None]] = []
        if run_id:
            info = state.run(run_id)
            if info is None:
                raise ConfigError(f"unknown run {run_id!r}: `metric-backfill status` lists the runs")
            run_cfg = RunConfig.from_public(info.config, clickhouse_url=cfg.clickhouse_url, pg_url=cfg.pg_url)
            pairs = [Pair(*p) for src in info.manifest["sources"] for p in src["pairs"]]
            cutoff, source_cutoffs, cutoff_date = (
                run_cfg.cutoff,
                dict(run_cfg.source_cutoffs),
                run_cfg.earnings_cutoff(),
            )
            etypes = info.manifest.get("buzztip_entity_types", etypes)
            actual = (
                f"SELECT entityType, entityId, metricType, sum(metricValue) AS total FROM {state.t('staging')} "
                f"WHERE {state.staged_where(run_id)} AND source != {literal(NET_SOURCE)} "
                "GROUP BY entityType, entityId, metricType"
            )
            scope, used_cfg, pair_cutoffs = f"run {run_id}", run_cfg, {}
        else:
            selection = select_pairs(cfg, etypes)
            pairs = [p for ps in selection.values() for p in ps]
            targets = _targets(ch, cfg)
            if as_of is None:
                cutoff, source_cutoffs, cutoff_date = cfg.cutoff, dict(cfg.source_cutoffs), cfg.earnings_cutoff()
                pair_cutoffs = _pair_cutoffs(cfg, selection)
                scope = "the backfill's window (before each pair's cutoff) of " + ", ".join(t.label for t, _ in targets)
            else:
                cutoff, source_cutoffs, cutoff_date = as_of, {}, first_day_not_before(as_of)
                pair_cutoffs = {p: as_of for p in pairs}
                scope = f"everything before {format_ts(as_of)} in " + ", ".join(t.label for t, _ in targets)
            actual = _target_actual(ch, state, targets, pair_cutoffs, window=as_of is None)
            used_cfg = cfg
        _log.info("checking %s: %d pairs", scope, len(pairs), extra={"event": "verify"})
        result = CheckResult(scope, format_ts(as_of or cutoff), VerifyReport([]), dry_run=not write and run_id is None)

        def on_joined(joined: str, report: VerifyReport) -> None:
            result.report = report
            if on_differences is not None:
                on_differences(_stream_differences(ch, joined))
            if write and report.differing and (confirm is None or confirm(result)):
                _log.info("staging %s corrections", f"{report.differing:,}", extra={"event": "corrections"})
                _write_corrections(ch, state, cfg, targets, pair_cutoffs, correction_version, result, joined)

        result.report = verify_totals(
            pg,
            ch,
            queries=_queries(used_cfg, etypes, pairs),
            actual_sql=actual,
            pairs=pairs,
            cutoff=cutoff,
            cutoff_date=cutoff_date,
            source_cutoffs=source_cutoffs,
            scratch_database=cfg.state_database,
            on_joined=on_joined,
        )
        if not write:
            for t, _ in targets:
                result.rollups += compare_rollups(ch, t, pairs)
        return result


def _stream_differences(ch: ClickHouse, joined: str) -> Iterator[Difference]:
    for et, eid, mt, e, a in ch.stream(
        f"SELECT entityType, entityId, metricType, e, a FROM ({joined}) WHERE e != a "
        "ORDER BY entityType, metricType, entityId",
        what="listing the differences",
    ):
        yield str(et), int(eid), str(mt), int(e), int(a)


def _write_corrections(
    ch: ClickHouse,
    state: StateStore,
    cfg: RunConfig,
    targets: list[tuple[Target, bool | None]],
    pair_cutoffs: dict[Pair, datetime],
    version: int,
    result: CheckResult,
    joined: str,
) -> None:
    state.ensure()
    rid = new_run_id("reconcile-")
    main = next(t for t, e in targets if not e)
    earn = next((t for t, e in targets if e), None)
    # What is published in the targets now: a run published after this measurement would make
    # the corrections stale, and the publish-time fence refuses them then.
    known = {t.label: known_pairs(ch, t) for t, _ in targets}
    # Staged like a run of its own (lineage: run, source 'reconcile', chunk 0), then published
    # through the protected path: exactly once, resumable, visible to the target's rollups.
    ch.command(
        f"INSERT INTO {state.t('staging')} (run_id, source, chunk_id, attempt, entityType, entityId, "
        f"userId, metricType, metricValue, createdAt, drop_reason, drifted)\n"
        f"SELECT {literal(rid)}, 'reconcile', 0, 1, j.entityType, j.entityId, {CORRECTION_USER}, j.metricType, "
        f"j.e - j.a, pc.cutoff - toIntervalMillisecond(1), '', 0 FROM ({joined}) AS j "
        f"INNER JOIN ({_cutoffs_cte(pair_cutoffs)}) AS pc ON pc.entityType = j.entityType "
        "AND pc.metricType = j.metricType WHERE j.e != j.a",
        what="staging corrections",
    )
    pairs = sorted(
        {
            Pair(str(et), str(mt))
            for et, mt in ch.query(
                f"SELECT DISTINCT entityType, metricType FROM {state.t('staging')} WHERE run_id = {{r:String}}",
                parameters={"r": rid},
            )
        }
    )
    if not pairs:
        return  # nothing differs: no run is recorded
    record = {**cfg.public_dict(), "backfill_version": version}
    as_of = max(pair_cutoffs.values())
    rec = RunRecord(
        rid,
        "reconcile:" + cfg.fingerprint(),
        "staged",
        now(),
        record,
        {
            "reconcile": {"as_of": format_ts(as_of), "scope": result.scope},
            "sources": [{"name": "reconcile", "pairs": [list(p) for p in pairs]}],
            "targets": {"main": main.label, "earnings": (earn or main).label},
            "overlap": {"known": known},
        },
    )
    state.write_chunks(rid, [ChunkState(0, "reconcile", "", "", "", 0, 1, "done", 0, worker_name(), "", now())])
    state.write_run(rec)
    state.summarize(rec)
    result.corrections = publish_staged(ch, state, rid)
    result.reconcile_run = rid
    result.dry_run = False
