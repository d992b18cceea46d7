"""Backends: the only code that talks to PostgreSQL (psycopg) and ClickHouse (clickhouse-connect,
chDB), and the only code that writes SQL text from values (`_sql`: escaping by the client library).

No driver handle leaves this package: callers get `Postgres`/`Snapshot` (read-only sessions on one
exported snapshot, rows streamed as COPY bytes) and `ClickHouse` (statements, inserts, streams, a
row feed, and a `Capabilities` value saying what the engine can do).

May import: `metric_backfill._errors`, `metric_backfill.catalog` (for `Pair`), the drivers.
"""
