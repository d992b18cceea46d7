"""The cutover report as one self-contained HTML page (no scripts, fonts or network; inline CSS and SVG).

Layout: a summary table per entity type at the top, then one section per entity type with
(a) a bar chart of the entities whose counter changes, split into staleness only / semantic only /
both, (b) the distribution of N − D as small-multiple histograms, (c) the causes of N − T per pair
and (d) the largest changes. Every text that comes from data (entity types are free text: BuzzTip
entity types are copied verbatim) is escaped; element ids are generated, never taken from data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from html import escape

from metric_backfill.catalog import Pair
from metric_backfill.verify.cutover._report import CutoverReport, PairCutover

__all__ = ["render_html"]

COLORS = {
    "staleness": "#4477AA",
    "semantic": "#EE7733",
    "both": "#AA3377",
    "track": "#E8E8E8",
    "neg": "#CC3311",
    "zero": "#BBBBBB",
    "pos": "#009988",
}
SPLIT_LABELS = {
    "staleness": "staleness only (N = T ≠ D)",
    "semantic": "semantic only (T = D ≠ N)",
    "both": "both (T ≠ D, N ≠ T)",
}

#: Causes that only measure the data when nothing wrote live events since the cutoff.
ARTIFACT_CAUSES = frozenset({"since the cutoff: live events vs replay"})

ENTITY_NOTES = {
    "Image": (
        "Images have no *Metric table: the site already shows image counters as sums over this same "
        "events table, so the displayed value D is read from the events too (with the legacy "
        "ReactionLike/Heart/Laugh/Cry rows folded into Like/Heart/Laugh/Cry, as the site's read path does). "
        "N − D here is therefore not a change of source: it is what reading each metric under its own "
        "name and the site's read semantics changes."
    ),
}

CSS = """
:root { color-scheme: light; --fg: #1d1d1f; --muted: #5f6368; --line: #d7d7db; --bg-alt: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: var(--fg); background: #fff; }
header, main { max-width: 1100px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 24px; }
h1 { font-size: 1.7em; margin: 0 0 4px; }
h2 { font-size: 1.35em; margin: 0 0 8px; }
h3 { font-size: 1.05em; margin: 22px 0 6px; }
.meta, .muted { color: var(--muted); }
code { font: 0.92em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
section { border-top: 1px solid var(--line); padding: 18px 0 8px; margin-top: 18px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); font-size: 0.9em; padding: 2px 0 6px; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: right; vertical-align: top; }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
thead th { background: var(--bg-alt); font-weight: 600; }
tr.pair-row th, tr.pair-row td { background: var(--bg-alt); font-weight: 600; }
td.cause { padding-left: 22px; text-align: left; }
td.desc { text-align: left; color: var(--muted); font-size: 0.88em; }
.bar { display: inline-block; width: 120px; height: 10px; background: #e8e8e8; vertical-align: middle; }
.bar > span { display: block; height: 100%; background: #EE7733; }
figure { margin: 10px 0 14px; }
figcaption { color: var(--muted); font-size: 0.9em; }
svg { max-width: 100%; height: auto; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
svg text { fill: #1d1d1f; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; font-size: 0.9em; margin: 4px 0; padding: 0; list-style: none; }
.legend .sw { display: inline-block; width: 12px; height: 12px; margin-right: 5px; vertical-align: -1px; }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 6px 14px; }
details { margin: 4px 0; }
summary { cursor: pointer; }
.note { font-weight: normal; font-size: 0.88em; }
.pos { color: #00786a; } .neg { color: #b02a0c; }
.badge { display: inline-block; font-size: 0.78em; padding: 0 6px; border-radius: 8px; background: #eef;
         color: #334; margin-left: 6px; font-weight: 500; }
dl.defs { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 8px 0; }
dl.defs dt { font-weight: 600; } dl.defs dd { margin: 0; }
.scroll { overflow-x: auto; }
.notice { border-left: 4px solid #EE7733; background: #fff6ee; padding: 8px 12px; margin: 10px 0; }
.artifact { background: #fff0e0; color: #7a3d00; }
ol.glance { padding-left: 20px; } ol.glance li { margin: 3px 0; }
@media (max-width: 760px) {
  body { font-size: 14px; }
  header, main { padding: 0 10px; }
  th, td { padding: 3px 5px; }
  dl.defs { grid-template-columns: 1fr; } dl.defs dd { margin: 0 0 4px; }
}
/* Printed, every folded part is open: a closed <details> shows its content, its marker is gone. */
@media print {
  body { font-size: 11pt; }
  header, main { max-width: none; padding: 0; }
  .scroll { overflow: visible; }
  section { break-inside: auto; } h2, h3 { break-after: avoid-page; } tr, figure { break-inside: avoid-page; }
  details::details-content { content-visibility: visible; display: block; }
  summary { list-style: none; font-weight: 600; } summary::-webkit-details-marker { display: none; }
  nav { display: none; }
}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _n(value: int) -> str:
    """A number with thousands separators and a real minus sign."""
    return f"{value:,}".replace("-", "\u2212")


def _signed(value: int) -> str:
    s = _n(value)
    cls = "pos" if value > 0 else "neg" if value < 0 else ""
    return f'<span class="{cls}">{"+" if value > 0 else ""}{s}</span>' if cls else s


def _metric(p: PairCutover) -> str:
    return Pair.parse(p.pair).metric_type


def _svg_open(title_id: str, desc_id: str, width: int, height: int) -> str:
    return (
        f'<svg role="img" aria-labelledby="{title_id} {desc_id}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    )


class _Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}"


# ---------------------------------------------------------------------------------------------
# (a) changed entities per metric
# ---------------------------------------------------------------------------------------------


def _changed_chart(entity_type: str, pairs: list[PairCutover], ids: _Ids) -> str:
    label_w, bar_w, row_h, top = 190, 560, 24, 8
    right_w = 150
    width = label_w + bar_w + right_w
    height = top + row_h * len(pairs) + 30
    scale = max((p.entities for p in pairs), default=0) or 1
    title_id, desc_id = ids("t"), ids("d")
    total_changed = sum(p.changed for p in pairs)
    out = [
        _svg_open(title_id, desc_id, width, height),
        f'<title id="{title_id}">{_e(entity_type)}: entities whose counter changes, per metric</title>',
        (
            f'<desc id="{desc_id}">{_n(total_changed)} changed counters over {len(pairs)} metrics; each bar is '
            f"split into staleness only, semantic only and both; the grey track is all entities compared.</desc>"
        ),
    ]
    for i, p in enumerate(pairs):
        y = top + i * row_h
        split = p.changed_split or {}
        out.append(
            f"<g><title>{_e(p.pair)}: {_n(p.changed)} of {_n(p.entities)} entities change"
            + "".join(f"; {SPLIT_LABELS[k]}: {_n(split.get(k, 0))}" for k in SPLIT_LABELS)
            + "</title>"
        )
        out.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" font-size="13">{_e(_metric(p))}</text>')
        track = bar_w * p.entities / scale
        out.append(f'<rect x="{label_w}" y="{y + 5}" width="{track:.1f}" height="14" fill="{COLORS["track"]}"/>')
        x = float(label_w)
        for key in ("staleness", "both", "semantic"):
            w = bar_w * split.get(key, 0) / scale
            if w > 0:
                out.append(f'<rect x="{x:.1f}" y="{y + 5}" width="{max(w, 1):.1f}" height="14" fill="{COLORS[key]}"/>')
                x += w
        pct = f" ({100 * p.changed / p.entities:.0f} %)" if p.entities else ""
        out.append(
            f'<text x="{label_w + track + 6:.1f}" y="{y + 16}" font-size="12">{_n(p.changed)} / '
            f"{_n(p.entities)}{pct}</text></g>"
        )
    y = top + row_h * len(pairs) + 18
    out.append(
        f'<text x="{label_w}" y="{y}" font-size="11" fill="#5f6368">bar length: entities compared '
        f"(longest = {_n(scale)}); coloured part: entities with N ≠ D</text>"
    )
    out.append("</svg>")
    return "\n".join(out)


def _legend(items: Iterable[tuple[str, str]]) -> str:
    return (
        '<ul class="legend">'
        + "".join(
            f'<li><span class="sw" style="background:{color}" aria-hidden="true"></span>{_e(label)}</li>'
            for color, label in items
        )
        + "</ul>"
    )


# ---------------------------------------------------------------------------------------------
# (b) distribution of N − D
# ---------------------------------------------------------------------------------------------


def _histograms(entity_type: str, pairs: list[PairCutover], ids: _Ids) -> str:
    cols = 3
    panel_w, panel_h = 300, 182
    bar_w, gap, plot_h, left = 30, 8, 90, 22
    rows = max(1, math.ceil(len(pairs) / cols))
    width, height = cols * panel_w, rows * panel_h
    title_id, desc_id = ids("t"), ids("d")
    out = [
        _svg_open(title_id, desc_id, width, height),
        f'<title id="{title_id}">{_e(entity_type)}: distribution of N \u2212 D per metric</title>',
        (
            f'<desc id="{desc_id}">One histogram per metric: number of entities per bin of N \u2212 D '
            "(new value minus displayed value), bar heights on a logarithmic scale.</desc>"
        ),
    ]
    for i, p in enumerate(pairs):
        ox, oy = (i % cols) * panel_w, (i // cols) * panel_h
        hist = p.histogram
        top = max((c for _label, c in hist), default=0)
        out.append(
            f'<g transform="translate({ox},{oy})"><title>{_e(p.pair)}: '
            + _e(", ".join(f"{label}: {c:,}" for label, c in hist))
            + "</title>"
        )
        badge = " (new)" if p.status == "new" else ""
        out.append(f'<text x="{left}" y="16" font-size="13" font-weight="600">{_e(_metric(p) + badge)}</text>')
        base = 40 + plot_h
        out.append(
            f'<line x1="{left}" y1="{base}" x2="{left + len(hist) * (bar_w + gap)}" y2="{base}" '
            f'stroke="#999" stroke-width="1"/>'
        )
        for j, (label, count) in enumerate(hist):
            x = left + j * (bar_w + gap)
            h = plot_h * math.log1p(count) / math.log1p(top) if top else 0
            color = COLORS["zero"] if label == "0" else COLORS["neg"] if label.startswith(("<", "-")) else COLORS["pos"]
            if count:
                out.append(
                    f'<rect x="{x}" y="{base - h:.1f}" width="{bar_w}" height="{max(h, 1):.1f}" fill="{color}"/>'
                )
                out.append(
                    f'<text x="{x + bar_w / 2}" y="{base - h - 3:.1f}" font-size="10" '
                    f'text-anchor="middle">{_e(_compact(count))}</text>'
                )
            lx, ly = x + bar_w / 2, base + 10
            out.append(
                f'<text x="{lx}" y="{ly}" font-size="10" text-anchor="end" '
                f'transform="rotate(-40 {lx} {ly})">{_e(label)}</text>'
            )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def _compact(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    return f"{n:,}"


# ---------------------------------------------------------------------------------------------
# (c) causes, (d) largest changes
# ---------------------------------------------------------------------------------------------


def _artifact_badge(cause: str, artifacts: frozenset[str]) -> str:
    if cause not in artifacts:
        return ""
    return (
        ' <span class="badge artifact" title="nothing wrote live events since the cutoff: this measures the '
        'rows created since, not a difference the site will see">artifact of this data</span>'
    )


def _causes_table(entity_type: str, pairs: list[PairCutover], artifacts: frozenset[str] = frozenset()) -> str:
    rows = []
    for p in pairs:
        note = f'<br><span class="muted note">{_e(p.note)}</span>' if p.note else ""
        presence = (
            '<span class="badge" title="N counts distinct users with a positive sum">presence</span>'
            if p.presence
            else ""
        )
        rows.append(
            f'<tr class="pair-row"><th scope="row" class="text">{_e(_metric(p))}{presence}{note}</th>'
            f"<td>{_n(p.changed)}</td><td>{_signed(p.sum_diff)}</td><td>{_signed(p.staleness)}</td>"
            f"<td>{_signed(p.semantic)}</td><td>{_signed(p.unexplained)}</td></tr>"
        )
        for c in p.causes:
            rows.append(
                f'<tr><td class="cause" title="{_e(c.description)}">{_e(c.cause)}'
                f"{_artifact_badge(c.cause, artifacts)}</td><td>{_n(c.entities)}</td>"
                f"<td></td><td></td><td>{_signed(c.amount)}</td><td></td></tr>"
            )
    glossary: dict[str, str] = {}
    for p in pairs:
        for c in p.causes:
            glossary.setdefault(c.cause, c.description)
    defs = "".join(f"<dt>{_e(name)}</dt><dd>{_e(desc)}</dd>" for name, desc in glossary.items())
    return (
        f'<div class="scroll"><table class="causes"><caption>{_e(entity_type)}: N − D = staleness Σ(T − D) + '
        "semantic Σ(N − T); "
        f"the semantic part is split by cause (amounts in the N − T direction: positive = the events count "
        f"more than the processor) and what no cause explains</caption>"
        '<thead><tr><th scope="col" class="text">metric / cause</th><th scope="col">entities</th>'
        '<th scope="col">Σ(N − D)</th><th scope="col">staleness Σ(T − D)</th>'
        '<th scope="col">semantic Σ(N − T) / cause amount</th><th scope="col">unexplained</th></tr></thead>'
        "<tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
        + (f'<details><summary>What the causes measure</summary><dl class="defs">{defs}</dl></details>' if defs else "")
    )


def _largest(pairs: list[PairCutover]) -> str:
    parts = []
    for p in pairs:
        if not p.largest:
            continue
        body = "".join(
            f"<tr><td>{_e(r['entityId'])}</td><td>{_n(r['D'])}</td><td>{_n(r['T'])}</td>"
            f"<td>{_n(r['N'])}</td><td>{_signed(r['N'] - r['D'])}</td></tr>"
            for r in p.largest
        )
        parts.append(
            f"<details><summary>{_e(p.pair)} — {len(p.largest)} largest of {_n(p.changed)} changes</summary>"
            f'<div class="scroll"><table><caption>{_e(p.pair)}: largest |N − D|</caption><thead><tr>'
            '<th scope="col">entityId</th>'
            '<th scope="col">D displayed</th><th scope="col">T truth</th><th scope="col">N events</th>'
            f'<th scope="col">N − D</th></tr></thead><tbody>{body}</tbody></table></div></details>'
        )
    return "\n".join(parts) or '<p class="muted">No counter changes.</p>'


def _new_table(pairs: list[PairCutover]) -> str:
    body = "".join(
        f"<tr><td>{_e(p.pair)}</td><td>{_n(p.entities)}</td><td>{_n(p.totals.get('N', p.sum_diff))}</td></tr>"
        for p in pairs
    )
    return (
        "<table><caption>New counters: no displayed value today, the events introduce them</caption>"
        '<thead><tr><th scope="col">pair</th><th scope="col">entities with events</th><th scope="col">Σ N</th>'
        f"</tr></thead><tbody>{body}</tbody></table>"
    )


# ---------------------------------------------------------------------------------------------
# the whole site at a glance
# ---------------------------------------------------------------------------------------------


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "—"


@dataclass
class SiteCause:
    """One cause summed over every compared pair (amount in the N − T direction)."""

    cause: str
    description: str
    pairs: list[str] = field(default_factory=list)
    entities: int = 0
    amount: int = 0


def site_causes(report: CutoverReport) -> list[SiteCause]:
    """Every cause over all compared pairs, largest |amount| first; what no cause explains is one more row."""
    acc: dict[str, SiteCause] = {}
    for p in report.pairs:
        if p.status != "compared":
            continue
        shares = [(c.cause, c.description, c.entities, c.amount) for c in p.causes]
        if p.unexplained:
            shares.append(
                ("unexplained", "what none of the causes accounts for", p.unexplained_entities, p.unexplained)
            )
        for cause, description, entities, amount in shares:
            row = acc.setdefault(cause, SiteCause(cause, description))
            row.pairs.append(p.pair)
            row.entities += entities
            row.amount += amount
    return sorted(acc.values(), key=lambda r: (-abs(r.amount), r.cause))


def _glance(report: CutoverReport, artifacts: frozenset[str], most: int = 8) -> str:
    compared = [p for p in report.pairs if p.status == "compared"]
    entities = sum(p.entities for p in compared)
    changed = sum(p.changed for p in compared)
    split = {k: sum((p.changed_split or {}).get(k, 0) for p in compared) for k in SPLIT_LABELS}
    staleness = sum(p.staleness for p in compared)
    semantic = sum(p.semantic for p in compared)
    new = [p for p in report.pairs if p.status == "new"]
    out = [
        '<section id="glance" aria-labelledby="glance-h">',
        '<h2 id="glance-h">At a glance</h2>',
        '<ol class="glance">',
        f"<li><strong>{_n(changed)}</strong> of {_n(entities)} counters ({_pct(changed, entities)}) over "
        f"{len(compared)} compared metrics change when the site reads the events.</li>",
        f"<li><strong>Staleness</strong> — the displayed tables lag what their own processors compute today: "
        f"{_n(split['staleness'])} counters change for this reason only, net {_signed(staleness)}. "
        "Nothing to fix in the events; the switch merely makes them current.</li>",
        f"<li><strong>Semantics</strong> — the events count differently from the processors: "
        f"{_n(split['semantic'])} counters for this reason only and {_n(split['both'])} for both reasons, "
        f"net {_signed(semantic)}. The causes below say why.</li>",
    ]
    if new:
        out.append(f"<li>{len(new)} metrics have no displayed counter today; the events introduce them.</li>")
    out.append("</ol>")
    if report.live_rows == 0:
        out.append(
            '<p class="notice"><strong>No live events in this target.</strong> Nothing wrote events at or after '
            f"the cutoff ({_e(report.cutoff)} UTC) — a demo, or a check before the live pipeline ran. Rows created "
            "since the cutoff therefore have no events yet, and the cause marked <em>artifact of this data</em> "
            "measures exactly them: it is not a difference the site will see once the live pipeline writes.</p>"
        )
    causes = site_causes(report)
    if causes:
        rows = []
        for c in causes[:most]:
            shown = ", ".join(_e(x) for x in c.pairs[:3]) + (
                f" and {len(c.pairs) - 3} more" if len(c.pairs) > 3 else ""
            )
            rows.append(
                f'<tr><td class="text"><strong>{_e(c.cause)}</strong>{_artifact_badge(c.cause, artifacts)}'
                f'<br><span class="muted note">{_e(c.description)}</span></td>'
                f'<td class="text">{shown}</td><td>{_n(c.entities)}</td><td>{_signed(c.amount)}</td></tr>'
            )
        more = f"; {len(causes) - most} smaller causes in the sections below" if len(causes) > most else ""
        out += [
            '<div class="scroll"><table class="top-causes">',
            f"<caption>The largest causes of the semantic part, over every entity type (amount: N − T, positive = "
            f"the events count more than the processors){more}</caption>",
            '<thead><tr><th scope="col" class="text">cause</th><th scope="col" class="text">metrics</th>'
            '<th scope="col">counters</th><th scope="col">amount</th></tr></thead>',
            f"<tbody>{''.join(rows)}</tbody></table></div>",
        ]
    out.append("</section>")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# page
# ---------------------------------------------------------------------------------------------


def render_html(report: CutoverReport) -> str:
    """The report as one self-contained HTML document."""
    ids = _Ids()
    artifacts = ARTIFACT_CAUSES if report.live_rows == 0 else frozenset()
    groups = report.by_entity_type()
    anchors = {et: f"et-{i}" for i, et in enumerate(groups)}

    summary_rows = []
    for et, pairs in groups.items():
        compared = [p for p in pairs if p.status == "compared"]
        new = [p for p in pairs if p.status == "new"]
        entities = sum(p.entities for p in compared)
        changed = sum(p.changed for p in compared)
        if entities:
            share = 100 * changed / entities
            bar = (
                f'<span class="bar" role="img" aria-label="{share:.0f} % changed"><span style="width:{share:.1f}%">'
                f"</span></span> {share:.0f} %"
            )
        else:
            bar = '<span class="muted">—</span>'
        summary_rows.append(
            f'<tr><th scope="row" class="text"><a href="#{anchors[et]}">{_e(et)}</a></th><td>{len(compared)}</td>'
            f"<td>{len(new)}</td><td>{_n(entities)}</td><td>{_n(changed)}</td><td>{bar}</td>"
            f"<td>{_n(sum(p.sum_abs_diff for p in compared))}</td>"
            f"<td>{_signed(sum(p.sum_diff for p in compared))}</td></tr>"
        )

    sections = []
    for et, pairs in groups.items():
        sid = anchors[et]
        compared = [p for p in pairs if p.status == "compared"]
        new = [p for p in pairs if p.status == "new"]
        nodata = [p for p in pairs if p.status == "no data"]
        parts = [
            f'<section class="entity" id="{sid}" aria-labelledby="{sid}-h">',
            f'<h2 id="{sid}-h">{_e(et)}</h2>',
            (
                f'<p class="muted">{len(compared)} compared pairs, {len(new)} new, {len(nodata)} without data; '
                f"{_n(sum(p.changed for p in compared))} of {_n(sum(p.entities for p in compared))} entity "
                f"counters change, Σ|N − D| = {_n(sum(p.sum_abs_diff for p in compared))}.</p>"
            ),
        ]
        if et in ENTITY_NOTES:
            parts.append(f'<p class="note">{_e(ENTITY_NOTES[et])}</p>')
        if compared:
            parts += [
                "<h3>Entities whose counter changes</h3>",
                "<figure>",
                _legend((COLORS[k], SPLIT_LABELS[k]) for k in ("staleness", "both", "semantic")),
                _changed_chart(et, compared, ids),
                (
                    "<figcaption>Staleness: the displayed table lags the processor's own truth. Semantic: "
                    "the events count differently from the processor.</figcaption></figure>"
                ),
            ]
        hist_pairs = compared + new
        if hist_pairs:
            parts += [
                "<h3>Distribution of N − D</h3>",
                "<figure>",
                _legend(
                    (
                        (COLORS["neg"], "N < D (counter drops)"),
                        (COLORS["zero"], "unchanged"),
                        (COLORS["pos"], "N > D (counter grows)"),
                    )
                ),
                _histograms(et, hist_pairs, ids),
                (
                    "<figcaption>Entities per bin of N − D; bar heights on a log scale, counts above the "
                    "bars.</figcaption></figure>"
                ),
            ]
        if compared:
            parts += [
                "<h3>Why: staleness and causes</h3>",
                _causes_table(et, compared, artifacts),
                "<h3>Largest changes</h3>",
                _largest(compared),
            ]
        if new:
            parts += ["<h3>New counters</h3>", _new_table(new)]
        if nodata:
            parts.append('<p class="muted">No data for: ' + ", ".join(_e(p.pair) for p in nodata) + ".</p>")
        parts.append("</section>")
        sections.append("\n".join(parts))

    nav = "".join(f'<li><a href="#{anchors[et]}">{_e(et)}</a></li>' for et in groups)
    title = f"Cutover report — {report.target}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>Cutover report</h1>
<p class="meta">How each displayed counter changes when the site reads it from <code>{_e(report.target)}</code>
instead of the <code>*Metric</code> tables · cutoff {_e(report.cutoff)} UTC · generated {_e(report.generated_at)}</p>
</header>
<main>
{_glance(report, artifacts)}
<section id="summary" aria-labelledby="summary-h">
<h2 id="summary-h">Per entity type</h2>
<dl class="defs">
<dt>D</dt><dd>displayed value today (the <code>*Metric</code> column; images: today's ClickHouse sums)</dd>
<dt>T</dt><dd>processor truth recomputed now from the sources</dd>
<dt>N</dt><dd>what the events give (backfill + live events since the cutoff) under the site's read semantics</dd>
<dt>N − D</dt><dd>= (T − D) staleness of the displayed table + (N − T) semantic difference, split by cause</dd>
</dl>
<div class="scroll"><table class="summary"><caption>Per entity type; entities are counted once per compared counter</caption>
<thead><tr><th scope="col" class="text">entity type</th><th scope="col">pairs compared</th>
<th scope="col">new pairs</th>
<th scope="col">entities</th><th scope="col">changed (N ≠ D)</th><th scope="col">share changed</th>
<th scope="col">Σ|N − D|</th><th scope="col">Σ(N − D)</th></tr></thead>
<tbody>{"".join(summary_rows)}</tbody></table></div>
<nav aria-label="entity types"><ul>{nav}</ul></nav>
</section>
{"".join(sections)}
</main>
</body>
</html>
"""
