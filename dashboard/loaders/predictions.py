"""The prediction and feedback log: what was served, and how right it was."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from loaders.common import window_start
from loaders.drift import bin_width

if TYPE_CHECKING:
    import pandas as pd


@st.cache_data(ttl=30, show_spinner=False)
def accuracy_over_time(folder: str, period: str, max_bins: int = 60) -> pd.DataFrame:
    """Live accuracy and label counts per model version per time bin, from the log."""
    import pandas as pd

    from loopline.serving.predlog_read import labelled_predictions

    frame = labelled_predictions(Path(folder), since=window_start(period), include_shadow=True)
    columns = ["bin", "model_version", "labels", "accuracy"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame["bin"] = frame["at"].dt.floor(bin_width(frame["at"], max_bins))
    frame["correct"] = frame["label"] == frame["actual"]
    grouped = frame.groupby(["bin", "model_version"], as_index=False)
    return grouped.agg(labels=("correct", "size"), accuracy=("correct", "mean"))[columns]


@st.cache_data(ttl=30, show_spinner=False)
def live_accuracy(folder: str, since: datetime | None) -> pd.DataFrame:
    """Accuracy of labelled predictions per model version and arm since ``since``."""
    from loopline.serving.predlog_read import live_accuracy as measure

    return measure(Path(folder), since=since, by=("model_version", "arm"))


@st.cache_data(ttl=60, show_spinner=False)
def prediction_counts(folder: str) -> pd.DataFrame:
    """Predictions logged per model version and arm (shadow apart), with first and last."""
    import duckdb
    import pandas as pd

    from loopline.serving.predlog_read import partition_files

    files = [
        str(path)
        for partition in sorted((Path(folder) / "predictions").glob("date=*"))
        for path in partition_files(partition)
    ]
    columns = ["model_version", "arm", "shadow", "predictions", "first_at", "last_at"]
    if not files:
        return pd.DataFrame(columns=columns)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        relation = con.read_parquet(files, union_by_name=True, hive_partitioning=False)
        relation.create_view("predictions")
        return con.execute(
            'SELECT model_version, arm, shadow, count(*) AS predictions, min("at") AS first_at,'
            ' max("at") AS last_at FROM predictions GROUP BY ALL ORDER BY last_at DESC'
        ).df()


# What the served-probability boxes show: the quantiles of each bin's scores.
QUANTILES = {"p05": 0.05, "p25": 0.25, "median": 0.5, "p75": 0.75, "p95": 0.95}
CONFIDENCE_COLUMNS = [
    "bin",
    "model_version",
    "arm",
    "predictions",
    *QUANTILES,
    "mean_score",
    "latency_p50_ms",
    "latency_p95_ms",
]


@st.cache_data(ttl=30, show_spinner=False)
def confidence_over_time(folder: str, period: str, max_bins: int = 60) -> pd.DataFrame:
    """Served probabilities per time bin, model version and arm: quantiles and latency.

    Shadow rows are their own arm (``challenger (shadow)``): they were scored, not served.
    """
    import pandas as pd

    frame = _served(Path(folder), window_start(period))
    if frame.empty:
        return pd.DataFrame(columns=CONFIDENCE_COLUMNS)
    frame["bin"] = frame["at"].dt.floor(bin_width(frame["at"], max_bins))
    frame["arm"] = frame["arm"].where(~frame["shadow"].astype(bool), frame["arm"] + " (shadow)")
    grouped = frame.groupby(["bin", "model_version", "arm"], as_index=False, sort=True)
    aggregations: dict[str, Any] = {
        name: ("score", lambda s, q=q: s.quantile(q)) for name, q in QUANTILES.items()
    }
    out = grouped.agg(
        predictions=("score", "size"),
        mean_score=("score", "mean"),
        latency_p50_ms=("latency_ms", "median"),
        latency_p95_ms=("latency_ms", lambda s: s.quantile(0.95)),
        **aggregations,
    )
    return out[CONFIDENCE_COLUMNS]


def _served(folder: Path, since: datetime | None) -> pd.DataFrame:
    # Only the columns the chart needs: a busy log's rows carry every feature too.
    import duckdb
    import pandas as pd

    from loopline.serving.predlog_read import partition_files

    first = None if since is None else since.date().isoformat()
    files = [
        str(path)
        for partition in sorted((folder / "predictions").glob("date=*"))
        if first is None or partition.name.removeprefix("date=") >= first
        for path in partition_files(partition)
    ]
    columns = ["at", "model_version", "arm", "shadow", "score", "latency_ms"]
    if not files:
        return pd.DataFrame(columns=columns)
    where, bound = ('WHERE "at" >= $since', {"since": since}) if since else ("", {})
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        relation = con.read_parquet(files, union_by_name=True, hive_partitioning=False)
        relation.create_view("predictions")
        # constant SQL; the window's start is bound
        sql = f'SELECT "at", model_version, arm, shadow, score, latency_ms FROM predictions {where}'
        frame = con.execute(sql, bound).df()  # nosec B608
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame
