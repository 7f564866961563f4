"""The closed loop on Prefect's machinery: monitor on an interval, retrain on events."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import flow, task

from flows.common import flow_run_id, project, retry_unless_expected, workspace
from flows.runner import ConfiguredTaskRunner
from loopline import runs
from loopline.monitoring import loop

LOOP_ACTOR = "automation"


@task(retries=1, retry_delay_seconds=5, retry_condition_fn=retry_unless_expected)
def check_window(minutes: float | None, root: str | None) -> dict[str, Any]:
    params, paths = project(root)
    return loop.monitor_window(params, paths, minutes=minutes)


@task
def compact(root: str | None) -> list[str]:
    _, paths = project(root)
    return loop.compact_logs(paths)


@flow(name="monitor", task_runner=ConfiguredTaskRunner())
def monitor(minutes: float | None = None, root: str | None = None) -> dict[str, Any]:
    """Drift, quality and live accuracy of the last window; emits events when the policy fires."""
    result = check_window(minutes, root)
    compact(root)
    return result


@flow(name="retrain", task_runner=ConfiguredTaskRunner())
def retrain(
    reason: str = "scheduled retrain",
    actor: str = LOOP_ACTOR,
    root: str | None = None,
    model: str | None = None,
) -> Any:
    """Latest data version → train → gates → the new model starts as a canary or shadow.

    A retrain while another run trains the same model is refused: the run ends Cancelled,
    and its message names the running one.
    """
    from prefect.states import Cancelled

    from loopline.locks import LockHeld

    params, paths, _ = workspace(root, None, "retrain")
    loop.known_model(params, model)
    try:
        return loop.retrain(params, paths, actor=actor, reason=reason, flow_run_id=flow_run_id())
    except LockHeld as refused:
        runs.update(paths, status="refused", why=str(refused))
        return Cancelled(message=f"retrain refused: {refused}")


@flow(name="review-rollout", task_runner=ConfiguredTaskRunner())
def review_rollout(root: str | None = None) -> dict[str, Any]:
    """Promote a challenger that does at least as well live as the champion; else roll it back."""
    params, paths = project(root)
    return loop.review_rollout(params, paths, actor=LOOP_ACTOR)


def monitoring_deployments(params: Any, name: str) -> list[Any]:
    """Monitor every interval; retrain nightly and whenever the monitor raises an event."""
    from prefect.events import DeploymentEventTrigger

    m = params.monitoring
    expect = [loop.DRIFT, loop.DEGRADED] + ([loop.NEW_DATA] if m.retrain_on_new_data else [])
    on_event = DeploymentEventTrigger(
        name="retrain on drift or degradation",
        expect=set(expect),
        match={"prefect.resource.id": f"loopline.model.{params.serving.model_name}"},
        parameters={"reason": "{{ event.event }}"},
    )
    return [
        monitor.to_deployment(
            name, interval=timedelta(minutes=m.interval_minutes), description="Watch for drift"
        ),
        retrain.to_deployment(
            name, cron=m.retrain_cron, triggers=[on_event], description="Retrain into a rollout"
        ),
        review_rollout.to_deployment(
            name,
            interval=timedelta(minutes=max(1.0, m.canary_minutes / 3)),
            description="Finish a canary or shadow rollout",
        ),
    ]
