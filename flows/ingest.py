"""Ingest: accept a batch (contract check + DVC version), then prepare it for features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from flows.common import flow_run_id, retry_unless_expected, workspace
from flows.runner import ConfiguredTaskRunner
from loopline import runs, steps
from loopline.lineage.openlineage import file_dataset, lineage_run
from loopline.monitoring.loop import NEW_DATA


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_expected)
def accept(root: str | None, run: str, source: str | None) -> dict[str, Any]:
    params, paths, _ = workspace(root, run, "ingest")
    return steps.accept_step(params, paths, Path(source) if source else None)


@task
def prepare(root: str | None, run: str) -> dict[str, Any]:
    params, paths, _ = workspace(root, run, "ingest")
    # The batch in this run's workspace is what accept wrote from the contract's check.
    steps.prepare_step(params, paths, checked=True)
    return steps.validate_step(params, paths)


@flow(name="ingest", task_runner=ConfiguredTaskRunner())
def ingest(
    source: str | None = None, root: str | None = None, run: str | None = None
) -> dict[str, Any]:
    """Accept ``source`` (default: ``dataset.source`` in params.yaml) as the new data version,
    keeping it in run ``run``'s workspace (default: a new one) for the steps that follow."""
    params, paths, run = workspace(root, run, "ingest")
    batch = Path(source).absolute() if source else paths.project / params.dataset.source
    with lineage_run(
        paths,
        "ingest",
        inputs=[file_dataset(paths, batch)],
        outputs=[file_dataset(paths.published, paths.published.raw_batch)],
        run_id=flow_run_id(),
    ):
        version = accept(root, run, source)
        quality = prepare(root, run)
    create_markdown_artifact(
        key="data-version",
        markdown=(
            f"# Data version `{version['data_hash']}`\n\n"
            f"{version['rows']} rows, {version['entities']} entities, "
            f"{version['start']} → {version['end']}; label rate {quality['label_rate']}."
        ),
        description="The batch accepted by this run",
    )
    if runs.record(paths)["kind"] == "ingest":
        runs.update(paths, status="published")
    # Retraining may follow new data (monitoring.retrain_on_new_data); the event says which.
    emit_event(
        event=NEW_DATA,
        resource={"prefect.resource.id": f"loopline.model.{params.serving.model_name}"},
        payload={"data_hash": version["data_hash"], "rows": version["rows"]},
    )
    return {"version": version, "quality": quality, "run": run}
