"""Command line: `metric-backfill plan | run | publish | status | demo`. Thin: parses, calls the
library, renders. Exit codes: 0 ok, 1 differences found (verify), 2 usage/config, 3 runtime,
130 interrupted."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

from metric_backfill.catalog import BUZZTIP_ENTITY_TYPES, Pair  # noqa: E402
from metric_backfill._config import CH_TABLES, RunConfig, parse_cutoff, parse_date  # noqa: E402
from metric_backfill.catalog._describe import describe_catalog, missing_pairs, read_pair_list  # noqa: E402
from metric_backfill._errors import BackfillError, ConfigError  # noqa: E402

F = TypeVar("F", bound=Callable[..., Any])

# Off a terminal (CI logs, pipes) tables get room instead of rich's 80-column default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


def _fail(exc: BackfillError) -> None:
    err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True, markup=True, highlight=False)
    rows = getattr(exc, "rows", None)
    if rows:
        from metric_backfill.engine._fence import format_table

        err_console.print(format_table(rows), soft_wrap=True, markup=False, highlight=False)
    sys.exit(exc.exit_code)


def _guard(fn: F) -> F:
    import functools

    @functools.wraps(fn)
    def wrapper(*a: Any, **kw: Any) -> Any:
        try:
            return fn(*a, **kw)
        except BackfillError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted; run the same command again to resume")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="metric-backfill")
def cli() -> None:
    """Backfill entityMetricEvents in ClickHouse from the site's source tables, exactly once.

    \b
    plan     what would be written: sources, queries, fan-out rules, pairs
    run      plan, stage and publish a backfill (resumes an interrupted one)
    publish  publish a staged run
    status   runs and their progress
    demo     the whole thing on embedded PostgreSQL + ClickHouse with generated data
    """


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


def build_config(pg_url: str | None, ch_url: str | None, cutoff: str | None, **kw: Any) -> RunConfig:
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
@click.option("--cutoff", help="UTC instant 'YYYY-MM-DD HH:MM:SS[.fff]'; only events strictly before it are written.")
@click.option("--table", default="", help="Target table (table or db.table); default: the shape's standard name.")
@click.option(
    "--target-shape",
    type=click.Choice(["events", "new", "month"]),
    default="events",
    show_default=True,
    help="Shape used when the target has to be created (an existing target is introspected).",
)
@click.option(
    "--earnings-table", default="", help="Where earnedAmount goes (default: entityMetricEvents next to the target)."
)
@click.option("--only", default="", help="Comma-separated pairs, e.g. Image.Like,User.followerCount.")
@click.option("--sources", default="", help="Comma-separated source names (see `plan`).")
@click.option("--source-cutoff", multiple=True, metavar="SOURCE=TS", help="Per-source cutoff override (repeatable).")
@click.option(
    "--earnings-source",
    type=click.Choice(["resourceCompensations", "buzz_resource_compensation"]),
    default="resourceCompensations",
    show_default=True,
)
@click.option("--earnings-cutoff-date", help="First payout day processed live (default: derived from the cutoff).")
@click.option(
    "--null-ts", multiple=True, metavar="TABLE=TS", help="Stand-in for NULL createdAt (default: table minimum)."
)
@click.option(
    "--ch-table",
    multiple=True,
    metavar="NAME=DB.TABLE",
    help=f"Where a ClickHouse source table lives ({', '.join(CH_TABLES)}).",
)
@click.option("--generation-value", type=click.Choice(["one", "blobs"]), default="one", show_default=True)
@click.option(
    "--backfill-version", type=int, default=5, show_default=True, help="Written to `version` where it exists."
)
@click.option("--concurrency", type=int, default=2, show_default=True, help="Chunk workers in this process.")
@click.option("--chunk-rows", type=int, default=500_000, show_default=True, help="Source rows per PostgreSQL chunk.")
@click.option(
    "--ch-chunk-rows",
    type=int,
    default=1_000_000,
    show_default=True,
    help="Source rows per ClickHouse-sourced chunk (whole days).",
)
@click.option(
    "--publish-slice-rows",
    type=int,
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
@click.option("--wait-timeout", type=float, default=None, help="Seconds to wait for other workers (default: forever).")
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
@click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Write the run summary as JSON.")
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
    from metric_backfill.cli._render import ConsoleReporter, pairs_table

    k, _, n = worker.partition("/")
    if not (k.isdigit() and n.isdigit() and 0 <= int(k) < int(n)):
        raise ConfigError(f"malformed --worker {worker!r}: use K/N with 0 <= K < N, e.g. --worker 1/3")
    cfg = build_config(pg_url, ch_url, cutoff, state_database=state_db, **kw)
    from metric_backfill.backends._clickhouse import Capabilities

    if int(n) > 1 and not Capabilities.of(cfg.clickhouse_url).multi_process:
        # Each `run` is a process of its own, and an embedded engine belongs to one process.
        raise ConfigError(
            "--worker K/N with N > 1 shares a run among processes, but an embedded engine belongs to "
            "one process: use a ClickHouse server, or --concurrency within one process"
        )
    reporter = ConsoleReporter(err_console)
    out = err_console if json_file == "-" else console  # stdout carries the JSON then
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
@click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Write the result as JSON.")
@_guard
def publish(run_id: str, ch_url: str | None, state_db: str, on_overlap: str, json_file: str | None) -> None:
    """Publish a staged run into its target(s). Publishing twice changes nothing."""
    from metric_backfill.engine import _run
    from metric_backfill.backends._clickhouse import valid_dsn
    from metric_backfill._config import checked_ident
    from metric_backfill.cli._render import ConsoleReporter

    dsn = valid_dsn(ch_url or "")
    checked_ident(state_db, "--state-db")
    n = _run.publish_run(
        dsn,
        run_id,
        state_database=state_db,
        reporter=ConsoleReporter(err_console),
        on_overlap=on_overlap,  # type: ignore[arg-type]
    )
    if json_file:
        _write_json(json_file, {"run_id": run_id, "published_rows": n})
    console.print(f"run {run_id}: published {n:,} rows now" + (" (nothing left to publish)" if n == 0 else ""))


@cli.command()
@click.argument("run_id", required=False)
@ch_option
@state_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_guard
def status(run_id: str | None, ch_url: str | None, state_db: str, as_json: bool) -> None:
    """Runs, or one run's progress per source: chunks done/total, rows, events, rate, ETA."""
    from metric_backfill.backends._clickhouse import valid_dsn
    from metric_backfill.engine._status import status as read_status

    st = read_status(valid_dsn(ch_url or ""), state_db, run_id)
    if as_json:
        click.echo(json.dumps(st.get("runs", st), default=str, indent=2))
        return
    if not run_id:
        t = Table(title="runs")
        for col in ("run", "status", "created", "updated"):
            t.add_column(col)
        for r in st["runs"]:
            t.add_row(r["run_id"], r["status"], str(r["created_at"])[:19], str(r["updated_at"])[:19])
        console.print(t)
        return
    console.print(f"run {run_id}: [bold]{st['status']}[/]")
    t = Table()
    for col in ("source", "chunks done/total", "running", "failed", "rows read", "events", "rate rows/s", "ETA"):
        t.add_column(col, justify="right" if col != "source" else "left")
    for src in st["sources"]:
        t.add_row(
            src["source"],
            f"{src['done']}/{src['total']}",
            str(src["running"]),
            str(src["failed"]),
            f"{src['rows_read']:,}",
            f"{src['events']:,}",
            f"{src['rate']:,.0f}" if src["rate"] else "-",
            src["eta"] or "-",
        )
    console.print(t)


# -- verify / reconcile ----------------------------------------------------------------------


def _selection_options(fn: F) -> F:
    for opt in reversed(
        [
            pg_option,
            ch_option,
            click.option("--cutoff", help="The backfill cutoff (UTC 'YYYY-MM-DD HH:MM:SS[.fff]')."),
            click.option("--table", default="", help="Target table (table or db.table)."),
            click.option("--earnings-table", default=""),
            click.option("--only", default="", help="Comma-separated pairs (default: every pair the pipeline emits)."),
            click.option("--sources", default="", help="Comma-separated source names."),
            click.option(
                "--earnings-source",
                type=click.Choice(["resourceCompensations", "buzz_resource_compensation"]),
                default="resourceCompensations",
                show_default=True,
            ),
            click.option("--ch-table", multiple=True, metavar="NAME=DB.TABLE"),
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
    _print_check(result, err_console if report.to_stdout else console)
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

    cfg = _selection_config(pg_url, ch_url, cutoff, state_db, kw)
    if not (dry_run or yes or sys.stdin.isatty()):
        raise ConfigError(
            "reconcile writes corrections into the target: look first with --dry-run, then add --yes "
            "(it asks on a terminal)"
        )
    out = err_console if json_file == "-" else console

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


# -- demo ------------------------------------------------------------------------------------


@cli.command()
@click.option("--scale", type=float, default=1.0, show_default=True, help="Data volume (1.0 ≈ 1M source rows).")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=".metric-backfill-demo",
    show_default=True,
    help="Where the embedded PostgreSQL and ClickHouse keep their data.",
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--concurrency", type=int, default=2, show_default=True)
@click.option(
    "--drift",
    type=int,
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

    from metric_backfill.cli._render import ConsoleReporter

    ok = run_demo(
        scale=scale,
        directory=directory,
        seed=seed,
        concurrency=concurrency,
        console=console,
        err_console=err_console,
        reporter=ConsoleReporter(err_console),
        drift=drift,
    )
    sys.exit(0 if ok else 1)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except BackfillError as exc:  # pragma: no cover - _guard handles command errors
        _fail(exc)


if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["cli", "main"]
