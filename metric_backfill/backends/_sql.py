"""Writing values and names into ClickHouse SQL: only through clickhouse-connect's own escaping.

Every value that reaches a ClickHouse statement as text goes through `literal` (the client library's
`format_query_value`), every identifier through `quote_ident` (its `quote_identifier`). Names
that come from the command line are first checked by `_config.checked_ident`: letters, digits and
`_` only, so that no spelling of a name can escape its quotes whatever the server's quoting rules.
PostgreSQL values are always bound by psycopg (see `_postgres`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from clickhouse_connect.driver.binding import format_query_value, quote_identifier

from metric_backfill.catalog import Pair

__all__ = ["value_literal", "day_literal", "literal", "pairs_sql", "qualified", "quote_ident", "ts_literal"]


def literal(value: str | int) -> str:
    """A ClickHouse literal of `value`, escaped by clickhouse-connect."""
    return str(format_query_value(value))


def value_literal(value: object) -> str:
    """A Python value (str, int, float, datetime, date, list, tuple, None) as a ClickHouse literal."""
    if isinstance(value, datetime):  # the library's formatting drops the fraction
        return literal(value.isoformat(sep=" "))
    if isinstance(value, (list, tuple)):
        inner = ", ".join(value_literal(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    return str(format_query_value(value))


def ts_literal(ts: datetime) -> str:
    """A DateTime64(3, 'UTC') literal with milliseconds (the library's datetime formatting drops them)."""
    text = ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts.microsecond // 1000:03d}"
    return f"toDateTime64({literal(text)}, 3, 'UTC')"


def day_literal(d: date) -> str:
    return f"toDate({literal(d.isoformat())})"


def quote_ident(name: str) -> str:
    return str(quote_identifier(name))


def qualified(database: str, table: str) -> str:
    return f"{quote_ident(database)}.{quote_ident(table)}"


def pairs_sql(pairs: Iterable[Pair]) -> str:
    """`(entityType, metricType) IN (…)` operand: a tuple list, or a list that matches nothing."""
    items = ", ".join(f"({literal(p.entity_type)}, {literal(p.metric_type)})" for p in pairs)
    return items or "('', '')"
