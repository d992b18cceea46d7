"""Running the independent expected-totals queries straight from a test (results collected in Python).

Test helpers, not product code: the tool itself streams the same queries into ClickHouse
(metric_backfill.verify._compare) and never brings per-entity rows into Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import psycopg

from metric_backfill._errors import ConfigError
from metric_backfill.verify._expected import LOOKUPS, ExpectedQuery

__all__ = ["load_lookups", "run_expected"]


def _ch_ident(name: str) -> str:
    return ".".join("`" + part + "`" for part in name.split("."))


def load_lookups(
    pg_conn: psycopg.Connection[Any], ch_client: Any, lookup_db: str, *, batch_bytes: int = 16 << 20
) -> None:
    """(Re)create and fill `<lookup_db>.pg_model_version` and `<lookup_db>.pg_image` from PostgreSQL.

    Streams `COPY (...) TO STDOUT` (text format = TabSeparated: two NOT NULL integers per line)
    and inserts whole lines in batches of about `batch_bytes`, synchronously (async_insert = 0).
    Reads in `pg_conn`'s current transaction, so a caller holding a snapshot gets consistent lookups.
    """
    db = _ch_ident(lookup_db)
    ch_client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    for table, column, select in LOOKUPS:
        target = f"{db}.`{table}`"
        ch_client.command(f"DROP TABLE IF EXISTS {target}")
        ch_client.command(f"CREATE TABLE {target} (id Int32, `{column}` Int32) ENGINE = MergeTree ORDER BY id")

        def flush(block: bytes, target: str = target, column: str = column) -> None:
            ch_client.raw_insert(
                target, ["id", column], insert_block=block, fmt="TabSeparated", settings={"async_insert": 0}
            )

        buf = bytearray()
        with pg_conn.cursor() as cur, cur.copy(f"COPY ({select}) TO STDOUT") as copy:
            for chunk in copy:
                buf += chunk
                if len(buf) >= batch_bytes:
                    cut = buf.rfind(b"\n") + 1  # insert whole lines only
                    if cut:
                        flush(bytes(buf[:cut]))
                        del buf[:cut]
        if buf:
            flush(bytes(buf))


def run_expected(
    pg_url: str,
    ch_client: Any,
    queries: Iterable[ExpectedQuery],
    *,
    cutoff: datetime,
    cutoff_date: date | None = None,
    source_cutoffs: Mapping[str, datetime] | None = None,
    load_lookups_into: str | None = None,
) -> dict[tuple[str, int, str], tuple[int, int]]:
    """Run `queries` and return {(entityType, entityId, metricType): (total, events)}.

    For tests and the demo (results are collected in Python). All PostgreSQL queries run in one
    read-only REPEATABLE READ transaction (TimeZone UTC, DateStyle ISO). Keys returned by several
    sources (e.g. User.reactionCount from images, articles and bounty entries) are summed.
    `source_cutoffs` overrides `cutoff` per source name. `load_lookups_into`: if given, first fill
    that ClickHouse database's lookup tables from the same PostgreSQL snapshot.
    """
    import psycopg

    overrides = dict(source_cutoffs or {})
    result: dict[tuple[str, int, str], tuple[int, int]] = {}

    def add(rows: Iterable[Sequence[Any]]) -> None:
        for entity_type, entity_id, metric_type, total, events in rows:
            key = (str(entity_type), int(entity_id), str(metric_type))
            t0, e0 = result.get(key, (0, 0))
            result[key] = (t0 + int(total), e0 + int(events))

    queries = list(queries)
    with psycopg.connect(pg_url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET DateStyle = 'ISO'")
        if load_lookups_into is not None:
            load_lookups(conn, ch_client, load_lookups_into)
        for q in queries:
            params = q.parameters(cutoff=overrides.get(q.source, cutoff), cutoff_date=cutoff_date)
            if q.engine == "pg":
                add(conn.execute(q.sql, params).fetchall())
            elif q.engine == "ch":
                add(ch_client.query(q.sql, parameters=params).result_rows)
            else:
                raise ConfigError(f"expected query {q.source!r}: unknown engine {q.engine!r}")
        conn.rollback()
    return result
