"""Shared fixtures: one embedded PostgreSQL server and one ClickHouse engine per test session.

chDB allows one engine path per process, so every test shares the session's engine and isolates
itself with its own databases instead. Set METRIC_BACKFILL_TEST_CLICKHOUSE_URL to run the same
tests against a ClickHouse server.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator

import pytest

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

from metric_backfill.demo._embedded import EmbeddedPostgres, chdb_dsn  # noqa: E402

SERVER_URL = os.environ.get("METRIC_BACKFILL_TEST_CLICKHOUSE_URL")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg")).start()
    yield server
    server.stop()


@pytest.fixture()
def pg_url(pg_server: EmbeddedPostgres) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return pg_server.create_database(f"t_{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="session")
def ch_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The ClickHouse DSN every test in this session uses (one chDB engine, or a server)."""
    if SERVER_URL:
        return SERVER_URL
    return chdb_dsn(tmp_path_factory.mktemp("chdb"))


@pytest.fixture(scope="session")
def ch_client(ch_dsn: str):  # type: ignore[no-untyped-def]
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=ch_dsn)
    yield client
    client.close()


@pytest.fixture()
def ch_db(ch_client) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh ClickHouse database name for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    ch_client.command(f"CREATE DATABASE {name}")
    yield name
    ch_client.command(f"DROP DATABASE IF EXISTS {name} SYNC")
