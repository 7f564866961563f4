"""Reading the prediction log: time windows, labels joined to predictions, live accuracy.

DuckDB scans the Parquet files (only the columns a query uses, in parallel). Days are
pruned by listing the ``date=`` folders in Python rather than by hive filters, because
the file list must also leave out files that a compacted file already holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from loopline.serving.predlog import (
    FEEDBACK,
    FEEDBACK_TYPES,
    PREDICTION_TYPES,
    PREDICTIONS,
    erasing_lock,
    fsync_file,
    utc,
)

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

# A compacted file lists the files it replaces under this key, so no row is read twice.
COMPACTED_KEY = b"loopline.compacted"
ACCURACY_COLUMNS = ["n_labelled", "accuracy", "roc_auc", "positive_rate", "predicted_positive_rate"]
EMPTY = {PREDICTIONS: PREDICTION_TYPES, FEEDBACK: FEEDBACK_TYPES}
ATTEMPTS = 3


def read_predictions(
    folder: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Predictions with ``since <= at < until``, oldest first; the latest ``limit`` if given."""
    where, params = _window('"at"', since, until)
    # constant SQL; the window's values are bound
    sql = f'SELECT * FROM predictions {where} ORDER BY "at"'  # nosec B608
    if limit is not None:  # the latest rows, still returned oldest first
        # constant SQL and an int
        latest = f'SELECT * FROM predictions {where} ORDER BY "at" DESC LIMIT {int(limit)}'  # nosec
        # constant SQL
        sql = f'SELECT * FROM ({latest}) ORDER BY "at"'  # nosec B608
    return _query(folder, {PREDICTIONS: _days(since, until)}, sql, params)


def read_feedback(
    folder: Path, *, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """Feedback received in ``since <= received_at < until``, oldest first."""
    where, params = _window("received_at", since, until)
    # constant SQL; values are bound
    sql = f"SELECT * FROM feedback {where} ORDER BY received_at"  # nosec B608
    return _query(folder, {FEEDBACK: _days(since, until)}, sql, params)


def labelled_predictions(
    folder: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    include_shadow: bool = False,
) -> pd.DataFrame:
    """Predictions in the window that have a label, with it as ``actual`` (latest label wins).

    Feedback with a request id matches that request's rows (only the named entity's, when
    it names one). Feedback without one matches the entity's latest served prediction at
    or before its ``at`` (or its arrival), then every row of that request, shadow included.
    """
    where, params = _window('p."at"', since, until)
    shadow = "" if include_shadow else f"{'AND' if where else 'WHERE'} NOT p.shadow"
    served_since = 'AND "at" >= $since' if since is not None else ""
    # constant SQL; values are bound
    sql = f"""
        WITH served AS (SELECT request_id, entity_id, "at" FROM predictions
                        WHERE NOT shadow {served_since}),
        by_time AS (
            SELECT s.request_id, f.entity_id, f.received_at, f.label
            FROM (SELECT *, coalesce("at", received_at) AS as_of FROM feedback
                  WHERE request_id IS NULL) f
            ASOF JOIN served s ON f.entity_id = s.entity_id AND f.as_of >= s."at"),
        labels AS (
            SELECT request_id, entity_id, received_at, label FROM feedback
            WHERE request_id IS NOT NULL
            UNION ALL SELECT * FROM by_time)
        SELECT p.*, l.label AS actual, l.received_at AS labelled_at
        FROM predictions p JOIN labels l
          ON p.request_id = l.request_id AND (l.entity_id IS NULL OR p.entity_id = l.entity_id)
        {where} {shadow}
        QUALIFY row_number() OVER (
            PARTITION BY p.request_id, p.entity_id, p.model_version, p.arm, p.shadow
            ORDER BY l.received_at DESC) = 1
        ORDER BY p."at", p.request_id, p.entity_id, p.shadow
    """  # nosec B608
    # The window bounds the predictions; feedback about them can only arrive afterwards
    # (a day of slack for clocks), and an ASOF match must see predictions past ``until``.
    feedback_since = None if since is None else since - timedelta(days=1)
    days = {PREDICTIONS: _days(since, None), FEEDBACK: _days(feedback_since, None)}
    return _query(folder, days, sql, params)


def live_accuracy(
    folder: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    by: Sequence[str] = ("model_version", "arm"),
    include_shadow: bool = True,
) -> pd.DataFrame:
    """Accuracy, ROC AUC and positive rates of labelled predictions, per group.

    Shadow rows count by default: a challenger in shadow earns its live accuracy on the
    same requests the champion answered. ``positive_rate`` is the share of actual
    positives; ``roc_auc`` is NaN when a group has only one class.
    """
    import pandas as pd

    frame = labelled_predictions(folder, since=since, until=until, include_shadow=include_shadow)
    rows = []
    for key, group in frame.groupby(list(by), sort=True):
        actual = group["actual"].astype(int)
        both = actual.nunique() == 2
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "n_labelled": len(group),
                "accuracy": float((group["label"] == actual).mean()),
                "roc_auc": _roc_auc(actual, group["score"]) if both else float("nan"),
                "positive_rate": float(actual.mean()),
                "predicted_positive_rate": float(group["label"].mean()),
            }
        )
    return pd.DataFrame(rows, columns=[*by, *ACCURACY_COLUMNS])


def _roc_auc(actual: pd.Series, score: pd.Series) -> float:
    # The Mann-Whitney form of ROC AUC (ties count a half), so monitoring needs no sklearn.
    ranks = score.rank()
    positives = int(actual.sum())
    negatives = len(actual) - positives
    top = float(ranks[actual == 1].sum()) - positives * (positives + 1) / 2
    return top / (positives * negatives)


def compact(folder: Path, table: str, day: date, *, min_age: float = 60.0) -> Path | None:
    """Merge one day's files into one; safe while writers append and readers read.

    Files are immutable once visible, so any of them may be merged; ``min_age`` only
    spares the newest, which frequent compactions would otherwise rewrite again and
    again. The merged file names the files it replaces, so until they are deleted
    readers skip them rather than count their rows twice.
    """
    import fcntl

    import duckdb

    partition = Path(folder) / table / f"date={day.isoformat()}"
    if not partition.is_dir():
        return None
    # An erasure rewrites files in place: merging a file it is about to clean, or has not
    # cleaned yet, must not bring its rows back (predlog.erasing_lock).
    with (
        open(partition.parent / ".compact.lock", "w") as lock,
        erasing_lock(Path(folder), exclusive=False),
    ):
        fcntl.flock(lock, fcntl.LOCK_EX)  # two compactions of one day would duplicate rows
        _remove_leftovers(partition)
        cutoff = time.time() - min_age
        sources = [p for p in partition_files(partition) if p.stat().st_mtime <= cutoff]
        if len(sources) < 2:
            return None
        names = {p.name for p in sources}
        names.update(n for p in sources if "-compact-" in p.name for n in _covered_by(p))
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = partition / f"part-{stamp}-compact-{uuid.uuid4().hex[:6]}.parquet"
        temporary = target.with_name(f".{target.name}.tmp")
        manifest = json.dumps(sorted(names)).replace("'", "''")
        try:
            # DuckDB streams the merge (a busy day need not fit in memory) and unifies
            # schemas exactly as the readers do.
            with duckdb.connect() as con:
                con.execute(
                    # constant SQL; values are bound
                    "COPY (SELECT * FROM read_parquet($files, union_by_name = true,"  # nosec B608
                    f" hive_partitioning = false)) TO '{_quoted(temporary)}' (FORMAT parquet,"
                    f" COMPRESSION zstd, KV_METADATA {{'{COMPACTED_KEY.decode()}': '{manifest}'}})",
                    {"files": [str(p) for p in sources]},
                )
            fsync_file(temporary)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        for path in sources:
            path.unlink(missing_ok=True)
    return target


def partition_files(partition: Path) -> list[Path]:
    """The visible files of one day, less those a compacted file already holds."""
    files = sorted(partition.glob("part-*.parquet"))
    covered: set[str] = set()
    for path in files:
        if "-compact-" in path.name:
            covered.update(_covered_by(path))
    return [path for path in files if path.name not in covered]


def _covered_by(path: Path) -> list[str]:
    metadata = pq.read_schema(path).metadata or {}
    return list(json.loads(metadata.get(COMPACTED_KEY, b"[]")))


def _remove_leftovers(partition: Path) -> None:
    # Temporary files of writers killed mid-write, and files a crashed compaction merged.
    stale = time.time() - 3600
    for path in partition.glob(".part-*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < stale:
                path.unlink()
    visible = {p.name for p in partition.glob("part-*.parquet")}
    for name in visible.difference(p.name for p in partition_files(partition)):
        (partition / name).unlink(missing_ok=True)


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def _window(
    column: str, since: datetime | None, until: datetime | None
) -> tuple[str, dict[str, Any]]:
    clauses, params = [], {}
    if since is not None:
        clauses.append(f"{column} >= $since")
        params["since"] = utc(since)
    if until is not None:
        clauses.append(f"{column} < $until")
        params["until"] = utc(until)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def _days(since: datetime | None, until: datetime | None) -> tuple[date | None, date | None]:
    first = None if since is None else utc(since).date()
    return first, None if until is None else utc(until).date()


def _files(table: Path, first: date | None, last: date | None) -> list[str]:
    files: list[str] = []
    for partition in sorted(table.glob("date=*")):
        try:
            day = date.fromisoformat(partition.name.removeprefix("date="))
        except ValueError:
            continue
        if (first is None or day >= first) and (last is None or day <= last):
            files.extend(str(path) for path in partition_files(partition))
    return files


def _query(
    folder: Path, days: dict[str, tuple[date | None, date | None]], sql: str, params: dict[str, Any]
) -> pd.DataFrame:
    import duckdb

    for attempt in range(ATTEMPTS):
        try:
            with duckdb.connect() as con:
                con.execute("SET TimeZone = 'UTC'")  # timestamps come back in UTC, not local time
                for table, (first, last) in days.items():
                    _register(con, table, _files(Path(folder) / table, first, last))
                return con.execute(sql, params).df()
        except (duckdb.IOException, FileNotFoundError):
            # A compaction deleted a file between listing and reading: list again.
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _register(con: duckdb.DuckDBPyConnection, table: str, files: list[str]) -> None:
    if files:
        relation = con.read_parquet(files, union_by_name=True, hive_partitioning=False)
        relation.create_view(table)
    else:  # no file yet: an empty table with the log's own columns, so queries still run
        con.register(table, pa.Table.from_pylist([], schema=pa.schema(EMPTY[table])))
