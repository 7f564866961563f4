"""The closed loop's steps: monitor a window, retrain into a rollout, review the rollout.

Flows in ``flows/monitor.py`` wire these; Prefect events connect them (the monitor emits
``loopline.drift.detected`` / ``loopline.performance.degraded`` and a deployment trigger
starts ``retrain``), so there is no polling loop of our own.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
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
        prior_tolerance=m.prior_tolerance,
        prior_confidence=m.prior_confidence,
        prior_min_positives=m.prior_min_positives,
        auc_confidence=m.auc_confidence,
        auc_min_class_labels=m.auc_min_class_labels,
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
    """Compare the last window of served predictions with the champion's reference.

    The reference is the traffic of recent healthy windows when there is enough of it
    (``monitoring.reference``), else the champion's holdout (see
    :mod:`loopline.monitoring.reference`).
    """
    from loopline.monitoring.drift import compare_window
    from loopline.monitoring.policy import decide
    from loopline.monitoring.reference import (
        MAX_REFERENCE_ROWS,
        Reference,
        healthy_spans,
        served_rows,
        window_reference,
    )
    from loopline.privacy.subjects import tombstones
    from loopline.promotion import open_registry, verified_model
    from loopline.tracking import Store

    m = params.monitoring
    now = now or datetime.now(UTC)
    since = now - timedelta(minutes=minutes or m.window_minutes)
    name = params.serving.model_name
    champion = open_registry(paths).production(name)
    if champion is None:
        return {"skipped": "no model in production yet"}
    current = served_rows(paths.serving_log, champion.version, since, now)
    erased = tombstones(paths)  # an erased subject's rows are left out, whatever a log holds
    if erased and not current.empty:
        current = current[~current["entity_id"].isin(erased)]
    if current.empty:
        return {"skipped": f"no predictions since {since:%Y-%m-%d %H:%M}"}
    model, holdout = verified_model(champion)
    numeric, categorical = _columns(model, params)
    holdout = holdout.assign(score=model.predict_proba(holdout[numeric + categorical])[:, 1])
    # The log's names, so holdout and served rows line up column for column.
    holdout = holdout.rename(
        columns={params.dataset.label: "actual", params.dataset.entity: "entity_id"}
    )
    store = Store(paths.registry_url).migrate()
    history = store.windows(name)
    reference = Reference(holdout, "holdout", 0, len(holdout))
    if m.reference == "recent":
        spans = healthy_spans(
            history, model_version=champion.version, before=since, hours=m.reference_hours
        )
        earlier = (
            served_rows(paths.serving_log, champion.version, spans[0][0], since, MAX_REFERENCE_ROWS)
            if spans
            else current.iloc[:0]
        )
        reference = window_reference(holdout, earlier, spans, min_rows=m.reference_min_rows)
    result = compare_window(
        reference.frame,
        current,
        numeric=numeric,
        categorical=categorical,
        score_column="score",
        label_column="actual",
        prediction_column="label",
        report_dir=paths.reports / f"{now:%Y%m%dT%H%M%S}",
        feature_threshold=reference.feature_threshold(
            m.feature_drift_threshold, m.holdout_feature_drift_threshold
        ),
        entity_column="entity_id",
    )
    decision = decide(
        result,
        holdout_auc=float(champion.metrics.get("roc_auc", float("nan"))),
        last_trigger_at=_last_trigger(history),
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
        "healthy": decision.healthy,
        "reference": reference.describe(),
        "prior_checks": [asdict(p) for p in decision.prior],
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
    keys = (
        "model_version",
        "rows",
        "drift_share",
        "drifted_features",
        "n_labels",
        "roc_auc",
        "reference",
        "prior_checks",
    )
    return {k: summary[k] for k in keys} | {"window_end": str(summary["window_end"])}


def emit(event: str, model_name: str, payload: dict[str, Any]) -> None:
    """A Prefect event about this model; automations and deployment triggers react to it."""
    from prefect.events import emit_event

    emit_event(
        event=event,
        resource={"prefect.resource.id": f"loopline.model.{model_name}"},
        payload=payload,
    )


def retrain(
    params: Params, paths: Paths, *, actor: str, reason: str, flow_run_id: str | None = None
) -> dict[str, Any]:
    """Train on the current data version in the run's workspace ``paths``, publish, gate the
    result, and start its rollout.

    A retrain of a model that is already training is refused (:class:`locks.LockHeld`
    names the running one): the second trigger of one episode has nothing to add.
    """
    from loopline import locks, promotion, runs, steps

    name = params.serving.model_name
    with locks.training(paths, name, run_id=_run_name(paths), wait=False):
        runs.snapshot_data(paths)
        steps.prepare_step(params, paths)
        steps.validate_step(params, paths)
        steps.features_step(params, paths)
        trained = steps.train_step(params, paths)
        evaluation = steps.evaluate_step(params, paths)
        steps.record_run(params, paths, trained, evaluation, flow_run_id)
        packaged = steps.package_step(
            params, paths, flow_run_id, registered_by=actor, why=f"retrained: {reason}"
        )
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


def _run_name(paths: Paths) -> str | None:
    return paths.workspace.name if paths.workspace else None


def known_model(params: Params, model: str | None) -> str:
    """The model a request names, checked against the one this project trains."""
    name = params.serving.model_name
    if model is not None and model != name:
        raise ValueError(
            f"unknown model {model!r}: this project trains {name!r} (serving.model_name)"
        )
    return name
