"""The closed loop on real parts: served traffic → monitor → Prefect event → retrain → canary
→ promote or roll back, under a real Prefect server started here on a free port."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopline import platform, promotion
from loopline.monitoring import loop
from tests.integration.test_promotion import package_again, package_bad

pytestmark = pytest.mark.e2e
ACTOR = "loop-test"


def loop_params(params: Any) -> Any:
    """Small-scale policy: fire on modest drift, decide a rollout on a few hundred labels."""
    monitoring = params.monitoring.model_copy(
        update={
            "drift_share_threshold": 0.1,
            "min_window_rows": 200,
            "min_labels": 50,
            "canary_minutes": 0,
            "canary_min_labels": 40,
            "canary_share": 0.3,
        }
    )
    return params.model_copy(update={"monitoring": monitoring})


@pytest.fixture(scope="module")
def loop_config(project: Path, params: Any) -> Iterator[None]:
    """The small-scale monitoring policy in the project's params.yaml, for every process."""
    import yaml

    file = project / "params.yaml"
    original = file.read_text()
    raw = yaml.safe_load(original)
    raw["monitoring"] = loop_params(params).monitoring.model_dump(mode="json")
    # The gates' latency budget is tested on its own; on a shared CI machine it would only
    # add noise to the story this module tells.
    raw["promotion"]["latency_p95_ms"] = 5000
    file.write_text(yaml.safe_dump(raw, sort_keys=False))
    yield
    file.write_text(original)


@pytest.fixture(scope="module")
def api(paths: Any, loop_config: None) -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = platform.start_prefect(paths, platform.free_port())
    with platform.running(server):
        platform.wait_ready(server, "/api/health", timeout=240)
        url = server.url + "/api"
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url


@pytest.fixture(scope="module")
def retrain_trigger(api: str, paths: Any) -> Iterator[None]:
    """Only the retrain deployment, with its event trigger, served by a real runner."""
    runner = platform.start(
        "retrain-runner",
        ["loopline", "deployments", "--only", "retrain"],
        "",
        paths,
        {"PREFECT_API_URL": api},
    )
    with platform.running(runner):
        time.sleep(15)  # the runner registers the deployment and its trigger
        assert runner.process.poll() is None, runner.log.read_text()[-2000:]
        yield


@pytest.fixture(scope="module")
def serving(built: dict[str, Any], params: Any, paths: Any) -> Iterator[tuple[str, str]]:
    registry = promotion.open_registry(paths)
    if registry.production(params.serving.model_name) is None:
        promotion.promote(params, paths, built["package"]["model"], actor=ACTOR, reason="loop")
    keys = platform.dev_keys(paths)
    service = platform.start_serving(paths, platform.free_port())
    with platform.running(service):
        platform.wait_ready(service, "/readyz")
        yield service.url, keys["client"]


def replay(params: Any, paths: Any, serving: tuple[str, str], days: int) -> Any:
    from loopline.simulate import simulate

    url, key = serving
    return simulate(
        params,
        paths,
        url=url,
        key=key,
        days=days,
        rate=120,
        seconds_per_day=2,
        feedback_delay_days=0,
        max_seconds=90,
    )


@pytest.fixture
def restore_data(params: Any, paths: Any, project: Path, tmp_path: Path) -> Iterator[None]:
    """The story delivers new data versions, retrains on them and promotes the result; later
    tests expect the bootstrap data, its features and artifacts, and its champion back."""
    import shutil

    from loopline import steps

    name = params.serving.model_name
    before = promotion.open_registry(paths).production(name)
    shutil.copytree(paths.artifacts, tmp_path / "artifacts")
    yield
    steps.accept_step(params, paths, project / params.dataset.source)
    steps.prepare_step(params, paths)
    steps.features_step(params, paths)
    shutil.rmtree(paths.artifacts)
    shutil.copytree(tmp_path / "artifacts", paths.artifacts)
    registry = promotion.open_registry(paths)
    now = registry.production(name)
    if before is not None and now is not None and now.version != before.version:
        registry.rollback(name, actor=ACTOR, reason="restore the champion later tests expect")


def test_drift_story_detects_retrains_and_promotes(
    params: Any,
    paths: Any,
    api: str,
    retrain_trigger: None,
    serving: tuple[str, str],
    restore_data: None,
) -> None:
    """Healthy days, then the price change at ``drift_day``: the monitor's event reaches the
    retrain deployment's trigger, the retrained model starts as a canary and wins live."""
    from loopline import story

    small = loop_params(params)
    url, key = serving
    pace = story.Pace(seconds_per_day=0.3, rate=150, canary_days=45)
    record = story.tell(
        small, paths, serving_url=url, client_key=key, api_url=api, pace=pace, say=print
    )
    healthy, drifted = record["windows"][0], record["windows"][-1]
    assert healthy["events"] == [] and healthy["rows"] >= small.monitoring.min_window_rows
    assert loop.DRIFT in drifted["events"], drifted

    # The registry's history tells the same story, in order, with the evidence.
    history = record["history"]
    actions = [(e["action"], e["actor"]) for e in history]
    registered = next(e for e in history if e["action"] == "register")
    rolled_out = next(e for e in history if e["action"] == "policy_set")
    assert rolled_out["actor"] == "automation" and loop.DRIFT in rolled_out["reason"], actions
    assert record["review"]["decision"] == "promoted", record["review"]
    promoted = [
        e for e in history if e["action"] == "transition" and e["version"] == registered["version"]
    ]
    assert promoted and "rollout won: live roc_auc" in promoted[-1]["reason"], actions
    assert history.index(registered) < history.index(rolled_out) < history.index(promoted[-1])
    registry = promotion.open_registry(paths)
    assert registry.production(small.serving.model_name).version == registered["version"]
    assert registry.policy(small.serving.model_name).kind == "single"
    assert registry.verify() is None


def test_worse_challenger_is_rolled_back(
    params: Any, paths: Any, serving: tuple[str, str], tmp_path: Path
) -> None:
    small = loop_params(params)
    bad = package_bad(params, paths, tmp_path)
    promotion.set_traffic(
        small,
        paths,
        policy="canary",
        challenger=bad,
        share=0.5,
        actor=ACTOR,
        reason="a worse model on purpose",
    )
    time.sleep(1.5)  # the service picks up the registry change
    replay(small, paths, serving, days=4)
    time.sleep(2)
    review = loop.review_rollout(small, paths, actor=ACTOR)
    assert review["decision"] == "rolled_back", review
    registry = promotion.open_registry(paths)
    assert registry.get(bad).stage == "archived"
    assert registry.challenger(small.serving.model_name) is None


def test_equal_challenger_is_promoted(params: Any, paths: Any, serving: tuple[str, str]) -> None:
    small = loop_params(params)
    same = package_again(params, paths)  # the same pipeline: live metrics tie, and ties win
    registry = promotion.open_registry(paths)
    champion = registry.production(small.serving.model_name)
    assert champion is not None
    promotion.set_traffic(
        small,
        paths,
        policy="shadow",
        challenger=same,
        share=1.0,
        actor=ACTOR,
        reason="shadow the retrained model",
    )
    time.sleep(1.5)
    replay(small, paths, serving, days=3)
    time.sleep(2)
    review = loop.review_rollout(small, paths, actor=ACTOR)
    assert review["decision"] == "promoted", review
    assert registry.production(small.serving.model_name).version == same
    assert any(
        e.action == "transition" and e.to_stage == "production"
        for e in registry.history(version=same)
    )
