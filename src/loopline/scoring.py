"""Batch scoring with the production model and the same online feature service as serving."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from loopline.config import Params
from loopline.settings import Paths


def read_ids(source: Path, entity: str) -> list[int]:
    """Entity ids from a csv or parquet file with an ``entity`` column; clear errors otherwise."""
    if not source.is_file():
        raise FileNotFoundError(f"{source}: not found")
    frame = pd.read_csv(source) if source.suffix == ".csv" else pd.read_parquet(source)
    if entity not in frame.columns:
        raise ValueError(f"{source}: no {entity!r} column (columns: {list(frame.columns)})")
    ids = pd.to_numeric(frame[entity], errors="coerce")
    if ids.isna().any():
        rows = ids.index[ids.isna()].tolist()[:5]
        raise ValueError(f"{source}: column {entity!r} has non-integer ids at rows {rows}")
    return [int(i) for i in ids]


def score_file(
    params: Params, paths: Paths, source: str, target: str | None = None
) -> dict[str, Any]:
    """Write ``<source>.scored.parquet`` (or ``target``) with score, label and model version."""
    from loopline import features, packaging
    from loopline.model_scan import read_model
    from loopline.privacy.pseudonyms import Pseudonyms
    from loopline.privacy.secrets import pseudonym_key
    from loopline.privacy.subjects import tombstones
    from loopline.promotion import open_registry
    from loopline.safe_paths import outside_state

    entity = params.dataset.entity
    source_file = outside_state(paths, source, "the file to score")
    if target is not None:
        target = str(outside_state(paths, target, "the scores' target"))
    ids = read_ids(source_file, entity)
    # The file names customers as the caller knows them; the store knows their pseudonyms.
    keyed = list(map(Pseudonyms(pseudonym_key(paths)).of, ids))
    champion = open_registry(paths).production(params.serving.model_name)
    if champion is None:
        raise LookupError("no model in production yet: promote one first")
    model = read_model(packaging.stored_files(champion.version)[0], f"model {champion.version}")
    store = features.feature_store(paths)
    values = pd.DataFrame(features.online_features(store, params.features.service, entity, keyed))
    stored = features.stored_feature_names(store)
    known = values[[c for c in model.feature_names_in_ if c in stored]].notna().any(axis=1)
    known &= ~pd.Series(keyed).isin(tombstones(paths))  # erased subjects are never scored
    scores = pd.Series(float("nan"), index=values.index)
    if known.any():
        inputs = values.loc[known, list(model.feature_names_in_)]
        scores[known] = model.predict_proba(inputs)[:, 1]
    out = pd.DataFrame(
        {
            entity: ids,
            "score": scores,
            "label": (scores >= params.serving.threshold).astype("Int64").where(known),
            "model_version": champion.version,
            "known": known,
            "scored_at": datetime.now(UTC),
        }
    )
    destination = Path(target) if target else Path(source).with_suffix(".scored.parquet")
    out.to_parquet(destination, index=False)
    return {
        "rows": len(out),
        "unknown": int((~known).sum()),
        "model_version": champion.version,
        "output": str(destination),
    }
