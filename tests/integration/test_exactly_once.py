"""Exactly once against the failures the first round did not script (issue: exactly once against every failure).

Each test reproduces one way the target or its rollup could count an event twice or lose one, and
judges the result by the totals of the target AND of the site's insert-fired rollup on it
(demo/sql/clickhouse.sql), against the independent expected totals. Interruptions of a publish are
injected in-process at every step of a slice's commit (the states a kill of the engine's process
can leave, one table at a time); kills of real processes are in test_crash.py.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cliout import problem
from click.testing import CliRunner
from sourcedata import CUTOFF, CUTOFF_DATE, ETYPES, B, ch_insert, insert_all_scenarios, insert_scenario, pg_exec
from totals import Totals, assert_exact, expected_totals, rollup_totals, table_totals

from metric_backfill import ConfigError, OverlapError, PublishConflict, RunConfig, RunResult, publish_run
from metric_backfill.catalog import Pair
from metric_backfill.cli._commands import cli
from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill.engine._publish import Publisher
from metric_backfill.engine._target import target_ddl


class Died(BaseException):
    """The process dies here (a BaseException: nothing in the tool may swallow it)."""


def months_of_reactions(pg: str, months: int = 5) -> None:
    """Reactions spread over several months, so that one publish slice spans several partitions."""
    rows = ", ".join(
        f"({1000 + i}, {100 + i % 3}, {1 + (i // 9) % 9}, '{('Like', 'Heart', 'Cry')[(i // 3) % 3]}', "
        f"'2025-0{1 + i % months}-{10 + i % 15:02d} 10:00:00', '{B}')"
        for i in range(81)
    )
    pg_exec(
        pg,
        f'INSERT INTO "ImageReaction" ("id", "imageId", "userId", "reaction", "createdAt", "updatedAt") VALUES {rows}',
    )


@pytest.fixture()
def reactions(pg: str, ch: dict[str, str], ch_client: Any, ch_db: str) -> Totals:
    months_of_reactions(pg)
    return expected_totals(pg, ch_client, ch, ch_db, sources=("ImageReaction",))


def state_of(ch_dsn: str, ch_db: str) -> str:
    return f"{ch_db}_state"


# -- 1. overlap is checked again when a run publishes ----------------------------------------------


@pytest.mark.parametrize("shape", ["events", "month"])
def test_two_staged_runs_of_the_same_pairs_cannot_both_publish(
    shape: str,
    reactions: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    ch_dsn: str,
    ch_db: str,
) -> None:
    table = target(shape)
    a = engine(run_kw={"stage_only": True, "run_id": "A"}, table=table, sources=("ImageReaction",))
    b = engine(run_kw={"stage_only": True, "run_id": "B"}, table=table, sources=("ImageReaction",))
    assert a.status == b.status == "staged"
    assert publish_run(ch_dsn, "A", state_database=state_of(ch_dsn, ch_db)) > 0
    with pytest.raises(OverlapError, match=r"run B was planned before other runs published the same pairs \(run A:"):
        publish_run(ch_dsn, "B", state_database=state_of(ch_dsn, ch_db))
    assert_exact(ch_client, ch_db, table, reactions, shape)
    # The CLI says the same in one line, exit 2.
    result = CliRunner().invoke(cli, ["publish", "B", "--clickhouse", ch_dsn, "--state-db", state_of(ch_dsn, ch_db)])
    assert result.exit_code == 2 and "run A:" in result.stderr and len(problem(result.stderr).splitlines()) == 1
    assert_exact(ch_client, ch_db, table, reactions, shape)


def test_a_partial_run_staged_before_a_full_run_refuses_to_publish_after_it(
    world: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    ch_dsn: str,
    ch_db: str,
) -> None:
    table = target("events")
    part = engine(run_kw={"stage_only": True}, only=("Image.Like",))
    full = engine()
    assert full.status == "published" and full.run_id != part.run_id
    with pytest.raises(OverlapError, match="Image.Like"):
        publish_run(ch_dsn, part.run_id, state_database=state_of(ch_dsn, ch_db))
    assert_exact(ch_client, ch_db, table, world)


def test_publish_time_skip_publishes_only_the_pairs_nobody_published_since(
    world: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    ch_dsn: str,
    ch_db: str,
) -> None:
    table = target("events")
    full = engine(run_kw={"stage_only": True})
    engine(only=("Image.Like",), table=table, run_kw={"run_id": "likes"})
    assert publish_run(ch_dsn, full.run_id, state_database=state_of(ch_dsn, ch_db), on_overlap="skip") > 0
    assert_exact(ch_client, ch_db, table, world)
    assert publish_run(ch_dsn, full.run_id, state_database=state_of(ch_dsn, ch_db)) == 0


def test_two_runs_started_at_once_never_both_publish(
    reactions: Totals, engine: Callable[..., RunResult], target: Callable[[str], str], ch_client: Any, ch_db: str
) -> None:
    table = target("events")

    def go(name: str) -> RunResult | BaseException:
        try:
            return engine(run_kw={"run_id": name}, table=table, sources=("ImageReaction",), chunk_rows=7)
        except OverlapError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(go, ["one", "two"]))
    published = [o for o in outcomes if isinstance(o, RunResult)]
    refused = [o for o in outcomes if isinstance(o, OverlapError)]
    assert len(published) == 1 and len(refused) == 1, outcomes
    assert_exact(ch_client, ch_db, table, reactions)


def test_a_stale_reconcile_cannot_publish_after_a_newer_one(
    world: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    pg: str,
    ch: dict[str, str],
    ch_dsn: str,
    ch_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from metric_backfill.engine import _run
    from metric_backfill.verify import _verify as _check

    table = target("events")
    engine()
    ch_client.command(
        f"ALTER TABLE {table} DELETE WHERE entityType = 'Image' AND metricType = 'Like' AND entityId = 100",
        settings={"mutations_sync": 2},
    )
    cfg = RunConfig(
        pg_url=pg,
        clickhouse_url=ch_dsn,
        cutoff=CUTOFF,
        earnings_cutoff_date=CUTOFF_DATE,
        table=table,
        state_database=state_of(ch_dsn, ch_db),
        ch_tables=dict(ch),
    )

    def killed(*a: Any, **kw: Any) -> int:
        raise Died

    monkeypatch.setattr(_check, "publish_staged", killed)
    with pytest.raises(Died):
        _check.reconcile(cfg, as_of=CUTOFF)
    monkeypatch.setattr(_check, "publish_staged", _run.publish_staged)
    stale = [r.run_id for r in _state(ch_dsn, ch_db).runs() if r.run_id.startswith("reconcile-")]
    fresh = _check.reconcile(cfg, as_of=CUTOFF)
    assert fresh.corrections > 0
    assert _check.verify(cfg, as_of=CUTOFF).report.ok
    with pytest.raises(OverlapError, match="run reconcile again"):
        publish_run(ch_dsn, stale[0], state_database=state_of(ch_dsn, ch_db))
    assert _check.verify(cfg, as_of=CUTOFF).report.ok


def _state(ch_dsn: str, ch_db: str) -> Any:
    from metric_backfill.engine._state import StateStore

    return StateStore(ClickHouse(ch_dsn), state_of(ch_dsn, ch_db))


# -- 2. an interrupted publish is settled per partition, target and rollup -------------------------


def _die_once(
    monkeypatch: pytest.MonkeyPatch, cls: Any, name: str, when: Callable[..., bool], after: bool = False
) -> dict[str, int]:
    real = getattr(cls, name)
    hits = {"n": 0}

    def patched(self: Any, *a: Any, **kw: Any) -> Any:
        if hits["n"] == 0 and when(*a, **kw):
            hits["n"] += 1
            if after:
                real(self, *a, **kw)
            raise Died
        return real(self, *a, **kw)

    monkeypatch.setattr(cls, name, patched)
    return hits


STEPS = {
    # died after recording `committing`, before the target got anything
    "before the target": (
        ClickHouse,
        "command",
        lambda sql, **kw: sql.startswith("ALTER TABLE") and "ATTACH" in sql,
        False,
    ),
    # one partition of a multi-month slice attached, the others not, the rollup not
    "between partitions": (
        ClickHouse,
        "command",
        lambda sql, **kw: sql.startswith("ALTER TABLE") and "ATTACH" in sql,
        True,
    ),
    # the target complete, the rollup not
    "before the rollup": (Publisher, "_commit_view", lambda *a, **kw: True, False),
    # target and rollup complete, `done` not recorded
    "before done": (Publisher, "_record", lambda sl, step, *a, **kw: step == "done" and a and a[0] > 0, False),
}


@pytest.mark.parametrize("shape", ["events", "month"])
@pytest.mark.parametrize("step", list(STEPS))
def test_a_publish_interrupted_at_any_step_is_settled_exactly(
    step: str,
    shape: str,
    reactions: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    ch_dsn: str,
    ch_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = target(shape)
    staged = engine(run_kw={"stage_only": True}, table=table, sources=("ImageReaction",), publish_slice_rows=10_000)
    cls, name, when, after = STEPS[step]
    hits = _die_once(monkeypatch, cls, name, when, after)
    with pytest.raises(Died):
        publish_run(ch_dsn, staged.run_id, state_database=state_of(ch_dsn, ch_db))
    assert hits["n"] == 1
    monkeypatch.undo()
    if step != "before the target":
        assert table_totals(ch_client, table) != {}  # something had landed: this is a real half state
    publish_run(ch_dsn, staged.run_id, state_database=state_of(ch_dsn, ch_db))
    assert_exact(ch_client, ch_db, table, reactions, shape)
    notes = [
        n
        for (n,) in ch_client.query(
            f"SELECT note FROM {ch_db}.metric_backfill_ledger WHERE note LIKE 'settled%'"
        ).result_rows
    ]
    assert len(notes) == 1
    if step == "between partitions":
        assert "target partitions" in notes[0] and "view" in notes[0]
    if step == "before the rollup":
        assert "view" in notes[0] and "target partitions" not in notes[0]
    if step == "before done":
        assert notes[0].endswith("it had landed whole")
    # publishing once more changes nothing
    assert publish_run(ch_dsn, staged.run_id, state_database=state_of(ch_dsn, ch_db)) == 0
    assert_exact(ch_client, ch_db, table, reactions, shape)
    leftovers = ch_client.query(
        f"SELECT name FROM system.tables WHERE database = '{ch_db}_state' AND name LIKE 'publish_%'"
    ).result_rows
    assert leftovers == []


def _died_at_a_view_commit(
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    ch_dsn: str,
    ch_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[RunResult, dict[str, Any]]:
    """A staged ImageReaction run whose publish died as it committed a rollup part, and the
    ledger's record of that commit (what the settle measures)."""
    import json

    staged = engine(
        run_kw={"stage_only": True}, table=target("events"), sources=("ImageReaction",), publish_slice_rows=10_000
    )
    _die_once(monkeypatch, Publisher, "_commit_view", lambda *a, **kw: True)
    with pytest.raises(Died):
        publish_run(ch_dsn, staged.run_id, state_database=state_of(ch_dsn, ch_db))
    monkeypatch.undo()
    detail = json.loads(
        ch_client.query(
            f"SELECT detail FROM {ch_db}.metric_backfill_ledger WHERE step = 'committing' LIMIT 1"
        ).result_rows[0][0]
    )
    return staged, detail


def test_a_rollup_changed_by_someone_else_during_an_interruption_stops_with_the_statement(
    reactions: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    ch_dsn: str,
    ch_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staged, detail = _died_at_a_view_commit(engine, target, ch_client, ch_dsn, ch_db, monkeypatch)
    # Another writer adds to one of the rollup keys the slice was measured on: the tool cannot tell
    # whether its part landed, and says so with the statement that would finish it.
    key = next(iter(detail["views"][0]["sample"].values()))[0]
    agg = f"{ch_db}.entityMetricDailyAgg"
    ch_client.command(
        f"INSERT INTO {agg} (entityType, entityId, metricType, day, total) "
        f"SELECT k.1, k.2, k.3, k.4, 5 FROM (SELECT {key} AS k)",
        settings={"async_insert": 0},
    )
    with pytest.raises(
        PublishConflict, match=r"entityMetricDaily.*(INSERT INTO|ALTER TABLE) `[^`]+`\.`entityMetricDailyAgg`"
    ):
        publish_run(ch_dsn, staged.run_id, state_database=state_of(ch_dsn, ch_db))


def test_a_rollup_key_written_by_someone_else_that_the_commit_was_not_measured_on_changes_nothing(
    reactions: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    ch_dsn: str,
    ch_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The live pipeline keeps writing rollup keys while a publish is interrupted: the settle is exact
    for the slice, and the other writer's rows stay what they are."""
    staged, detail = _died_at_a_view_commit(engine, target, ch_client, ch_dsn, ch_db, monkeypatch)
    sampled = {k for ks in detail["views"][0]["sample"].values() for k in ks}
    agg = f"{ch_db}.entityMetricDailyAgg"
    rows = ch_client.query(f"SELECT entityType, entityId, metricType, day FROM {agg} LIMIT 0").result_rows
    assert rows == []  # the rollup part had not landed
    live_day = CUTOFF.date()  # a day the backfill never writes
    ch_client.command(
        f"INSERT INTO {agg} (entityType, entityId, metricType, day, total) VALUES "
        f"('Image', 100, 'Like', '{live_day}', 5)",
        settings={"async_insert": 0},
    )
    assert not any(str(live_day) in k for k in sampled)
    publish_run(ch_dsn, staged.run_id, state_database=state_of(ch_dsn, ch_db))
    want = dict(reactions)
    want[("Image", 100, "Like")] = want.get(("Image", 100, "Like"), 0) + 5
    assert rollup_totals(ch_client, ch_db) == want
    assert table_totals(ch_client, f"{ch_db}.entityMetricEvents") == reactions


def test_a_target_feeding_a_view_the_tool_cannot_apply_is_refused_before_writing(
    reactions: Totals, engine: Callable[..., RunResult], target: Callable[[str], str], ch_client: Any, ch_db: str
) -> None:
    table = target("events")
    ch_client.command(f"CREATE TABLE {ch_db}.odd (n UInt64) ENGINE = SummingMergeTree ORDER BY tuple()")
    ch_client.command(
        f"CREATE MATERIALIZED VIEW {ch_db}.odd_mv TO {ch_db}.odd AS SELECT count() AS n "
        f"FROM {table} WHERE entityId IN (SELECT entityId FROM {table})"
    )
    with pytest.raises(Exception, match="odd_mv"):
        engine(table=table, sources=("ImageReaction",))
    assert table_totals(ch_client, table) == {} and rollup_totals(ch_client, ch_db) == {}


# -- 3. names from the command line cannot shape SQL ------------------------------------------------


def test_a_hostile_state_db_name_is_refused_and_drops_nothing(
    pg: str, ch: dict[str, str], ch_client: Any, ch_dsn: str, ch_db: str
) -> None:
    before = ch_client.query(f"SELECT count() FROM system.tables WHERE database = '{ch_db}'").result_rows[0][0]
    for name in (f"x`.`{ch_db}`.`modelVersionEvents", "st.db", "a b"):
        result = CliRunner().invoke(
            cli,
            [
                "verify",
                "--pg",
                pg,
                "--clickhouse",
                ch_dsn,
                "--cutoff",
                "2025-06-01 00:00:00",
                "--state-db",
                name,
                "--table",
                f"{ch_db}.entityMetricEvents",
            ],
        )
        assert result.exit_code == 2, result.output + result.stderr
        assert "invalid --state-db" in result.stderr and len(problem(result.stderr).splitlines()) == 1
    assert ch_client.query(f"SELECT count() FROM system.tables WHERE database = '{ch_db}'").result_rows[0][0] == before


# -- 4./5. types that cannot wrap --------------------------------------------------------------------


def _earnings(ch_client: Any, ch: dict[str, str], rows: list[tuple[Any, ...]]) -> None:
    ch_insert(
        ch_client, ch["resourceCompensations"], ["date", "modelVersionId", "accountType", "source", "amount"], rows
    )


def test_earnings_beyond_int32_refuse_the_run_before_anything_is_written(
    pg: str, ch: dict[str, str], engine: Callable[..., RunResult], ch_client: Any, ch_db: str
) -> None:
    day = CUTOFF_DATE.replace(day=3, month=5)
    _earnings(ch_client, ch, [(day, 600, "user", "compensation", 3e9)])
    with pytest.raises(ConfigError, match=r"ModelVersion.earnedAmount: a value of 3000000000 .*Int32"):
        engine(sources=("resourceCompensations",))
    assert table_totals(ch_client, f"{ch_db}.entityMetricEvents") == {}


def test_two_versions_whose_model_sum_is_beyond_int32_are_refused_and_an_int64_target_takes_them(
    pg: str, ch: dict[str, str], engine: Callable[..., RunResult], ch_client: Any, ch_db: str
) -> None:
    day = CUTOFF_DATE.replace(day=3, month=5)
    _earnings(ch_client, ch, [(day, 600, "user", "compensation", 2e9), (day, 601, "user", "compensation", 2e9)])
    with pytest.raises(ConfigError, match=r"Model.earnedAmount: a value of 4000000000"):
        engine(sources=("resourceCompensations",))
    wide = f"{ch_db}.wide"
    ch_client.command(target_ddl("events", wide).replace("metricValue Int32", "metricValue Int64"))
    engine(sources=("resourceCompensations",), table=wide, earnings_table=wide, state_database=f"{ch_db}_wide")
    got = table_totals(ch_client, wide)
    assert got[("Model", 60, "earnedAmount")] == 4_000_000_000
    assert got[("ModelVersion", 600, "earnedAmount")] == 2_000_000_000
    ch_client.command(f"DROP DATABASE IF EXISTS {ch_db}_wide SYNC")


@pytest.mark.parametrize("shape", ["new", "month"])
def test_timestamps_before_1970_are_refused_for_a_datetime_target(
    shape: str, pg: str, ch: dict[str, str], engine: Callable[..., RunResult], ch_client: Any, ch_db: str
) -> None:
    pg_exec(
        pg,
        f"""INSERT INTO "ImageReaction" ("id", "imageId", "userId", "reaction", "createdAt", "updatedAt")
                   VALUES (1, 100, 5, 'Like', '1969-12-31 23:59:59.999', '{B}'), (2, 100, 6, 'Like', '{B}', '{B}')""",
    )
    table = f"{ch_db}.{'entityMetricEvents_month' if shape == 'month' else 'entityMetricEvents_new'}"
    with pytest.raises(ConfigError, match=r"Image.Like: createdAt 1969-12-31 23:59:59.999000, which .* cannot hold"):
        engine(sources=("ImageReaction",), table=table, target_shape=shape)
    assert table_totals(ch_client, table) == {}
    # A DateTime64(3) target holds it, exactly.
    engine(sources=("ImageReaction",), state_database=f"{ch_db}_ms")
    rows = ch_client.query(
        f"SELECT toString(createdAt) FROM {ch_db}.entityMetricEvents WHERE entityType = 'Image' AND userId = 5"
    ).result_rows
    assert rows == [("1969-12-31 23:59:59.999",)]
    ch_client.command(f"DROP DATABASE IF EXISTS {ch_db}_ms SYNC")


# -- 6./7. values that would shape SQL, pairs that are not dotted strings ---------------------------

HOSTILE_TYPES = ("back\\slash", "it's", "ends with \\", "a.b", "%(cutoff)s", "semi;colon -- x")


@pytest.mark.parametrize("conforming", ["on", "off"])
def test_hostile_buzztip_entity_types_are_data_everywhere(
    conforming: str,
    pg: str,
    ch: dict[str, str],
    engine: Callable[..., RunResult],
    ch_client: Any,
    ch_dsn: str,
    ch_db: str,
) -> None:
    from metric_backfill.verify import _verify as _check

    dbname = pg.rsplit("/", 1)[1]
    pg_exec(pg, f"ALTER DATABASE {dbname} SET standard_conforming_strings = {conforming}")
    values = ", ".join(f"($${t}$$, {i}, 1, 5, {10 + i}, '{B}', '{B}')" for i, t in enumerate(HOSTILE_TYPES, 1))
    pg_exec(
        pg,
        f'INSERT INTO "BuzzTip" ("entityType", "entityId", "toUserId", "fromUserId", "amount", "createdAt", '
        f'"updatedAt") VALUES {values}',
    )
    result = engine(sources=("BuzzTip",))
    got = table_totals(ch_client, f"{ch_db}.entityMetricEvents")
    for i, t in enumerate(HOSTILE_TYPES, 1):
        assert got[(t, i, "tippedAmount")] == 10 + i and got[(t, i, "tippedCount")] == 1
        assert str(Pair(t, "tippedCount")) in result.pairs
    cfg = RunConfig(
        pg_url=pg,
        clickhouse_url=ch_dsn,
        cutoff=CUTOFF,
        earnings_cutoff_date=CUTOFF_DATE,
        table=f"{ch_db}.entityMetricEvents",
        state_database=f"{ch_db}_state",
        ch_tables=dict(ch),
        sources=("BuzzTip",),
    )
    report = _check.verify(cfg, as_of=CUTOFF).report
    assert report.ok
    by_pair = {p.pair: p for p in report.pairs}
    assert all(by_pair[str(Pair(t, "tippedAmount"))].entities == 1 for t in HOSTILE_TYPES)
    assert _check.reconcile(cfg, as_of=CUTOFF).corrections == 0


def test_a_dotted_entity_type_is_fenced_and_selected_as_one_entity_type(
    pg: str, ch: dict[str, str], engine: Callable[..., RunResult], ch_client: Any, ch_db: str
) -> None:
    pg_exec(
        pg,
        f'INSERT INTO "BuzzTip" ("entityType", "entityId", "toUserId", "fromUserId", "amount", "createdAt", '
        f"\"updatedAt\") VALUES ('a.b', 7, 1, 5, 40, '{B}', '{B}')",
    )
    table = f"{ch_db}.entityMetricEvents"
    ch_client.command(target_ddl("events", table))
    ch_insert(
        ch_client,
        table,
        ["entityType", "entityId", "userId", "metricType", "metricValue", "createdAt"],
        [("a.b", 7, 5, "tippedCount", 1, CUTOFF.replace(month=2))],
    )
    with pytest.raises(OverlapError) as refused:
        engine(sources=("BuzzTip",))
    assert [(r["pair"], r["rows"]) for r in refused.value.rows] == [("a.b.tippedCount", 1)]  # type: ignore[attr-defined]
    result = engine(only=(Pair("a.b", "tippedAmount"),))
    assert set(result.pairs) == {"a.b.tippedAmount"}
    assert table_totals(ch_client, table)[("a.b", 7, "tippedAmount")] == 40


def test_a_source_name_in_another_case_is_refused_with_the_right_spelling(pg: str, ch_dsn: str) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--pg",
            pg,
            "--clickhouse",
            ch_dsn,
            "--cutoff",
            "2025-06-01 00:00:00",
            "--source-cutoff",
            "imagereaction=2025-05-01 00:00:00",
        ],
    )
    assert result.exit_code == 2 and "did you mean ImageReaction" in result.stderr


def test_everything_at_once_is_still_exact(
    pg: str,
    ch: dict[str, str],
    ch_client: Any,
    ch_db: str,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
) -> None:
    """The whole scenario set through the new publish, with a rollup, in small slices."""
    insert_all_scenarios(pg, ch_client, ch)
    want = expected_totals(pg, ch_client, ch, ch_db)
    table = target("month")
    engine(table=table, earnings_table=table, publish_slice_rows=7, chunk_rows=3)
    assert_exact(ch_client, ch_db, table, want, "month")
    assert ETYPES and insert_scenario  # the shared helpers stay in use


def test_a_rollup_whose_aggregation_spills_to_disk_is_still_exact(
    pg: str,
    ch: dict[str, str],
    ch_client: Any,
    ch_db: str,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A view's SELECT over a large slice spills its aggregation to disk (past VIEW_SPILL_BYTES);
    here every slice spills, and the rollups still equal their views over the target."""
    monkeypatch.setattr(Publisher, "VIEW_SPILL_BYTES", 1)
    insert_all_scenarios(pg, ch_client, ch)
    want = expected_totals(pg, ch_client, ch, ch_db)
    table = target("events")
    engine(table=table, earnings_table=table, publish_slice_rows=50)
    assert_exact(ch_client, ch_db, table, want, "events")


@pytest.mark.parametrize("shape", ["events", "month"])
def test_verify_compares_each_rollup_with_its_views_select_over_the_target(
    shape: str,
    reactions: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    pg: str,
    ch: dict[str, str],
    ch_client: Any,
    ch_dsn: str,
    ch_db: str,
) -> None:
    from metric_backfill.verify import _verify as _check

    table = target(shape)
    engine(table=table, sources=("ImageReaction",))
    cfg = RunConfig(
        pg_url=pg,
        clickhouse_url=ch_dsn,
        cutoff=CUTOFF,
        earnings_cutoff_date=CUTOFF_DATE,
        table=table,
        state_database=f"{ch_db}_state",
        ch_tables=dict(ch),
        sources=("ImageReaction",),
    )
    clean = _check.verify(cfg, as_of=CUTOFF)
    assert clean.report.ok and clean.rollups and clean.rollups_ok and clean.rollups[0].keys > 0
    # A block counted twice by the rollup only (what a retried insert does, T1/T2).
    rollup = "entityMetricDailyAgg" if shape == "events" else "entityMetricSum"
    ch_client.command(
        f"INSERT INTO {ch_db}.{rollup} SELECT * FROM {ch_db}.{rollup} WHERE entityId = 100 AND metricType = 'Like'",
        settings={"async_insert": 0},
    )
    bad = _check.verify(cfg, as_of=CUTOFF)
    assert bad.report.ok and not bad.rollups_ok
    assert bad.rollups[0].differing >= 1 and bad.rollups[0].examples[0]["key"][:2] == ["Image", "100"]
    result = CliRunner().invoke(
        cli,
        [
            "verify",
            "--pg",
            pg,
            "--clickhouse",
            ch_dsn,
            "--cutoff",
            "2025-06-01 00:00:00",
            "--as-of",
            "2025-06-01 00:00:00",
            "--table",
            table,
            "--state-db",
            f"{ch_db}_state",
            "--sources",
            "ImageReaction",
            *sum((["--ch-table", f"{k}={v}"] for k, v in ch.items()), []),
        ],
    )
    assert result.exit_code == 1 and "keys differ from the view's SELECT" in result.output


def test_the_target_lease_admits_one_holder_and_ignores_a_dead_one(ch_dsn: str, ch_db: str) -> None:
    import socket
    import subprocess
    import sys

    from metric_backfill import TargetError
    from metric_backfill.engine._lease import LEASES, Lease

    ch = ClickHouse(ch_dsn)
    try:
        first = Lease(ch, ch_db, f"{ch_db}.t", "run-1", wait=0.5)
        first.acquire()
        with pytest.raises(TargetError, match=r"holds its lease \(run run-1, process"):
            Lease(ch, ch_db, f"{ch_db}.t", "run-2", wait=0.5).acquire()
        first.release()
        with Lease(ch, ch_db, f"{ch_db}.t", "run-2", wait=0.5):
            pass
        # A holder killed without releasing (its process is gone): no need to wait for the expiry.
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        ).stdout.strip()
        ch.command(
            f"INSERT INTO {ch_db}.{LEASES} VALUES ({{t:String}}, 'ghost', 'run-0', {{h:String}}, {dead}, "
            "now64(3, 'UTC') + toIntervalSecond(600), 0, now64(6, 'UTC'))",
            parameters={"t": f"{ch_db}.t", "h": socket.gethostname()},
        )
        with Lease(ch, ch_db, f"{ch_db}.t", "run-3", wait=0.5):
            pass
        # One on another machine is waited for until it expires.
        ch.command(
            f"INSERT INTO {ch_db}.{LEASES} VALUES ({{t:String}}, 'far', 'run-9', 'elsewhere', 1, "
            "now64(3, 'UTC') + toIntervalMillisecond(1500), 0, now64(6, 'UTC'))",
            parameters={"t": f"{ch_db}.t"},
        )
        with pytest.raises(TargetError, match="run run-9"):
            Lease(ch, ch_db, f"{ch_db}.t", "run-4", wait=0.3).acquire()
        with Lease(ch, ch_db, f"{ch_db}.t", "run-4", wait=10):
            pass
    finally:
        ch.close()


def test_a_run_killed_while_it_records_its_plan_is_planned_again_not_published_empty(
    world: Totals,
    engine: Callable[..., RunResult],
    target: Callable[[str], str],
    ch_client: Any,
    ch_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by killing at random: a run record without its chunks once resumed as "0 chunks" and
    was published empty, exit 0."""
    from metric_backfill.engine._state import StateStore

    table = target("events")
    real = StateStore.write_chunks

    def die_on_the_plan(self: StateStore, run_id: str, states: Any) -> None:
        states = list(states)
        if states and all(s.status == "planned" for s in states):
            real(self, run_id, states[: len(states) // 2])  # half of the list made it
            raise Died
        real(self, run_id, states)

    monkeypatch.setattr(StateStore, "write_chunks", die_on_the_plan)
    with pytest.raises(Died):
        engine()
    monkeypatch.undo()
    result = engine()
    assert result.status == "published"
    assert_exact(ch_client, ch_db, table, world)
