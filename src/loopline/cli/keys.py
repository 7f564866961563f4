"""``loopline keys ...``: create, rotate, revoke and list the HTTP service's API keys."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from loopline.cli.common import refused
from loopline.serving.auth import KeyInfo, KeyStore, KeyStoreError, Role, key_store

keys_app = typer.Typer(
    help="API keys for the HTTP service: create, rotate, revoke, list.", no_args_is_help=True
)
DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """``30s``, ``30m``, ``1h``, ``2d`` (or ``0``) as a timedelta; ValueError otherwise."""
    text = text.strip().lower()
    if text == "0":
        return timedelta(0)
    match = DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"bad duration {text!r}: use a number and s, m, h or d (30m, 1h, 2d)")
    return timedelta(**{UNITS[match[2]]: float(match[1])})


def _store() -> KeyStore:
    from loopline.settings import activate

    try:
        return key_store(activate())
    except FileNotFoundError as exc:
        raise refused(str(exc)) from exc


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
        raise refused(str(exc)) from exc
    # The key alone on stdout, so `KEY=$(loopline keys create NAME)` captures just the key.
    typer.echo(key)
    typer.secho(
        f"created {role} key {name!r}: copy it now, it cannot be shown again", fg="yellow", err=True
    )


@keys_app.command()
def rotate(
    name: str,
    overlap: Annotated[
        str, typer.Option(help="How long the old key keeps working: 30m, 1h, 2d; 0 = now")
    ] = "1h",
) -> None:
    """A new key for NAME, same role; the old one expires after the overlap."""
    try:
        key, until = _store().rotate(name, parse_duration(overlap))
    except (KeyStoreError, ValueError) as exc:
        raise refused(str(exc)) from exc
    typer.echo(key)  # alone on stdout, as with create
    typer.secho(
        f"rotated key {name!r}: copy the new key now, it cannot be shown again; "
        f"the old one stops working at {until:%Y-%m-%d %H:%M:%S} UTC",
        fg="yellow",
        err=True,
    )


@keys_app.command()
def revoke(name: str) -> None:
    """Revoke a key, and a rotation's old one; refused from the service's next request on."""
    try:
        _store().revoke(name)
    except KeyStoreError as exc:
        raise refused(str(exc)) from exc
    typer.echo(f"revoked key {name!r}")


@keys_app.command("list")
def list_keys() -> None:
    """Every key's name, role and status; never the key."""
    try:
        keys = _store().list()
    except KeyStoreError as exc:
        raise refused(str(exc)) from exc
    if not keys:
        typer.echo("no API keys yet: `loopline keys create NAME --role client` makes one")
        return
    now = datetime.now(UTC)
    typer.echo(f"{'name':<24} {'role':<7} {'created (UTC)':<16} status")
    for info in keys:
        typer.echo(
            f"{info.name:<24} {info.role:<7} {info.created_at:%Y-%m-%d %H:%M} {status(info, now)}"
        )


def status(info: KeyInfo, now: datetime) -> str:
    """``active``, ``expires ...`` (a rotated key's overlap), ``expired ...`` or ``revoked ...``."""
    if info.revoked_at is not None:
        return f"revoked {info.revoked_at:%Y-%m-%d %H:%M}"
    if info.expires_at is None:
        return "active"
    word = "expired" if info.expired(now) else "expires"
    return f"{word} {info.expires_at:%Y-%m-%d %H:%M}"
