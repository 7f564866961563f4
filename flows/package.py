"""Package: the selected model into BentoML's store with its lineage, and a Bento."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from flows.common import flow_run_id, project
from loopline import steps
from loopline.openlineage import bento_dataset, file_dataset, lineage_run, model_dataset


@task(retries=1, retry_delay_seconds=2)
def save_and_build(root: str | None, run_id: str | None) -> dict[str, Any]:
    params, paths = project(root)
    return steps.package_step(params, paths, run_id)


@flow(name="package")
def package(root: str | None = None) -> dict[str, Any]:
    """Store the model (with data hash, features, params, commit, run id) and build its Bento."""
    _, paths = project(root)
    run_id = flow_run_id()
    made_from = ("model.joblib", "holdout.parquet", "metrics.json")
    inputs = [file_dataset(paths, paths.artifacts / name) for name in made_from]
    with lineage_run(paths, "package", inputs, [], run_id) as run:
        result = save_and_build(root, run_id)
        run.outputs += [model_dataset(result["model"]), bento_dataset(result["bento"])]
    create_markdown_artifact(
        key="package",
        markdown=f"# Model `{result['model']}`\n\nBento `{result['bento']}`.",
        description="What this run packaged",
    )
    return result
