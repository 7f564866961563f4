"""Promote, approve and roll back: the registry changes that decide what serves."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact

from flows.common import project
from flows.runner import ConfiguredTaskRunner
from loopline import promotion


@task
def gate_and_promote(version: str, actor: str, reason: str, root: str | None) -> dict[str, Any]:
    params, paths = project(root)
    outcome = promotion.promote(params, paths, version, actor=actor, reason=reason)
    return {
        "version": outcome.version.version,
        "stage": outcome.version.stage,
        "waiting_for": outcome.waiting_for,
        "gates": outcome.gates,
    }


@flow(name="promote", task_runner=ConfiguredTaskRunner())
def promote(version: str, actor: str, reason: str, root: str | None = None) -> dict[str, Any]:
    """Check every gate and move ``version`` to production (or to staging awaiting approval)."""
    result = gate_and_promote(version, actor, reason, root)
    create_table_artifact(key="gates", table=result["gates"], description=f"Gates for {version}")
    return result


@flow(name="approve", task_runner=ConfiguredTaskRunner())
def approve(version: str, actor: str, reason: str, root: str | None = None) -> dict[str, Any]:
    """Approve a gated version waiting in staging; it goes to production."""
    _, paths = project(root)
    moved = promotion.approve(paths, version, actor=actor, reason=reason)
    return {"version": moved.version, "stage": moved.stage}


@flow(name="rollback", task_runner=ConfiguredTaskRunner())
def rollback(model_name: str, actor: str, reason: str, root: str | None = None) -> dict[str, Any]:
    """Put the previous production version back."""
    _, paths = project(root)
    restored = promotion.rollback(paths, model_name, actor=actor, reason=reason)
    return {"version": restored.version, "stage": restored.stage}
