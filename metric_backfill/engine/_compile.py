"""Compile a source's fan-out rules into one ClickHouse SELECT.

Every row becomes an array of candidate lines (one tuple per rule), filtered by each rule's
`when`, then `arrayJoin`-ed into events. One pass, no per-row Python, and ClickHouse does the
multiplication that PostgreSQL's text output would make expensive (docs/performance.md).

Lines the live pipeline would drop are kept in the output with a `drop_reason`, so the run can
count and audit them; publishing takes only `drop_reason = ''`.
"""

from __future__ import annotations

from metric_backfill.catalog import Rule, Source, Values
from metric_backfill.backends._sql import literal

__all__ = ["EVENT_COLUMNS", "fanout_select", "ts_structure"]

# Staging and fan-out column order.
EVENT_COLUMNS = ("entityType", "entityId", "userId", "metricType", "metricValue", "createdAt", "drop_reason", "drifted")


def ts_structure(columns: str) -> str:
    """Pin the time zone of DateTime64 input columns to UTC: PostgreSQL's timestamp(3) values are
    UTC wall-clock (T16) and must not be read in the server's zone."""
    return columns.replace("DateTime64(3)", "DateTime64(3, 'UTC')")


def _expr(x: str | Values) -> str:
    return literal(x) if isinstance(x, str) else x.expr


def _line(rule: Rule, cutoff_sql: str) -> str:
    eid = f"CAST({rule.entity_id} AS Nullable(Int32))"
    uid = f"CAST({rule.user_id} AS Nullable(Int32))"
    ts = f"CAST({rule.ts} AS DateTime64(3, 'UTC'))"
    # Drop reasons, checked in this order (a line gets the first that applies): the rule's own
    # guards and parent lookups, then the live drop rule (user, then entity), then the cutoff.
    checks = [f"NOT ifNull(toBool({cond}), false), {literal(reason)}" for cond, reason in rule.checks()]
    if rule.user_rule:
        checks.append(f"ifNull({uid}, 0) = 0, 'user_null_or_0'")
    checks.append(f"{eid} IS NULL, 'entity_null'")
    checks.append(f"{ts} >= {cutoff_sql}, 'ts_after_cutoff'")
    reason = "multiIf(" + ", ".join(checks) + ", '')"
    emit = f"ifNull(toBool({rule.when}), false)" if rule.when else "true"
    return (
        f"tuple(CAST({_expr(rule.entity_type)} AS String), {eid}, {uid}, "
        f"CAST({_expr(rule.metric)} AS String), CAST({rule.value} AS Int64), {ts}, {reason}, {emit})"
    )


def fanout_select(source: Source, rows_sql: str, cutoff_sql: str) -> str:
    """SELECT the events (EVENT_COLUMNS) of `source` for the rows produced by `rows_sql`.

    `rows_sql` is a FROM-clause body: a table function such as file(…)/input(…), or a
    parenthesised subquery. `cutoff_sql` is a DateTime64(3, 'UTC') expression.
    """
    lines = ",\n        ".join(_line(r, cutoff_sql) for r in source.rules)
    drift = f"toUInt8(ifNull({source.drift}, 0))" if source.drift else "toUInt8(0)"
    return f"""SELECT e.1 AS entityType, ifNull(e.2, 0) AS entityId, ifNull(e.3, 0) AS userId, e.4 AS metricType,
       e.5 AS metricValue, e.6 AS createdAt, e.7 AS drop_reason, d AS drifted
FROM (
    SELECT arrayJoin(arrayFilter(x -> x.8, [
        {lines}
    ])) AS e, {drift} AS d
    FROM {rows_sql}
)"""
