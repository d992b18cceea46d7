"""metric-backfill: rebuild the entityMetricEvents stream in ClickHouse from its sources, exactly once.

Public API (everything else is private and may change)::

    RunConfig                    typed configuration of a run
    run(cfg) -> RunResult        plan → stage → publish (resumes an unfinished run of the same config)
    dry_run(cfg)                 events per pair, writing nothing
    publish_run(dsn, run_id)     publish a staged run (idempotent)
    CATALOG, Source, Rule        the declared sources and fan-out rules
    BackfillError and subclasses see metric_backfill._errors for the hierarchy
"""

from ._catalog import CATALOG, Rule, Source, Values
from ._config import RunConfig, parse_cutoff
from ._errors import (BackfillError, Cancelled, ConfigError, DifferencesFound, OverlapError, PublishConflict,
                      SourceError, TargetError, TerminalError, TransientError)
from ._run import RunResult, dry_run, publish_run, run

__all__ = [
    "CATALOG", "BackfillError", "Cancelled", "ConfigError", "DifferencesFound", "OverlapError", "PublishConflict", "Rule",
    "RunConfig", "RunResult", "Source", "SourceError", "TargetError", "TerminalError", "TransientError",
    "Values", "dry_run", "parse_cutoff", "publish_run", "run",
]
