"""The closed loop on real parts: served traffic → monitor → Prefect event → retrain → canary
→ promote or roll back, under a real Prefect server started here on a free port."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopline import platform, promotion
from loopline.data import versioning
from loopline.monitoring import loop
from tests.integration.test_lineage import flow_name
from tests.integration.test_promotion import package_again, package_bad

pytestmark = pytest.mark.e2e
ACTOR = "loop-test"


def loop_params(params: Any, **review: Any) -> Any:
    """Small-scale policy: fire on modest drift, decide a rollout on a few hundred labels.

    The story's retrained model meets traffic in shadow, so its verdict is paired on the
    same requests. Reviews run at 99.9 % confidence unless a test says otherwise: a
    challenger at least as good as the champion is then rolled back (upper bound < 0) with
    probability at most 0.05 % per look (one-sided), below the 0.1 % a test may fail by.
    Thirty labels of each class per arm suffice here (the project's 100 guard against
    many looks; these tests look once).
    """
    small = {"confidence": 0.999, "min_positives": 30, "min_negatives": 30}
    rule = params.monitoring.review.model_copy(update=small | review)
    monitoring = params.monitoring.model_copy(
        update={
            "drift_share_threshold": 0.1,
            "min_window_rows": 200,
            "min_labels": 50,
            "rollout": "shadow",
            "canary_minutes": 0,
            "canary_min_labels": 40,
            "canary_share": 0.3,
            "review": rule,
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
        # The runner looks for runs to start every 10 s by default; the story waits on it.
        {"PREFECT_API_URL": api, "PREFECT_RUNNER_POLL_FREQUENCY": "2"},
    )
    with platform.running(runner):
        wait_for_trigger(runner)
        yield


def wait_for_trigger(runner: platform.Service, limit: float = 300) -> None:
    """Until the runner has registered the retrain deployment and its event trigger."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + limit  # a bound on the test, not a speed expectation
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            assert runner.process.poll() is None, runner.log.read_text()[-2000:]
            try:
                deployment = client.read_deployment_by_name("retrain/loopline")
            except ObjectNotFound:
                deployment = None
            resource = f"prefect.deployment.{deployment.id}" if deployment else None
            if resource and client.read_resource_related_automations(resource):
                return
            time.sleep(0.5)
    raise AssertionError(
        f"no retrain deployment with its trigger: {runner.log.read_text()[-2000:]}"
    )


@pytest.fixture(scope="module")
def serving(built: dict[str, Any], params: Any, paths: Any) -> Iterator[tuple[str, str]]:
    registry = promotion.open_registry(paths)
    if registry.production(params.serving.model_name) is None:
        promotion.promote(params, paths, built["package"]["model"], actor=ACTOR, reason="loop")
    keys = platform.dev_keys(paths)
    # One worker: this module tests the loop, not failover (test_worker_crash.py does);
    # a second worker only doubles the start-up cost on two cores.
    service = platform.start_serving(paths, platform.free_port(), workers=1)
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
    from loopline.data import versioning

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
    # The retrain committed its own lock and metrics; record (and commit) the restored ones,
    # as a run that published them would have, so git and DVC agree with the files again.
    model = before.version if before is not None else "restored artifacts"
    data_hash = versioning.tracked_hash(paths.raw_batch)
    versioning.record_pipeline(paths, data_hash, model)


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
    registry = promotion.open_registry(paths)
    name, version = small.serving.model_name, registered["version"]
    # The version the drift trigger's retrain made links to that flow run, its data
    # version and its code commit.
    lineage = registry.get(version).lineage
    assert flow_name(lineage["flow_run_id"]) == "retrain", lineage
    newest = versioning.tracked_hash(paths.raw_batch)  # the last batch the story delivered
    assert lineage["data_hash"] == newest and lineage["code_commit"], lineage
    reviews = [e for e in registry.history(version=version) if e.action == "review"]
    assert reviews, actions
    verdict, review = reviews[-1].details, record["review"]
    assert review["version"] == version and review["evidence"] == verdict["evidence"]
    # How the verdict falls depends on ~45 paired positives: promote (the lower bound
    # clears -margin) or keep collecting are both sound. The retrained model learned the
    # drifted data it is judged on, so it is at least as good as the champion there, and
    # at 99.9 % confidence a rollback of it has probability <= 0.05 % (see loop_params).
    assert review["decision"] in {"promoted", "extended", "wait"}, review
    if review["decision"] == "wait":
        assert verdict["reason"].startswith("not enough evidence"), verdict
    else:
        lo, hi = verdict["interval"]
        assert verdict["test"] == "paired DeLong" and verdict["n_paired"] > 0, verdict
        assert lo <= verdict["estimate"] <= hi and hi >= 0, verdict
    if review["decision"] == "promoted":
        assert lo >= -small.monitoring.review.margin, verdict
        promoted = [e for e in history if e["action"] == "transition" and e["version"] == version]
        assert promoted and "rollout won: promote: paired DeLong" in promoted[-1]["reason"]
        assert history.index(registered) < history.index(rolled_out) < history.index(promoted[-1])
        assert registry.production(name).version == version
        assert registry.policy(name).kind == "single"
    else:  # still under rollout: the shadow keeps collecting evidence
        assert registry.challenger(name).version == version
        assert registry.policy(name).kind == "shadow"
    assert registry.verify() is None


def test_worse_challenger_is_rolled_back(
    params: Any, paths: Any, serving: tuple[str, str], tmp_path: Path
) -> None:
    """A model trained on shuffled labels (ROC AUC ~0.5) in a 50 % canary, unpaired arms:
    never promoted; rolled back by the test, or at the limit by the default.

    The only false failure is a promotion. The true difference d is below -margin (the
    champion's ROC AUC is asserted >= 0.6 below), so promoting needs an estimate at least
    -margin + 3.29 se, more than 3.29 standard errors above d, whatever se is:
    P < 0.05 % at 99.9 % confidence (one-sided), however many labels the replay delivered.
    """
    from datetime import UTC, datetime, timedelta

    small = loop_params(params)
    champion = promotion.open_registry(paths).production(small.serving.model_name)
    assert champion is not None and champion.metrics["roc_auc"] >= 0.6, champion
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
    # Healthy days only (the generator's drift would start on day 130 of these 120-127).
    calm = small.built_in().model_copy(update={"drift_day": 10_000})
    replay(small.model_copy(update={"generator": calm}), paths, serving, days=8)
    time.sleep(2)
    review = loop.review_rollout(small, paths, actor=ACTOR)
    assert review["decision"] in {"rolled_back", "extended", "wait"}, review
    if review["decision"] == "rolled_back":
        assert review["verdict"]["interval"][1] < 0, review
    else:  # inconclusive on these labels: at the rollout's limit the default rolls it back
        lo = review["verdict"]["interval"][0]
        assert lo is None or lo < -small.monitoring.review.margin, review
        limit = timedelta(minutes=small.monitoring.review.max_minutes)
        review = loop.review_rollout(small, paths, actor=ACTOR, now=datetime.now(UTC) + limit)
        assert review["decision"] == "rolled_back" and review["verdict"]["by_default"], review
    verdict = review["verdict"]
    assert verdict["test"] in {"unpaired DeLong", "none"}, verdict
    registry = promotion.open_registry(paths)
    assert registry.get(bad).stage == "archived"
    assert registry.challenger(small.serving.model_name) is None
    recorded = [e for e in registry.history(version=bad) if e.action == "review"]
    assert recorded[-1].details == verdict
    assert registry.verify() is None


def test_equal_challenger_is_promoted(params: Any, paths: Any, serving: tuple[str, str]) -> None:
    """The same pipeline in shadow: both answer every request alike, so the paired
    difference is 0 with no spread and the lower bound 0 clears -margin exactly. No chance
    is involved once both classes reach their minimums, kept at 10 here: identical answers
    need no sample size, only both classes for ROC AUC (5 days x 240 requests at ~7.6 %
    positive hold ~90)."""
    small = loop_params(params, min_positives=10, min_negatives=10)
    same = package_again(params, paths)
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
    replay(small, paths, serving, days=5)
    time.sleep(2)
    review = loop.review_rollout(small, paths, actor=ACTOR)
    assert review["decision"] == "promoted", review
    verdict = review["verdict"]
    assert verdict["test"] == "paired DeLong" and verdict["n_paired"] > 0, verdict
    assert abs(verdict["estimate"]) < 1e-3, verdict
    assert registry.production(small.serving.model_name).version == same
    moves = [e for e in registry.history(version=same) if e.to_stage == "production"]
    gate = moves[-1].details["gate_results"][0]
    assert gate["name"] == "live:roc_auc" and gate["interval"] == verdict["interval"], gate
    assert any(e.action == "review" for e in registry.history(version=same))
    assert registry.verify() is None
