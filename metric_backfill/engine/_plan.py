"""Plan: which sources and pairs a run covers, and the chunks it reads them in.

Chunks are half-open key ranges [lo, hi) on each source's indexed chunk column (T17), sized by
row count. PostgreSQL ranges follow the column's distribution as PostgreSQL's own statistics
describe it (most-common values plus the equi-depth histogram), so a table chunked on a skewed
user id still gets chunks of similar size; without statistics the range is cut evenly.
ClickHouse sources are cut into whole days (earnings must hold whole days, docs/sources.md §23–§24).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from string import Template
from typing import Any

from metric_backfill.catalog import BUZZTIP_ENTITY_TYPES, CATALOG, GENERATION_VALUE, Pair, Source, Values
from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill._config import RunConfig, format_ts, parse_cutoff
from metric_backfill._errors import ConfigError, SourceError
from metric_backfill.backends._postgres import Snapshot

__all__ = ["Chunk", "NET_SOURCE", "Plan", "SourcePlan", "build_plan", "select_pairs"]

NET_SOURCE = "net"
"""The pseudo-source of a run's adjustments against the live pipeline (`_net`)."""

EPOCH = datetime(1970, 1, 1)
READ_ALL = datetime(9999, 12, 31)
"""`read_until` of a source read whole (every row the snapshot holds)."""


@dataclass(frozen=True)
class Chunk:
    chunk_id: int
    source: str
    part: str
    """BuzzTip entityType for partitioned sources, else ''."""
    lo: str
    hi: str
    est_rows: int


@dataclass
class SourcePlan:
    source: Source
    pairs: list[Pair]
    cutoff: datetime
    null_ts: datetime | None = None
    query: str = ""
    """The source query with optional columns resolved (PostgreSQL) or table names filled in (ClickHouse)."""
    cutoff_date: date | None = None
    parts: list[str] = field(default_factory=list)
    read_until: datetime | None = None
    """Rows are read up to here (default: the cutoff). Netting against the live pipeline reads
    PostgreSQL sources past the cutoff; lines at or after it are staged as counted drops."""

    @property
    def partial(self) -> bool:
        """Only some of the source's pairs are selected: filter lines by pair."""
        return set(self.pairs) != set(self.source.pairs(self.parts or BUZZTIP_ENTITY_TYPES))


@dataclass
class Plan:
    sources: list[SourcePlan]
    chunks: list[Chunk]
    snapshot_id: str
    buzztip_entity_types: list[str]

    def source(self, name: str) -> SourcePlan:
        for sp in self.sources:
            if sp.source.name == name:
                return sp
        raise KeyError(name)

    def manifest(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "buzztip_entity_types": self.buzztip_entity_types,
            "sources": [
                {
                    "name": sp.source.name,
                    "pairs": [list(p) for p in sp.pairs],
                    "cutoff": format_ts(sp.cutoff),
                    "read_until": format_ts(sp.read_until) if sp.read_until else None,
                    "null_ts": format_ts(sp.null_ts) if sp.null_ts else None,
                    "cutoff_date": sp.cutoff_date.isoformat() if sp.cutoff_date else None,
                    "chunks": sum(1 for c in self.chunks if c.source == sp.source.name),
                }
                for sp in self.sources
            ],
            "chunks": len(self.chunks),
        }


def eligible_sources(cfg: RunConfig) -> list[Source]:
    """Catalog sources a run may use: one earnings path, and only what --sources allows."""
    named = set(cfg.sources)
    out = []
    for s in CATALOG:
        if s.earnings and s.earnings != cfg.earnings_source and s.name not in named:
            continue
        if named and s.name not in named:
            continue
        out.append(s)
    earnings = [s for s in out if s.earnings]
    if len(earnings) > 1:
        raise ConfigError(
            "both earnings sources are selected; they write the same pairs twice — choose one with --earnings-source"
        )
    return out


def select_pairs(cfg: RunConfig, etypes: list[str]) -> dict[str, list[Pair]]:
    """source name → selected pairs (in catalog order)."""
    sources = eligible_sources(cfg)
    universe = {p: s for s in sources for p in s.pairs(etypes)}
    named = set(cfg.sources)
    if cfg.only:
        all_pairs = {p for s in CATALOG for p in s.pairs(etypes)}
        for p in cfg.only:
            if p not in all_pairs:
                close = sorted(
                    str(q) for q in all_pairs if str(q).lower() == str(p).lower() or q.metric_type == p.metric_type
                )[:4]
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ConfigError(f"unknown pair '{p}'{hint}: pairs are Entity.metricType as in `metric-backfill plan`")
            if p not in universe:
                raise ConfigError(
                    f"pair '{p}' is not produced by the selected sources (check --sources and --earnings-source)"
                )
        wanted = set(cfg.only)
    else:
        wanted = {p for p, s in universe.items() if not s.default_off or s.name in named}
    out: dict[str, list[Pair]] = {}
    for s in sources:
        ps = [p for p in s.pairs(etypes) if p in wanted]
        if ps:
            out[s.name] = ps
    if not out:
        raise ConfigError("the selection is empty: no pair matches --only/--sources")
    return out


def _ch_template(cfg: RunConfig, source: Source) -> str:
    mapping = dict(cfg.ch_tables)
    mapping["generation_value"] = GENERATION_VALUE[cfg.generation_value]
    # Lookups are filled per chunk by the engine; leave their placeholders.
    for lk in source.lookups:
        mapping[f"lookup_{lk.name}"] = f"$lookup_{lk.name}"
    return Template(source.query).safe_substitute(mapping)


# -- PostgreSQL chunking ---------------------------------------------------------------------


def _pg_stats(snap: Snapshot, table: str, column: str) -> tuple[float, list[int], list[float], list[int]] | None:
    rows = snap.fetch(
        "SELECT null_frac, most_common_vals::text::bigint[], most_common_freqs, "
        "histogram_bounds::text::bigint[] FROM pg_stats "
        "WHERE schemaname = current_schema() AND tablename = %s AND attname = %s",
        (table, column),
        what=f"reading statistics of {table}",
    )
    if not rows:
        return None
    null_frac, mcv, mcf, hist = rows[0]
    return float(null_frac or 0), list(mcv or []), [float(x) for x in (mcf or [])], list(hist or [])


def _cdf(stats: tuple[float, list[int], list[float], list[int]]):  # type: ignore[no-untyped-def]
    null_frac, mcv, mcf, hist = stats
    hist_mass = max(0.0, 1.0 - null_frac - sum(mcf))
    pairs = sorted(zip(mcv, mcf))
    mv = [v for v, _ in pairs]
    cum = [0.0]
    for _, f in pairs:
        cum.append(cum[-1] + f)
    buckets = max(len(hist) - 1, 0)

    def below(x: int) -> float:
        """Estimated fraction of non-null rows with value < x."""
        mass = cum[bisect.bisect_left(mv, x)]
        if buckets:
            if x > hist[-1]:
                frac = 1.0
            elif x <= hist[0]:
                frac = 0.0
            else:
                j = bisect.bisect_right(hist, x) - 1
                lo, hi = hist[j], hist[min(j + 1, buckets)]
                frac = (j + ((x - lo) / (hi - lo) if hi > lo else 0.0)) / buckets
            mass += hist_mass * frac
        total = sum(mcf) + (hist_mass if buckets else 0.0)
        return mass / total if total > 0 else 0.0

    return below


def int_ranges(lo: int, hi: int, pieces: int, below=None) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """Cut [lo, hi) into about `pieces` ranges of similar row counts (by `below`, else evenly)."""
    if pieces <= 1 or hi - lo <= 1:
        return [(lo, hi)]
    cuts = [lo]
    for i in range(1, pieces):
        q = i / pieces
        if below is None:
            x = lo + (hi - lo) * i // pieces
        else:
            a, b = lo, hi
            while a < b:  # smallest x with below(x) >= q
                m = (a + b) // 2
                if below(m) >= q:
                    b = m
                else:
                    a = m + 1
            x = a
        if cuts[-1] < x < hi:
            cuts.append(x)
    cuts.append(hi)
    return list(zip(cuts, cuts[1:]))


def _pg_chunks(snap: Snapshot, sp: SourcePlan, target_rows: int) -> list[tuple[str, int, int, int]]:
    s = sp.source
    table, col = s.chunk.table, s.chunk.column
    out: list[tuple[str, int, int, int]] = []
    if s.chunk.partition:
        rows = snap.aggregate(
            table,
            [("value", s.chunk.partition), ("count", "*"), ("min", col), ("max", col)],
            group_by=s.chunk.partition,
            what=f"planning {table}",
        )
        for part, n, lo, hi in rows:
            if str(part) not in sp.parts:
                continue
            for a, b in int_ranges(int(lo), int(hi) + 1, math.ceil(int(n) / target_rows)):
                out.append((str(part), a, b, int(n) * (b - a) // max(1, int(hi) + 1 - int(lo))))
        return out
    lo, hi = snap.aggregate(table, [("min", col), ("max", col)], what=f"planning {table}")[0]
    if lo is None:
        return []
    est = snap.fetch(
        "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(quote_ident(%s))",
        (table,),
        what=f"planning {table}",
    )[0][0]
    if est is None or est < 0:
        est = snap.aggregate(table, [("count", "*")], what=f"counting {table}")[0][0]
    est = int(est)
    pieces = math.ceil(est / target_rows) if est else 1
    stats = _pg_stats(snap, table, col) if pieces > 1 else None
    below = _cdf(stats) if stats and (stats[1] or len(stats[3]) > 1) else None
    ranges = int_ranges(int(lo), int(hi) + 1, pieces, below)
    for a, b in ranges:
        share = (below(b) - below(a)) if below else (b - a) / (int(hi) + 1 - int(lo))
        out.append(("", a, b, max(0, round(est * share))))
    return out


# -- ClickHouse chunking ---------------------------------------------------------------------


def _ch_days(ch: ClickHouse, sp: SourcePlan, cfg: RunConfig) -> list[tuple[date, int]]:
    s = sp.source
    table = Template(s.chunk.table).substitute(cfg.ch_tables)
    db, _, name = table.partition(".")
    if ch.engine(db, name) is None:
        raise SourceError(
            f"ClickHouse source table {table} does not exist — create it, point "
            f"--ch-table {s.name}=db.table at it, or leave {s.name} out with --sources"
        )
    col = s.chunk.column
    final = " FINAL" if s.read_final else ""
    limit = f"{col} < {{cd:Date}}" if s.chunk.kind == "day" else f"{col} < {{c:DateTime64(3, 'UTC')}}"
    rows = ch.query(
        f"SELECT toDate({col}) AS d, count() FROM {table}{final} WHERE {limit} GROUP BY d ORDER BY d",
        parameters={"c": format_ts(sp.cutoff), "cd": sp.cutoff_date or date(2100, 1, 1)},
        what=f"planning {table}",
    )
    return [(r[0], int(r[1])) for r in rows]


def _ch_chunks(days: list[tuple[date, int]], target_rows: int) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    start: date | None = None
    acc = 0
    for i, (d, n) in enumerate(days):
        if start is None:
            start = d
        acc += n
        last = i == len(days) - 1
        if acc >= target_rows or last:
            end = d + timedelta(days=1)
            out.append(
                (
                    format_ts(datetime.combine(start, datetime.min.time())),
                    format_ts(datetime.combine(end, datetime.min.time())),
                    acc,
                )
            )
            start, acc = None, 0
    return out


# -- plan ------------------------------------------------------------------------------------


def _probe_source_query(snap: Snapshot, sp: SourcePlan) -> None:
    params = {
        "lo": 0,
        "hi": 0,
        "cutoff": sp.cutoff,
        "read_until": sp.read_until or sp.cutoff,
        "null_ts": sp.null_ts or EPOCH,
        "etype": "",
    }
    got = snap.result_columns(sp.query, params, what=f"checking source {sp.source.name}")
    declared = [c.strip().split()[0] for c in _split_columns(sp.source.columns)]
    if got != declared:
        # The rows travel as text in this order into a ClickHouse structure: a mismatch would shift values.
        raise SourceError(
            f"the query of source {sp.source.name} returns columns {', '.join(got)}, but its declaration "
            f"says {', '.join(declared)}: fix `columns=` in the catalog"
        )


def _split_columns(structure: str) -> list[str]:
    """`a Int32, b Nullable(Int32)` → its column definitions (commas inside parentheses kept)."""
    out, depth, cur = [], 0, ""
    for ch in structure:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [c for c in (*out, cur) if c.strip()]


def _column_exists(snap: Snapshot, table: str, column: str) -> bool:
    return bool(
        snap.fetch(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = %s AND column_name = %s",
            (table, column),
            what="reading the catalog",
        )
    )


def discover_entity_types(snap: Snapshot) -> list[str]:
    """The values of every entityType the catalog copies from a column (BuzzTip's, T7), read from the
    table the source is chunked on: they are data, not a list the tool could know."""
    out: list[str] = []
    for s in CATALOG:
        for rule in s.rules:
            if isinstance(rule.entity_type, Values) and rule.entity_type.dynamic:
                rows = snap.aggregate(
                    s.chunk.table,
                    [("value", rule.entity_type.expr)],
                    group_by=rule.entity_type.expr,
                    what=f"listing {s.name} entity types",
                )
                out += [str(r[0]) for r in rows if str(r[0]) not in out]
    return sorted(out)


def build_plan(cfg: RunConfig, snap: Snapshot, ch: ClickHouse, *, manifest: dict[str, Any] | None = None) -> Plan:
    """Plan a run. With the `manifest` of an existing run, its recorded choices are kept (the
    selection, NULL-timestamp stand-ins, earnings day) and no chunks are computed: the run's
    chunk list lives in the state tables."""
    fixed = {src["name"]: src for src in (manifest or {}).get("sources", [])}
    etypes = list(manifest["buzztip_entity_types"]) if manifest else discover_entity_types(snap)
    selection = (
        {name: [Pair(*p) for p in src["pairs"]] for name, src in fixed.items()}
        if manifest
        else select_pairs(cfg, etypes)
    )
    plans: list[SourcePlan] = []
    for s in CATALOG:
        if s.name not in selection:
            continue
        sp = SourcePlan(s, selection[s.name], cfg.cutoff_for(s), parts=etypes if s.chunk.partition else [])
        if s.engine == "pg":
            if cfg.net_against_live:
                sp.read_until = READ_ALL
            q = s.query
            for ph, (col, present, absent) in s.optional_columns.items():
                table, column = col.split(".")
                q = q.replace(f"${ph}", present if _column_exists(snap, table, column) else absent)
            sp.query = q
            if s.null_ts_table:
                override = cfg.null_ts.get(s.null_ts_table)
                if s.name in fixed and fixed[s.name].get("null_ts"):
                    sp.null_ts = parse_cutoff(fixed[s.name]["null_ts"])
                elif override:
                    sp.null_ts = override
                else:
                    v = snap.aggregate(
                        s.null_ts_table,
                        [("min", "createdAt")],
                        what=f"finding the NULL createdAt stand-in of {s.null_ts_table}",
                    )[0][0]
                    sp.null_ts = v or EPOCH
            if s.chunk.partition:
                # Only entity types with a selected pair are read.
                sp.parts = [e for e in etypes if any(p.entity_type in (e, "User") for p in sp.pairs)]
            _probe_source_query(snap, sp)
        else:
            sp.query = _ch_template(cfg, s)
            if s.earnings:
                # Earnings are per payout day: the cutoff is the first day processed live (docs/semantics.md §4),
                # for the query and for the per-line test alike.
                fixed_date = fixed.get(s.name, {}).get("cutoff_date")
                sp.cutoff_date = date.fromisoformat(fixed_date) if fixed_date else cfg.earnings_cutoff(s)
                sp.cutoff = datetime.combine(sp.cutoff_date, datetime.min.time())
        plans.append(sp)

    chunks: list[Chunk] = []
    if manifest:
        return Plan(plans, chunks, snap.id, etypes)
    for sp in plans:
        if sp.source.engine == "pg":
            for part, lo, hi, est in _pg_chunks(snap, sp, cfg.chunk_rows):
                chunks.append(Chunk(len(chunks), sp.source.name, part, str(lo), str(hi), est))
        else:
            for lo_s, hi_s, est in _ch_chunks(_ch_days(ch, sp, cfg), cfg.ch_chunk_rows):
                chunks.append(Chunk(len(chunks), sp.source.name, "", lo_s, hi_s, est))
    if cfg.net_against_live:
        # The adjustments against the live events: a chunk of its own, staged once every other is done.
        chunks.append(Chunk(len(chunks), NET_SOURCE, "", "", "", 0))
    return Plan(plans, chunks, snap.id, etypes)
