"""The run: plan → stage → verify → publish, resumable, with progress reported to a `Reporter`."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from collections import defaultdict
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from ._clickhouse import ClickHouse
from ._config import RunConfig, parse_cutoff, validate_names
from ._errors import Cancelled, ConfigError, TerminalError, TransientError
from ._fence import check_overlap
from ._plan import Chunk, Plan, build_plan
from ._postgres import Postgres, Snapshot
from ._publish import Publisher, Slice
from ._stage import ChunkStager, dry_run_counts
from ._state import ChunkState, StateStore, now, worker_name
from ._target import Target, ensure_target, resolve_targets

__all__ = ["Reporter", "RunResult", "dry_run", "publish_run", "run"]

RETRY_ATTEMPTS = 5


class Reporter(Protocol):
    def message(self, text: str) -> None: ...
    def planned(self, plan: Plan, todo: list[Chunk]) -> None: ...
    def chunk_done(self, chunk: Chunk, rows_read: int) -> None: ...
    def retrying(self, chunk: Chunk, attempt: int, error: BaseException) -> None: ...
    def slice_done(self, sl: Slice, rows: int, note: str) -> None: ...
    def finished(self) -> None: ...


class SilentReporter:
    def message(self, text: str) -> None: pass
    def planned(self, plan: Plan, todo: list[Chunk]) -> None: pass
    def chunk_done(self, chunk: Chunk, rows_read: int) -> None: pass
    def retrying(self, chunk: Chunk, attempt: int, error: BaseException) -> None: pass
    def slice_done(self, sl: Slice, rows: int, note: str) -> None: pass
    def finished(self) -> None: pass


@dataclass
class RunResult:
    run_id: str
    status: str
    pairs: dict[str, dict[str, int]] = field(default_factory=dict)
    """pair → {events, value_sum, drop reasons...}"""
    published_rows: int = 0
    resumed: bool = False
    overlap: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": self.status, "pairs": self.pairs,
                "published_rows": self.published_rows, "resumed": self.resumed, "overlap": self.overlap}


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def _pair_totals(stats: list[tuple[Any, ...]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for _source, et, mt, reason, n, vs in stats:
        d = out[f"{et}.{mt}"]
        if reason:
            d[f"dropped_{reason}"] += int(n)
        else:
            d["events"] += int(n)
            d["value_sum"] += int(vs)
    return {k: dict(v) for k, v in sorted(out.items())}


class _Session:
    """Connections shared by the commands of one invocation."""

    def __init__(self, cfg: RunConfig, *, needs_pg: bool = True) -> None:
        validate_names(cfg)
        self.cfg = cfg
        # `publish` needs no PostgreSQL; everything else does (and asks for `pg`).
        self._pg = Postgres(cfg.pg_url) if needs_pg else None
        self.ch = ClickHouse(cfg.clickhouse_url)
        self.state = StateStore(self.ch, cfg.state_database)

    @property
    def pg(self) -> Postgres:
        assert self._pg is not None
        return self._pg

    def close(self) -> None:
        self.ch.close()


def _stage_chunks(stager: ChunkStager, state: StateStore, plan: Plan, todo: list[Chunk],
                  concurrency: int, reporter: Reporter, snap: Snapshot, worker_label: str) -> None:
    run_id = stager.run_id
    stop = threading.Event()
    me = f"{worker_name()}/{worker_label}"

    def one(chunk: Chunk) -> None:
        sp = plan.source(chunk.source)
        attempt = 0

        def attempt_once() -> int:
            nonlocal attempt
            if stop.is_set():
                raise Cancelled("stopped")
            # A fresh random id per attempt: only the attempt recorded as done is ever read back.
            attempt = secrets.randbits(31) or 1
            return stager.stage(sp, chunk, attempt)

        def before_sleep(rs: Any) -> None:
            reporter.retrying(chunk, attempt, rs.outcome.exception())

        try:
            rows = Retrying(retry=retry_if_exception_type(TransientError), stop=stop_after_attempt(RETRY_ATTEMPTS),
                            wait=wait_exponential(multiplier=0.5, max=20), reraise=True,
                            before_sleep=before_sleep)(attempt_once)
        except BaseException as exc:
            state.write_chunks(run_id, [ChunkState(chunk.chunk_id, chunk.source, chunk.part, chunk.lo, chunk.hi,
                                                   chunk.est_rows, attempt, "failed", 0, me, str(exc), now())])
            raise
        state.write_chunks(run_id, [ChunkState(chunk.chunk_id, chunk.source, chunk.part, chunk.lo, chunk.hi,
                                               chunk.est_rows, attempt, "done", rows, me, "", now())])
        reporter.chunk_done(chunk, rows)

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="stage")
    futures: list[Future[None]] = []
    try:
        futures = [pool.submit(one, c) for c in todo]
        while True:
            done, pending = wait(futures, timeout=0.5, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                stop.set()
                for f in pending:
                    f.cancel()
                exc = failed[0].exception()
                assert exc is not None
                raise exc
            if not pending:
                break
    except KeyboardInterrupt:
        stop.set()
        for f in futures:
            f.cancel()
        snap.cancel_all()
        raise Cancelled("interrupted: in-flight PostgreSQL queries were cancelled; "
                        "run the same command again to resume") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _targets(s: _Session, plan: Plan | None, *, create: bool,
             cfg: RunConfig | None = None) -> tuple[Target | None, Target | None]:
    main, earn, _main_name, earn_name = resolve_targets(s.ch, cfg or s.cfg, create=create)
    wants_earnings = plan is None or any(p.endswith(".earnedAmount") for sp in plan.sources for p in sp.pairs)
    if earn is None and wants_earnings and create:
        earn = ensure_target(s.ch, earn_name[0], earn_name[1], "events", create=True)
    return main, earn


def dry_run(cfg: RunConfig, reporter: Reporter | None = None) -> dict[str, dict[str, int]]:
    """Count the events each pair would get. Reads the sources; writes nothing anywhere."""
    reporter = reporter or SilentReporter()
    s = _Session(cfg)
    try:
        with s.pg.snapshot() as snap:
            plan = build_plan(cfg, snap, s.ch)
            reporter.planned(plan, plan.chunks)
            stager = ChunkStager("dry-run", s.state, s.ch, snap, cfg.ch_tables)
            stats: list[tuple[Any, ...]] = []
            for c in plan.chunks:
                sp = plan.source(c.source)
                stats.extend((c.source, *r) for r in dry_run_counts(stager, sp, c))
                reporter.chunk_done(c, c.est_rows)
            snap.close()
        reporter.finished()
        return _pair_totals(stats)
    finally:
        s.close()


@dataclass(frozen=True)
class Worker:
    """This process's share of a run shared by `count` processes: chunks with id % count == index.

    Static partitioning needs no locks on the shared state: no two workers ever write the same
    chunk. Worker 0 plans the run and publishes it once every chunk is staged; the others join a
    run by id (waiting for worker 0 to plan it) and stop after their share."""

    index: int = 0
    count: int = 1

    def owns(self, chunk: Chunk) -> bool:
        return chunk.chunk_id % self.count == self.index

    @property
    def leader(self) -> bool:
        return self.index == 0


def _wait_for(what: str, check: Callable[[], bool], reporter: Reporter, timeout: float | None,
              poll: float = 1.0) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    last_note = 0.0
    while not check():
        if deadline is not None and time.monotonic() > deadline:
            raise TerminalError(f"gave up waiting for {what} after {timeout:.0f}s")
        if time.monotonic() - last_note > 30:
            reporter.message(f"waiting for {what}…")
            last_note = time.monotonic()
        time.sleep(poll)


def run(cfg: RunConfig, *, run_id: str | None = None, stage_only: bool = False, worker: Worker = Worker(),
        reporter: Reporter | None = None, wait_timeout: float | None = None) -> RunResult:
    """Plan, stage and (unless stage_only) publish; resumes an unfinished run of the same config."""
    reporter = reporter or SilentReporter()
    s = _Session(cfg)
    try:
        fingerprint = cfg.fingerprint()
        if not worker.leader:
            if not run_id:
                raise ConfigError("--worker K/N with K > 0 joins a run: pass the --run-id that worker 0 uses")
            _wait_for(f"worker 0 to plan run {run_id}",
                      lambda: (s.state.run(run_id) or {}).get("status") not in (None, "planned"), reporter, wait_timeout)
        resumed_id = run_id or s.state.latest_run(fingerprint)
        existing = s.state.run(resumed_id) if resumed_id else None
        if existing and existing["fingerprint"] != fingerprint:
            raise ConfigError(f"run {resumed_id} was started with different options; "
                              "use the same options or another --run-id")
        rid: str = (resumed_id if existing and resumed_id else None) or run_id or new_run_id()
        result = RunResult(rid, "staging", resumed=existing is not None)
        if existing and existing["status"] == "published":
            # The same command again: its run is complete. Publishing is idempotent, so this is
            # a no-op that still re-checks the ledger (and settles an interrupted slice).
            reporter.message(f"run {rid} with these options is already published; nothing to do")
            result.pairs = _pair_totals(s.state.stats(rid))
            result.published_rows = 0 if stage_only or not worker.leader else _publish(s, rid, reporter)
            result.status = "published"
            reporter.finished()
            return result

        if existing and existing["status"] in ("staged", "publishing"):
            reporter.message(f"run {rid}: staging already complete")
        else:
            _stage_run(s, cfg, rid, fingerprint, existing, worker, result, reporter)
        if not worker.leader:
            result.status = "staged (this worker's share)"
            reporter.finished()
            return result
        _wait_for(f"the other workers of run {rid}", lambda: all(c.status == "done" for c in s.state.chunks(rid)),
                  reporter, wait_timeout, poll=2.0)
        info = s.state.run(rid)
        assert info is not None
        if info["status"] == "staging":
            s.state.write_run(rid, fingerprint, "staged", info["created_at"], info["config"], info["manifest"])
        result.pairs = _pair_totals(s.state.stats(rid))
        result.status = "staged"
        if not stage_only:
            result.published_rows = _publish(s, rid, reporter)
            result.status = "published"
        reporter.finished()
        return result
    finally:
        s.close()


def _stage_run(s: _Session, cfg: RunConfig, rid: str, fingerprint: str, existing: dict[str, Any] | None,
               worker: Worker, result: RunResult, reporter: Reporter) -> None:
    with s.pg.snapshot() as snap:
        try:
            # A resumed or joined run keeps its manifest: same chunk ids, same NULL-timestamp
            # stand-ins; only the snapshot is new (the old one died with its process, T30).
            plan = build_plan(cfg, snap, s.ch, manifest=existing["manifest"] if existing else None)
            main, earn = _targets(s, plan, create=True)
            assert main is not None
            created = existing["created_at"] if existing else now()
            done: set[int] = set()
            if existing:
                states = s.state.chunks(rid)
                plan.chunks = [Chunk(c.chunk_id, c.source, c.part, c.lo, c.hi, c.est_rows) for c in states]
                done = {c.chunk_id for c in states if c.status == "done"}
                manifest = existing["manifest"]
                if worker.leader:
                    manifest["snapshot_ids"] = [*manifest.get("snapshot_ids", []), snap.id]
            else:
                result.overlap = check_overlap(s.ch, s.state, cfg, plan, main, earn)
                s.state.ensure()  # first write of a new run: everything above only read
                manifest = {**plan.manifest(), "targets": {"main": main.label, "earnings": (earn or main).label},
                            "snapshot_ids": [snap.id], "overlap": result.overlap, "on_overlap": cfg.on_overlap}
                s.state.write_run(rid, fingerprint, "planned", created, cfg.public_dict(), manifest)
                s.state.write_chunks(rid, [ChunkState(c.chunk_id, c.source, c.part, c.lo, c.hi, c.est_rows, 0,
                                                      "planned", 0, "", "", now()) for c in plan.chunks])
            result.overlap = manifest.get("overlap", {})
            if worker.leader:
                s.state.write_run(rid, fingerprint, "staging", created, cfg.public_dict(), manifest)
            todo = [c for c in plan.chunks if c.chunk_id not in done and worker.owns(c)]
            reporter.planned(plan, todo)
            stager = ChunkStager(rid, s.state, s.ch, snap, cfg.ch_tables)
            _stage_chunks(stager, s.state, plan, todo, cfg.concurrency, reporter, snap,
                          f"w{worker.index}of{worker.count}")
        finally:
            snap.close()


def _publish(s: _Session, rid: str, reporter: Reporter) -> int:
    info = s.state.run(rid)
    if info is None:
        raise ConfigError(f"unknown run {rid!r}: see `metric-backfill status`")
    if info["status"] not in ("staged", "publishing", "published"):
        raise TerminalError(f"run {rid} is {info['status']}, not staged: finish it with the same `run` command first")
    # The run's own recorded configuration decides where and how it is published.
    cfg = RunConfig.from_public(info["config"], clickhouse_url=s.cfg.clickhouse_url)
    plan_pairs = [p for src in info["manifest"].get("sources", []) for p in src.get("pairs", [])]
    main, earn, _, earn_name = resolve_targets(s.ch, cfg, create=True)
    if earn is None and any(p.endswith(".earnedAmount") for p in plan_pairs):
        earn = ensure_target(s.ch, earn_name[0], earn_name[1], "events", create=True)
    assert main is not None
    s.state.write_run(rid, info["fingerprint"], "publishing", info["created_at"], info["config"], info["manifest"])
    withdrawals: dict[str, list[str]] = info["manifest"].get("overlap", {}).get("withdraw", {})
    cutoffs = [cfg.cutoff, *cfg.source_cutoffs.values()]
    for old in withdrawals:  # the scope a slice is measured in must hold the withdrawn rows too
        old_info = s.state.run(old)
        if old_info:
            old_cfg = old_info["config"]
            cutoffs += [parse_cutoff(old_cfg["cutoff"]), *map(parse_cutoff, (old_cfg.get("source_cutoffs") or {}).values())]
    pub = Publisher(s.ch, s.state, rid, main=main, earnings=earn, cutoff=max(cutoffs), version=cfg.backfill_version,
                    slice_rows=cfg.publish_slice_rows, withdrawals=withdrawals, concurrency=cfg.concurrency)
    rows, _skipped = pub.publish(reporter.slice_done)
    for old, pairs in withdrawals.items():
        # Its events are no longer in effect (for these pairs): the same command must plan anew,
        # not report "already published".
        old_info = s.state.run(old)
        if old_info and old_info["status"] != "withdrawn":
            s.state.write_run(old, old_info["fingerprint"], "withdrawn", old_info["created_at"], old_info["config"],
                              old_info["manifest"], {**old_info["summary"], "withdrawn_by": rid, "withdrawn_pairs": pairs})
    s.state.write_run(rid, info["fingerprint"], "published", info["created_at"], info["config"], info["manifest"],
                      {"published_rows": rows})
    return rows


def publish_run(clickhouse_url: str, run_id: str, *, state_database: str = "metric_backfill",
                reporter: Reporter | None = None) -> int:
    """Publish a staged run; publishing a published run again changes nothing."""
    reporter = reporter or SilentReporter()
    s = _Session(RunConfig(pg_url="", clickhouse_url=clickhouse_url, cutoff=datetime(2000, 1, 1),
                           state_database=state_database), needs_pg=False)
    try:
        n = _publish(s, run_id, reporter)
        reporter.finished()
        return n
    finally:
        s.close()

