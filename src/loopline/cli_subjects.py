"""``loopline subjects ...``: a data subject's access and erasure requests."""

from __future__ import annotations

import json
from typing import Annotated

import typer

subjects_app = typer.Typer(
    help="Data subjects: export what Loopline holds about one, or erase them.",
    no_args_is_help=True,
)


@subjects_app.command()
def erase(
    subject: Annotated[str, typer.Argument(help="The subject's id, as the source data has it")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log)")],
) -> None:
    """Erase a subject from every store (flow ``erase-subject``); audited."""
    from loopline.cli import _context
    from loopline.cli_errors import reported
    from loopline.privacy.subjects import subject_of

    _, paths = _context()
    with reported():
        from flows.subjects import erase_subject

        outcome = erase_subject(subject_of(paths, subject), reason)
        typer.echo(json.dumps(outcome, indent=2))
        if "note" in outcome:
            typer.echo(outcome["note"])


@subjects_app.command()
def export(
    subject: Annotated[str, typer.Argument(help="The subject's id, as the source data has it")],
) -> None:
    """Everything Loopline holds about a subject, decrypted, as JSON; audited."""
    from loopline.cli import _context
    from loopline.cli_errors import reported
    from loopline.privacy.audit import AuditLog
    from loopline.privacy.subjects import export as export_subject
    from loopline.privacy.subjects import subject_of

    params, paths = _context()
    with reported():
        pseudonym = subject_of(paths, subject)
        held = export_subject(paths, params, pseudonym)
        log = AuditLog(paths.registry_url)
        try:
            log.record("cli", "export", pseudonym, "access request", {"rows": len(held["data"])})
        finally:
            log.close()
        typer.echo(json.dumps(held, indent=2, default=str))
