"""Drift and quality: drift share over time, per-feature heatmap, live accuracy, reports."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

import charts
import confidence_view
from loaders import common, drift, predictions, registry, service_metrics

PERIODS = ["24 h", "7 d", "30 d", "all"]
WINDOW_START = "window start (UTC)"
# Encodings are alt.X(...), alt.Tooltip(...) objects on every page, never shorthand strings:
# Altair resolves each string through its whole schema, about 50 ms apiece.


def drift_page() -> None:
    st.title("Drift and quality")
    where = common.paths()
    params = common.params(str(where.params_file))
    name, url = params.serving.model_name, where.registry_url
    if drift.latest_window(url, name) is None:
        common.empty(
            "No monitoring windows yet",
            "run `loopline monitor` (every few minutes under `make up`)",
        )
        return
    period = st.segmented_control("Period", PERIODS, default="7 d", key="drift_period") or "7 d"
    since = common.window_start(period)
    shown = drift.windows(url, name, period)
    marks = registry.markers(url, name)
    marks = marks if since is None else marks[marks["at"] >= since]
    threshold = params.monitoring.drift_share_threshold
    st.caption(
        f"{len(shown)} windows in this period · drift threshold {threshold:.0%} · "
        f"{int((shown['drift_share'] >= threshold).sum())} over it · "
        f"{int(marks['event'].eq('retrain').sum())} retrains, "
        f"{int(marks['event'].eq('promotion').sum())} promotions"
    )
    if shown.empty:
        st.info(f"No windows in the last {period}: pick a longer period.")
        return

    width = drift.bin_width(shown["window_start"], common.MAX_CHART_BINS)
    share = shown.assign(bin=shown["window_start"].dt.floor(width)).groupby("bin", as_index=False)
    share = share.agg(
        drift_share=("drift_share", "mean"), worst=("drift_share", "max"), windows=("id", "size")
    )
    line = (
        alt.Chart(share)
        .mark_line(point=len(share) < 60)
        .encode(
            x=charts.time_x("bin", WINDOW_START, share["bin"]),
            y=alt.Y("drift_share:Q", title="share of features drifted", axis=alt.Axis(format="%")),
            tooltip=[
                charts.time_tooltip("bin", "from (UTC)"),
                alt.Tooltip("drift_share:Q", format=".0%", title="drift share (mean)"),
                alt.Tooltip("worst:Q", format=".0%", title="worst window"),
                alt.Tooltip("windows:Q", title="windows"),
            ],
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"y": [threshold]}))
        .mark_rule(strokeDash=[4, 4], color="red")
        .encode(y=alt.Y("y:Q", title="share of features drifted"))
    )
    st.altair_chart(
        (line + rule + _markers(marks, share["bin"])).properties(
            height=260, title=f"Drift share (mean per {width})"
        ),
        width="stretch",
    )

    cells = drift.feature_drift(url, name, period)
    if not cells.empty:
        flagged = cells["drifted"].notna().any()  # else only bare scores were recorded
        value, title = ("drifted", "share drifted") if flagged else ("score", "drift score")
        st.altair_chart(
            alt.Chart(cells)
            .mark_rect()
            .encode(
                x=charts.time_x("bin", WINDOW_START, cells["bin"]),
                y=alt.Y("feature:N", title="feature"),
                color=alt.Color(f"{value}:Q", title=title, scale=alt.Scale(scheme="orangered")),
                tooltip=[
                    alt.Tooltip("feature:N"),
                    charts.time_tooltip("bin", "from (UTC)"),
                    alt.Tooltip("drifted:Q", format=".0%", title="windows drifted"),
                    alt.Tooltip("score:Q", format=".3f", title="mean score"),
                ],
            )
            .properties(
                height=26 * cells["feature"].nunique() + 40, title=f"Drift per feature ({title})"
            ),
            width="stretch",
        )

    accuracy = predictions.accuracy_over_time(str(where.serving_log), period)
    if accuracy.empty:
        common.empty(
            "No labelled predictions in this period",
            "labels arrive through the service's `/feedback`",
        )
    else:
        x = charts.time_x("bin", WINDOW_START, accuracy["bin"])
        top = (
            alt.Chart(accuracy)
            .mark_line(point=True)
            .encode(
                x=x,
                y=alt.Y(
                    "accuracy:Q",
                    title="live accuracy",
                    scale=alt.Scale(zero=False),
                    axis=alt.Axis(format="%"),
                ),
                color=alt.Color("model_version:N", title="model version"),
                tooltip=[
                    alt.Tooltip("model_version:N", title="model version"),
                    charts.time_tooltip("bin", "from (UTC)"),
                    alt.Tooltip("accuracy:Q", format=".1%", title="live accuracy"),
                    alt.Tooltip("labels:Q", title="labelled predictions"),
                ],
            )
        )
        bottom = (
            alt.Chart(accuracy)
            .mark_bar()
            .encode(
                x=x,
                y=alt.Y("labels:Q", title="labelled predictions"),
                color=alt.Color("model_version:N", title="model version"),
            )
        )
        st.altair_chart(
            alt.vconcat(
                (top + _markers(marks, accuracy["bin"])).properties(
                    height=220, title="Live accuracy per model version"
                ),
                bottom.properties(height=90),
            ),
            width="stretch",
        )

    confidence(where, shown, period)

    st.subheader("Evidently report of a window")
    with_report = shown[shown["report_html"].notna()].iloc[::-1].head(200)
    if with_report.empty:
        st.caption("No window in this period kept an HTML report.")
        return
    labels = {
        int(r.id): f"{r.window_start:%Y-%m-%d %H:%M} → {r.window_end:%H:%M} · "
        f"drift {r.drift_share:.0%} · {r.model_version}"
        for r in with_report.itertuples()
    }
    picked = st.selectbox(
        "Window", list(labels), format_func=labels.__getitem__, key="drift_report"
    )
    stored = with_report.set_index("id").loc[picked, "report_html"]
    report = common.report_path(where.reports, stored)
    if report is None:
        st.warning(f"The report file {stored} is gone (or lies outside {where.reports}).")
    else:
        st.iframe(report, height=900)


def confidence(where: Any, shown: pd.DataFrame, period: str) -> None:
    """Served probabilities per version and arm over time, their shift, and latency."""
    st.subheader("Prediction confidence")
    boxes = predictions.confidence_over_time(str(where.serving_log), period)
    if boxes.empty:
        common.empty(
            "No served predictions in this period", "the service logs every answer it gives"
        )
        return
    scored = shown.dropna(subset=["prediction_drift"])
    width = drift.bin_width(scored["window_start"], common.MAX_CHART_BINS)
    shift = (
        scored.assign(bin=scored["window_start"].dt.floor(width))
        .groupby(["bin", "model_version"], as_index=False)
        .agg(prediction_drift=("prediction_drift", "mean"), reference=("reference", "last"))
    )
    live = service_metrics.live_service(common.serving_url())
    now = (
        f"live latency now: p95 {live.latency_p95_ms:.1f} ms (the service's /metrics)"
        if live.latency_p95_ms is not None
        else "the service's live latency is not available now"
    )
    st.caption(
        f"{int(boxes['predictions'].sum()):,} predictions · shadow rows are the challenger's "
        f"scores of requests the champion answered · {now}"
    )
    st.altair_chart(confidence_view.confidence(boxes, shift), width="stretch")


def _markers(marks: pd.DataFrame, times: pd.Series) -> alt.Chart:
    # Dashes, not colours, tell retrains from promotions: colour stays free for versions.
    dashes = alt.Scale(domain=["retrain", "promotion"], range=[[4, 4], [1, 0]])
    return (
        alt.Chart(marks)
        .mark_rule(opacity=0.7, color="#2ca02c")
        .encode(
            # The chart's own time axis: layered, the titles must match or Vega-Lite joins them.
            x=charts.time_x("at", WINDOW_START, times),
            strokeDash=alt.StrokeDash("event:N", scale=dashes, title="event"),
            tooltip=[
                alt.Tooltip("event:N"),
                alt.Tooltip("version:N", title="model version"),
                alt.Tooltip("actor:N", title="by"),
                charts.time_tooltip("at", "at (UTC)"),
            ],
        )
    )


drift_page()
