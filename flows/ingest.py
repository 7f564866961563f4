"""Ingest: accept a batch (contract check + DVC version), then prepare it for features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from flows.common import flow_run_id, project
from loopline import steps
from loopline.monitoring.loop import NEW_DATA
from loopline.openlineage import file_dataset, lineage_run


@task(retries=2, retry_delay_seconds=2)
def accept(root: str | None, source: str | None) -> dict[str, Any]:
    params, paths = project(root)
    return steps.accept_step(params, paths, Path(source) if source else None)


@task
def prepare(root: str | None) -> dict[str, Any]:
    params, paths = project(root)
    steps.prepare_step(params, paths)
    return steps.validate_step(params, paths)


@flow(name="ingest")
def ingest(source: str | None = None, root: str | None = None) -> dict[str, Any]:
    """Accept ``source`` (default: ``dataset.source`` in params.yaml) as the new data version."""
    params, paths = project(root)
    batch = Path(source).absolute() if source else paths.project / params.dataset.source
    with lineage_run(
        paths,
        "ingest",
        inputs=[file_dataset(paths, batch)],
        outputs=[file_dataset(paths, paths.raw_batch)],
        run_id=flow_run_id(),
    ):
        version = accept(root, source)
        quality = prepare(root)
    create_markdown_artifact(
        key="data-version",
        markdown=(
            f"# Data version `{version['data_hash']}`\n\n"
            f"{version['rows']} rows, {version['entities']} entities, "
            f"{version['start']} → {version['end']}; label rate {quality['label_rate']}."
        ),
        description="The batch accepted by this run",
    )
    # Retraining may follow new data (monitoring.retrain_on_new_data); the event says which.
    emit_event(
        event=NEW_DATA,
        resource={"prefect.resource.id": f"loopline.model.{params.serving.model_name}"},
        payload={"data_hash": version["data_hash"], "rows": version["rows"]},
    )
    return {"version": version, "quality": quality}
