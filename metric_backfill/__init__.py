"""metric-backfill: rebuild the entityMetricEvents stream in ClickHouse from its sources, exactly once.

Public API (everything else is private and may change)::

    RunConfig                     typed configuration of a run (validates itself)
    run(cfg) -> RunResult         plan → stage → publish (resumes an unfinished run of the same config)
    dry_run(cfg)                  events per pair, writing nothing
    publish_run(dsn, run_id)      publish a staged run (idempotent)
    metric_backfill.verify        verify(cfg) / reconcile(cfg): compare the target (or a run) with the
                                  sources; correct it exactly once
    CATALOG, Source, Rule, Pair   the declared sources, their fan-out rules, a counter
    BackfillError and subclasses  the error tree is drawn in metric_backfill._errors

The package is layered (folders, each `__init__` says what it may import; CI checks it):
`catalog` (data) ← `backends` (drivers) ← `engine` ← `verify` ← `cli`, `demo`.
"""

from metric_backfill._config import RunConfig, parse_cutoff
from metric_backfill._errors import (
    BackfillError,
    Cancelled,
    ConfigError,
    DifferencesFound,
    OverlapError,
    PublishConflict,
    SourceError,
    TargetError,
    TerminalError,
    TransientError,
)
from metric_backfill.catalog import CATALOG, Pair, Rule, Source, Values
from metric_backfill.engine._preflight import Preflight, preflight
from metric_backfill.engine._prune import PruneResult, prune
from metric_backfill.engine._run import RunResult, dry_run, publish_run, run
from metric_backfill.engine._status import status

__all__ = [
    "CATALOG",
    "BackfillError",
    "Cancelled",
    "ConfigError",
    "DifferencesFound",
    "OverlapError",
    "Pair",
    "Preflight",
    "PruneResult",
    "PublishConflict",
    "Rule",
    "RunConfig",
    "RunResult",
    "Source",
    "SourceError",
    "TargetError",
    "TerminalError",
    "TransientError",
    "Values",
    "dry_run",
    "parse_cutoff",
    "preflight",
    "prune",
    "publish_run",
    "run",
    "status",
]
