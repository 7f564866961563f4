"""The batch contract: what every incoming batch must look like before it is accepted.

Built from the ``dataset`` section of params.yaml with pandera, so a new dataset
needs no code. Errors name the file, the column and the problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors

from loopline.config import DatasetParams
from loopline.data.labels import cell_text
from loopline.errors import LooplineError

# Rows checked at a time: a batch of any size is checked, typed and written in pieces this
# big, so memory depends on this and not on the file (about 1 GiB a piece at 16 columns).
ROWS_PER_BATCH = 1_000_000


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


def read_batches(
    source: Path, dataset: DatasetParams | None = None, rows: int | None = None
) -> Iterator[pd.DataFrame]:
    """:func:`read_batch` in pieces of ``rows`` rows (default :data:`ROWS_PER_BATCH`), each
    indexed by its rows' place in the file; a csv is read whole (pandas infers its column
    types from the whole file)."""
    if source.suffix not in (".parquet", ".pq") or not source.is_file():
        yield read_batch(source, dataset)
        return
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(source)
        pieces = file.iter_batches(batch_size=rows or ROWS_PER_BATCH)
        empty = file.metadata.num_rows == 0 or not file.schema_arrow.names
    except Exception as exc:  # any reader failure means the file is unusable
        raise BatchRejected(source, [f"cannot be read: {exc}"]) from exc
    if empty:
        raise BatchRejected(source, ["file is empty (no rows)"])
    start = 0
    while True:
        try:
            piece = next(pieces, None)
            frame = None if piece is None else piece.to_pandas()
        except Exception as exc:
            raise BatchRejected(source, [f"cannot be read: {exc}"]) from exc
        if frame is None:
            return
        # Without an index of its own in the file, a row is named by its place in the file.
        if isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0:
            frame.index = pd.RangeIndex(start, start + len(frame))
        start += len(frame)
        yield frame


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


def batch_schema(dataset: DatasetParams, *, unique: bool = True) -> pa.DataFrameSchema:
    """The pandera schema for raw batches of this dataset (after :func:`normalise`).

    Without ``unique``, (entity, timestamp) pairs are not checked: a batch checked in pieces
    checks them across the pieces (:func:`check_batches`).
    """
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
        # Not required: an accepted batch no longer holds the columns ingestion dropped.
        columns[name] = pa.Column(nullable=True, required=False)
    return pa.DataFrameSchema(
        columns,
        unique=[dataset.entity, dataset.timestamp] if unique else None,
        report_duplicates="exclude_first",
        strict=False,
    )


def _finite(series: pd.Series) -> pd.Series:
    # Missing values are judged by the column's missing policy (nullable); infinities never pass.
    return series.isna() | series.between(-1e12, 1e12)


TIMESTAMP_ROWS = 5  # unparseable timestamps shown


def _timestamps_utc(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    # Naive timestamps are taken as UTC; pandera cannot coerce naive to aware itself.
    if column in frame and not isinstance(frame[column].dtype, pd.DatetimeTZDtype):
        parsed = pd.to_datetime(frame[column], errors="coerce", utc=True, format="mixed")
        bad = parsed.isna() & frame[column].notna()
        frame = frame.assign(**{column: parsed.where(~bad, pd.NaT)})
        if bad.any():
            frame.attrs["unparseable_timestamps"] = frame.index[bad].tolist()[:TIMESTAMP_ROWS]
    return frame


def normalise(frame: pd.DataFrame, dataset: DatasetParams) -> tuple[pd.DataFrame, list[str]]:
    """Missing cells as missing, categories as text, the label as 0/1; problems found.

    A cell holding one of ``na_values`` or only whitespace is missing, whatever the file
    format. A category is compared as text: 1.0 read from parquet is "1", as in a csv.
    """
    out, unknown = _normalised(frame, dataset)
    return out, [] if unknown.rows == 0 else [unknown.message(dataset)]


@dataclass
class _UnknownLabels:
    """Label cells not in ``dataset.label_values``, gathered over the pieces of a batch."""

    rows: int = 0
    texts: list[str] = field(default_factory=list)  # the first 50, in row order
    at: list[Any] = field(default_factory=list)  # the first 3 rows

    def add(self, other: _UnknownLabels) -> None:
        self.rows += other.rows
        self.texts = (self.texts + other.texts)[:50]
        self.at = (self.at + other.at)[:3]

    def message(self, dataset: DatasetParams) -> str:
        examples = sorted(set(self.texts))[:3]
        return (
            f"column {dataset.label!r}: values not in dataset.label_values "
            f"{sorted(dataset.label_values or {})} ({self.rows} rows; e.g. {examples} "
            f"at rows {self.at})"
        )


def _normalised(frame: pd.DataFrame, dataset: DatasetParams) -> tuple[pd.DataFrame, _UnknownLabels]:
    na = {v.strip() for v in dataset.na_values} | {""}
    out = frame.copy()
    # Whether a column holds only text is judged once: over 1M cells it is what costs.
    text_only: dict[str, bool] = {}
    for column in [dataset.label, *dataset.features, *dataset.pii]:
        if column in out and out[column].dtype == object:
            text_only[column] = _only_text(out[column])
            out[column] = _without_na_text(out[column], na, text_only[column])
    for column in dataset.categorical:
        only = text_only[column] if column in text_only else _only_text(out[column])
        out[column] = _as_cell_text(out[column], only)
    # An accepted batch, read again, holds the mapped 0/1 already: numbers are not spellings.
    unknown = _UnknownLabels()
    spelled = not pd.api.types.is_numeric_dtype(out[dataset.label])
    if dataset.label_values is not None and spelled:
        out[dataset.label], unknown = _map_label(out[dataset.label], dataset)
    return out, unknown


def _only_text(series: pd.Series) -> bool:
    """Every cell is a str, None or NaN: then a cell's text is itself, or missing."""
    present = series.notna()
    if pd.api.types.infer_dtype(series[present], skipna=False) not in ("string", "empty"):
        return False
    absent = series[~present]
    return all(v is None or isinstance(v, float) for v in absent.drop_duplicates())


def _without_na_text(series: pd.Series, na: set[str], text_only: bool) -> pd.Series:
    if not text_only:
        return series.map(lambda v: None if _is_na_text(v, na) else v)
    # Judged once per distinct text, not once per cell.
    texts = pd.unique(series[series.notna()])
    missing = [t for t in texts if _is_na_text(t, na)]
    return series.where(~series.isin(missing), None) if missing else series


def _as_cell_text(series: pd.Series, text_only: bool) -> pd.Series:
    if not text_only:
        return series.map(cell_text).astype(object)
    return series.where(series.notna(), None).astype(object)


def _is_na_text(value: object, na: set[str]) -> bool:
    return isinstance(value, str) and value.strip() in na


def _map_label(series: pd.Series, dataset: DatasetParams) -> tuple[pd.Series, _UnknownLabels]:
    spellings = dataset.label_values or {}
    text = series.map(cell_text)
    mapped = text.map(lambda v: None if v is None else spellings.get(v.strip(), -1))
    unknown = mapped.eq(-1)
    if not unknown.any():
        return mapped.astype("Int64"), _UnknownLabels()
    found = _UnknownLabels(
        int(unknown.sum()), text[unknown].head(50).tolist(), series.index[unknown].tolist()[:3]
    )
    # The known spellings are mapped, the unknown left missing: they are reported here, once.
    return mapped.where(~unknown, None).astype("Int64"), found


def stamp_arrival(
    frame: pd.DataFrame, dataset: DatasetParams, source: Path, now: pd.Timestamp | None = None
) -> pd.DataFrame:
    """With ``timestamp_source: arrival``, every row of the batch is stamped with now (or
    ``now``: the pieces of one batch share one instant)."""
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
    return frame.assign(**{dataset.timestamp: now or pd.Timestamp.now(tz="UTC").floor("s")})


def check_batch(frame: pd.DataFrame, dataset: DatasetParams, source: Path) -> pd.DataFrame:
    """Validate and coerce a raw batch; raise :class:`BatchRejected` naming each problem."""
    (checked,) = check_batches([frame], dataset, source)
    return checked


def check_batches(
    frames: Iterable[pd.DataFrame], dataset: DatasetParams, source: Path
) -> Iterator[pd.DataFrame]:
    """:func:`check_batch` of a batch given in pieces (rows indexed by their place in it).

    Yields each piece checked and coerced while no piece so far had a problem; after the
    last, raises :class:`BatchRejected` naming every problem of every piece, as the whole
    batch checked at once would: counts over all rows, the first rows and examples, and
    duplicate (entity, timestamp) pairs across pieces. A caller writing the pieces out must
    discard what it wrote when this raises.
    """
    schema = batch_schema(dataset, unique=False)
    unknown = _UnknownLabels()
    unparseable: list[Any] = []
    failures: list[pd.DataFrame] = []
    errors: list[str] = []
    keys: list[pd.DataFrame] = []
    first = True
    for raw in frames:
        if first:
            needed = batch_schema(dataset).columns
            missing = [c for c, col in needed.items() if col.required and c not in raw.columns]
            if missing:
                raise BatchRejected(source, [f"missing columns: {', '.join(missing)}"])
            first = False
        frame, found = _normalised(raw, dataset)
        unknown.add(found)
        frame = _timestamps_utc(frame, dataset.timestamp)
        unparseable += frame.attrs.pop("unparseable_timestamps", [])
        keys.append(frame[[dataset.entity, dataset.timestamp]])
        try:
            checked = schema.validate(frame, lazy=True)
        except SchemaErrors as exc:
            failures.append(exc.failure_cases)
        except SchemaError as exc:
            errors.append(str(exc))
        else:
            if not (unknown.rows or unparseable or failures or errors):
                yield checked
    if not keys:
        return
    duplicates = _duplicates(pd.concat(keys) if len(keys) > 1 else keys[0])
    if len(duplicates):
        failures.insert(0, duplicates)
    problems = [unknown.message(dataset)] if unknown.rows else []
    if unparseable:
        rows = unparseable[:TIMESTAMP_ROWS]
        problems.append(f"column {dataset.timestamp!r}: unparseable timestamps at rows {rows}")
    if failures:
        problems.extend(_summarise(pd.concat(failures, ignore_index=True), dataset))
    problems.extend(errors)
    if problems:
        raise BatchRejected(source, problems)


def _duplicates(keys: pd.DataFrame) -> pd.DataFrame:
    """Rows repeating an earlier row's (entity, timestamp), as pandera reports them."""
    repeated = keys[keys.duplicated(keep="first")]
    return pd.DataFrame(
        {
            "schema_context": "DataFrameSchema",
            "column": [c for c in keys.columns for _ in range(len(repeated))],
            "check": "multiple_fields_uniqueness",
            "check_number": None,
            "failure_case": [v for c in keys.columns for v in repeated[c].tolist()],
            "index": [i for _ in keys.columns for i in repeated.index.tolist()],
        }
    )


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
