"""OnlineReader must return exactly what Feast's online read returns, only faster."""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from loopline import features
from loopline.online import OnlineReader


def _feast(store: Any, service: Any, entity: str) -> Callable[[list[int]], Any]:
    def read(ids: list[int]) -> dict[str, list[Any]]:
        rows = [{entity: i} for i in ids]
        return store.get_online_features(features=service, entity_rows=rows).to_dict()  # type: ignore[no-any-return]

    return read


def _outcome(read: Callable[[list[int]], Any], ids: list[int]) -> Any:
    try:
        return read(ids)
    except Exception as error:  # Feast raises for some inputs (the empty list): so must we
        return ("raised", type(error))


def _assert_same(expected: Any, got: Any) -> None:
    assert type(got) is type(expected)
    if not isinstance(expected, dict):
        assert got == expected
        return
    assert list(got) == list(expected)  # same keys in the same order
    for name, values in expected.items():
        assert len(got[name]) == len(values), name
        for a, b in zip(values, got[name], strict=True):
            assert type(b) is type(a), (name, a, b)
            assert b == a or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), name


def _stored_ids(database: Path) -> list[int]:
    from feast.infra.key_encoding_utils import deserialize_entity_key

    with sqlite3.connect(database) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        keys = {k for t in tables for (k,) in conn.execute(f'SELECT entity_key FROM "{t}"')}
    ids = [deserialize_entity_key(k, 3).entity_values[0].int64_val for k in keys]
    return sorted(ids)


def _set_value(database: Path, table: str, entity_id: int, feature: str, value: float) -> None:
    """Store a raw double, as a writer that keeps NaN would."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=["customer_id"], entity_values=[Value(int64_val=entity_id)])
    blob = Value(double_val=value).SerializeToString()
    with sqlite3.connect(database) as conn:
        conn.execute(
            f'UPDATE "{table}" SET value = ? WHERE entity_key = ? AND feature_name = ?',
            (blob, serialize_entity_key(key, 3), feature),
        )


@pytest.fixture()
def private(built: Any, paths: Any, tmp_path: Path) -> Callable[[dict[str, Any]], Any]:
    """A FeatureStore on copies of the session's registry and online store (it may write)."""
    from feast import FeatureStore

    shutil.copy2(paths.feast_dir / "registry.db", tmp_path / "registry.db")
    shutil.copy2(paths.feast_dir / "online_store.db", tmp_path / "online_store.db")
    config = yaml.safe_load(
        os.path.expandvars((paths.feature_repo / "feature_store.yaml").read_text())
    )

    def store(online_store: dict[str, Any]) -> Any:
        config["registry"] = str(tmp_path / "registry.db")
        config["online_store"] = online_store
        target = tmp_path / "feature_store.yaml"
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        return FeatureStore(repo_path=str(paths.feature_repo), fs_yaml_file=target)

    return store


def test_same_as_feast_for_every_stored_entity_and_more(
    built: Any, paths: Any, params: Any
) -> None:
    store = features.feature_store(paths)
    service = store.get_feature_service(params.features.service)
    reader = OnlineReader(store, service)
    assert reader.fast, reader.reason
    feast = _feast(store, service, params.dataset.entity)

    known = _stored_ids(paths.feast_dir / "online_store.db")
    assert len(known) > 100
    unknown = [max(known) + 1, -1, 0, 2**63 - 1, -(2**63)]
    cases = [
        known,
        known + unknown,
        unknown,
        [known[5], known[5], unknown[0], known[0], known[5], unknown[0]],
        [known[0]],
        [unknown[0]],
        list(reversed(known))[:1000],
        [],
    ]
    for ids in cases:
        _assert_same(_outcome(feast, ids), _outcome(reader.read, ids))

    # Each thread reads through a connection of its own.
    with ThreadPoolExecutor(4) as pool:
        for got in pool.map(reader.read, [known] * 8):
            _assert_same(feast(known), got)


def test_new_values_written_to_the_store_are_read(
    private: Any, params: Any, tmp_path: Path
) -> None:
    path = tmp_path / "online_store.db"
    store = private({"type": "sqlite", "path": str(path)})
    service = store.get_feature_service(params.features.service)
    reader, feast = OnlineReader(store, service), _feast(store, service, params.dataset.entity)
    ids = _stored_ids(path)[:50]
    before = reader.read(ids)

    # What materialization does: Feast upserts rows into the same database file.
    changed = pd.DataFrame(
        {
            params.dataset.entity: ids[:10],
            "event_timestamp": pd.Timestamp.now(tz="UTC"),
            "plan": "changed",
            "country": "ZZ",
            "payment_method": "card",
            "contract": "monthly",
            "tenure_months": 1.0,
            "monthly_charges": 12345.0,
            "discount_pct": 0.5,
        }
    )
    changed.loc[0, "monthly_charges"] = math.nan  # a missing measurement: Feast stores null
    store.write_to_online_store("customer_profile", changed)
    _set_value(path, f"{store.project}_customer_profile", ids[1], "monthly_charges", math.nan)
    after = reader.read(ids)
    _assert_same(feast(ids), after)
    assert after["monthly_charges"][0] is None
    assert math.isnan(after["monthly_charges"][1])
    assert after["charges_per_usage_hour"][1] is None  # Feast turns a computed NaN into None
    assert after["monthly_charges"][2:10] == [12345.0] * 8
    assert after["plan"][:10] == ["changed"] * 10
    assert after["charges_per_usage_hour"] != before["charges_per_usage_hour"]
    assert after["monthly_charges"][10:] == before["monthly_charges"][10:]

    # A database file replaced under the reader is reopened.
    replacement = path.with_name("replacement.db")
    shutil.copy2(path, replacement)
    with sqlite3.connect(replacement) as conn:
        conn.execute(f'DELETE FROM "{store.project}_customer_activity"')
    os.replace(replacement, path)
    fresh = private({"type": "sqlite", "path": str(path)})
    replaced = reader.read(ids)
    _assert_same(_feast(fresh, service, params.dataset.entity)(ids), replaced)
    assert replaced["usage_hours"] == [None] * len(ids)


def test_other_online_stores_fall_back_to_feast(private: Any, params: Any) -> None:
    store = private({"type": "redis", "connection_string": "localhost:1"})
    reader = OnlineReader(store, store.get_feature_service(params.features.service))
    assert reader.fast is False
    assert reader.reason is not None and "redis" in reader.reason
