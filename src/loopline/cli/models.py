"""``loopline models ...``, ``served-at`` and ``registry verify``: the registry from a terminal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from loopline.cli.common import context, refused

models_app = typer.Typer(help="Model versions: list, show, promote, approve, roll back.")
registry_app = typer.Typer(help="The registry itself.")

Reason = Annotated[str, typer.Option("--reason", "-r", help="Why (recorded in the history)")]
Actor = Annotated[str | None, typer.Option(help="Who (default: LOOPLINE_ACTOR or your user)")]


def _actor(actor: str | None) -> str:
    from loopline.steps import actor as default_actor

    return actor or default_actor()


def _registry_errors() -> tuple[type[Exception], ...]:
    from loopline.promotion import PromotionError
    from loopline.registry import RegistryError

    return (RegistryError, PromotionError)


def _record_row(record: Any) -> str:
    auc = record.metrics.get("roc_auc")
    aliases = ",".join(record.aliases) or "-"
    waiting = f" (awaiting {record.pending_approver})" if record.pending_approver else ""
    return (
        f"{record.version:<28} {record.stage:<11} {aliases:<18} "
        f"{'' if auc is None else f'{auc:.4f}':<8} {record.created_at:%Y-%m-%d %H:%M}{waiting}"
    )


@models_app.command("list")
def list_models(
    stage: Annotated[str | None, typer.Option(help="Only this stage")] = None,
) -> None:
    """Every version with its stage, aliases and ROC AUC."""
    from loopline.promotion import open_registry

    _, paths = context()
    records = open_registry(paths).list_versions(stage=stage)
    if not records:
        typer.echo("no model versions yet: `loopline run` trains and registers one")
        return
    typer.echo(f"{'version':<28} {'stage':<11} {'aliases':<18} {'roc_auc':<8} created")
    for record in records:
        typer.echo(_record_row(record))


@models_app.command()
def show(version: str) -> None:
    """One version: stage, metrics, lineage and pending approval."""
    from loopline.promotion import open_registry

    _, paths = context()
    try:
        record = open_registry(paths).get(version)
    except _registry_errors() as exc:
        raise refused(str(exc)) from exc
    typer.echo(json.dumps(_as_dict(record), indent=2, default=str))


@models_app.command()
def promote(version: str, reason: Reason, actor: Actor = None) -> None:
    """Check every gate, then move VERSION to production (or staging awaiting approval)."""
    from loopline import promotion

    params, paths = context()
    try:
        outcome = promotion.promote(params, paths, version, actor=_actor(actor), reason=reason)
    except _registry_errors() as exc:
        raise refused(str(exc)) from exc
    for gate in outcome.gates:
        verdict = "skip" if gate.get("skipped") else ("pass" if gate["passed"] else "FAIL")
        typer.echo(f"  {verdict:<5} {gate['name']}: {gate['detail']}")
    if outcome.waiting_for:
        typer.echo(f"{version} passed the gates and waits in staging for {outcome.waiting_for}")
    else:
        typer.echo(f"{version} is now in production")


@models_app.command()
def approve(version: str, reason: Reason, actor: Actor = None) -> None:
    """Approve a version waiting in staging (you must be its named approver)."""
    from loopline import promotion

    _, paths = context()
    try:
        moved = promotion.approve(paths, version, actor=_actor(actor), reason=reason)
    except _registry_errors() as exc:
        raise refused(str(exc)) from exc
    typer.echo(f"{moved.version} is now in {moved.stage}")


@models_app.command()
def rollback(reason: Reason, actor: Actor = None, model: str | None = None) -> None:
    """Put the previous production version back, in one step."""
    from loopline import promotion

    params, paths = context()
    name = model or params.serving.model_name
    try:
        restored = promotion.rollback(paths, name, actor=_actor(actor), reason=reason)
    except _registry_errors() as exc:
        raise refused(str(exc)) from exc
    typer.echo(f"{restored.version} is back in production")


@models_app.command()
def history(version: Annotated[str | None, typer.Argument()] = None) -> None:
    """The append-only history (of one version, or all)."""
    from loopline.promotion import open_registry

    _, paths = context()
    for entry in open_registry(paths).history(version=version):
        move = f"{entry.from_stage or ''}→{entry.to_stage}" if entry.to_stage else ""
        typer.echo(
            f"{entry.seq:>5} {entry.at:%Y-%m-%d %H:%M:%S} {entry.actor:<14} {entry.action:<18} "
            f"{entry.version or '':<28} {move:<22} {entry.reason}"
        )


def served_at(
    when: Annotated[str, typer.Argument(help="ISO time, e.g. 2026-11-29T10:00 (UTC if no zone)")],
    model: str | None = None,
) -> None:
    """Which version held production (and challenger) at a past instant."""
    from loopline.promotion import open_registry

    params, paths = context()
    try:
        instant = datetime.fromisoformat(when)
    except ValueError as exc:
        raise refused(f"not an ISO time: {when!r}") from exc
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    answer = open_registry(paths).served_at(model or params.serving.model_name, instant)
    typer.echo(json.dumps(answer, indent=2, default=str))


@registry_app.command()
def verify() -> None:
    """Walk the history's hash chain; report the first broken link."""
    from loopline.promotion import open_registry

    _, paths = context()
    broken = open_registry(paths).verify()
    if broken is not None:
        raise refused(f"history broken at seq {broken.seq}: {broken.problem}")
    typer.echo("history intact")


def _as_dict(record: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(record)
