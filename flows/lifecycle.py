"""The whole loop once: ingest → train → package, in one run workspace."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import workspace
from flows.ingest import ingest
from flows.package import package
from flows.runner import ConfiguredTaskRunner
from flows.train import train
from loopline import locks


@flow(name="lifecycle", task_runner=ConfiguredTaskRunner())
def lifecycle(source: str | None = None, root: str | None = None) -> dict[str, Any]:
    """Ingest a batch, train on exactly that batch, and package the best model.

    The training lock is held from training to publishing, so a second run of the same
    model waits (its ingest may go first: this run keeps its own copy of its batch).
    """
    params, paths, run = workspace(root, None, "lifecycle")
    data = ingest(source=source, root=root, run=run)
    with locks.training(paths, params.serving.model_name, run_id=run):
        trained = train(root=root, run=run)
        packaged = package(root=root, run=run)
    return {"data": data, "train": trained, "package": packaged, "run": run}
