"""The batch contract: what every incoming batch must look like before it is accepted.

Built from the ``dataset`` section of params.yaml with pandera, so a new dataset
needs no code. Errors name the file, the column and the problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors

from loopline.config import DatasetParams
from loopline.data.labels import cell_text
from loopline.errors import LooplineError


class BatchRejected(LooplineError):
    """A batch broke the contract; the message lists every problem found."""

    def __init__(self, source: Path, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"batch {source} rejected:\n{listing}")


def read_batch(source: Path, dataset: DatasetParams | None = None) -> pd.DataFrame:
    """Read a csv or parquet batch; an unreadable or empty file is a rejection.

    With the dataset, a csv's text columns (categories, label, personal data) are read as
    text, so "01" stays "01" and 1 never turns into 1.0 when a later file has a blank; and
    only ``dataset.na_values`` mean missing (pandas would also take "NA" or "null").
    """
    if not source.is_file():
        raise BatchRejected(source, ["file not found"])
    try:
        if source.suffix == ".csv":
            frame = pd.read_csv(source, **_csv_options(dataset))
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


def _csv_options(dataset: DatasetParams | None) -> dict[str, Any]:
    if dataset is None:
        return {}
    # A spelled label ("Yes") is text; a 0/1 label is left for the schema to read as a number.
    text = [*dataset.categorical, *dataset.pii] + ([dataset.label] if dataset.label_values else [])
    return {
        "dtype": dict.fromkeys(text, str),
        "keep_default_na": False,
        "na_values": dataset.na_values,
    }


def batch_schema(dataset: DatasetParams) -> pa.DataFrameSchema:
    """The pandera schema for raw batches of this dataset (after :func:`normalise`)."""
    columns: dict[str, pa.Column] = {
        dataset.entity: pa.Column("int64", pa.Check.ge(0), coerce=True, nullable=False),
        dataset.timestamp: pa.Column("datetime64[ns, UTC]", coerce=True, nullable=False),
        dataset.label: pa.Column("Int64", pa.Check.isin([0, 1]), coerce=True, nullable=True),
    }
    for name in dataset.numeric:
        nullable = dataset.features[name].missing != "reject"
        check = pa.Check(_finite, error="finite")
        columns[name] = pa.Column("float64", check, coerce=True, nullable=nullable)
    for name in dataset.categorical:
        # Text or None: normalise made them so; a coercion to str would turn None into "None".
        columns[name] = pa.Column(nullable=dataset.features[name].missing != "reject")
    for name in dataset.pii:
        columns[name] = pa.Column(nullable=True)
    return pa.DataFrameSchema(
        columns,
        unique=[dataset.entity, dataset.timestamp],
        report_duplicates="exclude_first",
        strict=False,
    )


def _finite(series: pd.Series) -> pd.Series:
    # Missing values are judged by the column's missing policy (nullable); infinities never pass.
    return series.isna() | series.between(-1e12, 1e12)


def _timestamps_utc(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    # Naive timestamps are taken as UTC; pandera cannot coerce naive to aware itself.
    if column in frame and not isinstance(frame[column].dtype, pd.DatetimeTZDtype):
        parsed = pd.to_datetime(frame[column], errors="coerce", utc=True, format="mixed")
        bad = parsed.isna() & frame[column].notna()
        frame = frame.assign(**{column: parsed.where(~bad, pd.NaT)})
        if bad.any():
            frame.attrs["unparseable_timestamps"] = frame.index[bad].tolist()[:5]
    return frame


def normalise(frame: pd.DataFrame, dataset: DatasetParams) -> tuple[pd.DataFrame, list[str]]:
    """Missing cells as missing, categories as text, the label as 0/1; problems found.

    A cell holding one of ``na_values`` or only whitespace is missing, whatever the file
    format. A category is compared as text: 1.0 read from parquet is "1", as in a csv.
    """
    problems: list[str] = []
    na = {v.strip() for v in dataset.na_values} | {""}
    out = frame.copy()
    for column in [dataset.label, *dataset.features, *dataset.pii]:
        if column in out and out[column].dtype == object:
            out[column] = out[column].map(lambda v: None if _is_na_text(v, na) else v)
    for column in dataset.categorical:
        out[column] = out[column].map(cell_text).astype(object)
    # An accepted batch, read again, holds the mapped 0/1 already: numbers are not spellings.
    spelled = not pd.api.types.is_numeric_dtype(out[dataset.label])
    if dataset.label_values is not None and spelled:
        out[dataset.label], problem = _map_label(out[dataset.label], dataset)
        if problem:
            problems.append(problem)
    return out, problems


def _is_na_text(value: object, na: set[str]) -> bool:
    return isinstance(value, str) and value.strip() in na


def _map_label(series: pd.Series, dataset: DatasetParams) -> tuple[pd.Series, str | None]:
    spellings = dataset.label_values or {}
    text = series.map(cell_text)
    mapped = text.map(lambda v: None if v is None else spellings.get(v.strip(), -1))
    unknown = mapped.eq(-1)
    if not unknown.any():
        return mapped.astype("Int64"), None
    examples = sorted(set(text[unknown].head(50)))[:3]
    rows = series.index[unknown].tolist()[:3]
    # The known spellings are mapped, the unknown left missing: they are reported here, once.
    return mapped.where(~unknown, None).astype("Int64"), (
        f"column {dataset.label!r}: values not in dataset.label_values "
        f"{sorted(spellings)} ({int(unknown.sum())} rows; e.g. {examples} at rows {rows})"
    )


def stamp_arrival(frame: pd.DataFrame, dataset: DatasetParams, source: Path) -> pd.DataFrame:
    """With ``timestamp_source: arrival``, every row of the batch is stamped with now."""
    if dataset.timestamp_source != "arrival":
        return frame
    if dataset.timestamp in frame.columns:
        raise BatchRejected(
            source,
            [
                f"column {dataset.timestamp!r} is in the file, but dataset.timestamp_source is "
                "arrival (Loopline writes that column): rename it, or set timestamp_source: column"
            ],
        )
    return frame.assign(**{dataset.timestamp: pd.Timestamp.now(tz="UTC").floor("s")})


def check_batch(frame: pd.DataFrame, dataset: DatasetParams, source: Path) -> pd.DataFrame:
    """Validate and coerce a raw batch; raise :class:`BatchRejected` naming each problem."""
    missing = [c for c in batch_schema(dataset).columns if c not in frame.columns]
    if missing:
        raise BatchRejected(source, [f"missing columns: {', '.join(missing)}"])
    frame, problems = normalise(frame, dataset)
    frame = _timestamps_utc(frame, dataset.timestamp)
    if "unparseable_timestamps" in frame.attrs:
        rows = frame.attrs["unparseable_timestamps"]
        problems.append(f"column {dataset.timestamp!r}: unparseable timestamps at rows {rows}")
    try:
        checked = batch_schema(dataset).validate(frame, lazy=True)
    except SchemaErrors as exc:
        problems.extend(_summarise(exc.failure_cases, dataset))
        raise BatchRejected(source, problems) from exc
    except SchemaError as exc:
        problems.append(str(exc))
        raise BatchRejected(source, problems) from exc
    if problems:
        raise BatchRejected(source, problems)
    return checked


def _summarise(failures: pd.DataFrame, dataset: DatasetParams) -> list[str]:
    out = []
    # One unreadable value also fails the dtype and range checks of its column: report it once.
    uncoercible = set(
        failures.loc[failures["check"].astype(str).str.startswith("coerce"), "column"]
    )
    for (column, check), group in failures.groupby(["column", "check"], dropna=False, sort=False):
        # ...but its missing values are a problem of their own, to be fixed as well.
        if column in uncoercible and not str(check).startswith(("coerce", "not_nullable")):
            continue
        hint = ""
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
            if column in dataset.features:
                hint = "; to accept them, give it `missing: impute` (or allow) in params.yaml"
        # A missing value has nothing to show but where it is.
        shown = f"at rows {rows}" if what == "missing values" else f"e.g. {examples} at rows {rows}"
        out.append(f"column {column!r}: {what} ({len(group)} rows; {shown}){hint}")
    return out
