"""The registry as the pages show it: versions, what serves, gates, history, lineage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import streamlit as st

from loaders.common import registry_at as registry

if TYPE_CHECKING:
    import pandas as pd


@st.cache_data(ttl=5, show_spinner=False)
def versions(url: str) -> pd.DataFrame:
    """Every registered version, newest first, with its lineage keys and metrics as columns."""
    import pandas as pd

    rows = []
    for record in registry(url).list_versions():
        lineage = record.lineage
        rows.append(
            {
                "version": record.version,
                "model_name": record.model_name,
                "stage": record.stage.value,
                "created_at": record.created_at,
                "aliases": ", ".join(record.aliases),
                "pending_approver": record.pending_approver,
                "data_hash": lineage.get("data_hash"),
                "feature_service": lineage.get("feature_service"),
                "estimator": lineage.get("estimator"),
                "bento": lineage.get("bento"),
                **{name: value for name, value in sorted(record.metrics.items())},
            }
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values("created_at", ascending=False, ignore_index=True) if rows else frame


@st.cache_data(ttl=5, show_spinner=False)
def serving_state(url: str, model_name: str) -> dict[str, Any]:
    """What serves ``model_name`` now: champion, challenger, policy, and since when."""
    view = registry(url)
    champion = view.production(model_name)
    challenger = view.challenger(model_name)
    policy = view.policy(model_name)
    promoted_at = None
    if champion is not None:
        moves = [e.at for e in view.history(version=champion.version) if e.to_stage == "production"]
        promoted_at = moves[-1] if moves else champion.created_at
    return {
        "production": champion.version if champion else None,
        "production_metrics": champion.metrics if champion else {},
        "promoted_at": promoted_at,
        "challenger": challenger.version if challenger else None,
        "policy": policy.kind.value,
        "challenger_share": policy.challenger_share,
        "policy_updated_by": policy.updated_by,
        "policy_updated_at": policy.updated_at,
    }


@st.cache_data(ttl=5, show_spinner=False)
def history(url: str, model_name: str | None = None, version: str | None = None) -> pd.DataFrame:
    """Registry history entries, newest first, with the gate verdict when one was recorded."""
    import pandas as pd

    rows = []
    for entry in registry(url).history(model_name=model_name, version=version):
        gates = entry.details.get("gate_results")
        rows.append(
            {
                "seq": entry.seq,
                "at": entry.at,
                "actor": entry.actor,
                "action": entry.action.value,
                "version": entry.version,
                "from_stage": entry.from_stage.value if entry.from_stage else None,
                "to_stage": entry.to_stage.value if entry.to_stage else None,
                "reason": entry.reason,
                "gates": _gate_verdict(gates) if gates else None,
            }
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values("seq", ascending=False, ignore_index=True) if rows else frame


def _gate_verdict(gates: list[dict[str, Any]]) -> str:
    ran = [g for g in gates if not g.get("skipped")]
    passed = sum(1 for g in ran if g.get("passed"))
    return f"{passed}/{len(ran)} passed" + (f", {len(gates) - len(ran)} skipped" if ran else "")


@st.cache_data(ttl=5, show_spinner=False)
def gate_results(url: str, version: str) -> pd.DataFrame:
    """The gate checks last recorded for ``version`` (a promotion or a pending approval)."""
    import pandas as pd

    view = registry(url)
    gates: list[dict[str, Any]] = []
    for approval in view.pending_approvals():
        if approval.version == version:
            gates = list(approval.gate_results)
    if not gates:
        for entry in reversed(view.history(version=version)):
            if entry.details.get("gate_results"):
                gates = list(entry.details["gate_results"])
                break
    rows = [
        {
            "check": g.get("name"),
            "status": "SKIP" if g.get("skipped") else ("PASS" if g.get("passed") else "FAIL"),
            "value": g.get("value"),
            "threshold": g.get("threshold"),
            "detail": g.get("detail"),
        }
        for g in gates
    ]
    return pd.DataFrame(rows, columns=["check", "status", "value", "threshold", "detail"])


@st.cache_data(ttl=5, show_spinner=False)
def pending_approvals(url: str) -> list[dict[str, Any]]:
    return [
        {
            "version": a.version,
            "approver": a.approver,
            "requested_by": a.requested_by,
            "requested_at": a.requested_at,
            "reason": a.reason,
        }
        for a in registry(url).pending_approvals()
    ]


@st.cache_data(ttl=30, show_spinner=False)
def lineage_graph(url: str, version: str) -> dict[str, Any]:
    from loopline.lineage import build_graph, to_json

    return to_json(build_graph(registry(url), version))


@st.cache_data(ttl=30, show_spinner=False)
def versions_for_data(url: str, data_hash: str) -> list[str]:
    from loopline.lineage import versions_for_data as trained_on

    return [record.version for record in trained_on(registry(url), data_hash)]


def markers(url: str, model_name: str) -> pd.DataFrame:
    """Retrains (a version registered) and promotions (a version to production), over time."""
    import pandas as pd

    frame = history(url, model_name)
    if frame.empty:
        return pd.DataFrame(columns=["at", "event", "version", "actor"])
    retrain = frame["action"] == "register"
    promote = frame["to_stage"] == "production"
    chosen = frame[retrain | promote].assign(
        event=lambda f: f["action"].map(lambda a: "retrain" if a == "register" else "promotion")
    )
    return chosen[["at", "event", "version", "actor"]].sort_values("at", ignore_index=True)


@st.cache_data(ttl=5, show_spinner=False)
def serving_versions(url: str, model_name: str) -> dict[str, dict[str, Any]]:
    """The champion (production) and challenger (staged, canary or shadow) and the runs
    that trained them: ``{"champion": {"version", "runs", "policy"}, ...}``.

    A version's run is named by its lineage: the flow run that trained it, or the run's
    workspace when no flow ran (``steps.record_run`` names runs the same way).
    """
    view = registry(url)
    policy = view.policy(model_name).kind.value
    found: dict[str, dict[str, Any]] = {}
    for role, record in (
        ("champion", view.production(model_name)),
        ("challenger", view.challenger(model_name)),
    ):
        if record is not None:
            names = {record.lineage.get("flow_run_id"), record.lineage.get("run_workspace")}
            found[role] = {
                "version": record.version,
                "runs": sorted(n for n in names if n),
                "policy": policy,
            }
    return found
