"""Drift and live quality of a window of traffic against a model's reference data.

Per-column drift uses Evidently's statistical tests, picked the way its ``ValueDrift``
metric (and so ``DataDriftPreset``) picks them: with more than 1,000 reference rows,
normed Wasserstein distance for numeric columns and Jensen-Shannon distance for
categorical ones and for numeric columns with at most 5 distinct values, both drifting at
0.1; with fewer, K-S, chi-squared or a z-test at a p-value of 0.05. The tests are called
directly: three quarters of a ``Report``'s cost is drawing its plotly widgets, so the
``Report`` (the same metrics on the same sampled rows) runs only when its HTML and JSON
are wanted.

Evidently is imported inside the functions that use it: its import takes 6-20 s.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from loopline.monitoring.prior import LABEL_RATE, MEAN_SCORE, MeanShift, mean_shift

MAX_ROWS = 50_000
REPORT_HTML = "drift_report.html"
REPORT_JSON = "drift_report.json"
# The method named for a column that has no values on one side: drift cannot be scored,
# and a feature that vanished (or was never there) has certainly changed, so it counts as
# drifted.
NO_VALUES = "no values"

Kind = Literal["numeric", "categorical"]
FeatureScore = dict[str, float | str | bool | None]


@dataclass(frozen=True)
class WindowResult:
    """A window compared with the reference; every field is JSON-able (see :meth:`to_dict`).

    ``feature_scores`` maps each feature to ``{score, method, threshold, drifted}``;
    ``drifted_features`` counts the drifted ones (:attr:`drifted` names them).
    ``prediction_drift`` is the score column's drift score, None when the reference has no
    scores. ``accuracy`` and ``roc_auc`` use the window's rows with a true label.
    ``label_rate`` and ``mean_score`` compare the positive rate of labelled rows and the
    mean score with the reference's (see :mod:`loopline.monitoring.prior`); None when a
    side lacks the column.
    """

    rows: int
    sampled_rows: int
    reference_rows: int
    drift_share: float
    drifted_features: int
    feature_scores: dict[str, FeatureScore]
    prediction_drift: float | None
    prediction_drifted: bool | None
    missing_share: dict[str, float]
    n_labels: int
    accuracy: float | None
    roc_auc: float | None
    label_rate: MeanShift | None
    mean_score: MeanShift | None
    report_html: str | None
    report_json: str | None
    seconds: float

    @property
    def drifted(self) -> list[str]:
        """The drifted features, in the order they were given."""
        return [f for f, s in self.feature_scores.items() if s["drifted"]]

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts, ready for ``json.dumps``."""
        return asdict(self)


def scored_reference(
    reference: pd.DataFrame, model: Any, features: list[str], score_column: str = "score"
) -> pd.DataFrame:
    """The reference with the model's churn probability, so prediction drift has a baseline.

    A holdout carries labels but no scores; scoring it with the model that served the window
    gives the score distribution the model produced on data it was judged on.
    """
    scores = model.predict_proba(reference[features])[:, 1]
    return reference.assign(**{score_column: scores})


def compare_window(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: list[str],
    categorical: list[str],
    score_column: str | None = "score",
    label_column: str | None = None,
    prediction_column: str | None = None,
    max_rows: int = MAX_ROWS,
    seed: int = 0,
    report_dir: Path | None = None,
    feature_threshold: float | None = None,
    entity_column: str | None = None,
) -> WindowResult:
    """Compare ``current`` with ``reference``: per-feature drift, prediction drift, quality.

    Either side longer than ``max_rows`` is sampled uniformly (seeded) before the drift
    tests; missing shares and label metrics use every row of the window. Prediction drift
    needs ``score_column`` in both frames (see :func:`scored_reference`). With
    ``report_dir``, Evidently's HTML and JSON report of the same comparison are written there.
    ``feature_threshold`` replaces the drift tests' default thresholds (0.1 for the
    Wasserstein and Jensen-Shannon distances Evidently picks for windows this size).
    ``entity_column``, when both frames have it, groups rows by customer for the standard
    errors of the label rate and mean score.

    Raises:
        ValueError: a frame is empty or lacks a feature, label or prediction column.
    """
    started = time.perf_counter()
    features = [*numeric, *categorical]
    if not features:
        raise ValueError("no features to compare")
    _require(reference, features, "reference")
    _require(current, [*features, *_given(label_column, prediction_column)], "current")
    both_scored = score_column in current.columns and score_column in reference.columns
    score = [score_column] if score_column is not None and both_scored else []

    rng = np.random.default_rng(seed)
    # Rows first, then columns: copying 50k rows of every column is cheaper than copying a
    # million rows of the compared ones.
    ref = _prepared(_sample(reference, max_rows, rng)[[*features, *score]], [*numeric, *score])
    cur = _prepared(_sample(current, max_rows, rng)[[*features, *score]], [*numeric, *score])
    scores = {c: column_drift(ref[c], cur[c], "numeric", feature_threshold) for c in numeric}
    scores |= {
        c: column_drift(ref[c], cur[c], "categorical", feature_threshold) for c in categorical
    }
    drifted = sum(1 for s in scores.values() if s["drifted"])
    prediction = column_drift(ref[score[0]], cur[score[0]], "numeric") if score else None

    n_labels, accuracy, roc_auc = _classification(
        current, label_column, score_column, prediction_column
    )
    label_rate, mean_score = _means(reference, current, label_column, score, entity_column)
    report_html = report_json = None
    if report_dir is not None:
        # Evidently refuses a column with no values; the result already marks those drifted.
        judged = {**scores, **({score[0]: prediction} if prediction else {})}
        scorable = [c for c, s in judged.items() if s["method"] != NO_VALUES]
        report_html, report_json = _write_report(ref, cur, categorical, scorable, report_dir)
    return WindowResult(
        rows=len(current),
        sampled_rows=len(cur),
        reference_rows=len(ref),
        drift_share=drifted / len(features),
        drifted_features=drifted,
        feature_scores=scores,
        prediction_drift=_float(prediction["score"]) if prediction else None,
        prediction_drifted=bool(prediction["drifted"]) if prediction else None,
        missing_share={c: float(current[c].isna().mean()) for c in features},
        n_labels=n_labels,
        accuracy=accuracy,
        roc_auc=roc_auc,
        label_rate=label_rate,
        mean_score=mean_score,
        report_html=report_html,
        report_json=report_json,
        seconds=time.perf_counter() - started,
    )


def column_drift(
    reference: pd.Series, current: pd.Series, kind: Kind, threshold: float | None = None
) -> FeatureScore:
    """One column's drift with the test Evidently's ``ValueDrift`` would pick for it."""
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    ref, cur = _finite(reference), _finite(current)
    if ref.empty or cur.empty:
        return {"score": None, "method": NO_VALUES, "threshold": None, "drifted": True}
    column_type = ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
    test = get_stattest(ref, cur, column_type, None)
    result = test(ref, cur, column_type, threshold)
    return {
        "score": float(result.drift_score),
        "method": test.display_name,
        "threshold": float(result.actual_threshold),
        "drifted": bool(result.drifted),
    }


def _finite(values: pd.Series) -> pd.Series:
    # The cleaning ValueDrift does before its test: infinities count as missing values
    # (only float columns can hold them, and replace() on text columns is slow).
    if pd.api.types.is_float_dtype(values):
        values = values.replace([np.inf, -np.inf], np.nan)
    return values.dropna()


def _given(*columns: str | None) -> list[str]:
    return [c for c in columns if c is not None]


def _require(frame: pd.DataFrame, columns: list[str], side: str) -> None:
    if frame.empty:
        raise ValueError(f"the {side} frame has no rows")
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise ValueError(f"the {side} frame lacks columns {absent}")


def _sample(frame: pd.DataFrame, max_rows: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= max_rows:
        return frame
    # Kept in the original order so the report's plots over the index still read in time.
    rows = np.sort(rng.choice(len(frame), size=max_rows, replace=False))
    return frame.iloc[rows]


def _prepared(frame: pd.DataFrame, numeric: list[str]) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if column in numeric:
            # Nullable integers and stray strings become float NaN, which the tests drop.
            out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
        else:
            # Categories compare as text, so 1 from Parquet and "1" from a CSV are one value.
            values = out[column]
            out[column] = values.where(values.isna(), values.astype(str)).astype(object)
    return out


def _float(value: float | str | bool | None) -> float | None:
    return None if value is None else float(value)


def _classification(
    current: pd.DataFrame,
    label_column: str | None,
    score_column: str | None,
    prediction_column: str | None,
) -> tuple[int, float | None, float | None]:
    if label_column is None:
        return 0, None, None
    truth = pd.to_numeric(current[label_column], errors="coerce")
    known = truth.notna()
    if not known.any():
        return 0, None, None
    y = truth[known].astype(int)
    accuracy = None
    if prediction_column is not None:
        predicted = pd.to_numeric(current.loc[known, prediction_column], errors="coerce")
        # A missing prediction is a wrong one: the service answered nothing usable.
        accuracy = float((predicted == y).mean())
    roc_auc = None
    if score_column is not None and score_column in current:
        from sklearn.metrics import roc_auc_score

        scores = pd.to_numeric(current.loc[known, score_column], errors="coerce")
        scored = scores.notna()
        if y[scored].nunique() == 2:
            roc_auc = float(roc_auc_score(y[scored], scores[scored]))
    return int(known.sum()), accuracy, roc_auc


def _means(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    label_column: str | None,
    score: list[str],
    entity_column: str | None,
) -> tuple[MeanShift | None, MeanShift | None]:
    # Every row of both frames, not the drift tests' sample: the standard errors need them.
    both = entity_column is not None and entity_column in reference and entity_column in current
    groups = (reference[entity_column], current[entity_column]) if both else (None, None)

    def shift(quantity: str, column: str) -> MeanShift:
        return mean_shift(quantity, reference[column], current[column], *groups)

    labelled = label_column is not None and label_column in reference
    label_rate = shift(LABEL_RATE, label_column) if labelled and label_column else None
    return label_rate, (shift(MEAN_SCORE, score[0]) if score else None)


def _write_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    categorical: list[str],
    columns: list[str],
    report_dir: Path,
) -> tuple[str, str]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(
        numerical_columns=[c for c in reference.columns if c not in categorical],
        categorical_columns=categorical,
    )
    # Per-column drift tests only: whether the share of drifted features matters is the
    # monitoring policy's call, so the report carries no dataset-level pass/fail. Missing
    # shares are in the result; Evidently's dataset summary would add a tenth to the cost.
    metrics = [ValueDrift(column=c) for c in columns]
    snapshot = Report(metrics, include_tests=True).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    report_dir.mkdir(parents=True, exist_ok=True)
    html, json = report_dir / REPORT_HTML, report_dir / REPORT_JSON
    snapshot.save_html(str(html))
    snapshot.save_json(str(json))
    return str(html), str(json)
