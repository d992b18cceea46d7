"""The public surface, as httpx asserts its own: exactly these names, and every module private."""

from __future__ import annotations

import importlib
import pkgutil

import metric_backfill

PUBLIC = [
    "BackfillError",
    "CATALOG",
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


def test_the_public_api_is_exactly_these_names() -> None:
    assert sorted(metric_backfill.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(metric_backfill, name) is not None


def test_every_module_is_private_and_every_package_says_what_it_may_import() -> None:
    packages = {"catalog", "backends", "engine", "verify", "verify.cutover", "cli", "demo"}
    for info in pkgutil.walk_packages(metric_backfill.__path__, "metric_backfill."):
        leaf = info.name.rsplit(".", 1)[1]
        rel = info.name.removeprefix("metric_backfill.")
        if info.ispkg:
            assert rel in packages, f"unexpected package {info.name}"
            doc = importlib.import_module(info.name).__doc__ or ""
            assert "May import" in doc, f"{info.name} does not say what it may import"
        else:
            assert leaf.startswith("_"), f"{info.name} is a public module"


def test_the_verify_package_exports_verify_and_reconcile() -> None:
    from metric_backfill import verify

    assert sorted(verify.__all__) == ["CORRECTION_USER", "CheckResult", "reconcile", "verify"]
