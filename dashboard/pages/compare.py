"""Compare models: the champion against the challenger on the same recent labelled traffic.

What a team lead looks at before approving a promotion: how many labels there are, the
rollout review's interval for the difference, and both models' curves, calibration,
confusion at the serving threshold and per-segment metrics on that traffic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

import charts
import experiment_charts as draw
from loaders import common, comparison, registry

PERIODS = ["since the rollout started", "24 h", "7 d", "all"]
ROLLOUT = "start a shadow or canary rollout under Models and promotions → Roll out"


def compare_page() -> None:
    st.title("Compare models")
    where = common.paths()
    params = common.params(str(where.params_file))
    url, name = where.registry_url, params.serving.model_name
    serving = registry.serving_versions(url, name)
    if "champion" not in serving:
        common.empty("No champion yet", "promote a version (`make demo` does) to compare")
        return
    if "challenger" not in serving:
        common.empty(f"No challenger beside {serving['champion']['version']}", ROLLOUT)
        return
    champion, challenger = serving["champion"]["version"], serving["challenger"]["version"]
    policy = serving["champion"]["policy"]
    paired = policy == "shadow"
    period = st.selectbox("Labelled traffic", PERIODS, key="compare_period")
    since = _rollout_start(url, challenger) if period == PERIODS[0] else common.window_start(period)
    found = comparison.comparison(
        str(where.serving_log), str(where.params_file), champion, challenger, paired, since
    )
    how = (
        "paired: both models scored the same requests (shadow)"
        if paired
        else f"unpaired: in a {policy} rollout each request went to one model"
    )
    st.caption(f"Champion **{champion}** · challenger **{challenger}** · {how}")
    counts = found["counts"]
    st.dataframe(
        pd.DataFrame(
            [
                {"model": role, "version": version, **counts[role]}
                for role, version in (("champion", champion), ("challenger", challenger))
            ]
        ).rename(columns={"n": "labelled", "positives": "churners", "negatives": "stayed"}),
        hide_index=True,
    )
    if not found["enough"]:
        labels = (
            counts["champion"]["n"]
            if paired
            else counts["champion"]["n"] + counts["challenger"]["n"]
        )
        positives = counts["champion"]["positives"] + (
            0 if paired else counts["challenger"]["positives"]
        )
        rule = found["rule"]
        st.info(
            f"not enough labelled traffic yet: {labels} labels, {positives} positives "
            f"(the rollout review needs {rule['min_positives']} churners and "
            f"{rule['min_negatives']} who stayed per model)"
        )
    else:
        difference(found["verdict"])
    curves(found)


def _rollout_start(url: str, challenger: str) -> datetime | None:
    # As the review measures it: from the challenger's latest alias change.
    moves = registry.history(url, version=challenger)
    if moves.empty:
        return None
    set_at = moves.loc[moves["action"] == "alias_set", "at"]
    return None if set_at.empty else set_at.max().to_pydatetime()


def difference(verdict: dict[str, Any]) -> None:
    """The review's estimate of challenger − champion with its interval, drawn on zero."""
    metric = charts.metric_label(verdict["metric"])
    low, high = verdict["interval"]
    values = verdict.get("values") or {}
    cols = st.columns(3)
    cols[0].metric(f"Champion {metric}", f"{values.get('champion', float('nan')):.4f}")
    cols[1].metric(f"Challenger {metric}", f"{values.get('challenger', float('nan')):.4f}")
    cols[2].metric(
        f"Difference ({verdict['confidence']:.0%} interval)",
        f"{verdict['estimate']:+.4f}",
        help=f"[{low:+.4f}, {high:+.4f}] by the review's {verdict['test']}",
    )
    st.caption(f"The rollout review would say: {verdict['evidence']}")
    frame = pd.DataFrame(
        [
            {
                "what": f"challenger − champion {metric}",
                "estimate": verdict["estimate"],
                "low": low,
                "high": high,
            }
        ]
    )
    x_title = f"difference in {metric} (challenger − champion)"
    base = alt.Chart(frame).encode(y=alt.Y(field="what", type="nominal", title="comparison"))
    bar = base.mark_errorbar(ticks=True, thickness=2).encode(
        x=alt.X(field="low", type="quantitative", title=x_title), x2=alt.X2(field="high")
    )
    point = base.mark_point(filled=True, size=120).encode(
        x=alt.X(field="estimate", type="quantitative", title=x_title)
    )
    zero = (
        alt.Chart(pd.DataFrame({"x": [0.0]}))
        .mark_rule(strokeDash=[4, 4], color="gray")
        .encode(x=alt.X(field="x", type="quantitative", title=x_title))
    )
    st.altair_chart(
        (zero + bar + point).properties(height=90, title="Difference with its interval"),
        width="stretch",
    )


def curves(found: dict[str, Any]) -> None:
    """Both models' curves, calibration, confusion and segments on the labelled traffic."""
    drawn = found["curves"]
    for role, held in drawn.items():
        if held["unavailable"]:
            st.info(f"The {role}'s curves are unavailable: {held['unavailable']}.")
    tabs = st.tabs(["ROC", "Precision-recall", "Calibration", "Confusion", "Segments"])
    for tab, kind in zip(tabs[:3], ("roc", "precision_recall", "calibration"), strict=True):
        parts = [
            pd.DataFrame(held[kind]).assign(model=role)
            for role, held in drawn.items()
            if held[kind]
        ]
        if parts:
            tab.altair_chart(draw.curve(pd.concat(parts), kind, colour="model"), width="stretch")
        else:
            tab.caption("Not enough labelled traffic of both classes to draw this curve.")
    cells = [
        {"model": role, "actual": a, "predicted": p, "count": held["confusion"][cell]}
        for role, held in drawn.items()
        if held["confusion"]
        for a, p, cell in (
            ("churn", "churn", "tp"),
            ("churn", "stay", "fn"),
            ("stay", "churn", "fp"),
            ("stay", "stay", "tn"),
        )
    ]
    if cells:
        frame = pd.DataFrame(cells)
        frame["share"] = frame["count"] / frame.groupby("model")["count"].transform("sum").clip(
            lower=1
        )
        tabs[3].altair_chart(draw.confusion(frame, colour="model"), width="content")
    else:
        tabs[3].caption("No labelled traffic yet.")
    rows = pd.DataFrame(found["segments"])
    column = found["segment_column"]
    if rows.empty or column is None:
        tabs[4].caption("No segment column in the logged traffic (`promotion.segment_column`).")
    else:
        tabs[4].altair_chart(
            draw.segments(rows, column, "accuracy", colour="model"), width="stretch"
        )
        if rows["roc_auc"].notna().any():
            tabs[4].altair_chart(
                draw.segments(rows, column, "roc_auc", colour="model"), width="stretch"
            )
        tabs[4].dataframe(rows, hide_index=True)


compare_page()
