"""Engines, transactions and migrations for the registry, on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from loopline.registry.errors import RegistryConflict

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "registry_alembic_version"
BUSY_TIMEOUT_S = 30.0
_WRITE = "loopline_registry_write"
# Serialization failure and deadlock: PostgreSQL's own ways of saying "someone else won".
_PG_CONTENTION = {"40001", "40P01"}
_MIGRATION_LOCK = 0x4C4F4F50  # any constant shared by every Loopline process


def create_registry_engine(url: str) -> Engine:
    """An engine for ``url`` whose write transactions lock the registry up front on SQLite."""
    sa_url = make_url(url)
    if sa_url.get_backend_name() != "sqlite":
        return create_engine(sa_url, pool_pre_ping=True)
    engine = create_engine(sa_url, connect_args={"timeout": BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # sqlite3 would otherwise emit its own deferred BEGIN lazily; we emit BEGIN ourselves.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers (and a change's planning phase) run while a writer holds the lock.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # A deleted or replaced row is zeroed, not left in free space: a destroyed subject key
    # (privacy/keystore.py) must not be readable from the file afterwards.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # A deferred transaction that reads and then writes can fail with SQLITE_BUSY without
    # waiting; taking the write lock at BEGIN makes writers queue on the busy timeout instead.
    writes = connection.get_execution_options().get(_WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def reading(engine: Engine) -> Engine:
    """The engine to read through: one consistent snapshot per transaction."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="REPEATABLE READ")
    return engine


def writing(engine: Engine) -> Engine:
    """The engine to write through (takes the SQLite write lock at BEGIN)."""
    return engine.execution_options(**{_WRITE: True})


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reading; its one transaction is rolled back when it closes."""
    with Session(engine) as session:
        yield session


@contextmanager
def write_session(engine: Engine, what: str) -> Iterator[Session]:
    """A session committed at the end; losing a race to another writer is a RegistryConflict."""
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield session
    except IntegrityError as error:
        raise RegistryConflict(
            f"{what} conflicted with another change committed at the same time; "
            "nothing was recorded, retry it"
        ) from error
    except DBAPIError as error:
        if not is_contention(error):
            raise
        raise RegistryConflict(
            f"{what} could not get the registry ({error.orig}); nothing was recorded, retry it"
        ) from error


def is_contention(error: DBAPIError) -> bool:
    """Whether a database error means another writer held or won the registry."""
    code = getattr(error.orig, "sqlstate", None)
    if code in _PG_CONTENTION:
        return True
    message = str(error.orig).lower()
    return "database is locked" in message or "database is busy" in message


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic config for the registry migrations, built in code (no alembic.ini).

    To add a migration after changing ``schema.py``::

        command.revision(alembic_config(url), message="...", autogenerate=True)
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> None:
    """Bring the registry schema to the newest migration; a no-op when it is already there."""
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
    with writing(engine).begin() as connection:
        if engine.dialect.name == "postgresql":
            # Two processes upgrading a fresh database at once would both create the tables.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        command.upgrade(alembic_config(connection=connection), "head")
