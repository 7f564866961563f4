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
    candidate: Candidate, numeric: list[str], categorical: list[str], seed: int
) -> Pipeline:
    """Preprocessing and estimator in one object, so serving applies exactly what training did."""
    prep = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    return Pipeline([("prep", prep), ("model", _estimator(candidate, seed))])
