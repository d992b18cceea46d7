"""The catalog: every source the live pipeline reacts to, declared once, as data.

Holds the vocabulary (`_model`: Source, Rule, Pair…), the 24 declarations (`_sources`), their
description for `plan` and the reference pair lists (`_describe`, `lists/`). The engine compiles
the rules into one ClickHouse fan-out SELECT per source (`engine._compile`).

May import: the standard library and `metric_backfill._errors`. Nothing else: the catalog is data.
"""

from metric_backfill.catalog._model import (
    BUZZTIP_ENTITY_TYPES,
    GENERATION_VALUE,
    REACTIONS,
    ChunkBy,
    Lookup,
    Pair,
    Rule,
    Source,
    Values,
)
from metric_backfill.catalog._sources import CATALOG, EARNINGS_PAIRS, pairs_of, routes_to_earnings_table, source_by_name

__all__ = [
    "BUZZTIP_ENTITY_TYPES",
    "CATALOG",
    "EARNINGS_PAIRS",
    "GENERATION_VALUE",
    "REACTIONS",
    "ChunkBy",
    "Lookup",
    "Pair",
    "Rule",
    "Source",
    "Values",
    "pairs_of",
    "routes_to_earnings_table",
    "source_by_name",
]
