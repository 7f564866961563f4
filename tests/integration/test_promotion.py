"""Promotion through the gates, approval, rollback and reproduction, on models the flows made."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopline import packaging, promotion, steps
from loopline.registry import IllegalTransition, UnknownVersion

ACTOR = "test-operator"


def package_again(params: Any, paths: Any) -> str:
    """Another registered version made from the same artifacts (same metrics)."""
    return steps.package_step(params, paths, None)["model"]


def package_bad(params: Any, paths: Any, tmp_path: Path) -> str:
    """A version trained on shuffled labels: registered, but it should never serve."""
    import pandas as pd

    from loopline.model_scan import write_model
    from loopline.training.candidates import Candidate, build_pipeline
    from loopline.training.train import feature_columns

    holdout = pd.read_parquet(paths.artifacts / "holdout.parquet")
    numeric, categorical = feature_columns(holdout, params.dataset)
    model = build_pipeline(Candidate("logistic_regression", {}), numeric, categorical, 0)
    labels = np.random.default_rng(0).permutation(holdout[params.dataset.label].to_numpy())
    model.fit(holdout[numeric + categorical], labels)
    write_model(model, tmp_path / "bad.joblib")
    metrics = {"roc_auc": 0.5}
    lineage = steps.lineage_record(params, paths, None)
    tag, digest = packaging.save_model(
        params.serving.model_name,
        tmp_path / "bad.joblib",
        paths.artifacts / "holdout.parquet",
        metrics,
        lineage,
    )
    promotion.open_registry(paths).register(
        params.serving.model_name,
        tag,
        metrics=metrics,
        lineage=lineage | {"model_sha256": digest},
        actor=ACTOR,
        reason="deliberately bad",
    )
    return tag


@pytest.fixture(scope="module")
def registry(built: dict[str, Any], paths: Any) -> Any:
    return promotion.open_registry(paths)


def test_flows_register_a_candidate_with_lineage(built: dict[str, Any], registry: Any) -> None:
    record = registry.get(built["package"]["model"])
    assert record.lineage["data_hash"] == built["data"]["version"]["data_hash"]
    assert record.lineage["bento"] == built["package"]["bento"]
    assert record.metrics["roc_auc"] == built["train"]["evaluation"]["holdout"]["roc_auc"]


def test_promote_rollback_and_served_at(
    built: dict[str, Any], registry: Any, params: Any, paths: Any, tmp_path: Path
) -> None:
    # Earlier modules (the closed loop) may have promoted other versions: start from
    # whatever serves now, or promote the flows' model when nothing does.
    champion = registry.production(params.serving.model_name)
    if champion is None:
        first = built["package"]["model"]
        outcome = promotion.promote(params, paths, first, actor=ACTOR, reason="first model")
        assert outcome.version.stage == "production"
        assert {g["name"] for g in outcome.gates} >= {"floor:roc_auc", "latency_p95_ms"}
    else:
        first = champion.version
    second = package_again(params, paths)
    outcome = promotion.promote(params, paths, second, actor=ACTOR, reason="retrained")
    assert outcome.version.stage == "production"
    assert any(g["name"] == "vs_champion:roc_auc" and g["passed"] for g in outcome.gates)
    assert registry.get(first).stage == "archived"
    promoted_at = registry.history(version=second)[-1].at

    restored = promotion.rollback(paths, params.serving.model_name, actor=ACTOR, reason="oops")
    assert restored.version == first
    assert registry.production(params.serving.model_name).version == first
    assert registry.served_at(params.serving.model_name, promoted_at)["production"] == second
    assert registry.verify() is None


def test_worse_model_is_refused_and_nothing_changes(
    built: dict[str, Any], registry: Any, params: Any, paths: Any, tmp_path: Path
) -> None:
    bad = package_bad(params, paths, tmp_path)
    before = len(registry.history())
    champion = registry.production(params.serving.model_name)
    with pytest.raises(promotion.PromotionRefused) as refused:
        promotion.promote(params, paths, bad, actor=ACTOR, reason="should fail")
    failing = {c.name for c in refused.value.report.failures}
    assert "floor:roc_auc" in failing
    assert "FAIL" in str(refused.value)
    assert len(registry.history()) == before
    assert registry.get(bad).stage == "candidate"
    assert registry.production(params.serving.model_name) == champion


def test_changed_model_file_is_refused(
    built: dict[str, Any], registry: Any, params: Any, paths: Any
) -> None:
    tag = package_again(params, paths)
    model_file, _ = packaging.stored_files(tag)
    with model_file.open("ab") as handle:
        handle.write(b"tampered")
    before = len(registry.history())
    with pytest.raises(promotion.PromotionError, match="does not match the hash"):
        promotion.promote(params, paths, tag, actor=ACTOR, reason="tampered")
    assert len(registry.history()) == before


def _plant(model_file: Path, marker: Path) -> None:
    """Replace a stored model with a pipeline carrying a payload (what an attacker with
    write access to the model store would do)."""
    import pickle

    from tests.unit.test_model_scan import Payload, fitted

    model_file.write_bytes(pickle.dumps([fitted(), Payload(marker)], protocol=5))


def test_a_planted_payload_fails_the_scan_gate_and_never_runs(
    built: dict[str, Any], registry: Any, params: Any, paths: Any, tmp_path: Path
) -> None:
    from loopline.promotion.gates import GateReport

    tag = package_again(params, paths)
    model_file, _ = packaging.stored_files(tag)
    marker = tmp_path / "ran"
    _plant(model_file, marker)
    # The hash check is the first line of defence; the scan must hold on its own, so the
    # registry is told the planted file's hash, as an attacker with database access could.
    record = registry.get(tag)
    record.lineage["model_sha256"] = packaging.file_sha256(model_file)
    report = promotion.check_gates(params, registry, record)
    assert isinstance(report, GateReport) and not report.passed
    (scan,) = report.failures
    assert scan.name == "model_scan" and "imports that run code: posix.system" in scan.detail
    assert not marker.exists()


def test_a_planted_payload_is_never_registered(
    built: dict[str, Any], params: Any, paths: Any, tmp_path: Path
) -> None:
    import bentoml

    from loopline.model_scan import UnsafeModel

    planted, marker = tmp_path / "model.joblib", tmp_path / "ran"
    _plant(planted, marker)
    before = {str(m.tag) for m in bentoml.models.list()}
    with pytest.raises(UnsafeModel, match="imports that run code: posix.system"):
        packaging.save_model(
            params.serving.model_name,
            planted,
            paths.artifacts / "holdout.parquet",
            {"roc_auc": 0.9},
            steps.lineage_record(params, paths, None),
        )
    assert {str(m.tag) for m in bentoml.models.list()} == before and not marker.exists()


def test_serving_refuses_a_changed_or_planted_model_file(
    built: dict[str, Any], registry: Any, params: Any, paths: Any, tmp_path: Path
) -> None:
    """What every serving worker calls to load a version (bentos/service.py)."""
    from loopline.model_scan import UnsafeModel
    from loopline.serving.process import TamperedModel, load_scorer

    tag = package_again(params, paths)
    assert load_scorer(tag, registry) is not None
    model_file, _ = packaging.stored_files(tag)
    marker = tmp_path / "ran"
    _plant(model_file, marker)
    with pytest.raises(TamperedModel, match="not the one recorded at training"):
        load_scorer(tag, registry)
    with pytest.raises(UnsafeModel, match="refused, not loaded"):
        # Even with the recorded hash matching (a registry that was changed too).
        class Agreeing:
            def get(self, version: str) -> Any:
                record = registry.get(version)
                record.lineage["model_sha256"] = packaging.file_sha256(model_file)
                return record

        load_scorer(tag, Agreeing())
    assert not marker.exists()


def test_unknown_version_and_illegal_transition(
    built: dict[str, Any], registry: Any, params: Any, paths: Any
) -> None:
    with pytest.raises(UnknownVersion):
        promotion.promote(params, paths, "churn:doesnotexist", actor=ACTOR, reason="x")
    archived = [r for r in registry.list_versions() if r.stage == "archived"]
    assert archived
    with pytest.raises(IllegalTransition):
        registry.transition(archived[0].version, "production", actor=ACTOR, reason="skip gates")


def test_manual_approval_waits_in_staging(
    built: dict[str, Any], registry: Any, params: Any, paths: Any
) -> None:
    manual = params.promotion.model_copy(update={"approval": "manual", "approver": "lead"})
    strict = params.model_copy(update={"promotion": manual})
    tag = package_again(params, paths)
    outcome = promotion.promote(strict, paths, tag, actor=ACTOR, reason="needs a lead")
    assert outcome.version.stage == "staging"
    assert outcome.waiting_for == "lead"
    moved = promotion.approve(paths, tag, actor="lead", reason="looks good")
    assert moved.stage == "production"
    actions = [e.action for e in registry.history(version=tag)]
    assert "approved" in actions


def test_reproduce_matches(built: dict[str, Any], paths: Any) -> None:
    from loopline.reproduce import reproduce

    result = reproduce(paths, built["package"]["model"])
    assert result.matches, (result.recorded, result.reproduced)
    assert result.same_feature_definitions


def test_cli_lists_and_verifies(built: dict[str, Any], paths: Any) -> None:
    env = os.environ.copy()
    listed = subprocess.run(
        ["loopline", "models", "list"], capture_output=True, text=True, env=env, check=True
    )
    assert built["package"]["model"] in listed.stdout
    verified = subprocess.run(
        ["loopline", "registry", "verify"], capture_output=True, text=True, env=env
    )
    assert verified.returncode == 0 and "intact" in verified.stdout
    unknown = subprocess.run(
        ["loopline", "models", "show", "churn:nope"], capture_output=True, text=True, env=env
    )
    assert unknown.returncode == 1 and "churn:nope" in unknown.stderr
    served = subprocess.run(
        ["loopline", "served-at", "2000-01-01T00:00"], capture_output=True, text=True, env=env
    )
    assert json.loads(served.stdout)["production"] is None
