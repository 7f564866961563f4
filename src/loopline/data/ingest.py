"""Accepting a batch: contract check, then a new DVC data version; a bad batch changes nothing."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from loopline.config import DatasetParams
from loopline.data import versioning
from loopline.data.contract import BatchRejected, check_batch, read_batch, stamp_arrival
from loopline.settings import Paths


@dataclass(frozen=True)
class DataVersion:
    """An accepted batch: where it is, its DVC hash, and what is in it."""

    path: str
    data_hash: str
    rows: int
    entities: int
    start: str
    end: str


def accept_batch(source: Path, dataset: DatasetParams, paths: Paths) -> DataVersion:
    """Check ``source`` against the contract and make it the current data version.

    In a run's workspace the checked batch is kept there too, so the run trains on exactly
    this version even when another batch is accepted a moment later.
    """
    from loopline import locks, runs

    try:
        checked = checked_batch(source, dataset)
    except BatchRejected as exc:
        record_rejection(paths, exc)
        raise
    published = paths.published
    if paths.workspace is None:
        data_hash = _make_current(published, lambda staged: checked.to_parquet(staged, index=False))
    else:
        paths.raw_batch.parent.mkdir(parents=True, exist_ok=True)
        checked.to_parquet(paths.raw_batch, index=False)
        with locks.publishing(published, run_id=paths.workspace.name):
            data_hash = _make_current(
                published, lambda staged: shutil.copyfile(paths.raw_batch, staged)
            )
        runs.keep_version(paths, data_hash)
    stamps = checked[dataset.timestamp]
    return DataVersion(
        path=str(published.raw_batch.relative_to(paths.project)),
        data_hash=data_hash,
        rows=len(checked),
        entities=int(checked[dataset.entity].nunique()),
        start=stamps.min().isoformat(),
        end=stamps.max().isoformat(),
    )


def checked_batch(source: Path, dataset: DatasetParams) -> pd.DataFrame:
    """The batch as it would be accepted (stamped on arrival if so configured), or a rejection."""
    raw = read_batch(source, dataset)
    return check_batch(stamp_arrival(raw, dataset, source), dataset, source)


def _make_current(published: Paths, write: Callable[[Path], object]) -> str:
    """Replace the project's current batch and version it with DVC; on failure, put the
    last good batch back so nothing changed."""
    target = published.raw_batch
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.incoming")
    write(staged)
    previous = target.with_name(f".{target.name}.previous")
    if target.exists():
        os.replace(target, previous)
    os.replace(staged, target)
    try:
        versioning.ensure_repo(published)
        data_hash = versioning.track(published, target)
    except Exception:
        if previous.exists():
            os.replace(previous, target)
            versioning.track(published, target)
        raise
    previous.unlink(missing_ok=True)
    return data_hash


def record_rejection(paths: Paths, error: BatchRejected) -> Path:
    """Keep the reason (and a copy of the file when it exists) for the dashboard and audit."""
    when = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = paths.rejected / when
    folder.mkdir(parents=True, exist_ok=True)
    if error.source.is_file():
        shutil.copy2(error.source, folder / error.source.name)
    (folder / "reason.json").write_text(
        json.dumps({"source": str(error.source), "at": when, "problems": error.problems}, indent=2)
    )
    return folder


def current_version(dataset: DatasetParams, paths: Paths) -> DataVersion | None:
    """The data version training would use now, or None before the first batch."""
    if not paths.raw_batch.is_file():
        return None
    frame = pd.read_parquet(paths.raw_batch, columns=[dataset.entity, dataset.timestamp])
    stamps = frame[dataset.timestamp]
    return DataVersion(
        path=str(paths.shown(paths.raw_batch)),
        data_hash=versioning.tracked_hash(paths.raw_batch),
        rows=len(frame),
        entities=int(frame[dataset.entity].nunique()),
        start=stamps.min().isoformat(),
        end=stamps.max().isoformat(),
    )


def prepare(dataset: DatasetParams, paths: Paths) -> pd.DataFrame:
    """The accepted batch, re-checked, typed and without PII: what feature steps may read."""
    frame = check_batch(pd.read_parquet(paths.raw_batch), dataset, paths.raw_batch)
    frame = frame.drop(columns=[c for c in dataset.pii if c in frame.columns])
    paths.ingested.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(paths.ingested, index=False)
    return frame


def quality_summary(frame: pd.DataFrame, dataset: DatasetParams) -> dict[str, object]:
    """Row counts, label rate, missing values and time range: DVC metrics for the batch."""
    labelled = frame[dataset.label].notna()
    return {
        "rows": len(frame),
        "entities": int(frame[dataset.entity].nunique()),
        "labelled_rows": int(labelled.sum()),
        "label_rate": round(float(frame.loc[labelled, dataset.label].mean()), 4),
        "missing_values": {
            c: int(n) for c, n in frame[list(dataset.features)].isna().sum().items() if n
        },
        "start": frame[dataset.timestamp].min().isoformat(),
        "end": frame[dataset.timestamp].max().isoformat(),
    }


def as_dict(version: DataVersion) -> dict[str, object]:
    return asdict(version)
