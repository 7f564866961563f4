"""Each Feast profile serves and joins exactly what the local default does, on real servers.

The same batch goes through the default (SQLite online, DuckDB offline), the PostgreSQL
profile (offline and online) and the Redis profile (online): online reads through the
feature service (its on-demand view too) and point-in-time joins must agree value for value.
Each test has its own namespace (the PostgreSQL schema, the Redis keys' Feast project) and
removes it afterwards. The servers: LOOPLINE_PG_* (default 127.0.0.1:5432, database test)
and LOOPLINE_REDIS_* (default 127.0.0.1:6379); `make services` starts both.
"""

from __future__ import annotations

import math
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loopline import features, steps
from loopline.config import ConfigError, load_params
from loopline.data.contract import check_batch
from loopline.data.generate import Scenario, generate
from loopline.errors import LooplineError
from loopline.feast_profiles import FeatureStoreUnreachable, PostgresServer, RedisServer
from loopline.privacy import online_erase
from loopline.settings import Paths
from tests.conftest import make_project

SERVICE = "churn_v1"
UNKNOWN = 10**9  # a customer no store has seen: every stored feature comes back None
PROFILE_ENV = ("LOOPLINE_FEAST_STORE", "LOOPLINE_FEAST_NAMESPACE")


@pytest.fixture(scope="module")
def batch() -> pd.DataFrame:
    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    raw = generate(Scenario(80, 40, 11, date(2026, 1, 1), label_delay_days=5))
    return check_batch(raw, params.dataset, Path("profiles.parquet"))


@contextmanager
def as_project(root: Path, **env: str) -> Iterator[Paths]:
    """Act as the project at ``root`` with these Feast settings (and no others)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOOPLINE_HOME", str(root / ".loopline"))
        patch.setenv("LOOPLINE_PROJECT", str(root))
        for name in PROFILE_ENV:
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        paths = Paths(root, root / ".loopline")
        paths.feast_dir.mkdir(parents=True, exist_ok=True)
        yield paths


def served(paths: Paths, batch: pd.DataFrame) -> dict[str, Any]:
    """Write, register and materialize the batch; read it back online and offline."""
    params = load_params(paths.params_file)
    features.write_sources(batch, params.dataset, paths)
    features.apply(paths)
    start = batch[params.dataset.timestamp].min().to_pydatetime() - timedelta(seconds=1)
    features.materialize(paths, start, datetime.now(UTC))
    ids = sorted(int(i) for i in batch[params.dataset.entity].unique())
    store = features.feature_store(paths)
    online = features.online_features(store, SERVICE, params.dataset.entity, [*ids, UNKNOWN])
    labels = features.label_events(batch, params.dataset)
    joined = features.historical_features(paths, SERVICE, labels, params.dataset)
    return {"online": online, "historical": joined}


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory, batch: pd.DataFrame) -> dict[str, Any]:
    root = make_project(tmp_path_factory.mktemp("profiles") / "default")
    with as_project(root, LOOPLINE_FEAST_STORE="local") as paths:
        result = served(paths, batch)
    # What the profiles are compared with is worth comparing: values for every known
    # customer, none for the stranger, a join row for every label.
    online, joined = result["online"], result["historical"]
    assert all(v is not None for v in online["usage_hours"][:-1])
    assert online["usage_hours"][-1] is None
    assert len(joined) == len(features.label_events(batch, load_params(paths.params_file).dataset))
    assert joined["plan"].notna().all() and joined["usage_hours"].notna().all()
    return result


def same_online(expected: dict[str, list[Any]], got: dict[str, list[Any]]) -> None:
    assert list(got) == list(expected)
    for name, values in expected.items():
        assert len(got[name]) == len(values), name
        for a, b in zip(values, got[name], strict=True):
            assert type(b) is type(a), (name, a, b)
            assert b == a or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), name


def same_historical(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    assert sorted(got.columns) == sorted(expected.columns)
    # Types too: training merges the join with its labels (a naive time would not merge).
    pd.testing.assert_frame_equal(got[list(expected.columns)], expected, check_exact=True)


def _pg_env() -> dict[str, str]:
    return {"LOOPLINE_PG_DATABASE": os.environ.get("LOOPLINE_PG_DATABASE", "test")}


def _reachable(check: Any, what: str) -> None:
    try:
        check()
    except Exception as error:
        pytest.fail(f"{what} is unreachable ({error}); start it with `make services`")


@pytest.fixture()
def pg_namespace() -> Iterator[str]:
    """A schema of this test's own on the PostgreSQL server, dropped afterwards."""
    from psycopg import sql

    namespace = f"t_{uuid.uuid4().hex[:12]}"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in _pg_env().items():
            patch.setenv(name, value)
        server = PostgresServer.from_env()
    _reachable(lambda: server.connect().close(), f"PostgreSQL at {server.address}")
    yield namespace
    with server.connect() as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(namespace)))


@pytest.fixture()
def redis_namespace() -> Iterator[str]:
    """A Feast project name of this test's own: Redis keys end in it; deleted afterwards."""
    namespace = f"t_{uuid.uuid4().hex[:12]}"
    server = RedisServer.from_env()
    _reachable(lambda: server.client().ping(), f"Redis at {server.address}")
    yield namespace
    with server.client() as client:
        suffix = namespace.encode()
        # Feast keys are <serialized entity key><project>: only this test's end in its name.
        mine = [k for k in client.scan_iter(match=b"*" + suffix) if k.endswith(suffix)]
        if mine:
            client.delete(*mine)


def erased_online(paths: Paths, batch: pd.DataFrame) -> int:
    """Erase the first customer from the online store: their stored features read back None,
    everyone else's are untouched. How many rows (or keys) the store deleted."""
    ids = sorted(int(i) for i in batch["customer_id"].unique())
    store = features.feature_store(paths)
    before = features.online_features(store, SERVICE, "customer_id", ids)
    removed = online_erase.erase_online(store, ids[0])
    after = features.online_features(store, SERVICE, "customer_id", ids)
    stored = (features.stored_feature_names(store) & set(after)) - {"customer_id"}
    assert stored
    for name in stored:
        assert after[name][0] is None, name
        assert after[name][1:] == before[name][1:], name
    assert online_erase.erase_online(store, ids[0]) == 0  # a second time: nothing left
    return removed


def source_table(paths: Paths) -> str:
    """The PostgreSQL table the registry of ``paths`` reads customer_activity from."""
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
        PostgreSQLSource,
    )

    source = features.feature_store(paths).get_feature_view("customer_activity").batch_source
    assert isinstance(source, PostgreSQLSource)
    return source.get_table_query_string()


def test_postgres_profile_serves_and_joins_as_the_default(
    tmp_path: Path, batch: pd.DataFrame, default: dict[str, Any], pg_namespace: str
) -> None:
    env = {"LOOPLINE_FEAST_STORE": "postgres", "LOOPLINE_FEAST_NAMESPACE": pg_namespace}
    with as_project(make_project(tmp_path / "pg"), **env, **_pg_env()) as paths:
        got = served(paths, batch)
        store = features.feature_store(paths)
        assert type(store._get_provider().online_store).__name__ == "PostgreSQLOnlineStore"
        assert pg_namespace in source_table(paths)
        stored = len(features.stored_feature_names(store))
        erased = erased_online(paths, batch)
    same_online(default["online"], got["online"])
    same_historical(default["historical"], got["historical"])
    assert got["online"]["tickets_per_session"][-1] == 0.0  # the on-demand view, unknown id
    # A row per stored feature of the customer: every one of them went.
    assert erased == stored


def test_a_run_reads_only_its_own_postgres_tables(
    tmp_path: Path, batch: pd.DataFrame, default: dict[str, Any], pg_namespace: str
) -> None:
    env = {"LOOPLINE_FEAST_STORE": "postgres", "LOOPLINE_FEAST_NAMESPACE": pg_namespace}
    with as_project(make_project(tmp_path / "runs"), **env, **_pg_env()) as project:
        params = load_params(project.params_file)
        first, second = project.for_run("first"), project.for_run("second")
        other = batch.assign(usage_hours=batch["usage_hours"] + 1000.0)
        for run, frame in ((first, batch), (second, other)):
            features.write_sources(frame, params.dataset, run)
            features.apply(run)
        labels = features.label_events(batch, params.dataset)
        mine = features.historical_features(first, SERVICE, labels, params.dataset)
        theirs = features.historical_features(second, SERVICE, labels, params.dataset)
        tables = {source_table(run) for run in (first, second)}
    assert len(tables) == 2
    same_historical(default["historical"], mine)
    assert (theirs["usage_hours"] - mine["usage_hours"]).round(9).eq(1000.0).all()


def test_redis_profile_serves_as_the_default(
    tmp_path: Path, batch: pd.DataFrame, default: dict[str, Any], redis_namespace: str
) -> None:
    env = {"LOOPLINE_FEAST_STORE": "redis", "LOOPLINE_FEAST_NAMESPACE": redis_namespace}
    with as_project(make_project(tmp_path / "redis"), **env) as paths:
        got = served(paths, batch)
        store = features.feature_store(paths)
        assert type(store._get_provider().online_store).__name__ == "RedisOnlineStore"
        with RedisServer.from_env().client() as client:
            keys = list(client.scan_iter(match=b"*" + redis_namespace.encode()))
        erased = erased_online(paths, batch)
    same_online(default["online"], got["online"])
    same_historical(default["historical"], got["historical"])
    assert len(keys) == batch["customer_id"].nunique()
    assert erased == 1  # one hash per customer holds every view's fields


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("store", "port_env", "named"),
    [("postgres", "LOOPLINE_PG_PORT", "PostgreSQL"), ("redis", "LOOPLINE_REDIS_PORT", "Redis")],
)
def test_an_unreachable_store_is_named_at_once_and_nothing_is_written(
    tmp_path: Path, batch: pd.DataFrame, store: str, port_env: str, named: str
) -> None:
    port = _closed_port()
    env = {"LOOPLINE_FEAST_STORE": store, port_env: str(port), **_pg_env()}
    with as_project(make_project(tmp_path / store), **env) as paths:
        params = load_params(paths.params_file)
        paths.ingested.parent.mkdir(parents=True, exist_ok=True)
        batch.to_parquet(paths.ingested, index=False)
        began = time.monotonic()
        with pytest.raises(FeatureStoreUnreachable) as raised:
            steps.features_step(params, paths)
        assert time.monotonic() - began < 10
        with pytest.raises(FeatureStoreUnreachable):
            features.feature_store(paths)
        assert not paths.feature_sources.exists()
        assert list(paths.feast_dir.iterdir()) == []
    message = str(raised.value)
    assert isinstance(raised.value, LooplineError)
    assert named in message and f"127.0.0.1:{port}" in message
    assert "Traceback" not in message


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LOOPLINE_FEAST_STORE": "mongo"}, "LOOPLINE_FEAST_STORE"),
        ({"LOOPLINE_FEAST_STORE": "postgres", "LOOPLINE_PG_PORT": "54x"}, "LOOPLINE_PG_PORT"),
        ({"LOOPLINE_FEAST_STORE": "redis", "LOOPLINE_REDIS_DB": "one"}, "LOOPLINE_REDIS_DB"),
        ({"LOOPLINE_FEAST_NAMESPACE": "Has Spaces"}, "LOOPLINE_FEAST_NAMESPACE"),
    ],
)
def test_a_wrong_setting_is_a_config_error_naming_it(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    root = make_project(tmp_path / "bad")
    with as_project(root, **env) as paths, pytest.raises(ConfigError, match=named):
        features.feature_store(paths)


def test_a_wrong_store_in_params_names_the_key(tmp_path: Path) -> None:
    root = make_project(tmp_path / "params")
    text = (root / "params.yaml").read_text().replace("store: local", "store: mongo")
    (root / "params.yaml").write_text(text)
    with as_project(root) as paths, pytest.raises(ConfigError, match="features.store"):
        features.feature_store(paths)
