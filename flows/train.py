"""Train: features → candidates on a time-based holdout → evaluation and model card."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.common import flow_run_id, project
from loopline import steps
from loopline.openlineage import feature_sources, file_dataset, lineage_run
from loopline.training.card import model_card


@task(retries=2, retry_delay_seconds=2)
def build_features(root: str | None) -> dict[str, Any]:
    params, paths = project(root)
    return steps.features_step(params, paths)


@task
def fit(root: str | None) -> dict[str, Any]:
    params, paths = project(root)
    return steps.train_step(params, paths)


@task
def evaluate(root: str | None) -> dict[str, Any]:
    params, paths = project(root)
    return steps.evaluate_step(params, paths)


@flow(name="train")
def train(root: str | None = None) -> dict[str, Any]:
    """Fit every candidate, keep the best by ``training.metric``, and publish the model card."""
    params, paths = project(root)
    # The accepted batch carries the data version (its DVC hash) the model is trained on.
    inputs = [file_dataset(paths, p) for p in (paths.raw_batch, paths.labels)]
    model = file_dataset(paths, paths.artifacts / "model.joblib")
    with lineage_run(paths, "train", [*inputs, *feature_sources(paths)], [model], flow_run_id()):
        build_features(root)
        candidates = fit(root)
        evaluation = evaluate(root)
    steps.record_run(params, paths, candidates, evaluation, flow_run_id())
    create_table_artifact(
        key="candidates", table=candidates["candidates"], description="Every candidate's holdout"
    )
    create_markdown_artifact(
        key="model-card", markdown=model_card(candidates, evaluation), description="Model card"
    )
    return {"candidates": candidates, "evaluation": evaluation}
