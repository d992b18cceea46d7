"""Helper run as a separate process by the crash tests.

chDB allows one engine path per process, and a crash test's backfill runs in a child process
that owns its engine; the test process therefore reads and prepares that engine through this
script, never in-process.

    python child.py generate PG_URL CH_PATH SCALE SEED   # fill PostgreSQL + the ClickHouse sources
    python child.py sql CH_PATH STATEMENT...              # run statements; print the last one's rows as JSON
"""

from __future__ import annotations

import json
import sys
import warnings

warnings.filterwarnings("ignore")


def main(argv: list[str]) -> None:
    from metric_backfill.backends._clickhouse import open_embedded
    from metric_backfill.demo._embedded import chdb_dsn

    if argv[0] == "generate":
        from metric_backfill.demo._generate import generate

        pg_url, path, scale, seed = argv[1], argv[2], float(argv[3]), int(argv[4])
        from metric_backfill.backends._clickhouse import ClickHouse

        with ClickHouse(chdb_dsn(path), lock_wait=600) as ch:
            print(json.dumps(generate(pg_url, ch, scale=scale, seed=seed)))
    elif argv[0] == "sql":
        # A publisher left finishing by a killed run may hold the engine: wait for it.
        client = open_embedded(chdb_dsn(argv[1]), 600, None, settings={"async_insert": 0})
        rows: list[list[object]] = []
        for statement in argv[2:]:
            if statement.lstrip().upper().startswith(("SELECT", "WITH")):
                rows = [list(r) for r in client.query(statement).result_rows]
            else:
                client.command(statement)
        print(json.dumps(rows, default=str))
        client.close()
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
