"""The overlap fence (README §4, T8, T9): never write a pair the target already holds before the cutoff.

Rows that count as an overlap for a selected pair: rows of the pair itself, rows under its legacy
spelling (the 2024 image migration and the app tracker wrote `ReactionLike`, `Comment`, `Buzz`…),
aggregate snapshot rows (userId −1) — all of them with createdAt before the pair's cutoff.

They are split into this tool's own rows and everybody else's. Own rows are found through the
publish ledger (which runs published which pairs, which were withdrawn) and counted from those
runs' staging, or — where the target has a `version` column — as the rows carrying the backfill
version (R7). `replace` withdraws own rows only; rows written by anyone else are never touched.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ._clickhouse import ClickHouse
from ._compile import literal
from ._config import RunConfig, format_ts
from ._errors import OverlapError
from ._plan import Plan
from ._publish import LEDGER, Publisher
from ._state import StateStore
from ._target import Target

__all__ = ["LEGACY_ALIASES", "Overlap", "check_overlap"]

# Legacy spellings already in the target for image metrics (T8).
LEGACY_ALIASES: dict[str, tuple[str, ...]] = {
    "Image.Like": ("Image.ReactionLike",),
    "Image.Heart": ("Image.ReactionHeart",),
    "Image.Laugh": ("Image.ReactionLaugh",),
    "Image.Cry": ("Image.ReactionCry",),
    "Image.commentCount": ("Image.Comment",),
    "Image.tippedAmount": ("Image.Buzz",),
}


class Overlap:
    """What the fence found in one target: per pair, all rows and this tool's active runs."""

    def __init__(self) -> None:
        self.total: dict[str, int] = defaultdict(int)
        self.own: dict[str, int] = defaultdict(int)
        self.active_runs: dict[str, set[str]] = defaultdict(set)
        self.unfinished_runs: dict[str, set[str]] = defaultdict(set)

    def foreign(self, pair: str) -> int:
        return max(0, self.total[pair] - self.own[pair])

    def describe(self, pair: str) -> str:
        if not self.total[pair]:
            return f"{pair}: published by this tool's runs {', '.join(sorted(self.active_runs[pair]))} (rows after this cutoff)"
        parts = []
        if self.own[pair]:
            parts.append(f"{self.own[pair]} from this tool's runs {', '.join(sorted(self.active_runs[pair])) or '(withdrawn)'}")
        if self.foreign(pair):
            parts.append(f"{self.foreign(pair)} written by others (legacy spellings and snapshots included)")
        return f"{pair}: {self.total[pair]} rows ({'; '.join(parts)})"


def _ledger_runs(ch: ClickHouse, target: Target) -> tuple[dict[str, set[str]], dict[str, dict[str, int]]]:
    """(pair → runs that published it, run → {pair: times withdrawn}) from the target's ledger."""
    published: dict[str, set[str]] = defaultdict(set)
    withdrawn: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    if ch.engine(target.database, LEDGER) is None:
        return published, withdrawn
    rows = ch.query(f"SELECT kind, source_run, arrayJoin(pairs) AS p, uniqExact(run_id) FROM {Publisher.ledger(target)} "
                    "WHERE step = 'done' AND target = {t:String} AND kind IN ('publish', 'withdraw') "
                    "GROUP BY kind, source_run, p", parameters={"t": target.label}, what="reading the publish ledger")
    for kind, run, (et, mt), times in rows:
        if kind == "publish":
            published[f"{et}.{mt}"].add(str(run))
        else:
            withdrawn[str(run)][f"{et}.{mt}"] += int(times)
    return published, withdrawn


def measure(ch: ClickHouse, state: StateStore, cfg: RunConfig, target: Target, pairs_cutoffs: dict[str, str]) -> Overlap:
    ov = Overlap()
    if not pairs_cutoffs:
        return ov
    spelled: dict[tuple[str, str], str] = {}
    for pair in pairs_cutoffs:
        for name in (pair, *LEGACY_ALIASES.get(pair, ())):
            et, mt = name.split(".", 1)
            spelled[(et, mt)] = pair
    by_cutoff: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for (et, mt), pair in spelled.items():
        by_cutoff[pairs_cutoffs[pair]].append((et, mt))
    own_expr = f"version = {int(cfg.backfill_version)}" if target.has_version else "0"
    for cutoff, names in by_cutoff.items():
        in_list = ", ".join(f"({literal(e)}, {literal(m)})" for e, m in names)
        for et, mt, n, own in ch.query(
                f"SELECT entityType, metricType, count(), countIf({own_expr}) FROM {target.name} "
                f"WHERE (entityType, metricType) IN ({in_list}) "
                f"AND createdAt < toDateTime64({literal(cutoff)}, 3, 'UTC') GROUP BY entityType, metricType",
                what=f"checking {target.label} for overlapping rows"):
            pair = spelled[(str(et), str(mt))]
            ov.total[pair] += int(n)
            if f"{et}.{mt}" == pair:
                ov.own[pair] += int(own)
    published, withdrawn = _ledger_runs(ch, target)
    for pair in pairs_cutoffs:
        for run in published.get(pair, ()):
            if withdrawn[run].get(pair):
                continue
            ov.active_runs[pair].add(run)
            info = state.run(run)
            if info is None or info["status"] != "published":
                ov.unfinished_runs[pair].add(run)
    if not target.has_version:
        _count_own_from_staging(ch, state, target, pairs_cutoffs, published, withdrawn, ov)
    return ov


def _count_own_from_staging(ch: ClickHouse, state: StateStore, target: Target, pairs_cutoffs: dict[str, str],
                            published: dict[str, set[str]], withdrawn: dict[str, dict[str, int]], ov: Overlap) -> None:
    """Without a version column, this tool's rows are its published runs' staged rows (one target row
    per staged row on a plain MergeTree), once per publish and once per withdrawal."""
    runs = sorted({r for p in pairs_cutoffs for r in published.get(p, ())})
    if not runs or not state.exists():
        return
    for pair, cutoff in pairs_cutoffs.items():
        et, mt = pair.split(".", 1)
        for run, n in ch.query(
                f"SELECT run_id, count() FROM {state.t('staging')} WHERE run_id IN ({', '.join(map(literal, runs))}) "
                f"AND entityType = {literal(et)} AND metricType = {literal(mt)} AND drop_reason = '' "
                f"AND createdAt < toDateTime64({literal(cutoff)}, 3, 'UTC') "
                f"AND (run_id, chunk_id, attempt) IN (SELECT run_id, chunk_id, attempt FROM {state.t('chunks')} FINAL "
                "WHERE status = 'done') GROUP BY run_id", what="counting this tool's earlier rows"):
            if str(run) in published.get(pair, ()):
                ov.own[pair] += int(n) * (1 + withdrawn[str(run)].get(pair, 0))


def check_overlap(ch: ClickHouse, state: StateStore, cfg: RunConfig, plan: Plan, main: Target,
                  earnings: Target | None) -> dict[str, Any]:
    """Apply the fence to the plan. Returns what was found and decided (recorded in the manifest):
    {"rows": {pair: n}, "withdraw": {run: [pairs]}}. May drop pairs from the plan (skip)."""
    all_pairs = {p: format_ts(sp.cutoff) for sp in plan.sources for p in sp.pairs}
    if earnings is None or earnings.label == main.label:
        groups = [(main, all_pairs)]
    else:  # earnedAmount is routed to its own table (R6)
        groups = [(main, {p: c for p, c in all_pairs.items() if not p.endswith(".earnedAmount")}),
                  (earnings, {p: c for p, c in all_pairs.items() if p.endswith(".earnedAmount")})]
    # A pair overlaps when the target holds rows of it before the cutoff, or when an earlier run
    # of this tool published it at all (its rows after this cutoff would double the live ones).
    found: dict[str, tuple[Overlap, str]] = {}
    for target, pairs in groups:
        ov = measure(ch, state, cfg, target, pairs)
        for p in pairs:
            if ov.total[p] or ov.active_runs[p]:
                found[p] = (ov, target.label)
    if not found:
        return {}
    listing = "; ".join(ov.describe(p) for p, (ov, _) in sorted(found.items()))
    decision: dict[str, Any] = {"rows": {p: ov.total[p] for p, (ov, _) in found.items()}}
    if cfg.on_overlap == "abort":
        raise OverlapError(f"the target already holds rows before the cutoff — {listing}. Nothing was written. "
                           "Choose --on-overlap skip (leave those pairs out), replace (withdraw this tool's earlier "
                           "runs) or accept (write anyway and record the overlap)")
    if cfg.on_overlap == "skip":
        for sp in plan.sources:
            sp.pairs = [p for p in sp.pairs if p not in found]
        plan.sources = [sp for sp in plan.sources if sp.pairs]
        keep = {sp.source.name for sp in plan.sources}
        plan.chunks = [c for c in plan.chunks if c.source in keep]
        decision["skipped"] = sorted(found)
    elif cfg.on_overlap == "replace":
        foreign = {p: ov.foreign(p) for p, (ov, _) in found.items() if ov.foreign(p)}
        if foreign:
            raise OverlapError("--on-overlap replace withdraws only rows this tool published, but others wrote "
                               + ", ".join(f"{p} ({n} rows)" for p, n in sorted(foreign.items()))
                               + ": leave those pairs out (--on-overlap skip or --only) or accept them. Nothing was written")
        unfinished = sorted({r for p, (ov, _) in found.items() for r in ov.unfinished_runs[p]})
        if unfinished:
            raise OverlapError(f"earlier run(s) {', '.join(unfinished)} are not completely published: finish them "
                               "with `metric-backfill publish RUN` before replacing them. Nothing was written")
        withdraw: dict[str, list[str]] = defaultdict(list)
        for p, (ov, _) in sorted(found.items()):
            for r in sorted(ov.active_runs[p]):
                withdraw[r].append(p)
        decision["withdraw"] = dict(withdraw)
    return decision
