"""BentoML: the model store entry for a trained pipeline, and the Bento that serves it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopline.settings import Paths

MODEL_FILE = "model.joblib"
HOLDOUT_FILE = "holdout.parquet"
SERVICE = "bentos.service:ChurnService"


def save_model(
    name: str,
    model_file: Path,
    holdout_file: Path,
    metrics: dict[str, float],
    lineage: dict[str, Any],
) -> tuple[str, str]:
    """Put the pipeline (and the holdout it was judged on) in the BentoML model store.

    Returns the tag and the model file's sha256, which the registry keeps so a promotion
    can refuse a model whose stored file has changed since it was trained. A file whose
    scan finds more than a pipeline's imports is refused before it is ever loaded.
    """
    import shutil

    import bentoml
    import pandas as pd

    from loopline.inference import serving_scorer
    from loopline.model_scan import read_model

    pipeline = read_model(model_file, f"model file {model_file.name}")
    digest = file_sha256(model_file)
    labels = {"feature_service": str(lineage["feature_service"]), "estimator": lineage["estimator"]}
    # Which engine serving will use, and the parity that earned it (or why not).
    _, inference = serving_scorer(pipeline, pd.read_parquet(holdout_file))
    metadata = _without_nulls(
        {"metrics": metrics, "model_sha256": digest, "inference": inference, **lineage}
    )
    with bentoml.models.create(name, metadata=metadata, labels=labels) as stored:
        shutil.copyfile(model_file, stored.path_of(MODEL_FILE))
        # Gates compare a champion with a candidate on the candidate's own holdout.
        shutil.copyfile(holdout_file, stored.path_of(HOLDOUT_FILE))
    return str(stored.tag), digest


def _without_nulls(value: Any) -> Any:
    # BentoML metadata refuses None at any depth; an absent key says the same thing.
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stored_files(tag: str) -> tuple[Path, Path]:
    """The model and holdout files of a stored model; a clear error when they are gone."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        stored = bentoml.models.get(tag)
    except NotFound as exc:
        raise FileNotFoundError(f"model {tag} is not in the BentoML model store") from exc
    model, holdout = Path(stored.path_of(MODEL_FILE)), Path(stored.path_of(HOLDOUT_FILE))
    for file in (model, holdout):
        if not file.is_file():
            raise FileNotFoundError(f"model {tag} is missing its file {file.name}")
    return model, holdout


def load_model(tag: str) -> tuple[Any, dict[str, Any]]:
    """The pipeline and its metadata for a model-store tag such as ``churn:latest``."""
    import bentoml

    from loopline.model_scan import read_model

    stored = bentoml.models.get(tag)
    model = read_model(Path(stored.path_of(MODEL_FILE)), f"model {stored.tag}")
    return model, dict(stored.info.metadata) | {"tag": str(stored.tag)}


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
