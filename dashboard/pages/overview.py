"""Overview: what serves where, how the service is doing, live accuracy, drift, flow runs."""

from __future__ import annotations

import os

import streamlit as st

from loaders import common, drift, predictions, prefect_runs, registry, service_metrics


def overview() -> None:
    st.title("Overview")
    where = common.paths()
    params = common.params(str(where.params_file))
    name, url = params.serving.model_name, where.registry_url
    state = registry.serving_state(url, name)

    st.subheader(f"What serves `{name}`")
    if state["production"] is None and registry.versions(url).empty:
        common.empty("No model versions yet", "run `loopline run` or `make up`")
    else:
        share = state["challenger_share"]
        row = st.container(horizontal=True)  # versions are long: size each to its content
        row.metric("Production", state["production"] or "none", width="content", border=True)
        row.metric("Challenger", state["challenger"] or "none", width="content", border=True)
        policy = f"{state['policy']} · {share:.0%} to challenger"
        row.metric("Traffic policy", policy, width="content", border=True)
        by = f" · policy set by {state['policy_updated_by']}" if state["policy_updated_by"] else ""
        st.caption(f"Production promoted {common.since_label(state['promoted_at'])}{by}")

    live_service(common.serving_url())
    prometheus = os.environ.get("LOOPLINE_PROMETHEUS_URL", "").rstrip("/")
    if prometheus:  # set by `make up` when it started Prometheus (docs/deploy.md)
        st.caption(f"History, alerts and targets: [Prometheus]({prometheus})")

    st.subheader("Live accuracy since promotion")
    live = predictions.live_accuracy(str(where.serving_log), state["promoted_at"])
    if live.empty:
        common.empty(
            "No labelled predictions since the promotion yet",
            "labels arrive through the service's `/feedback` (`loopline simulate` replays some)",
        )
    else:
        st.dataframe(live, hide_index=True, column_config=_ratio_columns())

    st.subheader("Drift")
    last = drift.latest_window(url, name)
    if last is None:
        common.empty(
            "No monitoring windows yet",
            "run `loopline monitor` (every few minutes under `make up`)",
        )
    else:
        threshold = params.monitoring.drift_share_threshold
        drifting = last["drift_share"] >= threshold
        cols = st.columns(4)
        cols[0].metric("Drift status", "DRIFT" if drifting else "OK")
        share = f"{last['drift_share']:.0%}"
        cols[1].metric("Drift share", share, help=f"threshold {threshold:.0%}")
        cols[2].metric("Drifted features", int(last["drifted_features"]))
        cols[3].metric("Last window", common.since_label(last["window_end"]))

    st.subheader("Last flow runs")
    api = common.prefect_api()
    down = prefect_runs.prefect_up(api) if api else "PREFECT_API_URL is not set"
    if api is None or down:
        common.empty(f"No Prefect server to ask ({down})", "start the platform with `make up`")
        return
    runs = prefect_runs.flow_runs(api)
    if runs.empty:
        common.empty(
            "No flow runs yet", "run `loopline run`, or start one from Models and promotions"
        )
    else:
        link = st.column_config.LinkColumn("Prefect UI", display_text="open")
        st.dataframe(runs, hide_index=True, column_config={"link": link})


@st.fragment(run_every=5)
def live_service(serving_url: str) -> None:
    st.subheader("Service")
    live = service_metrics.live_service(serving_url)
    if live.error:
        common.empty(
            f"The service is not reachable at {serving_url} ({live.error})",
            "start it with `make up` (or `loopline serve`)",
        )
        return
    cols = st.columns(4)
    rate = "collecting…" if live.request_rate is None else f"{live.request_rate:.2f}/s"
    cols[0].metric("Request rate", rate, help=f"over the last {live.window_s:.0f} s")
    cols[1].metric("Latency p50", _ms(live.latency_p50_ms))
    cols[2].metric("Latency p95", _ms(live.latency_p95_ms))
    errors = "–" if live.error_rate is None else f"{live.error_rate:.2%}"
    cols[3].metric("Error rate", errors, help=f"{live.total_errors:.0f} refused in total")
    if live.by_arm:
        st.dataframe(live.by_arm, hide_index=True)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} ms"


def _ratio_columns() -> dict[str, object]:
    number = st.column_config.NumberColumn
    return {k: number(format="%.3f") for k in ("accuracy", "roc_auc", "positive_rate")}


overview()
