"""Generated Feast definitions: they run, they agree with params.yaml, and edits are kept."""

from pathlib import Path
from typing import Any

import pytest
from feast import Entity, FeatureService, FeatureView, Field, FileSource, OnDemandFeatureView
from feast.types import Float32, Float64, Int64, String
from feast.value_type import ValueType
from hypothesis import given, settings
from hypothesis import strategies as st

from loopline import feature_definitions as fd
from loopline.config import FeatureSpec, Params, load_params
from loopline.settings import Paths

PARAMS = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
FEAST_KINDS = (Entity, FeatureView, OnDemandFeatureView, FeatureService)


def with_dataset(params: Params, **changes: Any) -> Params:
    return params.model_copy(update={"dataset": params.dataset.model_copy(update=changes)})


def with_features(params: Params, **changes: Any) -> Params:
    return params.model_copy(update={"features": params.features.model_copy(update=changes)})


def executed(text: str, folder: Path) -> list[Any]:
    """The Feast objects a definitions file declares, run as Feast runs it."""
    file = folder / "feature_repo" / "definitions.py"
    namespace: dict[str, Any] = {"__file__": str(file), "__name__": "definitions"}
    exec(compile(text, str(file), "exec"), namespace)
    return [obj for obj in namespace.values() if isinstance(obj, FEAST_KINDS)]


def fields(params: Params) -> list[Field]:
    types = {"numeric": Float64, "categorical": String}
    return [Field(name=c, dtype=types[s.kind]) for c, s in params.dataset.features.items()]


def retyped(params: Params, **dtypes: Any) -> list[Field]:
    """The agreeing schema with some fields given another Feast type."""
    return [Field(name=f.name, dtype=dtypes.get(f.name, f.dtype)) for f in fields(params)]


def catalogue(
    params: Params,
    schema: list[Field] | None = None,
    *,
    join_key: str | None = None,
    timestamp: str | None = None,
    service: str | None = None,
) -> list[Any]:
    """An entity, one view and a service as a user would write them; agreeing by default."""
    dataset = params.dataset
    keys = [join_key or dataset.entity]
    entity = Entity(name="customer", join_keys=keys, value_type=ValueType.INT64)
    stamp = timestamp or dataset.timestamp
    source = FileSource(name="stats_source", path="stats.parquet", timestamp_field=stamp)
    view = FeatureView(
        name="stats", entities=[entity], schema=schema or fields(params), source=source
    )
    wanted = service or params.features.service
    return [entity, view, FeatureService(name=wanted, features=[view])]


def only(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


# --- render --------------------------------------------------------------------------


OWN_DATA = with_dataset(
    PARAMS,
    name="customers_2026",
    entity="Account ID",
    timestamp="arrived_at",
    features={
        "Monthly Charges": FeatureSpec(kind="numeric", missing="impute"),
        "it's a plan": FeatureSpec(kind="categorical", missing="allow"),
    },
    pii=["email"],
)


@pytest.mark.parametrize(
    "params",
    [
        PARAMS,
        OWN_DATA,
        with_dataset(PARAMS, entity="id"),
        with_dataset(PARAMS, entity="7eleven_store_id"),
        with_features(PARAMS, service="model_v2"),
    ],
    ids=["repo", "own-data", "entity-id", "entity-digit", "service"],
)
def test_rendered_definitions_run_and_agree(params: Params, tmp_path: Path) -> None:
    objects = executed(fd.render(params), tmp_path)
    assert fd.disagreements(params, objects) == []
    [view] = [o for o in objects if isinstance(o, FeatureView)]
    [service] = [o for o in objects if isinstance(o, FeatureService)]
    assert [f.name for f in view.features] == list(params.dataset.features)
    assert service.name == params.features.service
    assert view.ttl is not None and view.ttl.days == params.features.online_ttl_days
    # Paths are resolved from the file's own place, never written into it.
    source = view.batch_source
    assert isinstance(source, FileSource)
    assert source.path == str(tmp_path / "data" / "features" / f"{params.dataset.name}.parquet")


@pytest.mark.parametrize("entity", ["global_id", "timedelta_id"])
def test_an_entity_named_like_a_keyword_or_an_import_still_renders(
    entity: str, tmp_path: Path
) -> None:
    params = with_dataset(PARAMS, entity=entity)
    assert fd.disagreements(params, executed(fd.render(params), tmp_path)) == []


def test_rendering_depends_on_params_alone() -> None:
    assert fd.render(PARAMS) == fd.render(PARAMS.model_copy())
    assert fd.render(PARAMS) != fd.render(with_features(PARAMS, online_ttl_days=30))


# --- is_generated --------------------------------------------------------------------


def test_rendered_text_is_generated() -> None:
    assert fd.is_generated(fd.render(PARAMS))
    assert fd.is_generated(fd.render(OWN_DATA))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_change_to_the_body_makes_it_hand_edited(data: st.DataObject) -> None:
    text = fd.render(PARAMS)
    body_start = len("\n".join(text.split("\n", 3)[:3])) + 1
    at = data.draw(st.integers(body_start, len(text) - 1), label="at")
    # A file read as text holds no lone surrogates (category Cs).
    other = st.characters(exclude_categories=["Cs"]).filter(lambda c: c != text[at])
    new = data.draw(other, label="new")
    assert not fd.is_generated(text[:at] + new + text[at + 1 :])


def test_an_appended_line_makes_it_hand_edited() -> None:
    assert not fd.is_generated(fd.render(PARAMS) + "extra = 1\n")


def test_without_its_marker_line_it_is_not_generated() -> None:
    text = fd.render(PARAMS)
    marker, rest = text.split("\n", 1)
    assert not fd.is_generated(rest)
    assert not fd.is_generated("# a comment of my own\n" + rest)
    assert not fd.is_generated("\n" + text)
    found = fd.MARKER.match(marker)
    assert found is not None
    forged = marker.replace(found.group(1), "0" * 12)
    assert not fd.is_generated(f"{forged}\n{rest}")
    assert not fd.is_generated("")


# --- disagreements -------------------------------------------------------------------


def test_agreeing_objects_have_no_disagreements() -> None:
    assert fd.disagreements(PARAMS, catalogue(PARAMS)) == []


def test_other_numeric_types_are_numbers() -> None:
    schema = retyped(PARAMS, support_tickets_30d=Int64, usage_hours=Float32)
    assert fd.disagreements(PARAMS, catalogue(PARAMS, schema)) == []


def test_a_dataset_feature_in_no_view() -> None:
    schema = [f for f in fields(PARAMS) if f.name != "usage_hours"]
    problem = only(fd.disagreements(PARAMS, catalogue(PARAMS, schema)))
    assert "'usage_hours'" in problem and "in no feature view" in problem and "churn_v1" in problem


@pytest.mark.parametrize(
    ("column", "what"),
    [
        ("lifetime_value", "is not in dataset.features"),
        ("email", "is personal data (dataset.pii)"),
        ("churned", "is the label"),
    ],
)
def test_a_view_field_that_is_not_a_feature(column: str, what: str) -> None:
    schema = [*fields(PARAMS), Field(name=column, dtype=String)]
    problem = only(fd.disagreements(PARAMS, catalogue(PARAMS, schema)))
    assert problem == f"feature view 'stats' field {column!r} {what}"


def test_a_numeric_feature_typed_as_text() -> None:
    schema = retyped(PARAMS, tenure_months=String)
    problem = only(fd.disagreements(PARAMS, catalogue(PARAMS, schema)))
    assert problem == (
        "feature 'tenure_months' is numeric in params.yaml but String in feature view 'stats'"
    )


def test_a_categorical_feature_typed_as_a_number() -> None:
    problem = only(fd.disagreements(PARAMS, catalogue(PARAMS, retyped(PARAMS, plan=Float64))))
    assert "'plan' is categorical in params.yaml but Float64" in problem
    assert "String" in problem


def test_a_view_keyed_by_another_column() -> None:
    problem = only(fd.disagreements(PARAMS, catalogue(PARAMS, join_key="account_id")))
    assert problem == (
        "feature view 'stats' is keyed by ['account_id'], not ['customer_id'] (dataset.entity)"
    )


def test_a_view_timed_by_another_column() -> None:
    problem = only(fd.disagreements(PARAMS, catalogue(PARAMS, timestamp="created_at")))
    assert "'created_at'" in problem and "'event_timestamp'" in problem


def test_the_feature_service_is_missing() -> None:
    problem = only(fd.disagreements(PARAMS, catalogue(PARAMS, service="model_v9")))
    assert "no feature service 'churn_v1'" in problem and "model_v9" in problem


def test_a_feature_in_two_views() -> None:
    entity, view, _ = catalogue(PARAMS)
    source = FileSource(
        name="extra_source", path="extra.parquet", timestamp_field="event_timestamp"
    )
    extra = FeatureView(
        name="extra", entities=[entity], schema=[Field(name="plan", dtype=String)], source=source
    )
    service = FeatureService(name="churn_v1", features=[view, extra])
    problem = only(fd.disagreements(PARAMS, [entity, view, extra, service]))
    assert problem == "feature 'plan' is in views 'stats' and 'extra'"


def test_views_outside_the_service_are_not_judged() -> None:
    entity, view, service = catalogue(PARAMS)
    source = FileSource(name="old_source", path="old.parquet", timestamp_field="ts")
    old = FeatureView(
        name="old", entities=[entity], schema=[Field(name="x", dtype=String)], source=source
    )
    assert fd.disagreements(PARAMS, [entity, view, old, service]) == []


def test_every_difference_is_named_at_once() -> None:
    schema = [
        Field(name="plan", dtype=Float64),
        *[f for f in fields(PARAMS) if f.name not in ("plan", "usage_hours")],
        Field(name="email", dtype=String),
    ]
    problems = fd.disagreements(
        PARAMS, catalogue(PARAMS, schema, join_key="account_id", timestamp="ts")
    )
    assert len(problems) == 5, problems


# --- sync ----------------------------------------------------------------------------


@pytest.fixture()
def paths(tmp_path: Path) -> Paths:
    return Paths(project=tmp_path, state=tmp_path / ".loopline")


def definitions(paths: Paths) -> Path:
    return paths.feature_repo / "definitions.py"


def test_sync_writes_a_missing_file(paths: Paths) -> None:
    done = fd.sync(PARAMS, paths)
    assert done is not None and "written from params.yaml" in done
    assert definitions(paths).read_text() == fd.render(PARAMS)
    assert [p.name for p in paths.feature_repo.iterdir()] == ["definitions.py"]
    assert fd.sync(PARAMS, paths) is None  # up to date: nothing to do


def test_sync_rewrites_its_own_file_when_params_change(paths: Paths) -> None:
    fd.sync(PARAMS, paths)
    changed = with_dataset(PARAMS, features={"plan": FeatureSpec(kind="categorical")})
    done = fd.sync(changed, paths)
    assert done is not None and "regenerated" in done
    assert definitions(paths).read_text() == fd.render(changed)


def test_sync_keeps_a_hand_edited_file(paths: Paths) -> None:
    fd.sync(PARAMS, paths)
    edited = definitions(paths).read_text().replace("online=True", "online=False")
    definitions(paths).write_text(edited)
    assert fd.sync(with_features(PARAMS, online_ttl_days=30), paths) is None
    assert definitions(paths).read_text() == edited


def test_sync_keeps_a_file_written_by_hand(paths: Paths) -> None:
    paths.feature_repo.mkdir(parents=True)
    definitions(paths).write_text("# mine\n")
    assert fd.sync(PARAMS, paths) is None
    assert definitions(paths).read_text() == "# mine\n"
