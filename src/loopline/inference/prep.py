"""The fitted ColumnTransformer as plain numpy: imputer, scaler and one-hot encoder.

Each transform reproduces the fitted sklearn object's arithmetic operation for operation
(fill, subtract, divide in float64), so its output equals ``ColumnTransformer.transform``
bit for bit; only the bookkeeping (validation, DataFrame handling, sparse matrices) is gone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from loopline.inference.errors import NotCompilable

Columns = Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class NumericBlock:
    """SimpleImputer, then any StandardScalers: float64 in, float64 out."""

    columns: list[str]
    out: slice
    keep: np.ndarray  # the columns the imputer keeps (it drops those it never saw a value of)
    fill: np.ndarray
    scalers: tuple[tuple[np.ndarray | None, np.ndarray | None], ...]  # (mean, scale) each
    # add_indicator: a was-missing flag for each of these columns, after the filled ones.
    flagged: np.ndarray | None = None

    def write(self, columns: Columns, n: int, into: np.ndarray) -> None:
        raw = np.array([_values(columns, c, n) for c in self.columns], dtype=np.float64).T
        if np.isinf(raw).any():
            # SimpleImputer refuses infinity (it only allows NaN); so does this.
            raise ValueError(f"numeric inputs {self.columns} contain infinity")
        x = raw[:, self.keep]
        x = np.where(np.isnan(x), self.fill, x)
        if self.flagged is not None:
            x = np.hstack([x, np.isnan(raw[:, self.flagged]).astype(np.float64)])
        for mean, scale in self.scalers:
            if mean is not None:
                x = x - mean
            if scale is not None:
                x = x / scale
        into[:, self.out] = x


@dataclass(frozen=True)
class CategoricalBlock:
    """OneHotEncoder(handle_unknown="ignore"): unknown categories are all zeros."""

    columns: list[str]
    out: slice
    tables: tuple[dict[Any, int], ...]  # category -> output column, within the block
    nan_codes: tuple[int | None, ...]  # the output column of a NaN category, if fitted
    # SimpleImputer(missing_values=None) before the encoder: what None becomes, per column.
    fills: tuple[Any, ...] | None = None

    def write(self, columns: Columns, n: int, into: np.ndarray) -> None:
        width = into.shape[1]
        flat = into.reshape(-1)
        rows = np.arange(n) * width + self.out.start
        for position, (name, table, nan_code) in enumerate(
            zip(self.columns, self.tables, self.nan_codes, strict=True)
        ):
            values = _values(columns, name, n)
            values = values.tolist() if hasattr(values, "tolist") else values
            if self.fills is not None:
                fill = self.fills[position]
                values = [fill if v is None else v for v in values]
            codes = np.fromiter((table.get(v, -1) for v in values), dtype=np.intp, count=n)
            if nan_code is not None:
                # NaN is a category of its own (as in sklearn), but NaN != NaN defeats the dict.
                for i in np.flatnonzero(codes < 0):
                    if isinstance(values[i], float) and math.isnan(values[i]):
                        codes[i] = nan_code
            known = codes >= 0
            flat[rows[known] + codes[known]] = 1.0


@dataclass(frozen=True)
class Prep:
    """The compiled ColumnTransformer: input columns in, the model's dense float64 matrix out."""

    inputs: list[str]
    width: int
    blocks: tuple[NumericBlock | CategoricalBlock, ...]

    def transform(self, columns: Columns) -> np.ndarray:
        n = _rows(columns, self.inputs)
        out = np.zeros((n, self.width), dtype=np.float64)
        for block in self.blocks:
            block.write(columns, n, out)
        return out


def compile_prep(prep: Any) -> Prep:
    """A :class:`Prep` equal to this fitted ColumnTransformer; NotCompilable says what isn't."""
    if not isinstance(prep, ColumnTransformer):
        raise NotCompilable(f"preprocessing {type(prep).__name__} has no compiled path")
    blocks: list[NumericBlock | CategoricalBlock] = []
    inputs: list[str] = []
    for name, transformer, cols in prep.transformers_:
        out = prep.output_indices_[name]
        if transformer == "drop" or out.start == out.stop:
            continue
        if not (isinstance(cols, list) and all(isinstance(c, str) for c in cols)):
            raise NotCompilable(f"transformer {name!r} selects columns by {cols!r}, not by name")
        if transformer == "passthrough":
            raise NotCompilable(f"transformer {name!r} passes columns through uncompiled")
        if isinstance(transformer, OneHotEncoder):
            blocks.append(_categorical(name, transformer, cols, out))
        elif isinstance(transformer, Pipeline) and isinstance(transformer[-1], OneHotEncoder):
            blocks.append(_imputed_categorical(name, transformer, cols, out))
        else:
            blocks.append(_numeric(name, transformer, cols, out))
        inputs += [c for c in cols if c not in inputs]
    return Prep(
        inputs=inputs, width=sum(b.out.stop - b.out.start for b in blocks), blocks=tuple(blocks)
    )


def _numeric(name: str, transformer: Any, cols: list[str], out: slice) -> NumericBlock:
    steps = (
        [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
    )
    imputer, scalers = steps[0], steps[1:]
    if not isinstance(imputer, SimpleImputer):
        raise NotCompilable(f"transformer {name!r} does not start with a SimpleImputer")
    missing = imputer.missing_values
    if not (isinstance(missing, float) and math.isnan(missing)):
        raise NotCompilable(f"transformer {name!r}: only SimpleImputer(missing_values=nan)")
    flagged = None
    if imputer.add_indicator:
        indicator = imputer.indicator_
        if indicator is not None and (
            indicator.features != "missing-only" or indicator.sparse not in ("auto", False)
        ):
            raise NotCompilable(f"transformer {name!r}: only a dense missing-only indicator")
        # None: no column was missing in training, so sklearn adds no flag columns at all.
        flagged = np.asarray(indicator.features_ if indicator is not None else [], dtype=np.intp)
    stats = np.asarray(imputer.statistics_, dtype=np.float64)
    keep = np.ones(len(stats), bool) if imputer.keep_empty_features else ~np.isnan(stats)
    compiled = []
    for scaler in scalers:
        if not isinstance(scaler, StandardScaler):
            raise NotCompilable(
                f"transformer {name!r}: step {type(scaler).__name__} is not compiled"
            )
        compiled.append((scaler.mean_ if scaler.with_mean else None, scaler.scale_))
    return NumericBlock(cols, out, np.flatnonzero(keep), stats[keep], tuple(compiled), flagged)


def _categorical(
    name: str, encoder: OneHotEncoder, cols: list[str], out: slice
) -> CategoricalBlock:
    if encoder.handle_unknown != "ignore" or encoder.drop is not None:
        raise NotCompilable(f"transformer {name!r}: only OneHotEncoder(handle_unknown='ignore')")
    if encoder.min_frequency is not None or encoder.max_categories is not None:
        raise NotCompilable(f"transformer {name!r}: infrequent categories are not compiled")
    tables, nan_codes, offset = [], [], 0
    for categories in encoder.categories_:
        table: dict[Any, int] = {}
        nan_code = None
        for i, category in enumerate(categories.tolist()):
            if isinstance(category, float) and math.isnan(category):
                nan_code = offset + i
            else:
                table[category] = offset + i
        if nan_code is not None:
            table[np.nan] = nan_code  # the common case: the very np.nan object pandas uses
        tables.append(table)
        nan_codes.append(nan_code)
        offset += len(categories)
    if offset != out.stop - out.start:
        raise NotCompilable(
            f"transformer {name!r} writes {out.stop - out.start} columns, not {offset}"
        )
    return CategoricalBlock(cols, out, tuple(tables), tuple(nan_codes))


def _imputed_categorical(
    name: str, pipeline: Pipeline, cols: list[str], out: slice
) -> CategoricalBlock:
    steps = [s for _, s in pipeline.steps]
    imputer = steps[0]
    if len(steps) != 2 or not isinstance(imputer, SimpleImputer):
        raise NotCompilable(f"transformer {name!r}: only SimpleImputer then OneHotEncoder")
    if imputer.missing_values is not None or imputer.add_indicator:
        raise NotCompilable(f"transformer {name!r}: only SimpleImputer(missing_values=None)")
    if len(imputer.statistics_) != len(cols):
        raise NotCompilable(f"transformer {name!r}: the imputer dropped a column")
    block = _categorical(name, steps[1], cols, out)
    return CategoricalBlock(
        block.columns, block.out, block.tables, block.nan_codes, tuple(imputer.statistics_)
    )


def _values(columns: Columns, name: str, n: int | None = None) -> Any:
    try:
        values = columns[name]
    except KeyError:
        raise KeyError(f"input column {name!r} is missing") from None
    if n is not None and len(values) != n:
        raise ValueError(f"input column {name!r} has {len(values)} values, expected {n}")
    return values


def _rows(columns: Columns, inputs: list[str]) -> int:
    return len(_values(columns, inputs[0])) if inputs else 0
