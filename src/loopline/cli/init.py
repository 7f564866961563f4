"""``loopline init --from FILE``: bring your own table in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopline.cli.errors import fail
from loopline.settings import activate


def init(
    source: Annotated[
        Path, typer.Option("--from", help="Your table: csv or parquet (a sample is read)")
    ],
    entity: Annotated[str, typer.Option(help="The id column (integers)")],
    label: Annotated[str, typer.Option(help="The label column: two values, e.g. Yes/No")],
    timestamp: Annotated[
        str | None, typer.Option(help="When each row was true (default: arrival time)")
    ] = None,
    positive: Annotated[
        str | None, typer.Option(help="The label value that means 1, if not recognised")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Dataset name (default: from the file)")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Accept the proposal")] = False,
) -> None:
    """Infer a schema from FILE, show it, and on confirmation write params.yaml and
    feature_repo/definitions.py so that `loopline run` trains on it."""
    from loopline import platform, project_init
    from loopline.data.infer import propose
    from loopline.data.sample import read_sample
    from loopline.data.schema_table import render_table
    from loopline.errors import LooplineError

    paths = activate()
    try:
        sample = read_sample(source)
        proposal = propose(sample, entity, label, timestamp, positive)
        chosen = name or project_init.dataset_name(source)
        plan = project_init.plan(proposal, sample.frame, paths.params_file, paths.project, chosen)
    except LooplineError as exc:
        raise fail(exc, note="nothing written") from None
    typer.echo(render_table(proposal))
    for note in plan.notes:
        typer.echo(note)
    definitions = paths.feature_repo / "definitions.py"
    typer.echo(
        f"\nThis writes {paths.params_file.name} (the dataset section, features.service, "
        "promotion.segment_column and the holdout; the built-in generator section goes) and "
        f"{definitions.relative_to(paths.project)} (one feature view of the "
        f"{len(plan.params.dataset.features)} features)."
    )
    if not yes and not typer.confirm("Write them?", default=True):
        typer.secho("nothing written", err=True)
        raise typer.Exit(1)
    project_init.write(plan, paths.params_file, definitions)
    platform.announce_new_keys(paths)
    typer.echo(
        f"wrote {paths.params_file} and {definitions}\n"
        "next: `loopline run` trains on it (or `make up` runs the platform); edit "
        "params.yaml to change a column's kind or missing-value policy."
    )
