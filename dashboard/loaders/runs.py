"""Training runs and the candidates each one tried, from the tracking store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import streamlit as st

from loaders.common import store_at as store

if TYPE_CHECKING:
    import pandas as pd


@st.cache_data(ttl=30, show_spinner=False)
def runs(url: str) -> pd.DataFrame:
    """Every training run, newest first; parameters as ``param.*`` and metrics as columns."""
    import pandas as pd

    rows = []
    for run in store(url).runs():
        rows.append(
            {
                "run_id": run["run_id"],
                "started_at": run["started_at"],
                "model_name": run["model_name"],
                "selected": run["selected"],
                "metric": run["metric"],
                "data_hash": run["data_hash"],
                "feature_service": run["feature_service"],
                "flow_run_id": run["flow_run_id"],
                "candidates": len(run["candidates"] or []),
                **{f"param.{k}": _scalar(v) for k, v in sorted(run["params"].items())},
                **{k: v for k, v in sorted(run["metrics"].items())},
            }
        )
    return pd.DataFrame(rows)


def _scalar(value: Any) -> Any:
    return value if value is None or isinstance(value, int | float | str | bool) else str(value)


@st.cache_data(ttl=30, show_spinner=False)
def run_candidates(url: str, run_ids: tuple[str, ...]) -> pd.DataFrame:
    """Every candidate each of ``run_ids`` tried, one row per candidate."""
    import pandas as pd

    wanted = set(run_ids)
    rows = []
    for run in store(url).runs():
        if run["run_id"] in wanted:
            for candidate in run["candidates"] or []:
                rows.append({"run_id": run["run_id"], **candidate})
    return pd.DataFrame(rows)


@st.cache_data(ttl=30, show_spinner=False)
def candidates(url: str, run_ids: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Every candidate record of ``run_ids`` (all runs when None), as the tracking store keeps
    them: parameters, holdout metrics with intervals, costs, provenance and diagnostics."""
    return store(url).candidates(list(run_ids) if run_ids is not None else None)
