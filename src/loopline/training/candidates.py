"""The candidate estimators and their grids, as sklearn pipelines."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from loopline.config import FeatureSpec


@dataclass(frozen=True)
class Candidate:
    """One estimator with one setting of its grid."""

    estimator: str
    params: dict[str, Any]

    @property
    def name(self) -> str:
        settings = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.estimator}({settings})"


def expand(grids: Mapping[Any, Mapping[str, list[Any]]]) -> list[Candidate]:
    """Every combination of every estimator's grid, in a stable order."""
    out = []
    for estimator, grid in grids.items():
        keys = sorted(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            out.append(Candidate(estimator, dict(zip(keys, values, strict=True))))
    return out


def _estimator(candidate: Candidate, seed: int) -> Any:
    p = candidate.params
    if candidate.estimator == "logistic_regression":
        return LogisticRegression(max_iter=2000, **p)
    if candidate.estimator == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(random_state=seed, **p)
    if candidate.estimator == "random_forest":
        # min_samples_leaf keeps the forest's probabilities smooth and its files small.
        return RandomForestClassifier(random_state=seed, n_jobs=1, min_samples_leaf=5, **p)
    raise ValueError(f"unknown estimator {candidate.estimator!r}")


def build_pipeline(
    candidate: Candidate,
    numeric: list[str],
    categorical: list[str],
    seed: int,
    *,
    specs: Mapping[str, FeatureSpec] | None = None,
) -> Pipeline:
    """Preprocessing and estimator in one object, so serving applies exactly what training did.

    ``specs`` (``dataset.features``) say how each column's missing values are handled; every
    imputer is fitted on the training rows only. Numbers without a setting (derived ones, or
    ``missing: reject``) still get the median: a stranger's features can be missing at serving.
    """
    specs = specs or {}
    groups: dict[tuple[Any, ...], list[str]] = {}
    for column in numeric:
        groups.setdefault(_numeric_key(specs.get(column)), []).append(column)
    for column in categorical:
        groups.setdefault(_categorical_key(specs.get(column)), []).append(column)
    transformers = [(_group_name(key), _transformer(key), cols) for key, cols in groups.items()]
    prep = ColumnTransformer(transformers)
    return Pipeline([("prep", prep), ("model", _estimator(candidate, seed))])


def _numeric_key(spec: FeatureSpec | None) -> tuple[Any, ...]:
    if spec is not None and spec.missing == "allow":
        return ("numeric", "median", None, True)  # filled, and flagged as was-missing
    strategy = (spec.imputation if spec else None) or "median"
    return ("numeric", strategy, spec.fill_value if spec else None, False)


def _categorical_key(spec: FeatureSpec | None) -> tuple[Any, ...]:
    strategy = spec.imputation if spec else None
    # Without imputation a missing category (None) is a category of its own.
    return ("categorical", strategy, spec.fill_value if spec else None, False)


def _group_name(key: tuple[Any, ...]) -> str:
    kind, strategy, fill, indicator = key
    default = strategy in (None, "median") and not indicator
    if kind == "numeric" and default or kind == "categorical" and strategy is None:
        return kind  # the names every model before per-column settings had
    suffix = "_".join(str(part) for part in (strategy, fill) if part is not None)
    return f"{kind}_{suffix}" + ("_flagged" if indicator else "")


def _transformer(key: tuple[Any, ...]) -> Any:
    kind, strategy, fill, indicator = key
    if kind == "numeric":
        imputer = SimpleImputer(strategy=strategy, fill_value=fill, add_indicator=indicator)
        return make_pipeline(imputer, StandardScaler())
    encoder = OneHotEncoder(handle_unknown="ignore")
    if strategy is None:
        return encoder
    # Missing categories arrive as None (from the contract, parquet and Feast alike).
    return make_pipeline(
        SimpleImputer(missing_values=None, strategy=strategy, fill_value=fill), encoder
    )
