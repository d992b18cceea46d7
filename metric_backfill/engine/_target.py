"""Target tables: the three shapes of entityMetricEvents, created when missing, introspected always.

What the tool needs to know about a target it did not create — column precision, a `version`
column, a replacing engine — is read from `system.columns`/`system.tables`, never assumed from a
name (docs/performance.md: "introspect the target and adapt").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill._config import SHAPE_TABLES, RunConfig
from metric_backfill._errors import ConfigError, TargetError
from metric_backfill.backends._sql import qualified, quote_ident

__all__ = ["Target", "View", "introspect", "resolve_targets", "target_ddl"]

# Numeric types whose sums are exact and survive merges (SummingMergeTree adds rows of equal keys).
_EXACT_NUMBER = re.compile(r"^(Nullable\()?(U?Int(8|16|32|64|128|256)|Decimal.*)\)?$")
_SUM_STATE = re.compile(r"^(Simple)?AggregateFunction\((sum|count)\b")

_COMMON = """    entityType  LowCardinality(String),
    entityId    Int32,
    userId      Int32,
    metricType  LowCardinality(String),
    metricValue Int32,"""

# The DDL of demo/sql/clickhouse.sql, one per shape.
_DDL = {
    "events": f"""CREATE TABLE IF NOT EXISTS {{name}}
(
{_COMMON}
    createdAt   DateTime64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(createdAt)
ORDER BY (entityType, entityId, createdAt)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000""",
    "new": f"""CREATE TABLE IF NOT EXISTS {{name}}
(
{_COMMON}
    createdAt   DateTime,
    version     UInt8 DEFAULT 2
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(createdAt)
ORDER BY (entityType, entityId, createdAt)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000""",
    "month": f"""CREATE TABLE IF NOT EXISTS {{name}}
(
{_COMMON}
    createdAt   DateTime,
    version     UInt8 DEFAULT 3
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(createdAt)
ORDER BY (entityType, entityId, metricType, userId, createdAt)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000""",
}

_REQUIRED = {
    "entityType": ("String", "LowCardinality(String)"),
    "entityId": ("Int32",),
    "userId": ("Int32",),
    "metricType": ("String", "LowCardinality(String)"),
    "metricValue": ("Int32", "Int64"),
}


def target_ddl(shape: str, name: str) -> str:
    return _DDL[shape].format(name=name)


@dataclass(frozen=True)
class View:
    """A materialized view fed by the target: the tool applies it itself to what it publishes.

    A publish attaches its rows to the target (which fires no view) and inserts this view's own
    SELECT over the same rows into the view's table, so that every step is one single-table write
    whose landing can be measured (see `_publish`)."""

    database: str
    name: str
    to_database: str
    to_table: str
    select: str
    """The view's SELECT with its trigger-table reference replaced by `{rows}`."""
    key_columns: tuple[str, ...]
    """The sorting key of the view's table (rows with equal keys merge there)."""
    measures: tuple[str, ...]
    """SQL expressions over the view's table whose sums are exact and merge-proof (numeric columns of
    a summing or plain table, sum/count states finalized): the picture a publish settles by."""
    partition_key: str
    columns: tuple[str, ...]
    """Output column names of the view's SELECT that the view's table has (matched by name)."""
    dependents: tuple[str, ...] = ()
    engine_full: str = ""
    """The engine clause of the view's table."""

    @property
    def attachable(self) -> bool:
        """Its rows can be attached to the view's table whole (a local MergeTree-family table that
        feeds no further view): the publish then writes them once, into scratch of that very shape."""
        return not self.dependents and re.sub(r"^(Replicated|Shared)", "", self.engine_full).split("(")[0].split(" ")[
            0
        ].endswith("MergeTree")

    @property
    def label(self) -> str:
        return f"{self.database}.{self.name}"

    @property
    def to_name(self) -> str:
        return qualified(self.to_database, self.to_table)

    @property
    def decidable(self) -> bool:
        return bool(self.measures)

    def select_over(self, table_sql: str) -> str:
        return self.select.replace("{rows}", table_sql)


@dataclass(frozen=True)
class Target:
    """An introspected target table."""

    database: str
    table: str
    engine: str
    millis: bool
    """createdAt keeps milliseconds (DateTime64(3)); otherwise seconds (DateTime)."""
    has_version: bool
    replacing: bool
    """ReplacingMergeTree-family: equal keys collapse, so publish pre-aggregates them (T4)."""
    value_type: str
    views: tuple[View, ...] = ()
    unsupported: tuple[str, ...] = ()
    """Dependents of the table the tool cannot apply itself, each with the reason."""
    engine_full: str = ""
    partition_key: str = ""
    ts_type: str = "DateTime64(3)"

    @property
    def attachable(self) -> bool:
        """A local MergeTree-family table: a publish can attach prepared parts to it."""
        return self.engine.endswith("MergeTree")

    @property
    def value_range(self) -> tuple[int, int]:
        bits = 64 if self.value_type == "Int64" else 32
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def scratch_engine(self) -> str:
        """The table's engine clause for a private copy (replication stripped, as ATTACH PARTITION FROM
        accepts a local table of the same structure); a plain MergeTree for a table that takes no ATTACH."""
        return local_engine(self.engine_full) if self.attachable else "MergeTree ORDER BY tuple()"

    @property
    def name(self) -> str:
        return qualified(self.database, self.table)

    @property
    def label(self) -> str:
        return f"{self.database}.{self.table}"

    @property
    def shape(self) -> str:
        if self.replacing:
            return "month"
        return "events" if self.millis else "new"


def local_engine(engine_full: str) -> str:
    """`ReplicatedReplacingMergeTree('/zk', '{r}', version) PARTITION …` → `ReplacingMergeTree(version) PARTITION …`."""
    m = re.match(r"^(Replicated|Shared)(\w*MergeTree)(\((.*?)\))?(\s.*)?$", engine_full, re.S)
    if not m:
        return engine_full
    family, args, rest = m.group(2), m.group(4) or "", m.group(5) or ""
    # The first two arguments of a replicated engine are its Keeper path and replica name.
    parts = _split_args(args)
    if len(parts) >= 2 and parts[0].lstrip().startswith("'"):
        parts = parts[2:]
    return f"{family}({', '.join(p.strip() for p in parts)}){rest}" if parts else f"{family}{rest}"


def _split_args(text: str) -> list[str]:
    out, depth, cur, quote = [], 0, "", False
    for ch in text:
        if ch == "'" and not cur.endswith("\\"):
            quote = not quote
        if not quote and ch in "([":
            depth += 1
        if not quote and ch in ")]":
            depth -= 1
        if ch == "," and depth == 0 and not quote:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out


def _split(name: str, default_db: str) -> tuple[str, str]:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", name):
        raise ConfigError(f"invalid table name {name!r}: use table or database.table (letters, digits, _)")
    if "." in name:
        db, table = name.split(".", 1)
        return db, table
    return default_db, name


def introspect(ch: ClickHouse, database: str, table: str) -> Target | None:
    engine = ch.engine(database, table)
    if engine is None:
        return None
    cols = ch.columns(database, table)
    problems = []
    for col, allowed in _REQUIRED.items():
        if col not in cols:
            problems.append(f"missing column {col}")
        elif cols[col] not in allowed:
            problems.append(f"{col} is {cols[col]}, expected {' or '.join(allowed)}")
    ts_type = cols.get("createdAt")
    if ts_type is None:
        problems.append("missing column createdAt")
    elif not re.fullmatch(r"DateTime(64\(3(, '[^']+')?\))?(\('[^']+'\))?", ts_type):
        problems.append(f"createdAt is {ts_type}, expected DateTime or DateTime64(3)")
    if "version" in cols and not cols["version"].startswith(("UInt", "Int")):
        problems.append(f"version is {cols['version']}, expected an integer")
    if not engine.endswith("MergeTree") and engine not in ("Distributed", "Buffer"):
        problems.append(f"engine {engine} is not a MergeTree")
    if "Collapsing" in engine or "Summing" in engine or "Aggregating" in engine:
        problems.append(f"engine {engine} would merge events")
    if problems:
        raise TargetError(
            f"target {database}.{table} has an incompatible schema ({'; '.join(problems)}): "
            "point --table at an entityMetricEvents-shaped table or a new name to create one"
        )
    info = ch.query(
        "SELECT engine_full, partition_key, dependencies_database, dependencies_table FROM system.tables "
        "WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": table},
    )[0]
    views, unsupported = discover_views(ch, database, table, list(zip(info[2], info[3])))
    return Target(
        database=database,
        table=table,
        engine=engine,
        millis=bool(ts_type and ts_type.startswith("DateTime64")),
        has_version="version" in cols,
        replacing="Replacing" in engine,
        value_type=cols["metricValue"],
        views=tuple(views),
        unsupported=tuple(unsupported),
        engine_full=str(info[0]),
        partition_key=str(info[1]),
        ts_type=str(ts_type),
    )


def _references(select: str, database: str, table: str) -> list[re.Match[str]]:
    db, t = re.escape(database), re.escape(table)
    pattern = rf"(?<![\w`.])(?:`{db}`|{db})\.(?:`{t}`|{t})(?![\w`])"
    return list(re.finditer(pattern, select))


def discover_views(
    ch: ClickHouse, database: str, table: str, dependents: list[tuple[str, str]]
) -> tuple[list[View], list[str]]:
    """The materialized views fed by `database.table`, as the tool can apply them, and the
    dependents it cannot apply (each with the reason)."""
    views: list[View] = []
    unsupported: list[str] = []
    for vdb, vname in dependents:
        rows = ch.query(
            "SELECT engine, as_select, create_table_query, toString(uuid) FROM system.tables "
            "WHERE database = {db:String} AND name = {t:String}",
            parameters={"db": vdb, "t": vname},
        )
        if not rows:
            continue
        engine, select, create, uuid = (str(x) for x in rows[0])
        label = f"{vdb}.{vname}"
        if engine != "MaterializedView":
            unsupported.append(f"{label} is a {engine}, which the tool cannot apply to what it publishes")
            continue
        refs = _references(select, database, table)
        if len(refs) != 1:
            unsupported.append(
                f"the SELECT of materialized view {label} names {database}.{table} "
                f"{len(refs)} times (the tool applies views that read it exactly once)"
            )
            continue
        m = re.search(r"\sTO\s+(`[^`]+`|\w+)\.(`[^`]+`|\w+)", create.split(" AS SELECT", 1)[0])
        if m:
            to_db, to_table = (g.strip("`") for g in m.groups())
        else:  # an inner table
            to_db = vdb
            to_table = f".inner_id.{uuid}" if ch.engine(vdb, f".inner_id.{uuid}") else f".inner.{vname}"
        tinfo = ch.query(
            "SELECT engine, sorting_key, partition_key, dependencies_database, dependencies_table, engine_full "
            "FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            parameters={"db": to_db, "t": to_table},
        )
        if not tinfo:
            unsupported.append(f"materialized view {label} writes to {to_db}.{to_table}, which does not exist")
            continue
        t_engine, sorting, partition, dep_dbs, dep_tables, t_engine_full = tinfo[0]
        rewritten = select[: refs[0].start()] + "{rows}" + select[refs[0].end() :]
        target_cols = ch.columns(to_db, to_table)
        out_cols = [
            str(r[0]) for r in ch.query(f"DESCRIBE ({rewritten.replace('{rows}', qualified(database, table))})")
        ]
        keys = tuple(k.strip() for k in str(sorting).split(",") if k.strip()) or tuple(target_cols)
        measures: list[str] = []
        if (
            str(t_engine) in ("SummingMergeTree", "MergeTree", "AggregatingMergeTree")
            or str(t_engine).endswith(("SummingMergeTree", "AggregatingMergeTree"))
            or str(t_engine) == "MergeTree"
        ):
            for col, typ in target_cols.items():
                if col in keys:
                    continue
                if _EXACT_NUMBER.match(typ) or typ.startswith("SimpleAggregateFunction(sum"):
                    measures.append(quote_ident(col))
                elif _SUM_STATE.match(typ):
                    measures.append(f"finalizeAggregation({quote_ident(col)})")
        views.append(
            View(
                database=vdb,
                name=vname,
                to_database=to_db,
                to_table=to_table,
                select=rewritten,
                key_columns=keys,
                measures=tuple(measures),
                partition_key=str(partition),
                columns=tuple(c for c in out_cols if c in target_cols),
                dependents=tuple(f"{a}.{b}" for a, b in zip(dep_dbs, dep_tables)),
                engine_full=str(t_engine_full),
            )
        )
    return views, unsupported


def ensure_target(ch: ClickHouse, database: str, table: str, shape: str, *, create: bool) -> Target:
    found = introspect(ch, database, table)
    if found:
        return found
    if not create:
        raise TargetError(f"target {database}.{table} does not exist — run without --dry-run to create it")
    ch.command(f"CREATE DATABASE IF NOT EXISTS {quote_ident(database)}", what="creating the target database")
    ch.command(target_ddl(shape, qualified(database, table)), what=f"creating target {database}.{table}")
    made = introspect(ch, database, table)
    assert made is not None
    return made


def resolve_targets(
    ch: ClickHouse, cfg: RunConfig, *, create: bool
) -> tuple[Target | None, Target | None, tuple[str, str], tuple[str, str]]:
    """Return (main, earnings, main name, earnings name). Targets are None when missing and not created."""
    main_db, main_table = _split(cfg.table or SHAPE_TABLES[cfg.target_shape], ch.default_database)
    earn_db, earn_table = _split(cfg.earnings_table or "entityMetricEvents", main_db)
    main = introspect(ch, main_db, main_table)
    if main is None and create:
        main = ensure_target(ch, main_db, main_table, cfg.target_shape, create=True)
    if (earn_db, earn_table) == (main_db, main_table):
        earn = main
    else:
        earn = introspect(ch, earn_db, earn_table)
    return main, earn, (main_db, main_table), (earn_db, earn_table)
