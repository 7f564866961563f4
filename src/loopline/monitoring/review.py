"""The rollout review: promote, roll back or keep collecting, on live labelled evidence.

The decision itself is :func:`loopline.monitoring.verdict.decide`; this module reads the
prediction log, pairs shadow answers with the champion's by request, records every
verdict (waits and extensions included) in the registry history, and acts on it through
:mod:`loopline.promotion`, the one path that changes what serves.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from loopline.config import Params
from loopline.monitoring.verdict import Rule, Sample, Verdict, decide, finite
from loopline.settings import Paths

if TYPE_CHECKING:
    import pandas as pd

    from loopline.registry import Registry

# What the review returns for each verdict (the dashboard and the story read these).
OUTCOME = {"promote": "promoted", "rollback": "rolled_back", "extend": "extended", "wait": "wait"}
KEY = ["request_id", "entity_id"]


def rule_of(params: Params) -> Rule:
    """The verdict's rule from ``monitoring.review`` (and the per-arm ``canary_min_labels``)."""
    r = params.monitoring.review
    return Rule(
        confidence=r.confidence,
        margin=r.margin,
        min_positives=r.min_positives,
        min_negatives=r.min_negatives,
        min_labels=params.monitoring.canary_min_labels,
        max_labels=r.max_labels,
        max_minutes=r.max_minutes,
        default=r.default,
        metric=r.metric,
        method=r.method,
        resamples=r.resamples,
        seed=r.seed,
    )


def review_rollout(
    params: Params, paths: Paths, *, actor: str, now: datetime | None = None
) -> dict[str, Any]:
    """Decide the running canary or shadow rollout; record the verdict; act on it."""
    from loopline import promotion

    now = now or datetime.now(UTC)
    name = params.serving.model_name
    registry = promotion.open_registry(paths)
    challenger, champion = registry.challenger(name), registry.production(name)
    if challenger is None or champion is None:
        return {"decision": "none", "why": "no rollout in progress"}
    started = _rollout_started(registry, challenger.version)
    paired = registry.policy(name).kind == "shadow"
    frame = _labelled(paths, started)
    mine, theirs = _samples(frame, champion.version, challenger.version, paired)
    minutes = (now - started) / timedelta(minutes=1)
    verdict = decide(theirs, mine, paired=paired, rule=rule_of(params), minutes=minutes)
    youngest = params.monitoring.canary_minutes
    if minutes < youngest and verdict.decision != "wait":
        why = f"rollout {minutes:.0f} min old, younger than canary_minutes {youngest:g}"
        verdict = dataclasses.replace(verdict, decision="wait", reason=why, by_default=False)
    _record(registry, challenger.version, verdict, actor)
    outcome = {
        "decision": OUTCOME[verdict.decision],
        "version": challenger.version,
        "evidence": verdict.evidence,
        "verdict": verdict.as_json(),
    }
    if verdict.decision in ("wait", "extend"):
        return outcome | {"why": verdict.reason}
    won = verdict.decision == "promote"
    reason = f"rollout {'won' if won else 'lost'}: {verdict.evidence}"
    promotion.set_traffic(
        params, paths, policy="single", challenger=None, share=0.0, actor=actor, reason=reason
    )
    if won:
        moved = registry.request_promotion(
            challenger.version, actor=actor, reason=reason, gate_results=[_gate(verdict)]
        )
        promotion.announce(promotion.PROMOTED, moved, actor=actor, reason=verdict.evidence)
    else:
        registry.transition(challenger.version, "archived", actor=actor, reason=reason)
    return outcome


def _labelled(paths: Paths, since: datetime) -> pd.DataFrame:
    from loopline.serving.predlog_read import labelled_predictions

    return labelled_predictions(paths.serving_log, since=since, include_shadow=True)


def _samples(
    frame: pd.DataFrame, champion: str, challenger: str, paired: bool
) -> tuple[Sample, Sample]:
    """The challenger's and the champion's samples; paired ones row-aligned by request."""
    served = frame[~frame["shadow"].astype(bool)]
    if paired:
        # The champion answered; the challenger scored the same request in the shadow.
        first = served[served["model_version"] == champion]
        second = frame[frame["shadow"].astype(bool) & (frame["model_version"] == challenger)]
        both = first.merge(second, on=KEY, suffixes=("", "_shadow"))
        return (
            Sample.of(both["actual"], both["score_shadow"], both["label_shadow"]),
            Sample.of(both["actual"], both["score"], both["label"]),
        )
    arms = [served[served["model_version"] == v] for v in (challenger, champion)]
    mine, theirs = (Sample.of(a["actual"], a["score"], a["label"]) for a in arms)
    return mine, theirs


def _gate(verdict: Verdict) -> dict[str, Any]:
    """The promotion's ``live:<metric>`` check: the bound that passed, the interval behind it."""
    lo, hi = verdict.interval
    check = {
        "name": f"live:{verdict.metric}",
        "value": verdict.values.get("challenger"),
        "threshold": verdict.values.get("champion"),
        "passed": True,
        "detail": verdict.evidence,
        "test": verdict.test,
        "estimate": verdict.estimate,
        "interval": [lo, hi],
        "confidence": verdict.confidence,
        "by_default": verdict.by_default,
    }
    return dict(finite(check))


def _record(registry: Registry, version: str, verdict: Verdict, actor: str) -> None:
    # The monitor reviews every few minutes: a verdict identical to the last one recorded
    # (no new label arrived) would only repeat it.
    details = verdict.as_json()
    last = registry.history(version=version)[-1]
    if last.action == "review" and last.details == details:
        return
    registry.record_review(version, actor=actor, reason=verdict.evidence, details=details)


def _rollout_started(registry: Any, version: str) -> datetime:
    entries = [e for e in registry.history(version=version) if e.action == "alias_set"]
    return entries[-1].at if entries else registry.get(version).created_at
