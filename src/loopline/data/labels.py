"""Which raw spelling of a table's label column is the positive class.

``propose`` asks here how the label's two spellings map to 1 and 0: the one named with
``--positive``, none when the column is already 0/1, or a recognised pair such as
yes/no. A label that is not exactly two-valued, or a pair that is not recognised, is a
:class:`TableError` now rather than a failed ingestion later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from loopline.data.sample import TableError

POSITIVE_LABELS = frozenset(
    {"yes", "y", "true", "t", "1", "1.0", "churned", "churn", "left", "lost", "cancelled"}
    | {"canceled", "positive", "pos"}
)
NEGATIVE_LABELS = frozenset(
    {"no", "n", "false", "f", "0", "0.0", "active", "retained", "stayed", "negative", "neg"}
)


@dataclass(frozen=True)
class LabelMapping:
    """The label's two raw spellings (``str`` of the cell as read) and the class each becomes."""

    positive: str
    negative: str

    def values(self) -> dict[str, int]:
        """The mapping from raw spelling to class."""
        return {self.positive: 1, self.negative: 0}


class LabelColumn(Protocol):
    """What the label rules read of a profiled column (``infer`` supplies its profile)."""

    @property
    def name(self) -> str: ...

    @property
    def dtype(self) -> object: ...

    @property
    def counts(self) -> pd.Series: ...

    @property
    def keys(self) -> pd.Series: ...

    @property
    def rows(self) -> int: ...

    @property
    def numbers(self) -> pd.Series | None: ...


def read_label(
    source: Path, p: LabelColumn, positive: str | None
) -> tuple[LabelMapping | None, int, str]:
    """The label's mapping (None when already 0/1), its positive rows, and the reason shown."""
    # Missing labels are allowed: those rows are unlabelled. Spellings are the cells' text
    # as the contract compares them with dataset.label_values: stripped, 1.0 read as "1".
    counts = p.counts.groupby(p.counts.index.map(_as_text)).sum().sort_values(ascending=False)
    spellings = [str(s) for s in counts.index]
    shown = ", ".join(repr(s) for s in spellings[:5])
    if len(spellings) != 2:
        have = f"{len(spellings)} distinct values ({shown})" if spellings else "no values"
        if len(spellings) == 1:
            have = f"only one value ({shown}) in the {p.rows:,} sampled rows"
        raise TableError(source, f"label column {p.name!r} has {have}; it must have exactly two")
    if positive is not None:
        chosen = _matching(positive, spellings)
        if chosen is None:
            raise TableError(
                source, f"--positive {positive!r} is not a value of label {p.name!r} ({shown})"
            )
    elif p.numbers is not None and _zero_one(p, p.numbers):
        ones = int(p.counts[(p.numbers == 1).to_numpy()].sum())
        return None, ones, "label: already 0/1"
    else:
        chosen = _recognised_positive(*spellings)
        if chosen is None:
            raise TableError(
                source,
                f"label column {p.name!r} has values {shown}, not a recognised pair of "
                "positive and negative spellings: pass --positive VALUE",
            )
    mapping = LabelMapping(chosen, next(s for s in spellings if s != chosen))
    reason = f"label: {mapping.positive!r} -> 1, {mapping.negative!r} -> 0"
    return mapping, int(counts[chosen]), reason


def fold(value: str) -> str:
    """A spelling as compared with the known ones: stripped and lower-cased."""
    return value.strip().lower()


def _matching(wanted: str, spellings: list[str]) -> str | None:
    if wanted in spellings:
        return wanted
    folded = [s for s in spellings if fold(s) == fold(wanted)]
    return folded[0] if len(folded) == 1 else None


def _zero_one(p: LabelColumn, numbers: pd.Series) -> bool:
    # Integers 0/1 (or their csv text "0"/"1") need no mapping; "1.0" text and bools do.
    if not set(numbers) <= {0.0, 1.0}:
        return False
    return pd.api.types.is_numeric_dtype(p.dtype) or set(p.keys.map(str)) <= {"0", "1"}


def _recognised_positive(a: str, b: str) -> str | None:
    # Both spellings must be recognised, one of each side: a wrong guess would silently
    # invert the model ("1"/"2" or "Yes"/"Unknown" need --positive).
    for yes, no in ((a, b), (b, a)):
        if fold(yes) in POSITIVE_LABELS and fold(no) in NEGATIVE_LABELS:
            return yes
    return None


def cell_text(value: object) -> str | None:
    """A cell as the contract compares it: None when missing, 1.0 read as "1".

    The contract's categories and label spellings use this too, so what init proposes is
    what ingestion accepts.
    """
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_text(value: object) -> str:
    return (cell_text(value) or "").strip()
