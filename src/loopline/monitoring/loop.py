"""The closed loop's steps: monitor a window, retrain into a rollout, review the rollout.

Flows in ``flows/monitor.py`` wire these; Prefect events connect them (the monitor emits
``loopline.drift.detected`` / ``loopline.performance.degraded`` and a deployment trigger
starts ``retrain``), so there is no polling loop of our own.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from loopline.config import Params
from loopline.settings import Paths

log = logging.getLogger(__name__)

DRIFT = "loopline.drift.detected"
DEGRADED = "loopline.performance.degraded"
NEW_DATA = "loopline.data.new_version"


def _policy(params: Params) -> Any:
    from loopline.monitoring.policy import MonitoringPolicy

    m = params.monitoring
    return MonitoringPolicy(
        drift_share_threshold=m.drift_share_threshold,
        min_window_rows=m.min_window_rows,
        accuracy_drop=m.accuracy_drop,
        min_labels=m.min_labels,
        cooldown_hours=m.cooldown_hours,
    )


def _columns(model: Any, params: Params) -> tuple[list[str], list[str]]:
    inputs = list(model.feature_names_in_)
    categorical = [c for c in inputs if c in params.dataset.categorical]
    return [c for c in inputs if c not in categorical], categorical


def _last_trigger(windows: list[dict[str, Any]]) -> datetime | None:
    fired = [w["computed_at"] for w in windows if w.get("events")]
    return max(fired) if fired else None


def monitor_window(
    params: Params, paths: Paths, *, now: datetime | None = None, minutes: float | None = None
) -> dict[str, Any]:
    """Compare the last window of served predictions with the champion's reference."""
    from loopline.monitoring.drift import compare_window
    from loopline.monitoring.policy import decide
    from loopline.promotion import open_registry, verified_model
    from loopline.serving.predlog_read import labelled_predictions, read_predictions
    from loopline.tracking import Store

    now = now or datetime.now(UTC)
    since = now - timedelta(minutes=minutes or params.monitoring.window_minutes)
    name = params.serving.model_name
    champion = open_registry(paths).production(name)
    if champion is None:
        return {"skipped": "no model in production yet"}
    served = read_predictions(paths.serving_log, since=since, until=now)
    if served.empty:
        return {"skipped": f"no predictions since {since:%Y-%m-%d %H:%M}"}
    served = served[(~served["shadow"]) & (served["model_version"] == champion.version)]
    labelled = labelled_predictions(paths.serving_log, since=since, until=now)
    labelled = labelled[labelled["model_version"] == champion.version]
    current = served.merge(
        labelled[["request_id", "entity_id", "actual"]], on=["request_id", "entity_id"], how="left"
    )
    model, reference = verified_model(champion)
    numeric, categorical = _columns(model, params)
    reference = reference.assign(score=model.predict_proba(reference[numeric + categorical])[:, 1])
    reference = reference.rename(columns={params.dataset.label: "actual"})
    result = compare_window(
        reference,
        current,
        numeric=numeric,
        categorical=categorical,
        score_column="score",
        label_column="actual",
        prediction_column="label",
        report_dir=paths.reports / f"{now:%Y%m%dT%H%M%S}",
        feature_threshold=params.monitoring.feature_drift_threshold,
    )
    store = Store(paths.registry_url).migrate()
    decision = decide(
        result,
        holdout_auc=float(champion.metrics.get("roc_auc", float("nan"))),
        last_trigger_at=_last_trigger(store.windows(name)),
        now=now,
        policy=_policy(params),
    )
    summary = {
        "model_version": champion.version,
        "window_start": since,
        "window_end": now,
        "rows": result.rows,
        "drift_share": result.drift_share,
        "drifted_features": result.drifted_features,
        "feature_scores": result.feature_scores,
        "prediction_drift": result.prediction_drift,
        "n_labels": result.n_labels,
        "accuracy": result.accuracy,
        "roc_auc": result.roc_auc,
        "report_html": result.report_html,
        "report_json": result.report_json,
        "events": list(decision.events),
    }
    store.record_window(computed_at=now, model_name=name, **summary)
    store.close()
    if decision.events:
        # One window, one event: a trigger per kind would start one retrain per kind, and
        # two retrains racing for the same rollout help nobody. The payload names them all.
        evidence = {**_evidence(summary), "events": list(decision.events)}
        emit(decision.events[0], name, evidence | {"reasons": list(decision.reasons)})
    return {
        **summary,
        "drifted": list(result.drifted),
        "reasons": list(decision.reasons),
        "too_small": decision.too_small,
    }


def compact_logs(paths: Paths, now: datetime | None = None) -> list[str]:
    """Merge yesterday's many small log files (one per flush per worker) into one per table."""
    from loopline.serving.predlog_read import compact

    day = ((now or datetime.now(UTC)) - timedelta(days=1)).date()
    merged = [compact(paths.serving_log, table, day) for table in ("predictions", "feedback")]
    return [str(m) for m in merged if m is not None]


def _evidence(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("model_version", "rows", "drift_share", "drifted_features", "n_labels", "roc_auc")
    return {k: summary[k] for k in keys} | {"window_end": str(summary["window_end"])}


def emit(event: str, model_name: str, payload: dict[str, Any]) -> None:
    """A Prefect event about this model; automations and deployment triggers react to it."""
    from prefect.events import emit_event

    emit_event(
        event=event,
        resource={"prefect.resource.id": f"loopline.model.{model_name}"},
        payload=payload,
    )


def retrain(params: Params, paths: Paths, *, actor: str, reason: str) -> dict[str, Any]:
    """Train on the current data version, gate the result, and start its rollout."""
    from loopline import promotion, steps

    steps.prepare_step(params, paths)
    steps.validate_step(params, paths)
    steps.features_step(params, paths)
    trained = steps.train_step(params, paths)
    evaluation = steps.evaluate_step(params, paths)
    steps.record_run(params, paths, trained, evaluation, None)
    packaged = steps.package_step(params, paths, registered_by=actor, why=f"retrained: {reason}")
    version = packaged["model"]
    registry = promotion.open_registry(paths)
    report = promotion.check_gates(params, registry, registry.get(version))
    if not report.passed:
        return {"version": version, "rolled_out": False, "gates": report.as_json()}
    m = params.monitoring
    table = promotion.set_traffic(
        params,
        paths,
        policy=m.rollout,
        challenger=version,
        share=m.canary_share if m.rollout == "canary" else 1.0,
        actor=actor,
        reason=f"{reason}; gates passed",
    )
    return {"version": version, "rolled_out": True, "traffic": table, "gates": report.as_json()}


def review_rollout(
    params: Params, paths: Paths, *, actor: str, now: datetime | None = None
) -> dict[str, Any]:
    """Decide a running canary or shadow rollout (see :mod:`loopline.monitoring.review`)."""
    from loopline.monitoring.review import review_rollout as review

    return review(params, paths, actor=actor, now=now)
