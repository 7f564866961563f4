"""The prediction and feedback log: append-only Parquet files, one per flush, by day.

Layout: ``<folder>/<table>/date=YYYY-MM-DD/part-<utc time>-<pid>-<writer>-<seq>.parquet``.

Why Parquet files rather than SQLite (WAL) or one DuckDB file: every BentoML worker is
its own process with its own writer. SQLite allows one writer at a time (the others wait
on a lock, inside the request's process) and is a row store, slow to scan a million
rows by column; a DuckDB file can be open for writing by one process only. Separate
files need no coordination at all: each writer owns the names it creates, a file
appears complete or not at all (written under a hidden temporary name, then
``os.replace``), and monitoring scans only the columns and days it asks for.

Requests only append a dict to a list under a lock; a daemon thread turns the list into
a file every ``flush_interval`` seconds, or sooner when ``max_rows`` are waiting. So
``close()`` loses nothing and ``kill -9`` loses at most about one flush interval.

Erasure (``loopline subjects erase``) rewrites files without a subject while workers keep
logging. A flush holds :func:`erasing_lock` shared while it reads the erased subjects and
writes; the eraser holds it exclusive while it rewrites, after the subject's tombstone is
in. So every flush either wrote before the rewrite (which then removes the rows) or
reads the tombstone and drops them: no row of an erased subject outlives the erasure.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Self, get_args

import pyarrow as pa
import pyarrow.parquet as pq

from loopline.serving.router import ArmName

logger = logging.getLogger(__name__)

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
# champion, challenger, and unpromoted: the Bento's own model, served while nothing is in
# production under serving.allow_unpromoted (monitoring reads the production version's rows).
ARMS = frozenset(get_args(ArmName))
TIMESTAMP = pa.timestamp("us", tz="UTC")
PREDICTION_TYPES: dict[str, pa.DataType] = {
    "request_id": pa.string(),
    "at": TIMESTAMP,
    "entity_id": pa.int64(),
    "model_version": pa.string(),
    "arm": pa.string(),
    "shadow": pa.bool_(),
    "score": pa.float64(),
    "label": pa.int8(),
    "latency_ms": pa.float64(),
}
FEEDBACK_TYPES: dict[str, pa.DataType] = {
    "request_id": pa.string(),
    "entity_id": pa.int64(),
    "at": TIMESTAMP,
    "received_at": TIMESTAMP,
    "label": pa.int8(),
}


@contextmanager
def erasing_lock(folder: Path, *, exclusive: bool) -> Iterator[None]:
    """The log folder's erasure lock: shared by flushes, exclusive for an erasure."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".erasing.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class PartitionedLog:
    """A buffered, append-only writer of one table, partitioned by the day of ``time_column``."""

    def __init__(
        self,
        folder: Path,
        table: str,
        *,
        flush_interval: float = 1.0,
        max_rows: int = 10_000,
        time_column: str = "at",
        types: Mapping[str, pa.DataType] | None = None,
        erased: Callable[[], Collection[int]] | None = None,
    ) -> None:
        if flush_interval <= 0 or max_rows <= 0:
            raise ValueError("flush_interval and max_rows must be positive")
        self.folder = Path(folder)
        self.table = table
        self.flush_interval = flush_interval
        self.max_rows = max_rows
        self.time_column = time_column
        self.types = dict(types or {})
        self.erased = erased  # the erased subjects' entity ids, asked at every flush
        self.appended = self.written = self.dropped = 0
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # guards _rows and the counters
        self._write_lock = threading.Lock()  # one flush at a time, so files never interleave
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._token = uuid.uuid4().hex[:6]
        self._seq = 0

    def start(self) -> Self:
        """Start the background flusher (call it in the worker process, after any fork)."""
        if self._thread is None:
            pa.array([0])  # pyarrow imports pandas on its first conversion: pay it here, once
            self._thread = threading.Thread(target=self._run, name=f"{self.table}-log", daemon=True)
            self._thread.start()
            atexit.register(self.close)  # a backstop: servers should call close() on shutdown
        return self

    def append(self, row: dict[str, Any]) -> None:
        """Buffer one row, whose ``time_column`` is a UTC datetime; never touches the disk."""
        if not isinstance(row.get(self.time_column), datetime):
            raise TypeError(f"a {self.table} row needs a datetime {self.time_column!r}")
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self.table} log is closed")
            self._rows.append(row)
            self.appended += 1
            full = len(self._rows) >= self.max_rows
        if full:
            self._wake.set()

    def flush(self) -> int:
        """Write every buffered row now; returns how many rows were written."""
        with self._write_lock:
            if not self._rows:  # an idle worker asks nothing and locks nothing
                return 0
            with erasing_lock(self.folder, exclusive=False):
                return self._flush_locked()

    def _flush_locked(self) -> int:
        # Asked before the rows are taken: if the registry cannot answer, they wait for it.
        erased = set(self.erased()) if self.erased is not None else set()
        with self._lock:
            rows, self._rows = self._rows, []
        if erased:  # an erased subject's rows are not personal data we may keep
            rows = [row for row in rows if row.get("entity_id") not in erased]
        by_day: dict[date, list[dict[str, Any]]] = {}
        for row in rows:
            by_day.setdefault(row[self.time_column].date(), []).append(row)
        written = 0
        days = sorted(by_day)
        for i, day in enumerate(days):
            day_rows = by_day[day]
            try:
                table = self._to_arrow(day_rows)
            except (pa.ArrowException, TypeError, ValueError):
                # Rows that cannot be converted never will be: drop them, keep logging.
                logger.exception("dropped %d malformed %s rows", len(day_rows), self.table)
                with self._lock:
                    self.dropped += len(day_rows)
                continue
            try:
                self._write(day, table)
            except OSError:  # the disk may recover: keep this day's rows and the rest
                self._keep([row for later in days[i:] for row in by_day[later]])
                raise
            written += len(day_rows)
            with self._lock:
                self.written += len(day_rows)
        return written

    def close(self) -> None:
        """Stop the flusher and write everything still buffered (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        atexit.unregister(self.close)
        self.flush()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)  # set early by append() when max_rows wait
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the next flush retries; requests must never see this
                logger.exception("could not write the %s log under %s", self.table, self.folder)

    def _keep(self, unwritten: list[dict[str, Any]]) -> None:
        # A failing disk must not grow memory without bound: keep the newest rows.
        with self._lock:
            rows = unwritten + self._rows
            cap = 10 * self.max_rows
            self.dropped += max(0, len(rows) - cap)
            self._rows = rows[-cap:]

    def _write(self, day: date, table: pa.Table) -> Path:
        partition = self.folder / self.table / f"date={day.isoformat()}"
        partition.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"part-{stamp}-{os.getpid()}-{self._token}-{self._seq:06d}.parquet"
        return write_atomically(table, partition / name)

    def _to_arrow(self, rows: list[dict[str, Any]]) -> pa.Table:
        names = list(rows[0])
        names += sorted(set().union(*rows).difference(names))  # columns that appeared later
        arrays = [_array(name, [row.get(name) for row in rows], self.types) for name in names]
        return pa.Table.from_arrays(arrays, names=names)


def _array(name: str, values: list[Any], types: Mapping[str, pa.DataType]) -> pa.Array:
    if name in types:
        return pa.array(values, type=types[name])
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # A feature with mixed types in one flush (say 3 and "3"): keep it as text, not lose it.
        logger.warning("feature %r has mixed types; logging it as text", name)
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def write_atomically(table: pa.Table, target: Path) -> Path:
    """Write ``table`` to ``target`` so that readers see the whole file or nothing."""
    temporary = target.with_name(f".{target.name}.tmp")  # hidden: no reader glob matches it
    try:
        pq.write_table(table, temporary, compression="zstd")
        fsync_file(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


class PredictionLog(PartitionedLog):
    """Every prediction, served or shadow, with the feature values the model saw."""

    def __init__(
        self,
        folder: Path,
        *,
        flush_interval: float = 1.0,
        max_rows: int = 10_000,
        erased: Callable[[], Collection[int]] | None = None,
    ) -> None:
        super().__init__(
            folder,
            PREDICTIONS,
            flush_interval=flush_interval,
            max_rows=max_rows,
            types=PREDICTION_TYPES,
            erased=erased,
        )

    def log(
        self,
        *,
        request_id: str,
        entity_id: int,
        model_version: str,
        arm: str,
        score: float,
        label: int,
        latency_ms: float,
        features: Mapping[str, Any],
        shadow: bool = False,
        at: datetime | None = None,
    ) -> None:
        """Buffer one prediction; a shadow one shares the request id of the served one."""
        if arm not in ARMS:
            raise ValueError(f"arm must be one of {sorted(ARMS)}, not {arm!r}")
        if label not in (0, 1):
            raise ValueError(f"label must be 0 or 1, not {label!r}")
        row = {
            "request_id": str(request_id),
            "at": datetime.now(UTC) if at is None else utc(at),
            "entity_id": int(entity_id),
            "model_version": str(model_version),
            "arm": arm,
            "shadow": bool(shadow),
            "score": float(score),
            "label": int(label),
            "latency_ms": float(latency_ms),
        }
        row.update(features)
        if len(row) != len(PREDICTION_TYPES) + len(features) or "date" in features:
            clash = sorted({*PREDICTION_TYPES, "date"}.intersection(features))
            raise ValueError(f"feature names clash with the log's own columns: {clash}")
        self.append(row)


class FeedbackLog(PartitionedLog):
    """Ground-truth labels that arrive after the prediction, partitioned by arrival day."""

    def __init__(
        self,
        folder: Path,
        *,
        flush_interval: float = 1.0,
        max_rows: int = 10_000,
        erased: Callable[[], Collection[int]] | None = None,
    ) -> None:
        super().__init__(
            folder,
            FEEDBACK,
            flush_interval=flush_interval,
            max_rows=max_rows,
            time_column="received_at",
            types=FEEDBACK_TYPES,
            erased=erased,
        )

    def record(
        self,
        *,
        label: int,
        request_id: str | None = None,
        entity_id: int | None = None,
        at: datetime | None = None,
    ) -> None:
        """Buffer a label for a request id (and entity), or for an entity's prediction at ``at``.

        Without a request id the label goes to the entity's latest served prediction at or
        before ``at`` (or before its arrival, when ``at`` is not given).
        """
        if label not in (0, 1):
            raise ValueError(f"label must be 0 or 1, not {label!r}")
        if request_id is None and entity_id is None:
            raise ValueError("feedback needs a request_id, or an entity_id (and a time)")
        self.append(
            {
                "request_id": None if request_id is None else str(request_id),
                "entity_id": None if entity_id is None else int(entity_id),
                "at": None if at is None else utc(at),
                "received_at": datetime.now(UTC),
                "label": int(label),
            }
        )


def fsync_file(path: Path) -> None:
    # Not needed for kill -9 (the page cache survives the process); it is for a power cut,
    # which could otherwise leave a renamed file with no data behind the name.
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
