"""Batch scoring: a file of entity ids scored by the production model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from flows.common import project, retry_unless_expected
from flows.runner import ConfiguredTaskRunner
from loopline import batch_scoring, scoring


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_expected)
def score_file(source: str, target: str | None, root: str | None) -> dict[str, Any]:
    params, paths = project(root)
    return scoring.score_file(params, paths, source, target)


@task(retries=1, retry_delay_seconds=2, retry_condition_fn=retry_unless_expected)
def score_partitions(
    source: str, target: str | None, root: str, version: str | None
) -> dict[str, Any]:
    params, paths = project(root)
    try:
        from distributed import get_worker

        get_worker()
    except ValueError:  # a thread or process of this machine: stream the partitions
        return batch_scoring.score_partitioned(params, paths, source, target, version)
    from distributed import worker_client

    # On a Dask worker: the partitions are scored by the whole cluster while this task
    # waits outside the worker's thread pool (so its thread can take a partition too).
    with worker_client() as client:
        return batch_scoring.score_partitioned(params, paths, source, target, version, client)


@flow(name="score-batch", task_runner=ConfiguredTaskRunner())
def score_batch(
    source: str, target: str | None = None, root: str | None = None, version: str | None = None
) -> dict[str, Any]:
    """Score every entity id in ``source`` with the production model (or ``version``).

    A csv or parquet file is scored whole; a folder of parquet partitions is scored
    partition by partition, in parallel on a Dask task runner, into a folder of partitions.
    """
    if Path(source).is_dir():
        _, paths = project(root)
        return score_partitions.submit(source, target, str(paths.project), version).result()
    return score_file(source, target, root)
