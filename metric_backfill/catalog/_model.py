"""The catalog's vocabulary: a `Source` and its fan-out `Rule`s, a `Pair`, as plain frozen data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

__all__ = [
    "BUZZTIP_ENTITY_TYPES",
    "ChunkBy",
    "GENERATION_VALUE",
    "Lookup",
    "Pair",
    "REACTIONS",
    "Rule",
    "Source",
    "Values",
]

REACTIONS = ("Like", "Dislike", "Laugh", "Cry", "Heart")
# BuzzTip."entityType" as the site's code writes it today (metrics-later.txt); the plan step
# replaces this with SELECT DISTINCT "entityType" FROM "BuzzTip".
BUZZTIP_ENTITY_TYPES = ("Article", "Image", "Model", "Post", "ComicChapter", "ComicProject", "Model3D", "bountyEntry")


class Pair(NamedTuple):
    """A counter: (entityType, metricType). Always a pair of values, never a dotted string to split:
    BuzzTip's entityType is free text and may itself contain a dot (T7)."""

    entity_type: str
    metric_type: str

    def __str__(self) -> str:
        return f"{self.entity_type}.{self.metric_type}"

    @classmethod
    def parse(cls, text: str) -> Pair:
        """`Entity.metric` as written on a command line or in a pair list. metricTypes never contain a
        dot (the catalog checks it), so the split is at the last one: `a.b.tippedCount` is
        entityType `a.b`."""
        entity, dot, metric = text.strip().rpartition(".")
        if not dot or not entity or not metric:
            raise ValueError(f"{text!r} is not Entity.metricType")
        return cls(entity, metric)


@dataclass(frozen=True)
class Values:
    """An entityType or metricType copied from a column: `expr`, whose values are `values`.

    `dynamic` values are discovered at plan time (BuzzTip's free-text entityType)."""

    expr: str
    values: tuple[str, ...]
    dynamic: bool = False


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One line of a fan-out table: the event the live pipeline writes for one source row."""

    entity_type: str | Values
    entity_id: str
    user_id: str
    metric: str | Values
    value: str = "1"
    when: str | None = None
    requires: str | None = None
    """A parent lookup that must have succeeded; otherwise the line is a counted drop."""
    requires_reason: str = "parent_missing"
    guards: tuple[tuple[str, str], ...] = ()
    """More (condition, drop reason) checks, tested before `requires` (e.g. a remix id that is not
    a number, a tip amount that is not positive)."""
    ts: str = "ts"
    user_rule: bool = True
    """The live drop rule on userId (NULL or 0 → no event). Off only for earnings (docs/semantics.md §3)."""

    def checks(self) -> tuple[tuple[str, str], ...]:
        """Every (condition, drop reason) the line must pass, in order."""
        return self.guards + (((self.requires, self.requires_reason),) if self.requires else ())

    def entity_types(self, dynamic: Iterable[str] = ()) -> tuple[str, ...]:
        if isinstance(self.entity_type, str):
            return (self.entity_type,)
        return tuple(dynamic) if self.entity_type.dynamic else self.entity_type.values

    def metrics(self) -> tuple[str, ...]:
        return (self.metric,) if isinstance(self.metric, str) else self.metric.values


@dataclass(frozen=True)
class ChunkBy:
    """How a source is cut into independent half-open ranges [lo, hi)."""

    table: str
    """PostgreSQL table (unquoted name) or ClickHouse `$placeholder` of the chunked table."""
    column: str
    """The indexed (PostgreSQL) or leading sort-key (ClickHouse) column the ranges apply to."""
    kind: Literal["int", "time", "day"] = "int"
    partition: str | None = None
    """A column whose distinct values are chunked separately (BuzzTip: entityType)."""


@dataclass(frozen=True)
class Lookup:
    """A PostgreSQL lookup a ClickHouse source needs per chunk (read under the run's snapshot)."""

    name: str
    keys: str
    """ClickHouse expression over the source's `keys_from` rows giving the ids to look up."""
    pg_sql: str
    """Query returning (key, value) for `%(ids)s`."""


@dataclass(frozen=True)
class Source:
    name: str
    engine: Literal["pg", "ch"]
    query: str
    chunk: ChunkBy
    rules: tuple[Rule, ...]
    columns: str = ""
    """ClickHouse structure of the PostgreSQL query's output (PostgreSQL sources only)."""
    base_ts: str = "createdAt"
    notes: str = ""
    null_ts_table: str | None = None
    """Table whose minimum non-NULL createdAt replaces NULL createdAt (docs/semantics.md §4)."""
    optional_columns: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    """placeholder → (column that may be absent as "Table.column", SQL if present, SQL if absent)."""
    lookups: tuple[Lookup, ...] = ()
    keys_from: str = ""
    """ClickHouse rows the lookup keys are taken from (ClickHouse sources with lookups)."""
    earnings: Literal["", "resourceCompensations", "buzz_resource_compensation"] = ""
    default_off: bool = False
    """Not selected unless named (Comic.*: docs/semantics.md §1)."""
    settings: dict[str, int] = field(default_factory=dict)
    """ClickHouse settings the query needs (join_use_nulls: a missing lookup is NULL, not 0)."""
    drift: str = ""
    """Expression that is 1 for a row the live pipeline may have seen updated after the cutoff (a
    handled update: its live delta is already in the target, docs/semantics.md §7); empty: none."""
    read_final: bool = False
    """The ClickHouse source table replaces rows (ReplacingMergeTree): plan and read it with FINAL."""

    def pairs(self, dynamic_entity_types: Iterable[str] = BUZZTIP_ENTITY_TYPES) -> list[Pair]:
        dyn = tuple(dynamic_entity_types)
        out: list[Pair] = []
        for rule in self.rules:
            for et in rule.entity_types(dyn):
                for m in rule.metrics():
                    pair = Pair(et, m)
                    if pair not in out:
                        out.append(pair)
        return out


GENERATION_VALUE: dict[str, str] = {"one": "1", "blobs": "if(blobsCount > 0, blobsCount, 1)"}
"""The value of a generation or remix event (docs/sources.md §22): 1, what the live stream delivers, or
blobsCount should production be shown to deliver it."""
