"""Champion against challenger on the same recent labelled traffic, as the rollout review sees it.

In a shadow rollout both models score every request: the challenger's answer is logged as
a shadow row of the same request, so the two are paired by request (as
``loopline.monitoring.review`` pairs them) and request-to-request noise cancels. In a
canary or A/B rollout each request got one model: the arms are compared unpaired. The
interval for the difference is the review's own (``verdict.decide`` under the configured
``monitoring.review`` rule), never recomputed here.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from loaders.common import params

if TYPE_CHECKING:
    import pandas as pd

ROLES = ("champion", "challenger")


@st.cache_data(ttl=30, show_spinner=False)
def comparison(
    folder: str,
    params_file: str,
    champion: str,
    challenger: str,
    paired: bool,
    since: datetime | None,
) -> dict[str, Any]:
    """Counts, the review's verdict, curves and per-segment metrics of both models.

    JSON-ready: ``counts`` per role, ``verdict`` (``Verdict.as_json()``), ``enough``
    (False while the rule still waits for labels), ``curves`` per role (``roc``,
    ``precision_recall``, ``calibration``, ``confusion``, ``unavailable``), ``segments``.
    """
    from loopline.monitoring.review import rule_of
    from loopline.monitoring.verdict import Sample, decide
    from loopline.serving.predlog_read import labelled_predictions

    config = params(params_file)
    frame = labelled_predictions(Path(folder), since=since, include_shadow=True)
    segment = config.promotion.segment_column
    rows = arms(frame, champion, challenger, paired, segment)
    samples = {role: Sample.of(r["actual"], r["score"], r["label"]) for role, r in rows.items()}
    rule = rule_of(config)
    # minutes=0: the view shows the evidence, it never applies the review's time limit.
    verdict = decide(samples["champion"], samples["challenger"], paired=paired, rule=rule)
    threshold = config.serving.threshold
    return {
        "paired": paired,
        "segment_column": segment if segment and segment in frame else None,
        "counts": {role: vars(samples[role].counts()) for role in ROLES},
        "verdict": verdict.as_json(),
        "enough": verdict.decision != "wait",
        "rule": {"min_positives": rule.min_positives, "min_negatives": rule.min_negatives},
        "curves": {role: _curves(rows[role], threshold) for role in ROLES},
        "segments": _segments(rows, segment),
    }


def arms(
    frame: pd.DataFrame, champion: str, challenger: str, paired: bool, segment: str | None
) -> dict[str, pd.DataFrame]:
    """Each model's labelled rows (``actual``, ``score``, ``label``, ``segment``).

    Paired: the requests the champion answered that the challenger scored in the shadow,
    row-aligned, as the rollout review pairs them (``review.KEY``). Unpaired: each model's
    served rows.
    """
    import pandas as pd

    from loopline.monitoring.review import KEY

    columns = ["actual", "score", "label", "segment"]
    if frame.empty:
        empty = pd.DataFrame(columns=columns)
        return {role: empty for role in ROLES}
    frame = frame.assign(segment=frame[segment].astype(str) if segment in frame else "all")
    shadow = frame["shadow"].astype(bool)
    served = frame[~shadow]
    if paired:
        first = served[served["model_version"] == champion]
        second = frame[shadow & (frame["model_version"] == challenger)]
        both = first.merge(second, on=KEY, suffixes=("", "_shadow"))
        mine = both[columns].reset_index(drop=True)
        theirs = both[["actual", "score_shadow", "label_shadow", "segment"]]
        return {"champion": mine, "challenger": theirs.set_axis(columns, axis=1)}
    return {
        role: served.loc[served["model_version"] == version, columns].reset_index(drop=True)
        for role, version in zip(ROLES, (champion, challenger), strict=True)
    }


def _curves(rows: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """The experiment records' diagnostics of this traffic, its reasons put for traffic."""
    from loopline.experiments import curves

    y = rows["actual"].to_numpy(dtype=int)
    drawn = curves.diagnostics(y, rows["score"].to_numpy(dtype=float), threshold)
    if not len(y):
        drawn |= {"confusion": None, "unavailable": "no labelled traffic yet"}
    elif drawn["unavailable"] is not None:
        drawn["unavailable"] = (
            f"all {len(y)} labelled requests are {int(y[0])}: ROC and precision-recall "
            "curves need both classes"
        )
    return drawn


def _segments(rows: dict[str, pd.DataFrame], segment: str | None) -> list[dict[str, Any]]:
    from sklearn.metrics import roc_auc_score

    out = []
    for role, frame in rows.items():
        for name, group in frame.groupby("segment", sort=True):
            actual = group["actual"].astype(int)
            both = actual.nunique() == 2
            out.append(
                {
                    "model": role,
                    "segment": str(name),
                    "rows": len(group),
                    "positives": int(actual.sum()),
                    "roc_auc": float(roc_auc_score(actual, group["score"])) if both else None,
                    "accuracy": float((group["label"].astype(int) == actual).mean()),
                }
            )
    return out
