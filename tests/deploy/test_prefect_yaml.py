"""``prefect deploy --all`` of prefect.yaml on a real Prefect server creates exactly the
deployments `make up` serves: the same names, descriptions, schedules and event triggers.

The served ones are built by flows/deployments.py from params.yaml; prefect.yaml writes
them out by hand for a work pool. So this compares the two through the server, after a
real deploy from a copy of the project (the deploy imports every flow's module).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def _prefect(api: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_API_URL": api, "PYTHONPATH": str(folder)}
    command = [str(Path(sys.executable).with_name("prefect")), "--no-prompt", *args]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)


FILES = {
    "prefect.yaml": "loopline-process",
    # Made a process pool here: a Kubernetes pool's job template comes with the
    # prefect-kubernetes package and needs a cluster to mean anything. What this checks is
    # the file: every deployment on that pool, with the served names and schedules.
    "deploy/prefect/kubernetes.yaml": "loopline-kubernetes",
}


@pytest.fixture(scope="module", params=sorted(FILES))
def deployed(
    request: pytest.FixtureRequest, prefect_harness: None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    from prefect.settings import PREFECT_API_URL

    api, file, pool = str(PREFECT_API_URL.value()), request.param, FILES[request.param]
    folder = tmp_path_factory.mktemp("deploy") / "project"
    folder.mkdir()
    for name in (file, "params.yaml"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, folder / name)
    shutil.copytree(REPO / "flows", folder / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    created = _prefect(api, folder, "work-pool", "create", pool, "--type", "process")
    assert created.returncode == 0 or "already exists" in created.stdout, created.stdout
    done = _prefect(api, folder, "deploy", "--all", "--prefect-file", file)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return {"api": api, "folder": folder, "pool": pool}


def _served() -> dict[str, Any]:
    from flows.deployments import deployments
    from loopline.config import load_params

    params = load_params(REPO / "params.yaml")
    return {f"{d.flow_name}/{d.name}": d for d in deployments(params)}


def _schedules(schedules: list[Any]) -> list[tuple[str, Any]]:
    out = []
    for entry in schedules:
        schedule = getattr(entry, "schedule", entry)
        if getattr(schedule, "interval", None) is not None:
            interval = schedule.interval
            seconds = interval.total_seconds() if isinstance(interval, timedelta) else interval
            out.append(("interval", float(seconds)))
        else:
            out.append(("cron", schedule.cron))
    return sorted(out)


def test_the_deployments_prefect_yaml_creates_are_the_served_ones(deployed: dict[str, Any]) -> None:
    from prefect.client.orchestration import SyncPrefectClient

    served = _served()
    with SyncPrefectClient(deployed["api"]) as client:
        flows = {f.id: f.name for f in client.read_flows()}
        mine = {
            f"{flows[d.flow_id]}/{d.name}": d
            for d in client.read_deployments()
            if d.work_pool_name == deployed["pool"]
        }
    assert sorted(mine) == sorted(served)
    for key, ours in mine.items():
        theirs = served[key]
        assert ours.description == theirs.description, key
        assert _schedules(ours.schedules) == _schedules(theirs.schedules), key
        assert ours.entrypoint and ours.entrypoint.startswith("flows/"), key


def test_the_event_trigger_is_the_served_one(deployed: dict[str, Any]) -> None:
    from prefect.client.orchestration import SyncPrefectClient

    served = _served()
    with SyncPrefectClient(deployed["api"]) as client:
        flows = {f.name: f.id for f in client.read_flows()}
        made = {}
        for d in client.read_deployments():
            if d.work_pool_name == deployed["pool"]:
                related = client.read_resource_related_automations(f"prefect.deployment.{d.id}")
                made[[n for n, i in flows.items() if i == d.flow_id][0]] = related
    with_triggers = {name for name, automations in made.items() if automations}
    assert with_triggers == {k.split("/")[0] for k, d in served.items() if d.triggers}
    (automation,) = made["retrain"]
    (trigger,) = served["retrain/loopline"].triggers
    ours = automation.trigger
    assert automation.name == trigger.name
    assert set(ours.expect) == set(trigger.expect)
    assert ours.match.model_dump() == trigger.match.model_dump()
    (action,) = automation.actions
    assert action.parameters == trigger.parameters
