"""The rollout review on a real registry and a real prediction log: paired under shadow,
unpaired under canary, every verdict recorded, the outcome applied through one path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopline import promotion
from loopline.config import load_params
from loopline.monitoring.review import review_rollout
from loopline.serving.predlog import FeedbackLog, PredictionLog
from loopline.settings import Paths

REPO = Path(__file__).resolve().parents[2]
ACTOR = "review-test"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Paths]:
    """Params with a small rule, and a registry whose champion "a" faces challenger "b"."""
    monkeypatch.delenv("LOOPLINE_REGISTRY_URL", raising=False)
    params = load_params(REPO / "params.yaml")
    rule = params.monitoring.review.model_copy(update={"min_positives": 30, "min_negatives": 30})
    monitoring = params.monitoring.model_copy(
        update={"canary_minutes": 0, "canary_min_labels": 40, "review": rule}
    )
    params = params.model_copy(update={"monitoring": monitoring})
    paths = Paths(tmp_path, tmp_path / ".loopline")
    registry = promotion.open_registry(paths)
    name = params.serving.model_name
    for version in ("a", "b"):
        registry.register(name, version, metrics={"roc_auc": 0.7}, lineage={}, actor=ACTOR)
        registry.transition(version, "staging", actor=ACTOR, reason="test")
    registry.request_promotion("a", actor=ACTOR, reason="champion", gate_results=[])
    return params, paths


def start(params: Any, paths: Paths, policy: str, share: float) -> None:
    registry = promotion.open_registry(paths)
    name = params.serving.model_name
    registry.set_challenger(name, "b", actor=ACTOR, reason="rollout")
    registry.set_policy(name, policy, share, actor=ACTOR, reason="rollout")


def serve(paths: Paths, n: int, *, gap: float, shadow: bool, seed: int = 0) -> None:
    """``n`` labelled requests; the challenger's scores separate the classes by ``gap`` more."""
    rng = np.random.default_rng(seed)
    actual = (rng.random(n) < 0.2).astype(int)
    noise = rng.normal(size=n)
    at = datetime.now(UTC)
    with PredictionLog(paths.serving_log) as predictions, FeedbackLog(paths.serving_log) as back:
        for i in range(n):
            champion = float(actual[i] + noise[i])
            challenger = float((1 + gap) * actual[i] + noise[i] + 0.3 * rng.normal())
            arms = [("a", "champion", champion, False)]
            if shadow:
                arms.append(("b", "challenger", challenger, True))
            elif i % 2:
                arms = [("b", "challenger", challenger, False)]
            for version, arm, score, is_shadow in arms:
                predictions.log(
                    request_id=f"r{i}", entity_id=i, model_version=version, arm=arm,
                    score=score, label=int(score > 0.5), latency_ms=1.0, features={},
                    shadow=is_shadow, at=at,
                )  # fmt: skip
            back.record(label=int(actual[i]), request_id=f"r{i}", entity_id=i, at=at)


def reviews(paths: Paths) -> list[Any]:
    return [e for e in promotion.open_registry(paths).history(version="b") if e.action == "review"]


def test_shadow_pairs_requests_and_promotes_a_clearly_better_model(
    world: Any, prefect_harness: None
) -> None:
    # The promotion announces itself as a Prefect event: a server must be there to take it.
    params, paths = world
    start(params, paths, "shadow", 1.0)
    serve(paths, 1500, gap=1.0, shadow=True)
    outcome = review_rollout(params, paths, actor=ACTOR)
    assert outcome["decision"] == "promoted", outcome
    verdict = outcome["verdict"]
    assert verdict["test"] == "paired DeLong" and verdict["n_paired"] == 1500
    registry = promotion.open_registry(paths)
    assert registry.production(params.serving.model_name).version == "b"
    move = [e for e in registry.history(version="b") if e.to_stage == "production"][-1]
    assert move.details["gate_results"][0]["interval"] == verdict["interval"]
    assert reviews(paths)[-1].details == verdict and registry.verify() is None


def test_canary_compares_arms_unpaired_and_rolls_back_a_clearly_worse_model(world: Any) -> None:
    params, paths = world
    start(params, paths, "canary", 0.5)
    serve(paths, 3000, gap=-0.8, shadow=False)
    outcome = review_rollout(params, paths, actor=ACTOR)
    assert outcome["decision"] == "rolled_back", outcome
    assert outcome["verdict"]["test"] == "unpaired DeLong"
    assert outcome["verdict"]["challenger"]["n"] == 1500
    registry = promotion.open_registry(paths)
    assert registry.get("b").stage == "archived" and registry.challenger("churn") is None
    assert registry.verify() is None


def test_waits_and_extensions_are_recorded_once_each(world: Any) -> None:
    params, paths = world
    start(params, paths, "canary", 0.5)
    first = review_rollout(params, paths, actor=ACTOR)
    assert first["decision"] == "wait" and "not enough evidence" in first["why"]
    review_rollout(params, paths, actor=ACTOR)  # nothing new: not written again
    assert len(reviews(paths)) == 1
    serve(paths, 600, gap=0.0, shadow=False)
    later = review_rollout(params, paths, actor=ACTOR, now=datetime.now(UTC) + timedelta(hours=1))
    assert later["decision"] == "extended", later
    recorded = reviews(paths)
    assert len(recorded) == 2 and recorded[-1].details["decision"] == "extend"
    lo, hi = recorded[-1].details["interval"]
    assert lo < -params.monitoring.review.margin and hi >= 0
    assert promotion.open_registry(paths).challenger("churn").version == "b"


def test_an_inconclusive_rollout_past_its_limit_gets_the_default(world: Any) -> None:
    params, paths = world
    start(params, paths, "canary", 0.5)
    serve(paths, 600, gap=0.0, shadow=False)
    late = datetime.now(UTC) + timedelta(minutes=params.monitoring.review.max_minutes + 1)
    outcome = review_rollout(params, paths, actor=ACTOR, now=late)
    assert outcome["decision"] == "rolled_back" and outcome["verdict"]["by_default"], outcome
