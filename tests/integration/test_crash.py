"""kill -9 at random moments, Ctrl-C, and resume: a whole `metric-backfill run` process at a time.

The backfill runs as a child process that owns its embedded ClickHouse engine (chDB allows one
engine path per process); the test reads that engine through child.py between runs. Data: the
seeded generator at a small scale, copied into a fresh engine for every run from one template.
The target carries the site's insert-fired summing rollup (demo/sql/clickhouse.sql): a double insert
would show there forever.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from totals import TARGETS, rollup_ddl

from metric_backfill.demo._embedded import EmbeddedPostgres, chdb_dsn
from metric_backfill.engine._target import target_ddl

HERE = Path(__file__).parent
CUTOFF = "2025-10-01 00:00:00"  # the generator's default cutoff
SCALE = "0.03"

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("METRIC_BACKFILL_TEST_CLICKHOUSE_URL")),
    reason="the crash tests drive embedded engines in child processes",
)


def child(*args: str) -> Any:
    out = subprocess.run([sys.executable, str(HERE / "child.py"), *args], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def template(pg_server: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    url = pg_server.create_database(f"crash_{uuid.uuid4().hex[:8]}")
    path = tmp_path_factory.mktemp("crash") / "template"
    child("generate", url, str(path), SCALE, "7")
    return url, path


def engine_for(template: tuple[str, Path], tmp_path: Path, name: str, shape: str) -> Path:
    path = tmp_path / name
    shutil.copytree(template[1], path, symlinks=True)  # chDB links tables relatively into store/
    table = f"default.{TARGETS[shape][0]}"
    child("sql", str(path), target_ddl(shape, table), *rollup_ddl("default", shape))
    return path


def command(pg_url: str, path: Path, shape: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "metric_backfill",
        "run",
        "--pg",
        pg_url,
        "--clickhouse",
        chdb_dsn(path),
        "--cutoff",
        CUTOFF,
        "--table",
        TARGETS[shape][0],
        "--target-shape",
        shape,
        "--chunk-rows",
        "1000",
        "--ch-chunk-rows",
        "1000",
        "--publish-slice-rows",
        "1500",
        "--concurrency",
        "2",
    ]


def picture(path: Path, shape: str) -> dict[str, Any]:
    """What a reader sees: the target's rows as a multiset, and the rollup's totals."""
    table, rollup = TARGETS[shape]
    final = " FINAL" if shape == "month" else ""
    rows = child(
        "sql",
        str(path),
        f"SELECT count(), sum(metricValue), sum(cityHash64(entityType, entityId, userId, metricType, metricValue, "
        f"createdAt)) FROM default.{table}",
    )[0]
    sums = child(
        "sql",
        str(path),
        f"SELECT count(), sum(cityHash64(entityType, entityId, metricType, t)) FROM (SELECT entityType, entityId, "
        f"metricType, sum(total) AS t FROM default.{rollup} GROUP BY ALL HAVING t != 0)",
    )[0]
    table_sums = child(
        "sql",
        str(path),
        f"SELECT count(), sum(cityHash64(entityType, entityId, metricType, t)) FROM (SELECT entityType, "
        f"entityId, metricType, sum(metricValue) AS t FROM default.{table}{final} GROUP BY ALL HAVING t != 0)",
    )[0]
    return {"rows": rows, "rollup": sums, "table_totals": table_sums}


@pytest.mark.parametrize("shape", ["events", "month"])
def test_killed_five_times_then_resumed_equals_a_clean_run(
    template: tuple[str, Path], tmp_path: Path, shape: str
) -> None:
    pg_url = template[0]
    clean = engine_for(template, tmp_path, "clean", shape)
    done = subprocess.run(command(pg_url, clean, shape), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    want = picture(clean, shape)
    assert want["rows"][0] > 10_000
    assert want["rollup"] == want["table_totals"]

    path = engine_for(template, tmp_path, "crashed", shape)
    rng = random.Random(20261125 + len(shape))
    kills = 0
    phases = []
    for _ in range(12):
        proc = subprocess.Popen(command(pg_url, path, shape), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Kill after a random number of new parts anywhere in the engine: staging chunks, scratch,
        # target and rollup parts alike (a wall-clock delay would miss a fast machine's whole run).
        if not kill_after_parts(proc, path, rng.randint(1, 12)):
            _, err = proc.communicate()
            assert proc.returncode == 0, f"after kills during {phases}: {err[-3000:]}"
            break
        kills += 1
        exists = child(
            "sql", str(path), "SELECT count() FROM system.tables WHERE database = 'metric_backfill' AND name = 'runs'"
        )[0][0]
        status = (
            child("sql", str(path), "SELECT status FROM metric_backfill.runs FINAL ORDER BY created_at DESC LIMIT 1")
            if exists
            else []
        )
        phases.append(status[0][0] if status else "before the first write")
        if kills == 5:
            break
    assert kills == 5, f"the run finished before it could be killed five times ({phases})"
    resumed = subprocess.run(command(pg_url, path, shape), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert picture(path, shape) == want, f"killed during {phases}"

    again = subprocess.run(command(pg_url, path, shape), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "already published" in again.stderr
    run_id = child("sql", str(path), "SELECT run_id FROM metric_backfill.runs FINAL WHERE status = 'published'")[0][0]
    republish = subprocess.run(
        [sys.executable, "-m", "metric_backfill", "publish", run_id, "--clickhouse", chdb_dsn(path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert republish.returncode == 0 and "published 0 rows now" in republish.stdout
    assert picture(path, shape) == want


def test_ctrl_c_cancels_and_leaves_the_run_resumable(template: tuple[str, Path], tmp_path: Path) -> None:
    pg_url = template[0]
    clean = engine_for(template, tmp_path, "clean", "events")
    assert subprocess.run(command(pg_url, clean, "events"), capture_output=True, timeout=600).returncode == 0
    want = picture(clean, "events")

    path = engine_for(template, tmp_path, "interrupted", "events")
    proc = subprocess.Popen(
        command(pg_url, path, "events"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A background shell (nohup, `&`) starts its children with SIGINT ignored; a terminal does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # Interrupt while chunks are being staged: right after the plan is announced.
    assert proc.stderr is not None
    first = ""
    while " planned " not in first:  # the log's phase lines come first, timestamped
        line = proc.stderr.readline()
        assert line, first
        first += line
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    err = first + rest
    assert proc.returncode == 130, err[-2000:]
    assert "run the same command again to resume" in err
    status = child("sql", str(path), "SELECT status FROM metric_backfill.runs FINAL")
    assert status and status[0][0] in ("staging", "planned")
    resumed = subprocess.run(command(pg_url, path, "events"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert picture(path, "events") == want


# -- SIGKILL of the process holding the engine, the moment a part lands; disk full ----------------


def parts_in(path: Path) -> int:
    """Part directories of every table of an embedded engine (store/xxx/<uuid>/<part>)."""
    n = 0
    store = path / "store"
    for prefix in os.listdir(store) if store.exists() else ():
        for table in os.listdir(store / prefix):
            with os.scandir(store / prefix / table) as it:
                n += sum(1 for e in it if e.is_dir() and not e.name.startswith(("tmp", "detached", "delete_tmp")))
    return n


def kill_after_parts(proc: subprocess.Popen[str], path: Path, k: int, timeout: float = 300) -> bool:
    start = parts_in(path)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if parts_in(path) - start >= k:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
        except FileNotFoundError:  # a folder went away while it was listed
            pass
        time.sleep(0.001)
    proc.wait()
    return False


def data_path(path: Path, table: str) -> Path:
    db, name = table.split(".")
    paths = child("sql", str(path), f"SELECT data_paths FROM system.tables WHERE database = '{db}' AND name = '{name}'")
    return Path(paths[0][0][0])


def kill_when_a_part_lands(proc: subprocess.Popen[str], watched: list[Path], timeout: float = 300) -> bool:
    """SIGKILL `proc` as soon as a new part directory appears in one of the `watched` table folders."""
    before = {d: set(os.listdir(d)) for d in watched}
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        for d in watched:
            for name in os.listdir(d):
                if (
                    name not in before[d]
                    and not name.startswith(("tmp", "detached", "delete_tmp"))
                    and os.path.isdir(os.path.join(d, name))
                ):
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return True
        time.sleep(0.0002)
    return False


@pytest.fixture(scope="module")
def clean_pictures(template: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = {}
    for shape in ("events", "month"):
        path = engine_for(template, tmp_path_factory.mktemp("clean"), "clean", shape)
        done = subprocess.run(command(template[0], path, shape), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        out[shape] = picture(path, shape)
        assert out[shape]["rollup"] == out[shape]["table_totals"]
    return out


@pytest.mark.parametrize("shape", ["events", "month"])
@pytest.mark.parametrize("watch", ["target", "rollup"])
def test_sigkill_of_the_engine_process_as_a_part_lands_then_the_same_command_ends_exact(
    template: tuple[str, Path], clean_pictures: dict[str, dict[str, Any]], tmp_path: Path, shape: str, watch: str
) -> None:
    pg_url = template[0]
    path = engine_for(template, tmp_path, "killed", shape)
    staged = subprocess.run(
        [*command(pg_url, path, shape), "--stage-only"], capture_output=True, text=True, timeout=600
    )
    assert staged.returncode == 0, staged.stderr[-2000:]
    table, rollup = TARGETS[shape]
    folder = data_path(path, f"default.{table if watch == 'target' else rollup}")
    proc = subprocess.Popen(command(pg_url, path, shape), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert kill_when_a_part_lands(proc, [folder]), "the publish finished before a part landed"
    half = picture(path, shape)
    assert half != clean_pictures[shape]  # the kill left a real half state
    resumed = subprocess.run(command(pg_url, path, shape), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert picture(path, shape) == clean_pictures[shape]


def test_sigkill_of_a_whole_run_at_its_first_target_part_then_the_same_command_ends_exact(
    template: tuple[str, Path], clean_pictures: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The first round's worst case: a kill at the first part of the publish, with the default options."""
    pg_url = template[0]
    path = engine_for(template, tmp_path, "killed", "events")
    args = [
        sys.executable,
        "-m",
        "metric_backfill",
        "run",
        "--pg",
        pg_url,
        "--clickhouse",
        chdb_dsn(path),
        "--cutoff",
        CUTOFF,
        "--table",
        "entityMetricEvents",
        "--chunk-rows",
        "1000",
        "--ch-chunk-rows",
        "1000",
        "--publish-slice-rows",
        "1500",
    ]
    folder = data_path(path, "default.entityMetricEvents")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert kill_when_a_part_lands(proc, [folder])
    for _ in range(2):  # the same command, twice: the second one has nothing left to do
        resumed = subprocess.run(args, capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert picture(path, "events") == clean_pictures["events"]


@pytest.fixture()
def small_disk(tmp_path: Path) -> Any:
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode(errors='replace').strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.parametrize("left_kb", [64, 512, 2048])
def test_disk_full_during_a_publish_stops_with_the_cause_and_the_same_command_ends_exact(
    template: tuple[str, Path], clean_pictures: dict[str, dict[str, Any]], small_disk: Path, left_kb: int
) -> None:
    pg_url = template[0]
    path = engine_for(template, small_disk, "full", "events")
    staged = subprocess.run(
        [*command(pg_url, path, "events"), "--stage-only"], capture_output=True, text=True, timeout=600
    )
    assert staged.returncode == 0, staged.stderr[-2000:]
    free = shutil.disk_usage(small_disk).free
    filler = small_disk / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - left_kb * 1024))
    full = subprocess.run(command(pg_url, path, "events"), capture_output=True, text=True, timeout=600)
    err = full.stderr.strip()
    if full.returncode == 0:
        pytest.skip(f"the publish fitted in {left_kb} KB")  # nothing to recover from
    assert full.returncode == 3, err[-2000:]
    assert "Traceback" not in err and "disk space" in err.splitlines()[-1], err[-2000:]
    filler.unlink()
    resumed = subprocess.run(command(pg_url, path, "events"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert picture(path, "events") == clean_pictures["events"]
