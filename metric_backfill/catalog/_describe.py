"""The catalog as documentation: what `plan` prints, and the reference-list check."""

from __future__ import annotations

from importlib import resources
from typing import Any

from metric_backfill.catalog import BUZZTIP_ENTITY_TYPES, CATALOG, Pair, Rule, Source, Values
from metric_backfill._errors import ConfigError

__all__ = ["describe_catalog", "missing_pairs", "read_pair_list", "reference_lists"]


def read_pair_list(text: str) -> list[Pair]:
    """Pairs of a reference file: one `Entity.metric` per line; `#` comments and blanks ignored."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                out.append(Pair.parse(line))
            except ValueError:
                raise ConfigError(f"line {n} of the pair list is {line!r}, not Entity.metricType") from None
    return out


def reference_lists() -> dict[str, set[Pair]]:
    base = resources.files("metric_backfill.catalog") / "lists"
    return {name: set(read_pair_list((base / f"metrics-{name}.txt").read_text())) for name in ("2025-09", "later")}


def _show(x: str | Values) -> str:
    return x if isinstance(x, str) else f"{x.expr} ∈ {{{', '.join(x.values)}}}" + (" (discovered)" if x.dynamic else "")


def rule_text(r: Rule) -> str:
    parts = [f"entityId={r.entity_id}", f"userId={r.user_id}", f"value={r.value}", f"ts={r.ts}"]
    if r.when:
        parts.append(f"when {r.when}")
    for cond, reason in r.checks():
        parts.append(f"requires {cond} (else dropped: {reason})")
    if not r.user_rule:
        parts.append("no userId drop rule")
    return ", ".join(parts)


def describe_catalog(entity_types: tuple[str, ...] = BUZZTIP_ENTITY_TYPES) -> dict[str, Any]:
    lists = reference_lists()
    sources: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    for s in CATALOG:
        sources.append(_source_dict(s, entity_types))
        for r in s.rules:
            for et in r.entity_types(entity_types):
                for m in r.metrics():
                    pair = Pair(et, m)
                    membership = "2025-09" if pair in lists["2025-09"] else ("later" if pair in lists["later"] else "-")
                    pairs.append(
                        {
                            "pair": str(pair),
                            "entityType": et,
                            "metricType": m,
                            "source": s.name,
                            "list": membership,
                            "rule": rule_text(r),
                            "default": not s.default_off,
                            "notes": s.notes,
                        }
                    )
    return {"sources": sources, "pairs": pairs}


def _source_dict(s: Source, entity_types: tuple[str, ...]) -> dict[str, Any]:
    return {
        "name": s.name,
        "engine": s.engine,
        "chunk": {
            "table": s.chunk.table,
            "column": s.chunk.column,
            "kind": s.chunk.kind,
            "partition": s.chunk.partition,
        },
        "base_ts": s.base_ts,
        "query": s.query,
        "columns": s.columns,
        "notes": s.notes,
        "selected_by_default": not s.default_off and (not s.earnings or s.earnings == "resourceCompensations"),
        "earnings_path": s.earnings or None,
        "lookups": [{"name": lk.name, "keys": lk.keys, "postgres": lk.pg_sql} for lk in s.lookups],
        "rules": [
            {
                "entityType": _show(r.entity_type),
                "entityId": r.entity_id,
                "userId": r.user_id,
                "metricType": _show(r.metric),
                "value": r.value,
                "when": r.when,
                "requires": " AND ".join(c for c, _ in r.checks()) or None,
                "ts": r.ts,
                "user_drop_rule": r.user_rule,
                "pairs": [f"{et}.{m}" for et in r.entity_types(entity_types) for m in r.metrics()],
            }
            for r in s.rules
        ],
    }


def missing_pairs(wanted: list[Pair], entity_types: tuple[str, ...] = BUZZTIP_ENTITY_TYPES) -> list[Pair]:
    produced = {p for s in CATALOG for p in s.pairs(entity_types)}
    return [p for p in wanted if p not in produced]
