"""A bounded sample of a user's table: the first rows of a csv or parquet file.

``loopline init`` proposes a schema from this sample, so reading it must cost about
the same for a 2 GB export as for a small one. Cells that mean "no value" (the
``na_values`` markers and whitespace-only strings) become missing here, once, so
inference counts them the same way however the file was written.
"""

from __future__ import annotations

import csv
import gzip
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopline.errors import LooplineError

# Besides these, a whitespace-only cell is always missing. pandas' own list ("NA", "null",
# "n/a", ...) is not the default: in a user's table "NA" may well be North America.
DEFAULT_NA_VALUES: tuple[str, ...] = ("",)

_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
# Parquet is read in batches of at most this many rows, so a small sample of a file
# with huge row groups still stops early.
_BATCH_ROWS = 65_536

_Reader = Callable[[Path, int], tuple[pd.DataFrame, int | None]]


class TableError(LooplineError):
    """The file cannot become a dataset; the message names the file (and column).

    A :class:`LooplineError` (so a ``ValueError``): the command line prints it as a message.
    """

    def __init__(self, source: Path, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


@dataclass(frozen=True)
class Sample:
    """The first rows of a table, with missing cells already marked as missing."""

    source: Path
    frame: pd.DataFrame
    total_rows: int | None
    truncated: bool


def read_sample(
    source: Path, rows: int = 50_000, na_values: Sequence[str] = DEFAULT_NA_VALUES
) -> Sample:
    """Read at most ``rows`` rows of a csv or parquet file.

    csv cells stay strings (object dtype; missing cells are NaN); parquet columns keep
    their own dtypes. Raises :class:`TableError` for a file that cannot be a dataset.
    """
    if rows < 1:
        raise ValueError(f"rows must be at least 1, not {rows}")
    reader = _reader_for(source)
    if not source.is_file():
        raise TableError(source, "file not found")
    if source.stat().st_size == 0:
        raise TableError(source, "file is empty (0 bytes)")
    try:
        frame, total_rows = reader(source, rows)
    except TableError:
        raise
    except UnicodeDecodeError as exc:
        raise TableError(source, f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except Exception as exc:  # any reader failure means the file is unusable as it is
        raise TableError(source, f"cannot be read: {str(exc).strip()}") from exc
    if frame.empty:
        raise TableError(source, "file has a header but no rows")
    truncated = len(frame) > rows if total_rows is None else total_rows > rows
    frame = frame.iloc[:rows]
    if total_rows is None and not truncated:
        total_rows = len(frame)  # the whole csv fitted in the sample
    return Sample(source, _mark_missing(frame, na_values), total_rows, truncated)


def _reader_for(source: Path) -> _Reader:
    name = source.name.lower()
    if name.endswith(_CSV_SUFFIXES):
        return _read_csv
    if name.endswith(_PARQUET_SUFFIXES):
        return _read_parquet
    suffix = "".join(source.suffixes[-2:]) if source.suffix == ".gz" else source.suffix
    expected = ", ".join(_CSV_SUFFIXES + _PARQUET_SUFFIXES)
    raise TableError(
        source, f"unsupported file type {suffix or '(none)'!r}; expected one of {expected}"
    )


def _read_csv(source: Path, rows: int) -> tuple[pd.DataFrame, int | None]:
    # pandas renames duplicate headers to "a.1" without a word, so the header is read
    # on its own first; one row more than asked for tells whether the file goes on.
    with _open_text(source) as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise TableError(source, "file has no header row")
    _reject_duplicates(source, header)
    # index_col=False: pandas would otherwise take the first column as the index when
    # rows have one field more than the header, shifting every column by one.
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            frame = pd.read_csv(
                source,
                nrows=rows + 1,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                index_col=False,
                encoding="utf-8-sig",
            )
        except pd.errors.ParserWarning as exc:
            raise TableError(
                source, f"rows have more fields than the header ({len(header)} columns)"
            ) from exc
    return frame, None


def _open_text(source: Path) -> IO[str]:
    # utf-8-sig: spreadsheet exports often start with a byte-order mark.
    if source.name.lower().endswith(".gz"):
        return gzip.open(source, "rt", encoding="utf-8-sig", newline="")
    return source.open(encoding="utf-8-sig", newline="")


def _read_parquet(source: Path, rows: int) -> tuple[pd.DataFrame, int | None]:
    with pq.ParquetFile(source) as parquet:
        schema = parquet.schema_arrow
        _reject_duplicates(source, schema.names)
        total = parquet.metadata.num_rows
        batches = list(_first_batches(parquet, rows))
    table = pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()
    return table.slice(0, rows).to_pandas(), total


def _first_batches(parquet: pq.ParquetFile, rows: int) -> Iterator[pa.RecordBatch]:
    seen = 0
    for batch in parquet.iter_batches(batch_size=min(rows, _BATCH_ROWS)):
        yield batch
        seen += batch.num_rows
        if seen >= rows:
            return


def _reject_duplicates(source: Path, names: Sequence[str]) -> None:
    duplicated = [name for name, count in Counter(names).items() if count > 1]
    if duplicated:
        listing = ", ".join(repr(name) for name in duplicated)
        raise TableError(source, f"duplicate column names: {listing}")


def _mark_missing(frame: pd.DataFrame, na_values: Sequence[str]) -> pd.DataFrame:
    # Markers are compared after stripping, so " NA" means the same as "NA"; a
    # whitespace-only cell strips to "" and is always missing.
    markers = {value.strip() for value in na_values} | {""}
    columns = {}
    for name in frame.columns:
        series = frame[name]
        if isinstance(series.dtype, pd.CategoricalDtype):
            blank = [
                c for c in series.cat.categories if isinstance(c, str) and c.strip() in markers
            ]
            columns[name] = series.cat.remove_categories(blank) if blank else series
        elif series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
            columns[name] = series.mask(_is_marker(series, markers))
        else:
            columns[name] = series
    return pd.DataFrame(columns, index=frame.index)


def _is_marker(series: pd.Series, markers: set[str]) -> pd.Series:
    try:
        stripped = series.str.strip()
    except AttributeError:  # an object column without a single string (e.g. dates)
        return pd.Series(False, index=series.index)
    return stripped.isin(markers) & stripped.notna()
