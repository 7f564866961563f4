"""Batch scoring at scale: a folder of Parquet partitions in, a folder of partitions out.

Each partition holds entity ids, and may hold the model's inputs too (a feature table
scored offline); ids alone get the online feature service's values, as serving would.
Without Dask the partitions stream one by one (memory: one partition); on a Dask cluster
``dask.dataframe`` scores them in parallel, the model loaded once per worker process.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from loopline.config import Params, load_params
from loopline.errors import LooplineError
from loopline.privacy.subjects import tombstones
from loopline.settings import Paths, activate

PART = "part-{:05d}.parquet"


class BatchInputError(LooplineError):
    """The batch to score is missing, empty, or lacks the entity column."""


def partitions(source: Path) -> list[Path]:
    """The Parquet files of a partitioned source: a folder's ``*.parquet``, sorted."""
    if not source.is_dir():
        raise BatchInputError(f"{source}: not a folder of Parquet partitions")
    files = sorted(p for p in source.rglob("*.parquet") if p.is_file())
    if not files:
        raise BatchInputError(f"{source}: holds no .parquet files")
    return files


@functools.lru_cache(maxsize=4)
def _model(version: str) -> Any:
    """The pipeline of a stored model, loaded once per process (per Dask worker)."""
    from loopline import packaging
    from loopline.model_scan import read_model

    return read_model(packaging.stored_files(version)[0], f"model {version}")


def _open(project: str) -> tuple[Params, Paths]:
    paths = activate(Path(project))
    return load_params(paths.params_file), paths


@functools.lru_cache(maxsize=4)
def _pseudonyms(project: str) -> Any:
    """The project's pseudonyms, made once per process (a Dask worker needs the key too)."""
    from loopline.privacy.pseudonyms import Pseudonyms
    from loopline.privacy.secrets import pseudonym_key

    return Pseudonyms(pseudonym_key(_open(project)[1]))


@functools.lru_cache(maxsize=4)
def _reader(project: str) -> Any:
    from loopline import features
    from loopline.online import OnlineReader

    params, paths = _open(project)
    store = features.feature_store(paths)
    return OnlineReader(store, features.service(store, params.features.service))


def score_frame(frame: pd.DataFrame, params: Params, project: str, version: str) -> pd.DataFrame:
    """Scores for one partition: the rows' own inputs when they have them all, else the
    online features of their ids. Unknown entities get no score (``known`` false)."""
    entity = params.dataset.entity
    if entity not in frame.columns:
        raise BatchInputError(f"a partition has no {entity!r} column: {list(frame.columns)}")
    model = _model(version)
    inputs = list(model.feature_names_in_)
    ids = pd.to_numeric(frame[entity], errors="coerce")
    if ids.isna().any():
        raise BatchInputError(f"column {entity!r} has non-integer ids")
    if all(c in frame.columns for c in inputs):
        values = frame[inputs].reset_index(drop=True)
        known = pd.Series(True, index=values.index)
    else:
        reader = _reader(project)
        # Partitions name customers as the caller knows them; the store holds pseudonyms.
        keyed = _pseudonyms(project).series(ids.astype("int64"))
        values = pd.DataFrame(reader.read(keyed.tolist()))
        stored = {f.name for v in reader.store.list_feature_views() for f in v.features}
        known = values[[c for c in inputs if c in stored]].notna().any(axis=1)
        # An erased subject is not scored, even where a store still answers for them.
        known &= ~keyed.reset_index(drop=True).isin(tombstones(_open(project)[1]))
    scores = pd.Series(float("nan"), index=values.index)
    if known.any():
        scores[known] = model.predict_proba(values.loc[known, inputs])[:, 1]
    index = pd.RangeIndex(len(values))
    label = (scores >= params.serving.threshold).astype("Int64").where(known)
    # Fixed dtypes: every partition, streamed or on Dask, has the schema of META.
    return pd.DataFrame(
        {
            entity: pd.Series(ids.to_numpy(), index=index, dtype="int64"),
            "score": pd.Series(scores.to_numpy(), index=index, dtype="float64"),
            "label": pd.Series(label.array, index=index, dtype="Int64"),
            "model_version": pd.Series(version, index=index, dtype="object"),
            "known": pd.Series(known.to_numpy(), index=index, dtype="bool"),
            "scored_at": pd.Series(datetime.now(UTC), index=index, dtype="datetime64[ns, UTC]"),
        }
    )


def _summary(target: Path, rows: int, unknown: int, files: int, version: str) -> dict[str, Any]:
    return {
        "rows": rows,
        "unknown": unknown,
        "partitions": files,
        "model_version": version,
        "output": str(target),
    }


def _fresh_target(target: Path) -> None:
    if target.exists() and any(target.iterdir()):
        raise BatchInputError(f"{target}: already holds files; score into an empty folder")
    target.mkdir(parents=True, exist_ok=True)


def stream(
    params: Params, project: str, source: Path, target: Path, version: str
) -> dict[str, Any]:
    """Score the partitions one after the other, each written as soon as it is scored."""
    import pyarrow.parquet as pq

    files = partitions(source)
    _fresh_target(target)
    rows = unknown = 0
    for number, file in enumerate(files):
        scored = score_frame(pq.read_table(file).to_pandas(), params, project, version)
        scored.to_parquet(target / PART.format(number), index=False)
        rows, unknown = rows + len(scored), unknown + int((~scored["known"]).sum())
    return _summary(target, rows, unknown, len(files), version)


def _score_partition(frame: pd.DataFrame, project: str, version: str) -> pd.DataFrame:
    params, _ = _open(project)
    return score_frame(frame, params, project, version)


def on_dask(
    params: Params, project: str, source: Path, target: Path, version: str, client: Any
) -> dict[str, Any]:
    """Score every partition in parallel on ``client``'s cluster, one output per input."""
    import dask.dataframe as dd

    files = partitions(source)
    _fresh_target(target)
    frame = dd.read_parquet([str(f) for f in files])
    meta = pd.DataFrame(
        {
            params.dataset.entity: pd.Series(dtype="int64"),
            "score": pd.Series(dtype="float64"),
            "label": pd.Series(dtype="Int64"),
            "model_version": pd.Series(dtype="object"),
            "known": pd.Series(dtype="bool"),
            "scored_at": pd.Series(dtype="datetime64[ns, UTC]"),
        }
    )
    scored = frame.map_partitions(_score_partition, project, version, meta=meta)
    written = scored.to_parquet(
        str(target), write_index=False, name_function=lambda n: PART.format(n), compute=False
    )
    client.compute(written).result()
    counts = dd.read_parquet(str(target), columns=["known"])["known"]
    rows, known = client.compute([counts.size, counts.sum()], sync=True)
    return _summary(target, int(rows), int(rows - known), len(files), version)


def score_partitioned(
    params: Params,
    paths: Paths,
    source: str,
    target: str | None,
    version: str | None,
    client: Any = None,
) -> dict[str, Any]:
    """Score a folder of partitions with ``version`` (default: production), on ``client``'s
    Dask cluster when given one, else streaming."""
    from loopline.promotion import open_registry

    if version is None:
        champion = open_registry(paths).production(params.serving.model_name)
        if champion is None:
            raise LookupError("no model in production yet: promote one first")
        version = champion.version
    from loopline.safe_paths import outside_state

    folder = outside_state(paths, source, "the partitions to score")
    destination = Path(target) if target else folder.with_name(folder.name + ".scored")
    destination = outside_state(paths, destination, "the scores' target")
    if client is None:
        return stream(params, str(paths.project), folder, destination, version)
    return on_dask(params, str(paths.project), folder, destination, version, client)
