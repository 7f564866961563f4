"""Accepting a batch: contract check, then a new DVC data version; a bad batch changes nothing."""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from loopline.config import DatasetParams
from loopline.data import versioning
from loopline.data.contract import (
    ROWS_PER_BATCH,
    BatchRejected,
    check_batch,
    check_batches,
    read_batch,
    read_batches,
    stamp_arrival,
)
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
    this version even when another batch is accepted a moment later. What is kept is the
    protected batch (:mod:`loopline.privacy.protect`): pseudonymous ids, no dropped columns.
    """
    from loopline import locks, runs
    from loopline.privacy.protect import protector_for

    # Before anything is read or written: without the keys nothing can be stored safely.
    protector = protector_for(dataset, paths)
    published = paths.published
    # The checked batch is written where the run keeps it (or beside the current one) first:
    # a rejection leaves no file behind and changes nothing.
    kept = paths.raw_batch if paths.workspace is not None else published.raw_batch
    checked = kept.with_name(f".{kept.name}.checked")
    kept.parent.mkdir(parents=True, exist_ok=True)
    try:
        facts = write_checked(source, dataset, checked, protector)
    except BatchRejected as exc:
        record_rejection(paths, exc)
        raise
    try:
        protector.commit()  # the new subjects' keys, now that the batch is accepted
    except BaseException:
        checked.unlink(missing_ok=True)
        raise
    if paths.workspace is None:
        data_hash = _make_current(published, lambda staged: os.replace(checked, staged))
    else:
        os.replace(checked, paths.raw_batch)
        with locks.publishing(published, run_id=paths.workspace.name):
            data_hash = _make_current(
                published, lambda staged: shutil.copyfile(paths.raw_batch, staged)
            )
        runs.keep_version(paths, data_hash)
    return DataVersion(
        path=str(published.raw_batch.relative_to(paths.project)),
        data_hash=data_hash,
        rows=facts.rows,
        entities=facts.entities,
        start=facts.start,
        end=facts.end,
    )


@dataclass(frozen=True)
class BatchFacts:
    """What an accepted batch holds: rows, distinct entities, first and last timestamp."""

    rows: int
    entities: int
    start: str
    end: str


def write_checked(
    source: Path,
    dataset: DatasetParams,
    target: Path,
    protect: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> BatchFacts:
    """Check ``source`` and write it, as accepted, to ``target``; a rejection writes nothing.

    A Parquet batch is read, checked, ``protect``-ed and written a piece at a time
    (``ROWS_PER_BATCH`` rows of :mod:`loopline.data.contract`), so memory does not grow with
    the batch.
    """
    tally = _Tally(dataset)
    pieces: Iterable[pd.DataFrame] = checked_batches(source, dataset)
    if protect is not None:
        pieces = map(protect, pieces)
    write_frames(tally.through(pieces), target, _arrow_schema(source))
    return tally.facts()


def check_file(source: Path, dataset: DatasetParams) -> BatchFacts:
    """What :func:`write_checked` would accept, without writing it."""
    tally = _Tally(dataset)
    for _ in tally.through(checked_batches(source, dataset)):
        pass
    return tally.facts()


def precheck(source: Path, dataset: DatasetParams, rows: int = ROWS_PER_BATCH) -> None:
    """The check made before any flow starts: the whole batch if it is at most ``rows`` rows,
    else its first ``rows``, so a 10M-row batch is not checked twice (ingest checks it all).

    A problem in those rows is a problem of the batch: the rejection says how much was read.
    """
    now = pd.Timestamp.now(tz="UTC").floor("s")
    pieces = read_batches(source, dataset, rows)
    raw = (stamp_arrival(f, dataset, source, now) for f in itertools.islice(pieces, 1))
    try:
        for _ in check_batches(raw, dataset, source):
            pass
    except BatchRejected as exc:
        total = _parquet_rows(source)
        if total is None or total <= rows:
            raise
        seen = f"found in the first {rows:,} of its {total:,} rows (the rest is checked on ingest)"
        raise BatchRejected(source, [*exc.problems, seen]) from None


def _parquet_rows(source: Path) -> int | None:
    import pyarrow.parquet as pq

    if source.suffix not in (".parquet", ".pq"):
        return None
    return int(pq.ParquetFile(source).metadata.num_rows)


def checked_batch(source: Path, dataset: DatasetParams) -> pd.DataFrame:
    """The batch as it would be accepted (stamped on arrival if so configured), or a rejection."""
    raw = read_batch(source, dataset)
    return check_batch(stamp_arrival(raw, dataset, source), dataset, source)


def checked_batches(source: Path, dataset: DatasetParams) -> Iterator[pd.DataFrame]:
    """:func:`checked_batch` in pieces; the rejection is raised after the last piece."""
    now = pd.Timestamp.now(tz="UTC").floor("s")
    raw = (stamp_arrival(f, dataset, source, now) for f in read_batches(source, dataset))
    return check_batches(raw, dataset, source)


def write_frames(
    frames: Iterable[pd.DataFrame], target: Path, like: pa.Schema | None = None
) -> int:
    """Write pieces of one table as the row groups of one Parquet file, as ``to_parquet``
    (``index=False``) writes the whole; ``target`` is replaced only when every piece is.

    A column empty in the first piece takes its type from ``like`` (the source's schema), so
    that later pieces fit the file. Returns the number of rows written.
    """
    import pyarrow.parquet as pq

    partial = target.with_name(f".{target.name}.partial")
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for frame in frames:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(partial, _filled(table.schema, like))
            if not table.schema.equals(writer.schema):
                table = pa.Table.from_pandas(frame, schema=writer.schema, preserve_index=False)
            writer.write_table(table, row_group_size=max(len(frame), 1))
            rows += len(frame)
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return rows


def _filled(schema: pa.Schema, like: pa.Schema | None) -> pa.Schema:
    if like is None:
        return schema
    for i, column in enumerate(schema):
        if pa.types.is_null(column.type) and column.name in like.names:
            schema = schema.set(i, column.with_type(like.field(column.name).type))
    return schema


def _arrow_schema(source: Path) -> pa.Schema | None:
    if source.suffix not in (".parquet", ".pq"):
        return None
    import pyarrow.parquet as pq

    return pq.read_schema(source)


class _Tally:
    """Rows, distinct entities and the time span of pieces passing through."""

    def __init__(self, dataset: DatasetParams) -> None:
        self.dataset = dataset
        self.rows = 0
        self.entities: list[np.ndarray] = []
        self.start: pd.Timestamp | None = None
        self.end: pd.Timestamp | None = None

    def through(self, frames: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in frames:
            self.rows += len(frame)
            self.entities.append(pd.unique(frame[self.dataset.entity]))
            stamps = frame[self.dataset.timestamp]
            first, last = stamps.min(), stamps.max()
            self.start = first if self.start is None else min(self.start, first)
            self.end = last if self.end is None else max(self.end, last)
            yield frame

    def facts(self) -> BatchFacts:
        assert self.start is not None and self.end is not None
        entities = len(pd.unique(np.concatenate(self.entities)))
        return BatchFacts(self.rows, entities, self.start.isoformat(), self.end.isoformat())


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
    """Keep the reason, and the file's size and SHA-256, for the dashboard and audit.

    Not the file: a refused batch holds personal data nothing has protected yet, and the
    drop folder it came from is the source's own copy.
    """
    when = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = paths.rejected / when
    folder.mkdir(parents=True, exist_ok=True)
    record: dict[str, object] = {"source": str(error.source), "at": when}
    if error.source.is_file():
        from loopline.packaging import file_sha256

        record |= {"bytes": error.source.stat().st_size, "sha256": file_sha256(error.source)}
    (folder / "reason.json").write_text(json.dumps(record | {"problems": error.problems}, indent=2))
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


def prepare(dataset: DatasetParams, paths: Paths, *, checked: bool = False) -> int:
    """The accepted batch, re-checked, typed and without PII: what feature steps may read.

    ``checked``: the run's own accept step has just written ``paths.raw_batch`` from the
    contract check's output (typed already), so it is not checked again; DVC's ``ingest``
    stage, which may find any file there, always checks. Written to ``paths.ingested`` a
    piece at a time; returns the number of rows.
    """
    source = paths.raw_batch
    pieces = read_batches(source, dataset)
    if not checked:
        pieces = check_batches(pieces, dataset, source)
    from loopline.privacy.subjects import tombstones

    # A subject erased after this batch was accepted is left out of everything built from it.
    erased = tombstones(paths)
    kept = (_without_subjects(f, dataset, erased) for f in pieces)
    paths.ingested.parent.mkdir(parents=True, exist_ok=True)
    return write_frames(kept, paths.ingested, _arrow_schema(source))


def _without_subjects(
    frame: pd.DataFrame, dataset: DatasetParams, erased: set[int]
) -> pd.DataFrame:
    kept = frame.drop(columns=[c for c in dataset.pii if c in frame.columns])
    return kept[~kept[dataset.entity].isin(erased)] if erased else kept


def quality_summary(frame: pd.DataFrame, dataset: DatasetParams) -> dict[str, object]:
    """Row counts, label rate, missing values and time range: DVC metrics for the batch."""
    return quality_summary_of([frame], dataset)


def quality_summary_of(frames: Iterable[pd.DataFrame], dataset: DatasetParams) -> dict[str, object]:
    """:func:`quality_summary` of a batch given in pieces (a 10M-row file a piece at a time)."""
    features = list(dataset.features)
    rows = labelled = 0
    positives = 0.0
    missing = pd.Series(0, index=features, dtype="int64")
    entities: list[np.ndarray] = []
    start = end = None
    for frame in frames:
        label = frame[dataset.label]
        rows += len(frame)
        labelled += int(label.notna().sum())
        positives += float(label.sum())
        missing = missing.add(frame[features].isna().sum(), fill_value=0)
        entities.append(pd.unique(frame[dataset.entity].to_numpy()))
        times = frame[dataset.timestamp]
        start = times.min() if start is None else min(start, times.min())
        end = times.max() if end is None else max(end, times.max())
    assert start is not None and end is not None, "a batch has at least one row"
    return {
        "rows": rows,
        "entities": len(pd.unique(np.concatenate(entities))),
        "labelled_rows": labelled,
        "label_rate": round(positives / labelled, 4) if labelled else float("nan"),
        "missing_values": {c: int(n) for c, n in missing.items() if n},
        "start": start.isoformat(),
        "end": end.isoformat(),
    }


def as_dict(version: DataVersion) -> dict[str, object]:
    return asdict(version)
