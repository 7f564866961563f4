"""``loopline keys ...``: create, revoke and list the HTTP service's API keys."""

from __future__ import annotations

from typing import Annotated

import typer

from loopline.serving.auth import KeyStore, KeyStoreError, Role, key_store

keys_app = typer.Typer(
    help="API keys for the HTTP service: create, revoke, list.", no_args_is_help=True
)


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg="red", err=True)
    return typer.Exit(1)


def _store() -> KeyStore:
    from loopline.settings import activate

    try:
        return key_store(activate())
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from exc


@keys_app.command()
def create(
    name: str,
    role: Annotated[Role, typer.Option(help="client: predict, feedback; admin: also traffic")] = (
        Role.CLIENT
    ),
) -> None:
    """A new key; it is printed once and cannot be shown again."""
    try:
        key = _store().create(name, role)
    except KeyStoreError as exc:
        raise _fail(str(exc)) from exc
    # The key alone on stdout, so `KEY=$(loopline keys create NAME)` captures just the key.
    typer.echo(key)
    typer.secho(
        f"created {role} key {name!r}: copy it now, it cannot be shown again", fg="yellow", err=True
    )


@keys_app.command()
def revoke(name: str) -> None:
    """Revoke a key; the running service refuses it from the next request on."""
    try:
        _store().revoke(name)
    except KeyStoreError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"revoked key {name!r}")


@keys_app.command("list")
def list_keys() -> None:
    """Every key's name, role and status; never the key."""
    try:
        keys = _store().list()
    except KeyStoreError as exc:
        raise _fail(str(exc)) from exc
    if not keys:
        typer.echo("no API keys yet: `loopline keys create NAME --role client` makes one")
        return
    typer.echo(f"{'name':<24} {'role':<7} {'created (UTC)':<16} status")
    for info in keys:
        revoked = info.revoked_at
        status = "active" if revoked is None else f"revoked {revoked:%Y-%m-%d %H:%M}"
        typer.echo(f"{info.name:<24} {info.role:<7} {info.created_at:%Y-%m-%d %H:%M} {status}")
