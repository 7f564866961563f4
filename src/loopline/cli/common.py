"""What every command group shares: the project's params and paths, JSON out, a refusal."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from loopline.settings import activate

if TYPE_CHECKING:
    from loopline.config import Params
    from loopline.settings import Paths


def context() -> tuple[Params, Paths]:
    """The project's params and paths; a bad ``params.yaml`` exits 2 with what is wrong."""
    # Imported here: building the pydantic models costs a third of a second --help need not pay.
    from loopline.config import ConfigError, load_params

    paths = activate()
    try:
        return load_params(paths.params_file), paths
    except ConfigError as exc:
        typer.secho(f"configuration error:\n{exc}", fg="red", err=True)
        raise typer.Exit(2) from exc


def print_json(payload: Any) -> None:
    """A command's result on stdout, as indented JSON."""
    typer.echo(json.dumps(payload, indent=2, default=str))


def refused(message: str) -> typer.Exit:
    """Print ``message`` in red on stderr; the exit (code 1) to raise."""
    typer.secho(message, fg="red", err=True)
    return typer.Exit(1)
