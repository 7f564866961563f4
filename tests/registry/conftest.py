"""Fixtures: a fresh registry per test, on SQLite and on PostgreSQL.

PostgreSQL: one uniquely named database per test session (dropped at the end), and one
schema per test inside it. The server URL comes from LOOPLINE_TEST_PG_URL; when the
server is unreachable the PostgreSQL tests fail unless LOOPLINE_SKIP_PG=1.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from loopline.registry import Registry
from tests.registry.registry_testing import ManualClock

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/"
BACKENDS = ["sqlite", "postgresql"]


def _libpq(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[URL]:
    """A fresh database on the test PostgreSQL server, dropped after the session."""
    server = make_url(os.environ.get("LOOPLINE_TEST_PG_URL") or DEFAULT_PG_URL)
    admin = server.set(database=server.database or "postgres")
    try:
        connection = psycopg.connect(_libpq(admin), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        unreachable = str(error)
    else:
        unreachable = ""
    if unreachable:
        if os.environ.get("LOOPLINE_SKIP_PG") == "1":
            pytest.skip(f"PostgreSQL unreachable and LOOPLINE_SKIP_PG=1: {unreachable}")
        pytest.fail(
            f"PostgreSQL is unreachable at {admin.render_as_string()}: {unreachable}\n"
            "Start it with `sudo scripts/ensure_postgres.sh`, point LOOPLINE_TEST_PG_URL at "
            "another server, or set LOOPLINE_SKIP_PG=1 to skip the PostgreSQL tests.",
            pytrace=False,
        )
    name = f"loopline_registry_test_{uuid.uuid4().hex[:12]}"
    with connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield server.set(database=name)
        finally:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            connection.execute(drop.format(sql.Identifier(name)))


@pytest.fixture
def pg_url(pg_database: URL) -> Iterator[str]:
    """The URL of an empty schema of its own, inside the session database."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = pg_database.update_query_dict({"options": f"-csearch_path={schema}"})
    with psycopg.connect(_libpq(pg_database), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        yield url.render_as_string(hide_password=False)
        connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=BACKENDS)
def registry_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty, not yet migrated registry database, on each backend."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    folder = tmp_path_factory.mktemp("registry")
    return f"sqlite:///{folder / 'state' / 'registry.db'}"


@pytest.fixture
def clock() -> ManualClock:
    """The clock every change of the ``registry`` fixture reads."""
    return ManualClock()


@pytest.fixture
def registry(registry_url: str, clock: ManualClock) -> Iterator[Registry]:
    """A migrated, empty registry driven by ``clock``."""
    with Registry(registry_url, now=clock) as registry:
        registry.upgrade()
        yield registry
