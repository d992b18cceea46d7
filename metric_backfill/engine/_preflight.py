"""`metric-backfill check`: connect to both sides and say what a run with these options would do,
writing nothing anywhere (like `dbt debug`).

Each finding is ok, a warning (the run would work, but look), or a problem (the run would fail
or should not start); `problems` decides the exit code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from metric_backfill._config import RunConfig, format_ts
from metric_backfill._errors import BackfillError
from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill.backends._postgres import Postgres, Snapshot
from metric_backfill.engine._plan import NET_SOURCE, Plan, build_plan
from metric_backfill.engine._stage import _pg_params
from metric_backfill.engine._state import StateStore
from metric_backfill.engine._target import Target, resolve_targets

__all__ = ["Finding", "Preflight", "preflight"]

Level = Literal["ok", "warning", "problem", "info"]

# Server defaults worth knowing about: the tool sets each one per statement where it matters, so
# these are reported, not required.
_SETTINGS = {
    "async_insert": "the tool inserts synchronously (async_insert=0 per statement)",
    "insert_deduplicate": "publish writes go as single blocks the ledger measures; deduplication is off for them",
    "deduplicate_blocks_in_dependent_materialized_views": "the tool applies the target's views itself",
    "max_partitions_per_insert_block": "a publish slice covers one month per partition",
    "max_memory_usage": "limits one statement (a publish slice, a view over it)",
    "max_execution_time": "a publish slice or a staging chunk must finish within it",
}


@dataclass
class Finding:
    area: str
    item: str
    level: Level
    detail: str


@dataclass
class Preflight:
    findings: list[Finding] = field(default_factory=list)

    def add(self, area: str, item: str, level: Level, detail: str) -> None:
        self.findings.append(Finding(area, item, level, detail))

    @property
    def problems(self) -> int:
        return sum(1 for f in self.findings if f.level == "problem")

    def to_dict(self) -> dict[str, Any]:
        return {"problems": self.problems, "findings": [asdict(f) for f in self.findings]}


def preflight(cfg: RunConfig) -> Preflight:
    out = Preflight()
    pg = Postgres(cfg.pg_url, lock_timeout=cfg.pg_lock_timeout, statement_timeout=cfg.pg_statement_timeout)
    ch: ClickHouse | None = None
    try:
        ch = ClickHouse(cfg.clickhouse_url)
    except BackfillError as exc:
        out.add("ClickHouse", "connection", "problem", str(exc))
    try:
        with pg.snapshot() as snap:
            _postgres(out, pg, snap)
            if ch is not None:
                plan = _plan(out, cfg, snap, ch)
                if plan is not None:
                    _queries(out, plan, snap)
    except BackfillError as exc:
        out.add("PostgreSQL", "connection", "problem", str(exc))
    if ch is not None:
        try:
            _clickhouse(out, cfg, ch)
        except BackfillError as exc:
            out.add("ClickHouse", "inspection", "problem", str(exc))
        finally:
            ch.close()
    return out


def _postgres(out: Preflight, pg: Postgres, snap: Snapshot) -> None:
    (version, user, db, superuser), *_ = snap.fetch(
        "SELECT current_setting('server_version'), current_user, current_database(), "
        "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
        what="reading the server version",
    )
    out.add("PostgreSQL", "server", "ok", f"PostgreSQL {version}, database {db}, role {user}")
    out.add("PostgreSQL", "snapshot", "ok", f"exported snapshot {snap.id} at {format_ts(snap.started_at)} UTC")
    writable = [
        str(t)
        for (t,) in snap.fetch(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN "
            "('pg_catalog', 'information_schema') AND has_table_privilege(format('%I.%I', schemaname, tablename), "
            "'INSERT, UPDATE, DELETE, TRUNCATE') ORDER BY 1 LIMIT 6",
            what="reading the role's privileges",
        )
    ]
    if superuser:
        out.add(
            "PostgreSQL",
            "role",
            "warning",
            f"{user} is a superuser: the tool reads in read-only transactions, but a read-only role is safer",
        )
    elif writable:
        out.add(
            "PostgreSQL",
            "role",
            "warning",
            f"{user} may write to {', '.join(writable[:5])}{', …' if len(writable) > 5 else ''}: the tool only "
            "reads (read-only transactions), but a read-only role is safer",
        )
    else:
        out.add("PostgreSQL", "role", "ok", f"{user} cannot write to any table (read-only)")


def _plan(out: Preflight, cfg: RunConfig, snap: Snapshot, ch: ClickHouse) -> Plan | None:
    try:
        plan = build_plan(cfg, snap, ch)
    except BackfillError as exc:
        out.add("sources", "plan", "problem", str(exc))
        return None
    for sp in plan.sources:
        chunks = [c for c in plan.chunks if c.source == sp.source.name]
        rows = sum(c.est_rows for c in chunks)
        out.add(
            "sources",
            sp.source.name,
            "ok",
            f"{'PostgreSQL' if sp.source.engine == 'pg' else 'ClickHouse'}; {len(chunks)} chunks, about "
            f"{rows:,} rows; {len(sp.pairs)} pairs; cutoff {format_ts(sp.cutoff)}",
        )
    return plan


def _queries(out: Preflight, plan: Plan, snap: Snapshot) -> None:
    """EXPLAIN each PostgreSQL source query: its tables, columns and the role's SELECT privilege are
    checked by the planner, and nothing is read."""
    for sp in plan.sources:
        if sp.source.engine != "pg":
            continue
        chunk = next((c for c in plan.chunks if c.source == sp.source.name and c.source != NET_SOURCE), None)
        if chunk is None:
            continue
        try:
            snap.fetch("EXPLAIN " + sp.query, _pg_params(sp, chunk), what=f"planning {sp.source.name}'s query")
        except BackfillError as exc:
            out.add("sources", f"{sp.source.name} query", "problem", str(exc))


def _target(out: Preflight, label: str, target: Target | None, name: tuple[str, str]) -> None:
    if target is None:
        out.add("target", label, "info", f"{name[0]}.{name[1]} does not exist: a run creates it")
        return
    out.add(
        "target",
        label,
        "ok",
        f"{target.label}: {target.engine}, createdAt {target.ts_type}, metricValue {target.value_type}"
        + (", version column" if target.has_version else ""),
    )
    for v in target.views:
        out.add(
            "target", f"view {v.database}.{v.name}", "ok", f"into {v.to_database}.{v.to_table}: applied by the tool"
        )
    for u in target.unsupported:
        out.add("target", "dependent", "problem", u)


def _clickhouse(out: Preflight, cfg: RunConfig, ch: ClickHouse) -> None:
    version = ch.query("SELECT version()")[0][0]
    out.add(
        "ClickHouse",
        "server",
        "ok",
        f"{'embedded chDB' if ch.embedded else 'server'} {version} at {ch.redacted_dsn()}, database {ch.default_database}",
    )
    main, earn, main_name, earn_name = resolve_targets(ch, cfg, create=False)
    _target(out, "events", main, main_name)
    if earn_name != main_name:
        _target(out, "earnings", earn, earn_name)
    rows = ch.query(
        "SELECT name, value, changed FROM system.settings WHERE name IN {names:Array(String)} ORDER BY name",
        parameters={"names": list(_SETTINGS)},
    )
    for name, value, changed in rows:
        level: Level = "warning" if name == "async_insert" and str(value) == "1" else "info"
        out.add("ClickHouse", f"setting {name}", level, f"{value}{' (changed)' if changed else ''}: {_SETTINGS[name]}")
    if not ch.embedded:
        for t in {x.label: x for x in (main, earn) if x is not None}.values():
            try:
                granted = ch.query(f"CHECK GRANT INSERT, ALTER, CREATE TABLE, DROP TABLE ON {t.name}")[0][0]
            except BackfillError:
                out.add("ClickHouse", f"rights on {t.label}", "info", "this server cannot tell (CHECK GRANT)")
                continue
            out.add(
                "ClickHouse",
                f"rights on {t.label}",
                "ok" if int(granted) else "problem",
                "insert, attach and scratch tables allowed"
                if int(granted)
                else "the user lacks INSERT, ALTER (attach), CREATE or DROP TABLE on it",
            )
    state = StateStore(ch, cfg.state_database)
    try:
        exists = state.exists()
    except BackfillError as exc:
        out.add("state", cfg.state_database, "problem", str(exc))
        return
    if not exists:
        out.add("state", cfg.state_database, "info", "no state yet: a run creates it; this would be a new run")
        return
    rid = state.latest_run(cfg.fingerprint())
    rec = state.run(rid) if rid else None
    if rec is None:
        out.add("state", "run", "info", "a new run (no run with these options)")
    elif rec.status == "published":
        out.add("state", "run", "info", f"run {rid} with these options is published: a run would do nothing")
    else:
        out.add("state", "run", "info", f"a run would resume run {rid} ({rec.status})")
