"""A proposed dataset schema for a user's table, inferred from a sample of it.

``loopline init`` shows this proposal as a table for the user to confirm: each column's
role (entity, timestamp, label, feature, personal data, ignored), its kind, and a short
reason. Everything here is a guess from the first rows; the thresholds are named below
so the rules can be read and changed in one place. Problems that would make every batch
fail at ingestion (a text entity, a three-valued label) are errors now, not later.
Label spellings are read in ``labels``; the table shown is drawn by ``schema_table``.
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from loopline.data import pii
from loopline.data.labels import LabelMapping, fold, read_label  # LabelMapping: re-exported
from loopline.data.pii import DATE_LIKE
from loopline.data.sample import Sample, TableError

Role = Literal["entity", "timestamp", "label", "feature", "pii", "ignore"]
Kind = Literal["numeric", "categorical", "boolean", "timestamp", "identifier", "text"]

# Integers with at most this many distinct values are codes (0/1 flags, ratings, plan
# tiers), not quantities: categorical. With more they are numeric.
CATEGORICAL_MAX_INTEGERS = 10
# Strings with more distinct values than this are free text, not categories.
CATEGORICAL_MAX_LEVELS = 50
# A column is an identifier when nearly every value is distinct; below the minimum
# count of values, uniqueness says nothing (a 20-row sample of tenure is unique too).
IDENTIFIER_UNIQUE_SHARE = 0.95
IDENTIFIER_MIN_VALUES = 30
# More than this share of missing cells: too little to learn from or impute.
MOSTLY_MISSING_SHARE = 0.5
# Share of values that must parse as dates for a column to count as dates.
TIMESTAMP_SHARE = 0.95
# A column this close to all-numbers is a number column with stray markers ("n/a").
NEAR_NUMERIC_SHARE = 0.95
# Rules on the content of values (personal data, dates, codes) look at this many distinct
# values, most frequent first: enough to judge, cheap for a column of unique values.
CONTENT_SAMPLE = 1000
# Per-segment checks need a few well-filled segments, not many thin ones.
SEGMENT_MAX_LEVELS = 10
SEGMENT_MIN_ROWS = 50
EXAMPLE_CHARS = 20

# Two-valued feature spellings read as booleans (0/1 integers stay categorical codes).
_BOOLEAN_PAIRS = {frozenset(p) for p in (("yes", "no"), ("y", "n"), ("true", "false"), ("t", "f"))}

# Codes such as "AC-000123" or "7590-VHVEG": letters and digits in separated runs.
_CODE = re.compile(r"(?=.*\d)[A-Za-z0-9]+(?:[-_/.:][A-Za-z0-9]+)*")


@dataclass(frozen=True)
class ColumnGuess:
    """What one column of the sample looks like and what it should become."""

    name: str
    role: Role
    kind: Kind
    missing: int
    distinct: int
    examples: tuple[str, ...]
    reason: str
    missing_policy: Literal["reject", "impute", "allow"] | None
    strategy: Literal["median", "most_frequent", "constant"] | None


@dataclass(frozen=True)
class Proposal:
    """A proposed dataset schema, for the user to confirm."""

    source: Path
    rows: int
    truncated: bool
    entity: str
    label: str
    timestamp: str | None
    label_mapping: LabelMapping | None
    labelled: int
    positives: int
    columns: tuple[ColumnGuess, ...]
    segment_column: str | None

    @property
    def features(self) -> dict[str, str]:
        """Feature columns in file order with their kind; booleans are categorical."""
        return {
            c.name: "numeric" if c.kind == "numeric" else "categorical"
            for c in self.columns
            if c.role == "feature"
        }

    @property
    def pii(self) -> list[str]:
        """Columns holding personal data."""
        return [c.name for c in self.columns if c.role == "pii"]


@dataclass(frozen=True)
class _Profile:
    # Rules look at distinct values with their row counts, not at every row: a sample of
    # 50,000 rows usually has a few hundred distinct values per column.
    name: str
    dtype: object  # of the column as read
    counts: pd.Series  # rows per distinct non-missing value, most frequent first
    keys: pd.Series  # the distinct values, in the same order
    rows: int
    present: int  # non-missing cells
    numbers: pd.Series | None  # each distinct value as a float, when all are numbers
    number_share: float  # share of non-missing cells that parse as numbers

    @property
    def distinct(self) -> int:
        return len(self.keys)

    @property
    def missing(self) -> int:
        return self.rows - self.present


def propose(
    sample: Sample,
    entity: str,
    label: str,
    timestamp: str | None = None,
    positive: str | None = None,
) -> Proposal:
    """Propose roles and kinds for every column; raise :class:`TableError` on a blocker."""
    source = sample.source
    _require_columns(sample, {"entity": entity, "label": label, "timestamp": timestamp})
    profiles = {str(name): _profile(str(name), sample.frame[name]) for name in sample.frame}
    given = {entity: _entity(source, profiles[entity])}
    mapping, positives, reason = read_label(source, profiles[label], positive)
    given[label] = _given(profiles[label], "label", "boolean", reason)
    if timestamp is not None:
        given[timestamp] = _timestamp(source, profiles[timestamp])
    columns = tuple(given.get(name) or _guess(p) for name, p in profiles.items())
    return Proposal(
        source=source,
        rows=len(sample.frame),
        truncated=sample.truncated,
        entity=entity,
        label=label,
        timestamp=timestamp,
        label_mapping=mapping,
        labelled=profiles[label].present,
        positives=positives,
        columns=columns,
        segment_column=_segment(columns, profiles),
    )


def _require_columns(sample: Sample, chosen: dict[str, str | None]) -> None:
    columns = [str(c) for c in sample.frame.columns]
    listing = ", ".join(columns[:30]) + (f" and {len(columns) - 30} more" * (len(columns) > 30))
    for role, name in chosen.items():
        if name is not None and name not in columns:
            raise TableError(
                sample.source,
                f"no {role} column {name!r}{_did_you_mean(name, columns)}; "
                f"the file's columns are: {listing}",
            )
    names = [n for n in chosen.values() if n is not None]
    if len(set(names)) < len(names):
        raise TableError(sample.source, "entity, label and timestamp must be different columns")


def _did_you_mean(name: str, columns: Sequence[str]) -> str:
    same_case = [c for c in columns if c.lower() == name.lower()]
    close = same_case or difflib.get_close_matches(name, columns, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _profile(name: str, series: pd.Series) -> _Profile:
    values = series.dropna()
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    try:
        counts = values.value_counts()
    except TypeError:  # unhashable cells (parquet lists): compare their text
        counts = values.astype(str).value_counts()
    keys = pd.Series(counts.index)
    parsed = _parse_numbers(keys)
    present = len(values)
    share = float(counts[parsed.notna().to_numpy()].sum() / present) if present else 0.0
    numbers = parsed if present and share == 1.0 else None
    return _Profile(name, values.dtype, counts, keys, len(series), present, numbers, share)


def _parse_numbers(values: pd.Series) -> pd.Series:
    # Booleans, dates and durations convert to numbers in pandas, but are not quantities.
    dtype = values.dtype
    if dtype.kind in "bmM":  # bools, datetimes, durations
        return pd.Series(np.nan, index=values.index)
    if pd.api.types.is_numeric_dtype(dtype):
        return values.astype(float)
    text = values.astype(str).str.strip()
    # Most text columns fail on their first values: skip parsing the rest of them.
    head = pd.to_numeric(text.head(CONTENT_SAMPLE), errors="coerce")
    if head.notna().mean() < NEAR_NUMERIC_SHARE:
        return pd.Series(np.nan, index=values.index)
    return pd.to_numeric(text, errors="coerce").astype(float)


def _parse_dates(values: pd.Series) -> pd.Series:
    # What the batch contract accepts (format="mixed") passes here. Values in the format of
    # the first are parsed at C speed; only the rest take the slow value-by-value parser.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        parsed = pd.to_datetime(values, errors="coerce", utc=True)
        rest = (parsed.isna() & values.notna()).to_numpy()
        if rest.any():
            parsed[rest] = pd.to_datetime(values[rest], errors="coerce", utc=True, format="mixed")
    return parsed


def _entity(source: Path, p: _Profile) -> ColumnGuess:
    # Loopline's feature store keys are int64; several rows per entity are fine.
    if p.missing:
        raise TableError(source, f"entity column {p.name!r} has {p.missing:,} missing values")
    numbers = p.numbers
    if numbers is None or not _integral(numbers):
        parsed = _parse_numbers(p.keys.astype(str))
        bad = p.keys[(parsed.isna() | (parsed != np.floor(parsed))).to_numpy()].iloc[0]
        what = "text" if parsed.isna().any() else "non-integer numbers"
        raise TableError(
            source,
            f"entity column {p.name!r} holds {what}, not integers (e.g. {str(bad)!r}); Loopline's "
            "feature store keys are int64 today: add an integer id column and pass it as --entity",
        )
    if numbers.min() < 0 or numbers.max() >= 2**63:
        raise TableError(source, f"entity column {p.name!r} must hold non-negative int64 ids")
    return _given(p, "entity", "identifier", f"{p.distinct:,} ids in {p.rows:,} rows")


def _timestamp(source: Path, p: _Profile) -> ColumnGuess:
    # The contract rejects rows without a readable timestamp, so the sample must have none.
    if p.missing:
        raise TableError(source, f"timestamp column {p.name!r} has {p.missing:,} missing values")
    if p.numbers is not None:
        raise TableError(
            source,
            f"timestamp column {p.name!r} holds numbers (e.g. {str(p.keys.iloc[0])!r}), not "
            "dates; write dates like 2024-01-31 or 2024-01-31T09:30:00",
        )
    keys = p.keys
    parsed = keys if pd.api.types.is_datetime64_any_dtype(keys.dtype) else _parse_dates(keys)
    bad = parsed.isna().to_numpy()
    if bad.any():
        examples = ", ".join(repr(str(v)) for v in keys[bad].head(3))
        raise TableError(
            source,
            f"timestamp column {p.name!r}: {int(p.counts[bad].sum()):,} of {p.rows:,} sampled "
            f"values do not parse as dates or datetimes (e.g. {examples})",
        )
    span = f"{parsed.min():%Y-%m-%d} to {parsed.max():%Y-%m-%d}"
    return _given(p, "timestamp", "timestamp", f"event time: {span}")


def _given(p: _Profile, role: Role, kind: Kind, reason: str) -> ColumnGuess:
    return ColumnGuess(p.name, role, kind, p.missing, p.distinct, _examples(p), reason, None, None)


def _guess(p: _Profile) -> ColumnGuess:
    # A feature with gaps in the sample will have gaps in batches too, so it is imputed;
    # one without gaps rejects batches that have them.
    role, kind, reason = _classify(p)
    policy: Literal["reject", "impute"] | None = None
    strategy: Literal["median", "most_frequent"] | None = None
    if role == "feature":
        policy = "impute" if p.missing else "reject"
        if p.missing:
            strategy = "median" if kind == "numeric" else "most_frequent"
            reason += f"; {p.missing:,} missing: impute {strategy.replace('_', ' ')}"
    examples = _examples(p, masked=role == "pii")
    return ColumnGuess(
        p.name, role, kind, p.missing, p.distinct, examples, reason, policy, strategy
    )


def _classify(p: _Profile) -> tuple[Role, Kind, str]:
    # Personal data wins over every other verdict: it must be declared even when unused.
    if not p.distinct:
        return ("pii" if pii.by_name(p.name) else "ignore"), "text", "every value is missing"
    kind, reason, usable = _kind(p)
    personal = _pii_reason(p, kind)
    if personal:
        return "pii", kind, personal
    if p.distinct == 1:
        every = "every non-missing row" if p.missing else "every row"
        return "ignore", kind, f"constant: {every} is {_short(str(p.keys.iloc[0]))!r}"
    if p.missing > MOSTLY_MISSING_SHARE * p.rows:
        return "ignore", kind, f"mostly missing ({p.missing / p.rows:.0%})"
    return ("feature" if usable else "ignore"), kind, reason


def _kind(p: _Profile) -> tuple[Kind, str, bool]:
    """The column's kind, why, and whether a model can use it as it is."""
    if pd.api.types.is_bool_dtype(p.dtype):
        return "boolean", "true/false values", True
    dates = "dates: not a feature (pass --timestamp to use them as event time)"
    if _holds_dates(p):
        return "timestamp", dates, False
    if p.numbers is not None:
        return _number_kind(p, p.numbers)
    text = p.keys.astype(str).str.strip()
    if p.number_share >= NEAR_NUMERIC_SHARE:
        stray = ", ".join(repr(_short(s)) for s in text[_parse_numbers(text).isna()].head(3))
        return "numeric", f"numbers except {stray}: mark those as missing values", False
    if p.distinct == 2 and frozenset(fold(s) for s in text) in _BOOLEAN_PAIRS:
        return "boolean", f"two values: {'/'.join(sorted(text))}", True
    if _share(text, DATE_LIKE.match) >= TIMESTAMP_SHARE and _date_share(p) >= TIMESTAMP_SHARE:
        return "timestamp", dates, False
    if _nearly_unique(p) and _share(text, _CODE.fullmatch) >= IDENTIFIER_UNIQUE_SHARE:
        return "identifier", "unique per row: likely an identifier", False
    few = p.distinct <= CATEGORICAL_MAX_INTEGERS or p.present >= 2 * p.distinct
    if p.distinct <= CATEGORICAL_MAX_LEVELS and few:
        return "categorical", f"{p.distinct} levels", True
    return "text", f"free text ({p.distinct:,} distinct values)", False


def _holds_dates(p: _Profile) -> bool:
    # Parquet date columns arrive as objects holding datetime.date values.
    if pd.api.types.is_datetime64_any_dtype(p.dtype):
        return True
    return p.dtype == object and pd.api.types.infer_dtype(p.keys) in ("date", "datetime")


def _date_share(p: _Profile) -> float:
    # Weighted by rows, among the distinct values examined.
    counts = p.counts.head(CONTENT_SAMPLE)
    parsed = _parse_dates(p.keys.head(CONTENT_SAMPLE).astype(str).str.strip())
    return float(counts[parsed.notna().to_numpy()].sum() / counts.sum())


def _number_kind(p: _Profile, numbers: pd.Series) -> tuple[Kind, str, bool]:
    if _integral(numbers):
        if p.distinct <= CATEGORICAL_MAX_INTEGERS:
            return "categorical", f"{p.distinct} distinct integers: categorical", True
        if _nearly_unique(p):
            return "identifier", "unique per row: likely an identifier", False
    return "numeric", f"numbers {numbers.min():,.6g} to {numbers.max():,.6g}", True


def _integral(numbers: pd.Series) -> bool:
    return bool(np.isfinite(numbers).all() and (numbers == np.floor(numbers)).all())


def _nearly_unique(p: _Profile) -> bool:
    return p.present >= IDENTIFIER_MIN_VALUES and p.distinct >= IDENTIFIER_UNIQUE_SHARE * p.present


def _pii_reason(p: _Profile, kind: Kind) -> str | None:
    if pii.by_name(p.name):
        return "name suggests personal data"
    # Numbers, booleans and dates are never judged by content: digits alone cannot
    # tell a phone number from an amount.
    if kind in ("numeric", "boolean", "timestamp") or p.numbers is not None:
        return None
    text = p.keys.head(CONTENT_SAMPLE).astype(str).str.strip()
    # Capitalised word pairs are also categories ("Fiber Optic"); people are many.
    many = p.distinct > CATEGORICAL_MAX_LEVELS or p.distinct >= 0.5 * p.present
    what = pii.by_content(text, many_values=many)
    return f"looks like {what}" if what else None


def _share(text: pd.Series, check: Callable[[str], object]) -> float:
    # Judged on (at most CONTENT_SAMPLE of) the distinct values, most frequent first.
    head = text.head(CONTENT_SAMPLE)
    return sum(bool(check(v)) for v in head) / len(head) if len(head) else 0.0


def _segment(columns: tuple[ColumnGuess, ...], profiles: dict[str, _Profile]) -> str | None:
    # Named categories ("Two year") read better in a per-segment report than 0/1 codes or
    # booleans, so they are preferred; then the best-filled smallest segment wins.
    best: tuple[bool, int, str] | None = None
    for c in columns:
        profile = profiles[c.name]
        if c.role != "feature" or c.kind not in ("categorical", "boolean"):
            continue
        smallest = int(profile.counts.min())
        named = c.kind == "categorical" and profile.numbers is None
        fits = 2 <= c.distinct <= SEGMENT_MAX_LEVELS and smallest >= SEGMENT_MIN_ROWS
        if fits and (best is None or (named, smallest) > best[:2]):
            best = (named, smallest, c.name)
    return best[2] if best else None


def _examples(p: _Profile, masked: bool = False) -> tuple[str, ...]:
    # Personal data is masked so the proposal can be pasted into a ticket or a log.
    top = [str(v) for v in p.counts.index[:3]]
    return tuple(_short(pii.mask(v) if masked else v) for v in top)


def _short(value: str) -> str:
    return value if len(value) <= EXAMPLE_CHARS else value[: EXAMPLE_CHARS - 1] + "…"
