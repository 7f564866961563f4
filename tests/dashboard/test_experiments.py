"""The Runs page's experiment views, prediction confidence and Compare models, on seeded state.

Failed candidates, one-class holdouts, runs without candidate records and too few labels
each get a plain message and no exception box.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit import dataframe_util

import experiments_view as view
from tests.dashboard.conftest import _point_at, charts, texts
from tests.dashboard.seed_candidates import RECORDED_RUNS
from tests.dashboard.seeding import Seeded, make_project, seed


def data_of(spec: dict[str, Any]) -> pd.DataFrame:
    frames = [
        dataframe_util.convert_arrow_bytes_to_pandas_df(d.data.data)
        for d in spec["_datasets"].values()
    ]
    return pd.concat(frames, ignore_index=True)


def titled(specs: list[dict[str, Any]], title: str) -> dict[str, Any]:
    found = [s for s in specs if title in str(s.get("title", "")) or title in str(s)]
    assert found, f"no chart titled {title!r}"
    return found[0]


def test_candidates_are_compared_and_failures_left_out(on_seeded: Seeded, dashboard: Any) -> None:
    app = dashboard(page="runs")
    assert not app.exception
    latest = f"run-{on_seeded.runs - 1:05d}"
    warning = " ".join(texts(app, "warning"))
    assert f"{latest}/random_forest-0" in warning and "max_depth must be >= 1" in warning
    specs = charts(app)
    scatter = data_of(titled(specs, "ROC AUC against"))
    assert f"{latest}/random_forest-0" not in set(scatter["candidate"])  # failed: not drawn
    assert {"champion", "challenger"} <= set(scatter["role"])
    assert (scatter["roc_auc low"] <= scatter["roc_auc"]).all()  # the interval is drawn
    parallel = data_of(titled(specs, "across its parameters"))
    assert parallel["scaled"].between(0, 1).all()
    roc = data_of(titled(specs, "ROC curve"))
    assert set(roc["candidate"].dropna()) == set(app.multiselect(key="runs_inspect").value)
    cells = data_of(titled(specs, "Confusion matrix"))
    assert set(cells["actual"]) == {"churn", "stay"}

    app.selectbox(key="runs_param").select("param max_depth").run()
    assert "max depth (parameter)" in str(titled(charts(app), "ROC AUC against"))

    names = app.selectbox(key="runs_diff_a").options
    app.selectbox(key="runs_diff_b").select(names[0]).run()
    assert "Pick two different candidates." in texts(app, "caption")
    app.selectbox(key="runs_diff_b").select(names[1]).run()
    diff = app.dataframe[-1].value
    assert diff["differs"].all() and "estimator" in set(diff["field"])


def test_a_one_class_holdout_says_its_curves_are_unavailable(
    on_seeded: Seeded, dashboard: Any
) -> None:
    app = dashboard(page="runs")
    one_class = f"run-{on_seeded.runs - 4:05d}"
    app.multiselect(key="runs_compare").set_value([one_class]).run()
    app.multiselect(key="runs_inspect").set_value([f"{one_class}/logistic_regression-0"]).run()
    notes = " ".join(texts(app, "info"))
    assert "curves unavailable" in notes and "only one label class" in notes
    assert "No candidate picked has this curve." in texts(app, "caption")
    assert not texts(app, "error")


def test_runs_without_candidate_records_say_what_records_them(
    on_seeded: Seeded, dashboard: Any
) -> None:
    app = dashboard(page="runs")
    old = f"run-{on_seeded.runs - RECORDED_RUNS - 1:05d}"
    app.multiselect(key="runs_compare").set_value([old]).run()
    assert any("No candidate records for these runs" in t for t in texts(app, "info"))
    assert not texts(app, "error")


def test_parallel_coordinates_scale_every_axis_on_its_own() -> None:
    frame = pd.DataFrame(
        {
            "candidate": ["a", "b", "c"],
            "param C": [0.1, 1.0, 10.0],
            "param kernel": ["rbf", "linear", "rbf"],
            "roc_auc": [0.8, 0.8, 0.8],
        }
    )
    long = view.parallel(frame, ["param C", "param kernel", "roc_auc"], "roc_auc")
    scaled = long.pivot(index="candidate", columns="axis", values="scaled")
    assert scaled["C"].tolist() == [0.0, pytest.approx(0.9 / 9.9), 1.0]
    assert scaled["kernel"].tolist() == [1.0, 0.0, 1.0]  # by the order of its values
    assert scaled["roc_auc"].tolist() == [0.5, 0.5, 0.5]  # constant: mid-axis


def test_prediction_confidence_per_version_and_arm(on_seeded: Seeded, dashboard: Any) -> None:
    app = dashboard(page="drift")
    spec = titled(charts(app), "Served churn probability")
    boxes = data_of(spec)
    boxes = boxes[boxes["predictions"].notna()] if "predictions" in boxes else boxes
    assert int(boxes["predictions"].sum()) == sum(on_seeded.predictions.values())
    assert (boxes["p05"] <= boxes["median"]).all() and (boxes["median"] <= boxes["p95"]).all()
    assert {s.split(" · ")[1] for s in boxes["series"]} == {"champion", "challenger"}
    assert "Shift of served probabilities against the reference" in str(spec)


@pytest.fixture(scope="module")
def shadow(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    root = make_project(tmp_path_factory.mktemp("shadow") / "project")
    return seed(root, runs=6, versions=16, windows=20, predictions=1200, policy="shadow")


@pytest.fixture
def on_shadow(shadow: Seeded, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    import streamlit as st

    _point_at(monkeypatch, shadow.project)
    yield shadow
    st.cache_data.clear()


def test_compare_models_pairs_shadow_answers_and_shows_the_interval(
    on_shadow: Seeded, dashboard: Any
) -> None:
    app = dashboard(page="compare")
    assert "paired: both models scored the same requests" in " ".join(texts(app, "caption"))
    counts = app.dataframe[0].value.set_index("model")
    assert counts.loc["champion", "labelled"] == counts.loc["challenger", "labelled"] == 600
    assert any(m.label.startswith("Difference (") for m in app.metric)
    evidence = " ".join(texts(app, "caption"))
    assert "paired DeLong" in evidence and "CI [" in evidence  # the review's own test
    specs = charts(app)
    roc = data_of(titled(specs, "ROC curve"))
    assert set(roc["model"].dropna()) == {"champion", "challenger"}
    segments = data_of(titled(specs, "accuracy per plan"))
    assert set(segments["segment"]) == {"basic", "pro"}


def test_compare_models_with_too_few_labels_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dashboard: Any
) -> None:
    few = seed(tmp_path / "few", runs=2, versions=16, windows=5, predictions=60)
    _point_at(monkeypatch, few.project)
    app = dashboard(page="compare")
    note = next(t for t in texts(app, "info") if "not enough labelled traffic yet" in t)
    assert "labels" in note and "positives" in note
    assert "unpaired" in " ".join(texts(app, "caption"))
    assert not texts(app, "error")


def test_compare_models_without_a_challenger_says_how_to_start_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dashboard: Any
) -> None:
    import streamlit as st

    from loopline.registry import Registry

    small = seed(tmp_path / "solo", runs=2, versions=16, windows=5, predictions=20)
    registry = Registry(small.registry_url)
    registry.set_policy("churn", "single", 0.0, actor="olivia", reason="end the rollout")
    registry.set_challenger("churn", None, actor="olivia", reason="end the rollout")
    registry.close()
    _point_at(monkeypatch, small.project)
    st.cache_data.clear()
    app = dashboard(page="compare")
    assert any("No challenger beside" in t and "Roll out" in t for t in texts(app, "info"))
