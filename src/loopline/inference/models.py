"""The fitted estimator as numpy: which families have a compiled path, and the linear one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.special import expit
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from loopline.inference.errors import NotCompilable
from loopline.inference.trees import compile_boosting, compile_forest


class Model(Protocol):
    def positive_proba(self, X: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class LinearModel:
    """Binary LogisticRegression: expit of the decision function."""

    coef: np.ndarray  # (n_features, 1), as sklearn multiplies
    intercept: np.ndarray

    def positive_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(expit((X @ self.coef + self.intercept).reshape(-1)), dtype=np.float64)


def compile_estimator(model: Any, n_features: int) -> Model:
    """The compiled twin of a fitted binary classifier reading ``n_features`` columns."""
    name = type(model).__name__
    classes = getattr(model, "classes_", None)
    if classes is None or len(classes) != 2:
        raise NotCompilable(f"estimator {name} is not a fitted binary classifier")
    if getattr(model, "n_features_in_", n_features) != n_features:
        raise NotCompilable(
            f"estimator {name} reads {model.n_features_in_} columns, not {n_features}"
        )
    if isinstance(model, LogisticRegression):
        return LinearModel(np.asarray(model.coef_, np.float64).T, np.asarray(model.intercept_))
    if isinstance(model, RandomForestClassifier | ExtraTreesClassifier | DecisionTreeClassifier):
        return compile_forest(model)
    if isinstance(model, HistGradientBoostingClassifier):
        return compile_boosting(model)
    raise NotCompilable(f"estimator {name} has no compiled path")
