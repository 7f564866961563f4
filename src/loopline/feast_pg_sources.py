"""Feast sources in PostgreSQL: the parquet sources, loaded into tables named by content.

Feast's PostgreSQL offline store reads only ``PostgreSQLSource`` tables, while the features
step writes parquet files (a run's into its own workspace). Rather than keep a second copy of
``feature_repo/definitions.py``, the definitions' file sources are rewritten when they are
registered: each file is loaded into ``<schema>.<view>_<hash of the file>`` and the view's
source becomes that table.

Naming tables by content is what keeps runs apart: two runs at once with different data get
different tables, and a run's registry points at its own; runs with the same data share a
table that is never changed after it is made. A table appears whole or not at all: it is
created and filled in one transaction, under a lock on its name, so a second loader waits and
then finds it. Publishing a run needs no copy: the published file is the run's, same hash.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopline.errors import LooplineError

if TYPE_CHECKING:
    from loopline.feast_profiles import PostgresServer

HASH_CHARS = 12
# Every table name stays within PostgreSQL's 63-byte identifiers.
VIEW_CHARS = 63 - HASH_CHARS - 1


def _column_type(name: str, dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(dtype):
        return "BIGINT"
    if pd.api.types.is_float_dtype(dtype):
        return "DOUBLE PRECISION"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "TIMESTAMPTZ"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return "TEXT"
    raise LooplineError(f"feature source column {name!r}: no PostgreSQL type for {dtype}")


def table_name(view: str, file: Path) -> str:
    """The table a source file becomes: the view's name and the file's content hash."""
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{view[:VIEW_CHARS]}_{digest.hexdigest()[:HASH_CHARS]}"


def _rows(frame: pd.DataFrame) -> Any:
    for column in frame.columns:
        # Feast reads a time without a zone as UTC; the table says so explicitly.
        if pd.api.types.is_datetime64_any_dtype(frame[column]) and frame[column].dt.tz is None:
            frame[column] = frame[column].dt.tz_localize("UTC")
    cells = frame.astype(object).where(frame.notna(), None)
    return cells.itertuples(index=False, name=None)


def load(conn: Any, schema: str, view: str, file: Path, keys: list[str]) -> str:
    """Make sure ``schema.<view>_<hash>`` holds ``file``; returns its quoted full name."""
    from psycopg import sql

    table = table_name(view, file)
    full = sql.Identifier(schema, table)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{schema}.{table}",))
        found = conn.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s", (schema, table)
        ).fetchone()
        if found is None:
            frame = pd.read_parquet(file)
            columns = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_column_type(c, t)))
                for c, t in frame.dtypes.items()
            )
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(full, columns))
            names = sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
            copying = sql.SQL("COPY {} ({}) FROM STDIN").format(full, names)
            with conn.cursor() as cur, cur.copy(copying) as sink:
                for row in _rows(frame):
                    sink.write_row(row)
            # Point-in-time joins and materialization look rows up by entity and time.
            index = sql.Identifier(f"{table}_keys")
            keyed = sql.SQL(", ").join(sql.Identifier(k) for k in keys)
            conn.execute(sql.SQL("CREATE INDEX {} ON {} ({})").format(index, full, keyed))
    return full.as_string(conn)


def ensure_schema(conn: Any, schema: str) -> None:
    from psycopg import sql

    with conn.transaction():
        # Two first loads at once would race in CREATE SCHEMA IF NOT EXISTS (a unique error).
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"schema {schema}",))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def in_postgres(objects: list[Any], server: PostgresServer, schema: str) -> list[Any]:
    """The objects with every file-sourced feature view reading its loaded table instead."""
    from feast import FeatureView, FileSource
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
        PostgreSQLSource,
    )

    files = [
        v for v in objects if type(v) is FeatureView and isinstance(v.batch_source, FileSource)
    ]
    if not files:
        return objects
    moved: dict[int, Any] = {}
    with server.connect() as conn:
        ensure_schema(conn, schema)
        for view in files:
            source = view.batch_source
            assert isinstance(source, FileSource)
            file = Path(source.path)
            if not file.is_file():
                raise LooplineError(
                    f"feature view {view.name!r}: its source {file} does not exist yet; "
                    "write the features first (loopline run, or the features step)"
                )
            keys = [*view.join_keys, source.timestamp_field]
            table = load(conn, schema, view.name, file, keys)
            changed = copy.copy(view)
            changed.batch_source = PostgreSQLSource(
                name=source.name,
                table=table,
                timestamp_field=source.timestamp_field,
                created_timestamp_column=source.created_timestamp_column,
                field_mapping=source.field_mapping,
            )
            moved[id(view)] = changed
    return [moved.get(id(o), o) for o in objects]
