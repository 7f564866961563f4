"""BentoML: the model store entry for a trained pipeline, and the Bento that serves it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopline.settings import Paths

MODEL_FILE = "model.joblib"
SERVICE = "bentos.service:ChurnService"


def save_model(name: str, model: Any, metrics: dict[str, float], lineage: dict[str, Any]) -> str:
    """Put the pipeline in the BentoML model store with its metrics and lineage; return its tag."""
    import bentoml
    import joblib

    labels = {"feature_service": str(lineage["feature_service"]), "estimator": lineage["estimator"]}
    metadata = {"metrics": metrics, **{k: v for k, v in lineage.items() if v is not None}}
    with bentoml.models.create(name, metadata=metadata, labels=labels) as stored:
        joblib.dump(model, stored.path_of(MODEL_FILE))
    return str(stored.tag)


def load_model(tag: str) -> tuple[Any, dict[str, Any]]:
    """The pipeline and its metadata for a model-store tag such as ``churn:latest``."""
    import bentoml
    import joblib

    stored = bentoml.models.get(tag)
    return joblib.load(stored.path_of(MODEL_FILE)), dict(stored.info.metadata) | {
        "tag": str(stored.tag)
    }


def build_bento(paths: Paths, model_tag: str) -> str:
    """Build a Bento from ``bentos/bentofile.yaml`` around this model; return the Bento tag."""
    import os

    import bentoml

    # The service reads which model to embed from the environment at import time (BentoML's
    # convention: models are class attributes), so point it at this one while building.
    previous = os.environ.get("LOOPLINE_MODEL_TAG")
    os.environ["LOOPLINE_MODEL_TAG"] = model_tag
    try:
        bento = bentoml.bentos.build_bentofile(
            str(paths.project / "bentos" / "bentofile.yaml"),
            build_ctx=str(paths.project),
            labels={"model": model_tag.replace(":", "-")},
        )
    finally:
        if previous is None:
            os.environ.pop("LOOPLINE_MODEL_TAG", None)
        else:
            os.environ["LOOPLINE_MODEL_TAG"] = previous
    return str(bento.tag)


def bento_path(tag: str) -> Path:
    import bentoml

    return Path(bentoml.get(tag).path)
