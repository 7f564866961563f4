"""``loopline users ...``: who may log in to the dashboard, and whether they may act."""

from __future__ import annotations

from typing import Annotated

import typer

from loopline.cli.common import refused
from loopline.users import Role, UserStore, UserStoreError, user_store

users_app = typer.Typer(
    help="Dashboard users: viewers see everything, operators can also act.",
    no_args_is_help=True,
)


def _store() -> UserStore:
    from loopline.settings import activate

    try:
        return user_store(activate())
    except FileNotFoundError as exc:
        raise refused(str(exc)) from exc


@users_app.command()
def add(
    name: str,
    role: Annotated[Role, typer.Option(help="viewer: see everything; operator: also act")] = (
        Role.VIEWER
    ),
    password: Annotated[
        str | None,
        typer.Option(
            help="The password (prompted for, hidden, when not given)", show_default=False
        ),
    ] = None,
) -> None:
    """Add a dashboard user with a hashed password."""
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = _store().add(name, role, password)
    except UserStoreError as exc:
        raise refused(str(exc)) from exc
    typer.echo(f"added {user.role} {user.name!r}")


@users_app.command()
def remove(name: str) -> None:
    """Remove a dashboard user (their sessions end on their next page load)."""
    try:
        _store().remove(name)
    except UserStoreError as exc:
        raise refused(str(exc)) from exc
    typer.echo(f"removed {name!r}")


@users_app.command("list")
def list_users() -> None:
    """Every dashboard user and their role."""
    try:
        users = _store().users()
    except UserStoreError as exc:
        raise refused(str(exc)) from exc
    if not users:
        typer.echo("no dashboard users yet: loopline users add NAME --role operator")
    for user in users:
        typer.echo(f"{user.name:<24} {user.role}")
