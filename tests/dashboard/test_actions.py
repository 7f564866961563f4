"""Actions: an operator's click starts the matching Prefect deployment run; a viewer cannot act.

The deployments are registered on the session's Prefect test server but nothing serves
them, so a started run stays scheduled: these tests check what the dashboard asks
Prefect to do (and that it never writes the registry itself). The browser test runs a
promotion all the way through.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest

from loaders import actions, common
from loopline.registry import RegistryView
from loopline.users import Role, User
from tests.dashboard.conftest import texts
from tests.dashboard.seeding import Seeded


@pytest.fixture(scope="module")
def prefect_api(prefect_harness: None) -> str:
    """The test server's API, with every action's deployment registered on it."""
    from prefect.settings import PREFECT_API_URL

    from flows.monitor import retrain
    from flows.promote import approve, promote, rollback
    from flows.traffic import traffic

    for flow in (promote, approve, rollback, traffic, retrain):
        flow.to_deployment("loopline").apply()
    return str(PREFECT_API_URL.value())


@pytest.fixture
def acting(on_seeded: Seeded, prefect_api: str, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    return on_seeded


def flow_run(api: str, flow_run_id: str) -> Any:
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(api) as client:
        return client.read_flow_run(UUID(flow_run_id))


def by_label(widgets: Any, label: str) -> Any:
    return next(w for w in widgets if w.label == label)


def submit(app: Any, label: str) -> Any:
    return by_label(app.button, label).click().run()


def started_runs(app: Any) -> list[actions.StartedAction]:
    return list(app.session_state["started_runs"]) if "started_runs" in app.session_state else []


def test_operator_promotion_starts_the_promote_deployment_run(
    acting: Seeded, dashboard: Any, prefect_api: str
) -> None:
    app = dashboard(user="olivia", page="models")
    by_label(app.selectbox, "Version to promote").select(acting.candidate)
    app.text_input(key="reason_promote").input("beats the champion on holdout")
    submit(app, "Promote")
    assert not texts(app, "error")
    [started] = started_runs(app)
    run = flow_run(prefect_api, started.flow_run_id)
    assert run.parameters == {
        "version": acting.candidate,
        "actor": "olivia",
        "reason": "beats the champion on holdout",
    }
    assert {"dashboard", "actor:olivia"} <= set(run.tags)
    assert started.deployment == "promote/loopline"
    assert any("promote" in s.label and "Scheduled" in s.label for s in app.status)
    # The dashboard asked Prefect; it did not touch the registry itself.
    assert RegistryView(acting.registry_url).get(acting.candidate).stage == "candidate"
    logged = json.loads(actions.actions_file(common.paths()).read_text().splitlines()[-1])
    assert logged["actor"] == "olivia" and logged["flow_run_id"] == started.flow_run_id


def test_rollout_retrain_and_rollback_pass_their_parameters(
    acting: Seeded, dashboard: Any, prefect_api: str
) -> None:
    app = dashboard(user="olivia", page="models")
    app.button_group(key="models_action").set_value("Roll out").run()
    by_label(app.selectbox, "Policy").select("ab")
    by_label(app.selectbox, "Challenger").select(acting.candidate)
    by_label(app.slider, "Share of traffic to the challenger (%)").set_value(30)
    app.text_input(key="reason_traffic").input("A/B against the champion")
    submit(app, "Roll out")
    app.button_group(key="models_action").set_value("Roll back").run()
    app.text_input(key="reason_rollback").input("latency regression")
    submit(app, "Roll back")
    app.button_group(key="models_action").set_value("Retrain").run()
    app.text_input(key="reason_retrain").input("new data arrived")
    submit(app, "Retrain")
    traffic, rollback, retrain = started_runs(app)
    assert flow_run(prefect_api, traffic.flow_run_id).parameters == {
        "policy": "ab",
        "challenger": acting.candidate,
        "challenger_share": 0.3,
        "actor": "olivia",
        "reason": "A/B against the champion",
    }
    assert flow_run(prefect_api, rollback.flow_run_id).parameters == {
        "model_name": "churn",
        "actor": "olivia",
        "reason": "latency regression",
    }
    assert retrain.deployment == "retrain/loopline"
    assert flow_run(prefect_api, retrain.flow_run_id).parameters == {
        "actor": "olivia",
        "reason": "new data arrived",
    }
    assert "actor:olivia" in flow_run(prefect_api, retrain.flow_run_id).tags
    assert retrain.reason == "new data arrived"


def test_a_reason_is_required(acting: Seeded, dashboard: Any) -> None:
    app = dashboard(user="olivia", page="models")
    submit(app, "Promote")
    assert any("A reason is required" in e for e in texts(app, "error"))
    assert started_runs(app) == []


def test_only_the_named_approver_can_approve(acting: Seeded, dashboard: Any) -> None:
    app = dashboard(user="olivia", page="models")
    app.button_group(key="models_action").set_value("Approve").run()
    app.text_input(key="reason_approve").input("looks good")
    submit(app, "Approve")
    assert any("awaits approval by alice, not olivia" in e for e in texts(app, "error"))
    assert started_runs(app) == []
    app = dashboard(user="alice", page="models")
    app.button_group(key="models_action").set_value("Approve").run()
    app.text_input(key="reason_approve").input("signed off")
    submit(app, "Approve")
    [started] = started_runs(app)
    assert started.parameters["version"] == acting.pending and started.actor == "alice"


def test_a_viewer_sees_everything_but_cannot_act(acting: Seeded, dashboard: Any) -> None:
    app = dashboard(user="victor", page="models")
    assert app.metric  # the versions by stage are there
    assert any("signed in as a viewer" in note for note in texts(app, "info"))
    assert not app.get("button_group") and not [b for b in app.button if b.label == "Promote"]
    with pytest.raises(PermissionError):
        actions.start_action(
            User("victor", Role.VIEWER), "promote", "why", version=acting.candidate
        )


def test_without_prefect_the_action_says_how_to_start_it(on_seeded: Seeded, dashboard: Any) -> None:
    app = dashboard(user="olivia", page="models")
    app.text_input(key="reason_promote").input("try it")
    submit(app, "Promote")
    assert any("make up" in e for e in texts(app, "error"))
    assert started_runs(app) == []
