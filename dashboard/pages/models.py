"""Models and promotions: versions by stage with gates and history; operators act here.

Every action starts the matching Prefect deployment run (the flow applies the gates and
writes the registry), names the logged-in user as the actor, and needs a reason.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from loaders import actions, common, prefect_runs, registry
from loopline.users import User

STAGES = ["candidate", "staging", "production", "archived"]
ACTIONS = {
    "Promote": "promote",
    "Approve": "approve",
    "Roll out": "traffic",
    "Roll back": "rollback",
    "Retrain": "retrain",
}
POLICIES = ["canary", "ab", "shadow", "blue-green", "single"]


def models() -> None:
    st.title("Models and promotions")
    where = common.paths()
    url = where.registry_url
    name = common.params(str(where.params_file)).serving.model_name
    versions = registry.versions(url)
    if versions.empty:
        common.empty("No model versions yet", "run `loopline run` or `make up`")
    else:
        state = registry.serving_state(url, name)
        st.caption(
            f"Production **{state['production'] or 'none'}** · challenger "
            f"**{state['challenger'] or 'none'}** · policy **{state['policy']}** "
            f"({state['challenger_share']:.0%} to the challenger)"
        )
        counts = versions["stage"].value_counts()
        for column, stage in zip(st.columns(len(STAGES)), STAGES, strict=True):
            column.metric(stage.capitalize(), int(counts.get(stage, 0)))
        stages = st.multiselect("Stages shown", STAGES, default=STAGES[:3])
        st.dataframe(versions[versions["stage"].isin(stages or STAGES)], hide_index=True)

        pending = registry.pending_approvals(url)
        if pending:
            st.subheader("Waiting for approval")
            st.dataframe(pending, hide_index=True)

        st.subheader("Gates and history of a version")
        choices = versions["version"].tolist()
        wanted = st.query_params.get("version") or state["production"]  # linked from Lineage
        first = choices.index(wanted) if wanted in choices else 0
        version = st.selectbox("Version", choices, index=first, key="models_version")
        gates = registry.gate_results(url, version)
        if gates.empty:
            st.caption("No gate results recorded: this version was never put up for promotion.")
        else:
            st.dataframe(gates, hide_index=True)
        st.dataframe(registry.history(url, version=version), hide_index=True)

    st.subheader("Act")
    user = common.current_user()
    if user is None or not user.can_act:
        st.info("You are signed in as a viewer: you see everything; operators can act.")
    else:
        act(user, name, versions)
    started = st.session_state.get("started_runs", [])
    running = any(r.flow_run_id not in st.session_state.get("seen_final", set()) for r in started)
    st.fragment(progress, run_every=2 if running else None)()


def act(user: User, model_name: str, versions: pd.DataFrame) -> None:
    choice = st.segmented_control("Action", list(ACTIONS), default="Promote", key="models_action")
    action = ACTIONS[choice or "Promote"]
    open_stages = versions["stage"].isin(["candidate", "staging"]) if len(versions) else []
    movable = versions.loc[open_stages, "version"].tolist() if len(versions) else []
    waiting = {
        a["version"]: a["approver"] for a in registry.pending_approvals(common.paths().registry_url)
    }
    with st.form(f"act_{action}", clear_on_submit=True):
        parameters: dict[str, Any] = {}
        if action == "promote":
            parameters["version"] = st.selectbox("Version to promote", movable)
        elif action == "approve":
            parameters["version"] = st.selectbox(
                "Version to approve",
                list(waiting),
                format_func=lambda v: f"{v} (approver {waiting[v]})",
            )
        elif action == "traffic":
            policy = st.selectbox("Policy", POLICIES, help="single ends a rollout")
            challenger = st.selectbox("Challenger", movable)
            share = st.slider("Share of traffic to the challenger (%)", 0, 100, 10)
            single = policy == "single"
            parameters |= {
                "policy": policy,
                "challenger": None if single else challenger,
                "challenger_share": 0.0 if single else share / 100,
            }
        elif action == "rollback":
            st.write("Production goes back to the version that held it before the current one.")
            parameters["model_name"] = model_name
        else:
            st.write("Ingest, train and package once; the new version arrives as a candidate.")
        reason = st.text_input("Reason (required)", key=f"reason_{action}")
        submitted = st.form_submit_button(choice or "Promote", type="primary")
    if not submitted:
        return
    problem = _problem(user, action, parameters, reason, waiting)
    if problem:
        st.error(problem)
        return
    try:
        started = actions.start_action(user, action, reason, **parameters)
    except (actions.ActionUnavailable, PermissionError, ValueError) as exc:
        st.error(str(exc))
        return
    st.session_state.setdefault("started_runs", []).append(started)
    st.success(f"Started {started.deployment} as {user.name}: flow run {started.flow_run_id}")


def _problem(
    user: User, action: str, parameters: dict[str, Any], reason: str, waiting: dict[str, str]
) -> str | None:
    if action in ("promote", "approve") and not parameters.get("version"):
        return "Pick a version first."
    if action == "traffic" and parameters["policy"] != "single" and not parameters["challenger"]:
        return "Pick a challenger first."
    approver = waiting.get(parameters.get("version") or "")
    if action == "approve" and approver != user.name:
        return f"{parameters['version']} awaits approval by {approver}, not {user.name}."
    if not reason.strip():
        return "A reason is required: say why, it goes into the audit trail."
    return None


def progress() -> None:
    started = st.session_state.get("started_runs", [])
    api = common.prefect_api()
    if started and api:
        st.subheader("Runs you started")
        seen = st.session_state.setdefault("seen_final", set())
        for run in reversed(started[-5:]):
            try:
                state = prefect_runs.run_state(api, run.flow_run_id)
            except Exception as exc:  # Prefect went away: say so, keep the page
                st.warning(f"Cannot read the state of flow run {run.flow_run_id}: {exc}")
                continue
            label = f"{run.action} {_target(run.parameters)} · {state.name}"
            status = (
                "complete" if state.type == "COMPLETED" else "error" if state.final else "running"
            )
            with st.status(label, state=status, expanded=state.final and status == "error"):
                st.write(f"{run.deployment}, started by {run.actor}: {run.reason}")
                if state.message:
                    st.write(state.message)
                st.link_button("Open in Prefect", run.link)
            if state.final and run.flow_run_id not in seen:
                seen.add(run.flow_run_id)
                st.cache_data.clear()  # the registry changed: every page reloads what it shows
                st.rerun(scope="app")
    recent = actions.recent_actions(common.paths())
    if not recent.empty:
        st.subheader("Recent actions from the dashboard")
        st.dataframe(recent, hide_index=True)


def _target(parameters: dict[str, Any]) -> str:
    return str(
        parameters.get("version")
        or parameters.get("challenger")
        or parameters.get("model_name")
        or ""
    )


models()
