"""Runs: every training run, and every candidate it tried, compared as experiments.

The table lists runs; below it, the candidates of the runs picked (by default those that
trained the champion and the challenger, and the latest) are compared: metric against a
parameter, parallel coordinates, curves, the confusion matrix at the serving threshold,
permutation importance, segment metrics, and a diff of any two.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

import charts
import experiment_charts as draw
import experiments_view as view
from loaders import common, registry, runs

BASE = ["run_id", "started_at", "model_name", "selected", "metric", "data_hash", "feature_service"]
MAX_COMPARED = 20
CREATE = "run `make demo` (or `loopline run`)"


def runs_page() -> None:
    st.title("Runs")
    where = common.paths()
    frame = runs.runs(where.registry_url)
    if frame.empty:
        common.empty("No training runs yet", CREATE)
        return
    name = common.params(str(where.params_file)).serving.model_name
    serving = registry.serving_versions(where.registry_url, name)
    marks = [f"{role} **{held['version']}**" for role, held in serving.items()]
    st.caption(" · ".join(marks) if marks else "Nothing serves yet: no champion or challenger.")
    shown = run_table(frame)

    st.subheader("Compare candidates")
    picked = st.multiselect(
        "Runs to compare",
        shown["run_id"].tolist(),
        default=_default_runs(shown, serving),
        key="runs_compare",
        max_selections=MAX_COMPARED,
    )
    if not picked:
        st.caption("Pick one or more runs above to compare their candidates.")
        return
    records = runs.candidates(where.registry_url, tuple(picked))
    if not records:
        common.empty(
            "No candidate records for these runs",
            f"runs recorded before experiment tracking kept only their summary; {CREATE} "
            "records every candidate",
        )
        return
    failed = [r for r in records if r.get("status") != "ok"]
    if failed:
        st.warning(
            "Failed candidates, left out of the charts:\n"
            + "\n".join(
                f"- `{view.key(r)}` ({r.get('estimator')}): {r.get('error')}" for r in failed
            )
        )
    good = [r for r in records if r.get("status") == "ok"]
    if not good:
        st.info("Every candidate of these runs failed: nothing to compare.")
        return
    table = view.table(good, view.roles(good, serving))
    compare(table, str(frame["metric"].iloc[0]))
    inspect(good, table)


def run_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Filters, the runs table and the primary metric over time; returns the runs shown."""
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
    return shown


def _default_runs(shown: pd.DataFrame, serving: dict[str, dict[str, Any]]) -> list[str]:
    listed = shown["run_id"].tolist()
    wanted = [run for held in serving.values() for run in held["runs"]]
    latest = shown.sort_values("started_at", ascending=False)["run_id"].head(1).tolist()
    return list(dict.fromkeys(r for r in [*wanted, *latest] if r in listed))


def compare(table: pd.DataFrame, primary: str) -> None:
    """The candidates' table, metric against parameter, and parallel coordinates."""
    metrics = view.metric_names(table)
    if primary not in metrics and metrics:
        primary = metrics[0]
    shown = table[["candidate", "role", "estimator", "selected", "data_hash", "code"]].copy()
    for metric in metrics:
        shown[charts.metric_label(metric)] = view.with_interval(table, metric)
    for name, label in view.COSTS:
        shown[label] = table[name]
    st.dataframe(shown, hide_index=True)
    params = view.param_names(table)
    if not metrics or not params:
        st.caption("These candidates record no metric intervals or parameters to chart.")
        return
    cols = st.columns(2)
    metric = cols[0].selectbox(
        "Metric",
        metrics,
        index=metrics.index(primary),
        format_func=charts.metric_label,
        key="runs_metric",
    )
    param = cols[1].selectbox(
        "Parameter", params, format_func=lambda p: p.removeprefix("param "), key="runs_param"
    )
    st.altair_chart(draw.scatter(table, metric, param), width="stretch")
    axes = [*params, *metrics]
    st.altair_chart(draw.parallel(view.parallel(table, axes, metric), metric), width="stretch")


def inspect(records: list[dict[str, Any]], table: pd.DataFrame) -> None:
    """Diagnostics of the candidates picked, overlaid, and a diff of two of them."""
    st.subheader("Inspect candidates")
    names = table["candidate"].tolist()
    marked = table.loc[table["role"] != "", "candidate"].tolist()
    best = table.sort_values(view.metric_names(table)[:1] or ["candidate"], ascending=False)
    default = list(dict.fromkeys([*marked, *best["candidate"].head(2)]))[:4]
    picked = st.multiselect("Candidates to inspect", names, default=default, key="runs_inspect")
    chosen = [r for r in records if view.key(r) in picked]
    if not chosen:
        st.caption("Pick candidates above to draw their curves.")
        return
    for record in chosen:
        why = (record.get("diagnostics") or {}).get("unavailable")
        if why:
            st.info(f"`{view.key(record)}`: curves unavailable, {why}.")
    tabs = st.tabs(
        ["ROC", "Precision-recall", "Calibration", "Confusion", "Importance", "Segments"]
    )
    for tab, kind in zip(tabs[:3], ("roc", "precision_recall", "calibration"), strict=True):
        long = view.curve(chosen, kind)
        if long.empty:
            tab.caption("No candidate picked has this curve.")
        else:
            tab.altair_chart(draw.curve(long, kind), width="stretch")
    cells = view.confusion(chosen)
    if cells.empty:
        tabs[3].caption("No confusion counts recorded.")
    else:
        threshold = cells["threshold"].iloc[0]
        tabs[3].caption(f"A churn probability at or above {threshold:g} predicts churn.")
        tabs[3].altair_chart(draw.confusion(cells), width="content")
    ranked = view.importance(chosen)
    if ranked.empty:
        tabs[4].caption("No permutation importance recorded.")
    else:
        tabs[4].altair_chart(draw.importance(ranked), width="stretch")
    column, rows = view.segments(chosen)
    if rows.empty or column is None:
        tabs[5].caption("No segment metrics recorded (set `promotion.segment_column`).")
    else:
        tabs[5].altair_chart(draw.segments(rows, column, "roc_auc"), width="stretch")
        tabs[5].dataframe(rows, hide_index=True)
    differ(table, names)


def differ(table: pd.DataFrame, names: list[str]) -> None:
    st.subheader("Diff two candidates")
    if len(names) < 2:
        st.caption("Only one candidate here: pick more runs above to diff two.")
        return
    cols = st.columns(2)
    first = cols[0].selectbox("First", names, index=0, key="runs_diff_a")
    second = cols[1].selectbox("Second", names, index=1, key="runs_diff_b")
    if first == second:
        st.caption("Pick two different candidates.")
        return
    rows = table.set_index("candidate")
    changes = view.diff(rows.loc[first], rows.loc[second], view.metric_names(table))
    only = st.toggle("Only what differs", value=True, key="runs_diff_only")
    shown = changes[changes["differs"]] if only else changes
    st.dataframe(
        shown.rename(columns={"first": first, "second": second}),
        hide_index=True,
        column_config={"differs": st.column_config.CheckboxColumn("differs")},
    )


runs_page()
