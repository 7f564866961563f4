"""Alembic environment for the registry; run through ``loopline.registry.database``."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection

from loopline.registry.database import VERSION_TABLE, create_registry_engine
from loopline.registry.schema import Base

OPTIONS: dict[str, Any] = {
    "target_metadata": Base.metadata,
    "version_table": VERSION_TABLE,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    "render_as_batch": True,
    "compare_type": True,
}


def run_offline(url: str) -> None:
    context.configure(url=url, literal_binds=True, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: Connection) -> None:
    context.configure(connection=connection, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    connection = config.attributes.get("connection")
    if context.is_offline_mode():
        if url is None:
            raise RuntimeError("offline migrations need sqlalchemy.url")
        run_offline(url)
    elif connection is not None:
        run_online(connection)
    elif url is not None:
        engine = create_registry_engine(url)
        try:
            with engine.begin() as own_connection:
                run_online(own_connection)
        finally:
            engine.dispose()
    else:
        raise RuntimeError("registry migrations need a connection or sqlalchemy.url")


main()
