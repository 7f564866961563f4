"""The rollout review: promote, roll back or keep collecting, on live labelled evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from loopline.config import Params
from loopline.settings import Paths


def _live(paths: Paths, since: datetime) -> dict[str, dict[str, Any]]:
    from loopline.serving.predlog_read import live_accuracy

    live = live_accuracy(paths.serving_log, since=since, by=("model_version",))
    return {str(r["model_version"]): r for r in live.to_dict("records")}


def review_rollout(
    params: Params, paths: Paths, *, actor: str, now: datetime | None = None
) -> dict[str, Any]:
    """Promote the challenger if its live ROC AUC is at least the champion's; else roll back."""
    from loopline import promotion

    now = now or datetime.now(UTC)
    name = params.serving.model_name
    registry = promotion.open_registry(paths)
    challenger, champion = registry.challenger(name), registry.production(name)
    if challenger is None or champion is None:
        return {"decision": "none", "why": "no rollout in progress"}
    started = _rollout_started(registry, challenger.version)
    m = params.monitoring
    if now - started < timedelta(minutes=m.canary_minutes):
        return {"decision": "wait", "why": f"rollout younger than {m.canary_minutes} min"}
    scores = _live(paths, started)
    mine, theirs = scores.get(challenger.version), scores.get(champion.version)
    if mine is None or theirs is None or mine["n_labelled"] < m.canary_min_labels:
        have = 0 if mine is None else mine["n_labelled"]
        return {"decision": "wait", "why": f"{have} of {m.canary_min_labels} labels"}
    both_auc = pd.notna(mine["roc_auc"]) and pd.notna(theirs["roc_auc"])
    metric = "roc_auc" if both_auc else "accuracy"
    evidence = (
        f"live {metric} {mine[metric]:.4f} on {mine['n_labelled']} labels vs champion "
        f"{theirs[metric]:.4f} on {theirs['n_labelled']}"
    )
    won = mine[metric] >= theirs[metric]
    end = "rollout won" if won else "rollout lost"
    promotion.set_traffic(
        params,
        paths,
        policy="single",
        challenger=None,
        share=0.0,
        actor=actor,
        reason=f"{end}: {evidence}",
    )
    if won:
        check = {
            "name": f"live:{metric}",
            "value": mine[metric],
            "threshold": theirs[metric],
            "passed": True,
            "detail": evidence,
        }
        moved = registry.request_promotion(
            challenger.version, actor=actor, reason=f"{end}: {evidence}", gate_results=[check]
        )
        promotion.announce(promotion.PROMOTED, moved, actor=actor, reason=evidence)
        return {"decision": "promoted", "version": challenger.version, "evidence": evidence}
    registry.transition(challenger.version, "archived", actor=actor, reason=f"{end}: {evidence}")
    return {"decision": "rolled_back", "version": challenger.version, "evidence": evidence}


def _rollout_started(registry: Any, version: str) -> datetime:
    entries = [e for e in registry.history(version=version) if e.action == "alias_set"]
    return entries[-1].at if entries else registry.get(version).created_at
