"""Exactly once, resumable, concurrent, fenced: the run against injected failures (in-process).

Every test backfills the shared hand-made scenarios (sourcedata.py) into a target that carries the
site's insert-fired summing rollup (demo/sql/clickhouse.sql), and checks the exact totals both in the
target and in the rollup against the independent expected totals — a rollup counts every inserted
row forever, so it is where a double insert would show. Failures are injected with test doubles
around the network calls; the databases are real. Crashes of a whole process (kill -9) are in
test_crash.py.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from cliout import problem
from click.testing import CliRunner
from sourcedata import CUTOFF, B, B2, insert_scenario, pg_exec, ts

from metric_backfill import ConfigError, OverlapError, RunResult, SourceError, TransientError, publish_run
from metric_backfill.cli._commands import cli
from metric_backfill.demo._embedded import EmbeddedPostgres
from metric_backfill.backends._postgres import Postgres
from metric_backfill.engine._run import Worker
from metric_backfill.engine._stage import ChunkStager
from metric_backfill.engine._state import StateStore
from metric_backfill.backends._clickhouse import ClickHouse
from totals import Totals, assert_exact, expected_totals, rollup_totals, table_totals

# -- stage, publish, publish again ----------------------------------------------------------------


def test_stage_only_then_publish_twice_then_the_same_command_again(
    world: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    ch_dsn: str,
    ch_db: str,
) -> None:
    table = target("events")
    staged = engine(run_kw={"stage_only": True}, chunk_rows=2, publish_slice_rows=7)
    assert staged.status == "staged"
    assert table_totals(ch_client, table) == {} and rollup_totals(ch_client, ch_db) == {}

    first = publish_run(ch_dsn, staged.run_id, state_database=f"{ch_db}_state")
    assert first > 0
    assert_exact(ch_client, ch_db, table, world)

    assert publish_run(ch_dsn, staged.run_id, state_database=f"{ch_db}_state") == 0
    assert_exact(ch_client, ch_db, table, world)

    again = engine(chunk_rows=2, publish_slice_rows=7)  # the same command (tuning knobs aside)
    assert again.run_id == staged.run_id and again.status == "published" and again.published_rows == 0
    assert_exact(ch_client, ch_db, table, world)


def test_publish_of_an_unknown_or_unstaged_run_is_refused(
    world: Totals, engine: Callable[..., RunResult], ch_dsn: str, ch_db: str
) -> None:
    with pytest.raises(ConfigError, match="unknown run 'nope'"):
        publish_run(ch_dsn, "nope", state_database=f"{ch_db}_state")


# -- target shapes ---------------------------------------------------------------------------------

COLLIDING = f"""
INSERT INTO "ImageReaction" ("id", "imageId", "userId", "reaction", "createdAt", "updatedAt") VALUES
    (1, 100, 5, 'Like', '2025-05-01 10:00:00.100', '{B}'),   -- images 100 and 101 are both in post 10:
    (2, 101, 5, 'Like', '2025-05-01 10:00:00.900', '{B}'),   -- Post 10 / user 5 / Like share a second
    (3, 101, 6, 'Like', '2025-05-01 10:00:01.000', '{B}');   -- the next second: its own key
"""


def test_month_shape_pre_aggregates_keys_across_chunks_and_writes_the_version(
    pg: str,
    ch: dict[str, str],
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    ch_db: str,
) -> None:
    pg_exec(pg, COLLIDING)
    table = target("month")
    # One row per chunk: the two colliding reactions are staged by different chunks (T4).
    engine(table=table, sources=("ImageReaction",), chunk_rows=1, backfill_version=7)
    rows = ch_client.query(
        f"SELECT entityId, userId, metricType, metricValue, toString(createdAt), version FROM {table} "
        "WHERE entityType = 'Post' ORDER BY ALL"
    ).result_rows
    assert rows == [
        (10, 5, "Like", 2, "2025-05-01 10:00:00", 7),
        (10, 5, "reactionCount", 2, "2025-05-01 10:00:00", 7),
        (10, 6, "Like", 1, "2025-05-01 10:00:01", 7),
        (10, 6, "reactionCount", 1, "2025-05-01 10:00:01", 7),
    ]
    want = expected_totals(pg, ch_client, ch, ch_db, sources=("ImageReaction",))
    assert want[("Post", 10, "Like")] == 3
    assert_exact(ch_client, ch_db, table, want, "month")


def test_new_shape_truncates_to_seconds_keeps_every_row_and_writes_the_default_version(
    pg: str, ch: dict[str, str], engine: Callable[..., RunResult], ch_client: Any, ch_db: str
) -> None:
    pg_exec(pg, COLLIDING)
    table = f"{ch_db}.entityMetricEvents_new"
    engine(table=table, target_shape="new", sources=("ImageReaction",))
    rows = ch_client.query(
        f"SELECT userId, metricValue, toString(createdAt), version FROM {table} "
        "WHERE entityType = 'Post' AND metricType = 'Like' ORDER BY ALL"
    ).result_rows
    assert rows == [
        (5, 1, "2025-05-01 10:00:00", 5),
        (5, 1, "2025-05-01 10:00:00", 5),
        (6, 1, "2025-05-01 10:00:01", 5),
    ]


# -- failures ------------------------------------------------------------------------------------


def test_a_transient_failure_in_the_middle_of_an_insert_is_retried_without_double_counting(
    world: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    ch_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = target("events")
    real = ChunkStager._stage_pg
    failed: list[int] = []

    def flaky(self: ChunkStager, sp: Any, chunk: Any, attempt: int) -> int:
        if sp.source.name == "ImageReaction" and not failed:
            # Half of the chunk's rows reach ClickHouse, then the connection drops (test double).
            data = b"".join(
                bytes(b)
                for b in self.snap.copy(
                    sp.query,
                    {
                        "lo": int(chunk.lo),
                        "hi": int(chunk.hi),
                        "cutoff": sp.cutoff,
                        "read_until": sp.cutoff,
                        "null_ts": sp.null_ts,
                        "etype": chunk.part,
                    },
                    what="test",
                )
            )
            lines = data.splitlines(keepends=True)
            assert len(lines) >= 2
            from metric_backfill.engine._compile import ts_structure

            self.ch.feed.run(
                lambda rows_sql: self._insert(sp, chunk, attempt, rows_sql),
                ts_structure(sp.source.columns),
                [b"".join(lines[: len(lines) // 2])],
                settings={},
            )
            failed.append(chunk.chunk_id)
            raise TransientError("connection reset by peer (injected)")
        return real(self, sp, chunk, attempt)

    monkeypatch.setattr(ChunkStager, "_stage_pg", flaky)
    result = engine()
    assert failed and result.status == "published"
    assert_exact(ch_client, ch_db, table, world)
    # The half-written attempt is still in staging, and ignored: only the `done` attempt counts.
    attempts = dict(
        ch_client.query(
            f"SELECT attempt, count() FROM {ch_db}_state.staging WHERE run_id = {{r:String}} "
            "AND chunk_id = {c:UInt32} GROUP BY attempt",
            parameters={"r": result.run_id, "c": failed[0]},
        ).result_rows
    )
    done = ch_client.query(
        f"SELECT attempt FROM {ch_db}_state.chunks FINAL WHERE run_id = {{r:String}} AND chunk_id = {{c:UInt32}}",
        parameters={"r": result.run_id, "c": failed[0]},
    ).result_rows[0][0]
    (half,) = [n for a, n in attempts.items() if a != done]
    assert len(attempts) == 2 and half < attempts[done]


def test_a_terminal_error_stops_the_run_and_the_same_command_resumes_it(
    world: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    ch_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = target("events")
    real = ChunkStager.stage
    calls = {"n": 0}

    def broken(self: ChunkStager, sp: Any, chunk: Any, attempt: int) -> int:
        calls["n"] += 1
        if sp.source.name == "BuzzTip":
            raise SourceError("PostgreSQL refused (injected)")
        return real(self, sp, chunk, attempt)

    monkeypatch.setattr(ChunkStager, "stage", broken)
    with pytest.raises(SourceError, match="injected"):
        engine(concurrency=1)
    assert table_totals(ch_client, table) == {}
    monkeypatch.setattr(ChunkStager, "stage", real)
    resumed = engine(concurrency=1)
    assert resumed.resumed and resumed.status == "published"
    assert_exact(ch_client, ch_db, table, world)


# An interrupted publish, at every step of a slice's commit, is in test_exactly_once.py.


# -- concurrency and workers -----------------------------------------------------------------------


def test_concurrency_1_and_4_give_identical_targets(
    world: Totals, engine: Callable[..., RunResult], ch_client: Any, ch_db: str
) -> None:
    for name, n in (("one", 1), ("four", 4)):
        engine(
            table=f"{ch_db}.{name}",
            earnings_table=f"{ch_db}.{name}",
            state_database=f"{ch_db}_s{n}",
            concurrency=n,
            chunk_rows=1,
        )
    q = "SELECT entityType, entityId, userId, metricType, metricValue, createdAt FROM {} ORDER BY ALL"
    one = ch_client.query(q.format(f"{ch_db}.one")).result_rows
    assert one and one == ch_client.query(q.format(f"{ch_db}.four")).result_rows
    assert table_totals(ch_client, f"{ch_db}.one") == world
    for s in ("s1", "s4"):
        ch_client.command(f"DROP DATABASE IF EXISTS {ch_db}_{s} SYNC")


def test_two_workers_share_one_run(
    world: Totals, engine: Callable[..., RunResult], target: Callable[[str], str], ch_client: Any, ch_db: str
) -> None:
    """Two workers of one run (here two threads, each with its own connections and snapshot, as two
    processes would): worker 1 waits for worker 0's plan, each stages its share, worker 0 publishes."""
    table = target("events")
    results: dict[int, RunResult] = {}

    def work(k: int) -> None:
        results[k] = engine(
            run_kw={"run_id": "shared-run", "worker": Worker(k, 2), "wait_timeout": 120}, chunk_rows=1, concurrency=1
        )

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(work, [1, 0]))
    assert results[0].status == "published" and results[1].status.startswith("staged")
    assert_exact(ch_client, ch_db, table, world)
    rows = ch_client.query(
        f"SELECT chunk_id, worker FROM {ch_db}_state.chunks FINAL WHERE run_id = 'shared-run'"
    ).result_rows
    assert len(rows) > 10
    assert all(w.endswith(f"/w{cid % 2}of2") for cid, w in rows)


def test_a_joining_worker_needs_the_run_id(engine: Callable[..., RunResult]) -> None:
    with pytest.raises(ConfigError, match="pass the --run-id"):
        engine(run_kw={"worker": Worker(1, 2)})


# -- the fence -------------------------------------------------------------------------------------


def legacy_rows(ch_client: Any, table: str) -> None:
    """What the 2024 migration, the app tracker and the aggregate snapshot left in the target (T8, T9)."""
    ch_client.insert(
        table,
        [
            ["Image", 100, 9, "ReactionLike", 1, CUTOFF.replace(month=1)],
            ["Image", 100, 8, "ReactionLike", 1, CUTOFF.replace(month=2)],
            ["Post", 10, -1, "Like", 40, CUTOFF.replace(month=3)],
        ],
        column_names=["entityType", "entityId", "userId", "metricType", "metricValue", "createdAt"],
        settings={"async_insert": 0},
    )


def test_the_fence_refuses_legacy_rows_and_names_them(
    pg: str,
    ch: dict[str, str],
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    ch_db: str,
) -> None:
    insert_scenario("ImageReaction", pg)
    table = target("events")
    legacy_rows(ch_client, table)
    with pytest.raises(OverlapError) as err:
        engine(sources=("ImageReaction",))
    rows = {r["pair"]: r["rows"] for r in err.value.rows}  # type: ignore[attr-defined]
    assert rows == {"Image.Like": 2, "Post.Like": 1}
    assert "--on-overlap" in str(err.value)
    assert ch_client.query(f"SELECT count() FROM {table}").result_rows[0][0] == 3  # nothing written
    assert ch_client.query(f"SELECT count() FROM system.databases WHERE name = '{ch_db}_state'").result_rows[0][0] == 0


def test_fence_skip_leaves_the_overlapping_pairs_out(
    pg: str,
    ch: dict[str, str],
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    ch_db: str,
) -> None:
    insert_scenario("ImageReaction", pg)
    table = target("events")
    legacy_rows(ch_client, table)
    result = engine(sources=("ImageReaction",), on_overlap="skip")
    assert sorted(result.overlap["skipped"]) == ["Image.Like", "Post.Like"]
    want = expected_totals(pg, ch_client, ch, ch_db, sources=("ImageReaction",))
    got = ch_client.query(
        f"SELECT DISTINCT entityType, metricType FROM {table} WHERE userId NOT IN (8, 9, -1)"
    ).result_rows
    assert ("Image", "Like") not in got and ("Post", "Like") not in got and ("Image", "Heart") in got
    assert table_totals(ch_client, table)[("Image", 100, "Heart")] == want[("Image", 100, "Heart")]


def test_fence_accept_writes_and_records_the_overlap(
    pg: str,
    ch: dict[str, str],
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    ch_db: str,
) -> None:
    insert_scenario("ImageReaction", pg)
    table = target("events")
    legacy_rows(ch_client, table)
    result = engine(sources=("ImageReaction",), on_overlap="accept")
    assert result.overlap["rows"] == {"Image.Like": 2, "Post.Like": 1}
    manifest = StateStore(ClickHouse(ch_client_dsn(ch_client)), f"{ch_db}_state").run(result.run_id).manifest  # type: ignore[union-attr]
    assert sorted(manifest["overlap"]["rows"]) == [["Image", "Like", 2], ["Post", "Like", 1]]
    want = expected_totals(pg, ch_client, ch, ch_db, sources=("ImageReaction",))
    got = table_totals(ch_client, table)
    assert got[("Image", 100, "Like")] == want[("Image", 100, "Like")]  # written next to the legacy rows
    assert got[("Image", 100, "ReactionLike")] == 2 and got[("Post", 10, "Like")] == want[("Post", 10, "Like")] + 40


def ch_client_dsn(ch_client: Any) -> str:
    import os

    return os.environ.get("METRIC_BACKFILL_TEST_CLICKHOUSE_URL") or f"chdb://{ch_client.path}"


@pytest.mark.parametrize("shape", ["events", "month"])
def test_fence_replace_withdraws_this_tools_earlier_run_by_negation(
    shape: str,
    pg: str,
    ch: dict[str, str],
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    ch_db: str,
) -> None:
    insert_scenario("ImageReaction", pg)
    table = target(shape)
    first = engine(table=table, sources=("ImageReaction",))
    with pytest.raises(OverlapError, match="this tool's runs"):
        engine(table=table, sources=("ImageReaction",), cutoff=ts(B2))  # a new cutoff: a new run
    second = engine(table=table, sources=("ImageReaction",), cutoff=ts(B2), on_overlap="replace")
    assert second.run_id != first.run_id and first.run_id in second.overlap["withdraw"]
    want = expected_totals(pg, ch_client, ch, ch_db, cutoff=ts(B2), sources=("ImageReaction",))
    assert_exact(ch_client, ch_db, table, want, shape)
    # and replacing the replacement again is just as exact
    third = engine(table=table, sources=("ImageReaction",), on_overlap="replace", chunk_rows=3)
    assert second.run_id in third.overlap["withdraw"]
    assert_exact(ch_client, ch_db, table, expected_totals(pg, ch_client, ch, ch_db, sources=("ImageReaction",)), shape)


def test_fence_replace_never_touches_rows_written_by_others(
    pg: str, ch: dict[str, str], engine: Callable[..., RunResult], target: Callable[[str], str], ch_client: Any
) -> None:
    insert_scenario("ImageReaction", pg)
    table = target("events")
    legacy_rows(ch_client, table)
    with pytest.raises(OverlapError, match=r"others wrote rows of 2 pairs \(3 rows in ") as refused:
        engine(sources=("ImageReaction",), on_overlap="replace")
    rows = {r["pair"]: r["rows"] for r in refused.value.rows}  # type: ignore[attr-defined]
    assert rows == {"Image.Like": 2, "Post.Like": 1}


# -- safety ----------------------------------------------------------------------------------------


def test_the_postgres_session_is_read_only(pg: str) -> None:
    with Postgres(pg).connect() as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute('CREATE TABLE "x" (a int)')
    with Postgres(pg).snapshot() as snap, pytest.raises(SourceError, match="read-only transaction"):
        snap.fetch('INSERT INTO "Tag" ("id", "name", "updatedAt") VALUES (99, $$x$$, now())', what="a write")


def test_clickhouse_statements_run_without_async_insert_in_utc(ch_dsn: str) -> None:
    ch = ClickHouse(ch_dsn)
    assert ch.query("SELECT getSetting('async_insert'), getSetting('session_timezone')")[0] == (False, "UTC")
    ch.close()


# -- bad input: one line, the right exit code, nothing written -------------------------------------


def cli_run(pg_url: str, ch_dsn: str, ch_db: str, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--pg",
            pg_url,
            "--clickhouse",
            ch_dsn,
            "--cutoff",
            "2025-06-01 00:00:00",
            "--table",
            f"{ch_db}.entityMetricEvents",
            "--state-db",
            f"{ch_db}_state",
            "--sources",
            "ImageReaction,BountyEngagement",
            *extra,
        ],
    )
    return result.exit_code, problem(result.stderr)


def nothing_written(ch_client: Any, ch_db: str) -> bool:
    dbs = ch_client.query(f"SELECT count() FROM system.databases WHERE name = '{ch_db}_state'").result_rows[0][0]
    tables = ch_client.query(
        f"SELECT count() FROM system.tables WHERE database = '{ch_db}' AND name = 'entityMetricEvents'"
    ).result_rows[0][0]
    return dbs == 0 and tables == 0


def test_unreachable_postgres(ch_dsn: str, ch_client: Any, ch_db: str) -> None:
    code, err = cli_run("postgresql://postgres:sekret@127.0.0.1:1/site", ch_dsn, ch_db)
    assert code == 3 and len(err.splitlines()) == 1
    assert "cannot connect to PostgreSQL at postgresql://postgres:***@127.0.0.1:1/site" in err and "sekret" not in err
    assert nothing_written(ch_client, ch_db)


def test_wrong_postgres_password(tmp_path: Any, ch_dsn: str, ch_client: Any, ch_db: str) -> None:
    server = EmbeddedPostgres(tmp_path / "pgpw", password="right-one").start()
    try:
        code, err = cli_run(server.url("postgres", password="wrong-one"), ch_dsn, ch_db)
    finally:
        server.stop()
    assert code == 2 and len(err.splitlines()) == 1
    assert "refused the credentials" in err and "wrong-one" not in err and "right-one" not in err
    assert nothing_written(ch_client, ch_db)


@pytest.mark.parametrize(
    "ddl, named",
    [
        ('DROP TABLE "BountyEngagement"', 'relation "BountyEngagement" does not exist'),
        ('ALTER TABLE "ImageReaction" DROP COLUMN "reaction"', "reaction"),
    ],
)
def test_missing_source_table_or_column(ddl: str, named: str, pg: str, ch_dsn: str, ch_client: Any, ch_db: str) -> None:
    pg_exec(pg, ddl)
    code, err = cli_run(pg, ch_dsn, ch_db)
    assert code == 3 and len(err.splitlines()) == 1 and named in err
    assert nothing_written(ch_client, ch_db)


def test_incompatible_target(pg: str, ch_dsn: str, ch_client: Any, ch_db: str) -> None:
    ch_client.command(
        f"CREATE TABLE {ch_db}.entityMetricEvents (entityType String, entityId String, userId Int32, "
        "metricType String, metricValue Int32, createdAt DateTime) ENGINE = MergeTree ORDER BY entityType"
    )
    code, err = cli_run(pg, ch_dsn, ch_db)
    assert code == 3 and len(err.splitlines()) == 1
    assert "incompatible schema (entityId is String, expected Int32)" in err
    assert ch_client.query(f"SELECT count() FROM {ch_db}.entityMetricEvents").result_rows[0][0] == 0


def test_unreachable_clickhouse_server(pg: str, ch_client: Any, ch_db: str) -> None:
    code, err = cli_run(pg, "http://default:pw123@127.0.0.1:1/default", ch_db)
    assert code == 3 and len(err.splitlines()) == 1
    assert "cannot reach ClickHouse at http://default:***@127.0.0.1:1/default" in err and "pw123" not in err


def test_unknown_pair(pg: str, ch_dsn: str, ch_client: Any, ch_db: str) -> None:
    code, err = cli_run(pg, ch_dsn, ch_db, "--only", "Image.ReactionLike")
    assert code == 2 and "unknown pair 'Image.ReactionLike'" in err
    assert nothing_written(ch_client, ch_db)


# -- dry run and status ----------------------------------------------------------------------------


def test_dry_run_counts_what_a_run_writes_and_writes_nothing(
    world: Totals,
    engine: Callable[..., RunResult],
    pg: str,
    ch: dict[str, str],
    ch_client: Any,
    ch_dsn: str,
    ch_db: str,
) -> None:
    from sourcedata import CUTOFF_DATE as EARNINGS_DAY

    from metric_backfill import RunConfig, dry_run

    cfg = RunConfig(
        pg_url=pg,
        clickhouse_url=ch_dsn,
        cutoff=CUTOFF,
        earnings_cutoff_date=EARNINGS_DAY,
        table=f"{ch_db}.entityMetricEvents",
        state_database=f"{ch_db}_state",
        ch_tables=dict(ch),
    )
    counts = dry_run(cfg)
    assert nothing_written(ch_client, ch_db)
    result = engine()
    assert counts == result.pairs
    assert sum(d.get("events", 0) for d in counts.values()) == result.published_rows


def test_status_reports_chunks_rows_and_events_per_source(
    world: Totals, engine: Callable[..., RunResult], ch_dsn: str, ch_db: str, pg: str
) -> None:
    from metric_backfill.engine._status import run_status

    result = engine(chunk_rows=2)
    ch = ClickHouse(ch_dsn)
    st = run_status(StateStore(ch, f"{ch_db}_state"), result.run_id)
    ch.close()
    assert st["status"] == "published"
    by = {s["source"]: s for s in st["sources"]}
    assert all(s["done"] == s["total"] > 0 and s["failed"] == 0 and s["eta"] is None for s in by.values())
    assert sum(s["events"] for s in by.values()) == result.published_rows
    with psycopg.connect(pg) as conn:
        reactions = conn.execute('SELECT count(*) FROM "ImageReaction" WHERE "createdAt" < %s', (CUTOFF,)).fetchone()
    assert by["ImageReaction"]["rows_read"] == reactions[0]  # type: ignore[index]
    assert by["ImageReaction"]["total"] >= 3  # two rows per chunk


# -- the state's schema version --------------------------------------------------------------------


def test_state_of_schema_2_is_upgraded_in_place_and_other_versions_are_refused(
    pg: str, engine: Callable[..., RunResult], target: Callable[[str], str], ch_client: Any, ch_db: str, ch_dsn: str
) -> None:
    from metric_backfill.engine._status import status

    insert_scenario("ImageReaction", pg)
    target("events")
    first = engine(sources=("ImageReaction",))
    state = f"{ch_db}_state"

    def set_version(v: int) -> None:
        ch_client.command(
            f"INSERT INTO {state}.meta (key, value, updated_at) VALUES ('schema_version', '{v}', now64(6))"
        )

    # What a version-2 tool left: no events column, no chunk index on staging, no heartbeats.
    ch_client.command(f"ALTER TABLE {state}.chunks DROP COLUMN events")
    ch_client.command(f"ALTER TABLE {state}.staging DROP INDEX by_chunk")
    ch_client.command(f"DROP TABLE {state}.heartbeats SYNC")
    set_version(2)
    again = engine(sources=("ImageReaction",))
    assert again.run_id == first.run_id and again.status == "published"  # the old run reads on
    assert ch_client.query(f"SELECT value FROM {state}.meta FINAL WHERE key = 'schema_version'").result_rows == [("3",)]
    assert "events" in {r[0] for r in ch_client.query(f"DESCRIBE TABLE {state}.chunks").result_rows}
    assert ch_client.query(f"EXISTS TABLE {state}.heartbeats").result_rows == [(1,)]
    assert [r["run_id"] for r in status(ch_dsn, state)["runs"]] == [first.run_id]

    for version, words in ((4, "a newer metric-backfill"), (1, "an older metric-backfill")):
        set_version(version)
        with pytest.raises(ConfigError, match=f"holds schema version {version}, written by {words}"):
            engine(sources=("ImageReaction",))
