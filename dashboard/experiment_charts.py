"""Altair charts of candidates and models: scatter, parallel coordinates, curves, matrices.

Every axis is titled in the domain's words; encodings are objects, never shorthand
strings (Altair resolves each string through its whole schema, ~50 ms apiece). The Runs
page draws candidates' holdout diagnostics with these; the Compare models page draws the
champion and challenger on live traffic with the same functions.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

import charts

# Champion and challenger stand out by shape and stroke wherever they appear.
ROLE_SCALE = alt.Scale(domain=["champion", "challenger", ""], range=["diamond", "square", "circle"])


def scatter(frame: pd.DataFrame, metric: str, param: str) -> alt.LayerChart:
    """``metric`` (with its 95 % interval as an error bar) against ``param``."""
    label = charts.metric_label(metric)
    name = param.removeprefix("param ").replace("_", " ")
    numeric = pd.to_numeric(frame[param], errors="coerce").notna().all()
    kind = "quantitative" if numeric else "nominal"
    x = alt.X(field=param, type=kind, title=f"{name} (parameter)", scale=alt.Scale(zero=False))
    base = alt.Chart(frame)
    bars = base.mark_errorbar(ticks=True).encode(
        x=x,
        y=alt.Y(field=f"{metric} low", type="quantitative", title=f"{label} on the holdout"),
        y2=alt.Y2(field=f"{metric} high"),
        color=alt.Color(field="estimator", type="nominal", title="estimator"),
    )
    points = base.mark_point(filled=True, size=90).encode(
        x=x,
        y=alt.Y(
            field=metric,
            type="quantitative",
            title=f"{label} on the holdout",
            scale=alt.Scale(zero=False),
        ),
        color=alt.Color(field="estimator", type="nominal", title="estimator"),
        shape=alt.Shape(field="role", type="nominal", title="serving", scale=ROLE_SCALE),
        tooltip=[
            alt.Tooltip(field="candidate", type="nominal", title="run/candidate"),
            alt.Tooltip(field="role", type="nominal", title="serving"),
            alt.Tooltip(field=param, type=kind, title=name),
            alt.Tooltip(field=metric, type="quantitative", format=".4f", title=label),
            alt.Tooltip(field=f"{metric} low", type="quantitative", format=".4f", title="95% low"),
            alt.Tooltip(
                field=f"{metric} high", type="quantitative", format=".4f", title="95% high"
            ),
        ],
    )
    return (bars + points).properties(height=320, title=f"{label} against {name}")


def parallel(long: pd.DataFrame, colour: str) -> alt.Chart:
    """Parallel coordinates: one line per candidate across axes scaled 0..1 each."""
    label = charts.metric_label(colour)
    return (
        alt.Chart(long)
        .mark_line(point=True, opacity=0.7)
        .encode(
            x=alt.X(
                field="axis",
                type="nominal",
                title="parameter or metric",
                sort=alt.EncodingSortField(field="order"),
                axis=alt.Axis(labelAngle=0),
            ),
            y=alt.Y(
                field="scaled",
                type="quantitative",
                title="position between the axis's lowest and highest value",
                axis=alt.Axis(format="%"),
            ),
            detail=alt.Detail(field="candidate", type="nominal"),
            color=alt.Color(
                field="colour",
                type="quantitative",
                title=label,
                scale=alt.Scale(scheme="viridis"),
            ),
            tooltip=[
                alt.Tooltip(field="candidate", type="nominal", title="run/candidate"),
                alt.Tooltip(field="axis", type="nominal", title="axis"),
                alt.Tooltip(field="value", type="nominal", title="value"),
            ],
        )
        .properties(
            height=320, title=f"Every candidate across its parameters and metrics ({label})"
        )
    )


CURVES = {
    "roc": ("fpr", "false positive rate", "tpr", "true positive rate (recall)"),
    "precision_recall": ("recall", "recall", "precision", "precision"),
    "calibration": (
        "predicted",
        "mean predicted churn probability",
        "observed",
        "observed churn rate",
    ),
}
CURVE_TITLES = {
    "roc": "ROC curve",
    "precision_recall": "Precision-recall curve",
    "calibration": "Calibration (reliability)",
}


def curve(long: pd.DataFrame, kind: str, colour: str = "candidate") -> alt.LayerChart:
    """Curves of ``kind`` overlaid, one colour per ``colour`` value; a reference diagonal."""
    x, x_title, y, y_title = CURVES[kind]
    unit = alt.Scale(domain=[0, 1])
    line = alt.Chart(long).mark_line(point=kind == "calibration", interpolate="linear")
    encoded = line.encode(
        x=alt.X(field=x, type="quantitative", title=x_title, scale=unit),
        y=alt.Y(field=y, type="quantitative", title=y_title, scale=unit),
        color=alt.Color(field=colour, type="nominal", title=colour.replace("_", " ")),
        order=alt.Order(field=x, type="quantitative"),
        tooltip=[
            alt.Tooltip(field=colour, type="nominal"),
            alt.Tooltip(field=x, type="quantitative", format=".3f", title=x_title),
            alt.Tooltip(field=y, type="quantitative", format=".3f", title=y_title),
            *(
                [alt.Tooltip(field="count", type="quantitative", title="rows in bin")]
                if "count" in long
                else []
            ),
        ],
    )
    layers = [encoded]
    if kind != "precision_recall":  # chance (ROC) and perfect calibration lie on y = x
        diagonal = pd.DataFrame({x: [0.0, 1.0], y: [0.0, 1.0]})
        layers.insert(
            0,
            alt.Chart(diagonal)
            .mark_line(strokeDash=[4, 4], color="gray")
            .encode(
                x=alt.X(field=x, type="quantitative", title=x_title, scale=unit),
                y=alt.Y(field=y, type="quantitative", title=y_title, scale=unit),
            ),
        )
    return alt.layer(*layers).properties(height=320, title=CURVE_TITLES[kind])


def confusion(cells: pd.DataFrame, colour: str = "candidate") -> alt.LayerChart:
    """The confusion matrix at the serving threshold, one panel per ``colour`` value."""
    base = alt.Chart(cells).encode(
        x=alt.X(field="predicted", type="nominal", title="predicted", sort=["churn", "stay"]),
        y=alt.Y(field="actual", type="nominal", title="actual", sort=["churn", "stay"]),
    )
    rect = base.mark_rect().encode(
        color=alt.Color(
            field="share",
            type="quantitative",
            title="share of rows",
            scale=alt.Scale(scheme="blues"),
        ),
        tooltip=[
            alt.Tooltip(field=colour, type="nominal"),
            alt.Tooltip(field="actual", type="nominal"),
            alt.Tooltip(field="predicted", type="nominal"),
            alt.Tooltip(field="count", type="quantitative", title="rows"),
            alt.Tooltip(field="share", type="quantitative", format=".1%", title="share"),
        ],
    )
    text = base.mark_text(fontSize=15).encode(text=alt.Text(field="count", type="quantitative"))
    return (
        (rect + text)
        .properties(width=170, height=170)
        .facet(column=alt.Column(field=colour, type="nominal", title=None))
        .properties(title="Confusion matrix at the serving threshold")
    )


def importance(frame: pd.DataFrame) -> alt.LayerChart:
    """Permutation importance per feature and candidate, ± one standard deviation."""
    y = alt.Y(
        field="feature",
        type="nominal",
        title="feature",
        sort=alt.EncodingSortField(field="mean", op="max", order="descending"),
    )
    drop = "drop in the run's metric when the feature is shuffled"
    base = alt.Chart(frame)
    bars = base.mark_bar().encode(
        x=alt.X(field="mean", type="quantitative", title=drop),
        y=y,
        yOffset=alt.YOffset(field="candidate", type="nominal"),
        color=alt.Color(field="candidate", type="nominal", title="candidate"),
        tooltip=[
            alt.Tooltip(field="candidate", type="nominal"),
            alt.Tooltip(field="feature", type="nominal"),
            alt.Tooltip(field="mean", type="quantitative", format=".4f", title="mean drop"),
            alt.Tooltip(field="std", type="quantitative", format=".4f", title="std"),
        ],
    )
    spread = base.mark_rule(color="black").encode(
        x=alt.X(field="low", type="quantitative", title=drop),
        x2=alt.X2(field="high"),
        y=y,
        yOffset=alt.YOffset(field="candidate", type="nominal"),
    )
    height = 22 * frame["feature"].nunique() * max(1, frame["candidate"].nunique() // 2) + 60
    return (bars + spread).properties(height=height, title="Permutation importance on the holdout")


def segments(frame: pd.DataFrame, column: str, metric: str, colour: str = "candidate") -> alt.Chart:
    """``metric`` per segment of ``column``, one bar per ``colour`` value."""
    label = charts.metric_label(metric)
    return (
        alt.Chart(frame.dropna(subset=[metric]))
        .mark_bar()
        .encode(
            x=alt.X(field="segment", type="nominal", title=column.replace("_", " ")),
            xOffset=alt.XOffset(field=colour, type="nominal"),
            y=alt.Y(field=metric, type="quantitative", title=label, scale=alt.Scale(zero=False)),
            color=alt.Color(field=colour, type="nominal", title=colour.replace("_", " ")),
            tooltip=[
                alt.Tooltip(field=colour, type="nominal"),
                alt.Tooltip(field="segment", type="nominal"),
                alt.Tooltip(field=metric, type="quantitative", format=".4f", title=label),
                alt.Tooltip(field="rows", type="quantitative", title="rows"),
                alt.Tooltip(field="positives", type="quantitative", title="churners"),
            ],
        )
        .properties(height=260, title=f"{label} per {column.replace('_', ' ')}")
    )
