"""Monitored windows: drift share, per-feature drift scores, prediction drift."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import streamlit as st

from loaders.common import json_value as _json
from loaders.common import registry_at as registry
from loaders.common import window_start

if TYPE_CHECKING:
    import pandas as pd


WINDOW_COLUMNS = [
    "id",
    "computed_at",
    "model_version",
    "window_start",
    "window_end",
    "rows",
    "drift_share",
    "drifted_features",
    "prediction_drift",
    "n_labels",
    "accuracy",
    "roc_auc",
    "report_html",
    "events",
    "reference",
]


WINDOW_TIMES = ("computed_at", "window_start", "window_end")


@st.cache_data(ttl=30, show_spinner=False)
def windows(url: str, model_name: str, period: str = "all") -> pd.DataFrame:
    """Monitored windows of ``model_name`` in ``period``, oldest first (no feature scores)."""
    frame = _window_frame(url, model_name, WINDOW_COLUMNS, since=window_start(period))
    frame["events"] = [
        ", ".join(_json(e) or []) if e not in ("[]", None) else "" for e in frame["events"]
    ]
    return frame


@st.cache_data(ttl=30, show_spinner=False)
def latest_window(url: str, model_name: str) -> dict[str, Any] | None:
    """The newest monitored window of ``model_name``, if any."""
    frame = _window_frame(url, model_name, WINDOW_COLUMNS, latest=True)
    return None if frame.empty else dict(frame.iloc[0])


def _window_frame(
    url: str,
    model_name: str,
    columns: list[str],
    *,
    since: datetime | None = None,
    latest: bool = False,
) -> pd.DataFrame:
    # The same rows as Store.windows(), read in one query with only the columns needed and
    # converted column-wise by pandas: per-row ORM objects and type conversions took
    # over a second for 10,000 windows. The filters still bind through the table's types.
    import pandas as pd
    from sqlalchemy import column, select

    from loopline.registry.schema import DriftWindowRow

    table = DriftWindowRow.__table__
    query: Any = select(*(column(c) for c in columns)).select_from(table)
    query = query.where(table.c.model_name == model_name)
    if since is not None:
        query = query.where(table.c.window_start >= since)
    order = table.c.window_start
    query = query.order_by(order.desc()).limit(1) if latest else query.order_by(order)
    with registry(url).engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(query).all(), columns=columns)
    for name in WINDOW_TIMES:
        if name in frame:
            frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
    return frame


@st.cache_data(ttl=30, show_spinner=False)
def feature_drift(url: str, model_name: str, period: str, max_bins: int = 60) -> pd.DataFrame:
    """Per feature and time bin: the share of windows where it drifted, and its mean score.

    The monitor records each feature as ``{score, method, threshold, drifted}``. The
    drifted share reads the same whatever the test (a p-value and a distance point in
    opposite directions); ``drifted`` is NaN where only bare scores were recorded.
    """
    import pandas as pd

    rows = _window_frame(
        url, model_name, ["window_start", "feature_scores"], since=window_start(period)
    )
    columns = ["bin", "feature", "drifted", "score"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    scores, flags = [], []
    for recorded in rows["feature_scores"]:
        score: dict[str, Any] = {}
        flag: dict[str, Any] = {}
        for feature, value in (_json(recorded) or {}).items():
            if isinstance(value, dict):
                score[feature], flag[feature] = value.get("score"), value.get("drifted")
            else:
                score[feature] = value
        scores.append(score)
        flags.append(flag)
    bins = rows["window_start"].dt.floor(bin_width(rows["window_start"], max_bins)).values
    long = [
        pd.DataFrame(values, dtype=float)
        .groupby(bins)
        .mean()
        .rename_axis("bin")
        .reset_index()
        .melt(id_vars="bin", var_name="feature", value_name=name)
        for values, name in ((flags, "drifted"), (scores, "score"))
    ]
    return long[1].merge(long[0], on=["bin", "feature"], how="left")[columns]


BIN_WIDTHS = ("1min", "5min", "15min", "1h", "3h", "6h", "12h", "1D", "7D", "30D")


def bin_width(times: pd.Series, max_bins: int) -> str:
    """The narrowest round width that puts ``times`` into at most ``max_bins`` bins."""
    import pandas as pd

    span = times.max() - times.min() if len(times) else pd.Timedelta(0)
    for width in BIN_WIDTHS:
        if span / pd.Timedelta(width) + 1 <= max_bins:  # flooring adds one bin at most
            return width
    return BIN_WIDTHS[-1]
