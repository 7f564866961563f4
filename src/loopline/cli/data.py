"""``loopline data ...``: the built-in dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopline.cli.common import context
from loopline.cli.errors import reported

data_app = typer.Typer(help="Datasets: generate the built-in one.", no_args_is_help=True)


@data_app.command("generate")
def data_generate(
    customers: Annotated[int | None, typer.Option(help="Override generator.customers")] = None,
    days: Annotated[int | None, typer.Option(help="Override generator.days")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write (default dataset.source)")
    ] = None,
) -> None:
    """Write the built-in churn dataset (deterministic for a given seed)."""
    from loopline import steps

    params, paths = context()
    overrides = {k: v for k, v in {"customers": customers, "days": days}.items() if v is not None}
    with reported():
        built_in = params.built_in()
        if overrides:
            generator = built_in.model_validate(built_in.model_dump() | overrides)
            params = params.model_copy(update={"generator": generator})
        typer.echo(steps.generate_step(params, paths, out))
