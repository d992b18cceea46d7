"""Checking the result: `verify` and `reconcile` (`_verify`), the comparison of expected and actual
totals inside ClickHouse (`_compare`), the independent expected-totals SQL written by hand from the
semantics (`_expected`, sharing no code with the engine's compiled catalog), and the cutover report
(`cutover/`).

May import: `metric_backfill.engine` (to publish corrections through the protected path), the
catalog, the backends, `_config`, `_errors`.
"""

from metric_backfill.verify._verify import CORRECTION_USER, CheckResult, reconcile, verify

__all__ = ["CORRECTION_USER", "CheckResult", "reconcile", "verify"]
