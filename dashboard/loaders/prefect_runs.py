"""Prefect's API as the pages read it: is it up, recent flow runs, one run's state."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import streamlit as st

from loaders.common import http

if TYPE_CHECKING:
    import pandas as pd

FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


@st.cache_data(ttl=10, show_spinner=False)
def prefect_up(api: str) -> str | None:
    """None when Prefect answers at ``api``; else why not."""
    import httpx

    try:
        http().get(f"{api.rstrip('/')}/health").raise_for_status()
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@st.cache_data(ttl=10, show_spinner=False)
def flow_runs(api: str, per_flow: int = 3) -> pd.DataFrame:
    """The last ``per_flow`` runs of each flow that has started (scheduled ones left out)."""
    import pandas as pd
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    started = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=[StateType.SCHEDULED]))
    )
    with _prefect_client(api) as client:
        found = client.read_flow_runs(
            flow_run_filter=started, sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=200
        )
        ids = list({run.flow_id for run in found})
        flows = client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(any_=ids))) if ids else []
    names = {flow.id: flow.name for flow in flows}
    rows = [
        {
            "flow": names.get(run.flow_id, str(run.flow_id)),
            "run": run.name,
            "state": run.state_name or (run.state.name if run.state else None),
            "started": run.start_time or run.expected_start_time,
            "duration_s": run.total_run_time.total_seconds() if run.total_run_time else None,
            "link": ui_link(api, str(run.id)),
        }
        for run in found
    ]
    frame = pd.DataFrame(rows, columns=["flow", "run", "state", "started", "duration_s", "link"])
    return frame.groupby("flow", sort=True).head(per_flow).reset_index(drop=True)


def ui_link(api: str, flow_run_id: str) -> str:
    ui = os.environ.get("PREFECT_UI_URL") or api.rstrip("/").removesuffix("/api")
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}"


def _prefect_client(api: str) -> Any:
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(
        api,
        api_key=os.environ.get("PREFECT_API_KEY"),
        auth_string=os.environ.get("PREFECT_API_AUTH_STRING"),
    )


@dataclass(frozen=True)
class RunState:
    """Where a started run is: Prefect's state type and name, and its message."""

    type: str
    name: str
    message: str | None

    @property
    def final(self) -> bool:
        return self.type in FINAL_STATES


def run_state(api: str, flow_run_id: str) -> RunState:
    """The current state of a flow run (not cached: progress is polled)."""
    from uuid import UUID

    with _prefect_client(api) as client:
        run = client.read_flow_run(UUID(flow_run_id))
    state = run.state
    if state is None:
        return RunState("PENDING", "Pending", None)
    return RunState(str(state.type.value), state.name, state.message)
