"""Train: features → candidates on a time-based holdout → evaluation and model card.

The run works in its own workspace on the data version it was handed (or the current one,
copied at its start): another ingest or run meanwhile changes nothing it reads.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import replace
from typing import Any

from prefect import flow, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import as_completed

from flows.common import flow_run_id, retry_unless_expected, workspace
from flows.runner import ConfiguredTaskRunner
from loopline import locks, runs, steps
from loopline.lineage.openlineage import feature_sources, file_dataset, lineage_run
from loopline.training import stages
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
def training_set(root: str | None, run: str) -> dict[str, Any]:
    params, paths, _ = workspace(root, run, "train")
    return stages.training_set_step(params, paths)


# One task per candidate: they run in parallel on the configured task runner (a Dask
# cluster's workers, given one) and a failed fit is retried alone.
@task(
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=retry_unless_expected,
    task_run_name="fit {candidate}",
)
def fit_candidate(root: str, run: str, candidate: str) -> dict[str, Any]:
    params, paths, _ = workspace(root, run, "train")
    # Where it ran, for the Prefect UI and the tests: a worker of the cluster, or this host.
    where = {"host": socket.gethostname(), "pid": os.getpid()}
    return stages.fit_candidate_step(params, paths, candidate) | where


@task
def select(root: str | None, run: str) -> dict[str, Any]:
    params, paths, _ = workspace(root, run, "train")
    return steps.selected_step(params, paths)


@task
def evaluate(root: str | None, run: str) -> dict[str, Any]:
    params, paths, _ = workspace(root, run, "train")
    return steps.evaluate_step(params, paths)


@flow(name="train", task_runner=ConfiguredTaskRunner())
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
            prepared = training_set(root, run)
            # Workers elsewhere find the project by its path, not by this process's cwd.
            started = time.perf_counter()
            fits = fit_candidate.map(
                unmapped(str(paths.project)), unmapped(run), prepared["candidates"]
            )
            fitted = _as_they_finish(fits, params.training.metric)
            fit_wall = time.perf_counter() - started
            candidates = select(root, run)
            evaluation = evaluate(root, run)
        steps.record_run(params, paths, candidates, evaluation, flow_run_id())
    runs.update(paths, status="trained", trained_by=flow_run_id())
    create_table_artifact(
        key="candidates", table=candidates["candidates"], description="Every candidate's holdout"
    )
    create_markdown_artifact(
        key="model-card", markdown=model_card(candidates, evaluation), description="Model card"
    )
    return {
        "candidates": candidates,
        "evaluation": evaluation,
        "run": run,
        "fitted": fitted,
        # The candidates step's wall time: what a parallel task runner shortens.
        "fit_wall_seconds": round(fit_wall, 3),
    }


def _as_they_finish(fits: Any, metric: str) -> list[dict[str, Any]]:
    """Every candidate's fit in the grid's order, or the first failure after its retries;
    a progress line as each one ends, whichever finishes first."""
    from prefect.logging import get_run_logger

    for done, future in enumerate(as_completed(list(fits)), start=1):
        get_run_logger().info(stages.progress(done, len(fits), future.result(), metric))
    return [future.result() for future in fits]


def _log(message: str) -> None:
    from prefect.logging import get_run_logger

    get_run_logger().warning(message)
