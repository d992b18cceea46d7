"""Configuration parsing and identity."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from metric_backfill import ConfigError, RunConfig, parse_cutoff
from metric_backfill.catalog import Pair
from metric_backfill._errors import redact


@pytest.mark.parametrize(
    "text, value",
    [
        ("2025-10-01 00:00:00", datetime(2025, 10, 1)),
        ("2025-10-01 12:34:56.5", datetime(2025, 10, 1, 12, 34, 56, 500000)),
        ("2025-10-01T12:34:56.123Z", datetime(2025, 10, 1, 12, 34, 56, 123000)),
        ("2025-10-01 00:00:00+00:00", datetime(2025, 10, 1)),
        ("2025-10-01T02:00:00+02:00", datetime(2025, 10, 1)),
        ("2025-10-01 00:00:00.250-0530", datetime(2025, 10, 1, 5, 30, 0, 250000)),
        ("2025-10-01 01:00:00 +01", datetime(2025, 10, 1)),
        ("2025-10-01 00:00:00z", datetime(2025, 10, 1)),
        ("2025-03-01 00:30:00+01:00", datetime(2025, 2, 28, 23, 30)),  # across a month boundary
    ],
)
def test_cutoff_accepts_iso_8601_and_converts_offsets_to_utc(text: str, value: datetime) -> None:
    assert parse_cutoff(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2025-10-01",
        "2025-13-01 00:00:00",
        "2025-10-01 00:00:00+25:00",
        "2025-10-01 00:00:00+2",
        "2025-10-01 00:00:00.1234",
        "yesterday",
    ],
)
def test_malformed_cutoff_is_a_config_error_naming_the_format(text: str) -> None:
    with pytest.raises(ConfigError, match=r"ISO 8601, 'YYYY-MM-DD HH:MM:SS\[\.fff\]'"):
        parse_cutoff(text)


def _cfg(**kw: object) -> RunConfig:
    base: dict[str, object] = dict(
        pg_url="postgresql://u:secret@h/db", clickhouse_url="chdb:///tmp/x", cutoff=datetime(2025, 10, 1)
    )
    base.update(kw)
    return RunConfig(**base)  # type: ignore[arg-type]


def test_fingerprint_ignores_tuning_but_not_inputs() -> None:
    assert _cfg().fingerprint() == _cfg(concurrency=4, chunk_rows=10).fingerprint()
    assert _cfg().fingerprint() != _cfg(cutoff=datetime(2025, 10, 2)).fingerprint()
    assert _cfg().fingerprint() != _cfg(only=(Pair("Image", "Like"),)).fingerprint()


def test_the_fingerprint_is_what_the_run_computes_not_how_it_connects() -> None:
    """Resumed through another host, port, replica or user, a run is the same run."""
    other = _cfg(
        pg_url="postgresql://replica_user:other@replica.internal:6432/db",
        clickhouse_url="http://u:p@ch2:8123/default",
        pg_lock_timeout=5,
    )
    assert other.fingerprint() == _cfg().fingerprint()
    assert _cfg(pg_url="postgresql://u:secret@h/another_db").fingerprint() != _cfg().fingerprint()


def test_repr_masks_the_passwords() -> None:
    text = repr(_cfg(clickhouse_url="http://default:chpw123@ch:8123/x"))
    assert "secret" not in text and "chpw123" not in text and "***" in text


def test_public_dict_has_no_password_and_round_trips() -> None:
    cfg = _cfg(
        source_cutoffs={"ImageReaction": datetime(2025, 9, 1, 0, 0, 0, 5000)},
        earnings_cutoff_date=date(2025, 10, 2),
        only=(Pair("a.b", "tippedCount"),),
    )
    d = cfg.public_dict()
    assert "secret" not in str(d)
    back = RunConfig.from_public(d, clickhouse_url=cfg.clickhouse_url, pg_url=cfg.pg_url)
    assert back == cfg


def test_earnings_cutoff_date_defaults_to_the_first_whole_day_not_before_the_cutoff() -> None:
    assert _cfg().earnings_cutoff() == date(2025, 10, 1)
    assert _cfg(cutoff=datetime(2025, 10, 1, 0, 0, 1)).earnings_cutoff() == date(2025, 10, 2)
    assert _cfg(earnings_cutoff_date=date(2025, 9, 1)).earnings_cutoff() == date(2025, 9, 1)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"sources": ("Nope",)}, "unknown source 'Nope'"),
        ({"source_cutoffs": {"Nope": datetime(2025, 1, 1)}}, "unknown source in a per-source cutoff 'Nope'"),
        ({"source_cutoffs": {"imagereaction": datetime(2025, 1, 1)}}, "did you mean ImageReaction"),
        ({"sources": ("imagereaction",)}, "did you mean ImageReaction"),
        ({"state_database": "`default`.`x`"}, "invalid --state-db"),
        ({"state_database": "st.db"}, "invalid --state-db"),
        ({"table": "a`b"}, "invalid --table"),
        ({"chunk_rows": 0}, "--chunk-rows must be a whole number of at least 1"),
        ({"publish_slice_rows": -5}, "--publish-slice-rows"),
        ({"earnings_source": "x"}, "unknown earnings source"),
        ({"backfill_version": 300}, "between 0 and 255"),
        ({"concurrency": 0}, "at least 1"),
    ],
)
def test_bad_names_are_rejected(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _cfg(**kw)


@pytest.mark.parametrize(
    "text, clean",
    [
        ("postgresql://user:s3cr%40t@host:5432/db", "postgresql://user:***@host:5432/db"),
        ("http://default:pw@ch:8123/x failed", "http://default:***@ch:8123/x failed"),
        ("host=h password=abc dbname=x", "host=h password=*** dbname=x"),
        ("no secrets here", "no secrets here"),
    ],
)
def test_redact(text: str, clean: str) -> None:
    assert redact(text) == clean
