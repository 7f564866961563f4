"""Runs: every training run with its parameters, metrics, data version and feature service."""

from __future__ import annotations

import altair as alt
import streamlit as st

import charts
import loaders as data

BASE = ["run_id", "started_at", "model_name", "selected", "metric", "data_hash", "feature_service"]


def runs() -> None:
    st.title("Runs")
    frame = data.runs(data.paths().registry_url)
    if frame.empty:
        data.empty("No training runs yet", "run `loopline run` or `make up`")
        return
    metrics = [c for c in frame.columns if c not in BASE and not c.startswith("param.")]
    metrics = [c for c in metrics if c not in ("flow_run_id", "candidates")]
    primary = str(frame["metric"].iloc[0])

    cols = st.columns(4)
    models = cols[0].multiselect("Model", sorted(frame["model_name"].unique()))
    estimators = cols[1].multiselect(
        "Estimator", sorted(frame["param.estimator"].dropna().unique())
    )
    hashes = cols[2].multiselect("Data version", sorted(frame["data_hash"].unique()))
    search = cols[3].text_input("Run id contains")
    cols = st.columns([3, 1])
    sort_by = cols[0].selectbox("Sort by", ["started_at", *metrics], key="runs_sort")
    descending = cols[1].toggle("Descending", value=True)

    shown = frame
    if models:
        shown = shown[shown["model_name"].isin(models)]
    if estimators:
        shown = shown[shown["param.estimator"].isin(estimators)]
    if hashes:
        shown = shown[shown["data_hash"].isin(hashes)]
    if search:
        shown = shown[shown["run_id"].str.contains(search, regex=False)]
    shown = shown.sort_values(sort_by, ascending=not descending, ignore_index=True)
    st.caption(f"{len(shown)} of {len(frame)} runs · click a column header to sort")
    st.dataframe(
        shown,
        hide_index=True,
        column_config={m: st.column_config.NumberColumn(format="%.4f") for m in metrics},
    )

    label = charts.metric_label(primary)
    if primary in shown and shown["started_at"].notna().any():
        st.altair_chart(
            alt.Chart(shown)
            .mark_circle(size=60)
            .encode(
                x=charts.time_x("started_at", "run started (UTC)", shown["started_at"]),
                y=alt.Y(
                    f"{primary}:Q",
                    title=f"{label} on the holdout",
                    scale=alt.Scale(zero=False),
                    axis=alt.Axis(format=".3f"),
                ),
                color=alt.Color("param\\.estimator:N", title="estimator"),
                tooltip=[
                    alt.Tooltip("run_id:N", title="run"),
                    charts.time_tooltip("started_at", "started (UTC)"),
                    alt.Tooltip("selected:N", title="selected candidate"),
                    alt.Tooltip(f"{primary}:Q", format=".4f", title=label),
                ],
            )
            .properties(height=260, title=f"{label} of every run shown"),
            width="stretch",
        )

    st.subheader("Compare runs")
    picked = st.multiselect(
        "Pick two or more runs", shown["run_id"].tolist(), key="runs_compare", max_selections=8
    )
    if len(picked) < 2:
        st.caption(
            "Pick two or more runs above to compare their metrics and parameters side by side."
        )
        return
    chosen = frame[frame["run_id"].isin(picked)].set_index("run_id").loc[picked]
    side = chosen[metrics].T.rename_axis("metric")
    st.dataframe(
        side, column_config={r: st.column_config.NumberColumn(format="%.4f") for r in picked}
    )
    params = [c for c in frame.columns if c.startswith("param.")]
    st.dataframe(chosen[[*params, "selected", "data_hash", "feature_service"]].T.astype(str))
    long = side.reset_index().melt(id_vars="metric", var_name="run", value_name="value")
    long["metric"] = long["metric"].map(charts.metric_label)
    st.altair_chart(
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X("metric:N", title="metric"),
            xOffset=alt.XOffset("run:N"),
            y=alt.Y("value:Q", title="score on the holdout", scale=alt.Scale(zero=False)),
            color=alt.Color("run:N", title="run"),
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip("metric:N"),
                alt.Tooltip("value:Q", format=".4f", title="score"),
            ],
        )
        .properties(height=300, title="Metrics side by side"),
        width="stretch",
    )
    candidates = data.run_candidates(data.paths().registry_url, tuple(picked))
    if not candidates.empty and primary in candidates:
        st.altair_chart(
            alt.Chart(candidates)
            .mark_bar()
            .encode(
                x=alt.X(
                    f"{primary}:Q", title=f"{label} on the holdout", scale=alt.Scale(zero=False)
                ),
                y=alt.Y("name:N", title="candidate"),
                yOffset=alt.YOffset("run_id:N"),
                color=alt.Color("run_id:N", title="run"),
                tooltip=[
                    alt.Tooltip("run_id:N", title="run"),
                    alt.Tooltip("name:N", title="candidate"),
                    alt.Tooltip(f"{primary}:Q", format=".4f", title=label),
                ],
            )
            .properties(title=f"Every candidate's {label}"),
            width="stretch",
        )


runs()
