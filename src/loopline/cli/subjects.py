"""``loopline subjects ...``: a data subject's access and erasure requests.

Both hand out or destroy personal data, so both name who asks (``--as``, a dashboard
user, with their password from ``LOOPLINE_PASSWORD`` or a hidden prompt): only an
operator may, and a refusal is audited like the request itself.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated

import typer

from loopline.cli.common import context
from loopline.cli.errors import reported

if TYPE_CHECKING:
    from loopline.settings import Paths
    from loopline.users import User

PASSWORD_ENV = "LOOPLINE_PASSWORD"
Asker = Annotated[
    str, typer.Option("--as", help="Your dashboard user (an operator); password prompted")
]


def _operator(paths: Paths, name: str, action: str, pseudonym: int) -> User:
    """The operator ``name`` is, after their password; else a refusal, audited."""
    from loopline.errors import LooplineError
    from loopline.privacy.audit import AuditLog
    from loopline.users import user_store

    password = os.environ.get(PASSWORD_ENV) or typer.prompt(f"Password for {name}", hide_input=True)
    user = user_store(paths).verify(name, password)
    if user is not None and user.can_act:
        return user
    why = (
        f"user {name!r} has role {user.role}: {action} needs an operator"
        if user is not None
        else f"no user {name!r} with that password (`loopline users add NAME --role operator`)"
    )
    log = AuditLog(paths.registry_url)
    try:
        log.record(f"user:{name}", f"{action}-refused", pseudonym, why, {})
    finally:
        log.close()
    undone = "nothing exported" if action == "export" else "nothing erased"
    raise LooplineError(f"refused, {undone}: {why}")


subjects_app = typer.Typer(
    help="Data subjects: export what Loopline holds about one, or erase them.",
    no_args_is_help=True,
)


@subjects_app.command()
def erase(
    subject: Annotated[str, typer.Argument(help="The subject's id, as the source data has it")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log)")],
    asker: Asker,
) -> None:
    """Erase a subject from every store (flow ``erase-subject``); audited."""
    from loopline.privacy.subjects import subject_of

    _, paths = context()
    with reported():
        pseudonym = subject_of(paths, subject)
        user = _operator(paths, asker, "erase", pseudonym)
        from flows.subjects import erase_subject

        outcome = erase_subject(pseudonym, reason, actor=f"user:{user.name}")
        typer.echo(json.dumps(outcome, indent=2))
        if "note" in outcome:
            typer.echo(outcome["note"])


@subjects_app.command()
def export(
    subject: Annotated[str, typer.Argument(help="The subject's id, as the source data has it")],
    asker: Asker,
) -> None:
    """Everything Loopline holds about a subject, decrypted, as JSON; audited."""
    from loopline.privacy.audit import AuditLog
    from loopline.privacy.subjects import export as export_subject
    from loopline.privacy.subjects import subject_of

    params, paths = context()
    with reported():
        pseudonym = subject_of(paths, subject)
        user = _operator(paths, asker, "export", pseudonym)
        held = export_subject(paths, params, pseudonym)
        log = AuditLog(paths.registry_url)
        try:
            details = {"rows": len(held["data"])}
            log.record(f"user:{user.name}", "export", pseudonym, "access request", details)
        finally:
            log.close()
        typer.echo(json.dumps(held, indent=2, default=str))
