"""The overlap fence (docs/semantics.md §4, T8, T9): never write a pair the target already holds before the cutoff,
and never publish a pair another run has published since this one was planned.

At plan time, rows that count as an overlap for a selected pair: rows of the pair itself, rows
under its legacy spelling (the 2024 image migration and the app tracker wrote `ReactionLike`,
`Comment`, `Buzz`…), aggregate snapshot rows (userId −1) — all of them with createdAt before the
pair's cutoff — and any earlier run of this tool that published the pair. They are split into this
tool's own rows and everybody else's. Own rows are found through the publish ledger (which runs
published which pairs, which were withdrawn) and counted from those runs' staging, or — where the
target has a `version` column — as the rows carrying the backfill version (R7). `replace`
withdraws own rows only; rows written by anyone else are never touched.

At publish time, under the target's lease, the ledger is read again: a run active in the target
(published, not withdrawn) that holds one of this run's pairs and that this run did not know of
when it was planned is a conflict, decided by `--on-overlap` as at plan time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from metric_backfill.catalog import Pair, routes_to_earnings_table
from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill._config import RunConfig
from metric_backfill._errors import OverlapError
from metric_backfill.engine._plan import Plan
from metric_backfill.engine._publish import LEDGER, Publisher
from metric_backfill.backends._sql import literal, pairs_sql, ts_literal
from metric_backfill.engine._state import StateStore
from metric_backfill.engine._target import Target

__all__ = [
    "LEGACY_ALIASES",
    "Overlap",
    "OverlapRefused",
    "active_runs",
    "apply_fence",
    "format_table",
    "known_pairs",
    "ledger_runs",
    "publish_time_conflicts",
]

# Legacy spellings already in the target for image metrics (T8).
LEGACY_ALIASES: dict[Pair, tuple[Pair, ...]] = {
    Pair("Image", "Like"): (Pair("Image", "ReactionLike"),),
    Pair("Image", "Heart"): (Pair("Image", "ReactionHeart"),),
    Pair("Image", "Laugh"): (Pair("Image", "ReactionLaugh"),),
    Pair("Image", "Cry"): (Pair("Image", "ReactionCry"),),
    Pair("Image", "commentCount"): (Pair("Image", "Comment"),),
    Pair("Image", "tippedAmount"): (Pair("Image", "Buzz"),),
}


class Overlap:
    """What the fence found in one target: per pair, all rows and this tool's active runs."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.total: dict[Pair, int] = defaultdict(int)
        self.own: dict[Pair, int] = defaultdict(int)
        self.active_runs: dict[Pair, set[str]] = defaultdict(set)
        self.unfinished_runs: dict[Pair, set[str]] = defaultdict(set)

    def foreign(self, pair: Pair) -> int:
        return max(0, self.total[pair] - self.own[pair])

    def row(self, pair: Pair) -> dict[str, Any]:
        """pair, table, rows, whose — one line of the refusal's table."""
        whose = []
        if self.active_runs[pair]:
            whose.append("this tool's runs " + ", ".join(sorted(self.active_runs[pair])))
        if self.foreign(pair):
            whose.append(f"{self.foreign(pair)} written by others (legacy spellings and snapshots included)")
        return {"pair": str(pair), "table": self.target.label, "rows": self.total[pair], "whose": "; ".join(whose)}


def ledger_runs(ch: ClickHouse, target: Target) -> tuple[dict[Pair, set[str]], dict[str, dict[Pair, int]]]:
    """(pair → runs that published it, run → {pair: times withdrawn}) from the target's ledger."""
    published: dict[Pair, set[str]] = defaultdict(set)
    withdrawn: dict[str, dict[Pair, int]] = defaultdict(lambda: defaultdict(int))
    if ch.engine(target.database, LEDGER) is None:
        return published, withdrawn
    rows = ch.query(
        f"SELECT kind, source_run, arrayJoin(pairs) AS p, uniqExact(run_id) FROM {Publisher.ledger(target)} "
        "WHERE step = 'done' AND target = {t:String} AND kind IN ('publish', 'withdraw') "
        "GROUP BY kind, source_run, p",
        parameters={"t": target.label},
        what="reading the publish ledger",
    )
    for kind, run, (et, mt), times in rows:
        if kind == "publish":
            published[Pair(str(et), str(mt))].add(str(run))
        else:
            withdrawn[str(run)][Pair(str(et), str(mt))] += int(times)
    return published, withdrawn


def active_runs(ch: ClickHouse, target: Target) -> dict[str, set[Pair]]:
    """run → its pairs published into `target` and not withdrawn."""
    published, withdrawn = ledger_runs(ch, target)
    out: dict[str, set[Pair]] = defaultdict(set)
    for pair, runs in published.items():
        for run in runs:
            if not withdrawn[run].get(pair):
                out[run].add(pair)
    return dict(out)


def measure(
    ch: ClickHouse, state: StateStore, cfg: RunConfig, target: Target, pairs_cutoffs: dict[Pair, Any]
) -> Overlap:
    ov = Overlap(target)
    if not pairs_cutoffs:
        return ov
    spelled: dict[Pair, Pair] = {}
    for pair in pairs_cutoffs:
        for name in (pair, *LEGACY_ALIASES.get(pair, ())):
            spelled[name] = pair
    by_cutoff: dict[Any, list[Pair]] = defaultdict(list)
    for name, pair in spelled.items():
        by_cutoff[pairs_cutoffs[pair]].append(name)
    own_expr = f"version = {int(cfg.backfill_version)}" if target.has_version else "0"
    for cutoff, names in by_cutoff.items():
        for et, mt, n, own in ch.query(
            f"SELECT entityType, metricType, count(), countIf({own_expr}) FROM {target.name} "
            f"WHERE (entityType, metricType) IN ({pairs_sql(names)}) "
            f"AND createdAt < {ts_literal(cutoff)} GROUP BY entityType, metricType",
            what=f"checking {target.label} for overlapping rows",
        ):
            name = Pair(str(et), str(mt))
            pair = spelled[name]
            ov.total[pair] += int(n)
            if name == pair:
                ov.own[pair] += int(own)
    published, withdrawn = ledger_runs(ch, target)
    for pair in pairs_cutoffs:
        for run in published.get(pair, ()):
            if withdrawn[run].get(pair):
                continue
            ov.active_runs[pair].add(run)
            info = state.run(run)
            if info is None or info.status != "published":
                ov.unfinished_runs[pair].add(run)
    if not target.has_version:
        _count_own_from_staging(ch, state, pairs_cutoffs, published, withdrawn, ov)
    return ov


def _count_own_from_staging(
    ch: ClickHouse,
    state: StateStore,
    pairs_cutoffs: dict[Pair, Any],
    published: dict[Pair, set[str]],
    withdrawn: dict[str, dict[Pair, int]],
    ov: Overlap,
) -> None:
    """Without a version column, this tool's rows are its published runs' staged rows (one target row
    per staged row on a plain MergeTree), once per publish and once per withdrawal."""
    runs = sorted({r for p in pairs_cutoffs for r in published.get(p, ())})
    if not runs or not state.exists():
        return
    for pair, cutoff in pairs_cutoffs.items():
        for run, n in ch.query(
            f"SELECT run_id, count() FROM {state.t('staging')} WHERE run_id IN ({', '.join(map(literal, runs))}) "
            f"AND (entityType, metricType) IN ({pairs_sql([pair])}) AND drop_reason = '' "
            f"AND createdAt < {ts_literal(cutoff)} "
            f"AND (run_id, chunk_id, attempt) IN (SELECT run_id, chunk_id, attempt FROM {state.t('chunks')} FINAL "
            "WHERE status = 'done') GROUP BY run_id",
            what="counting this tool's earlier rows",
        ):
            if str(run) in published.get(pair, ()):
                ov.own[pair] += int(n) * (1 + withdrawn[str(run)].get(pair, 0))


def _groups(pairs: dict[Pair, Any], main: Target, earnings: Target | None) -> list[tuple[Target, dict[Pair, Any]]]:
    if earnings is None or earnings.label == main.label:
        return [(main, pairs)]
    # earnedAmount is routed to its own table (R6)
    return [
        (main, {p: c for p, c in pairs.items() if not routes_to_earnings_table(p)}),
        (earnings, {p: c for p, c in pairs.items() if routes_to_earnings_table(p)}),
    ]


def format_table(rows: list[dict[str, Any]]) -> str:
    """A short, readable refusal table (pair, table, rows, whose), one overlapping pair per line."""
    shown = rows[:20]
    lines = [f"  {r['pair']:<34} {r['table']:<40} {r['rows']:>10}  {r['whose']}" for r in shown]
    if len(rows) > len(shown):
        lines.append(f"  … and {len(rows) - len(shown)} more pairs")
    return "\n".join([f"  {'pair':<34} {'table':<40} {'rows':>10}  whose", *lines])


def _summary(rows: list[dict[str, Any]]) -> str:
    """One short clause for the refusal's line; the table below it names every pair."""
    tables = sorted({r["table"] for r in rows})
    total = sum(int(r["rows"]) for r in rows)
    where = tables[0] if len(tables) == 1 else f"{len(tables)} tables"
    return f"{len(rows)} pair{'s' if len(rows) != 1 else ''} ({total:,} rows in {where})"


class OverlapRefused(OverlapError):
    """The fence's refusal; `rows` holds its table (pair, table, rows, whose)."""

    def __init__(self, message: str, rows: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.rows = rows

    def __str__(self) -> str:
        return f"{self.args[0]}\n{format_table(self.rows)}"


def apply_fence(
    ch: ClickHouse, state: StateStore, cfg: RunConfig, plan: Plan, main: Target, earnings: Target | None
) -> dict[str, Any]:
    """Apply the fence to the plan. Returns what was found and decided (recorded in the manifest):
    {"rows": [[et, mt, n], …], "withdraw": {run: [[et, mt], …]}, "known": {target: {run: [[et, mt], …]}}}.
    May drop pairs from the plan (skip)."""
    all_pairs = {p: sp.cutoff for sp in plan.sources for p in sp.pairs}
    found: dict[Pair, Overlap] = {}
    known: dict[str, dict[str, list[list[str]]]] = {}
    for target, pairs in _groups(all_pairs, main, earnings):
        ov = measure(ch, state, cfg, target, pairs)
        known[target.label] = known_pairs(ch, target)
        for p in pairs:
            # A pair overlaps when the target holds rows of it before the cutoff, or when an earlier
            # run of this tool published it at all (its rows after this cutoff would double the live ones).
            if ov.total[p] or ov.active_runs[p]:
                found[p] = ov
    decision: dict[str, Any] = {"known": known}
    if not found:
        return decision
    table = [found[p].row(p) for p in sorted(found)]
    decision["rows"] = [[*p, found[p].total[p]] for p in sorted(found)]
    if cfg.on_overlap == "abort":
        raise OverlapRefused(
            f"the target already holds {_summary(table)} that this run would double; nothing was "
            "written. Choose --on-overlap skip (leave those pairs out), replace (withdraw this tool's "
            "earlier runs) or accept (write anyway and record the overlap)",
            table,
        )
    if cfg.on_overlap == "skip":
        for sp in plan.sources:
            sp.pairs = [p for p in sp.pairs if p not in found]
        plan.sources = [sp for sp in plan.sources if sp.pairs]
        keep = {sp.source.name for sp in plan.sources}
        plan.chunks = [c for c in plan.chunks if c.source in keep]
        decision["skipped"] = [list(p) for p in sorted(found)]
    elif cfg.on_overlap == "replace":
        # First: without a pruned run's staged rows neither its own rows can be told from others'
        # nor can they be negated.
        refuse_pruned_withdrawals(state, sorted({r for p, ov in found.items() for r in ov.active_runs[p]}))
        foreign = {p: ov.foreign(p) for p, ov in found.items() if ov.foreign(p)}
        if foreign:
            rows = [found[p].row(p) for p in sorted(foreign)]
            raise OverlapRefused(
                f"--on-overlap replace withdraws only rows this tool published, but others wrote rows of "
                f"{_summary(rows)}: leave those pairs out (--on-overlap skip or --only) or accept them; "
                "nothing was written",
                rows,
            )
        unfinished = sorted({r for p, ov in found.items() for r in ov.unfinished_runs[p]})
        if unfinished:
            raise OverlapError(
                f"earlier run(s) {', '.join(unfinished)} are not completely published: finish them "
                "with `metric-backfill publish RUN` before replacing them. Nothing was written"
            )
        withdraw: dict[str, list[list[str]]] = defaultdict(list)
        for p, ov in sorted(found.items()):
            for r in sorted(ov.active_runs[p]):
                withdraw[r].append(list(p))
        decision["withdraw"] = dict(withdraw)
    return decision


def refuse_pruned_withdrawals(state: StateStore, withdraw: Iterable[str]) -> None:
    """A replace withdraws a run by negating its staged rows: without them it cannot."""
    for old in withdraw:
        old_rec = state.run(old)
        if old_rec is not None and old_rec.summary.get("pruned") and old_rec.status != "withdrawn":
            raise OverlapError(
                f"--on-overlap replace would withdraw run {old}, but its staging was pruned "
                "(`prune --include-published`), so its rows cannot be negated. Nothing was written: "
                "choose --on-overlap accept and correct with `metric-backfill reconcile`, or skip"
            )


def known_pairs(ch: ClickHouse, target: Target) -> dict[str, list[list[str]]]:
    """What is active in the target now, as a manifest records it: run → its pairs."""
    return {run: sorted(list(p) for p in pairs) for run, pairs in sorted(active_runs(ch, target).items())}


def publish_time_conflicts(
    ch: ClickHouse, run_id: str, pairs: list[Pair], manifest: dict[str, Any], main: Target, earnings: Target | None
) -> dict[str, set[Pair]]:
    """Runs active in the targets, holding pairs of this run, that the run did not know of when it
    was planned (read under the target lease): run → the overlapping pairs."""
    overlap = manifest.get("overlap", {})
    known = {(run, Pair(*p)) for runs in overlap.get("known", {}).values() for run, ps in runs.items() for p in ps}
    handled = set(overlap.get("withdraw", {})) | {run_id}
    out: dict[str, set[Pair]] = {}
    for target, mine in _groups({p: None for p in pairs}, main, earnings):
        for run, theirs in active_runs(ch, target).items():
            if run in handled:
                continue
            both = {p for p in theirs & set(mine) if (run, p) not in known}
            if both:
                out.setdefault(run, set()).update(both)
    return out
