"""Target tables: the three shapes of entityMetricEvents, created when missing, introspected always.

What the tool needs to know about a target it did not create — column precision, a `version`
column, a replacing engine — is read from `system.columns`/`system.tables`, never assumed from a
name (DESIGN.md: "introspect the target and adapt").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._clickhouse import ClickHouse, qualified, quote_ident
from ._config import SHAPE_TABLES, RunConfig
from ._errors import ConfigError, TargetError

__all__ = ["Target", "resolve_targets", "target_ddl"]

_COMMON = """    entityType  LowCardinality(String),
    entityId    Int32,
    userId      Int32,
    metricType  LowCardinality(String),
    metricValue Int32,"""

# The DDL of spec/clickhouse.sql, one per shape.
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


def _split(name: str, default_db: str) -> tuple[str, str]:
    if not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)?", name):
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
        raise TargetError(f"target {database}.{table} has an incompatible schema ({'; '.join(problems)}): "
                          "point --table at an entityMetricEvents-shaped table or a new name to create one")
    return Target(database=database, table=table, engine=engine,
                  millis=bool(ts_type and ts_type.startswith("DateTime64")),
                  has_version="version" in cols, replacing="Replacing" in engine,
                  value_type=cols["metricValue"])


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


def resolve_targets(ch: ClickHouse, cfg: RunConfig, *, create: bool) -> tuple[Target | None, Target | None, tuple[str, str], tuple[str, str]]:
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
