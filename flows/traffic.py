"""Traffic: set the challenger and the policy that splits requests between the two arms."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import project
from flows.runner import ConfiguredTaskRunner
from loopline import promotion


@flow(name="traffic", task_runner=ConfiguredTaskRunner())
def traffic(
    policy: str,
    actor: str,
    reason: str,
    challenger: str | None = None,
    challenger_share: float = 0.0,
    root: str | None = None,
) -> dict[str, Any]:
    """Start (or end) a canary, A/B, shadow or blue-green rollout of ``challenger``."""
    params, paths = project(root)
    table = promotion.set_traffic(
        params,
        paths,
        policy=policy,
        challenger=challenger,
        share=challenger_share,
        actor=actor,
        reason=reason,
    )
    return table
