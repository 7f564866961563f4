"""The compiled inference path on the real project: every family the train flow fits."""

from __future__ import annotations

import json
from typing import Any

import bentoml
import joblib
import numpy as np
import pandas as pd

from loopline import features
from loopline.inference import compile_pipeline
from loopline.training.train import feature_columns, fit_candidates, holdout_split


def test_every_trained_family_compiles_with_parity(
    built: dict[str, Any], paths: Any, params: Any
) -> None:
    # The train step keeps only the best pipeline, so fit them all again the way it does.
    labels = pd.read_parquet(paths.labels)
    frame = features.historical_features(paths, params.features.service, labels, params.dataset)
    split = holdout_split(frame, params.dataset, params.training)
    results = fit_candidates(split, params.dataset, params.training, params.serving.threshold)
    trained = json.loads((paths.artifacts / "candidates.json").read_text())["candidates"]
    assert {r.candidate.name for r in results} == {c["candidate"] for c in trained}
    assert {r.candidate.estimator for r in results} == set(params.training.candidates)
    numeric, categorical = feature_columns(split.holdout, params.dataset)
    for result in results:
        assert result.model is not None
        expected = result.model.predict_proba(split.holdout[numeric + categorical])[:, 1]
        got = compile_pipeline(result.model).positive_proba(split.holdout)
        diff = float(np.abs(got - expected).max())
        assert diff <= 1e-6, f"{result.candidate.name}: max abs diff {diff:.3g}"


def test_the_served_model_is_compiled(built: dict[str, Any], paths: Any) -> None:
    inference: Any = bentoml.models.get(built["package"]["model"]).info.metadata["inference"]
    assert inference["engine"] == "numpy", inference
    assert inference["parity_max_abs_diff"] <= 1e-6
    assert inference["parity_rows"] == built["train"]["candidates"]["holdout_rows"]
    model = joblib.load(paths.artifacts / "model.joblib")
    holdout = pd.read_parquet(paths.artifacts / "holdout.parquet")
    expected = model.predict_proba(holdout[list(model.feature_names_in_)])[:, 1]
    assert np.abs(compile_pipeline(model).positive_proba(holdout) - expected).max() <= 1e-6
