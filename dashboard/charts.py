"""Axis titles in the domain's words, and time axes that read as dates at any span."""

from __future__ import annotations

import altair as alt
import pandas as pd

METRIC_LABELS = {
    "roc_auc": "ROC AUC",
    "average_precision": "average precision (PR AUC)",
    "log_loss": "log loss",
    "f1": "F1",
    "accuracy": "accuracy",
    "precision": "precision",
    "recall": "recall",
    "brier": "Brier score",
    "positive_rate": "positive rate",
}
# Below this span Vega-Lite would tick in seconds or milliseconds (one run: ".190").
MIN_SPAN = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)


def metric_label(name: str) -> str:
    """``roc_auc`` → ``ROC AUC``; an unknown metric keeps its name, with spaces."""
    return METRIC_LABELS.get(name, name.replace("_", " "))


def time_x(field: str, title: str, times: pd.Series) -> alt.X:
    """A UTC time axis for ``field``; a short span is widened to an hour around it."""
    stamps = pd.to_datetime(times.dropna(), utc=True)
    low, high = stamps.min(), stamps.max()
    scale = alt.Scale(type="utc")
    if high - low < MIN_SPAN:
        middle = low + (high - low) / 2
        # ISO strings: Streamlit's charts drop a domain given as epoch milliseconds.
        ends = [(middle + side * MIN_SPAN / 2).isoformat() for side in (-1, 1)]
        scale = alt.Scale(type="utc", domain=ends)
    fmt = "%Y-%m-%d" if high - low >= 3 * DAY else "%b %d %H:%M"
    return alt.X(
        f"{field}:T", title=title, scale=scale, axis=alt.Axis(format=fmt, labelOverlap=True)
    )


def time_tooltip(field: str, title: str) -> alt.Tooltip:
    """A time in a tooltip, in UTC like the axes."""
    return alt.Tooltip(f"{field}:T", title=title, timeUnit="utcyearmonthdatehoursminutes")
