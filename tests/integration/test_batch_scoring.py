"""Batch scoring of a folder of Parquet partitions: streamed one by one on the default
runner, and in parallel by ``dask.dataframe`` on a LocalCluster of processes; both give
exactly the scores of the model called on the same rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.e2e

STABLE = ["customer_id", "score", "label", "model_version", "known"]


def _partitions(folder: Path, frame: pd.DataFrame, parts: int) -> Path:
    folder.mkdir()
    for number, chunk in enumerate(np.array_split(frame, parts)):
        chunk.to_parquet(folder / f"in-{number}.parquet", index=False)
    return folder


def _read(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


@pytest.fixture(scope="module")
def rows(built: dict[str, Any]) -> pd.DataFrame:
    """Rows holding every model input (the model's holdout: on-demand features included)."""
    from loopline.packaging import stored_files

    holdout = pd.read_parquet(stored_files(built["package"]["model"])[1])
    return holdout.drop(columns=["churned", "event_timestamp"]).reset_index(drop=True)


def _expected(rows: pd.DataFrame, version: str) -> np.ndarray:
    from loopline.packaging import load_model

    model, _ = load_model(version)
    return model.predict_proba(rows[list(model.feature_names_in_)])[:, 1]


def test_feature_rows_stream_and_score_on_dask_alike(
    built: dict[str, Any], rows: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.score import score_batch

    version = built["package"]["model"]
    source = _partitions(tmp_path / "in", rows, parts=4)
    streamed = score_batch(str(source), str(tmp_path / "streamed"), version=version)
    monkeypatch.setenv("LOOPLINE_TASK_RUNNER", "dask")
    monkeypatch.setenv("LOOPLINE_TASK_WORKERS", "2")
    parallel = score_batch(str(source), str(tmp_path / "dask"), version=version)
    assert streamed["rows"] == parallel["rows"] == len(rows)
    assert streamed["partitions"] == parallel["partitions"] == 4
    a, b = _read(tmp_path / "streamed"), _read(tmp_path / "dask")
    assert len(list((tmp_path / "dask").glob("*.parquet"))) == 4
    pd.testing.assert_frame_equal(a[STABLE], b[STABLE])
    assert a["customer_id"].tolist() == rows["customer_id"].tolist()
    np.testing.assert_array_equal(a["score"].to_numpy(), _expected(rows, version))


def test_ids_alone_get_the_online_features(
    built: dict[str, Any], paths: Any, params: Any, tmp_path: Path
) -> None:
    from flows.score import score_batch
    from tests.ids import known_customers

    version = built["package"]["model"]
    # Ids as a client knows them (the stores hold pseudonyms, which are not ids).
    known = known_customers(paths, params, 200)
    ids = pd.DataFrame({"customer_id": [*known, 10**9, 10**9 + 1]})
    source = _partitions(tmp_path / "ids", ids, parts=2)
    result = score_batch(str(source), str(tmp_path / "out"), version=version)
    scored = _read(tmp_path / "out")
    assert result["unknown"] == 2
    assert scored["known"].tolist() == [True] * 200 + [False, False]
    assert scored["score"].head(200).between(0, 1).all() and scored["score"].tail(2).isna().all()


def test_bad_folders_are_named_and_nothing_is_written(
    built: dict[str, Any], rows: pd.DataFrame, tmp_path: Path
) -> None:
    from flows.score import score_batch
    from loopline.batch_scoring import BatchInputError

    version = built["package"]["model"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BatchInputError, match="holds no .parquet files"):
        score_batch(str(empty), str(tmp_path / "out"), version=version)
    assert not (tmp_path / "out").exists()
    source = _partitions(tmp_path / "in", rows.head(10), parts=1)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(BatchInputError, match="already holds files"):
        score_batch(str(source), str(taken), version=version)
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
