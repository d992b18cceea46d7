"""Composing with the running live pipeline: `run --net-against-live` against a simulated live pipeline.

The world is made before the cutoff (the backfill's share, no live events), then the simulated
live pipeline (live.py) changes it after the cutoff — deletes rows created before it, flips
reviews, awards and re-prices benefactors, adds rows — writing the events its handlers would into
the target. After the netting run every key (entityType, entityId, metricType, userId) of the
target, every entity total, and the rollup equal the replay of today's rows; a plain run on the
same data is off by exactly the gap the live pipeline's changes of pre-cutoff rows leave (T12, T13).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from live import LivePipeline, UserKey
from sourcedata import CUTOFF, CUTOFF_DATE, pg_exec
from totals import TARGETS, expected_totals, rollup_ddl, rollup_totals, table_totals

from metric_backfill import RunConfig, RunResult, run
from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill.engine._state import StateStore
from metric_backfill.engine._target import target_ddl

BEFORE = CUTOFF - timedelta(days=20)
TODAY = datetime(2026, 1, 1)
"""A cutoff after every change: the replay of today's rows."""
SOURCES = ("ImageReaction", "UserEngagement", "CollectionItem", "CommentV2", "ResourceReview", "BountyBenefactor")


def at(day: int, second: int = 0) -> datetime:
    return CUTOFF + timedelta(days=day, seconds=second)


def build_world(pg: str, live: LivePipeline) -> None:
    """Rows created before the cutoff (no live events: the pipeline was not there yet)."""
    for i, (image, user, reaction) in enumerate(
        [
            (100, 1, "Like"),
            (100, 2, "Like"),
            (100, 3, "Heart"),
            (101, 1, "Like"),
            (101, 4, "Cry"),
            (102, 5, "Like"),
            (100, 6, "Like"),
            (101, 7, "Like"),
        ],
        1,
    ):
        live.add_reaction(i, image, user, reaction, BEFORE + timedelta(minutes=i))
    for user, target, kind in [(1, 2, "Follow"), (3, 2, "Follow"), (4, 2, "Hide"), (5, 3, "Follow")]:
        live.add_engagement(user, target, kind, BEFORE)
    live.add_item(1, 70, 100, None, 2, BEFORE)
    live.add_item(2, 70, None, 10, 3, BEFORE)
    live.add_item(3, 71, 101, None, 2, BEFORE)
    pg_exec(pg, 'INSERT INTO "Thread" ("id", "postId") VALUES (1, 10)')
    live.add_comment(1, 1, 10, 2, BEFORE)
    live.add_comment(2, 1, 10, 3, BEFORE)
    pg_exec(
        pg,
        f"""
        INSERT INTO "ResourceReview" ("id", "modelId", "modelVersionId", "rating", "recommended", "userId", "createdAt",
                                      "updatedAt", "exclude") VALUES
            (1, 60, 600, 5, true, 2, '{BEFORE}', '{BEFORE}', false),
            (2, 60, 600, 1, false, 3, '{BEFORE}', '{BEFORE}', false),
            (3, 60, 601, 5, true, 4, '{BEFORE}', '{BEFORE}', false);
        INSERT INTO "BountyBenefactor" ("bountyId", "userId", "unitAmount", "createdAt", "updatedAt", "awardedAt",
                                        "awardedToId", "currency") VALUES
            (30, 1, 100, '{BEFORE}', '{BEFORE}', NULL, NULL, 'BUZZ'),
            (30, 2, 50, '{BEFORE}', '{BEFORE}', '{BEFORE}', 40, 'BUZZ'),
            (31, 3, 20, '{BEFORE}', '{BEFORE}', NULL, NULL, 'BUZZ');""",
    )


def live_changes(live: LivePipeline) -> None:
    """What happens after the cutoff, each change with the live events its handler writes."""
    live.delete_reaction(1, at(1))
    live.delete_reaction(4, at(1, 1))
    live.add_reaction(21, 102, 8, "Heart", at(2))
    live.add_reaction(22, 100, 9, "Like", at(2, 1))
    live.delete_reaction(22, at(3))  # created and deleted after the cutoff: nets to nothing
    live.delete_engagement(1, 2, at(4))
    live.add_engagement(6, 2, "Follow", at(4, 1))
    live.delete_item(1, at(5))
    live.add_item(4, 71, 102, None, 5, at(5, 1))
    live.delete_comment(1, 10, at(6))
    live.add_comment(3, 1, 10, 4, at(6, 1))
    live.flip_review(1, at(7))  # up → down
    live.flip_review(2, at(7, 1))  # down → up → down
    live.flip_review(2, at(7, 2))
    live.change_amount(30, 2, 80, at(8))  # awarded before the cutoff, re-priced after
    live.award(30, 1, 41, at(8, 5))  # awarded after the cutoff
    live.change_amount(31, 3, 25, at(8, 10))


def user_keys(ch_client: Any, table: str, *, final: bool = False) -> dict[UserKey, int]:
    rows = ch_client.query(
        f"SELECT entityType, entityId, metricType, userId, sum(metricValue) FROM {table}"
        f"{' FINAL' if final else ''} GROUP BY ALL"
    ).result_rows
    return {(r[0], int(r[1]), r[2], int(r[3])): int(r[4]) for r in rows if int(r[4]) != 0}


def nonzero(d: dict[Any, int]) -> dict[Any, int]:
    return {k: v for k, v in d.items() if v}


@pytest.fixture()
def replay(pg: str, ch: dict[str, str], ch_client: Any, ch_dsn: str, ch_db: str) -> Callable[..., dict[UserKey, int]]:
    """The replay of today's rows, per user key (a plain run with a cutoff after every change)."""

    def go(cutoff: datetime = TODAY) -> dict[UserKey, int]:
        table = f"{ch_db}_replay.events"
        ch_client.command(f"DROP DATABASE IF EXISTS {ch_db}_replay SYNC")
        ch_client.command(f"CREATE DATABASE {ch_db}_replay")
        run(
            RunConfig(
                pg_url=pg,
                clickhouse_url=ch_dsn,
                cutoff=cutoff,
                table=table,
                earnings_table=table,
                state_database=f"{ch_db}_replay",
                ch_tables=dict(ch),
                sources=SOURCES,
            )
        )
        return user_keys(ch_client, table)

    yield go
    ch_client.command(f"DROP DATABASE IF EXISTS {ch_db}_replay SYNC")


def make_target(ch_client: Any, ch_db: str, shape: str, name: str) -> str:
    table = f"{ch_db}.{name}"
    ch_client.command(target_ddl(shape, table))
    for stmt in rollup_ddl(ch_db, shape):
        ch_client.command(stmt.replace(f"{ch_db}.{TARGETS[shape][0]}", table))
    return table


@pytest.mark.parametrize("shape", ["events", "month"])
def test_net_against_live_makes_every_key_the_replay_of_todays_rows_and_a_plain_run_is_off_by_the_gap(
    shape: str,
    pg: str,
    ch: dict[str, str],
    ch_client: Any,
    ch_db: str,
    engine: Callable[..., RunResult],
    replay: Callable[[], dict[UserKey, int]],
) -> None:
    netted = make_target(ch_client, ch_db, shape, TARGETS[shape][0])
    plain = f"{ch_db}.plain"
    ch_client.command(target_ddl(shape, plain))
    version = 3 if shape == "month" else None
    live = LivePipeline(pg, ch_client, netted, CUTOFF, version=version)
    build_world(pg, live)
    live_changes(live)
    ch_client.command(
        f"INSERT INTO {plain} SELECT * FROM {netted}", settings={"async_insert": 0}
    )  # the same live events
    assert live.gap and any(v < 0 for v in live.gap.values()) and any(v > 0 for v in live.gap.values())

    result = engine(table=netted, earnings_table=netted, sources=SOURCES, net_against_live=True)
    truth = replay()
    final = shape == "month"
    assert user_keys(ch_client, netted, final=final) == truth
    want = expected_totals(pg, ch_client, ch, ch_db, cutoff=TODAY, sources=SOURCES)
    assert table_totals(ch_client, netted, final=final) == want
    assert rollup_totals(ch_client, ch_db, shape) == want, "the rollup does not add up"

    rec = StateStore(ClickHouse(ch_client_dsn(ch_client)), f"{ch_db}_state").run(result.run_id)
    assert rec is not None
    net = rec.manifest["net"]
    assert net["until"] == rec.manifest["snapshot_at"]
    assert net["keys"]["Image.Like"] >= 2 and net["keys"]["Model.thumbsUpCount"] == 2  # reviews 1 and 2
    assert "ModelVersion.thumbsDownCount" in net["keys"] and "Bounty.unitAmount" in net["keys"]

    # The same data, the same live events, a plain run: off by exactly the gap, key by key.
    engine(table=plain, earnings_table=plain, sources=SOURCES, state_database=f"{ch_db}_plain")
    got = user_keys(ch_client, plain, final=final)
    off: dict[UserKey, int] = defaultdict(int)
    for k in set(got) | set(truth):
        off[k] = got.get(k, 0) - truth.get(k, 0)
    assert nonzero(off) == nonzero(dict(live.gap))
    ch_client.command(f"DROP DATABASE IF EXISTS {ch_db}_plain SYNC")


def test_net_against_live_while_the_live_pipeline_keeps_writing(
    pg: str, ch: dict[str, str], ch_client: Any, ch_db: str, ch_dsn: str, replay: Callable[[], dict[UserKey, int]]
) -> None:
    """The live pipeline changes rows and writes events while the run stages and publishes."""
    from metric_backfill.engine._run import SilentReporter

    table = make_target(ch_client, ch_db, "events", "entityMetricEvents")
    live = LivePipeline(pg, ch_client, table, CUTOFF)
    build_world(pg, live)
    live_changes(live)
    pg_exec(pg, 'INSERT INTO "User" ("id", "username") SELECT g, \'u\' || g FROM generate_series(100, 100000) AS g')
    stop = threading.Event()
    errors: list[BaseException] = []

    def keep_writing() -> None:
        try:
            rid = 100
            while not stop.is_set():
                rid += 1
                now = datetime.now(timezone.utc).replace(tzinfo=None)
                now = now.replace(microsecond=now.microsecond // 1000 * 1000)
                live.add_reaction(rid, 100 + rid % 3, rid, ("Like", "Heart", "Cry", "Laugh")[rid % 4], now)
                if rid % 3 == 0:
                    live.delete_reaction(rid - 1, now)
                time.sleep(0.01)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    writer = threading.Thread(target=keep_writing)

    class StartsTheLivePipeline(SilentReporter):
        def planned(self, plan: Any, todo: Any) -> None:
            writer.start()  # after the snapshot: its changes are the live pipeline's alone

    cfg = RunConfig(
        pg_url=pg,
        clickhouse_url=ch_dsn,
        cutoff=CUTOFF,
        earnings_cutoff_date=CUTOFF_DATE,
        table=table,
        earnings_table=table,
        state_database=f"{ch_db}_state",
        ch_tables=dict(ch),
        sources=SOURCES,
        net_against_live=True,
        chunk_rows=3,
        publish_slice_rows=5,
    )
    try:
        run(cfg, reporter=StartsTheLivePipeline())
    finally:
        stop.set()
        writer.join()
    assert not errors and len(live.written) > 40
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    truth = replay(now.replace(microsecond=now.microsecond // 1000 * 1000) - timedelta(milliseconds=1))
    assert user_keys(ch_client, table) == truth
    want = expected_totals(pg, ch_client, ch, ch_db, cutoff=datetime(2100, 1, 1), sources=SOURCES)
    assert table_totals(ch_client, table) == want == rollup_totals(ch_client, ch_db, "events")
    ch_client.command(f"DROP DATABASE IF EXISTS {ch_db}_state SYNC")


def ch_client_dsn(ch_client: Any) -> str:
    import os

    return os.environ.get("METRIC_BACKFILL_TEST_CLICKHOUSE_URL") or f"chdb://{ch_client.path}"
