"""Package: the selected model into BentoML's store with its lineage, and a Bento; publish."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from flows.common import flow_run_id, project, retry_unless_expected, workspace
from flows.runner import ConfiguredTaskRunner
from loopline import runs, steps
from loopline.lineage.openlineage import bento_dataset, file_dataset, lineage_run, model_dataset


@task(retries=1, retry_delay_seconds=2, retry_condition_fn=retry_unless_expected)
def save_and_build(root: str | None, run: str) -> dict[str, Any]:
    params, paths, _ = workspace(root, run, "package")
    trained_by = runs.record(paths).get("trained_by") or flow_run_id()
    return steps.package_step(params, paths, trained_by)


@flow(name="package", task_runner=ConfiguredTaskRunner())
def package(root: str | None = None, run: str | None = None) -> dict[str, Any]:
    """Store the model of run ``run`` (default: the last trained one) with its data hash,
    features, params, commit and run id, build its Bento, and publish it to the registry."""
    if run is None:
        _, project_paths = project(root)
        workspace_folder = runs.last_trained(project_paths).workspace
        assert workspace_folder is not None
        run = workspace_folder.name
    _, paths, run = workspace(root, run, "package")
    made_from = ("model.joblib", "holdout.parquet", "metrics.json")
    inputs = [file_dataset(paths, paths.artifacts / name) for name in made_from]
    with lineage_run(paths, "package", inputs, [], flow_run_id()) as lineage:
        result = save_and_build(root, run)
        lineage.outputs += [model_dataset(result["model"]), bento_dataset(result["bento"])]
    create_markdown_artifact(
        key="package",
        markdown=f"# Model `{result['model']}`\n\nBento `{result['bento']}`.",
        description="What this run packaged",
    )
    return result
