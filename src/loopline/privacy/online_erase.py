"""Delete one subject from the Feast online store, whichever store the profile uses.

Feast's online stores can drop whole tables but have no call to delete one entity, so this
follows each store's own layout (read from the Feast version in ``uv.lock``):

- SQLite and PostgreSQL: a table per feature view, rows keyed by the serialized entity key;
- Redis: one hash per entity key and project, holding every feature view's fields.

The next materialization cannot bring the subject back: the sources it reads are rebuilt
from accepted batches, and every later batch skips tombstoned subjects.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def erase_online(store: Any, pseudonym: int) -> int:
    """Delete the subject's rows from every feature view; how many rows (or keys) went."""
    kind = store.config.online_store.type
    if kind == "sqlite":
        return _sqlite(store, pseudonym)
    if kind == "postgres":
        return _postgres(store, pseudonym)
    if kind == "redis":
        return _redis(store, pseudonym)
    raise NotImplementedError(
        f"erasing a subject from the {kind!r} online store is not built: Loopline erases from "
        "its sqlite, postgres and redis profiles (docs/privacy.md)"
    )


def _entity_keys(store: Any, pseudonym: int) -> list[tuple[Any, Any, bytes]]:
    """(feature view, its Feast EntityKey, the serialized key) for every feature view."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    version = store.config.entity_key_serialization_version
    found = []
    for view in store.list_feature_views():
        (join_key,) = view.join_keys
        key = EntityKey(join_keys=[join_key], entity_values=[Value(int64_val=pseudonym)])
        found.append((view, key, bytes(serialize_entity_key(key, version))))
    return found


def _sqlite(store: Any, pseudonym: int) -> int:
    from feast.infra.online_stores.sqlite import _quote_id, _table_id

    config = store.config
    database = Path(str(config.online_store.path))
    if not database.is_absolute():
        database = Path(str(config.repo_path)) / database
    removed = 0
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA secure_delete=ON")  # deleted rows zeroed, not left in free pages
        for view, _, key in _entity_keys(store, pseudonym):
            table = _quote_id(_table_id(config.project, view))
            # table: Feast's own quoted id; the key is bound
            removed += conn.execute(f"DELETE FROM {table} WHERE entity_key = ?", (key,)).rowcount  # nosec B608
    return removed


def _postgres(store: Any, pseudonym: int) -> int:
    from feast.infra.online_stores.postgres_online_store.postgres import _table_id
    from feast.infra.utils.postgres.connection_utils import _get_conn
    from psycopg import sql

    config = store.config
    versioned = config.registry.enable_online_feature_view_versioning
    removed = 0
    # Feast's own connection: it sets the profile's schema the same way Feast's reads do.
    with _get_conn(config.online_store) as conn, conn.cursor() as cursor:
        for view, _, key in _entity_keys(store, pseudonym):
            table = sql.Identifier(_table_id(config.project, view, versioned))
            cursor.execute(sql.SQL("DELETE FROM {} WHERE entity_key = %s").format(table), (key,))
            removed += cursor.rowcount
        conn.commit()
    return removed


def _redis(store: Any, pseudonym: int) -> int:
    from feast.infra.online_stores.helpers import _redis_key
    from feast.infra.online_stores.redis import RedisOnlineStore

    config = store.config
    version = config.entity_key_serialization_version
    client = RedisOnlineStore()._get_client(config.online_store)
    # Views that share the join key share one hash: delete each distinct key once.
    entity_keys = _entity_keys(store, pseudonym)
    keys = {_redis_key(config.project, key, version) for _, key, _ in entity_keys}
    return int(client.delete(*keys)) if keys else 0
