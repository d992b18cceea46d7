"""The overlap fence (README §4, T8, T9): never write a pair the target already holds before the cutoff.

Rows that count as an overlap for a selected pair: rows of the pair itself, rows under its legacy
spelling (the 2024 image migration and the app tracker wrote `ReactionLike`, `Comment`, `Buzz`…),
aggregate snapshot rows (userId −1) — all of them with createdAt before the pair's cutoff.
"""

from __future__ import annotations

from collections import defaultdict

from ._clickhouse import ClickHouse
from ._compile import literal
from ._config import RunConfig, format_ts
from ._errors import OverlapError
from ._plan import Plan
from ._state import StateStore
from ._target import Target

__all__ = ["LEGACY_ALIASES", "check_overlap", "overlap_counts"]

# Legacy spellings already in the target for image metrics (T8).
LEGACY_ALIASES: dict[str, tuple[str, ...]] = {
    "Image.Like": ("Image.ReactionLike",),
    "Image.Heart": ("Image.ReactionHeart",),
    "Image.Laugh": ("Image.ReactionLaugh",),
    "Image.Cry": ("Image.ReactionCry",),
    "Image.commentCount": ("Image.Comment",),
    "Image.tippedAmount": ("Image.Buzz",),
}


def overlap_counts(ch: ClickHouse, target: Target, pairs_cutoffs: dict[str, str]) -> dict[str, int]:
    """pair → rows in `target` before its cutoff, legacy spellings folded into the pair."""
    spelled: dict[tuple[str, str], str] = {}
    for pair in pairs_cutoffs:
        for name in (pair, *LEGACY_ALIASES.get(pair, ())):
            et, mt = name.split(".", 1)
            spelled[(et, mt)] = pair
    if not spelled:
        return {}
    by_cutoff: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for (et, mt), pair in spelled.items():
        by_cutoff[pairs_cutoffs[pair]].append((et, mt))
    out: dict[str, int] = defaultdict(int)
    for cutoff, names in by_cutoff.items():
        in_list = ", ".join(f"({literal(e)}, {literal(m)})" for e, m in names)
        rows = ch.query(f"SELECT entityType, metricType, count() FROM {target.name} "
                        f"WHERE (entityType, metricType) IN ({in_list}) "
                        f"AND createdAt < toDateTime64({literal(cutoff)}, 3, 'UTC') GROUP BY entityType, metricType",
                        what=f"checking {target.label} for overlapping rows")
        for et, mt, n in rows:
            out[spelled[(str(et), str(mt))]] += int(n)
    return dict(out)


def check_overlap(ch: ClickHouse, state: StateStore, cfg: RunConfig, plan: Plan, main: Target,
                  earnings: Target | None, run_id: str) -> dict[str, int]:
    """Apply the fence to the plan. Returns the overlap found (pair → rows). May drop pairs (skip)."""
    all_pairs = {p: format_ts(sp.cutoff) for sp in plan.sources for p in sp.pairs}
    if earnings is None or earnings.label == main.label:
        groups = [(main, all_pairs)]
    else:  # earnedAmount is routed to its own table (R6)
        groups = [(main, {p: c for p, c in all_pairs.items() if not p.endswith(".earnedAmount")}),
                  (earnings, {p: c for p, c in all_pairs.items() if p.endswith(".earnedAmount")})]
    found: dict[str, int] = {}
    for target, pairs in groups:
        found.update(overlap_counts(ch, target, pairs))
    if not found:
        return {}
    listing = ", ".join(f"{p} ({n} rows)" for p, n in sorted(found.items()))
    if cfg.on_overlap == "abort":
        raise OverlapError(f"the target already holds rows before the cutoff for {listing}: nothing was written. "
                           "Choose --on-overlap skip (leave those pairs out), replace (withdraw this tool's earlier "
                           "runs) or accept (write anyway and record the overlap)")
    if cfg.on_overlap == "skip":
        for sp in plan.sources:
            sp.pairs = [p for p in sp.pairs if p not in found]
        plan.sources = [sp for sp in plan.sources if sp.pairs]
        keep = {sp.source.name for sp in plan.sources}
        plan.chunks = [c for c in plan.chunks if c.source in keep]
    return found
