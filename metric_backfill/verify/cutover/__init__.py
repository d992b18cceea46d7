"""The cutover report: how the site's displayed counters change when read from the events, and why
(`_report`: truths, causes as data, the per-entity comparison; `_html`: one self-contained page).

May import: `metric_backfill.verify`, the catalog, the backends, `_errors`.
"""

from metric_backfill.verify.cutover._html import render_html
from metric_backfill.verify.cutover._report import CutoverReport, cutover, cutover_report

__all__ = ["CutoverReport", "cutover", "cutover_report", "render_html"]
