"""The one path that changes what serves: promote, approve, roll back.

The CLI, the Prefect flows and the dashboard all call these functions. A refused
promotion changes nothing; an accepted one is recorded in the registry with its gate
results and announced as a Prefect event so automations can react.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.config import Params
from loopline.settings import Paths

if TYPE_CHECKING:
    from loopline.promotion.gates import GateReport
    from loopline.registry import Registry, VersionRecord

log = logging.getLogger(__name__)

PROMOTED = "loopline.model.promoted"
APPROVAL_REQUESTED = "loopline.model.approval_requested"
ROLLED_BACK = "loopline.model.rolled_back"
STAGED = "loopline.model.staged"


class PromotionError(ValueError):
    """A promotion that cannot happen; the message says why. Nothing was changed."""


class PromotionRefused(PromotionError):
    """The candidate failed one or more gates; every failing check is listed."""

    def __init__(self, version: str, report: GateReport) -> None:
        self.report = report
        super().__init__(f"promotion of {version} refused:\n{report.describe()}")


@dataclass(frozen=True)
class Outcome:
    """What a promotion did: the version as it now stands, and the gates behind it."""

    version: VersionRecord
    gates: list[dict[str, Any]]
    waiting_for: str | None


def open_registry(paths: Paths) -> Registry:
    from loopline.registry import Registry

    registry = Registry(paths.registry_url)
    registry.upgrade()
    return registry


def checked_files(record: VersionRecord) -> tuple[Path, Path]:
    """A version's model and holdout files, refusing a model file changed since training."""
    from loopline import packaging

    try:
        model_file, holdout_file = packaging.stored_files(record.version)
    except FileNotFoundError as exc:
        raise PromotionError(str(exc)) from exc
    expected = record.lineage.get("model_sha256")
    actual = packaging.file_sha256(model_file)
    if expected != actual:
        raise PromotionError(
            f"model {record.version}: stored file hash {actual[:12]} does not match the "
            f"hash recorded at training ({str(expected)[:12]}); refusing to serve it"
        )
    return model_file, holdout_file


def verified_model(record: VersionRecord) -> tuple[Any, Any]:
    """Load a version's pipeline and holdout: the file unchanged since training, and
    (before anything is unpickled) passing the model scan."""
    return _loaded(record, *checked_files(record))


def _loaded(record: VersionRecord, model_file: Path, holdout_file: Path) -> tuple[Any, Any]:
    import pandas as pd

    from loopline.model_scan import UnsafeModel, read_model

    try:
        model = read_model(model_file, f"model {record.version}")
    except UnsafeModel as exc:
        raise PromotionError(str(exc)) from exc
    return model, pd.read_parquet(holdout_file)


def check_gates(params: Params, registry: Registry, record: VersionRecord) -> GateReport:
    """Every gate of the policy, for this version against the current champion.

    The model scan is a gate of its own, reported like the others; when it fails, the
    model is not loaded and no other gate runs."""
    from loopline.model_scan import scan
    from loopline.promotion.gates import Check, GateReport, evaluate_gates

    files = checked_files(record)
    scanned = scan(files[0])
    scan_check = Check("model_scan", None, None, scanned.passed, scanned.summary())
    if not scanned.passed:
        return GateReport((scan_check,))
    candidate, holdout = _loaded(record, *files)
    champion_record = registry.production(record.model_name)
    champion = None
    if champion_record is not None and champion_record.version != record.version:
        champion, _ = verified_model(champion_record)
    report = evaluate_gates(
        candidate,
        holdout,
        params.promotion,
        params.dataset,
        champion=champion,
        threshold=params.serving.threshold,
    )
    return GateReport((scan_check, *report.checks))


def promote(params: Params, paths: Paths, version: str, *, actor: str, reason: str) -> Outcome:
    """Gate a version and move it towards production (or into staging to wait for approval)."""
    registry = open_registry(paths)
    record = registry.get(version)
    if record.stage == "production":
        raise PromotionError(f"{version} is already in production")
    report = check_gates(params, registry, record)
    if not report.passed:
        raise PromotionRefused(version, report)
    approver = params.promotion.approver if params.promotion.approval == "manual" else None
    moved = registry.request_promotion(
        version, actor=actor, reason=reason, gate_results=report.as_json(), approver=approver
    )
    event = APPROVAL_REQUESTED if moved.stage != "production" else PROMOTED
    announce(event, moved, actor=actor, reason=reason)
    return Outcome(moved, report.as_json(), moved.pending_approver)


def approve(paths: Paths, version: str, *, actor: str, reason: str) -> VersionRecord:
    """The named approver lets a gated version waiting in staging go to production."""
    moved = open_registry(paths).approve(version, actor=actor, reason=reason)
    announce(PROMOTED, moved, actor=actor, reason=reason)
    return moved


def rollback(paths: Paths, model_name: str, *, actor: str, reason: str) -> VersionRecord:
    """Return production to the version that held it before, in one step."""
    restored = open_registry(paths).rollback(model_name, actor=actor, reason=reason)
    announce(ROLLED_BACK, restored, actor=actor, reason=reason)
    return restored


def set_traffic(
    params: Params,
    paths: Paths,
    *,
    policy: str,
    challenger: str | None,
    share: float,
    actor: str,
    reason: str,
) -> dict[str, Any]:
    """Name the challenger (it goes to staging first) and the policy, as recorded actions."""
    registry = open_registry(paths)
    name = params.serving.model_name
    if challenger is not None:
        record = registry.get(challenger)
        if record.stage == "candidate":
            verified_model(record)  # refuse a challenger whose files changed or vanished
            registry.transition(challenger, "staging", actor=actor, reason=reason)
        registry.set_challenger(name, challenger, actor=actor, reason=reason)
    elif policy == "single":
        registry.set_challenger(name, None, actor=actor, reason=reason)
    current = registry.policy(name)
    if (current.kind, current.challenger_share) != (policy, share):
        registry.set_policy(name, policy, share, actor=actor, reason=reason)
    after = registry.policy(name)
    live = registry.challenger(name)
    return {
        "policy": after.kind,
        "challenger_share": after.challenger_share,
        "challenger": live.version if live else None,
    }


def announce(event: str, record: VersionRecord, *, actor: str, reason: str) -> None:
    """Emit a Prefect event for a stage change; never fail the change if Prefect is away."""
    try:
        from prefect.events import emit_event

        emit_event(
            event=event,
            resource={
                "prefect.resource.id": f"loopline.model.{record.model_name}",
                "loopline.version": record.version,
                "loopline.stage": record.stage,
            },
            payload={"actor": actor, "reason": reason, "metrics": record.metrics},
        )
    except Exception as exc:  # the registry already holds the truth; the event is a courtesy
        log.warning("could not emit %s for %s: %s", event, record.version, exc)
