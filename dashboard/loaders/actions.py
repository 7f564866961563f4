"""Dashboard actions: each starts its Prefect deployment run and records who and why.

Actions never write to the registry: the flow applies the gates and writes the audit
trail; this module checks the user may act, starts the run and keeps a local record.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loaders.common import paths, prefect_api
from loaders.prefect_runs import prefect_up, ui_link
from loopline.settings import Paths
from loopline.users import User

if TYPE_CHECKING:
    import pandas as pd

MAX_ACTIONS_SHOWN = 50
# Prefect deployment that carries out each dashboard action (see flows/deployments.py).
DEPLOYMENTS = {
    "promote": "promote/loopline",
    "approve": "approve/loopline",
    "traffic": "traffic/loopline",
    "rollback": "rollback/loopline",
    "retrain": "retrain/loopline",
}


class ActionUnavailable(RuntimeError):
    """The action cannot start here (no Prefect server, or its deployment is not served)."""


@dataclass(frozen=True)
class StartedAction:
    """A deployment run the dashboard started, and who started it why."""

    action: str
    deployment: str
    flow_run_id: str
    parameters: dict[str, Any]
    actor: str
    reason: str
    at: datetime
    link: str


def start_action(user: User, action: str, reason: str, **parameters: Any) -> StartedAction:
    """Start the Prefect deployment run behind ``action`` on behalf of ``user``.

    Only operators may act; a reason is required. The registry change itself happens in
    the flow (gates, audit trail); this records who asked, why, and which run does it.
    """
    if not user.can_act:
        raise PermissionError(f"{user.name} is a {user.role}: only operators can act")
    reason = reason.strip()
    if len(reason) < 3:
        raise ValueError("say why: a reason of at least 3 characters is required")
    if action not in DEPLOYMENTS:
        raise ValueError(f"unknown action {action!r}")
    api = prefect_api()
    if api is None:
        raise ActionUnavailable(
            "actions run as Prefect deployments: start the platform with `make up` "
            "(or set PREFECT_API_URL and run `loopline deployments`)"
        )
    down = prefect_up(api)
    if down is not None:
        raise ActionUnavailable(f"Prefect is not answering at {api}: {down}")
    parameters = {**parameters, "actor": user.name, "reason": reason}
    deployment = DEPLOYMENTS[action]
    run = _run_deployment(api, deployment, parameters, tags=["dashboard", f"actor:{user.name}"])
    started = StartedAction(
        action=action,
        deployment=deployment,
        flow_run_id=str(run),
        parameters=parameters,
        actor=user.name,
        reason=reason,
        at=datetime.now(UTC),
        link=ui_link(api, str(run)),
    )
    record_action(paths(), started)
    return started


def _run_deployment(api: str, name: str, parameters: dict[str, Any], tags: list[str]) -> str:
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    try:
        with temporary_settings(updates={PREFECT_API_URL: api}):
            run = run_deployment(
                name=name, parameters=parameters, timeout=0, tags=tags, as_subflow=False
            )
    except ObjectNotFound as exc:
        raise ActionUnavailable(
            f"deployment {name} is not served: run `loopline deployments` (started by `make up`)"
        ) from exc
    return str(getattr(run, "id", run))  # sync here: Prefect's dispatch returns the run


def actions_file(where: Paths) -> Path:
    return where.state / "dashboard" / "actions.jsonl"


def record_action(where: Paths, started: StartedAction) -> None:
    """Append who started which run and why (one JSON line; appends do not interleave)."""
    target = actions_file(where)
    target.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(
        {
            "at": started.at.isoformat(),
            "actor": started.actor,
            "action": started.action,
            "reason": started.reason,
            "deployment": started.deployment,
            "flow_run_id": started.flow_run_id,
            "parameters": started.parameters,
        },
        default=str,
    )
    with open(target, "a") as out:
        out.write(line + "\n")


def recent_actions(where: Paths, limit: int = MAX_ACTIONS_SHOWN) -> pd.DataFrame:
    """The latest actions started from the dashboard, newest first."""
    import pandas as pd

    target = actions_file(where)
    columns = ["at", "actor", "action", "reason", "deployment", "flow_run_id"]
    if not target.is_file():
        return pd.DataFrame(columns=columns)
    lines = deque(target.open(), maxlen=limit)
    rows = [json.loads(line) for line in lines if line.strip()]
    frame = pd.DataFrame(rows, columns=columns)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame.iloc[::-1].reset_index(drop=True)
