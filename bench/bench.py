"""Benchmark: metric-backfill against the PostgreSQL read ceiling and the seed plan's approach.

One generated dataset per scale (cached under --dir), timed in one run:

  (a) ceiling   the read ceiling: COPY of every PostgreSQL source query's rows out of PostgreSQL into
                nothing (psql one and two at a time, and psycopg's loop; the fastest counts), plus the
                ClickHouse-sourced metrics' queries inside ClickHouse; and, stricter, for reference,
                ClickHouse pulling the raw source tables through postgresql() (no joins, no snapshot);
  (b) baseline  the seed plan's approach: rows into Python, one dict per event, JSONEachRow inserts of
                1000 events into the same ClickHouse (ImageReaction, the largest source; its events/s
                rate stands for the whole);
  (c) the tool  `metric-backfill run` (stage + publish) at concurrency 1 and 2, each in a fresh process
                on a fresh copy of the ClickHouse sources, into two shapes side by side: a plain
                target, and the production shape — the target with the site's insert-fired daily
                rollup (demo/sql/clickhouse.sql) attached (checked afterwards: the rollup saw every
                event once; and the rollup's own work timed: the same rows inserted into a copy of
                the target with and without it, as the live pipeline pays it). Per phase (plan,
                stage, publish): seconds; the tool process's CPU, split by thread into Python,
                ClickHouse's query work and its background work (merges), from the kernel's
                per-thread counters (chDB keeps no query log); PostgreSQL's CPU; peak RSS of the
                process tree.

Prints events/s, the ratios (c)/(a) and (c)/(b), and writes a JSON result file.

    .venv/bin/python bench/bench.py                       # scale 5 (about 5M source rows)
    .venv/bin/python bench/bench.py --scales 1,5,20       # growth: time and memory per scale
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

CUTOFF = "2025-10-01 00:00:00"
TARGETS = {  # 2 cores, embedded ClickHouse; the production shape has the site's rollup on the target
    "plain": {"events_per_s": 1_500_000, "vs_ceiling": 1.5, "rss_max_mb": 600, "rss_growth_mb": 50},
    "rollup": {"vs_ceiling": 2.0, "rss_max_mb": 700, "rss_growth_mb": 50},
}


def child_python(code: str, *args: str, timeout: float = 7200) -> dict[str, Any]:
    """Run `code` in a fresh interpreter; it prints one JSON line last. Adds the child's peak RSS."""
    wrapper = (
        code + "\nimport json, resource\n"
        "print(json.dumps({**RESULT, 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *args], capture_output=True, text=True, timeout=timeout, cwd=HERE.parent
    )
    if out.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- dataset -----------------------------------------------------------------------------------


def dataset(root: Path, scale: float, seed: int) -> tuple[Any, str, Path, dict[str, int]]:
    from metric_backfill.demo._embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(root / "postgres").start()
    name = f"bench_{str(scale).replace('.', '_')}_{seed}"
    template = root / f"ch-{name}"
    meta = root / f"{name}.json"
    if meta.exists() and template.exists():
        return pg, pg.url(name), template, json.loads(meta.read_text())
    url = pg.create_database(name, drop=True)
    shutil.rmtree(template, ignore_errors=True)
    t = time.monotonic()
    counts = child_python(
        """
import sys, warnings; warnings.filterwarnings("ignore")
from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill.demo._generate import generate
with ClickHouse("chdb://" + sys.argv[2], lock_wait=60) as c:
    RESULT = {"counts": generate(sys.argv[1], c, scale=float(sys.argv[3]), seed=int(sys.argv[4]))}
""",
        url,
        str(template),
        str(scale),
        str(seed),
    )["counts"]
    print(f"  generated scale {scale} in {time.monotonic() - t:.0f}s", flush=True)
    meta.write_text(json.dumps(counts))
    return pg, url, template, counts


def fresh_engine(template: Path, root: Path, label: str) -> Path:
    path = root / f"work-{label}"
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(template, path, symlinks=True)  # chDB links tables relatively into store/
    return path


# -- (a) ceiling ------------------------------------------------------------------------------


def ceiling(pg: Any, url: str, engine: Path) -> dict[str, Any]:
    from metric_backfill.catalog import CATALOG
    from metric_backfill._config import RunConfig, parse_cutoff
    from metric_backfill.engine._plan import select_pairs

    cfg = RunConfig(pg_url=url, clickhouse_url="chdb:///unused", cutoff=parse_cutoff(CUTOFF))
    selected = select_pairs(cfg, [])
    pg_sources = [s for s in CATALOG if s.engine == "pg" and s.name in selected]
    psql = Path(__import__("pgserver._commands", fromlist=["x"]).POSTGRES_BIN_PATH) / "psql"
    queries = []
    for s in pg_sources:
        q = s.query.replace("$read_len", "0")
        q = (
            q.replace("%(lo)s", "-2147483648")
            .replace("%(hi)s", "2147483647")
            .replace("%(cutoff)s", f"'{CUTOFF}'::timestamp(3)")
            .replace("%(read_until)s", f"'{CUTOFF}'::timestamp(3)")
            .replace("%(null_ts)s", "'1970-01-01'::timestamp(3)")
        )
        if "%(etype)s" in q:
            q = q.replace('bt."entityType" = %(etype)s', "true")
        queries.append((s.name, q))
    t = time.monotonic()
    rows = 0
    for _name, q in queries:
        out = subprocess.run(
            [str(psql), url, "-X", "-q", "-c", f"COPY ({q}) TO STDOUT"], stdout=subprocess.PIPE, check=True
        )
        rows += out.stdout.count(b"\n")
    psql_s = time.monotonic() - t
    # The same COPYs two at a time, as the tool reads at concurrency 2 on these 2 cores.
    from concurrent.futures import ThreadPoolExecutor

    def copy_out(q: str) -> None:
        subprocess.run(
            [str(psql), url, "-X", "-q", "-c", f"COPY ({q}) TO STDOUT"], stdout=subprocess.DEVNULL, check=True
        )

    t = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(copy_out, [q for _, q in sorted(queries, key=lambda x: -len(x[1]))]))
    psql2_s = time.monotonic() - t

    loop = child_python(
        """
import sys, time, psycopg, warnings; warnings.filterwarnings("ignore")
queries = __import__("json").loads(sys.argv[2])
t = time.monotonic(); n = 0
with psycopg.connect(sys.argv[1]) as c:
    for q in queries:
        with c.cursor().copy(f"COPY ({q}) TO STDOUT") as cp:
            for b in cp: n += 1
RESULT = {"seconds": time.monotonic() - t, "rows": n}
""",
        url,
        json.dumps([q for _, q in queries]),
    )

    ch_read = child_python(
        """
import sys, time, warnings; warnings.filterwarnings("ignore")
from metric_backfill.backends._clickhouse import open_embedded
c = open_embedded("chdb://" + sys.argv[1], 60, None)
port, db = sys.argv[2], sys.argv[3]
tables = ["UserEngagement","ImageReaction","ArticleReaction","BountyEntryReaction","Article","ResourceReview","CollectionItem",
          "CollectionContributor","Comment","CommentV2","ImageResourceNew","BuzzTip","TagEngagement","BountyEngagement","Bounty",
          "BountyEntry","BountyBenefactor","Post","ModelVersion"]
t = time.monotonic(); n = 0
for tbl in tables:
    # hashing every column makes ClickHouse fetch all of them
    n += c.query(f"SELECT count(), sum(cityHash64(*)) FROM postgresql('127.0.0.1:{port}', '{db}', '{tbl}', 'postgres', '')").result_rows[0][0]
pg_s = time.monotonic() - t
t = time.monotonic()
for q in ["SELECT count(), sum(cityHash64(*)) FROM default.modelVersionEvents WHERE type = 'Download'",
          "SELECT count(), sum(cityHash64(*)) FROM orchestration.jobs",
          "SELECT count() FROM (SELECT date, modelVersionId, sum(amount) FROM orchestration.resourceCompensations GROUP BY ALL)"]:
    c.query(q)
RESULT = {"postgresql_fn_seconds": pg_s, "ch_sources_seconds": time.monotonic() - t}
c.close()
""",
        str(engine),
        str(pg.port),
        url.rsplit("/", 1)[1],
    )
    read_s = min(psql_s, psql2_s, loop["seconds"])
    return {
        "rows": rows,
        "psql_copy_seconds": psql_s,
        "psql_copy_2_at_a_time_seconds": psql2_s,
        "psycopg_copy_seconds": loop["seconds"],
        "psycopg_peak_rss_mb": loop["peak_rss_mb"],
        "clickhouse_postgresql_fn_seconds": ch_read["postgresql_fn_seconds"],
        "clickhouse_sources_seconds": ch_read["ch_sources_seconds"],
        # The read ceiling as the goal defines it: COPY of every PostgreSQL source query (the
        # fastest way measured: psql or psycopg, one or two at a time) plus the ClickHouse-sourced
        # metrics' queries, which never leave ClickHouse.
        "seconds": read_s + ch_read["ch_sources_seconds"],
        # Stricter, for reference: ClickHouse pulling the raw source tables through postgresql()
        # (no joins, no filters, outside the run's snapshot), plus the same ClickHouse queries.
        "raw_tables_seconds": ch_read["postgresql_fn_seconds"] + ch_read["ch_sources_seconds"],
    }


# -- (b) baseline -----------------------------------------------------------------------------

BASELINE = """
import sys, time, json, psycopg, warnings; warnings.filterwarnings("ignore")
from metric_backfill.backends._clickhouse import open_embedded
c = open_embedded("chdb://" + sys.argv[2], 60, None)
c.command("CREATE TABLE IF NOT EXISTS default.baseline (entityType LowCardinality(String), entityId Int32, userId Int32, "
          "metricType LowCardinality(String), metricValue Int32, createdAt DateTime64(3)) ENGINE = MergeTree "
          "ORDER BY (entityType, entityId, createdAt)")
limit = int(sys.argv[3])
t = time.monotonic(); events = 0; batch = []
def flush():
    global batch
    c.raw_insert("default.baseline", insert_block="\\n".join(json.dumps(e) for e in batch), fmt="JSONEachRow",
                 settings={"async_insert": 0})
    batch = []
with psycopg.connect(sys.argv[1]) as pg:
    cur = pg.cursor(name="rows")
    cur.execute('SELECT r."id", r."imageId", r."userId", r."reaction"::text, r."createdAt", i."postId", i."userId" '
                'FROM "ImageReaction" r LEFT JOIN "Image" i ON i."id" = r."imageId" WHERE r."createdAt" < %s LIMIT %s',
                (sys.argv[4], limit))
    for rid, image, user, reaction, ts, post, owner in cur:
        created = ts.isoformat(sep=" ", timespec="milliseconds")
        evs = [{"entityType": "Image", "entityId": image, "userId": user, "metricType": reaction, "metricValue": 1, "createdAt": created}]
        if post is not None:
            evs.append({"entityType": "Post", "entityId": post, "userId": user, "metricType": reaction, "metricValue": 1, "createdAt": created})
            evs.append({"entityType": "Post", "entityId": post, "userId": user, "metricType": "reactionCount", "metricValue": 1, "createdAt": created})
        if owner is not None:
            evs.append({"entityType": "User", "entityId": owner, "userId": user, "metricType": "reactionCount", "metricValue": 1, "createdAt": created})
        for e in evs:
            batch.append(e)
            events += 1
            if len(batch) == 1000:
                flush()
if batch:
    flush()
RESULT = {"seconds": time.monotonic() - t, "events": events}
c.close()
"""


def baseline(url: str, engine: Path, limit: int) -> dict[str, Any]:
    r = child_python(BASELINE, url, str(engine), str(limit), CUTOFF)
    r["events_per_s"] = r["events"] / r["seconds"]
    return r


# -- (c) the tool -----------------------------------------------------------------------------

TOOL = """
import json, os, sys, threading, time, warnings; warnings.filterwarnings("ignore")
import psutil
from metric_backfill import RunConfig, run
from metric_backfill._config import parse_cutoff
from metric_backfill.engine._run import SilentReporter

me = psutil.Process()
peak = {"rss": 0}
stop = threading.Event()

def tree_rss():
    total = 0
    for p in [me, *me.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total

# CPU per component, from the kernel's per-thread counters sampled every 0.25 s and charged to the
# thread's name at that moment: Python's threads keep the process's name, chDB names its own
# (query pipelines and the thread pool running them, or background merges and schedules).
TICK = os.sysconf("SC_CLK_TCK")
MAIN = open("/proc/self/comm").read().strip()
BACKGROUND = ("MergeMutate", "BgSchPool", "BgStrmSchPool", "BgMBSchPool", "BgDistSchPool", "Common", "Move", "Fetch",
              "MemoryWorker", "PoolDelayExec", "TCPHandler", "SystemLogFlush")
last_ticks = {}
component = {}
phase = {"now": "plan"}

def charge():
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as fh:
                st = fh.read()
        except OSError:
            continue
        name = st[st.index("(") + 1 : st.rindex(")")]
        f = st[st.rindex(")") + 2 :].split()
        ticks = int(f[11]) + int(f[12])
        delta = ticks - last_ticks.get(tid, 0)
        last_ticks[tid] = ticks
        kind = "python" if name == MAIN else ("clickhouse_background" if name.startswith(BACKGROUND) else "clickhouse_query")
        key = (phase["now"], kind)
        component[key] = component.get(key, 0.0) + delta / TICK

def sample():
    n = 0
    while not stop.wait(0.02):
        peak["rss"] = max(peak["rss"], tree_rss())
        n += 1
        if n % 12 == 0:
            charge()

def cpu():
    t = me.cpu_times()
    return t.user + t.system + t.children_user + t.children_system

sys.path.insert(0, "bench")  # the child runs from the project's root
from bench import postgres_cpu as pg_cpu

marks = []
def mark(name):
    charge()
    phase["now"] = {"planned": "stage", "staged": "publish"}.get(name, phase["now"])
    marks.append((name, time.monotonic(), cpu(), pg_cpu()))

class Phases(SilentReporter):
    def planned(self, plan, todo): mark("planned")
    def publishing(self, slices): mark("staged")

threading.Thread(target=sample, daemon=True).start()
mark("start")
r = run(RunConfig(pg_url=sys.argv[1], clickhouse_url="chdb://" + sys.argv[2], cutoff=parse_cutoff(sys.argv[3]),
                  concurrency=int(sys.argv[4]), chunk_rows=int(sys.argv[5])), reporter=Phases())
mark("published")
stop.set()
peak["rss"] = max(peak["rss"], tree_rss())
names = [m[0] for m in marks]
phases = {}
for (a, t0, c0, p0), (b, t1, c1, p1) in zip(marks, marks[1:]):
    label = {"planned": "plan", "staged": "stage", "published": "publish"}[b]
    parts = {k: round(component.get((label, k), 0.0), 2) for k in ("python", "clickhouse_query", "clickhouse_background")}
    # what the live threads' counters miss: threads that ended, and child processes
    parts["other"] = round(c1 - c0 - sum(parts.values()), 2)
    phases[label] = {"seconds": round(t1 - t0, 3), "tool_cpu_s": round(c1 - c0, 3), "tool_cpu_by_thread_s": parts,
                     "postgres_cpu_s": round(p1 - p0, 3)}
RESULT = {"seconds": marks[-1][1] - marks[0][1], "events": sum(d.get("events", 0) for d in r.pairs.values()),
          "published_rows": r.published_rows, "status": r.status, "phases": phases,
          "tree_peak_rss_mb": peak["rss"] / 2**20}
"""

ROLLUP = """
import sys, re, warnings; warnings.filterwarnings("ignore")
from pathlib import Path
from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill.engine._target import target_ddl
import metric_backfill.demo as demo
text = (Path(demo.__file__).parent / "sql" / "clickhouse.sql").read_text()
text = chr(10).join(line.split("--", 1)[0] for line in text.splitlines())
with ClickHouse("chdb://" + sys.argv[1], lock_wait=60) as c:
    c.command(target_ddl("events", "default.entityMetricEvents"))
    for stmt in text.split(";"):
        m = re.search(r"CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS default\\.(\\w+)", stmt)
        if m and m.group(1) in ("entityMetricDailyAgg", "entityMetricDaily"):
            c.command(stmt)
RESULT = {}
"""


def postgres_cpu() -> float:
    """CPU-seconds of every PostgreSQL process so far: the postmasters' own and reaped backends', plus
    the live ones' (read between runs, when the tool's sessions are closed)."""
    import psutil

    total = 0.0
    for p in psutil.process_iter(["name", "ppid"]):
        try:
            if not (p.info["name"] or "").startswith("postgres"):
                continue
            t = p.cpu_times()
            parent = psutil.Process(p.info["ppid"]).name() if p.info["ppid"] else ""
            total += t.user + t.system
            if not parent.startswith("postgres"):
                total += t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def tool(url: str, engine: Path, concurrency: int, chunk_rows: int, rollup: bool) -> dict[str, Any]:
    if rollup:  # the production shape: the site's insert-fired daily rollup on the target
        child_python(ROLLUP, str(engine))
    pg0 = postgres_cpu()
    r = child_python(TOOL, url, str(engine), CUTOFF, str(concurrency), str(chunk_rows))
    r["postgres_cpu_s"] = round(postgres_cpu() - pg0, 3)
    r["events_per_s"] = r["events"] / r["seconds"]
    if rollup:
        check = child_python(
            """
import sys, warnings; warnings.filterwarnings("ignore")
from metric_backfill.backends._clickhouse import ClickHouse
with ClickHouse("chdb://" + sys.argv[1], lock_wait=60) as c:
    a = c.query("SELECT sum(metricValue) FROM default.entityMetricEvents")[0][0]
    b = c.query("SELECT sum(total) FROM default.entityMetricDailyAgg")[0][0]
    # The rollup's own work: the same rows inserted into a copy of the target with and without a
    # copy of the rollup attached, as the live pipeline's inserts would pay it.
    import time
    for t in ("mb_bench_plain", "mb_bench_viewed", "mb_bench_agg"):
        c.command(f"DROP TABLE IF EXISTS default.{t}")
    c.command("DROP VIEW IF EXISTS default.mb_bench_view")
    c.command("CREATE TABLE default.mb_bench_plain AS default.entityMetricEvents")
    c.command("CREATE TABLE default.mb_bench_viewed AS default.entityMetricEvents")
    c.command("CREATE TABLE default.mb_bench_agg AS default.entityMetricDailyAgg")
    c.command(
        "CREATE MATERIALIZED VIEW default.mb_bench_view TO default.mb_bench_agg AS SELECT entityType, entityId, "
        "metricType, toDate(createdAt) AS day, sum(metricValue) AS total FROM default.mb_bench_viewed "
        "GROUP BY entityType, entityId, metricType, day"
    )
    took = {}
    for t in ("mb_bench_plain", "mb_bench_viewed"):
        t0 = time.monotonic()
        c.command(f"INSERT INTO default.{t} SELECT * FROM default.entityMetricEvents")
        took[t] = time.monotonic() - t0
    for t in ("mb_bench_view", "mb_bench_plain", "mb_bench_viewed", "mb_bench_agg"):
        c.command(f"DROP {'VIEW' if t.endswith('view') else 'TABLE'} default.{t}")
RESULT = {
    "target_sum": int(a),
    "rollup_sum": int(b),
    "insert_seconds_plain": round(took["mb_bench_plain"], 3),
    "insert_seconds_with_rollup": round(took["mb_bench_viewed"], 3),
}
""",
            str(engine),
        )
        assert check["target_sum"] == check["rollup_sum"], check  # the rollup saw every event once
        r["rollup_own_seconds"] = round(check["insert_seconds_with_rollup"] - check["insert_seconds_plain"], 3)
    return r


# -- main -------------------------------------------------------------------------------------


def run_scale(
    root: Path, scale: float, seed: int, concurrencies: list[int], baseline_rows: int, chunk_rows: int
) -> dict[str, Any]:
    pg, url, template, counts = dataset(root, scale, seed)
    from metric_backfill.demo._generate import SOURCE_EVENT_TABLES

    source_rows = sum(v for k, v in counts.items() if k in SOURCE_EVENT_TABLES)
    print(f"scale {scale}: {source_rows:,} source rows", flush=True)
    engine = fresh_engine(template, root, "ceiling")
    a = ceiling(pg, url, engine)
    print(
        f"  (a) ceiling: psql COPY {a['psql_copy_seconds']:.1f}s (two at a time "
        f"{a['psql_copy_2_at_a_time_seconds']:.1f}s), psycopg COPY {a['psycopg_copy_seconds']:.1f}s, ClickHouse "
        f"sources {a['clickhouse_sources_seconds']:.1f}s -> {a['seconds']:.1f}s; raw tables through ClickHouse's "
        f"postgresql() {a['clickhouse_postgresql_fn_seconds']:.1f}s -> {a['raw_tables_seconds']:.1f}s",
        flush=True,
    )
    engine = fresh_engine(template, root, "baseline")
    b = baseline(url, engine, baseline_rows)
    print(
        f"  (b) baseline: {b['events']:,} events in {b['seconds']:.1f}s = {b['events_per_s']:,.0f} events/s, "
        f"peak RSS {b['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    c: dict[str, dict[str, Any]] = {"plain": {}, "rollup": {}}
    for shape in ("plain", "rollup"):
        for n in concurrencies:
            engine = fresh_engine(template, root, f"tool-{shape}-{n}")
            r = tool(url, engine, n, chunk_rows, rollup=shape == "rollup")
            r["vs_ceiling"] = r["seconds"] / a["seconds"]
            r["vs_raw_tables"] = r["seconds"] / a["raw_tables_seconds"]
            r["vs_baseline"] = r["events_per_s"] / b["events_per_s"]
            c[shape][str(n)] = r
            ph = "; ".join(
                f"{k} {v['seconds']:.1f}s (CPU: Python {v['tool_cpu_by_thread_s']['python']:.1f}s, ClickHouse "
                f"{v['tool_cpu_by_thread_s']['clickhouse_query']:.1f}s + background "
                f"{v['tool_cpu_by_thread_s']['clickhouse_background']:.1f}s, other "
                f"{v['tool_cpu_by_thread_s']['other']:.1f}s, PostgreSQL {v['postgres_cpu_s']:.1f}s)"
                for k, v in r["phases"].items()
            )
            ph += f"; PostgreSQL CPU {r['postgres_cpu_s']:.1f}s"
            if "rollup_own_seconds" in r:
                ph += (
                    f"; the rollup's own work (the same rows inserted into the target with it, less "
                    f"without) {r['rollup_own_seconds']:.1f}s"
                )
            print(
                f"  (c) {shape}, concurrency {n}: {r['events']:,} events in {r['seconds']:.1f}s = "
                f"{r['events_per_s']:,.0f} events/s; {r['vs_ceiling']:.2f}x the ceiling's time "
                f"({r['vs_raw_tables']:.2f}x the raw tables'), "
                f"{r['vs_baseline']:.1f}x the baseline; tree peak RSS {r['tree_peak_rss_mb']:.0f} MB; {ph}",
                flush=True,
            )
            shutil.rmtree(engine, ignore_errors=True)
    pg.stop()
    return {"scale": scale, "source_rows": source_rows, "ceiling": a, "baseline": b, "tool": c}


def verdict(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per shape, judged at the concurrency that is fastest at the largest scale, across every scale."""
    out: dict[str, Any] = {}
    for shape in ("plain", "rollup"):
        runs = results[-1]["tool"][shape]
        best_n = max(runs, key=lambda n: runs[n]["events_per_s"])
        best = [r["tool"][shape][best_n] for r in results]
        rss = [x["tree_peak_rss_mb"] for x in best]
        v = {
            "concurrency": int(best_n),
            "events_per_s": best[-1]["events_per_s"],
            "vs_ceiling": best[-1]["vs_ceiling"],
            "vs_raw_tables": best[-1].get("vs_raw_tables"),
            "vs_baseline": best[-1]["vs_baseline"],
            "tree_peak_rss_mb": max(rss),
            "rss_growth_mb": rss[-1] - rss[0],
            "seconds_per_million_rows": [
                round(x["seconds"] / (r["source_rows"] / 1e6), 2) for x, r in zip(best, results)
            ],
        }
        t = TARGETS[shape]
        v["met"] = {
            f"time <= {t['vs_ceiling']}x ceiling": v["vs_ceiling"] <= t["vs_ceiling"],
            f"tree peak RSS <= {t['rss_max_mb']} MB": v["tree_peak_rss_mb"] <= t["rss_max_mb"],
            f"RSS growth <= {t['rss_growth_mb']} MB": v["rss_growth_mb"] <= t["rss_growth_mb"],
        }
        if "events_per_s" in t:
            v["met"][f"events/s >= {t['events_per_s']:,}"] = v["events_per_s"] >= t["events_per_s"]
        out[shape] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="5", help="comma-separated scales (1.0 ≈ 1M source rows)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--concurrency", default="1,2")
    ap.add_argument("--chunk-rows", type=int, default=500_000)
    ap.add_argument("--baseline-rows", type=int, default=300_000, help="ImageReaction rows the baseline processes")
    ap.add_argument("--dir", default="/tmp/metric-backfill-bench", help="datasets are cached here")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.json"))
    ap.add_argument("--from-json", help="re-judge an earlier result file instead of running")
    args = ap.parse_args()
    if args.from_json:
        doc = json.loads(Path(args.from_json).read_text())
        doc["verdict"] = verdict(doc["results"])
        print(json.dumps(doc["verdict"], indent=2))
        Path(args.from_json).write_text(json.dumps(doc, indent=2))
        return
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    scales = [float(x) for x in args.scales.split(",")]
    results = [
        run_scale(
            root, s, args.seed, [int(x) for x in args.concurrency.split(",")], args.baseline_rows, args.chunk_rows
        )
        for s in scales
    ]
    verdicts = verdict(results)
    for shape, v in verdicts.items():
        print(f"\nverdict, {shape} target (concurrency {v['concurrency']}, the fastest at the largest scale):")
        print(
            f"  {v['events_per_s']:,.0f} events/s; {v['vs_ceiling']:.2f}x the ceiling's time; {v['vs_baseline']:.1f}x "
            f"the baseline; tree peak RSS {v['tree_peak_rss_mb']:.0f} MB (growth over scales "
            f"{v['rss_growth_mb']:+.0f} MB); seconds per million source rows by scale: {v['seconds_per_million_rows']}"
        )
        for k, ok in v["met"].items():
            print(f"  {'met ' if ok else 'MISS'}  {k}")
    v = verdicts
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "targets": TARGETS,
                "results": results,
                "verdict": v,
            },
            indent=2,
        )
    )
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
