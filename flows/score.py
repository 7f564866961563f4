"""Batch scoring: a file of entity ids scored by the production model."""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from flows.common import project, retry_unless_expected
from flows.runner import ConfiguredTaskRunner
from loopline import scoring


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_expected)
def score_file(source: str, target: str | None, root: str | None) -> dict[str, Any]:
    params, paths = project(root)
    return scoring.score_file(params, paths, source, target)


@flow(name="score-batch", task_runner=ConfiguredTaskRunner())
def score_batch(source: str, target: str | None = None, root: str | None = None) -> dict[str, Any]:
    """Score every entity id in ``source`` (csv or parquet) with the production model."""
    return score_file(source, target, root)
