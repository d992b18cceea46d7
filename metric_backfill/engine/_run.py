"""The run: plan → stage → verify → publish, resumable, with progress reported to a `Reporter`.

Everything that protects a publish lives here and below, not in the CLI: `run()`, `publish_run()`,
`reconcile()` and the demo all publish through `publish_staged`, under the target lease, with the
publish-time fence, the range checks and the settle-and-repair of target and rollups.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from metric_backfill.catalog import Pair, routes_to_earnings_table
from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill._config import RunConfig, format_ts, parse_cutoff
from metric_backfill._errors import (
    Cancelled,
    ConfigError,
    DifferencesFound,
    OverlapError,
    SnapshotLost,
    TerminalError,
    is_transient,
)
from metric_backfill.engine._fence import apply_fence, known_pairs, publish_time_conflicts, refuse_pruned_withdrawals
from metric_backfill.engine._lease import Lease
from metric_backfill.engine._net import stage_netting
from metric_backfill.engine._plan import NET_SOURCE, Chunk, Plan, build_plan
from metric_backfill.engine._progress import Beacon, Reporter, SilentReporter, Tracker
from metric_backfill.backends._postgres import Postgres, Snapshot
from metric_backfill.engine._publish import Publisher, refuse_out_of_range
from metric_backfill.backends._sql import literal, ts_literal
from metric_backfill.engine._stage import ChunkStager, dry_run_counts
from metric_backfill.engine._state import ChunkState, RunRecord, StateStore, now, worker_name
from metric_backfill.engine._target import Target, ensure_target, resolve_targets

__all__ = ["Reporter", "RunResult", "SilentReporter", "Worker", "dry_run", "publish_run", "publish_staged", "run"]

RETRY_ATTEMPTS = 5
OnOverlap = Literal["abort", "skip", "replace", "accept"]


def as_tracker(reporter: Reporter | Tracker | None, command: str = "run") -> Tracker:
    return reporter if isinstance(reporter, Tracker) else Tracker(reporter, command=command)


@dataclass
class RunResult:
    run_id: str
    status: str
    pairs: dict[str, dict[str, int]] = field(default_factory=dict)
    """pair (Entity.metric) → {events, value_sum, dropped_<reason>...}"""
    published_rows: int = 0
    resumed: bool = False
    overlap: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "pairs": self.pairs,
            "published_rows": self.published_rows,
            "resumed": self.resumed,
            "overlap": self.overlap,
        }


def new_run_id(prefix: str = "") -> str:
    return prefix + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def pair_totals(stats: list[tuple[Any, ...]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for _source, et, mt, reason, n, vs in stats:
        d = out[str(Pair(str(et), str(mt)))]
        if reason:
            d[f"dropped_{reason}"] += int(n)
        else:
            d["events"] += int(n)
            d["value_sum"] += int(vs)
    return {k: dict(v) for k, v in sorted(out.items())}


def overlap_view(overlap: dict[str, Any]) -> dict[str, Any]:
    """The manifest's fence record as people read it (pairs as Entity.metric)."""
    out: dict[str, Any] = {}
    if "rows" in overlap:
        out["rows"] = {str(Pair(et, mt)): n for et, mt, n in overlap["rows"]}
    if "skipped" in overlap:
        out["skipped"] = [str(Pair(*p)) for p in overlap["skipped"]]
    if "withdraw" in overlap:
        out["withdraw"] = {r: [str(Pair(*p)) for p in ps] for r, ps in overlap["withdraw"].items()}
    for key in ("at_publish",):
        if key in overlap:
            out[key] = overlap[key]
    return out


class _Session:
    """Connections shared by the commands of one invocation; closes them on exit."""

    def __init__(self, cfg: RunConfig, *, needs_pg: bool = True) -> None:
        self.cfg = cfg
        # `publish` needs no PostgreSQL; everything else does (and asks for `pg`).
        self._pg = (
            Postgres(cfg.pg_url, lock_timeout=cfg.pg_lock_timeout, statement_timeout=cfg.pg_statement_timeout)
            if needs_pg
            else None
        )
        self.ch = ClickHouse(cfg.clickhouse_url)
        self.state = StateStore(self.ch, cfg.state_database)

    @property
    def pg(self) -> Postgres:
        assert self._pg is not None
        return self._pg

    def close(self) -> None:
        self.ch.close()

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _retryable(exc: BaseException) -> bool:
    return is_transient(exc)


def _stage_chunks(
    stager: ChunkStager,
    state: StateStore,
    plan: Plan,
    todo: list[Chunk],
    concurrency: int,
    tracker: Tracker,
    snap: Snapshot,
    worker_label: str,
    on_new_snapshot: Callable[[str], None],
) -> None:
    run_id = stager.run_id
    stop = threading.Event()
    me = f"{worker_name()}/{worker_label}"

    def one(chunk: Chunk) -> None:
        sp = plan.source(chunk.source)
        attempt = 0
        t0 = time.monotonic()

        def attempt_once() -> int:
            nonlocal attempt
            if stop.is_set():
                raise Cancelled("stopped")
            # A fresh random id per attempt: only the attempt recorded as done is ever read back.
            attempt = secrets.randbits(31) or 1
            return stager.stage(sp, chunk, attempt)

        def before_sleep(rs: Any) -> None:
            exc = rs.outcome.exception()
            if isinstance(exc, SnapshotLost):
                # The session holding the snapshot is gone (terminated, restarted, timed out): read
                # on under a new one, as a resumed run does (the manifest records every id, T30).
                failed = getattr(exc, "snapshot_id", snap.id)
                old = snap.id
                snap.renew(failed)
                if snap.id != old:
                    on_new_snapshot(snap.id)
            if not stop.is_set():
                wait_s = rs.next_action.sleep if rs.next_action is not None else 0.0
                tracker.retrying(chunk, rs.attempt_number, RETRY_ATTEMPTS, wait_s, exc)

        tracker.chunk_started(chunk)
        try:
            rows = Retrying(
                retry=retry_if_exception(_retryable),
                stop=stop_after_attempt(RETRY_ATTEMPTS),
                wait=wait_exponential(multiplier=0.5, max=20),
                reraise=True,
                before_sleep=before_sleep,
            )(attempt_once)
            events = state.chunk_events(run_id, chunk.chunk_id, attempt)
        except BaseException as exc:
            tracker.chunk_failed(chunk)
            if not isinstance(exc, (Cancelled, KeyboardInterrupt)):
                log.add([_chunk_state(chunk, attempt, "failed", 0, me, str(exc))])
            raise
        log.add([_chunk_state(chunk, attempt, "done", rows, me, "", events)])
        tracker.chunk_done(chunk, rows, events, time.monotonic() - t0)

    log = _ChunkLog(state, run_id)
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
                snap.cancel_all()
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
        raise Cancelled(
            "interrupted: in-flight PostgreSQL queries were cancelled; run the same command again to resume"
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        log.flush()


def _chunk_state(
    chunk: Chunk, attempt: int, status: Any, rows: int, worker: str, error: str, events: int = 0
) -> ChunkState:
    return ChunkState(
        chunk.chunk_id,
        chunk.source,
        chunk.part,
        chunk.lo,
        chunk.hi,
        chunk.est_rows,
        attempt,
        status,
        rows,
        worker,
        error,
        now(),
        events,
    )


class _ChunkLog:
    """Chunk states written a few at a time (each write is a part on the engine: one per chunk cost
    more than the small chunks themselves). Losing the unwritten ones in a crash only means those
    chunks are staged again under new attempts — never counted twice: only recorded attempts count."""

    def __init__(self, state: StateStore, run_id: str, every: float = 1.0) -> None:
        self.state, self.run_id, self.every = state, run_id, every
        self._pending: list[ChunkState] = []
        self._lock = threading.Lock()
        self._last = time.monotonic()

    def add(self, states: list[ChunkState]) -> None:
        with self._lock:
            self._pending += states
            due = time.monotonic() - self._last >= self.every
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            self._last = time.monotonic()
        if pending:
            self.state.write_chunks(self.run_id, pending)


def _targets(s: _Session, cfg: RunConfig, pairs: list[Pair], *, create: bool) -> tuple[Target, Target | None]:
    main, earn, main_name, earn_name = resolve_targets(s.ch, cfg, create=create)
    if main is None:
        raise ConfigError(f"target {main_name[0]}.{main_name[1]} does not exist: check --table")
    if earn is None and create and any(routes_to_earnings_table(p) for p in pairs):
        earn = ensure_target(s.ch, earn_name[0], earn_name[1], "events", create=True)
    return main, earn


def dry_run(cfg: RunConfig, reporter: Reporter | None = None) -> dict[str, dict[str, int]]:
    """Count the events each pair would get (and, netting against the live pipeline, the keys it
    would net). Reads the sources and the target; writes nothing anywhere."""
    tracker = as_tracker(reporter, "dry-run")
    with _Session(cfg) as s, s.pg.snapshot() as snap:
        plan = build_plan(cfg, snap, s.ch)
        tracker.planned(plan, plan.chunks, snapshot=snap.id)
        stager = ChunkStager("dry-run", s.state, s.ch, snap, cfg.ch_tables)
        stats: list[tuple[Any, ...]] = []
        touched: dict[str, set[tuple[int, int]]] = defaultdict(set)
        for c in plan.chunks:
            if c.source == NET_SOURCE:
                continue
            sp = plan.source(c.source)
            for et, mt, reason, n, vs, drifted in dry_run_counts(stager, sp, c):
                stats.append((c.source, et, mt, reason, n, vs))
                touched[str(Pair(str(et), str(mt)))].update((int(e), int(u)) for e, u in drifted)
            tracker.chunk_done(c, c.est_rows)
        totals = pair_totals(stats)
        if cfg.net_against_live:
            main, earn, _, _ = resolve_targets(s.ch, cfg, create=False)
            cutoffs = {p: sp.cutoff for sp in plan.sources for p in sp.pairs}
            for target, mine in (
                (main, [p for p in cutoffs if not routes_to_earnings_table(p)]),
                (earn or main, [p for p in cutoffs if routes_to_earnings_table(p)]),
            ):
                if target is None or not mine:
                    continue
                for p in mine:
                    for eid, uid in s.ch.query(
                        f"SELECT DISTINCT entityId, userId FROM {target.name} WHERE (entityType, metricType) = "
                        f"({literal(p.entity_type)}, {literal(p.metric_type)}) AND metricValue < 0 "
                        f"AND createdAt >= {ts_literal(cutoffs[p])} AND createdAt < {ts_literal(snap.started_at)} "
                        "AND userId != -2",
                        what="finding live negative events",
                    ):
                        touched[str(p)].add((int(eid), int(uid)))
            for name in totals:
                totals[name]["netted_keys"] = len(touched.get(name, ()))
    tracker.finished()
    return totals


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


def _wait_for(what: str, check: Callable[[], bool], tracker: Tracker, timeout: float | None, poll: float = 1.0) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    last_note = 0.0
    while not check():
        if deadline is not None and time.monotonic() > deadline:
            raise TerminalError(f"gave up waiting for {what} after {timeout:.0f}s")
        if time.monotonic() - last_note > 30:
            tracker.info(f"waiting for {what}…")
            last_note = time.monotonic()
        time.sleep(poll)


def run(
    cfg: RunConfig,
    *,
    run_id: str | None = None,
    stage_only: bool = False,
    worker: Worker = Worker(),
    reporter: Reporter | None = None,
    wait_timeout: float | None = None,
) -> RunResult:
    """Plan, stage and (unless stage_only) publish; resumes an unfinished run of the same config."""
    tracker = as_tracker(reporter)
    try:
        with _Session(cfg) as s, Beacon(s.ch, s.state, tracker):
            return _run(s, cfg, run_id, stage_only, worker, tracker, wait_timeout)
    finally:
        tracker.finished()


def _run(
    s: _Session,
    cfg: RunConfig,
    run_id: str | None,
    stage_only: bool,
    worker: Worker,
    tracker: Tracker,
    wait_timeout: float | None,
) -> RunResult:
    t0 = time.monotonic()
    fingerprint = cfg.fingerprint()
    if not worker.leader:
        if not run_id:
            raise ConfigError("--worker K/N with K > 0 joins a run: pass the --run-id that worker 0 uses")
        _wait_for(
            f"worker 0 to plan run {run_id}",
            lambda: getattr(s.state.run(run_id), "status", "planned") != "planned",
            tracker,
            wait_timeout,
        )
    resumed_id = run_id or s.state.latest_run(fingerprint)
    existing = s.state.run(resumed_id) if resumed_id else None
    if existing and existing.fingerprint != fingerprint:
        raise ConfigError(
            f"run {resumed_id} was started with different options; use the same options or another --run-id"
        )
    if existing and existing.status == "abandoned":
        raise ConfigError(
            f"run {resumed_id} was abandoned (its staging was pruned): leave out --run-id, or name a new run"
        )
    rid: str = (resumed_id if existing and resumed_id else None) or run_id or new_run_id()
    tracker.set_run(rid, target=cfg.table or None, cutoff=format_ts(cfg.cutoff))
    tracker.recorded = existing is not None
    result = RunResult(rid, "staging", resumed=existing is not None)
    if existing and existing.status == "published":
        # The same command again: its run is complete. Publishing is idempotent, so this is
        # a no-op that still re-checks the ledger (and settles an interrupted slice).
        tracker.info(f"run {rid} with these options is already published; nothing to do")
        result.pairs = pair_totals(s.state.stats(existing))
        result.overlap = overlap_view(existing.manifest.get("overlap", {}))
        if not stage_only and worker.leader:
            result.published_rows = publish_staged(s.ch, s.state, rid, tracker, on_overlap=cfg.on_overlap)
        result.status = "published"
        return result

    if existing and existing.status in ("staged", "publishing"):
        tracker.info(f"run {rid}: staging already complete")
    else:
        tracker.phase("planning", f"run {rid}: " + ("resuming" if existing else "planning"))
        _stage_run(s, cfg, rid, fingerprint, existing, worker, result, tracker)
    if not worker.leader:
        result.status = "staged (this worker's share)"
        return result
    _wait_for(
        f"the other workers of run {rid}",
        lambda: all(c.status == "done" for c in s.state.chunks(rid) if c.source != NET_SOURCE),
        tracker,
        wait_timeout,
        poll=2.0,
    )
    rec = s.state.run(rid)
    assert rec is not None
    net = next((c for c in s.state.chunks(rid) if c.source == NET_SOURCE), None)
    if net is not None and net.status != "done":
        main, earn = _targets(s, cfg, _run_pairs(rec), create=True)
        until = parse_cutoff(str(rec.manifest["snapshot_at"]))
        tracker.phase("netting", "netting against the live events in the target")
        rec.manifest["net"] = stage_netting(
            s.ch,
            s.state,
            rec,
            chunk_id=net.chunk_id,
            main=main,
            earnings=earn or main,
            until=until,
            backfill_version=cfg.backfill_version,
        )
        s.state.write_run(rec)
        tracker.info(
            "netted against the live events up to "
            + rec.manifest["net"]["until"]
            + ": "
            + (", ".join(f"{p} {n:,}" for p, n in rec.manifest["net"]["keys"].items()) or "no keys")
        )
    s.state.summarize(rec)
    if rec.status == "staging":
        s.state.set_status(rec, "staged")
    result.pairs = pair_totals(s.state.stats(rec))
    result.overlap = overlap_view(rec.manifest.get("overlap", {}))
    result.status = "staged"
    staged = sum(d.get("events", 0) for d in result.pairs.values())
    tracker.phase("staged", f"run {rid}: staged {staged:,} events in {time.monotonic() - t0:.1f} s", events=staged)
    if stage_only:  # refuse now what the publish would refuse (the publish checks again)
        main, earn = _targets(s, cfg, _run_pairs(rec), create=True)
        refuse_out_of_range(s.state, rec, {"main": main, "earnings": earn or main})
    else:
        result.published_rows = publish_staged(s.ch, s.state, rid, tracker, on_overlap=cfg.on_overlap)
        result.status = "published"
        rec = s.state.run(rid)
        assert rec is not None
        result.overlap = overlap_view(rec.manifest.get("overlap", {}))
    return result


def _stage_run(
    s: _Session,
    cfg: RunConfig,
    rid: str,
    fingerprint: str,
    existing: RunRecord | None,
    worker: Worker,
    result: RunResult,
    tracker: Tracker,
) -> None:
    with s.pg.snapshot() as snap:
        if snap.started_at is not None and max([cfg.cutoff, *cfg.source_cutoffs.values()]) > snap.started_at:
            late = max([cfg.cutoff, *cfg.source_cutoffs.values()])
            raise ConfigError(
                f"the cutoff {late} is after the source snapshot's time {snap.started_at} (UTC): events "
                "at or after the snapshot are the live pipeline's; choose a cutoff in the past"
            )
        # A resumed or joined run keeps its manifest: same chunk ids, same NULL-timestamp
        # stand-ins; only the snapshot is new (the old one died with its process, T30).
        plan = build_plan(cfg, snap, s.ch, manifest=existing.manifest if existing else None)
        pairs = [p for sp in plan.sources for p in sp.pairs]
        main, earn = _targets(s, cfg, pairs, create=True)
        created = existing.created_at if existing else now()
        done: set[int] = set()
        lock = threading.Lock()
        if existing:
            rec = existing
            states = s.state.chunks(rid)
            if len(states) != int(rec.manifest.get("chunks", len(states))):
                raise TerminalError(
                    f"run {rid} records {rec.manifest.get('chunks')} chunks but the state holds "
                    f"{len(states)}: its state is incomplete; start a new run (--run-id) instead"
                )
            plan.chunks = [Chunk(c.chunk_id, c.source, c.part, c.lo, c.hi, c.est_rows) for c in states]
            done = {c.chunk_id for c in states if c.status == "done"}
            if worker.leader:
                rec.manifest["snapshot_ids"] = [*rec.manifest.get("snapshot_ids", []), snap.id]
                rec.manifest["snapshot_at"] = format_ts(snap.started_at)  # the latest: L is read up to it
        else:
            overlap = apply_fence(s.ch, s.state, cfg, plan, main, earn)
            s.state.ensure()  # first write of a new run: everything above only read
            manifest = {
                **plan.manifest(),
                "targets": {"main": main.label, "earnings": (earn or main).label},
                "snapshot_ids": [snap.id],
                "snapshot_at": format_ts(snap.started_at),
                "overlap": overlap,
                "on_overlap": cfg.on_overlap,
            }
            rec = RunRecord(rid, fingerprint, "planned", created, cfg.public_dict(), manifest)
            # The chunk list before the run record: a run that exists has all its chunks (a command
            # killed in between leaves chunks no run names, never a run with chunks missing).
            s.state.write_chunks(
                rid,
                [
                    ChunkState(c.chunk_id, c.source, c.part, c.lo, c.hi, c.est_rows, 0, "planned", 0, "", "", now())
                    for c in plan.chunks
                ],
            )
            s.state.write_run(rec)
        tracker.recorded = True
        result.overlap = overlap_view(rec.manifest.get("overlap", {}))
        if worker.leader:
            s.state.set_status(rec, "staging")

        def on_new_snapshot(snap_id: str) -> None:
            tracker.warning(f"the PostgreSQL snapshot was lost; reading on under snapshot {snap_id}")
            if worker.leader:
                with lock:
                    rec.manifest["snapshot_ids"] = [*rec.manifest.get("snapshot_ids", []), snap_id]
                    rec.manifest["snapshot_at"] = format_ts(snap.started_at)
                    s.state.write_run(rec)

        todo = [c for c in plan.chunks if c.chunk_id not in done and worker.owns(c) and c.source != NET_SOURCE]
        tracker.planned(plan, todo, snapshot=snap.id)
        stager = ChunkStager(rid, s.state, s.ch, snap, cfg.ch_tables, concurrency=cfg.concurrency)
        _stage_chunks(
            stager,
            s.state,
            plan,
            todo,
            cfg.concurrency,
            tracker,
            snap,
            f"w{worker.index}of{worker.count}",
            on_new_snapshot,
        )


def _run_pairs(rec: RunRecord) -> list[Pair]:
    return [Pair(*p) for src in rec.manifest.get("sources", []) for p in src.get("pairs", [])]


def publish_staged(
    ch: ClickHouse,
    state: StateStore,
    run_id: str,
    reporter: Reporter | Tracker | None = None,
    *,
    on_overlap: OnOverlap = "abort",
    lease_wait: float | None = 120.0,
) -> int:
    """Publish a staged run exactly once: under the target lease(s), after the publish-time fence and
    the range checks, settling any interrupted slice first. Returns the rows inserted now."""
    tracker = as_tracker(reporter, "publish")
    rec = state.run(run_id)
    if rec is None:
        raise ConfigError(f"unknown run {run_id!r}: see `metric-backfill status`")
    if rec.status not in ("staged", "publishing", "published"):
        raise ConfigError(f"run {run_id} is {rec.status}, not staged: finish it with the same `run` command first")
    # The run's own recorded configuration decides where and how it is published.
    cfg = RunConfig.from_public(rec.config, clickhouse_url=ch.dsn)
    pairs = _run_pairs(rec)
    main, earn, main_name, earn_name = resolve_targets(ch, cfg, create=True)
    assert main is not None
    if earn is None and any(routes_to_earnings_table(p) for p in pairs):
        earn = ensure_target(ch, earn_name[0], earn_name[1], "events", create=True)
    targets = sorted({t.label: t for t in (main, earn or main)}.values(), key=lambda t: t.label)
    with ExitStack() as leases:
        held = [
            leases.enter_context(Lease(ch, t.database, t.label, run_id, wait=lease_wait, on_wait=tracker.info))
            for t in targets
        ]
        rec = state.run(run_id)  # again, under the lease: another process may have published it meanwhile
        assert rec is not None
        _fence_at_publish(ch, state, rec, pairs, main, earn, on_overlap, tracker)
        pairs = _run_pairs(rec)
        state.summarize(rec)
        refuse_out_of_range(state, rec, {"main": main, "earnings": earn or main})
        if rec.status != "published":
            state.set_status(rec, "publishing")
        withdrawals = {
            old: [Pair(*p) for p in ps] for old, ps in rec.manifest.get("overlap", {}).get("withdraw", {}).items()
        }
        refuse_pruned_withdrawals(state, withdrawals)
        cutoffs = [cfg.cutoff, *cfg.source_cutoffs.values()]
        for old in withdrawals:  # the scope a slice is measured in must hold the withdrawn rows too
            old_rec = state.run(old)
            if old_rec:
                cutoffs += [
                    parse_cutoff(old_rec.config["cutoff"]),
                    *map(parse_cutoff, (old_rec.config.get("source_cutoffs") or {}).values()),
                ]
        if rec.is_reconcile:
            cutoffs.append(parse_cutoff(rec.manifest["reconcile"]["as_of"]))

        def lease_check() -> None:
            for lease in held:
                lease.check()

        pub = Publisher(
            ch,
            state,
            run_id,
            main=main,
            earnings=earn,
            cutoff=max(cutoffs),
            version=cfg.backfill_version,
            slice_rows=cfg.publish_slice_rows,
            withdrawals=withdrawals,
            concurrency=cfg.concurrency,
            lease_check=lease_check,
            only_pairs=pairs,
        )
        t0 = time.monotonic()
        tracker.publishing(sum(len(p) for p in pub.phases()), ", ".join(t.label for t in targets))
        rows, _skipped = pub.publish(tracker.slice_done)
        for old, old_pairs in withdrawals.items():
            # Its events are no longer in effect (for these pairs): the same command must plan anew,
            # not report "already published".
            old_rec = state.run(old)
            if old_rec and old_rec.status != "withdrawn":
                state.set_status(
                    old_rec, "withdrawn", withdrawn_by=run_id, withdrawn_pairs=[list(p) for p in old_pairs]
                )
        rec = state.run(run_id)
        assert rec is not None
        state.set_status(rec, "published", published_rows=int(rec.summary.get("published_rows", 0)) + rows)
        tracker.phase("published", f"run {run_id}: published {rows:,} rows in {time.monotonic() - t0:.1f} s", rows=rows)
    if withdrawals and rows:
        _measure_replaced(ch, state, rec, main, earn or main, sorted({p for ps in withdrawals.values() for p in ps}))
    return rows


def _measure_replaced(
    ch: ClickHouse, state: StateStore, rec: RunRecord, main: Target, earn: Target, pairs: list[Pair]
) -> None:
    """After a replace, the replaced pairs must hold exactly the new run's rows before its cutoffs. They
    do not when rows were deleted or changed in the target outside the tool (a mutation): the
    withdrawal negated what the earlier run published, not what is left of it."""
    cutoffs = {Pair(*p): src["cutoff"] for src in rec.manifest.get("sources", []) for p in src["pairs"]}
    staged = state.staged_where(rec.run_id)
    bad: list[tuple[Any, ...]] = []
    for target in {main.label: main, earn.label: earn}.values():
        mine = [p for p in pairs if (target is earn) == routes_to_earnings_table(p) or main.label == earn.label]
        for p in mine:
            cut = ts_literal(parse_cutoff(cutoffs[p]))
            where = (
                f"(entityType, metricType) = ({literal(p.entity_type)}, {literal(p.metric_type)}) AND createdAt < {cut}"
            )
            bad += ch.query(
                f"SELECT entityType, metricType, entityId, sum(w) AS want, sum(h) AS have FROM ("
                f"SELECT entityType, metricType, entityId, toInt64(metricValue) AS w, toInt64(0) AS h "
                f"FROM {state.t('staging')} WHERE {staged} AND {where} UNION ALL "
                f"SELECT entityType, metricType, entityId, 0, toInt64(metricValue) FROM {target.name} WHERE {where}) "
                "GROUP BY entityType, metricType, entityId HAVING want != have ORDER BY abs(want - have) DESC LIMIT 6",
                what="measuring the replaced pairs",
            )
    if bad:
        examples = ", ".join(
            f"{Pair(str(et), str(mt))} {eid}: {have} instead of {want}" for et, mt, eid, want, have in bad[:5]
        )
        raise DifferencesFound(
            f"run {rec.run_id} replaced its predecessors, but the replaced pairs do not hold exactly "
            f"its rows ({examples}{', …' if len(bad) > 5 else ''}): rows were deleted or changed in "
            "the target outside the tool; run `metric-backfill reconcile` to correct them"
        )


def _fence_at_publish(
    ch: ClickHouse,
    state: StateStore,
    rec: RunRecord,
    pairs: list[Pair],
    main: Target,
    earn: Target | None,
    on_overlap: OnOverlap,
    tracker: Tracker,
) -> None:
    """Runs published since this one was planned, holding its pairs: decided as at plan time."""
    conflicts = publish_time_conflicts(ch, rec.run_id, pairs, rec.manifest, main, earn)
    if not conflicts:
        return
    listing = "; ".join(f"run {r}: {', '.join(str(p) for p in sorted(ps))}" for r, ps in sorted(conflicts.items()))
    if rec.is_reconcile or on_overlap == "abort":
        fix = (
            "its corrections were measured before them: run reconcile again"
            if rec.is_reconcile
            else "choose --on-overlap skip (publish the other pairs), replace (withdraw those runs) or accept"
        )
        raise OverlapError(
            f"run {rec.run_id} was planned before other runs published the same pairs ({listing}); "
            f"publishing it would count them twice. Nothing was written: {fix}"
        )
    overlap = rec.manifest.setdefault("overlap", {})
    overlap.setdefault("at_publish", []).append(
        {"decision": on_overlap, "runs": {r: [list(p) for p in sorted(ps)] for r, ps in conflicts.items()}}
    )
    if on_overlap == "skip":
        drop = {p for ps in conflicts.values() for p in ps}
        for src in rec.manifest.get("sources", []):
            src["pairs"] = [p for p in src.get("pairs", []) if Pair(*p) not in drop]
        overlap["skipped"] = sorted([*overlap.get("skipped", []), *[list(p) for p in drop]])
    elif on_overlap == "replace":
        for r, ps in conflicts.items():
            other = state.run(r)
            if other is None or other.status != "published":
                raise OverlapError(
                    f"run {r} is not completely published: finish it with `metric-backfill publish {r}` "
                    f"before replacing it. Nothing was written"
                )
            overlap.setdefault("withdraw", {}).setdefault(r, [])
            overlap["withdraw"][r] = sorted({*map(tuple, overlap["withdraw"][r]), *map(tuple, ps)})
    # accept: record and go on. Either way these runs are known from now on.
    for target in {main.label: main, (earn or main).label: earn or main}.values():
        overlap.setdefault("known", {})[target.label] = known_pairs(ch, target)
    tracker.warning(f"run {rec.run_id}: {on_overlap} for pairs published since it was planned ({listing})")
    state.write_run(rec)


def publish_run(
    clickhouse_url: str,
    run_id: str,
    *,
    state_database: str = "metric_backfill",
    reporter: Reporter | None = None,
    on_overlap: OnOverlap = "abort",
) -> int:
    """Publish a staged run; publishing a published run again changes nothing."""
    tracker = as_tracker(reporter, "publish")
    try:
        with ClickHouse(clickhouse_url) as ch:
            state = StateStore(ch, state_database)
            if not state.exists():
                raise ConfigError(f"unknown run {run_id!r}: the state database {state_database} holds no runs")
            tracker.set_run(run_id)
            tracker.recorded = True
            with Beacon(ch, state, tracker):
                return publish_staged(ch, state, run_id, tracker, on_overlap=on_overlap)
    finally:
        tracker.finished()
