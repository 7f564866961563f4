"""Served churn probabilities over time, their shift against the reference, and latency.

One row of boxes per time bin and series (model version and arm): whiskers from the 5th
to the 95th percentile, the box from the 25th to the 75th, a tick at the median. Below:
the monitor's drift score of the served probabilities against the window's reference,
and the latency p95 the log recorded.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

import charts

WINDOW_START = "window start (UTC)"
SERVED_AT = "served at (UTC)"


def series(frame: pd.DataFrame) -> pd.Series:
    """``<version> · <arm>``: one colour per model version and arm."""
    return frame["model_version"].astype(str) + " · " + frame["arm"].astype(str)


def confidence(boxes: pd.DataFrame, shift: pd.DataFrame) -> alt.VConcatChart:
    """Boxes of served probabilities, prediction drift and latency, on one time axis.

    ``shift``: per time bin and model version, the windows' mean ``prediction_drift`` and
    the ``reference`` they were compared with.
    """
    boxes = boxes.assign(series=series(boxes))
    # Each panel its own time axis: the log's bins and the monitor's windows can span
    # different periods (the monitor keeps weeks, the log may hold only the last hour).
    x = charts.time_x("bin", SERVED_AT, boxes["bin"])
    colour = alt.Color(field="series", type="nominal", title="model version · arm")
    offset = alt.XOffset(field="series", type="nominal")
    probability = "served churn probability"
    base = alt.Chart(boxes)
    whiskers = base.mark_rule().encode(
        x=x,
        xOffset=offset,
        y=alt.Y(
            field="p05", type="quantitative", title=probability, scale=alt.Scale(domain=[0, 1])
        ),
        y2=alt.Y2(field="p95"),
        color=colour,
    )
    box = base.mark_bar(size=8, opacity=0.6).encode(
        x=x,
        xOffset=offset,
        y=alt.Y(field="p25", type="quantitative", title=probability),
        y2=alt.Y2(field="p75"),
        color=colour,
        tooltip=[
            alt.Tooltip(field="series", type="nominal", title="model version · arm"),
            charts.time_tooltip("bin", "from (UTC)"),
            alt.Tooltip(field="predictions", type="quantitative", title="predictions"),
            alt.Tooltip(field="median", type="quantitative", format=".3f", title="median"),
            alt.Tooltip(field="p25", type="quantitative", format=".3f", title="25th percentile"),
            alt.Tooltip(field="p75", type="quantitative", format=".3f", title="75th percentile"),
            alt.Tooltip(field="p05", type="quantitative", format=".3f", title="5th percentile"),
            alt.Tooltip(field="p95", type="quantitative", format=".3f", title="95th percentile"),
        ],
    )
    median = base.mark_tick(color="black", thickness=2, size=10).encode(
        x=x, xOffset=offset, y=alt.Y(field="median", type="quantitative", title=probability)
    )
    latency = base.mark_line(point=True).encode(
        x=x,
        y=alt.Y(field="latency_p95_ms", type="quantitative", title="latency p95 (ms)"),
        color=colour,
        tooltip=[
            alt.Tooltip(field="series", type="nominal", title="model version · arm"),
            alt.Tooltip(field="latency_p95_ms", type="quantitative", format=".1f", title="p95 ms"),
            alt.Tooltip(field="latency_p50_ms", type="quantitative", format=".1f", title="p50 ms"),
        ],
    )
    parts = [
        (whiskers + box + median).properties(
            height=240, title="Served churn probability per time bin (5-25-50-75-95th percentiles)"
        )
    ]
    if not shift.empty:
        parts.append(
            alt.Chart(shift)
            .mark_line(point=len(shift) < 60)
            .encode(
                x=charts.time_x("bin", WINDOW_START, shift["bin"]),
                y=alt.Y(
                    field="prediction_drift",
                    type="quantitative",
                    title="probability drift vs reference",
                ),
                color=alt.Color(field="model_version", type="nominal", title="model version"),
                tooltip=[
                    charts.time_tooltip("bin", "window start (UTC)"),
                    alt.Tooltip(field="model_version", type="nominal", title="model version"),
                    alt.Tooltip(
                        field="prediction_drift",
                        type="quantitative",
                        format=".3f",
                        title="drift score",
                    ),
                    alt.Tooltip(field="reference", type="nominal", title="compared with"),
                ],
            )
            .properties(height=110, title="Shift of served probabilities against the reference")
        )
    parts.append(latency.properties(height=110, title="Latency p95 recorded in the log"))
    return alt.vconcat(*parts).resolve_scale(color="independent")
