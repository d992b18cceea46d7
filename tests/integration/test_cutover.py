"""The cutover diff (metric_backfill._cutover) and its HTML page (metric_backfill._report_html).

One generated dataset (scale 0.02) is backfilled once into `<db>.entityMetricEvents` and shared by
the module; a few legacy image rows are added to the target before the report so that the
read path's folding is visible. The numbers are checked against direct SQL on the sources and the
target, written independently of the report's catalog. The session shares one chDB engine, so
everything lives in this module's own databases (dropped at the end).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import psycopg
import pytest

from metric_backfill import RunConfig, run
from metric_backfill.backends._clickhouse import ClickHouse
from metric_backfill.verify.cutover._report import (
    HISTOGRAM_BINS,
    CauseShare,
    CutoverReport,
    PairCutover,
    compared_pairs,
    cutover_report,
)
from metric_backfill.demo._embedded import EmbeddedPostgres
from metric_backfill._errors import ConfigError
from metric_backfill.demo._generate import DEFAULT_CUTOFF, generate
from metric_backfill.backends._postgres import Postgres
from metric_backfill.verify.cutover._html import render_html

CUTOFF = DEFAULT_CUTOFF
PG_CUTOFF = "TIMESTAMP '2025-10-01 00:00:00'"
LEGACY_LIKES = 500  # legacy Image.ReactionLike rows added for one image (folded into Like by the read path)


@dataclass
class World:
    pg_url: str
    db: str
    target: str
    ch_tables: dict[str, str]
    truth_tables: dict[str, str]
    ch: ClickHouse
    legacy_image: int
    report: CutoverReport

    def pair(self, name: str) -> PairCutover:
        (p,) = [p for p in self.report.pairs if p.pair == name]
        return p

    def pg_rows(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.pg_url) as conn:
            conn.execute("SET TimeZone = 'UTC'")
            return list(conn.execute(sql.encode()).fetchall())

    def pg_map(self, sql: str) -> dict[int, int]:
        return {int(k): int(v) for k, v in self.pg_rows(sql)}

    def ch_rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.ch.query(sql)

    def report_for(self, **kw: Any) -> CutoverReport:
        options: dict[str, Any] = {
            "ch_tables": self.ch_tables,
            "truth_tables": self.truth_tables,
            "scratch_database": f"{self.db}_scratch",
            **kw,
        }
        return cutover_report(Postgres(self.pg_url), self.ch, target=self.target, cutoff=CUTOFF, **options)


@pytest.fixture(scope="module")
def world(pg_server: EmbeddedPostgres, ch_client: Any, ch_dsn: str) -> Iterator[World]:
    db = f"t_{uuid.uuid4().hex[:10]}"
    orch, state = f"{db}_orch", f"{db}_state"
    pg_url = pg_server.create_database(db)
    ch_client.command(f"CREATE DATABASE {db}")
    ch = ClickHouse(ch_dsn)
    try:
        generate(pg_url, ch, scale=0.02, seed=11, ch_databases={"default": db, "orchestration": orch})
        ch_tables = {
            "modelVersionEvents": f"{db}.modelVersionEvents",
            "jobs": f"{orch}.jobs",
            "buzz_resource_compensation": f"{db}.buzz_resource_compensation",
            "resourceCompensations": f"{orch}.resourceCompensations",
        }
        truth_tables = {
            "daily_downloads_unique": f"{db}.daily_downloads_unique",
            "daily_resource_generation_counts": f"{orch}.daily_resource_generation_counts",
            "reactions": f"{db}.reactions",
        }
        target = f"{db}.entityMetricEvents"
        result = run(
            RunConfig(
                pg_url=pg_url,
                clickhouse_url=ch_dsn,
                cutoff=CUTOFF,
                table=target,
                state_database=state,
                ch_tables=ch_tables,
            )
        )
        assert result.status == "published"
        # Legacy image rows as the 2024 migration / app tracker wrote them: ReactionLike is folded into
        # Like by the read path (D), legacy Comment is not folded into commentCount.
        image = int(
            ch.query(
                f"SELECT entityId FROM {target} WHERE entityType = 'Image' AND metricType = 'Like' "
                "GROUP BY entityId ORDER BY count() DESC, entityId LIMIT 1"
            )[0][0]
        )
        then = datetime(2024, 1, 1, 12, 0, 0)
        legacy = [("Image", image, 100_000 + i, "ReactionLike", 1, then) for i in range(LEGACY_LIKES)]
        legacy += [("Image", image, 100_000 + i, "Comment", 1, then) for i in range(7)]
        ch.insert(target, legacy, ["entityType", "entityId", "userId", "metricType", "metricValue", "createdAt"])
        w = World(pg_url, db, target, ch_tables, truth_tables, ch, image, report=None)  # type: ignore[arg-type]
        w.report = w.report_for()
        yield w
    finally:
        ch.close()
        for name in (db, orch, state):
            ch_client.command(f"DROP DATABASE IF EXISTS {name} SYNC")


def _target_sums(w: World, entity_type: str, metric: str) -> dict[int, int]:
    return {
        int(e): int(s)
        for e, s in w.ch_rows(
            f"SELECT entityId, sum(metricValue) FROM {w.target} WHERE entityType = '{entity_type}' "
            f"AND metricType = '{metric}' GROUP BY entityId"
        )
    }


def _cause(p: PairCutover, name: str) -> CauseShare:
    (c,) = [c for c in p.causes if c.cause == name]
    return c


# -------------------------------------------------------------------------------------------------
# identities over every pair
# -------------------------------------------------------------------------------------------------


def test_every_pair_is_listed_and_the_split_adds_up(world: World) -> None:
    report = world.report
    pairs = {p.pair: p for p in report.pairs}
    assert report.target == world.target and report.cutoff == "2025-10-01 00:00:00"
    # pairs without a PostgreSQL column are "new"; Comic.* is not selected by default
    for name in (
        "Post.reactionCount",
        "User.tippedCount",
        "User.tipsGivenAmount",
        "Model.ratingCount",
        "ModelVersion.ratingCount",
        "Image.remixCount",
        "User.remixCount",
        "User.articleCount",
        "User.bountyCount",
        "User.postCount",
    ):
        assert pairs[name].status == "new", name
    assert not any(p.startswith("Comic.") for p in pairs)
    compared = [p for p in report.pairs if p.status == "compared"]
    assert {p.pair for p in compared} == {p for p in pairs if p in compared_pairs()}
    assert len(compared) >= 60
    for p in compared:
        assert p.sum_diff == p.staleness + p.semantic, p.pair
        assert p.semantic == sum(c.amount for c in p.causes) + p.unexplained, p.pair
        # the cause catalog explains every semantic difference of the generated data
        assert p.unexplained == 0 and p.unexplained_entities == 0, (p.pair, p.unexplained)
        hist = dict(p.histogram)
        assert [b for b, _ in p.histogram] == [b[0] for b in HISTOGRAM_BINS]
        assert sum(hist.values()) == p.entities and p.entities - hist["0"] == p.changed, p.pair
        assert sum(p.changed_split.values()) == p.changed, p.pair
        assert p.totals["N"] - p.totals["D"] == p.sum_diff and p.totals["T"] - p.totals["D"] == p.staleness
        assert len(p.largest) == min(20, p.changed)
        assert all(abs(a["N"] - a["D"]) >= abs(b["N"] - b["D"]) for a, b in zip(p.largest, p.largest[1:]))
    for p in report.pairs:
        if p.status == "new":
            assert p.staleness == 0 and p.sum_diff == p.semantic and p.unexplained == 0
    json.dumps(report.to_dict())  # serialisable as is
    # the scratch database is gone
    assert not world.ch_rows(f"SELECT name FROM system.databases WHERE name LIKE '{world.db}_scratch%'")


# -------------------------------------------------------------------------------------------------
# one pair recomputed entity by entity
# -------------------------------------------------------------------------------------------------


def test_post_comment_count_recomputed_by_hand(world: World) -> None:
    d = world.pg_map("""SELECT "postId", "commentCount" FROM "PostMetric" WHERE "timeframe" = 'AllTime'""")
    truth = world.pg_map("""SELECT t."postId", count(*) FROM "CommentV2" c JOIN "Thread" t ON t."id" = c."threadId"
                            WHERE t."postId" IS NOT NULL GROUP BY 1""")
    with_comments = {
        int(r[0])
        for r in world.pg_rows(
            """SELECT DISTINCT COALESCE(r."postId", t."postId") FROM "CommentV2" c JOIN "Thread" t ON t."id" = c."threadId"
           LEFT JOIN "Thread" r ON r."id" = t."rootThreadId" WHERE COALESCE(r."postId", t."postId") IS NOT NULL"""
        )
    }
    n = _target_sums(world, "Post", "commentCount")
    universe = set(d) | set(truth) | set(n) | with_comments
    # a post with no comment left keeps its displayed value (no result row, COALESCE(new, old))
    t = {e: truth[e] if e in truth else d.get(e, 0) for e in universe}
    diff = {e: n.get(e, 0) - d.get(e, 0) for e in universe}

    p = world.pair("Post.commentCount")
    assert p.status == "compared" and not p.presence
    assert p.entities == len(universe)
    assert p.changed == sum(1 for v in diff.values() if v)
    assert p.sum_diff == sum(diff.values())
    assert p.sum_abs_diff == sum(abs(v) for v in diff.values())
    assert p.staleness == sum(t[e] - d.get(e, 0) for e in universe)
    assert p.semantic == sum(n.get(e, 0) - t[e] for e in universe)
    top = min(universe, key=lambda e: (-abs(diff[e]), e))
    assert p.largest[0] == {"entityId": top, "D": d.get(top, 0), "T": t[top], "N": n.get(top, 0)}

    # replies: comments whose own thread has no post but whose root thread does
    replies = world.pg_rows("""SELECT count(*), count(DISTINCT root."postId") FROM "CommentV2" c
                               JOIN "Thread" own ON own."id" = c."threadId"
                               JOIN "Thread" root ON root."id" = own."rootThreadId"
                               WHERE own."postId" IS NULL AND root."postId" IS NOT NULL""")[0]
    assert replies[0] > 0
    assert (_cause(p, "replies").amount, _cause(p, "replies").entities) == (replies[0], replies[1])
    # comments created since the cutoff have no live events in this target
    since = world.pg_rows(f"""SELECT count(*) FROM "CommentV2" c JOIN "Thread" t ON t."id" = c."threadId"
                              LEFT JOIN "Thread" r ON r."id" = t."rootThreadId"
                              WHERE COALESCE(r."postId", t."postId") IS NOT NULL
                                AND c."createdAt" >= {PG_CUTOFF}""")[0][0]
    assert _cause(p, "since the cutoff: live events vs replay").amount == -since


def test_collection_causes_equal_independent_counts(world: World) -> None:
    items = world.pair("Collection.itemCount")
    null_items, null_collections = world.pg_rows(
        'SELECT count(*), count(DISTINCT "collectionId") FROM "CollectionItem" WHERE "addedById" IS NULL'
    )[0]
    assert null_items > 0
    adder = _cause(items, "NULL adder (deleted user)")
    assert (adder.amount, adder.entities) == (-null_items, null_collections)

    rows = world.pg_rows('SELECT "collectionId", COALESCE("permissions"::text[], \'{}\') FROM "CollectionContributor"')
    without_view = sum(1 for _c, perms in rows if "VIEW" not in perms)
    contributor_not_add = sum(1 for _c, perms in rows if set(perms) - {"VIEW"} and "ADD" not in perms)
    assert _cause(world.pair("Collection.followerCount"), "rows without VIEW").amount == without_view > 0
    contributors = world.pair("Collection.contributorCount")
    assert _cause(contributors, "non-VIEW rows without ADD").amount == contributor_not_add > 0


def test_model_version_download_causes(world: World) -> None:
    p = world.pair("ModelVersion.downloadCount")
    events = f"{world.ch_tables['modelVersionEvents']}"
    anon = world.ch_rows(
        f"SELECT sum(u), count() FROM (SELECT modelVersionId, uniqExact(ip) AS u FROM {events} "
        "WHERE type = 'Download' AND userId = 0 GROUP BY modelVersionId)"
    )[0]
    assert _cause(p, "anonymous downloaders").amount == -int(anon[0]) < 0
    assert _cause(p, "anonymous downloaders").entities == int(anon[1])
    repeat = world.ch_rows(
        f"SELECT sum(c - u) FROM (SELECT modelVersionId, count() AS c, uniqExact(userId) AS u "
        f"FROM {events} WHERE type = 'Download' AND userId > 0 AND userId != 490053 "
        "GROUP BY modelVersionId)"
    )[0][0]
    assert _cause(p, "repeat downloads").amount == int(repeat)


def test_presence_pairs_count_distinct_users(world: World) -> None:
    p = world.pair("Post.Like")
    assert p.presence
    d, c, posts = world.pg_rows(f"""SELECT sum(d), sum(c), count(*) FILTER (WHERE d <> c) FROM (
        SELECT i."postId", count(DISTINCT r."userId") AS d, count(*) AS c
        FROM "ImageReaction" r JOIN "Image" i ON i."id" = r."imageId"
        WHERE i."postId" IS NOT NULL AND r."reaction" = 'Like' AND r."createdAt" < {PG_CUTOFF} GROUP BY 1) q""")[0]
    presence = _cause(p, "presence vs sum")
    assert (presence.amount, presence.entities) == (int(d) - int(c), int(posts))
    assert presence.amount < 0
    assert p.totals["N"] == int(d)

    plain = world.report_for(pairs=["Post.Like", "Image.Like"], presence_metrics=())
    q = {x.pair: x for x in plain.pairs}["Post.Like"]
    assert not q.presence and q.totals["N"] == int(c) and q.totals["D"] == p.totals["D"]
    assert "presence vs sum" not in {x.cause for x in q.causes}
    assert [x.pair for x in plain.pairs] == ["Image.Like", "Post.Like"]


def test_image_displayed_value_folds_legacy_names(world: World) -> None:
    like = world.pair("Image.Like")
    image = world.legacy_image
    n = _target_sums(world, "Image", "Like")[image]
    t = world.pg_rows(f"""SELECT count(*) FROM "ImageReaction"
                          WHERE "imageId" = {image} AND "reaction" = 'Like'""")[0][0]
    # D = canonical + folded ReactionLike; N = the canonical rows (distinct users, all +1 here)
    assert like.changed == 1
    assert like.largest == [{"entityId": image, "D": n + LEGACY_LIKES, "T": t, "N": n}]
    assert like.sum_diff == -LEGACY_LIKES
    # legacy Comment rows are not folded into commentCount: nothing changes there
    assert world.pair("Image.commentCount").changed == 0


def test_uploads_and_reactions_received(world: World) -> None:
    scheduled, owners = world.pg_rows("""SELECT count(*), count(DISTINCT m."userId") FROM "ModelVersion" mv
        JOIN "Model" m ON m."id" = mv."modelId" WHERE mv."status" = 'Scheduled' AND mv."publishedAt" <= now()""")[0]
    uploads = _cause(world.pair("User.uploadCount"), "Scheduled versions")
    assert (uploads.amount, uploads.entities) == (-scheduled, owners)

    reactions = world.pair("User.reactionCount")
    log = world.truth_tables["reactions"]
    other = world.ch_rows(f"""SELECT sum(if(type IN ('Comment_Create', 'CommentV2_Create', 'Review_Create',
        'Question_Create', 'Answer_Create'), 1, -1)) FROM {log}
        WHERE type NOT IN ('Image_Create', 'Image_Delete', 'Article_Create', 'Article_Delete', 'BountyEntry_Create',
                           'BountyEntry_Delete')
          AND (time < toDateTime('2024-04-27 00:00:00', 'UTC') OR userId != ownerId)""")[0][0]
    assert _cause(reactions, "other reaction kinds").amount == -int(other) < 0


def test_errors(world: World) -> None:
    with pytest.raises(ConfigError, match="unknown pair"):
        world.report_for(pairs=["Post.nope"])
    with pytest.raises(ConfigError, match="does not exist"):
        cutover_report(Postgres(world.pg_url), world.ch, target=f"{world.db}.missing", cutoff=CUTOFF)
    with pytest.raises(ConfigError, match="truth-support"):
        world.report_for(pairs=["Post.Like"], truth_tables={"reaction": "x.y"})


# -------------------------------------------------------------------------------------------------
# HTML
# -------------------------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Sections of class "entity": their heading text, SVG count and SVG titles."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict[str, Any]] = []
        self.stack: list[str] = []
        self.in_h2 = False
        self.in_svg_title = False
        self.tags: set[str] = set()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v and not v.startswith("#")]
        if tag == "section" and "entity" in (a.get("class") or "").split():
            self.sections.append({"id": a.get("id"), "title": "", "svgs": 0, "svg_titles": []})
        if self.sections and tag == "h2":
            self.in_h2 = True
        if self.sections and tag == "svg":
            self.sections[-1]["svgs"] += 1
            assert a.get("role") == "img" and a.get("aria-labelledby")
        if self.sections and tag == "title" and "svg" in self.stack:
            self.in_svg_title = True
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop() == tag:
                break
        self.in_h2 = self.in_h2 and tag != "h2"
        self.in_svg_title = self.in_svg_title and tag != "title"

    def handle_data(self, data: str) -> None:
        if self.in_h2 and self.sections:
            self.sections[-1]["title"] += data
        if self.in_svg_title and self.sections:
            self.sections[-1]["svg_titles"].append(data)


def _evil_report(world: World) -> CutoverReport:
    """The module's report plus a pair whose (free-text BuzzTip) entity type is hostile markup."""
    evil = PairCutover(
        pair='<script>alert("x")</script>&.tippedCount',
        status="new",
        entities=1,
        changed=1,
        sum_diff=5,
        sum_abs_diff=5,
        semantic=5,
        causes=[CauseShare("new counter", 1, 5, "<b>d</b>")],
        largest=[{"entityId": 1, "D": 0, "T": 0, "N": 5}],
        histogram=[(b[0], 1 if b[0] == "1..10" else 0) for b in HISTOGRAM_BINS],
    )
    return CutoverReport(
        world.report.generated_at, world.report.cutoff, world.report.target + "<i>", world.report.pairs + [evil]
    )


def test_html_sections_charts_and_escaping(world: World) -> None:
    report = _evil_report(world)
    html = render_html(report)
    page = _Page()
    page.feed(html)
    groups = report.by_entity_type()
    assert [s["title"] for s in page.sections] == list(groups)
    assert len({s["id"] for s in page.sections}) == len(groups)
    for s in page.sections:
        assert s["svgs"] >= 1 and s["svg_titles"], s["title"]
    model = next(s for s in page.sections if s["title"] == "Model")
    assert model["svgs"] == 2 and any("distribution" in t for t in model["svg_titles"])
    # self-contained and escaped
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert page.urls == []
    assert "<script>" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in html
    assert "<b>d</b>" not in html and "<i>" not in html
    assert html.count("<section") == len(groups) + 2  # + the site at a glance and the summary


def _chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        path = candidate if os.path.isabs(candidate) and os.access(candidate, os.X_OK) else shutil.which(candidate)
        if path:
            return path
    return None


def _browse(args: list[str], *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*args, *more], capture_output=True, text=True, timeout=120, check=False)


def test_html_renders_in_headless_chromium(world: World, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip(
            "no Chromium binary (/usr/bin/chromium, chromium or chromium-browser on PATH): "
            "install Debian's `chromium` to run the rendering check"
        )
    page = tmp_path / "cutover.html"
    page.write_text(render_html(_evil_report(world)), encoding="utf-8")
    args = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    dom = _browse(args, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    errors = [ln for ln in dom.stderr.splitlines() if "Uncaught" in ln or ":CONSOLE(" in ln]
    assert errors == []
    parsed = _Page()
    parsed.feed(dom.stdout)
    assert [s["title"] for s in parsed.sections] == list(_evil_report(world).by_entity_type())
    assert all(s["svgs"] >= 1 for s in parsed.sections)
    shot = tmp_path / "cutover.png"
    done = _browse(args, "--window-size=1200,2000", f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0 and shot.stat().st_size > 10_000, done.stderr[-2000:]


# -------------------------------------------------------------------------------------------------
# the page reads on its own
# -------------------------------------------------------------------------------------------------


class _Text(HTMLParser):
    """What a reader sees (text and tooltips), and the sections by id."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.section_ids: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "style":
            self.skip += 1
        if tag == "section" and a.get("id"):
            self.section_ids.append(str(a["id"]))
        if a.get("title"):
            self.text.append(f" {a['title']} ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.text.append(data)


def _visible(html: str) -> _Text:
    page = _Text()
    page.feed(html)
    return page


def test_the_page_opens_with_the_whole_site_and_speaks_plainly(world: World) -> None:
    from metric_backfill.verify.cutover._html import site_causes

    report = world.report
    assert report.live_rows == 0  # the module's target holds the backfill only
    page = _visible(render_html(report))
    text = re.sub(r"\s+", " ", "".join(page.text))
    assert page.section_ids[:2] == ["glance", "summary"]  # the site-wide summary comes first
    compared = [p for p in report.pairs if p.status == "compared"]
    changed = sum(p.changed for p in compared)
    assert f"{changed:,} of {sum(p.entities for p in compared):,} counters" in text
    only_stale = sum(p.changed_split.get("staleness", 0) for p in compared)
    assert f"{only_stale:,} counters change for this reason only" in text
    # the top causes over every entity type, largest first, and their sum is every cause's sum
    causes = site_causes(report)
    assert [abs(c.amount) for c in causes] == sorted((abs(c.amount) for c in causes), reverse=True)
    for c in causes[:3]:
        assert c.cause in text
    top = next(c for c in causes if c.cause != "unexplained")
    assert top.amount == sum(c.amount for p in compared for c in p.causes if c.cause == top.cause)
    assert top.pairs == [p.pair for p in compared if any(c.cause == top.cause for c in p.causes)]
    # no internal references on the page, in text or tooltips
    for ref in (r"\bT\d{1,2}\b", "§", "README", r"docs/", "semantics.md"):
        assert not re.search(ref, text), (ref, re.search(rf".{{60}}{ref}.{{60}}", text))
    # a target without live events: the page says which cause is an artifact of the data
    assert "No live events in this target" in text and "artifact of this data" in text
    image = _visible(render_html(replace(report, live_rows=12)))
    assert "No live events in this target" not in "".join(image.text)
    assert "artifact of this data" not in "".join(image.text)
    assert "Images have no *Metric table" in text


def test_live_rows_counts_the_events_since_the_cutoff(world: World) -> None:
    row = ("Image", world.legacy_image, 999_999, "Like", 1, datetime(2025, 11, 2))
    world.ch.insert(world.target, [row], ["entityType", "entityId", "userId", "metricType", "metricValue", "createdAt"])
    try:
        assert world.report_for(pairs=["Image.Like"]).live_rows == 1
        assert world.report_for(pairs=["Image.Heart"]).live_rows == 0
    finally:
        world.ch.command(f"DELETE FROM {world.target} WHERE userId = 999999", settings={"mutations_sync": 2})
    assert world.report_for(pairs=["Image.Like"]).live_rows == 0


def test_html_fits_700px_and_prints_every_folded_part(world: World, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium binary: install Debian's `chromium` to run the rendering check")
    html = render_html(world.report)
    args = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    # A measuring script is added to a copy of the page (the page itself has none).
    probe = tmp_path / "probe.html"
    probe.write_text(
        html.replace(
            "</body>",
            "<script>document.body.setAttribute('data-overflow', "
            "String(document.documentElement.scrollWidth - window.innerWidth));</script></body>",
        ),
        encoding="utf-8",
    )
    dom = _browse(args, "--window-size=700,1000", "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    overflow = re.search(r'data-overflow="(-?\d+)"', dom.stdout)
    assert overflow and int(overflow.group(1)) <= 0, overflow  # no sideways scrolling of the page

    def pages(doc: str, name: str) -> int:
        src, pdf = tmp_path / f"{name}.html", tmp_path / f"{name}.pdf"
        src.write_text(doc, encoding="utf-8")
        done = _browse(args, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", src.as_uri())
        assert done.returncode == 0 and pdf.exists(), done.stderr[-2000:]
        return len(re.findall(rb"/Type\s*/Page(?!s)", pdf.read_bytes()))

    folded = html.count("<details>")
    assert folded > 3
    printed = pages(html, "as-is")
    opened = pages(html.replace("<details>", "<details open>"), "opened")
    closed = pages(html.replace("@media print", "@media never"), "screen-css")
    assert printed == opened > closed  # printed, every folded part is open
