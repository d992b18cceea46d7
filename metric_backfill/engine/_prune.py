"""`metric-backfill prune`: remove what finished runs leave behind — their staged events and
lookups (one partition per run, dropped whole), publish scratch tables no interrupted publish
still needs, verify scratch databases and temporary folders of processes that are gone.

What stays unless told:
- the staging of a run still in effect in a target: `--on-overlap replace` withdraws a run by
  negating its staged rows, so a published run's staging is kept (`include_published` removes it;
  such a run can then no longer be replaced, and the tool refuses to try);
- the staging of an unfinished run that the same command would resume, and of any run a live
  command works on (never removed). Naming an unfinished run abandons it: its status becomes
  `abandoned`, so that no command ever resumes it without its staged rows.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

from metric_backfill._errors import ConfigError
from metric_backfill.backends._clickhouse import SPOOL_PREFIX, ClickHouse
from metric_backfill.backends._sql import literal, qualified, quote_ident
from metric_backfill.engine._publish import LEDGER
from metric_backfill.engine._state import RunRecord, StateStore
from metric_backfill.engine._status import IN_PROGRESS, _alive

__all__ = ["PruneItem", "PruneResult", "prune"]

_PUBLISH_SCRATCH = re.compile(r"publish_[0-9a-f]{20}_(rows|view\d+)")


@dataclass
class PruneItem:
    kind: str
    """staging | scratch table | scratch database | temporary folder"""
    name: str
    rows: int
    action: str
    """remove | keep"""
    reason: str


@dataclass
class PruneResult:
    items: list[PruneItem] = field(default_factory=list)
    done: bool = False

    @property
    def removable(self) -> list[PruneItem]:
        return [i for i in self.items if i.action == "remove"]

    def to_dict(self) -> dict[str, Any]:
        return {"done": self.done, "items": [asdict(i) for i in self.items]}


def _fully_withdrawn(rec: RunRecord) -> bool:
    mine = {tuple(p) for src in rec.manifest.get("sources", []) for p in src.get("pairs", [])}
    gone = {tuple(p) for p in rec.summary.get("withdrawn_pairs", [])}
    return rec.status == "withdrawn" and mine <= gone


def _decide(
    rec: RunRecord, latest: dict[str, str], live: set[str], named: str | None, include_published: bool
) -> tuple[str, str]:
    if rec.run_id in live:
        return "keep", "a command is working on it"
    if rec.summary.get("pruned"):
        return "keep", "already pruned"
    if named is not None and rec.run_id != named:
        return "keep", "not the run named"
    if _fully_withdrawn(rec):
        return "remove", "withdrawn by " + str(rec.summary.get("withdrawn_by", "a later run"))
    if rec.status in ("published", "withdrawn"):
        if include_published:
            return "remove", "published (told to remove: it can no longer be replaced)"
        return "keep", "published: needed to withdraw it with --on-overlap replace (--include-published removes it)"
    # Unfinished: planned, staging, staged, publishing, abandoned.
    if rec.status == "abandoned":
        return "remove", "abandoned"
    if named == rec.run_id:
        if rec.status == "publishing":
            return "keep", "part-published: finish it with `metric-backfill publish` first"
        return "remove", f"{rec.status}, named: it is abandoned (never resumed)"
    if latest.get(rec.fingerprint) != rec.run_id:
        return "remove", f"{rec.status}, superseded by run {latest.get(rec.fingerprint)} of the same options"
    return "keep", f"{rec.status}: the same command resumes it (name it to abandon it)"


def prune(
    clickhouse_url: str,
    state_database: str,
    run_id: str | None = None,
    *,
    include_published: bool = False,
    dry_run: bool = False,
    confirm: Any = None,
) -> PruneResult:
    """Find what can go (see the module docstring); unless `dry_run`, and if `confirm(result)`
    agrees, remove it."""
    out = PruneResult()
    with ClickHouse(clickhouse_url) as ch:
        state = StateStore(ch, state_database)
        if not state.exists():
            raise ConfigError(f"the state database {state_database} holds no runs: nothing to prune")
        runs = state.runs()
        if run_id is not None and run_id not in {r.run_id for r in runs}:
            raise ConfigError(f"unknown run {run_id!r}: `metric-backfill status` lists the runs")
        live = set() if ch.embedded else {b["run_id"] for b in state.heartbeats() if _alive(b)}
        latest: dict[str, str] = {}
        for r in sorted(runs, key=lambda r: r.created_at):
            if r.status not in ("withdrawn", "abandoned"):
                latest[r.fingerprint] = r.run_id
        staged = dict(
            ch.query(
                "SELECT partition, sum(rows) FROM system.parts WHERE database = {d:String} AND table = 'staging' "
                "AND active GROUP BY partition",
                parameters={"d": state_database},
            )
        )
        by_id = {r.run_id: r for r in runs}
        for r in runs:
            action, reason = _decide(r, latest, live, run_id, include_published)
            rows = int(staged.get(r.run_id, 0))
            if action == "remove" and not rows and r.status not in IN_PROGRESS + ("staged",):
                continue  # nothing staged left to remove
            out.items.append(PruneItem("staging", r.run_id, rows, action, reason))
        needed = _scratch_in_use(ch, state, runs)
        for (name,) in ch.query(
            "SELECT name FROM system.tables WHERE database = {d:String} AND match(name, '^publish_[0-9a-f]{20}_')",
            parameters={"d": state_database},
        ):
            if not _PUBLISH_SCRATCH.fullmatch(str(name)):
                continue
            busy = live or name in needed
            out.items.append(
                PruneItem(
                    "scratch table",
                    f"{state_database}.{name}",
                    0,
                    "keep" if busy else "remove",
                    "an interrupted publish settles by it"
                    if name in needed
                    else "a command is publishing"
                    if live
                    else "left by an interrupted publish that has been settled",
                )
            )
        for (db,) in ch.query(
            "SELECT name FROM system.databases WHERE match(name, {p:String})",
            parameters={"p": f"^{re.escape(state_database)}_verify_[0-9a-f]{{12}}$"},
        ):
            out.items.append(
                PruneItem(
                    "scratch database",
                    str(db),
                    0,
                    "keep" if live else "remove",
                    "a command may be verifying" if live else "left by an interrupted verify",
                )
            )
        for path in _stale_spool_dirs():
            out.items.append(PruneItem("temporary folder", path, 0, "remove", "its process is gone"))
        if dry_run or not out.removable or (confirm is not None and not confirm(out)):
            return out
        for item in out.removable:
            if item.kind == "staging":
                rec = by_id[item.name]
                for table in ("staging", "lookups"):
                    ch.command(
                        f"ALTER TABLE {state.t(table)} DROP PARTITION {literal(item.name)}",
                        what=f"removing the staging of run {item.name}",
                    )
                if rec.status in IN_PROGRESS + ("staged",):
                    state.set_status(rec, "abandoned", pruned=True)
                else:
                    state.set_status(rec, rec.status, pruned=True)
            elif item.kind == "scratch table":
                db, _, table = item.name.partition(".")
                ch.command(f"DROP TABLE IF EXISTS {quote_ident(db)}.{quote_ident(table)} SYNC", what="pruning scratch")
            elif item.kind == "scratch database":
                ch.command(f"DROP DATABASE IF EXISTS {quote_ident(item.name)} SYNC", what="pruning scratch")
            elif item.kind == "temporary folder":
                shutil.rmtree(item.name, ignore_errors=True)
        out.done = True
    return out


def _scratch_in_use(ch: ClickHouse, state: StateStore, runs: list[RunRecord]) -> set[str]:
    """Scratch tables an interrupted commit's ledger entry names: settling it reads them."""
    names: set[str] = set()
    databases = {str(t).partition(".")[0] for r in runs for t in r.manifest.get("targets", {}).values()}
    for db in sorted(databases):
        if ch.engine(db, LEDGER) is None:
            continue
        ledger = qualified(db, LEDGER)
        for (detail,) in ch.query(
            f"SELECT detail FROM {ledger} WHERE step = 'committing' AND (run_id, target, slice) NOT IN "
            f"(SELECT run_id, target, slice FROM {ledger} WHERE step = 'done')",
            what="reading the publish ledger",
        ):
            names.update(re.findall(r"publish_[0-9a-f]{20}_(?:rows|view\d+)", str(detail)))
    return names


def _stale_spool_dirs() -> list[str]:
    """Temporary folders of this tool's processes that are gone (a kill -9 skips their clean-up)."""
    out = []
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        m = re.fullmatch(re.escape(SPOOL_PREFIX) + r"(\d+)-\w+", name)
        if not m:
            continue
        try:
            os.kill(int(m[1]), 0)
        except ProcessLookupError:
            out.append(os.path.join(root, name))
        except PermissionError:
            pass
    return out
