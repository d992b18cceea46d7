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


# -- refusals: one line naming the problem and the fix, exit 2, before any work -----------------


def one_line(result: object) -> str:
    err = result.stderr.strip()  # type: ignore[attr-defined]
    assert len(err.splitlines()) == 1, err
    return err


def test_a_chdb_path_that_does_not_exist_is_refused_unless_told_to_create_it(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    result = CliRunner().invoke(
        cli, ["run", "--pg", PG, "--clickhouse", f"chdb://{missing}", "--cutoff", "2025-10-01 00:00:00"]
    )
    assert result.exit_code == 2
    assert "no embedded ClickHouse at" in one_line(result) and "--create-chdb" in result.stderr
    assert not missing.exists()
    for command in (["status"], ["publish", "r1"], ["prune", "--dry-run"]):
        result = CliRunner().invoke(cli, [*command, "--clickhouse", f"chdb://{missing}"])
        assert result.exit_code == 2 and "no embedded ClickHouse at" in one_line(result), command
    assert not missing.exists()


def test_a_folder_that_is_not_an_embedded_engine_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    result = CliRunner().invoke(
        cli,
        ["run", "--pg", PG, "--clickhouse", f"chdb://{tmp_path}", "--cutoff", "2025-10-01 00:00:00", "--create-chdb"],
    )
    assert result.exit_code == 2 and "holds no embedded ClickHouse" in one_line(result)


def test_the_native_port_is_recognised_and_the_http_port_suggested() -> None:
    result = CliRunner().invoke(cli, ["status", "--clickhouse", "http://default:s3cret@ch.example:9000/default"])
    assert result.exit_code == 2
    line = one_line(result)
    assert "native TCP protocol" in line and "use port 8123" in line and "s3cret" not in result.stderr


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--chunk-rows", "0", "0 is not in the range x>=1"),
        ("--concurrency", "0", "0 is not in the range 1<=x<=64"),
        ("--ch-chunk-rows", "-5", "is not in the range x>=1"),
        ("--publish-slice-rows", "0", "is not in the range x>=1"),
        ("--backfill-version", "300", "is not in the range 0<=x<=255"),
        ("--wait-timeout", "-1", "is not in the range x>=0"),
        ("--chunk-rows", "many", "'many' is not a valid integer"),
    ],
)
def test_numeric_options_are_range_checked_in_one_line(option: str, value: str, message: str) -> None:
    result = CliRunner().invoke(
        cli, ["run", "--pg", PG, "--clickhouse", CH, "--cutoff", "2025-10-01 00:00:00", option, value]
    )
    assert result.exit_code == 2
    line = one_line(result)
    assert message in line and option in line and "--help" in line


def test_output_paths_are_checked_before_any_work(tmp_path: Path) -> None:
    nowhere = tmp_path / "missing" / "out.json"
    for command, option in (
        (["run", "--pg", PG, "--clickhouse", CH, "--cutoff", "2025-10-01 00:00:00"], "--json"),
        (["run", "--pg", PG, "--clickhouse", CH, "--cutoff", "2025-10-01 00:00:00"], "--log-file"),
        (["verify", "--pg", PG, "--clickhouse", CH, "--cutoff", "2025-10-01 00:00:00"], "--json"),
        (["status", "--clickhouse", CH], "--json"),
    ):
        result = CliRunner().invoke(cli, [*command, option, str(nowhere)])
        assert result.exit_code == 2, (command, option, result.stderr)
        line = one_line(result)
        assert option in line and "does not exist" in line and "create it or choose another path" in line
    result = CliRunner().invoke(
        cli,
        ["verify", "--pg", PG, "--clickhouse", CH, "--cutoff", "2025-10-01 00:00:00", "--against", "processors"]
        + ["--html", str(tmp_path)],
    )
    assert result.exit_code == 2 and "is a directory" in one_line(result)


def test_cutoffs_with_offsets_are_converted_to_utc_everywhere() -> None:
    from metric_backfill.cli._commands import build_config

    cfg = build_config(
        PG,
        CH,
        "2025-10-01T02:00:00+02:00",
        source_cutoff=("ImageReaction=2025-09-30 20:00:00-04:00",),
        create_chdb=True,
        only="",
        sources="",
    )
    assert str(cfg.cutoff) == "2025-10-01 00:00:00"
    assert str(cfg.source_cutoffs["ImageReaction"]) == "2025-10-01 00:00:00"
    assert (
        cfg.fingerprint()
        == build_config(
            PG,
            CH,
            "2025-10-01 00:00:00Z",
            source_cutoff=("ImageReaction=2025-10-01T00:00:00.000+00:00",),
            create_chdb=True,
            only="",
            sources="",
        ).fingerprint()
    )


# -- the configuration file ------------------------------------------------------------------


def test_the_config_file_supplies_options_and_flags_override_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "metric-backfill.toml"
    cfg.write_text(
        f'pg = "{PG}"\nclickhouse = "{CH}"\ncutoff = "2025-10-01 00:00:00"\n'
        '[run]\nsources = "ImageReactions"\nchunk-rows = 1000\n'
    )
    monkeypatch.chdir(tmp_path)  # the default file is the working directory's
    result = CliRunner().invoke(cli, ["run"])
    assert result.exit_code == 2 and "unknown source 'ImageReactions'" in one_line(result)
    result = CliRunner().invoke(cli, ["run", "--sources", "ImageReaction", "--chunk-rows", "0"])
    assert result.exit_code == 2 and "--chunk-rows" in one_line(result)  # the flag, not the file's 1000
    result = CliRunner().invoke(cli, ["run", "--sources", "ImageReaction"])
    assert result.exit_code == 2 and "no embedded ClickHouse" in one_line(result)  # the file's URLs were used
    assert "hunter2" not in result.stderr + result.output


def test_config_file_errors_name_the_file_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cases = {
        "chunk_rowz = 5\n": "unknown key 'chunk_rowz' at the top level (did you mean chunk_rows?)",
        "[run]\nlive_lag = 5\n": "unknown key 'live_lag' in [run]",
        'cutoff = "2025-10-01 00:00:00"\nthis is not toml\n': "is not valid TOML",
        'pg = "postgresql://u:${NO_SUCH_SECRET_VAR}@h/db"\n': "the environment variable NO_SUCH_SECRET_VAR is not set",
        "[run]\nsource_cutoff = 5\n": "source_cutoff takes a table",
    }
    for text, message in cases.items():
        cfg.write_text(text)
        result = CliRunner().invoke(cli, ["--config", str(cfg), "run"])
        assert result.exit_code == 2, (text, result.stderr)
        line = one_line(result)
        assert message in line and str(cfg) in line, line
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "absent.toml"), "status"])
    assert result.exit_code == 2 and "does not exist" in one_line(result)


def test_secrets_come_from_the_environment_or_a_secrets_file_and_are_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metric_backfill.cli._config_file import load_default_map

    monkeypatch.setenv("MB_TEST_PG_PASSWORD", "s3cr3t-from-env")
    (tmp_path / "secrets.toml").write_text('clickhouse = "http://default:s3cr3t-from-file@ch.example:8123/default"\n')
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'pg = "postgresql://backfill:${MB_TEST_PG_PASSWORD}@db.example/site"\nsecrets_file = "secrets.toml"\n'
        'cutoff = "2025-10-01 00:00:00"\n[run]\nsource_cutoff = { ImageReaction = "2025-09-01 00:00:00" }\n'
    )
    values = load_default_map(cfg, cli, "run")["run"]
    assert values["pg_url"] == "postgresql://backfill:s3cr3t-from-env@db.example/site"
    assert values["ch_url"].endswith("s3cr3t-from-file@ch.example:8123/default")
    assert values["source_cutoff"] == ("ImageReaction=2025-09-01 00:00:00",)
    # A run that fails at once: the message shows neither secret.
    result = CliRunner().invoke(cli, ["--config", str(cfg), "run", "--sources", "Nope"])
    assert result.exit_code == 2
    assert "s3cr3t" not in result.stderr + result.output


def test_every_command_takes_the_logging_options() -> None:
    for name, command in cli.commands.items():
        if name == "plan":
            continue
        opts = {o for p in command.params for o in p.opts}
        assert {"-v", "-q", "--log-format", "--log-file"} <= opts, name


def test_the_readme_configuration_example_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from metric_backfill.cli._config_file import load_default_map

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "metric-backfill.toml").write_text(example)
    (tmp_path / "metric-backfill.secrets.toml").write_text("")
    monkeypatch.setenv("CLICKHOUSE_PASSWORD", "pw-from-env")
    run = load_default_map(tmp_path / "metric-backfill.toml", cli, "run")["run"]
    assert run["concurrency"] == 2 and run["ch_url"].startswith("https://backfill:pw-from-env@")
    assert run["source_cutoff"] == ("ImageReaction=2025-09-15 00:00:00",)
    verify = load_default_map(tmp_path / "metric-backfill.toml", cli, "verify")["verify"]
    assert verify["live_lag"] == 7200 and "concurrency" not in verify
