"""Operating a long run as an engineer would: the log off a terminal, `status` from a second
process while the run holds its embedded engine, a stop by SIGTERM or kill -9 shown as
interrupted, `prune`, and `check`. Every command runs as a process of its own, as in production."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_crash import child, command, engine_for, picture, template  # noqa: F401 - the fixture

from metric_backfill.demo._embedded import EmbeddedPostgres, chdb_dsn

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
CHUNK_LINE = re.compile(
    rf"^{TS} INFO +staged (\w+) chunk (\d+)(?: \(\w+\))? \((\d+)/(\d+)\): ([\d,]+) rows read, ([\d,]+) events in [\d.]+ s$"
)


def mb(*args: str) -> list[str]:
    return [sys.executable, "-m", "metric_backfill", *args]


def slow(cmd: list[str]) -> list[str]:
    """The same run in many small chunks on one worker: long enough to be watched."""
    cmd = list(cmd)
    for option, value in (("--chunk-rows", "150"), ("--concurrency", "1")):
        cmd[cmd.index(option) + 1] = value
    return cmd


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def status(path: Path, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    t0 = time.monotonic()
    done = subprocess.run(
        mb("status", *args, "--clickhouse", chdb_dsn(path)), capture_output=True, text=True, timeout=timeout
    )
    assert time.monotonic() - t0 < timeout, "status must never wait for the running process"
    return done


def start(cmd: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_chunks(proc: subprocess.Popen[str], n: int) -> list[str]:
    """stderr lines up to the n-th staged chunk (off a terminal every chunk is a log line)."""
    assert proc.stderr is not None
    seen: list[str] = []
    while sum(1 for line in seen if CHUNK_LINE.match(line)) < n:
        line = proc.stderr.readline()
        assert line, "the run ended before it staged enough chunks:\n" + "".join(seen[-20:])
        seen.append(line.rstrip("\n"))
    return seen


def test_off_a_terminal_every_phase_and_chunk_is_a_timestamped_line(template: tuple[str, Path], tmp_path: Path) -> None:
    pg_url = template[0]
    path = engine_for(template, tmp_path, "logged", "events")
    stderr, logfile, result = tmp_path / "stderr.log", tmp_path / "run.log", tmp_path / "result.json"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with stderr.open("w") as f:
        done = subprocess.run(
            command(pg_url, path, "events") + ["--log-file", str(logfile), "--json", str(result)],
            stdout=subprocess.PIPE,
            stderr=f,
            text=True,
            timeout=600,
            env={**os.environ, "TMPDIR": str(tmp)},
        )
    assert done.returncode == 0, stderr.read_text()[-2000:]
    assert list(tmp.iterdir()) == []  # no temporary folder outlives the process
    lines = [line for line in stderr.read_text().splitlines() if line]
    assert all(re.match(rf"^{TS} (INFO|WARNING) ", line) for line in lines), lines[:5]
    chunks = [m for m in map(CHUNK_LINE.match, lines) if m]
    staged = child(
        "sql",
        str(path),
        "SELECT source, chunk_id, rows_read, events FROM metric_backfill.chunks FINAL "
        "WHERE status = 'done' AND source != 'net' ORDER BY chunk_id",
    )
    assert len(staged) > 20
    assert sorted((m[1], int(m[2]), _int(m[5]), _int(m[6])) for m in chunks) == sorted(
        (s, int(c), int(r), int(e)) for s, c, r, e in staged
    )
    summary = json.loads(result.read_text())
    assert sum(_int(m[6]) for m in chunks) == sum(p["events"] for p in summary["pairs"].values())
    text = "\n".join(lines)
    for phase in ("planned ", "staged ", "publishing ", "published "):
        assert re.search(rf"^{TS} INFO +(run \S+: )?{phase}", text, re.M), phase
    slices = [line for line in lines if re.search(r"INFO +(published|empty) slice ", line)]
    assert slices and all(re.search(r"\(\d+/\d+\): [\d,]+ rows", line) for line in slices)
    # The log file: the same records, timestamped, whatever stderr is.
    file_lines = logfile.read_text().splitlines()
    assert len([line for line in file_lines if CHUNK_LINE.match(line)]) == len(chunks)


def test_json_log_lines_carry_the_numbers_as_fields(template: tuple[str, Path], tmp_path: Path) -> None:
    pg_url = template[0]
    path = engine_for(template, tmp_path, "json", "events")
    done = subprocess.run(
        command(pg_url, path, "events") + ["--log-format", "json", "--json", "-"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert records and all({"ts", "level", "logger", "message"} <= r.keys() for r in records)
    chunks = [r for r in records if r.get("event") == "chunk_staged"]
    assert chunks and all({"source", "chunk", "rows", "events", "seconds", "run_id"} <= r.keys() for r in chunks)
    summary = json.loads(done.stdout)  # --json - : stdout is the summary alone
    assert sum(r["events"] for r in chunks) == sum(p["events"] for p in summary["pairs"].values())
    assert not [line for line in done.stderr.splitlines() if line and not line.startswith("{")]


def test_status_from_a_second_process_while_the_run_holds_the_embedded_engine(
    template: tuple[str, Path], tmp_path: Path
) -> None:
    pg_url = template[0]
    path = engine_for(template, tmp_path, "watched", "events")
    proc = start(slow(command(pg_url, path, "events")))
    try:
        wait_for_chunks(proc, 3)
        seen = status(path)
        assert seen.returncode == 0, seen.stderr
        assert "from the running process's progress file" in seen.stdout and "staging" in seen.stdout
        doc = json.loads(status(path, "--json", "-").stdout)
        assert len(doc) == 1 and doc[0]["running"] and doc[0]["phase"] == "staging"
        run_id = doc[0]["run_id"]
        one = status(path, run_id, "--json", "-")
        assert one.returncode == 0, one.stderr
        live = json.loads(one.stdout)
        assert live["live"] == "progress file" and live["pid"] == proc.pid
        sources = {s["source"]: s for s in live["sources"]}
        assert sum(s["done"] for s in sources.values()) >= 3
        assert sum(s["done"] for s in sources.values()) < sum(s["total"] for s in sources.values())
        assert any(s["eta"] for s in sources.values() if s["done"] < s["total"])
        table = status(path, run_id)
        assert table.returncode == 0 and "chunks done/total" in table.stdout and f"process {proc.pid}" in table.stdout
        other = status(path, "some-other-run")
        assert other.returncode == 3 and f"runs {run_id}" in other.stderr
    finally:
        out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    after = json.loads(status(path, "--json", "-").stdout)
    assert [(r["run_id"], r["status"], r["running"]) for r in after] == [(run_id, "published", False)]
    assert after[0]["events"] > 0 and after[0]["pairs"] > 20 and after[0]["target"] == "default.entityMetricEvents"
    assert not (path / "metric-backfill-progress.json").exists()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_stopped_run_is_shown_as_interrupted_and_resumes_exactly(
    template: tuple[str, Path], tmp_path: Path, how: str
) -> None:
    pg_url = template[0]
    clean = engine_for(template, tmp_path, "clean", "events")
    assert subprocess.run(slow(command(pg_url, clean, "events")), capture_output=True, timeout=600).returncode == 0
    want = picture(clean, "events")

    path = engine_for(template, tmp_path, "stopped", "events")
    proc = start(slow(command(pg_url, path, "events")))
    wait_for_chunks(proc, 4)
    proc.send_signal(getattr(signal, how))
    _, rest = proc.communicate(timeout=120)
    if how == "SIGTERM":
        assert proc.returncode == 143, rest[-2000:]
        tail = [line for line in rest.splitlines() if line.strip()]
        assert tail[-1] == "terminated; run the same command again to resume", tail[-5:]
        assert "Traceback" not in rest and "retrying" not in rest
    else:
        assert proc.returncode == -signal.SIGKILL
    runs = json.loads(status(path, "--json", "-").stdout)
    assert [(r["status"], r["running"]) for r in runs] == [("interrupted", False)], runs
    one = status(path, runs[0]["run_id"])
    assert one.returncode == 0 and "interrupted" in one.stdout and "run the same command again" in one.stdout
    assert json.loads(status(path, runs[0]["run_id"], "--json", "-").stdout)["sources"][0]["eta"] is None

    resumed = subprocess.run(slow(command(pg_url, path, "events")), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert picture(path, "events") == want
    assert [r["status"] for r in json.loads(status(path, "--json", "-").stdout)] == ["published"]


def _staged_runs(path: Path) -> dict[str, int]:
    rows = child(
        "sql",
        str(path),
        "SELECT partition, sum(rows) FROM system.parts WHERE database = 'metric_backfill' AND table = 'staging' "
        "AND active GROUP BY partition",
    )
    return {str(p): int(n) for p, n in rows}


def test_prune_removes_what_no_run_needs_and_keeps_what_replace_needs(
    template: tuple[str, Path], tmp_path: Path
) -> None:
    pg_url = template[0]
    path = engine_for(template, tmp_path, "pruned", "events")
    base = command(pg_url, path, "events")
    assert subprocess.run(base, capture_output=True, timeout=600).returncode == 0
    want = picture(path, "events")
    later = list(base)
    later[later.index("--cutoff") + 1] = "2026-01-01 00:00:00"  # a new cutoff: a new run over the same pairs
    overlap = subprocess.run([*later, "--sources", "ArticleReaction"], capture_output=True, text=True, timeout=600)
    assert overlap.returncode == 2, overlap.stderr[-2000:]
    lines = overlap.stderr.splitlines()
    error = next(i for i, line in enumerate(lines) if line.startswith("error: "))
    assert re.fullmatch(
        r"error: the target already holds \d+ pairs \([\d,]+ rows in default\.entityMetricEvents\) that this run "
        r"would double; nothing was written\. Choose --on-overlap skip .*",
        lines[error],
    )
    assert lines[error + 1].split() == ["pair", "table", "rows", "whose"]
    assert lines[error + 2].split()[:2] == ["Article.Cry", "default.entityMetricEvents"]
    assert lines[-1].strip().startswith("User.reactionCount") and len(lines) == error + 2 + 6  # and nothing after
    # Two stage-only runs of one source into a table of their own: the older one is superseded.
    staged_only = [*base, "--sources", "ArticleReaction", "--stage-only", "--table", "staged_aside"]
    for rid in ("older", "newer"):
        done = subprocess.run([*staged_only, "--run-id", rid], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    published = next(r for r in _staged_runs(path) if r not in ("older", "newer"))
    stale = Path(tempfile.gettempdir()) / "metric-backfill-999999999-test"
    stale.mkdir(exist_ok=True)

    def prune(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            mb("prune", *args, "--clickhouse", chdb_dsn(path)), capture_output=True, text=True, timeout=120
        )

    refused = prune()
    assert refused.returncode == 2 and "--dry-run" in refused.stderr  # off a terminal it must be told
    listed = prune("--dry-run", "--json", "-")
    assert listed.returncode == 0, listed.stderr
    items = {(i["kind"], i["name"]): i for i in json.loads(listed.stdout)["items"]}
    assert items[("staging", "older")]["action"] == "remove" and "superseded" in items[("staging", "older")]["reason"]
    assert items[("staging", "newer")]["action"] == "keep"
    assert items[("staging", published)]["action"] == "keep" and "replace" in items[("staging", published)]["reason"]
    assert items[("temporary folder", str(stale))]["action"] == "remove"
    assert set(_staged_runs(path)) == {"older", "newer", published} and stale.exists()  # a dry run removes nothing

    assert prune("--yes").returncode == 0
    assert set(_staged_runs(path)) == {"newer", published} and not stale.exists()

    assert prune("newer", "--yes").returncode == 0  # naming an unfinished run abandons it
    runs = {r["run_id"]: r["status"] for r in json.loads(status(path, "--json", "-").stdout)}
    assert runs["newer"] == "abandoned" and runs["older"] == "abandoned"
    again = subprocess.run(staged_only, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "run newer" not in again.stdout  # a new run, not the abandoned one resumed without its rows

    assert prune("--include-published", "--yes").returncode == 0
    assert published not in _staged_runs(path)
    same = subprocess.run(base, capture_output=True, text=True, timeout=600)
    assert same.returncode == 0 and "already published" in same.stderr
    replace = subprocess.run(
        [*base, "--on-overlap", "replace", "--backfill-version", "7"], capture_output=True, text=True, timeout=600
    )
    assert replace.returncode == 2 and "its staging was pruned" in replace.stderr, replace.stderr[-2000:]
    assert picture(path, "events") == want  # nothing was written


def test_check_reports_both_sides_and_writes_nothing(
    template: tuple[str, Path], tmp_path: Path, pg_server: EmbeddedPostgres
) -> None:
    pg_url = template[0]
    path = engine_for(template, tmp_path, "checked", "events")
    args = ["--clickhouse", chdb_dsn(path), "--cutoff", "2025-10-01 00:00:00", "--table", "entityMetricEvents"]
    done = subprocess.run(mb("check", "--pg", pg_url, *args), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ready" in done.stdout and "PostgreSQL 16" in done.stdout and "embedded chDB" in done.stdout
    doc = json.loads(
        subprocess.run(mb("check", "--pg", pg_url, *args, "--json", "-"), capture_output=True, text=True).stdout
    )
    found = {(f["area"], f["item"]): f for f in doc["findings"]}
    assert doc["problems"] == 0
    assert found[("PostgreSQL", "role")]["level"] == "warning"  # the test server's role is a superuser
    assert (
        found[("sources", "ImageReaction")]["level"] == "ok"
        and "chunks" in found[("sources", "ImageReaction")]["detail"]
    )
    assert any(a == "target" and i.startswith("view ") for a, i in found)  # the rollup on the target
    assert found[("state", "metric_backfill")]["detail"].startswith("no state yet")
    assert not child("sql", str(path), "SELECT name FROM system.databases WHERE name = 'metric_backfill'")

    empty = pg_server.create_database("check_empty")
    bad = subprocess.run(mb("check", "--pg", empty, *args), capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "PROBLEM" in bad.stdout and "would not succeed" in bad.stdout
    assert os.path.isdir(path)


def test_the_embedded_engine_loads_without_pyarrow_and_leaves_it_importable(tmp_path: Path) -> None:
    """chDB imports pyarrow and numpy when they are installed (about 45 MB resident) for result
    formats the tool never uses; the engine is opened without them, and a later import still works."""
    code = (
        "import sys\n"
        "from metric_backfill.backends._clickhouse import ClickHouse\n"
        f"with ClickHouse({chdb_dsn(tmp_path / 'ch')!r}) as ch:\n"
        "    assert ch.query('SELECT 1') == [(1,)]\n"
        "    loaded = sorted(m for m in ('pyarrow', 'numpy', 'pandas') if m in sys.modules)\n"
        "import pyarrow\n"
        "print(loaded, pyarrow.__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] pyarrow"


def test_chunks_staged_at_once_share_one_spool_folder_and_leave_none(
    ch_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parallel chunks ask for the named pipes' folder at the same moment; a folder made by a
    racing thread would outlive the process (mkdtemp is slowed here to widen the window)."""
    import tempfile
    import threading

    from metric_backfill.backends import _clickhouse

    spool_root = tmp_path / "tmp"
    spool_root.mkdir()
    real_mkdtemp = tempfile.mkdtemp

    def slow_mkdtemp(*args: object, **kwargs: object) -> str:
        time.sleep(0.05)
        return real_mkdtemp(*args, dir=str(spool_root), **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_clickhouse.tempfile, "mkdtemp", slow_mkdtemp)
    ch = _clickhouse.ClickHouse(ch_dsn)  # the session's engine: one embedded engine per process
    start = threading.Barrier(8)
    seen: list[str] = []

    def ask() -> None:
        start.wait()
        seen.append(ch.spool_dir)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1 and len(seen) == 8
    ch.close()
    assert list(spool_root.iterdir()) == []
