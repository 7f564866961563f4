"""Accepting batches into DVC: a good one becomes the version, a bad one changes nothing."""

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loopline.data import versioning
from loopline.data.contract import BatchRejected
from loopline.data.ingest import accept_batch
from tests.ids import pseudonym_of


def test_bad_batch_changes_nothing(built: dict[str, Any], paths: Any, params: Any) -> None:
    before_hash = versioning.tracked_hash(paths.raw_batch)
    before_bytes = paths.raw_batch.read_bytes()
    rejections = len(list(paths.rejected.glob("*"))) if paths.rejected.exists() else 0

    bad = pd.read_parquet(paths.raw_batch).head(100).drop(columns=["usage_hours"])
    source = paths.state / "bad-batch.csv"
    bad.to_csv(source, index=False)
    with pytest.raises(BatchRejected, match="missing columns: usage_hours"):
        accept_batch(source, params.dataset, paths)

    assert versioning.tracked_hash(paths.raw_batch) == before_hash
    assert paths.raw_batch.read_bytes() == before_bytes
    recorded = sorted(paths.rejected.glob("*"))
    assert len(recorded) == rejections + 1
    assert "usage_hours" in (recorded[-1] / "reason.json").read_text()


def test_flow_recorded_the_dvc_version(built: dict[str, Any], paths: Any) -> None:
    version = built["data"]["version"]
    assert version["data_hash"] == versioning.tracked_hash(paths.raw_batch)
    cached = versioning.restore(paths, paths.raw_batch, version["data_hash"])
    assert cached.read_bytes() == paths.raw_batch.read_bytes()
    pushed = list(Path(paths.dvc_remote).rglob("*"))
    assert any(p.name == version["data_hash"][2:] for p in pushed)


def test_pii_never_leaves_ingestion(built: dict[str, Any], paths: Any, params: Any) -> None:
    ingested = pd.read_parquet(paths.ingested)
    assert not set(params.dataset.pii) & set(ingested.columns)
    for source in paths.feature_sources.glob("*.parquet"):
        assert not set(params.dataset.pii) & set(pd.read_parquet(source).columns)


def test_every_stored_version_holds_pseudonyms_not_people(
    built: dict[str, Any], paths: Any, params: Any
) -> None:
    """The DVC version itself (cache and remote), not only what is derived from it."""
    d = params.dataset
    source = pd.read_parquet(paths.project / d.source)
    version = built["data"]["version"]["data_hash"]
    stored = pd.read_parquet(versioning.restore(paths, paths.raw_batch, version))
    assert not set(d.pii) & set(stored.columns)
    expected = {pseudonym_of(paths, i) for i in source[d.entity].unique()}
    assert set(stored[d.entity]) == expected
    assert not set(stored[d.entity]) & set(source[d.entity])  # no id kept its own value
    for frame in (pd.read_parquet(paths.ingested), pd.read_parquet(paths.labels)):
        assert set(frame[d.entity]) <= expected


def test_without_the_pseudonym_key_nothing_is_accepted(
    built: dict[str, Any], paths: Any, params: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopline.privacy.secrets import PSEUDONYM_KEY_ENV, MissingSecret

    before = paths.raw_batch.read_bytes()
    rejections = len(list(paths.rejected.glob("*"))) if paths.rejected.exists() else 0
    monkeypatch.delenv(PSEUDONYM_KEY_ENV)
    with pytest.raises(MissingSecret, match="no pseudonym key"):
        accept_batch(paths.project / params.dataset.source, params.dataset, paths)
    assert paths.raw_batch.read_bytes() == before
    assert not list(paths.raw_batch.parent.glob(".*checked*"))
    after = len(list(paths.rejected.glob("*"))) if paths.rejected.exists() else 0
    assert after == rejections
