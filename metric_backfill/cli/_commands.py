"""Command line: `metric-backfill plan | check | run | publish | status | verify | reconcile | prune |
demo`. Thin: parses, calls the library, renders. Exit codes: 0 ok, 1 differences found (verify),
2 usage/config, 3 runtime, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

from metric_backfill.catalog import BUZZTIP_ENTITY_TYPES, Pair  # noqa: E402
from metric_backfill._config import CH_TABLES, RunConfig, parse_cutoff, parse_date  # noqa: E402
from metric_backfill.catalog._describe import describe_catalog, missing_pairs, read_pair_list  # noqa: E402
from metric_backfill._errors import BackfillError, Cancelled, ConfigError  # noqa: E402

F = TypeVar("F", bound=Callable[..., Any])

# Off a terminal (CI logs, pipes) tables get room instead of rich's 80-column default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


def _fail(exc: BackfillError) -> None:
    # soft_wrap: a long line stays one line in a log file; a refusal's table follows its line.
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, markup=True, highlight=False)
    sys.exit(exc.exit_code)


class Terminated(KeyboardInterrupt):
    """SIGTERM (CI cancelling a job, `kill`): stopped like Ctrl-C — in-flight reads cancelled, state
    left resumable — instead of dying mid-statement."""


def _on_sigterm(signum: int, frame: Any) -> None:
    _output["terminated"] = True
    raise Terminated()


def check_output_path(path: str | None, option: str) -> None:
    """An output file the command will write at the end: refused now, before any work, if it cannot be."""
    if not path or path == "-":
        return
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ConfigError(f"{option} {path} is a directory: give a file name")
    if not os.path.isdir(parent):
        raise ConfigError(f"{option} {path}: the folder {parent} does not exist; create it or choose another path")
    if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ConfigError(f"{option} {path} is not writable: choose another path")


def _output_options(fn: F) -> F:
    """Logging options every command takes (also from the configuration file)."""
    for opt in reversed(
        [
            click.option("-v", "--verbose", count=True, help="More detail: -v every chunk on a terminal, -vv debug."),
            click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr."),
            click.option(
                "--log-format",
                type=click.Choice(["text", "json"]),
                default="text",
                show_default=True,
                envvar="METRIC_BACKFILL_LOG_FORMAT",
                help="Log records on stderr (and in --log-file) as timestamped text or one JSON object per line.",
            ),
            click.option(
                "--log-file",
                type=click.Path(dir_okay=False),
                envvar="METRIC_BACKFILL_LOG_FILE",
                help="Also write every log record (phases, chunks, slices) to this file.",
            ),
        ]
    ):
        fn = opt(fn)
    return fn


def _guard(fn: F) -> F:
    """Every command: logging set up as asked, errors rendered as one line with the exit code of
    their kind, Ctrl-C and SIGTERM as a clean stop. Nothing is printed after the final error."""
    import functools

    @functools.wraps(fn)
    def wrapper(*a: Any, **kw: Any) -> Any:
        from metric_backfill.cli._logging import configure_logging

        verbose, quiet = kw.pop("verbose", 0), kw.pop("quiet", False)
        log_format, log_file = kw.pop("log_format", "text"), kw.pop("log_file", None)
        previous = signal.getsignal(signal.SIGTERM)
        try:
            check_output_path(log_file, "--log-file")
            configure_logging(err_console, verbose=verbose, quiet=quiet, log_format=log_format, log_file=log_file)
            _output["bars"] = _bars(log_format, quiet)
            _output["log_format"] = log_format
            signal.signal(signal.SIGTERM, _on_sigterm)
            return fn(*a, **kw)
        except BackfillError as exc:
            if _output.get("terminated") and isinstance(exc, Cancelled):
                err_console.print("[yellow]terminated; run the same command again to resume")
                sys.exit(143)
            _fail(exc)
        except Terminated:
            err_console.print("[yellow]terminated; run the same command again to resume")
            sys.exit(143)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted; run the same command again to resume")
            sys.exit(130)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return _output_options(wrapper)  # type: ignore[return-value]


_output: dict[str, Any] = {"bars": False}


def _bars(log_format: str, quiet: bool) -> bool:
    from metric_backfill.cli._logging import uses_bars

    return uses_bars(err_console, log_format, quiet)


def _human(json_file: str | None) -> Console:
    """Where tables for people go: stdout, or stderr when stdout carries the JSON — and nowhere
    when stderr carries JSON log lines too (a program reads both)."""
    if json_file != "-":
        return console
    if _output.get("log_format") == "json":
        import io

        return Console(file=io.StringIO())
    return err_console


def _reporter() -> Any:
    """Progress bars for a person at a terminal; None (the log only) everywhere else."""
    from metric_backfill.cli._render import ConsoleReporter

    return ConsoleReporter(err_console) if _output["bars"] else None


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in (value or "").split(",") if x.strip())


def _pairs(value: str | None) -> tuple[Pair, ...]:
    out = []
    for text in _csv(value):
        try:
            out.append(Pair.parse(text))
        except ValueError:
            raise ConfigError(f"malformed pair {text!r} in --only: use Entity.metricType, e.g. Image.Like") from None
    return tuple(out)


def _kv(values: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for v in values:
        if "=" not in v:
            raise ConfigError(f"malformed {what} {v!r}: use NAME=VALUE")
        k, _, val = v.partition("=")
        out[k.strip()] = val.strip()
    return out


pg_option = click.option(
    "--pg",
    "pg_url",
    envvar="METRIC_BACKFILL_PG_URL",
    show_envvar=True,
    help="PostgreSQL source URL, postgresql://user:pass@host:port/db.",
)
ch_option = click.option(
    "--clickhouse",
    "ch_url",
    envvar="METRIC_BACKFILL_CLICKHOUSE_URL",
    show_envvar=True,
    help="ClickHouse DSN: chdb:///abs/path (embedded) or http(s)://user:pass@host:port/db.",
)
state_option = click.option(
    "--state-db",
    default="metric_backfill",
    show_default=True,
    help="ClickHouse database for staging, run state and lookups.",
)
# The selection every command that reads the sources takes (run, check, verify, reconcile).
table_option = click.option(
    "--table", default="", help="Target table (table or db.table); default: the shape's standard name."
)
earnings_table_option = click.option(
    "--earnings-table", default="", help="Where earnedAmount goes (default: entityMetricEvents next to the target)."
)
only_option = click.option("--only", default="", help="Comma-separated pairs, e.g. Image.Like,User.followerCount.")
sources_option = click.option("--sources", default="", help="Comma-separated source names (see `plan`).")
earnings_source_option = click.option(
    "--earnings-source",
    type=click.Choice(["resourceCompensations", "buzz_resource_compensation"]),
    default="resourceCompensations",
    show_default=True,
)
ch_table_option = click.option(
    "--ch-table",
    multiple=True,
    metavar="NAME=DB.TABLE",
    help=f"Where a ClickHouse source table lives ({', '.join(CH_TABLES)}).",
)


class _Cli(click.Group):
    """click's own usage errors (a bad value, a missing argument) as one line with exit 2, like the
    tool's refusals, instead of the usage block."""

    def main(self, *args: Any, standalone_mode: bool = True, **kw: Any) -> Any:
        try:
            return super().main(*args, standalone_mode=False, **kw)  # type: ignore[call-overload]
        except click.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            err_console.print(f"[bold red]error:[/] {escape(exc.format_message())}{hint}", soft_wrap=True)
            sys.exit(2)
        except click.ClickException as exc:
            err_console.print(f"[bold red]error:[/] {escape(exc.format_message())}", soft_wrap=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            err_console.print("[yellow]interrupted")
            sys.exit(130)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="metric-backfill")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="METRIC_BACKFILL_CONFIG",
    show_envvar=True,
    help="TOML file of connections and options (default: ./metric-backfill.toml if it exists).",
)
@click.pass_context
def cli(ctx: click.Context, config_file: str | None) -> None:
    """Backfill entityMetricEvents in ClickHouse from the site's source tables, exactly once.

    \b
    plan       what would be written: sources, queries, fan-out rules, pairs
    check      connect to both sides and say what a run with these options would do
    run        plan, stage and publish a backfill (resumes an interrupted one)
    publish    publish a staged run
    status     runs and their progress (also while one runs)
    verify     compare per-entity totals with the sources (or the site's counters)
    reconcile  write one corrective event per differing entity
    prune      remove the staging of published or abandoned runs
    demo       the whole thing on embedded PostgreSQL + ClickHouse with generated data
    """
    from pathlib import Path

    from metric_backfill.cli._config_file import DEFAULT_FILE, load_default_map

    path = Path(config_file) if config_file else Path(DEFAULT_FILE)
    if config_file or path.is_file():
        try:
            ctx.default_map = load_default_map(path, cli, ctx.invoked_subcommand)
        except BackfillError as exc:
            _fail(exc)


# -- plan ------------------------------------------------------------------------------------


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--check",
    "check_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Exit non-zero listing every pair of FILE the catalog does not produce.",
)
@pg_option
@_guard
def plan(fmt: str, check_file: str | None, pg_url: str | None) -> None:
    """Print the catalog: per source the query, chunking and rules; per pair the rule and notes.

    With --pg, BuzzTip entity types are read from the database (SELECT DISTINCT "entityType");
    otherwise the values the site's code writes today are assumed.
    """
    etypes: tuple[str, ...] = BUZZTIP_ENTITY_TYPES
    if pg_url:
        from metric_backfill.engine._plan import discover_entity_types
        from metric_backfill.backends._postgres import Postgres

        with Postgres(pg_url).snapshot() as snap:
            etypes = tuple(discover_entity_types(snap))
    if check_file:
        with open(check_file, encoding="utf-8") as f:
            wanted = read_pair_list(f.read())
        missing = missing_pairs(wanted, etypes)
        if missing:
            for p in missing:
                console.print(f"missing: {p}", markup=False)
            err_console.print(
                f"[red]{len(missing)} of {len(wanted)} pairs in {check_file} are not produced by the catalog"
            )
            sys.exit(1)
        console.print(f"all {len(wanted)} pairs of {check_file} are produced by the catalog")
        return
    doc = describe_catalog(etypes)
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(_plan_text(doc))


def _columns(rows: list[list[str]], indent: str = "    ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _plan_text(doc: dict[str, Any]) -> str:
    out: list[str] = []
    for s in doc["sources"]:
        ch = s["chunk"]
        out.append(
            f"== {s['name']}  ({'PostgreSQL' if s['engine'] == 'pg' else 'ClickHouse'}; chunks on "
            f"{ch['table']}.{ch['column']}{' per ' + ch['partition'] if ch['partition'] else ''}; "
            f"timestamp {s['base_ts']}{'' if s['selected_by_default'] else '; not selected by default'})"
        )
        out.append("  query:")
        out.extend("    " + line for line in s["query"].splitlines())
        out.append("  fan-out:")
        rows = [["entityType", "entityId", "userId", "metricType", "value", "when", "requires", "ts"]]
        rows += [
            [
                r["entityType"],
                r["entityId"],
                r["userId"],
                r["metricType"],
                r["value"],
                r["when"] or "-",
                r["requires"] or "-",
                r["ts"],
            ]
            for r in s["rules"]
        ]
        out.extend(_columns(rows))
        if s["notes"]:
            out.append(f"  notes: {s['notes']}")
        out.append("")
    out.append("== pairs (entityType.metricType, source, reference list, rule)")
    out.extend(
        _columns(
            [
                [p["pair"], p["source"] + ("" if p["default"] else " (opt-in)"), p["list"], p["rule"]]
                for p in doc["pairs"]
            ],
            indent="  ",
        )
    )
    return "\n".join(out)


# -- run -------------------------------------------------------------------------------------


def engine_dsn(ch_url: str | None, *, create: bool = False) -> str:
    """--clickhouse, checked: a chdb:// path must hold an embedded engine (or --create-chdb says to
    make one): a mistyped path must not quietly become an empty database."""
    from metric_backfill.backends._clickhouse import refuse_missing_engine, valid_dsn

    dsn = valid_dsn(ch_url or "")
    refuse_missing_engine(dsn, create=create)
    return dsn


def build_config(
    pg_url: str | None, ch_url: str | None, cutoff: str | None, *, create_chdb: bool = False, **kw: Any
) -> RunConfig:
    """The options, checked (all of them before any connection is made; the engine path last)."""
    cfg = _build_config(pg_url, ch_url, cutoff, **kw)
    engine_dsn(cfg.clickhouse_url, create=create_chdb)
    return cfg


def _build_config(pg_url: str | None, ch_url: str | None, cutoff: str | None, **kw: Any) -> RunConfig:
    from metric_backfill.backends._clickhouse import valid_dsn
    from metric_backfill.backends._postgres import valid_pg_url

    if not cutoff:
        raise ConfigError(
            "missing --cutoff: give the UTC instant the live pipeline took over, e.g. --cutoff '2025-10-01 00:00:00'"
        )
    cfg_cutoff = parse_cutoff(cutoff)
    source_cutoffs = {
        k: parse_cutoff(v, f"cutoff of {k}") for k, v in _kv(kw.pop("source_cutoff", ()), "--source-cutoff").items()
    }
    ch_tables = dict(CH_TABLES)
    for k, v in _kv(kw.pop("ch_table", ()), "--ch-table").items():
        if k not in ch_tables:
            raise ConfigError(f"unknown ClickHouse source table {k!r}: choose from {', '.join(ch_tables)}")
        ch_tables[k] = v
    null_ts = {k: parse_cutoff(v, f"null_ts of {k}") for k, v in _kv(kw.pop("null_ts", ()), "--null-ts").items()}
    ecd = kw.pop("earnings_cutoff_date", None)
    return RunConfig(
        pg_url=valid_pg_url(pg_url or ""),
        clickhouse_url=valid_dsn(ch_url or ""),
        cutoff=cfg_cutoff,
        source_cutoffs=source_cutoffs,
        ch_tables=ch_tables,
        null_ts=null_ts,
        earnings_cutoff_date=parse_date(ecd, "--earnings-cutoff-date") if ecd else None,
        only=_pairs(kw.pop("only")),
        sources=_csv(kw.pop("sources")),
        **kw,
    )


@cli.command()
@pg_option
@ch_option
@click.option(
    "--cutoff",
    help="The instant the live pipeline took over (ISO 8601; UTC unless it has an offset, e.g. "
    "'2025-10-01 00:00:00'); only events strictly before it are written.",
)
@table_option
@click.option(
    "--target-shape",
    type=click.Choice(["events", "new", "month"]),
    default="events",
    show_default=True,
    help="Shape used when the target has to be created (an existing target is introspected).",
)
@earnings_table_option
@only_option
@sources_option
@click.option("--source-cutoff", multiple=True, metavar="SOURCE=TS", help="Per-source cutoff override (repeatable).")
@earnings_source_option
@click.option("--earnings-cutoff-date", help="First payout day processed live (default: derived from the cutoff).")
@click.option(
    "--null-ts", multiple=True, metavar="TABLE=TS", help="Stand-in for NULL createdAt (default: table minimum)."
)
@ch_table_option
@click.option("--generation-value", type=click.Choice(["one", "blobs"]), default="one", show_default=True)
@click.option(
    "--backfill-version",
    type=click.IntRange(0, 255),
    default=5,
    show_default=True,
    help="Written to `version` where it exists.",
)
@click.option(
    "--concurrency", type=click.IntRange(1, 64), default=2, show_default=True, help="Chunk workers in this process."
)
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1),
    default=500_000,
    show_default=True,
    help="Source rows per PostgreSQL chunk.",
)
@click.option(
    "--ch-chunk-rows",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="Source rows per ClickHouse-sourced chunk (whole days).",
)
@click.option(
    "--publish-slice-rows",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="Largest publish slice (inserted as one block).",
)
@click.option(
    "--on-overlap",
    type=click.Choice(["abort", "skip", "replace", "accept"]),
    default="abort",
    show_default=True,
    help="When the target already has rows of a pair before the cutoff.",
)
@click.option(
    "--pg-lock-timeout",
    type=click.FloatRange(min=0.001),
    default=60.0,
    show_default=True,
    help="Seconds a PostgreSQL read waits for a lock another session holds, before it is reported.",
)
@click.option(
    "--pg-statement-timeout",
    type=click.FloatRange(min=0.001),
    default=3600.0,
    show_default=True,
    help="Seconds one PostgreSQL statement (a chunk) may run.",
)
@click.option(
    "--run-id", default=None, help="Resume or name this run (default: resume the unfinished run of the same options)."
)
@click.option(
    "--worker",
    default="0/1",
    show_default=True,
    metavar="K/N",
    help="Share a run among N processes (static partitioning: this one stages chunks with id % N == K). "
    "Worker 0 plans and publishes; the others need the same --run-id.",
)
@click.option(
    "--wait-timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds to wait for other workers (default: forever).",
)
@click.option(
    "--net-against-live",
    is_flag=True,
    help="For every key a live event or a handled update touched since the cutoff, write today's rows minus "
    "the live events already in the target (assumes the live pipeline covered every change since the "
    "cutoff).",
)
@click.option(
    "--stage-only", is_flag=True, help="Stop after staging; publish later with `metric-backfill publish RUN`."
)
@click.option("--dry-run", is_flag=True, help="Print how many events each pair would get; write nothing.")
@click.option(
    "--create-chdb", is_flag=True, help="Create the embedded ClickHouse at the chdb:// path if it does not exist yet."
)
@click.option("--json", "json_file", metavar="FILE|-", help="Write the run summary as JSON; - for stdout.")
@state_option
@_guard
def run(
    pg_url: str | None,
    ch_url: str | None,
    cutoff: str | None,
    dry_run: bool,
    stage_only: bool,
    run_id: str | None,
    json_file: str | None,
    state_db: str,
    worker: str,
    wait_timeout: float | None,
    **kw: Any,
) -> None:
    """Backfill: plan chunks, stage events, publish them into the target exactly once."""
    from metric_backfill.engine import _run
    from metric_backfill.cli._render import pairs_table

    k, _, n = worker.partition("/")
    if not (k.isdigit() and n.isdigit() and 0 <= int(k) < int(n)):
        raise ConfigError(f"malformed --worker {worker!r}: use K/N with 0 <= K < N, e.g. --worker 1/3")
    check_output_path(json_file, "--json")
    cfg = build_config(pg_url, ch_url, cutoff, state_database=state_db, **kw)
    from metric_backfill.backends._clickhouse import Capabilities

    if int(n) > 1 and not Capabilities.of(cfg.clickhouse_url).multi_process:
        # Each `run` is a process of its own, and an embedded engine belongs to one process.
        raise ConfigError(
            "--worker K/N with N > 1 shares a run among processes, but an embedded engine belongs to "
            "one process: use a ClickHouse server, or --concurrency within one process"
        )
    reporter = _reporter()
    out = _human(json_file)  # stdout carries the JSON then
    if dry_run:
        pairs = _run.dry_run(cfg, reporter)
        out.print(pairs_table("dry run: events each pair would get (nothing written)", pairs))
        if json_file:
            _write_json(json_file, {"dry_run": True, "pairs": pairs})
        return
    w = _run.Worker(int(k), int(n))
    result = _run.run(cfg, run_id=run_id, stage_only=stage_only, reporter=reporter, worker=w, wait_timeout=wait_timeout)
    out.print(pairs_table(f"run {result.run_id}: {result.status}", result.pairs))
    if result.overlap.get("rows") or result.overlap.get("at_publish"):
        out.print(f"overlap recorded ({cfg.on_overlap}): {result.overlap}", markup=False)
    if stage_only:
        out.print(f"staged; publish with: metric-backfill publish {result.run_id}")
    elif w.leader:
        out.print(f"published {result.published_rows:,} rows")
    if json_file:
        _write_json(json_file, result.to_dict())


@cli.command()
@click.argument("run_id")
@ch_option
@state_option
@click.option(
    "--on-overlap",
    type=click.Choice(["abort", "skip", "replace", "accept"]),
    default="abort",
    show_default=True,
    help="When another run published some of this run's pairs after it was planned.",
)
@click.option("--json", "json_file", metavar="FILE|-", help="Write the result as JSON; - for stdout.")
@_guard
def publish(run_id: str, ch_url: str | None, state_db: str, on_overlap: str, json_file: str | None) -> None:
    """Publish a staged run into its target(s). Publishing twice changes nothing."""
    from metric_backfill.engine import _run
    from metric_backfill._config import checked_ident

    check_output_path(json_file, "--json")
    dsn = engine_dsn(ch_url)
    checked_ident(state_db, "--state-db")
    n = _run.publish_run(
        dsn,
        run_id,
        state_database=state_db,
        reporter=_reporter(),
        on_overlap=on_overlap,  # type: ignore[arg-type]
    )
    out = _human(json_file)
    if json_file:
        _write_json(json_file, {"run_id": run_id, "published_rows": n})
    out.print(f"run {run_id}: published {n:,} rows now" + (" (nothing left to publish)" if n == 0 else ""))


@cli.command()
@click.argument("run_id", required=False)
@ch_option
@state_option
@click.option("--json", "json_file", metavar="FILE|-", help="Write the status as JSON; - for stdout.")
@_guard
def status(run_id: str | None, ch_url: str | None, state_db: str, json_file: str | None) -> None:
    """Runs, or one run's progress per source: chunks done/total, rows, events, rate, ETA.

    Works while a run is going on, on an embedded engine too (from the progress file the running
    process keeps beside it). A run in progress that no command works on is shown as interrupted."""
    from metric_backfill._config import checked_ident
    from metric_backfill.cli._render import run_table, runs_table
    from metric_backfill.engine._status import status as read_status

    check_output_path(json_file, "--json")
    checked_ident(state_db, "--state-db")
    st = read_status(engine_dsn(ch_url), state_db, run_id)
    if json_file:
        _write_json(json_file, st if run_id else st["runs"])
        if json_file == "-":
            return
    if run_id:
        console.print(run_table(st))
    else:
        console.print(runs_table(st["runs"], live=st.get("live")))


# -- verify / reconcile ----------------------------------------------------------------------


def _selection_options(fn: F) -> F:
    for opt in reversed(
        [
            pg_option,
            ch_option,
            click.option("--cutoff", help="The backfill cutoff (ISO 8601; UTC unless it has an offset)."),
            table_option,
            earnings_table_option,
            only_option,
            sources_option,
            earnings_source_option,
            ch_table_option,
            state_option,
        ]
    ):
        fn = opt(fn)
    return fn


def _report_table(result: Any) -> Table:
    t = Table(title=f"verify {result.scope} (as of {result.as_of})")
    for col in (
        "pair",
        "entities",
        "equal",
        "differing",
        "Σ|diff|",
        "expected Σ",
        "actual Σ",
        "worst (entity: expected/actual)",
    ):
        t.add_column(col, justify="left" if col in ("pair", "worst (entity: expected/actual)") else "right")
    for p in result.report.pairs:
        worst = ", ".join(f"{w['entityId']}: {w['expected']}/{w['actual']}" for w in p.worst[:3])
        style = "red" if p.differing else None
        t.add_row(
            p.pair,
            f"{p.entities:,}",
            f"{p.equal:,}",
            f"{p.differing:,}",
            f"{p.abs_diff:,}",
            f"{p.expected_total:,}",
            f"{p.actual_total:,}",
            worst,
            style=style,
        )
    return t


def _selection_config(
    pg_url: str | None, ch_url: str | None, cutoff: str | None, state_db: str, kw: dict[str, Any]
) -> RunConfig:
    return build_config(pg_url, ch_url, cutoff, state_database=state_db, **kw)


class _JsonReport:
    """`--json FILE` or `--json -`: the report, with every difference streamed into it as it is read."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._f: Any = None
        self.started = False

    @property
    def to_stdout(self) -> bool:
        return self.path == "-"

    def _open(self) -> Any:
        if self.path and self._f is None:
            self._f = sys.stdout if self.to_stdout else open(self.path, "w", encoding="utf-8")  # noqa: SIM115
        return self._f

    def differences(self, rows: Any) -> None:
        f = self._open()
        f.write('{"differences": [')
        for i, (et, eid, mt, e, a) in enumerate(rows):
            f.write(
                ("," if i else "")
                + "\n  "
                + json.dumps(
                    {
                        "entityType": et,
                        "entityId": eid,
                        "metricType": mt,
                        "expected": e,
                        "actual": a,
                        "correction": e - a,
                    }
                )
            )
        f.write("\n]")
        self.started = True

    def finish(self, summary: dict[str, Any]) -> None:
        f = self._open()
        if f is None:
            return
        if not self.started:
            f.write('{"differences": []')
        f.write(",\n" + json.dumps(summary, indent=2, default=str)[1:].lstrip("\n") + "\n")
        if not self.to_stdout:
            f.close()


def _write_json(path: str, doc: Any) -> None:
    """A JSON document to a file, or to stdout for `-`."""
    if path == "-":
        click.echo(json.dumps(doc, indent=2, default=str))
        return
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, default=str)


def _print_check(result: Any, out: Console) -> None:
    out.print(_report_table(result))
    n = result.report.differing
    out.print(
        f"[green]all {sum(p.entities for p in result.report.pairs):,} entities equal"
        if n == 0
        else f"[red]{n:,} entities differ over {sum(1 for p in result.report.pairs if p.differing)} pairs"
    )
    for r in result.rollups:
        if r.note:
            out.print(f"rollup {r.table} (view {r.view}): {r.note}", markup=False)
        elif r.differing:
            out.print(
                f"[red]rollup {r.table} (view {r.view}): {r.differing:,} of {r.keys:,} keys differ from the "
                f"view's SELECT over the target, e.g. {r.examples[:2]}"
            )
        else:
            out.print(
                f"[green]rollup {r.table} (view {r.view}): all {r.keys:,} keys equal the view's SELECT over the target"
            )


def _scope_options(fn: F) -> F:
    for opt in reversed(
        [
            click.option(
                "--as-of",
                default=None,
                help="Check everything before this UTC instant (backfill, live events, corrections) against the "
                "sources replayed to it; it must lie --live-lag before now. Default: the window the backfill "
                "owns (target rows before each pair's cutoff).",
            ),
            click.option(
                "--live-lag",
                type=click.FloatRange(min=0),
                default=3600.0,
                show_default=True,
                help="Seconds the live pipeline may lag: --as-of must be at least this long ago.",
            ),
            click.option(
                "--json",
                "json_file",
                default=None,
                metavar="FILE|-",
                help="Write the report with every differing entity (expected, actual) as JSON; - for stdout.",
            ),
        ]
    ):
        fn = opt(fn)
    return fn


@cli.command()
@_selection_options
@_scope_options
@click.option("--run", "run_id", default=None, help="Verify a run's staged events (before publishing).")
@click.option("--target", "target_scope", is_flag=True, help="Verify the target (the default).")
@click.option(
    "--against",
    type=click.Choice(["sources", "processors"]),
    default="sources",
    show_default=True,
    help="sources: expected totals replayed from the sources; processors: the cutover report — how the "
    "counters the site shows today (the *Metric tables) change when read from the events, and why.",
)
@click.option(
    "--truth-table",
    multiple=True,
    metavar="NAME=DB.TABLE",
    help="Where a truth-support table lives (daily_downloads_unique, daily_resource_generation_counts, reactions).",
)
@click.option(
    "--html", "html_file", type=click.Path(dir_okay=False), help="With --against processors: write the HTML report."
)
@_guard
def verify(
    pg_url: str | None,
    ch_url: str | None,
    cutoff: str | None,
    state_db: str,
    run_id: str | None,
    target_scope: bool,
    as_of: str | None,
    live_lag: float,
    json_file: str | None,
    against: str,
    truth_table: tuple[str, ...],
    html_file: str | None,
    **kw: Any,
) -> None:
    """Compare per-entity expected totals (from the sources) with ClickHouse; exit 1 on any difference.

    With --against processors: the cutover report instead (exit 0; differences are what it explains)."""
    from metric_backfill.verify import _verify as _check

    if run_id and target_scope:
        raise ConfigError("--run and --target are exclusive: verify a run's staging or the target")
    if html_file and against != "processors":
        raise ConfigError("--html writes the cutover report: add --against processors")
    check_output_path(json_file, "--json")
    check_output_path(html_file, "--html")
    cfg = _selection_config(pg_url, ch_url, cutoff, state_db, kw)
    if against == "processors":
        _cutover(cfg, _kv(truth_table, "--truth-table"), json_file, html_file)
        return
    report = _JsonReport(json_file)
    result = _check.verify(
        cfg,
        run_id=run_id,
        as_of=parse_cutoff(as_of, "--as-of") if as_of else None,
        live_lag=live_lag,
        on_differences=report.differences if json_file else None,
    )
    report.finish(result.to_dict())
    _print_check(result, _human(json_file))
    sys.exit(1 if result.report.differing or not result.rollups_ok else 0)


def _cutover(cfg: RunConfig, truth_tables: dict[str, str], json_file: str | None, html_file: str | None) -> None:
    from metric_backfill.verify.cutover import cutover, render_html

    report = cutover(cfg, truth_tables)
    t = Table(title=f"cutover: displayed (D) → events (N) on {report.target}")
    for col in (
        "pair",
        "entities",
        "changed",
        "Σ(N−D)",
        "Σ|N−D|",
        "staleness Σ(T−D)",
        "semantic Σ(N−T)",
        "main causes",
    ):
        t.add_column(col, justify="left" if col in ("pair", "main causes") else "right")
    for p in report.pairs:
        if p.status != "compared":
            continue
        causes = ", ".join(
            f"{c.cause} {c.amount:+,}" for c in sorted(p.causes, key=lambda c: -abs(c.amount))[:2] if c.amount
        )
        t.add_row(
            p.pair,
            f"{p.entities:,}",
            f"{p.changed:,}",
            f"{p.sum_diff:+,}",
            f"{p.sum_abs_diff:,}",
            f"{p.staleness:+,}",
            f"{p.semantic:+,}",
            causes,
        )
    console.print(t)
    new = [p.pair for p in report.pairs if p.status == "new"]
    if new:
        console.print(f"new counters (no displayed value today): {', '.join(new)}")
    if json_file:
        _write_json(json_file, report.to_dict())
    if html_file:
        with open(html_file, "w", encoding="utf-8") as f:
            f.write(render_html(report))
        console.print(f"HTML report: {html_file}")


@cli.command()
@_selection_options
@_scope_options
@click.option(
    "--correction-version",
    type=click.IntRange(0, 255),
    default=6,
    show_default=True,
    help="`version` of correction rows where the target has that column.",
)
@click.option("--dry-run", is_flag=True, help="Show (and with --json write) what would be corrected; write nothing.")
@click.option("--yes", is_flag=True, help="Write the corrections without asking (needed off a terminal).")
@_guard
def reconcile(
    pg_url: str | None,
    ch_url: str | None,
    cutoff: str | None,
    state_db: str,
    as_of: str | None,
    live_lag: float,
    correction_version: int,
    json_file: str | None,
    dry_run: bool,
    yes: bool,
    **kw: Any,
) -> None:
    """Write one corrective event (expected − actual, userId −2) per differing entity, exactly once, after
    showing them (--dry-run: only show)."""
    from metric_backfill.verify import _verify as _check

    check_output_path(json_file, "--json")
    cfg = _selection_config(pg_url, ch_url, cutoff, state_db, kw)
    if not (dry_run or yes or sys.stdin.isatty()):
        raise ConfigError(
            "reconcile writes corrections into the target: look first with --dry-run, then add --yes "
            "(it asks on a terminal)"
        )
    out = _human(json_file)

    def confirm(result: Any) -> bool:
        _print_check(result, out)
        if yes:
            return True
        return click.confirm(f"write {result.report.differing:,} corrections into the target?", default=False, err=True)

    report = _JsonReport(json_file)
    result = _check.reconcile(
        cfg,
        as_of=parse_cutoff(as_of, "--as-of") if as_of else None,
        live_lag=live_lag,
        correction_version=correction_version,
        dry_run=dry_run,
        confirm=confirm,
        on_differences=report.differences if json_file else None,
    )
    report.finish(result.to_dict())
    if dry_run or not result.report.differing:
        _print_check(result, out)
    if dry_run:
        out.print(f"dry run: {result.report.differing:,} corrections would be written; nothing was written")
    elif result.reconcile_run:
        out.print(f"wrote {result.corrections:,} corrections (run {result.reconcile_run}); verify again to confirm")
    elif result.report.differing:
        out.print("nothing was written")
    else:
        out.print("nothing to correct; no run was recorded")


# -- check / prune ---------------------------------------------------------------------------


@cli.command()
@_selection_options
@click.option(
    "--target-shape",
    type=click.Choice(["events", "new", "month"]),
    default="events",
    show_default=True,
    help="Shape a run would create the target with, if it does not exist.",
)
@click.option("--json", "json_file", metavar="FILE|-", help="Write the findings as JSON; - for stdout.")
@_guard
def check(
    pg_url: str | None, ch_url: str | None, cutoff: str | None, state_db: str, json_file: str | None, **kw: Any
) -> None:
    """Connect to both sides and report what a run with these options would meet and do: server
    versions, the PostgreSQL role's privileges, the source queries (EXPLAINed, nothing read), the
    target and its materialized views, ClickHouse settings and rights, and whether a run would start
    or resume. Writes nothing. Exit 0, or 2 when something would stop a run."""
    from metric_backfill.cli._render import findings_table
    from metric_backfill.engine._preflight import preflight

    check_output_path(json_file, "--json")
    cfg = _selection_config(pg_url, ch_url, cutoff, state_db, kw)
    result = preflight(cfg)
    out = _human(json_file)
    if json_file:
        _write_json(json_file, result.to_dict())
    out.print(findings_table(result.findings))
    if result.problems:
        out.print(f"[red]{result.problems} problem(s): a run with these options would not succeed")
        sys.exit(2)
    out.print("[green]ready: a run with these options can start")


@cli.command()
@click.argument("run_id", required=False)
@ch_option
@state_option
@click.option(
    "--include-published",
    is_flag=True,
    help="Also remove the staging of published runs (they can then no longer be replaced with --on-overlap replace).",
)
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--yes", is_flag=True, help="Remove without asking (needed off a terminal).")
@click.option("--json", "json_file", metavar="FILE|-", help="Write the list as JSON; - for stdout.")
@_guard
def prune(
    run_id: str | None,
    ch_url: str | None,
    state_db: str,
    include_published: bool,
    dry_run: bool,
    yes: bool,
    json_file: str | None,
) -> None:
    """Remove the staging of finished or abandoned runs, scratch tables of settled publishes, and
    temporary folders of killed processes. Naming an unfinished RUN abandons it. Keeps a published
    run's staging (needed to replace it) unless --include-published."""
    from metric_backfill._config import checked_ident
    from metric_backfill.cli._render import prune_table
    from metric_backfill.engine._prune import prune as do_prune

    check_output_path(json_file, "--json")
    checked_ident(state_db, "--state-db")
    dsn = engine_dsn(ch_url)
    if not (dry_run or yes or sys.stdin.isatty()):
        raise ConfigError(
            "prune removes staged runs: look first with --dry-run, then add --yes (it asks on a terminal)"
        )
    out = _human(json_file)

    def confirm(result: Any) -> bool:
        out.print(prune_table(result.items))
        if yes:
            return True
        return click.confirm(f"remove {len(result.removable)} item(s)?", default=False, err=True)

    result = do_prune(dsn, state_db, run_id, include_published=include_published, dry_run=dry_run, confirm=confirm)
    if json_file:
        _write_json(json_file, result.to_dict())
    if dry_run or not result.removable:
        out.print(prune_table(result.items))
    rows = sum(i.rows for i in result.removable)
    if dry_run:
        out.print(f"dry run: {len(result.removable)} item(s), {rows:,} staged rows would be removed; nothing was")
    elif result.done:
        out.print(f"removed {len(result.removable)} item(s), {rows:,} staged rows")
    elif result.removable:
        out.print("nothing was removed")
    else:
        out.print("nothing to remove")


# -- demo ------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--scale",
    type=click.FloatRange(min=0.001, max=1000),
    default=1.0,
    show_default=True,
    help="Data volume (1.0 ≈ 1M source rows).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=".metric-backfill-demo",
    show_default=True,
    help="Where the embedded PostgreSQL and ClickHouse keep their data.",
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option(
    "--drift",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Then damage N entity counters in the target, verify, reconcile, verify, and write the cutover "
    "report (DIR/cutover.html).",
)
@_guard
def demo(scale: float, directory: str, seed: int, concurrency: int, drift: int) -> None:
    """Generate data in an embedded PostgreSQL + ClickHouse, backfill it, and check every total."""
    from metric_backfill.demo._demo import run_demo

    ok = run_demo(
        scale=scale,
        directory=directory,
        seed=seed,
        concurrency=concurrency,
        console=console,
        err_console=err_console,
        reporter=_reporter(),
        drift=drift,
    )
    sys.exit(0 if ok else 1)


def main() -> None:
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["cli", "main"]
