"""The closed loop on real parts: served traffic → monitor → Prefect event → retrain → canary
→ promote or roll back, under a real Prefect server started here on a free port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def monitor_cli(api: str, minutes: float) -> dict[str, Any]:
    """``loopline monitor`` in its own process, talking to the test's Prefect server."""
    result = subprocess.run(
        ["loopline", "monitor", "--minutes", str(minutes)],
        env={**os.environ, "PREFECT_API_URL": api},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout[result.stdout.index("{") :]))


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
    code = (
        "from prefect import serve\n"
        "from flows.common import project\n"
        "from flows.monitor import monitoring_deployments\n"
        "params, _ = project(None)\n"
        "every = monitoring_deployments(params, 'loopline')\n"
        "wanted = [d for d in every if d.flow_name == 'retrain']\n"
        "serve(*wanted)\n"
    )
    runner = platform.start(
        "retrain-runner",
        [sys.executable, "-c", code],
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


def wait_for_retrain(api: str, since: float, timeout: float = 420) -> Any:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["retrain"]))
            )
            done = [r for r in runs if r.state and r.state.is_final()]
            if done:
                return next((r for r in done if r.state.is_completed()), done[0])
            time.sleep(3)
    raise AssertionError("no retrain flow run finished after the event")


def test_drift_detected_retrained_and_rolled_out(
    built: dict[str, Any],
    params: Any,
    paths: Any,
    api: str,
    retrain_trigger: None,
    serving: tuple[str, str],
) -> None:
    small = loop_params(params)
    stats = replay(small, paths, serving, days=6)  # every replayed day is after the drift day
    assert stats.predictions > 500 and stats.errors == 0
    time.sleep(2)  # the service flushes its prediction log every second
    started = time.monotonic()
    window = monitor_cli(api, minutes=30)
    assert window["rows"] >= 500
    assert window["events"], window["reasons"]
    assert loop.DRIFT in window["events"] or loop.DEGRADED in window["events"]
    run = wait_for_retrain(api, started)
    assert run.state.is_completed(), run.state
    assert run.parameters["reason"] in (loop.DRIFT, loop.DEGRADED)

    registry = promotion.open_registry(paths)
    challenger = registry.challenger(small.serving.model_name)
    assert challenger is not None, registry.history()[-3:]
    assert registry.policy(small.serving.model_name).kind == "canary"

    replay(small, paths, serving, days=6)
    time.sleep(2)
    review = loop.review_rollout(small, paths, actor=ACTOR)
    assert review["decision"] in ("promoted", "rolled_back"), review
    final = registry.get(challenger.version)
    assert final.stage == ("production" if review["decision"] == "promoted" else "archived")
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
