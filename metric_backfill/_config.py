"""Run configuration: typed, validated once, with a docstring per field."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Literal
from urllib.parse import urlsplit

from metric_backfill.catalog import CATALOG, Pair, Source
from metric_backfill._errors import ConfigError, redact

__all__ = ["CH_TABLES", "RunConfig", "TargetShape", "known_source", "checked_ident", "parse_cutoff", "parse_date"]

TargetShape = Literal["events", "new", "month"]
SHAPE_TABLES: dict[str, str] = {
    "events": "entityMetricEvents",
    "new": "entityMetricEvents_new",
    "month": "entityMetricEvents_month",
}
# Logical names of the ClickHouse source tables (docs/sources.md §21–§24) and where the site keeps them.
CH_TABLES: dict[str, str] = {
    "modelVersionEvents": "default.modelVersionEvents",
    "jobs": "orchestration.jobs",
    "buzz_resource_compensation": "default.buzz_resource_compensation",
    "resourceCompensations": "orchestration.resourceCompensations",
}
EARNINGS_SOURCES = ("resourceCompensations", "buzz_resource_compensation")

_CUTOFF_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d{1,3})?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$", re.IGNORECASE
)
_FORMAT_HINT = "use ISO 8601, 'YYYY-MM-DD HH:MM:SS[.fff]' in UTC or with an offset, e.g. '2025-10-01 00:00:00' or '2025-10-01T02:00:00+02:00'"


def parse_cutoff(text: str, what: str = "cutoff") -> datetime:
    """An ISO 8601 instant to the millisecond → naive UTC datetime. Without an offset it is UTC;
    with one (`Z`, `+02:00`, `-0500`, `+02`) it is converted to UTC."""
    m = _CUTOFF_RE.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ConfigError(f"malformed {what} {text!r}: {_FORMAT_HINT}")
    offset = (m[4] or "").upper()
    if offset and offset != "Z":
        sign, digits = offset[0], offset[1:].replace(":", "")
        offset = f"{sign}{digits[:2]}:{digits[2:4] or '00'}"
    try:
        value = datetime.fromisoformat(
            f"{m[1]} {m[2]}{(m[3] or '').ljust(4, '0') if m[3] else ''}{'+00:00' if offset == 'Z' else offset}"
        )
    except ValueError as exc:
        raise ConfigError(f"malformed {what} {text!r}: {exc}; {_FORMAT_HINT}") from None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def checked_ident(name: str, what: str) -> str:
    """A database or table name given by the user: refuse anything but letters, digits and `_`."""
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        raise ConfigError(f"invalid {what} {name!r}: use letters, digits and _ only (and not a digit first)")
    return name


def first_day_not_before(ts: datetime) -> date:
    """The first whole day whose midnight is not before `ts`: earnings are per payout day."""
    return ts.date() if ts == datetime(ts.year, ts.month, ts.day) else ts.date() + timedelta(days=1)


def parse_date(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"malformed {what} {text!r}: use 'YYYY-MM-DD'") from None


def format_ts(ts: datetime) -> str:
    """A UTC timestamp as ClickHouse and PostgreSQL both read it, with milliseconds."""
    return ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts.microsecond // 1000:03d}"


def _json_default(v: object) -> str:
    if isinstance(v, datetime):
        return format_ts(v)
    return str(v)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on. Two invocations with the same fingerprint are the same run."""

    pg_url: str
    """PostgreSQL source URL (read-only use; credentials are never logged)."""
    clickhouse_url: str
    """ClickHouse DSN: chdb:///abs/path (embedded) or http(s)://user:pass@host:port/db."""
    cutoff: datetime
    """Global cutoff, naive UTC: only events strictly before it are written."""
    source_cutoffs: dict[str, datetime] = field(default_factory=dict)
    """Per-source cutoff overrides (docs/semantics.md §4: each source's live coverage began at its own time)."""
    table: str = ""
    """Target table, `table` or `db.table`; empty = the shape's standard name in the DSN's database."""
    target_shape: TargetShape = "events"
    """Shape used when the target must be created: events (DateTime64(3) MergeTree), new
    (DateTime + version), month (ReplacingMergeTree). An existing target is introspected instead."""
    earnings_table: str = ""
    """Where earnedAmount goes (R6: the live earnings writer uses default.entityMetricEvents);
    empty = `entityMetricEvents` next to the target."""
    only: tuple[Pair, ...] = ()
    """Pair allowlist; empty = every pair the pipeline emits except Comic.*."""
    sources: tuple[str, ...] = ()
    """Source allowlist (catalog names); empty = all selected by `only`."""
    earnings_source: str = "resourceCompensations"
    """resourceCompensations (today's path) or buzz_resource_compensation (Sept-2025 path)."""
    earnings_cutoff_date: date | None = None
    """First payout day processed live; earnings days before it are written. Default: the first
    day whose midnight is not before the cutoff."""
    null_ts: dict[str, datetime] = field(default_factory=dict)
    """Overrides of the stand-in for NULL createdAt per table (default: the table's minimum)."""
    generation_value: Literal["one", "blobs"] = "one"
    """Value of a generation/remix event: 1 (what the live stream delivers) or blobsCount."""
    backfill_version: int = 5
    """Written to `version` where the target has it (R7; 2, 3 and 4 are taken)."""
    ch_tables: dict[str, str] = field(default_factory=lambda: dict(CH_TABLES))
    """Qualified names of the ClickHouse source tables."""
    state_database: str = "metric_backfill"
    """ClickHouse database holding staging, run state and lookups."""
    chunk_rows: int = 500_000
    """Target source rows per PostgreSQL chunk."""
    ch_chunk_rows: int = 1_000_000
    """Target source rows per ClickHouse-sourced chunk (whole days; bounds the memory of its joins)."""
    publish_slice_rows: int = 1_000_000
    """Largest publish slice: each slice is inserted as one block (one part per partition), so
    this bounds the memory of a publish (about 100 bytes a row while the block is sorted)."""
    concurrency: int = 2
    """Chunk workers in this process."""
    on_overlap: Literal["abort", "skip", "replace", "accept"] = "abort"
    """What to do when the target already has rows of a selected pair before the cutoff, or when
    another run published one of the run's pairs after this run was planned."""
    net_against_live: bool = False
    """For every key a live event or a handled update touched since the cutoff, write the replay of
    today's rows minus the live events already in the target (README: net against live)."""
    pg_lock_timeout: float = 60.0
    """Seconds a PostgreSQL read may wait for a lock another session holds before it is reported."""
    pg_statement_timeout: float = 3600.0
    """Seconds one PostgreSQL statement (a chunk's COPY) may run."""

    def __post_init__(self) -> None:
        validate(self)

    def __repr__(self) -> str:
        fields = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))
        return redact(f"RunConfig({fields})")

    # -- derived ---------------------------------------------------------------------------
    def cutoff_for(self, source: Source) -> datetime:
        return self.source_cutoffs.get(source.name, self.cutoff)

    def earnings_cutoff(self, source: Source | None = None) -> date:
        if self.earnings_cutoff_date:
            return self.earnings_cutoff_date
        return first_day_not_before(self.cutoff_for(source) if source else self.cutoff)

    def fingerprint(self) -> str:
        """Identity of what the run computes, not of how it connects or how fast it goes: a re-run
        of the same command finds and resumes its own run, also through another host, port, replica
        or user. Only the PostgreSQL database's name stays in it."""
        keep = {k: v for k, v in dataclasses.asdict(self).items() if k not in _NOT_IDENTITY}
        keep["pg_database"] = pg_database(self.pg_url)
        blob = json.dumps(keep, sort_keys=True, default=_json_default)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def from_public(cls, d: dict[str, object], *, clickhouse_url: str, pg_url: str = "") -> RunConfig:
        """Rebuild the configuration a run recorded (its URLs were redacted, so pass them)."""
        kw = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
        kw["clickhouse_url"] = clickhouse_url
        kw["pg_url"] = pg_url or str(d.get("pg_url", ""))
        kw["cutoff"] = parse_cutoff(str(d["cutoff"]))
        kw["source_cutoffs"] = {k: parse_cutoff(str(v)) for k, v in dict(d.get("source_cutoffs") or {}).items()}  # type: ignore[call-overload]
        kw["null_ts"] = {k: parse_cutoff(str(v)) for k, v in dict(d.get("null_ts") or {}).items()}  # type: ignore[call-overload]
        if d.get("earnings_cutoff_date"):
            kw["earnings_cutoff_date"] = parse_date(str(d["earnings_cutoff_date"]), "earnings cutoff date")
        kw["sources"] = tuple(d.get("sources") or ())  # type: ignore[arg-type]
        kw["only"] = tuple(Pair(*p) for p in d.get("only") or ())  # type: ignore[attr-defined]
        return cls(**kw)  # type: ignore[arg-type]

    def public_dict(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d["pg_url"] = redact(self.pg_url)
        d["clickhouse_url"] = redact(self.clickhouse_url)
        public: dict[str, object] = json.loads(json.dumps(d, default=_json_default))
        return public


# Options that change how a run goes, not what it writes.
_NOT_IDENTITY = frozenset(
    {
        "pg_url",
        "clickhouse_url",
        "concurrency",
        "chunk_rows",
        "ch_chunk_rows",
        "publish_slice_rows",
        "on_overlap",
        "pg_lock_timeout",
        "pg_statement_timeout",
    }
)


def pg_database(url: str) -> str:
    try:
        return urlsplit(url).path.lstrip("/")
    except ValueError:
        return ""


def known_source(name: str, what: str = "source") -> str:
    """A catalog source name, exactly as the catalog spells it (with a suggestion when it is not)."""
    names = [s.name for s in CATALOG]
    if name in names:
        return name
    close = [n for n in names if n.lower() == name.lower()] or difflib.get_close_matches(name, names, n=2)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise ConfigError(f"unknown {what} {name!r}{hint}: choose from {', '.join(names)}")


def _check_table_name(name: str, what: str) -> None:
    if not name:
        return
    for part in name.split(".", 1):
        checked_ident(part, what)


def validate(cfg: RunConfig) -> None:
    """Every check a configuration can pass before touching a database (run by __post_init__)."""
    for s in cfg.sources:
        known_source(s)
    for s in cfg.source_cutoffs:
        known_source(s, "source in a per-source cutoff")
    for p in cfg.only:
        if not isinstance(p, Pair):
            raise ConfigError(f"pair {p!r} must be a Pair(entityType, metricType), e.g. Pair.parse('Image.Like')")
    if cfg.earnings_source not in EARNINGS_SOURCES:
        raise ConfigError(f"unknown earnings source {cfg.earnings_source!r}: use {' or '.join(EARNINGS_SOURCES)}")
    if cfg.target_shape not in SHAPE_TABLES:
        raise ConfigError(f"unknown target shape {cfg.target_shape!r}: use events, new or month")
    if cfg.on_overlap not in ("abort", "skip", "replace", "accept"):
        raise ConfigError(f"unknown --on-overlap {cfg.on_overlap!r}: use abort, skip, replace or accept")
    if cfg.generation_value not in ("one", "blobs"):
        raise ConfigError(f"unknown generation value {cfg.generation_value!r}: use one or blobs")
    if not 0 <= cfg.backfill_version <= 255:
        raise ConfigError("--backfill-version must be between 0 and 255 (UInt8)")
    for name, value, low in (
        ("--concurrency", cfg.concurrency, 1),
        ("--chunk-rows", cfg.chunk_rows, 1),
        ("--ch-chunk-rows", cfg.ch_chunk_rows, 1),
        ("--publish-slice-rows", cfg.publish_slice_rows, 1),
    ):
        if not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be a whole number of at least {low}, not {value!r}")
    if cfg.concurrency > 64:
        raise ConfigError("--concurrency must be at most 64")
    for name, t in (("--pg-lock-timeout", cfg.pg_lock_timeout), ("--pg-statement-timeout", cfg.pg_statement_timeout)):
        if not t > 0:
            raise ConfigError(f"{name} must be a positive number of seconds, not {t!r}")
    checked_ident(cfg.state_database, "--state-db")
    _check_table_name(cfg.table, "--table")
    _check_table_name(cfg.earnings_table, "--earnings-table")
    for key, name in cfg.ch_tables.items():
        if key not in CH_TABLES:
            raise ConfigError(f"unknown ClickHouse source table {key!r}: choose from {', '.join(CH_TABLES)}")
        if "." not in name:
            raise ConfigError(f"--ch-table {key}={name!r}: use database.table")
        _check_table_name(name, f"--ch-table {key}")
    for table in cfg.null_ts:
        checked_ident(table, "--null-ts table")
    if cfg.cutoff.microsecond % 1000:
        raise ConfigError("the cutoff has sub-millisecond precision: timestamps are timestamp(3)")


def validate_names(cfg: RunConfig) -> None:
    """Kept for callers that validate a configuration again; RunConfig validates itself."""
    validate(cfg)
