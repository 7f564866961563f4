"""Candidate records as tables and long frames: what the Runs page compares and draws.

Pure pandas over the tracking store's candidate records (``Store.candidates()``), so the
shaping is tested without a page. Failed candidates never reach a chart; their reasons
are listed instead.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

import charts

# The fields a diff of two candidates shows first, in this order (then every parameter).
PROVENANCE = [
    ("estimator", "estimator"),
    ("data_hash", "data version (DVC md5)"),
    ("feature_service", "feature service"),
    ("code", "code commit"),
    ("flow_run_id", "Prefect flow run"),
    ("started_at", "run started (UTC)"),
]
COSTS = [
    ("fit_seconds", "fit time (s)"),
    ("latency_p95_ms", "single-row latency p95 (ms)"),
    ("model_bytes", "model size (bytes)"),
]


def key(record: dict[str, Any]) -> str:
    """``run/candidate``: the name a candidate goes by in every chart and picker."""
    return f"{record['run_id']}/{record['candidate']}"


def roles(records: list[dict[str, Any]], serving: dict[str, dict[str, Any]]) -> dict[str, str]:
    """``key -> "champion" | "challenger"`` for the selected candidates of the serving runs."""
    marked: dict[str, str] = {}
    for role, held in serving.items():
        for record in records:
            if record.get("selected") and record["run_id"] in held.get("runs", []):
                marked[key(record)] = role
    return marked


def code_label(record: dict[str, Any]) -> str:
    commit = record.get("code_commit")
    if not commit:
        return "unknown"
    return commit[:10] + (" (dirty tree)" if record.get("code_dirty") else "")


def table(records: list[dict[str, Any]], marked: dict[str, str]) -> pd.DataFrame:
    """One row per candidate: role, status, metrics (value, low, high), costs, params."""
    rows = []
    for record in records:
        row: dict[str, Any] = {
            "candidate": key(record),
            "role": marked.get(key(record), ""),
            "run_id": record["run_id"],
            "name": record["candidate"],
            "estimator": record.get("estimator"),
            "status": record.get("status"),
            "selected": bool(record.get("selected")),
            "error": record.get("error"),
            "started_at": record.get("started_at"),
            "data_hash": record.get("data_hash"),
            "feature_service": record.get("feature_service"),
            "code": code_label(record),
            "flow_run_id": record.get("flow_run_id"),
            **{name: record.get(name) for name, _ in COSTS},
        }
        for metric, held in sorted((record.get("metrics") or {}).items()):
            if isinstance(held, dict):
                row[metric] = held.get("value")
                row[f"{metric} low"] = held.get("low")
                row[f"{metric} high"] = held.get("high")
        for name, value in sorted((record.get("params") or {}).items()):
            row[f"param {name}"] = _scalar(value)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)
    return frame


def _scalar(value: Any) -> Any:
    return value if value is None or isinstance(value, int | float | str | bool) else str(value)


def metric_names(frame: pd.DataFrame) -> list[str]:
    """Metrics that carry an interval (``<m>``, ``<m> low``, ``<m> high``)."""
    return [c for c in frame.columns if f"{c} low" in frame.columns]


def param_names(frame: pd.DataFrame) -> list[str]:
    """Parameters that vary across the candidates shown (a constant says nothing)."""
    params = [c for c in frame.columns if c.startswith("param ")]
    return [c for c in params if frame[c].astype(str).nunique() > 1] or params


def with_interval(frame: pd.DataFrame, metric: str) -> pd.Series:
    """``0.8421 [0.8210, 0.8611]`` per row: the value and its 95 % interval in one cell."""
    low, high = frame[f"{metric} low"], frame[f"{metric} high"]
    return pd.Series(
        [
            "–" if pd.isna(v) else f"{v:.4f}" + ("" if pd.isna(lo) else f" [{lo:.4f}, {hi:.4f}]")
            for v, lo, hi in zip(frame[metric], low, high, strict=True)
        ],
        index=frame.index,
    )


def parallel(frame: pd.DataFrame, axes: list[str], colour: str) -> pd.DataFrame:
    """Long rows ``candidate, axis, order, value, scaled`` for parallel coordinates.

    Each axis is scaled to 0..1 between its own minimum and maximum (a text parameter by
    the order of its values), so axes in different units share one chart; a constant axis
    sits at 0.5.
    """
    long = []
    for order, axis in enumerate(axes):
        values = frame[axis]
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().sum() == values.notna().sum() and numeric.notna().any():
            low, high = numeric.min(), numeric.max()
            scaled = (numeric - low) / (high - low) if high > low else numeric * 0 + 0.5
            shown = numeric.map(lambda v: "–" if pd.isna(v) else f"{v:.4g}")
        else:
            levels = sorted(values.dropna().astype(str).unique())
            rank = values.astype(str).map({v: i for i, v in enumerate(levels)})
            scaled = rank / (len(levels) - 1) if len(levels) > 1 else rank * 0 + 0.5
            shown = values.astype(str)
        long.append(
            pd.DataFrame(
                {
                    "candidate": frame["candidate"],
                    "axis": axis.removeprefix("param "),
                    "order": order,
                    "value": shown,
                    "scaled": scaled.astype(float),
                    "colour": frame[colour],
                }
            )
        )
    return pd.concat(long, ignore_index=True) if long else pd.DataFrame()


def curve(records: list[dict[str, Any]], kind: str) -> pd.DataFrame:
    """One diagnostics curve (``roc``, ``precision_recall``, ``calibration``) of each record,
    long, with the candidate's name."""
    parts = [
        pd.DataFrame(record["diagnostics"][kind]).assign(candidate=key(record))
        for record in records
        if (record.get("diagnostics") or {}).get(kind)
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def confusion(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Cells ``candidate, actual, predicted, count, share`` at each record's threshold."""
    rows = []
    for record in records:
        counts = (record.get("diagnostics") or {}).get("confusion")
        if not counts:
            continue
        total = sum(counts[k] for k in ("tp", "fp", "tn", "fn")) or 1
        for actual, predicted, cell in (
            ("churn", "churn", "tp"),
            ("churn", "stay", "fn"),
            ("stay", "churn", "fp"),
            ("stay", "stay", "tn"),
        ):
            rows.append(
                {
                    "candidate": key(record),
                    "threshold": counts.get("threshold"),
                    "actual": actual,
                    "predicted": predicted,
                    "count": int(counts[cell]),
                    "share": counts[cell] / total,
                }
            )
    return pd.DataFrame(rows)


def importance(records: list[dict[str, Any]], top: int = 15) -> pd.DataFrame:
    """Permutation importance (mean, std) per candidate, the ``top`` features of any."""
    parts = [
        pd.DataFrame(record["diagnostics"]["importance"]).assign(candidate=key(record))
        for record in records
        if (record.get("diagnostics") or {}).get("importance")
    ]
    if not parts:
        return pd.DataFrame()
    frame = pd.concat(parts, ignore_index=True)
    best = frame.groupby("feature")["mean"].max().nlargest(top).index
    frame = frame[frame["feature"].isin(best)]
    return frame.assign(low=frame["mean"] - frame["std"], high=frame["mean"] + frame["std"])


def segments(records: list[dict[str, Any]]) -> tuple[str | None, pd.DataFrame]:
    """The configured segment column and its rows per candidate (``roc_auc`` may be None)."""
    column, parts = None, []
    for record in records:
        held = (record.get("diagnostics") or {}).get("segments") or {}
        if held.get("rows"):
            column = column or held.get("column")
            parts.append(pd.DataFrame(held["rows"]).assign(candidate=key(record)))
    return column, (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame())


def diff(first: pd.Series, second: pd.Series, metrics: list[str]) -> pd.DataFrame:
    """Field-by-field: provenance, costs, metrics and parameters of two candidates."""
    fields = [(c, label) for c, label in PROVENANCE + COSTS]
    fields += [(m, charts.metric_label(m)) for m in metrics]
    params = sorted({c for c in (*first.index, *second.index) if c.startswith("param ")})
    fields += [(c, c.removeprefix("param ") + " (parameter)") for c in params]
    rows = []
    for column, label in fields:
        a, b = _shown(first.get(column)), _shown(second.get(column))
        rows.append({"field": label, "first": a, "second": b, "differs": a != b})
    return pd.DataFrame(rows)


def _shown(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
