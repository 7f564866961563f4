"""Loopline's ASOF-join offline store returns what Feast's own DuckDB store returns.

Two real Feast stores share one repo folder, one set of definitions and the same source
files; only ``offline_store.type`` differs. Every comparison is row for row and column for
column, types included, on data built to hit each rule of Feast's point-in-time join:
ties on event time broken by created time, TTL expiry (on its boundary too), rows created
after the entity time but stamped before it, entities with no history, duplicate entity rows.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

START = pd.Timestamp("2026-01-01", tz="UTC")
CUSTOMERS = 40  # ids 1..40 have history; the entity frames also ask for 41..45
PROFILE_TTL = timedelta(days=20)
ACTIVITY_TTL = timedelta(days=5)
STORES = ("duckdb", "loopline.feast_store.LooplineOfflineStore")


def _definitions(repo: Path) -> list[Any]:
    from feast import Entity, FeatureService, FeatureView, Field, FileSource
    from feast.on_demand_feature_view import on_demand_feature_view
    from feast.types import Float64, Int64, String
    from feast.value_type import ValueType

    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    region = Entity(name="region", join_keys=["region_id"], value_type=ValueType.STRING)
    profile = FeatureView(
        name="profile",
        entities=[customer],
        ttl=PROFILE_TTL,
        schema=[
            Field(name="plan", dtype=String),
            Field(name="monthly_charges", dtype=Float64),
            Field(name="visits", dtype=Int64),
        ],
        source=FileSource(
            name="profile_source",
            path=str(repo / "profile.parquet"),
            timestamp_field="event_timestamp",
            created_timestamp_column="created",
        ),
    )
    activity = FeatureView(
        name="activity",
        entities=[customer],
        ttl=ACTIVITY_TTL,
        schema=[Field(name="usage_hours", dtype=Float64), Field(name="sessions", dtype=Int64)],
        source=FileSource(
            name="activity_source",
            path=str(repo / "activity.parquet"),
            timestamp_field="ts",
            field_mapping={"hours_used": "usage_hours"},
        ),
    )
    regional = FeatureView(
        name="regional",
        entities=[region],
        ttl=timedelta(0),  # no TTL: any earlier value, however old
        schema=[Field(name="region_score", dtype=Float64)],
        source=FileSource(
            name="regional_source",
            path=str(repo / "regional.parquet"),
            timestamp_field="event_timestamp",
        ),
    )

    @on_demand_feature_view(
        sources=[profile, activity],
        schema=[Field(name="charges_per_hour", dtype=Float64)],
        mode="python",
    )
    def ratios(inputs: dict[str, Any]) -> dict[str, Any]:
        return {
            "charges_per_hour": [
                (c or 0.0) / ((u or 0.0) + 1.0)
                for c, u in zip(inputs["monthly_charges"], inputs["usage_hours"], strict=True)
            ]
        }

    @on_demand_feature_view(
        sources=[activity, regional],
        schema=[Field(name="weighted_sessions", dtype=Float64)],
        mode="pandas",
    )
    def weighted(inputs: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {"weighted_sessions": inputs["sessions"].astype("float64") * inputs["region_score"]}
        )

    service = FeatureService(name="everything", features=[profile, activity, regional, ratios])
    both = FeatureService(name="with_pandas_odfv", features=[activity, regional, weighted])
    return [customer, region, profile, activity, regional, ratios, weighted, service, both]


def write_sources(repo: Path, seed: int, customers: int = CUSTOMERS, days: int = 60) -> None:
    """Random histories with exact ties on event time and rows that arrive late."""
    rng = np.random.default_rng(seed)
    rows = max(3, customers * days // 3)
    ids = rng.integers(1, customers + 1, rows)
    # Whole hours, so many rows share an event time; a copy of some rows makes exact ties
    # on (customer, event time) that only the created time separates.
    event = START + pd.to_timedelta(rng.integers(0, days * 24, rows), unit="h")
    tie = rng.random(rows) < 0.25
    ids = np.concatenate([ids, ids[tie]])
    event = event.append(event[tie])
    n = len(ids)
    # Created up to 10 days after the event: later than many entity times stamped after it.
    created = event + pd.to_timedelta(rng.integers(0, 10 * 24 * 3600, n), unit="s")
    plans = np.array(["basic", "plus", "pro", None], dtype=object)
    charges = rng.normal(50, 20, n).round(2)
    charges[rng.random(n) < 0.1] = np.nan
    profile = pd.DataFrame(
        {
            "customer_id": ids.astype("int64"),
            "event_timestamp": event,
            "created": created,
            "plan": plans[rng.integers(0, 4, n)],
            "monthly_charges": charges,
            "visits": rng.integers(0, 30, n).astype("int64"),
        }
    )
    # A tie on created time too would leave both stores free to pick either row.
    profile = profile.drop_duplicates(["customer_id", "event_timestamp", "created"])
    profile.to_parquet(repo / "profile.parquet", index=False)

    a_rows = max(3, customers * days // 4)
    activity = pd.DataFrame(
        {
            "customer_id": rng.integers(1, customers + 1, a_rows).astype("int64"),
            "ts": START + pd.to_timedelta(rng.integers(0, days * 24 * 60, a_rows), unit="min"),
            "hours_used": rng.gamma(2.0, 3.0, a_rows).round(3),
            "sessions": rng.integers(0, 20, a_rows).astype("int64"),
        }
    )
    # No created time in this source: a tie on event time would have no defined winner.
    activity = activity.drop_duplicates(["customer_id", "ts"])
    activity.to_parquet(repo / "activity.parquet", index=False)

    regions, per_region = ["north", "south", "east"], 10  # "west" has no history
    hours = np.concatenate([rng.choice(days * 24, per_region, replace=False) for _ in regions])
    regional = pd.DataFrame(
        {
            "region_id": np.repeat(regions, per_region),
            "event_timestamp": START + pd.to_timedelta(hours, unit="h"),
            "region_score": rng.random(len(hours)).round(4),
        }
    )
    regional.to_parquet(repo / "regional.parquet", index=False)


def entity_frame(repo: Path, seed: int, size: int = 600, days: int = 60) -> pd.DataFrame:
    """Entity rows, some exactly on a source row's time or TTL boundary, some duplicated."""
    rng = np.random.default_rng(seed + 1)
    profile = pd.read_parquet(repo / "profile.parquet")
    activity = pd.read_parquet(repo / "activity.parquet")
    ids = rng.integers(1, CUSTOMERS + 6, size)  # 41..45 have no history
    when = START + pd.to_timedelta(rng.integers(0, (days + 30) * 24 * 3600, size), unit="s")
    frame = pd.DataFrame({"customer_id": ids.astype("int64"), "event_timestamp": when})
    on_row = profile.sample(size // 6, replace=True, random_state=seed)[
        ["customer_id", "event_timestamp"]
    ]
    at_expiry = activity.sample(size // 6, replace=True, random_state=seed)
    at_expiry = pd.DataFrame(
        {
            "customer_id": at_expiry["customer_id"],
            "event_timestamp": at_expiry["ts"] + ACTIVITY_TTL,
        }
    )
    frame = pd.concat([frame, on_row, at_expiry], ignore_index=True)
    frame["region_id"] = rng.choice(["north", "south", "east", "west"], len(frame))
    frame["label"] = rng.integers(0, 2, len(frame)).astype("int64")
    # Duplicates, as label events can be: Feast keeps every one of them.
    frame = pd.concat([frame, frame.sample(len(frame) // 10, random_state=seed)])
    return frame.reset_index(drop=True).assign(_row=lambda f: np.arange(len(f)))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("asof_store")
    write_sources(root, seed=11)
    return root


def make_stores(root: Path) -> dict[str, Any]:
    """One FeatureStore per offline store type, over the same definitions and sources."""
    from feast import FeatureStore

    made = {}
    for n, kind in enumerate(STORES):
        config = {
            "project": "asof_test",
            "provider": "local",
            "registry": str(root / f"registry_{n}.db"),
            "online_store": {"type": "sqlite", "path": str(root / f"online_{n}.db")},
            "offline_store": {"type": kind},
            "entity_key_serialization_version": 3,
        }
        yaml_file = root / f"feature_store_{n}.yaml"
        yaml_file.write_text(yaml.safe_dump(config))
        store = FeatureStore(repo_path=str(root), fs_yaml_file=yaml_file)
        store.apply(_definitions(root))
        made[kind] = store
    return made


@pytest.fixture(scope="module")
def stores(repo: Path) -> dict[str, Any]:
    return make_stores(repo)


def retrieve(store: Any, entity: Any, service: str, full: bool = False) -> pd.DataFrame:
    job = store.get_historical_features(
        entity_df=entity, features=store.get_feature_service(service), full_feature_names=full
    )
    return job.to_df().sort_values("_row", kind="stable").reset_index(drop=True)


def assert_same(stores: dict[str, Any], entity: pd.DataFrame, service: str, full: bool) -> None:
    feast, ours = (retrieve(stores[k], entity.copy(), service, full) for k in STORES)
    assert list(ours.columns) == list(feast.columns)
    pd.testing.assert_frame_equal(ours, feast, check_exact=True)


def test_the_project_names_this_store(repo: Path) -> None:
    project_yaml = Path(__file__).resolve().parents[2] / "feature_repo" / "feature_store.yaml"
    offline = yaml.safe_load(project_yaml.read_text())["offline_store"]
    assert offline["type"] == STORES[1]


def test_a_runs_workspace_keeps_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's generated feature_store.yaml (``features._run_config``) keeps the offline store."""
    from loopline import features
    from loopline.feast_store import LooplineOfflineStore
    from loopline.settings import Paths
    from tests.conftest import make_project

    root = make_project(tmp_path / "project")
    monkeypatch.setenv("LOOPLINE_HOME", str(root / ".loopline"))
    paths = Paths(root, root / ".loopline").for_run("r1")
    store = features.feature_store(paths)
    assert str(paths.workspace) in str(store.config.registry.path)
    assert isinstance(store._get_provider().offline_store, LooplineOfflineStore)


def test_provider_uses_the_loopline_store(stores: dict[str, Any]) -> None:
    from loopline.feast_store import LooplineOfflineStore

    assert isinstance(stores[STORES[1]]._get_provider().offline_store, LooplineOfflineStore)


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("service", ["everything", "with_pandas_odfv"])
def test_same_rows_as_feasts_duckdb_store(
    stores: dict[str, Any], repo: Path, service: str, full: bool
) -> None:
    entity = entity_frame(repo, seed=11)
    assert entity.duplicated(["customer_id", "event_timestamp"]).any()
    assert_same(stores, entity, service, full)


def test_the_data_exercises_every_rule(stores: dict[str, Any], repo: Path) -> None:
    """Guards the comparison above: the generated data really has each case in it."""
    entity = entity_frame(repo, seed=11)
    got = retrieve(stores[STORES[1]], entity, "everything")
    profile = pd.read_parquet(repo / "profile.parquet")
    ties = profile.duplicated(["customer_id", "event_timestamp"], keep=False)
    assert ties.sum() > 50
    assert got.loc[got["customer_id"] > CUSTOMERS, ["plan", "usage_hours"]].isna().all().all()
    assert got.loc[got["customer_id"] <= CUSTOMERS, "usage_hours"].isna().any()  # expired
    assert got.loc[got["customer_id"] <= CUSTOMERS, "usage_hours"].notna().any()
    assert got["region_score"].isna().any() and got["region_score"].notna().any()

    # One tie, picked by hand: the later created row of two at the same event time wins,
    # even when it was created after the entity time (event times alone decide).
    tied = (
        profile[ties]
        .sort_values("created")
        .groupby(["customer_id", "event_timestamp"], as_index=False)
    )
    latest = tied.last()
    row = latest.iloc[0]
    probe = pd.DataFrame(
        {
            "customer_id": [row["customer_id"]],
            "event_timestamp": [row["event_timestamp"] + pd.Timedelta(microseconds=1)],
            "region_id": ["north"],
            "_row": [0],
        }
    )
    later_rows = profile[
        (profile["customer_id"] == row["customer_id"])
        & (profile["event_timestamp"] > row["event_timestamp"])
        & (profile["event_timestamp"] <= probe["event_timestamp"][0])
    ]
    assert later_rows.empty
    for kind in STORES:
        out = retrieve(stores[kind], probe, "everything")
        assert out["visits"][0] == row["visits"]


def test_text_times_and_sql_entity_frames(stores: dict[str, Any], repo: Path) -> None:
    entity = entity_frame(repo, seed=12, size=200)
    as_text = entity.assign(event_timestamp=entity["event_timestamp"].astype(str))
    assert_same(stores, as_text, "everything", full=False)

    path = repo / "entities.parquet"
    entity.to_parquet(path, index=False)
    ours = retrieve(stores[STORES[1]], f"SELECT * FROM read_parquet('{path}')", "everything")
    frame = retrieve(stores[STORES[1]], entity, "everything")
    # DuckDB's own times are microseconds; pandas' are nanoseconds. Values are the same.
    ours["event_timestamp"] = ours["event_timestamp"].astype(frame["event_timestamp"].dtype)
    pd.testing.assert_frame_equal(ours, frame, check_exact=True)


def test_arrow_schema_matches(stores: dict[str, Any], repo: Path) -> None:
    entity = entity_frame(repo, seed=13, size=100)
    tables = [
        stores[k]
        .get_historical_features(
            entity_df=entity.copy(), features=stores[k].get_feature_service("everything")
        )
        .to_arrow()
        .sort_by("_row")
        for k in STORES
    ]
    assert tables[0].schema == tables[1].schema
    assert tables[0].equals(tables[1])


def test_created_timestamp_cutoff_is_feasts(stores: dict[str, Any], repo: Path) -> None:
    entity = entity_frame(repo, seed=14, size=200)
    feast, ours = (
        stores[k]
        .get_historical_features(
            entity_df=entity.copy(),
            features=stores[k].get_feature_service("everything"),
            filter_by_created_timestamp=True,
        )
        .to_df()
        .sort_values("_row")
        .reset_index(drop=True)
        for k in STORES
    )
    pd.testing.assert_frame_equal(ours, feast, check_exact=True)


def test_no_start_end_retrieval(stores: dict[str, Any]) -> None:
    store = stores[STORES[1]]
    with pytest.raises(TypeError, match="entity_df"):
        store.get_historical_features(
            features=store.get_feature_service("everything"),
            start_date=START.to_pydatetime(),
            end_date=(START + pd.Timedelta(days=3)).to_pydatetime(),
        )


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("asof_property")
    write_sources(root, seed=0)
    return root, make_stores(root)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**31 - 1), customers=st.integers(1, 8), days=st.integers(1, 15))
def test_property_same_as_feast(
    scratch: tuple[Path, dict[str, Any]], seed: int, customers: int, days: int
) -> None:
    """Small random histories, dense in ties and expiries; each example rewrites the sources."""
    root, made = scratch
    write_sources(root, seed, customers=customers, days=days)
    entity = entity_frame(root, seed, size=60, days=days)
    assert_same(made, entity, "everything", full=seed % 2 == 0)


def test_a_transformation_sees_what_online_serving_gives_it() -> None:
    """Its declared inputs and the entity key: no timestamps, labels or other views."""
    import pyarrow as pa
    from feast import Entity, FeatureView, Field, FileSource
    from feast.on_demand_feature_view import on_demand_feature_view
    from feast.types import Float64

    from loopline.feast_store import _Narrowed

    customer = Entity(name="customer", join_keys=["customer_id"])
    source = FileSource(name="s", path="unused.parquet", timestamp_field="event_timestamp")
    fields = [Field(name=n, dtype=Float64) for n in ("a", "b")]
    view = FeatureView(name="v", entities=[customer], schema=fields, source=source)
    seen: list[set[str]] = []

    @on_demand_feature_view(
        sources=[view[["a"]]], schema=[Field(name="twice", dtype=Float64)], mode="python"
    )
    def twice(inputs: dict[str, Any]) -> dict[str, Any]:
        seen.append(set(inputs))
        return {"twice": [x * 2 for x in inputs["a"]]}

    table = pa.table(
        {
            "customer_id": [1, 2],
            "event_timestamp": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True),
            "churned": [0, 1],
            "a": [1.0, 2.0],
            "b": [3.0, 4.0],
        }
    )
    out = _Narrowed(twice, {"customer_id"}).transform_arrow(table)
    assert seen == [{"customer_id", "a", "v__a"}]
    assert out.column("twice").to_pylist() == [2.0, 4.0]


def test_rows_come_back_in_the_entity_frames_order(stores: dict[str, Any], repo: Path) -> None:
    """Unlike Feast's own store: callers need not sort (at 10M rows, 8 s of pandas)."""
    entity = entity_frame(repo, seed=5).sample(frac=1.0, random_state=3).reset_index(drop=True)
    for service in ("everything", "with_pandas_odfv"):
        ours = stores[STORES[1]].get_historical_features(
            entity_df=entity.copy(), features=stores[STORES[1]].get_feature_service(service)
        )
        got = ours.to_df()
        assert got["_row"].tolist() == entity["_row"].tolist()
        assert "__loopline_row" not in got.columns
    rows = "(3, TIMESTAMP '2026-02-01'), (1, TIMESTAMP '2026-02-03'), (2, TIMESTAMP '2026-01-20')"
    query = f"SELECT * FROM (VALUES {rows}) AS t(customer_id, event_timestamp)"
    job = stores[STORES[1]].get_historical_features(entity_df=query, features=["profile:plan"])
    assert job.to_df()["customer_id"].tolist() == [3, 1, 2]
