"""Experiment records of real training runs: one per candidate, with intervals, curves,
confusion counts, importance and segments, in the registry database; a candidate that
fails to fit is recorded failed while the others are compared; one-class curves say why."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from loopline.experiments.record import assess
from loopline.settings import Paths
from loopline.tracking import Store
from loopline.training.train import feature_columns
from tests.conftest import SMALL, make_project, run_loopline


def records_of(url: str, run_id: str) -> list[dict[str, Any]]:
    store = Store(url).migrate()
    try:
        return store.candidates([run_id])
    finally:
        store.close()


@pytest.fixture(scope="module")
def stored_model(built: dict[str, Any]) -> tuple[Any, pd.DataFrame]:
    """The session's trained model and its holdout, as the model store keeps them."""
    import bentoml

    from loopline.packaging import HOLDOUT_FILE, MODEL_FILE

    stored = bentoml.models.get(built["package"]["model"])
    return joblib.load(stored.path_of(MODEL_FILE)), pd.read_parquet(stored.path_of(HOLDOUT_FILE))


def test_every_candidate_of_a_run_has_its_experiment_record(
    built: dict[str, Any], params: Any, paths: Any, stored_model: tuple[Any, pd.DataFrame]
) -> None:
    run_id = built["package"]["lineage"]["flow_run_id"]
    trained = built["train"]["candidates"]
    records = records_of(paths.registry_url, run_id)
    names = [c["candidate"] for c in trained["candidates"]]
    assert sorted(r["candidate"] for r in records) == sorted(names)
    assert [r["candidate"] for r in records if r["selected"]] == [trained["selected"]]
    _, holdout = stored_model
    numeric, categorical = feature_columns(holdout, params.dataset)
    plans = set(holdout[params.promotion.segment_column].astype(str))
    for record in records:
        name = record["candidate"]
        assert record["status"] == "ok" and record["error"] is None, name
        assert record["flow_run_id"] == run_id and record["model_name"] == "churn", name
        assert record["data_hash"] == built["data"]["version"]["data_hash"], name
        assert record["feature_service"] == params.features.service, name
        assert re.fullmatch(r"[0-9a-f]{40}", record["code_commit"]), name
        assert isinstance(record["code_dirty"], bool), name
        assert record["fit_seconds"] > 0 and record["latency_p95_ms"] > 0, name
        assert record["model_bytes"] > 1000, name
        assert set(record["metrics"]) == {
            "roc_auc",
            "average_precision",
            "log_loss",
            "f1",
            "accuracy",
        }
        for metric, bounds in record["metrics"].items():
            assert bounds["low"] <= bounds["value"] <= bounds["high"], (name, metric)
        d = record["diagnostics"]
        assert d["unavailable"] is None, name
        assert (d["roc"][0]["fpr"], d["roc"][0]["tpr"]) == (0.0, 0.0), name
        assert (d["roc"][-1]["fpr"], d["roc"][-1]["tpr"]) == (1.0, 1.0), name
        assert d["precision_recall"] and d["calibration"], name
        counts = d["confusion"]
        assert counts["threshold"] == params.serving.threshold
        assert counts["tp"] + counts["fp"] + counts["tn"] + counts["fn"] == len(holdout), name
        assert sorted(i["feature"] for i in d["importance"]) == sorted(numeric + categorical)
        means = [i["mean"] for i in d["importance"]]
        assert means == sorted(means, reverse=True), name
        segments = d["segments"]
        assert segments["column"] == params.promotion.segment_column
        assert {s["segment"] for s in segments["rows"]} == plans, name
        assert sum(s["rows"] for s in segments["rows"]) == len(holdout), name
    # The selected one's point metrics are the run's evaluation of the model it kept.
    chosen = next(r for r in records if r["selected"])
    holdout_metrics = built["train"]["evaluation"]["holdout"]
    assert chosen["metrics"]["roc_auc"]["value"] == pytest.approx(
        holdout_metrics["roc_auc"], abs=1e-4
    )
    run = next(r for r in Store(paths.registry_url).runs() if r["run_id"] == run_id)
    assert run["code_commit"] == chosen["code_commit"] and run["code_dirty"] == chosen["code_dirty"]


def test_the_selected_model_leaves_dvc_plot_files(built: dict[str, Any], paths: Any) -> None:
    """Written by the evaluate step in the run's workspace, published with its artifacts."""
    plots = paths.artifacts / "plots"
    holdout_rows = json.loads((paths.artifacts / "metrics.json").read_text())["holdout_rows"]
    found = {p.name: json.loads(p.read_text()) for p in plots.glob("*.json")}
    assert set(found) == {
        "roc.json",
        "precision_recall.json",
        "calibration.json",
        "confusion.json",
        "importance.json",
    }
    assert found["roc.json"][0] == {"fpr": 0.0, "tpr": 0.0}
    assert len(found["confusion.json"]) == holdout_rows
    assert {row["actual"] for row in found["confusion.json"]} == {"churn", "stay"}
    assert {"feature", "mean", "std"} == set(found["importance.json"][0])


def test_a_one_class_holdout_says_its_curves_are_unavailable(
    params: Any, stored_model: tuple[Any, pd.DataFrame]
) -> None:
    model, holdout = stored_model
    label = params.dataset.label
    stayed = holdout[holdout[label] == 0]
    numeric, categorical = feature_columns(stayed, params.dataset)
    inputs = stayed[numeric + categorical]
    score = model.predict_proba(inputs)[:, 1]
    column = params.promotion.segment_column
    found = assess(
        model,
        inputs,
        stayed[label].to_numpy(),
        score,
        metric="roc_auc",
        threshold=params.serving.threshold,
        seed=params.training.seed,
        segment_column=column,
        segment_values=stayed[column],
    )
    d = found.diagnostics
    assert d["roc"] == [] and d["precision_recall"] == [] and d["importance"] == []
    assert d["unavailable"] == (
        f"the holdout has only one label class ({len(stayed)} rows, all 0): "
        "ROC and precision-recall curves need both"
    )
    assert sum(b["count"] for b in d["calibration"]) == len(stayed)
    assert d["confusion"]["tp"] == d["confusion"]["fn"] == 0
    assert all(s["roc_auc"] is None for s in d["segments"]["rows"])
    assert found.metrics["roc_auc"] == {"value": None, "low": None, "high": None}


def test_a_candidate_that_fails_to_fit_is_recorded_and_the_others_compared(
    built: dict[str, Any], params: Any, tmp_path: Path
) -> None:
    """``C: -1.0`` is refused by LogisticRegression when it is fitted: the train flow still
    succeeds, that candidate's record says why, and the selection is among the others."""
    small = json.loads(json.dumps(SMALL))
    small["training"]["candidates"]["logistic_regression"] = {"C": [-1.0, 1.0]}
    project = make_project(tmp_path / "failing", small)
    batch = Path(params.dataset.source)
    source = Path(os.environ["LOOPLINE_PROJECT"]) / batch
    (project / batch).parent.mkdir(parents=True, exist_ok=True)
    (project / batch).write_bytes(source.read_bytes())
    for command in (("ingest",), ("train",)):
        done = run_loopline(project, *command)
        assert done.returncode == 0, done.stderr[-3000:]
    paths = Paths(project, project / ".loopline")
    store = Store(paths.registry_url)
    (run,) = store.runs()
    records = {r["candidate"]: r for r in store.candidates([run["run_id"]])}
    store.close()
    failed = records.pop("logistic_regression(C=-1.0)")
    assert failed["status"] == "failed" and not failed["selected"]
    assert failed["error"].startswith("InvalidParameterError: The 'C' parameter")
    assert "\n" not in failed["error"]
    assert failed["metrics"] == {} and failed["diagnostics"] == {}
    assert failed["fit_seconds"] is None and failed["model_bytes"] is None
    assert failed["data_hash"] == run["data_hash"] and failed["flow_run_id"] == run["flow_run_id"]
    assert len(records) == 3 and all(r["status"] == "ok" for r in records.values())
    assert [n for n, r in records.items() if r["selected"]] == [run["selected"]]
    assert {c["candidate"] for c in run["candidates"]} == set(records)
    # The train flow has not published: its files are in the run's workspace.
    card = json.loads((paths.runs / run["run_id"] / "artifacts" / "candidates.json").read_text())
    assert card["failed"] == [
        {
            "candidate": "logistic_regression(C=-1.0)",
            "estimator": "logistic_regression",
            "error": failed["error"],
        }
    ]
    assert np.isfinite(card["best_metric"])
