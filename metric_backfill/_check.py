"""`verify` and `reconcile`: is ClickHouse right, and if not, make it right — exactly once.

Scopes:
- a run (`--run RUN`): the run's staged events against the sources replayed with the run's own
  cutoffs — the check to make before publishing;
- the target (default): every row of the selected pairs in the target(s) — backfill, live events
  and earlier corrections — against the sources replayed up to `as_of` (default: now, i.e. every
  row that exists). With no live pipeline writing (the demo), pass the cutoff as `as_of`.

Reconcile writes, for every entity whose total differs, one corrective event with
metricValue = expected − actual. Convention (so corrections can be told apart and audited):
userId = −2 (never a real user; −1 is taken by aggregate snapshots), createdAt = as_of − 1 ms
(inside the verified window, so verifying again at the same as_of sees them), version = the
correction version (default 6) where the target has that column, and the whole set is a run of
its own ("reconcile-…") in the state tables: staged with lineage, published through the ledger
like any run, so a retried or repeated reconcile never writes a correction twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from ._catalog import Pair, routes_to_earnings_table
from ._clickhouse import ClickHouse
from ._config import RunConfig, format_ts
from ._errors import ConfigError
from ._expected import expected_queries
from ._fence import known_pairs
from ._plan import discover_entity_types, select_pairs
from ._postgres import Postgres
from ._run import new_run_id, publish_staged
from ._sql import literal, pairs_sql, ts_literal
from ._state import ChunkState, RunRecord, StateStore, now, worker_name
from ._target import Target, resolve_targets
from ._verify import RollupReport, VerifyReport, compare_rollups, verify_totals

__all__ = ["CORRECTION_USER", "CheckResult", "reconcile", "verify"]

CORRECTION_USER = -2


@dataclass
class CheckResult:
    scope: str
    as_of: str
    report: VerifyReport
    corrections: int = 0
    reconcile_run: str | None = None
    rollups: list[RollupReport] = field(default_factory=list)

    @property
    def rollups_ok(self) -> bool:
        return not any(r.differing for r in self.rollups)

    def to_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "as_of": self.as_of, "corrections": self.corrections,
                "reconcile_run": self.reconcile_run, **self.report.to_dict(),
                "rollups": [asdict(r) for r in self.rollups]}


def _queries(cfg: RunConfig, etypes: list[str], pairs: list[Pair]):  # type: ignore[no-untyped-def]
    comic = any(p.entity_type == "Comic" for p in pairs)
    return lambda lookup_db: expected_queries(buzztip_entity_types=etypes, earnings_source=cfg.earnings_source,
                                              generation_value=cfg.generation_value, include_comic=comic,
                                              ch_tables=cfg.ch_tables, lookup_db=lookup_db)


def _source_cutoffs(cfg: RunConfig, as_of: datetime | None) -> tuple[datetime, dict[str, datetime], date]:
    if as_of is not None:
        return as_of, {}, as_of.date() if as_of == datetime(as_of.year, as_of.month, as_of.day) else as_of.date() + timedelta(days=1)
    return cfg.cutoff, dict(cfg.source_cutoffs), cfg.earnings_cutoff()


def _target_actual(targets: list[tuple[Target, bool | None]], as_of: datetime, pairs: list[Pair]) -> str:
    parts = []
    for t, earnings in targets:
        mine = [p for p in pairs if earnings is None or routes_to_earnings_table(p) == earnings]
        parts.append(f"SELECT entityType, entityId, metricType, sum(metricValue) AS total FROM {t.name} "
                     f"WHERE createdAt < {ts_literal(as_of)} AND (entityType, metricType) IN ({pairs_sql(mine)}) "
                     "GROUP BY entityType, entityId, metricType")
    return "\nUNION ALL\n".join(parts)


def _targets(ch: ClickHouse, cfg: RunConfig) -> list[tuple[Target, bool | None]]:
    main, earn, main_name, _ = resolve_targets(ch, cfg, create=False)
    if main is None:
        raise ConfigError(f"target {main_name[0]}.{main_name[1]} does not exist: check --table")
    if earn is None or earn.label == main.label:
        return [(main, None)]
    return [(main, False), (earn, True)]


def verify(cfg: RunConfig, *, run_id: str | None = None, as_of: datetime | None = None) -> CheckResult:
    """Compare expected and actual per entity for every selected pair; nothing is written."""
    return _check(cfg, run_id=run_id, as_of=as_of, write=False)


def reconcile(cfg: RunConfig, *, as_of: datetime | None = None, correction_version: int = 6) -> CheckResult:
    """Verify the target, then write one corrective event per differing entity, exactly once."""
    return _check(cfg, run_id=None, as_of=as_of, write=True, correction_version=correction_version)


def _check(cfg: RunConfig, *, run_id: str | None, as_of: datetime | None, write: bool,
           correction_version: int = 6) -> CheckResult:
    pg = Postgres(cfg.pg_url, lock_timeout=cfg.pg_lock_timeout, statement_timeout=cfg.pg_statement_timeout)
    ch = ClickHouse(cfg.clickhouse_url)
    state = StateStore(ch, cfg.state_database)
    try:
        with pg.snapshot() as snap:
            etypes = discover_entity_types(snap)
            snapshot_now = snap.fetch("SELECT (now() AT TIME ZONE 'UTC')::timestamp(3)", what="reading the time")[0][0]
        if run_id:
            info = state.run(run_id)
            if info is None:
                raise ConfigError(f"unknown run {run_id!r}: `metric-backfill status` lists the runs")
            run_cfg = RunConfig.from_public(info.config, clickhouse_url=cfg.clickhouse_url, pg_url=cfg.pg_url)
            pairs = [Pair(*p) for src in info.manifest["sources"] for p in src["pairs"]]
            cutoff, source_cutoffs, cutoff_date = _source_cutoffs(run_cfg, None)
            etypes = info.manifest.get("buzztip_entity_types", etypes)
            actual = (f"SELECT entityType, entityId, metricType, sum(metricValue) AS total FROM {state.t('staging')} "
                      f"WHERE {state.staged_where(run_id)} GROUP BY entityType, entityId, metricType")
            scope, used_cfg = f"run {run_id}", run_cfg
            targets: list[tuple[Target, bool | None]] = []
        else:
            pairs = [p for ps in select_pairs(cfg, etypes).values() for p in ps]
            as_of = as_of or snapshot_now
            cutoff, source_cutoffs, cutoff_date = _source_cutoffs(cfg, as_of)
            targets = _targets(ch, cfg)
            actual = _target_actual(targets, as_of, pairs)
            scope, used_cfg = "target " + ", ".join(t.label for t, _ in targets), cfg
        result = CheckResult(scope, format_ts(as_of or cutoff), VerifyReport([]))
        on_joined = None
        if write:
            assert as_of is not None
            on_joined = _corrections_writer(ch, state, cfg, targets, as_of, correction_version, result)
        result.report = verify_totals(pg, ch, queries=_queries(used_cfg, etypes, pairs), actual_sql=actual, pairs=pairs,
                                      cutoff=cutoff, cutoff_date=cutoff_date, source_cutoffs=source_cutoffs,
                                      scratch_database=cfg.state_database, on_joined=on_joined)
        for t, _ in targets if not write else []:
            result.rollups += compare_rollups(ch, t, pairs)
        return result
    finally:
        ch.close()


def _corrections_writer(ch: ClickHouse, state: StateStore, cfg: RunConfig, targets: list[tuple[Target, bool | None]],
                        as_of: datetime, version: int, result: CheckResult):  # type: ignore[no-untyped-def]
    def write(joined: str) -> None:
        state.ensure()
        rid = new_run_id("reconcile-")
        at = as_of - timedelta(milliseconds=1)
        main = next(t for t, e in targets if not e)
        earn = next((t for t, e in targets if e), None)
        # What is published in the targets now: a run published after this measurement would make
        # the corrections stale, and the publish-time fence refuses them then.
        known = {t.label: known_pairs(ch, t) for t, _ in targets}
        # Staged like a run of its own (lineage: run, source 'reconcile', chunk 0), then published
        # through the protected path: exactly once, resumable, visible to the target's rollups.
        ch.command(f"INSERT INTO {state.t('staging')} (run_id, source, chunk_id, attempt, entityType, entityId, "
                   f"userId, metricType, metricValue, createdAt, drop_reason, drifted)\n"
                   f"SELECT {literal(rid)}, 'reconcile', 0, 1, entityType, entityId, {CORRECTION_USER}, metricType, "
                   f"e - a, {ts_literal(at)}, '', 0 FROM ({joined}) WHERE e != a",
                   what="staging corrections")
        record = {**cfg.public_dict(), "backfill_version": version}
        pairs = sorted({Pair(str(et), str(mt)) for et, mt in ch.query(
            f"SELECT DISTINCT entityType, metricType FROM {state.t('staging')} WHERE run_id = {{r:String}}",
            parameters={"r": rid})})
        rec = RunRecord(rid, "reconcile:" + cfg.fingerprint(), "staged", now(), record,
                        {"reconcile": {"as_of": format_ts(as_of), "scope": result.scope},
                         "sources": [{"name": "reconcile", "pairs": [list(p) for p in pairs]}],
                         "targets": {"main": main.label, "earnings": (earn or main).label},
                         "overlap": {"known": known}})
        if not pairs:
            return  # nothing differs: no run is recorded
        state.write_chunks(rid, [ChunkState(0, "reconcile", "", "", "", 0, 1, "done", 0, worker_name(), "", now())])
        state.write_run(rec)
        state.summarize(rec)
        result.corrections = publish_staged(ch, state, rid)
        result.reconcile_run = rid

    return write

