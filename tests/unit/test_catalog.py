"""The catalog as data: coverage of the reference lists and selection rules."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from metric_backfill import CATALOG, ConfigError, RunConfig
from metric_backfill.catalog import BUZZTIP_ENTITY_TYPES, Pair, source_by_name
from metric_backfill.catalog._describe import describe_catalog, missing_pairs, read_pair_list
from metric_backfill.engine._plan import int_ranges, select_pairs

SQL = Path(__file__).parents[2] / "metric_backfill" / "catalog" / "lists"


def test_every_reference_pair_is_produced() -> None:
    sept = read_pair_list((SQL / "metrics-2025-09.txt").read_text())
    later = read_pair_list((SQL / "metrics-later.txt").read_text())
    assert len(sept) == 73 and len(later) == 16
    assert missing_pairs(sept) == []
    assert missing_pairs(later) == []


def test_catalog_produces_nothing_outside_the_lists() -> None:
    listed = set(read_pair_list((SQL / "metrics-2025-09.txt").read_text())) | set(
        read_pair_list((SQL / "metrics-later.txt").read_text())
    )
    produced = {p for s in CATALOG for p in s.pairs(BUZZTIP_ENTITY_TYPES)}
    assert produced == listed


def test_missing_pairs_reports_unknown_ones() -> None:
    P = Pair.parse
    assert missing_pairs([P("Image.Like"), P("Image.ReactionLike"), P("Bounty.tippedCount")]) == [
        P("Image.ReactionLike"),
        P("Bounty.tippedCount"),
    ]
    # A BuzzTip entity type found in the database makes its pairs real.
    assert missing_pairs([P("Bounty.tippedCount")], ("Bounty",)) == []


def test_buzztip_entity_type_is_verbatim() -> None:
    pairs = source_by_name("BuzzTip").pairs(("bountyEntry", "ComicProject"))
    assert Pair("bountyEntry", "tippedCount") in pairs and Pair("BountyEntry", "tippedCount") not in pairs
    assert Pair("ComicProject", "tippedAmount") in pairs and Pair("Comic", "tippedAmount") not in pairs


def test_a_pair_is_two_values_and_a_dotted_entity_type_stays_whole() -> None:
    assert Pair.parse("a.b.tippedCount") == Pair("a.b", "tippedCount")
    assert str(Pair("a.b", "tippedCount")) == "a.b.tippedCount"
    assert "a.b" in source_by_name("BuzzTip").pairs(("a.b",))[0]
    for bad in ("Like", ".Like", "Image."):
        with pytest.raises(ValueError):
            Pair.parse(bad)


def _cfg(**kw: object) -> RunConfig:
    return RunConfig(pg_url="postgresql://h/db", clickhouse_url="chdb:///tmp/x", cutoff=datetime(2025, 10, 1), **kw)  # type: ignore[arg-type]


def test_default_selection_leaves_comic_out_and_takes_one_earnings_path() -> None:
    sel = select_pairs(_cfg(), list(BUZZTIP_ENTITY_TYPES))
    assert "ComicProjectEngagement" not in sel
    assert "resourceCompensations" in sel and "buzz_resource_compensation" not in sel
    assert Pair("ComicProject", "tippedCount") in sel["BuzzTip"]  # tips on comics are not Comic.* engagement
    sept = select_pairs(_cfg(earnings_source="buzz_resource_compensation"), list(BUZZTIP_ENTITY_TYPES))
    assert "buzz_resource_compensation" in sept and "resourceCompensations" not in sept
    comic = select_pairs(_cfg(sources=("ComicProjectEngagement",)), [])
    assert comic == {
        "ComicProjectEngagement": [
            Pair("Comic", m) for m in ("followerCount", "hiddenCount", "readerCount", "chapterReadCount")
        ]
    }


def test_only_selects_pairs_and_names_unknown_ones() -> None:
    P = Pair.parse
    sel = select_pairs(_cfg(only=(P("Image.Like"), P("User.reactionCount"))), list(BUZZTIP_ENTITY_TYPES))
    assert sel == {
        "ImageReaction": [P("Image.Like"), P("User.reactionCount")],
        "ArticleReaction": [P("User.reactionCount")],
        "BountyEntryReaction": [P("User.reactionCount")],
    }
    with pytest.raises(ConfigError, match=r"unknown pair 'Image.ReactionLike'"):
        select_pairs(_cfg(only=(P("Image.ReactionLike"),)), [])
    with pytest.raises(ConfigError, match="did you mean Image.Like"):
        select_pairs(_cfg(only=(P("image.like"),)), [])
    with pytest.raises(ConfigError, match="not produced by the selected sources"):
        select_pairs(_cfg(only=(P("Image.Like"),), sources=("Comment",)), [])
    # an entityType holding a dot is one entityType (BuzzTip's are free text)
    assert select_pairs(_cfg(only=(P("a.b.tippedCount"),)), ["a.b"]) == {"BuzzTip": [Pair("a.b", "tippedCount")]}


def test_both_earnings_paths_at_once_are_refused() -> None:
    with pytest.raises(ConfigError, match="both earnings sources"):
        select_pairs(_cfg(sources=("resourceCompensations", "buzz_resource_compensation")), [])


def test_plan_description_lists_rules_and_membership() -> None:
    doc = describe_catalog()
    by_pair = {p["pair"]: p for p in doc["pairs"]}
    assert by_pair["Image.Collection"]["source"] == "CollectionItem"
    assert by_pair["Image.Collection"]["list"] == "2025-09"
    assert by_pair["User.postCount"]["list"] == "later"
    assert by_pair["Comic.followerCount"]["default"] is False
    assert (
        "requires image_found" in by_pair["User.reactionCount"]["rule"]
        or by_pair["User.reactionCount"]["source"] != "ImageReaction"
    )
    assert {s["name"] for s in doc["sources"]} == {s.name for s in CATALOG}


def test_int_ranges_cover_the_range_half_open_without_gaps() -> None:
    for lo, hi, pieces in ((1, 101, 4), (0, 7, 10), (5, 6, 3), (-50, 50, 7)):
        ranges = int_ranges(lo, hi, pieces)
        assert ranges[0][0] == lo and ranges[-1][1] == hi
        assert all(a < b for a, b in ranges)
        assert all(ranges[i][1] == ranges[i + 1][0] for i in range(len(ranges) - 1))


def test_int_ranges_follow_a_skewed_distribution() -> None:
    # 90% of the rows have value < 10 on a 0..1000 range: most cuts land below 10.
    def below(x: int) -> float:
        return 0.9 * min(x, 10) / 10 if x <= 10 else 0.9 + 0.1 * (x - 10) / 990

    ranges = int_ranges(0, 1000, 10, below)
    assert sum(1 for a, _ in ranges if a < 10) >= 8
    assert ranges[0][0] == 0 and ranges[-1][1] == 1000
