"""Train: features → candidates on a time-based holdout → evaluation and model card.

The run works in its own workspace on the data version it was handed (or the current one,
copied at its start): another ingest or run meanwhile changes nothing it reads.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.common import flow_run_id, retry_unless_expected, workspace
from loopline import locks, runs, steps
from loopline.openlineage import feature_sources, file_dataset, lineage_run
from loopline.training.card import model_card


@task
def take_data(root: str | None, run: str) -> str:
    params, paths, _ = workspace(root, run, "train")
    digest = runs.snapshot_data(paths)
    if not paths.ingested.is_file():
        steps.prepare_step(params, paths)
    return digest


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_expected)
def build_features(root: str | None, run: str) -> dict[str, Any]:
    params, paths, _ = workspace(root, run, "train")
    return steps.features_step(params, paths)


@task
def fit(root: str | None, run: str) -> dict[str, Any]:
    params, paths, _ = workspace(root, run, "train")
    return steps.train_step(params, paths)


@task
def evaluate(root: str | None, run: str) -> dict[str, Any]:
    params, paths, _ = workspace(root, run, "train")
    return steps.evaluate_step(params, paths)


@flow(name="train")
def train(root: str | None = None, run: str | None = None) -> dict[str, Any]:
    """Fit every candidate, keep the best by ``training.metric``, and publish the model card.

    One training run per model at a time: a second one waits for the first to finish.
    """
    params, paths, run = workspace(root, run, "train")
    with locks.training(paths, params.serving.model_name, run_id=run, say=_log):
        take_data(root, run)
        # The run's copy of the batch is the data version it took: no DVC pointer beside it.
        batch = replace(file_dataset(paths, paths.raw_batch), version=runs.data_hash(paths))
        inputs = [batch, file_dataset(paths, paths.labels)]
        model = file_dataset(paths, paths.artifacts / "model.joblib")
        sources = [*inputs, *feature_sources(paths)]
        with lineage_run(paths, "train", sources, [model], flow_run_id()):
            build_features(root, run)
            candidates = fit(root, run)
            evaluation = evaluate(root, run)
        steps.record_run(params, paths, candidates, evaluation, flow_run_id())
    runs.update(paths, status="trained", trained_by=flow_run_id())
    create_table_artifact(
        key="candidates", table=candidates["candidates"], description="Every candidate's holdout"
    )
    create_markdown_artifact(
        key="model-card", markdown=model_card(candidates, evaluation), description="Model card"
    )
    return {"candidates": candidates, "evaluation": evaluation, "run": run}


def _log(message: str) -> None:
    from prefect.logging import get_run_logger

    get_run_logger().warning(message)
