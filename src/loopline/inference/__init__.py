"""Serving-time scoring: the fitted pipeline lowered to plain numpy, or sklearn itself.

``pipeline.predict_proba(DataFrame)`` spends most of a single-row call on validation and
DataFrame bookkeeping. :func:`compile_pipeline` reads the fitted objects once and replays
their arithmetic with numpy (:mod:`.prep` for the ColumnTransformer, :mod:`.trees` and
:mod:`.models` for the estimator), so it is cheap to build in every serving worker.
:func:`serving_scorer` uses it only when it agrees with sklearn on the holdout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from loopline.inference.errors import NotCompilable
from loopline.inference.models import Model, compile_estimator
from loopline.inference.prep import Prep, compile_prep

__all__ = [
    "CompiledScorer",
    "NotCompilable",
    "Scorer",
    "SklearnScorer",
    "compile_pipeline",
    "serving_scorer",
]


class Scorer(Protocol):
    """P(class 1) for rows given as columns (Feast's ``to_dict()``, or a DataFrame)."""

    inputs: list[str]
    engine: str

    def positive_proba(self, columns: Mapping[str, Sequence[Any]]) -> np.ndarray: ...


@dataclass
class CompiledScorer:
    """The pipeline as numpy. Nothing changes it after it is built, so threads may share it."""

    inputs: list[str]
    prep: Prep
    model: Model
    engine: str = "numpy"

    def positive_proba(self, columns: Mapping[str, Sequence[Any]]) -> np.ndarray:
        """float64 P(class 1), one per row, in order; extra columns are ignored."""
        X = self.prep.transform(columns)
        if len(X) == 0:
            return np.empty(0, dtype=np.float64)
        return self.model.positive_proba(X)


class SklearnScorer:
    """The pipeline itself behind the same interface: a DataFrame of its inputs per call."""

    engine = "sklearn"

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        names = getattr(pipeline, "feature_names_in_", None)
        if names is None:
            raise ValueError("the pipeline was not fitted on a DataFrame: its inputs are unnamed")
        self.inputs: list[str] = [str(n) for n in names]

    def positive_proba(self, columns: Mapping[str, Sequence[Any]]) -> np.ndarray:
        """float64 P(class 1), one per row, in order; extra columns are ignored."""
        if isinstance(columns, pd.DataFrame):
            frame = columns[self.inputs]
        else:
            frame = pd.DataFrame({name: columns[name] for name in self.inputs})
        return np.asarray(self.pipeline.predict_proba(frame)[:, 1], dtype=np.float64)


def compile_pipeline(pipeline: Pipeline) -> CompiledScorer:
    """A numpy scorer equal to ``pipeline.predict_proba(...)[:, 1]``.

    Raises:
        NotCompilable: a step has no compiled path; the message names it.
    """
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise NotCompilable("only a Pipeline of a ColumnTransformer and an estimator compiles")
    (_, prep), (_, model) = pipeline.steps
    compiled_prep = compile_prep(prep)
    return CompiledScorer(
        compiled_prep.inputs, compiled_prep, compile_estimator(model, compiled_prep.width)
    )


def serving_scorer(
    pipeline: Pipeline, holdout: pd.DataFrame | None = None, tolerance: float = 1e-6
) -> tuple[Scorer, dict[str, Any]]:
    """The compiled scorer if it compiles and matches sklearn on ``holdout``; else sklearn's.

    Returns the scorer and metadata for the model store: the engine and the parity measured,
    or why the compiled path is not used. Never raises for a model it cannot compile.
    """
    try:
        compiled = compile_pipeline(pipeline)
    except NotCompilable as exc:
        return SklearnScorer(pipeline), {"engine": "sklearn", "engine_reason": str(exc)}
    if holdout is None:
        return compiled, {"engine": "numpy"}
    expected = SklearnScorer(pipeline).positive_proba(holdout)
    try:
        got = compiled.positive_proba(holdout)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        reason = f"the compiled path failed on the holdout: {exc}"
        return SklearnScorer(pipeline), {"engine": "sklearn", "engine_reason": reason}
    diff = np.abs(got - expected)
    worst = float(diff.max()) if len(diff) else 0.0
    parity = {"parity_max_abs_diff": worst, "parity_rows": len(diff)}
    if not worst <= tolerance:
        row = int(np.argmax(np.where(np.isnan(diff), np.inf, diff)))
        reason = (
            f"the compiled path differs from sklearn by {worst:.3g} (row {row}) > {tolerance:g}"
        )
        return SklearnScorer(pipeline), {"engine": "sklearn", "engine_reason": reason, **parity}
    return compiled, {"engine": "numpy", **parity}
