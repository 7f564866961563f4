"""Package: the selected model into BentoML's store with its lineage, and a Bento."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from flows.common import flow_run_id, project
from loopline import steps


@task(retries=1, retry_delay_seconds=2)
def save_and_build(root: str | None, run_id: str | None) -> dict[str, Any]:
    params, paths = project(root)
    return steps.package_step(params, paths, run_id)


@flow(name="package")
def package(root: str | None = None) -> dict[str, Any]:
    """Store the model (with data hash, features, params, commit, run id) and build its Bento."""
    result = save_and_build(root, flow_run_id())
    create_markdown_artifact(
        key="package",
        markdown=f"# Model `{result['model']}`\n\nBento `{result['bento']}`.",
        description="What this run packaged",
    )
    return result
