"""The batch contract: what every incoming batch must look like before it is accepted.

Built from the ``dataset`` section of params.yaml with pandera, so a new dataset
needs no code. Errors name the file, the column and the problem.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors

from loopline.config import DatasetParams


class BatchRejected(ValueError):
    """A batch broke the contract; the message lists every problem found."""

    def __init__(self, source: Path, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"batch {source} rejected:\n{listing}")


def read_batch(source: Path) -> pd.DataFrame:
    """Read a csv or parquet batch; an unreadable or empty file is a rejection."""
    if not source.is_file():
        raise BatchRejected(source, ["file not found"])
    try:
        if source.suffix == ".csv":
            frame = pd.read_csv(source)
        elif source.suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(source)
        else:
            raise BatchRejected(source, [f"unsupported file type {source.suffix!r}"])
    except BatchRejected:
        raise
    except Exception as exc:  # any reader failure means the file is unusable
        raise BatchRejected(source, [f"cannot be read: {exc}"]) from exc
    if frame.empty:
        raise BatchRejected(source, ["file is empty (no rows)"])
    return frame


def batch_schema(dataset: DatasetParams) -> pa.DataFrameSchema:
    """The pandera schema for raw batches of this dataset."""
    columns: dict[str, pa.Column] = {
        dataset.entity: pa.Column("int64", pa.Check.ge(0), coerce=True, nullable=False),
        dataset.timestamp: pa.Column("datetime64[ns, UTC]", coerce=True, nullable=False),
        dataset.label: pa.Column("Int64", pa.Check.isin([0, 1]), coerce=True, nullable=True),
    }
    for name in dataset.numeric:
        columns[name] = pa.Column("float64", pa.Check(_finite, error="finite"), coerce=True)
    for name in dataset.categorical:
        columns[name] = pa.Column(str, coerce=True, nullable=False)
    for name in dataset.pii:
        columns[name] = pa.Column(nullable=True)
    return pa.DataFrameSchema(
        columns,
        unique=[dataset.entity, dataset.timestamp],
        report_duplicates="exclude_first",
        strict=False,
    )


def _finite(series: pd.Series) -> pd.Series:
    # NaN is allowed (missing measurements are imputed); infinities are not.
    return series.isna() | series.between(-1e12, 1e12)


def _timestamps_utc(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    # Naive timestamps are taken as UTC; pandera cannot coerce naive to aware itself.
    if column in frame and not isinstance(frame[column].dtype, pd.DatetimeTZDtype):
        parsed = pd.to_datetime(frame[column], errors="coerce", utc=True)
        bad = parsed.isna() & frame[column].notna()
        frame = frame.assign(**{column: parsed.where(~bad, pd.NaT)})
        if bad.any():
            frame.attrs["unparseable_timestamps"] = frame.index[bad].tolist()[:5]
    return frame


def check_batch(frame: pd.DataFrame, dataset: DatasetParams, source: Path) -> pd.DataFrame:
    """Validate and coerce a raw batch; raise :class:`BatchRejected` naming each problem."""
    problems: list[str] = []
    missing = [c for c in batch_schema(dataset).columns if c not in frame.columns]
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
        raise BatchRejected(source, problems)
    frame = _timestamps_utc(frame, dataset.timestamp)
    if "unparseable_timestamps" in frame.attrs:
        rows = frame.attrs["unparseable_timestamps"]
        problems.append(f"column {dataset.timestamp!r}: unparseable timestamps at rows {rows}")
    try:
        checked = batch_schema(dataset).validate(frame, lazy=True)
    except SchemaErrors as exc:
        problems.extend(_summarise(exc.failure_cases))
        raise BatchRejected(source, problems) from exc
    except SchemaError as exc:
        problems.append(str(exc))
        raise BatchRejected(source, problems) from exc
    if problems:
        raise BatchRejected(source, problems)
    return checked


def _summarise(failures: pd.DataFrame) -> list[str]:
    out = []
    # One unreadable value also fails the dtype and range checks of its column: report it once.
    uncoercible = set(
        failures.loc[failures["check"].astype(str).str.startswith("coerce"), "column"]
    )
    for (column, check), group in failures.groupby(["column", "check"], dropna=False, sort=False):
        if column in uncoercible and not str(check).startswith("coerce"):
            continue
        examples = group["failure_case"].astype(str).head(3).tolist()
        rows = group["index"].dropna().astype(int).head(3).tolist()
        what = str(check)
        if what.startswith("coerce_dtype"):
            what = f"values that cannot be read as {what.split('(')[-1].rstrip(')')}"
        elif what == "column_in_dataframe":
            what = "column is missing"
        elif what.startswith("field_uniqueness") or what == "multiple_fields_uniqueness":
            what = "duplicate (entity, timestamp) rows"
        elif what == "not_nullable":
            what = "missing values"
        out.append(f"column {column!r}: {what} ({len(group)} rows; e.g. {examples} at rows {rows})")
    return out
