"""The flows under one Prefect test harness: artifacts, model store metadata, selection."""

from typing import Any

import bentoml


def test_train_fits_every_candidate_and_beats_naive(built: dict[str, Any], params: Any) -> None:
    candidates = built["train"]["candidates"]
    assert len(candidates["candidates"]) == 3
    best = max(c["roc_auc"] for c in candidates["candidates"])
    evaluation = built["train"]["evaluation"]
    assert evaluation["holdout"]["roc_auc"] == best
    assert evaluation["baseline"]["roc_auc"] == 0.5
    assert evaluation["holdout"]["roc_auc"] > 0.6


def test_runs_leave_readable_artifacts(built: dict[str, Any]) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        keys = ["candidates", "model-card", "data-version", "package"]
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
        )
    by_key = {a.key: a for a in found}
    assert set(by_key) == set(keys)
    assert "Model card" in str(by_key["model-card"].data)
    assert "naive baseline" in str(by_key["model-card"].data)


def test_model_store_holds_lineage(built: dict[str, Any], params: Any) -> None:
    model = bentoml.models.get(built["package"]["model"])
    meta = model.info.metadata
    assert meta["data_hash"] == built["data"]["version"]["data_hash"]
    assert meta["feature_service"] == params.features.service
    assert len(meta["feature_definition_hash"]) == 16
    assert meta["metrics"]["roc_auc"] == built["train"]["evaluation"]["holdout"]["roc_auc"]
    assert meta["flow_run_id"]
    assert meta["estimator"] in params.training.candidates
    assert "training" in meta


def test_bento_built_around_the_model(built: dict[str, Any]) -> None:
    bento = bentoml.get(built["package"]["bento"])
    assert built["package"]["model"] in {str(m.tag) for m in bento.info.all_models}
