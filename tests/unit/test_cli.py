"""The command line: exit codes and one-line errors for bad input (nothing reaches a server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from metric_backfill.cli._commands import cli

SPEC = Path(__file__).parents[2] / "metric_backfill" / "catalog" / "lists"
PG = "postgresql://user:hunter2@127.0.0.1:1/db"
CH = "chdb:///tmp/metric-backfill-never-created"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_plan_check_passes_on_the_reference_list() -> None:
    code, out = invoke("plan", "--check", str(SPEC / "metrics-2025-09.txt"))
    assert code == 0 and "all 73 pairs" in out


def test_plan_check_lists_every_missing_pair(tmp_path: Path) -> None:
    f = tmp_path / "pairs.txt"
    f.write_text("# header\nImage.Like\nImage.ReactionLike\nImage.Buzz\n")
    code, out = invoke("plan", "--check", str(f))
    assert code == 1
    assert "missing: Image.ReactionLike" in out and "missing: Image.Buzz" in out and "Image.Like\n" not in out


def test_plan_json_is_the_catalog() -> None:
    code, out = invoke("plan", "--format", "json")
    doc = json.loads(out)
    assert code == 0
    assert len(doc["sources"]) == 24
    assert {"pair": "Image.Collection", "source": "CollectionItem"}.items() <= next(
        p for p in doc["pairs"] if p["pair"] == "Image.Collection"
    ).items()


def test_plan_text_shows_queries_rules_and_pairs() -> None:
    code, out = invoke("plan")
    assert code == 0
    assert 'FROM "ImageReaction" r' in out and "Image.Collection" in out and "bountyEntry.tippedCount" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--cutoff", "2025-10-01"], "malformed cutoff '2025-10-01'"),
        ([], "missing --cutoff"),
        (["--cutoff", "2025-10-01 00:00:00", "--sources", "ImageReactions"], "unknown source 'ImageReactions'"),
        (
            ["--cutoff", "2025-10-01 00:00:00", "--source-cutoff", "ImageReaction=tomorrow"],
            "malformed cutoff of ImageReaction",
        ),
        (["--cutoff", "2025-10-01 00:00:00", "--ch-table", "jobz=a.b"], "unknown ClickHouse source table 'jobz'"),
    ],
)
def test_bad_run_input_exits_2_with_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["run", "--pg", PG, "--clickhouse", CH, *args])
    assert result.exit_code == 2, result.output + result.stderr
    err = result.stderr.strip()
    assert message in err and len(err.splitlines()) == 1
    assert "hunter2" not in result.stderr + result.output
    assert not Path(CH[len("chdb://") :]).exists()


@pytest.mark.parametrize(
    "dsn, message",
    [
        ("clickhouse.example:9000", "unsupported ClickHouse DSN scheme"),
        ("chdb://relative/path", "absolute path"),
        ("http://user:pw@:8123/db", "has no host"),
    ],
)
def test_bad_clickhouse_dsn_exits_2(dsn: str, message: str) -> None:
    result = CliRunner().invoke(cli, ["run", "--pg", PG, "--clickhouse", dsn, "--cutoff", "2025-10-01 00:00:00"])
    assert result.exit_code == 2
    assert message in result.stderr and "pw@" not in result.stderr


def test_bad_pg_url_exits_2() -> None:
    result = CliRunner().invoke(
        cli, ["run", "--pg", "mysql://x", "--clickhouse", CH, "--cutoff", "2025-10-01 00:00:00"]
    )
    assert result.exit_code == 2 and "must start with postgresql://" in result.stderr


def test_env_vars_supply_the_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRIC_BACKFILL_PG_URL", PG)
    monkeypatch.setenv("METRIC_BACKFILL_CLICKHOUSE_URL", "ftp://nope")
    result = CliRunner().invoke(cli, ["run", "--cutoff", "2025-10-01 00:00:00"])
    assert result.exit_code == 2 and "unsupported ClickHouse DSN scheme 'ftp'" in result.stderr
