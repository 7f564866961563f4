"""The compiled inference path against sklearn: every candidate family, awkward inputs."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

from loopline.config import load_params
from loopline.inference import (
    NotCompilable,
    SklearnScorer,
    compile_pipeline,
    serving_scorer,
)
from loopline.inference.models import compile_estimator
from loopline.training.candidates import Candidate, build_pipeline, expand

# The empty training column, and the categories that only serving sees, warn on every call.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Skipping features without any observed values"),
    pytest.mark.filterwarnings("ignore:Found unknown categories"),
]
REPO = Path(__file__).resolve().parents[2]
NUMERIC = ["tenure", "charges", "tickets", "gappy", "never_seen"]
CATEGORICAL = ["plan", "country", "always_none"]
# Deeper than the grid: unlimited depth, more trees and iterations.
DEEPER = [
    Candidate("hist_gradient_boosting", {"max_depth": None, "max_iter": 200, "learning_rate": 0.2}),
    Candidate("random_forest", {"n_estimators": 60, "max_depth": None}),
    Candidate("logistic_regression", {"C": 100.0}),
]


def frame(rows: int, seed: int, *, serving: bool) -> pd.DataFrame:
    """Churn-like rows with NaN and None in numbers, None and (when serving) unseen categories,
    and columns that are missing in every training row."""
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 12.0, rows).round(2)
    charges = rng.normal(50, 15, rows)
    tickets = rng.poisson(1.0, rows).astype(float)
    gappy: list[Any] = list(rng.normal(0, 1, rows))
    for i in rng.choice(rows, rows // 5, replace=False):
        gappy[i] = None if i % 2 else np.nan
    plans = ["basic", "standard", "premium", None] + (["enterprise"] if serving else [])
    countries = ["US", "DE", "FR", "IN"] + (["XX", "YY"] if serving else [])
    plan = rng.choice(np.array(plans, dtype=object), rows)
    churn = 1 / (1 + np.exp(-(-1.5 + 0.08 * tickets * 10 - 0.03 * tenure + 0.01 * charges)))
    return pd.DataFrame(
        {
            "customer_id": np.arange(rows),
            "tenure": tenure,
            "charges": charges,
            "tickets": tickets,
            "gappy": gappy,
            "never_seen": rng.normal(0, 1, rows) if serving else [None] * rows,
            "plan": plan,
            "country": rng.choice(np.array(countries, dtype=object), rows),
            "always_none": rng.choice(np.array(["a", None], dtype=object), rows)
            if serving
            else [None] * rows,
            "churned": (rng.random(rows) < churn).astype(int),
        }
    )


def candidates() -> list[Candidate]:
    grid = load_params(REPO / "params.yaml").training.candidates
    return expand(grid) + DEEPER


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return frame(2500, seed=1, serving=False)


@pytest.fixture(scope="module")
def holdout() -> pd.DataFrame:
    return frame(1500, seed=2, serving=True)


@pytest.fixture(scope="module")
def fitted(train: pd.DataFrame) -> dict[str, Pipeline]:
    out = {}
    for candidate in candidates():
        pipeline = build_pipeline(candidate, NUMERIC, CATEGORICAL, seed=3)
        out[candidate.name] = pipeline.fit(train[NUMERIC + CATEGORICAL], train["churned"])
    return out


def sklearn_proba(pipeline: Pipeline, rows: pd.DataFrame) -> np.ndarray:
    return pipeline.predict_proba(rows[NUMERIC + CATEGORICAL])[:, 1]


def as_feast(rows: pd.DataFrame) -> dict[str, list[Any]]:
    """What Feast's to_dict() gives: lists of floats or None, of str or None."""
    return {c: [None if pd.isna(v) else v for v in rows[c].tolist()] for c in rows.columns}


@pytest.mark.parametrize("name", [c.name for c in candidates()])
def test_parity_on_the_whole_holdout(
    name: str, fitted: dict[str, Pipeline], holdout: pd.DataFrame
) -> None:
    scorer = compile_pipeline(fitted[name])
    diff = np.abs(scorer.positive_proba(holdout) - sklearn_proba(fitted[name], holdout))
    assert diff.max() <= 1e-6, f"{name}: max abs diff {diff.max():.3g}"


def test_serving_scorer_records_parity(fitted: dict[str, Pipeline], holdout: pd.DataFrame) -> None:
    for name, pipeline in fitted.items():
        scorer, meta = serving_scorer(pipeline, holdout)
        assert scorer.engine == "numpy" and meta["engine"] == "numpy", name
        assert meta["parity_rows"] == len(holdout)
        assert meta["parity_max_abs_diff"] <= 1e-6


def splits(model: Any) -> tuple[np.ndarray, np.ndarray, type[np.floating[Any]]]:
    """The first tree's split features and thresholds, and the dtype its input is cast to."""
    if hasattr(model, "estimators_"):
        tree = model.estimators_[0].tree_
        internal = tree.children_left >= 0
        return tree.feature[internal], tree.threshold[internal], np.float32
    nodes = model._predictors[0][0].nodes
    internal = nodes["is_leaf"] == 0
    return nodes["feature_idx"][internal], nodes["num_threshold"][internal], np.float64


def test_the_walk_matches_sklearn_at_the_thresholds(fitted: dict[str, Pipeline]) -> None:
    """Inputs on, and one step either side of, the trees' own thresholds: where rounding
    thresholds to the nearest float32 (as ONNX Runtime does) sends rows the wrong way."""
    for name, pipeline in fitted.items():
        model = pipeline.named_steps["model"]
        if not hasattr(model, "estimators_") and not hasattr(model, "_predictors"):
            continue
        features, thresholds, dtype = splits(model)
        X = np.random.default_rng(4).normal(0, 1, (len(features) * 3, model.n_features_in_))
        for i, (feature, threshold) in enumerate(zip(features, thresholds, strict=True)):
            on = dtype(threshold)
            for j, value in enumerate((on, np.nextafter(on, -np.inf), np.nextafter(on, np.inf))):
                X[3 * i + j, feature] = value
        compiled = compile_estimator(model, model.n_features_in_).positive_proba(X)
        assert np.array_equal(compiled, model.predict_proba(X)[:, 1]), name


def test_single_rows_agree_with_the_batch(
    fitted: dict[str, Pipeline], holdout: pd.DataFrame
) -> None:
    rows = as_feast(holdout.iloc[:40])
    for name, pipeline in fitted.items():
        scorer = compile_pipeline(pipeline)
        batch = scorer.positive_proba(rows)
        single = [
            scorer.positive_proba({c: v[i : i + 1] for c, v in rows.items()}) for i in range(40)
        ]
        assert np.allclose(np.concatenate(single), batch, rtol=0, atol=1e-12), name


def test_a_dataframe_and_feast_lists_give_the_same_answers(
    fitted: dict[str, Pipeline], holdout: pd.DataFrame
) -> None:
    rows = holdout.iloc[:300]
    for name, pipeline in fitted.items():
        for scorer in (compile_pipeline(pipeline), SklearnScorer(pipeline)):
            from_frame = scorer.positive_proba(rows)
            from_lists = scorer.positive_proba(as_feast(rows))
            assert np.array_equal(from_frame, from_lists), f"{name} {scorer.engine}"


def test_all_missing_and_unknown_serving_values(fitted: dict[str, Pipeline]) -> None:
    rows = as_feast(frame(5, seed=5, serving=True))
    for column in NUMERIC + CATEGORICAL:
        rows[column] = [None] * 5
    rows["country"] = ["ZZ", "US", None, "XX", "DE"]
    for name, pipeline in fitted.items():
        expected = sklearn_proba(pipeline, pd.DataFrame(rows))
        assert np.allclose(compile_pipeline(pipeline).positive_proba(rows), expected, atol=1e-6), (
            name
        )


def test_threads_share_one_scorer(fitted: dict[str, Pipeline], holdout: pd.DataFrame) -> None:
    pipeline = fitted[expand({"random_forest": {"n_estimators": [150], "max_depth": [14]}})[0].name]
    scorer = compile_pipeline(pipeline)
    parts = [holdout.iloc[i::4] for i in range(4)]
    expected = [scorer.positive_proba(p) for p in parts]
    got: dict[int, list[np.ndarray]] = {i: [] for i in range(4)}

    def work(i: int) -> None:
        for _ in range(5):
            got[i].append(scorer.positive_proba(parts[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert all(np.array_equal(g, expected[i]) for g in got[i])


def test_unsupported_estimator_falls_back_with_a_reason(
    train: pd.DataFrame, holdout: pd.DataFrame
) -> None:
    pipeline = build_pipeline(Candidate("logistic_regression", {}), NUMERIC, CATEGORICAL, seed=0)
    pipeline.steps[-1] = ("model", KNeighborsClassifier())
    pipeline.fit(train[NUMERIC + CATEGORICAL], train["churned"])
    with pytest.raises(NotCompilable, match="KNeighborsClassifier has no compiled path"):
        compile_pipeline(pipeline)
    scorer, meta = serving_scorer(pipeline, holdout)
    assert scorer.engine == "sklearn" and isinstance(scorer, SklearnScorer)
    assert meta == {
        "engine": "sklearn",
        "engine_reason": "estimator KNeighborsClassifier has no compiled path",
    }
    assert np.array_equal(
        scorer.positive_proba(as_feast(holdout)), sklearn_proba(pipeline, holdout)
    )


def test_a_parity_failure_falls_back(fitted: dict[str, Pipeline], holdout: pd.DataFrame) -> None:
    scorer, meta = serving_scorer(next(iter(fitted.values())), holdout, tolerance=-1.0)
    assert scorer.engine == "sklearn" and meta["engine"] == "sklearn"
    assert "differs from sklearn" in meta["engine_reason"]


def test_bad_input_is_a_clear_error(fitted: dict[str, Pipeline], holdout: pd.DataFrame) -> None:
    scorer = compile_pipeline(next(iter(fitted.values())))
    rows = as_feast(holdout.iloc[:3])
    with pytest.raises(KeyError, match="tenure"):
        scorer.positive_proba({k: v for k, v in rows.items() if k != "tenure"})
    with pytest.raises(ValueError, match="infinity"):
        scorer.positive_proba(rows | {"charges": [1.0, float("inf"), 2.0]})
    with pytest.raises(ValueError, match="has 2 values"):
        scorer.positive_proba(rows | {"plan": ["basic", "basic"]})
