"""The ``loopline`` Typer app: every command group, registered in one place.

Only this module imports the groups; they import from ``common`` and ``errors`` alone.
Heavy imports stay inside the commands that need them, so ``--help`` starts fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from loopline.cli import data, init, keys, lineage, models, pipeline, platform, subjects, users
from loopline.cli.errors import DEBUG_ENV

app = typer.Typer(
    help="Loopline: the whole ML lifecycle on one machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

app.add_typer(data.data_app, name="data")
app.add_typer(models.models_app, name="models")
app.add_typer(models.registry_app, name="registry")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(subjects.subjects_app, name="subjects")
app.add_typer(users.users_app, name="users")

app.command("served-at")(models.served_at)
app.command()(lineage.lineage)
app.command()(init.init)
for command in (
    pipeline.ingest,
    pipeline.train,
    pipeline.package,
    pipeline.run,
    pipeline.score,
    pipeline.stage,
    pipeline.reproduce,
    platform.simulate,
    platform.monitor,
    platform.deployments,
    platform.up,
    platform.demo,
    platform.serve,
):
    app.command()(command)


@app.callback()
def options(
    debug: Annotated[bool, typer.Option(help="Show tracebacks of a user's errors too")] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            envvar="LOOPLINE_VERBOSE",
            help="Show third-party warnings and tool output too (else they go to "
            "<state>/logs/console.log)",
        ),
    ] = False,
) -> None:
    """Loopline: the whole ML lifecycle on one machine."""
    import os

    from loopline import console

    if debug:
        os.environ[DEBUG_ENV] = "1"
    # Debugging wants everything a library said, too.
    console.install(verbose_=verbose or debug)


def main() -> None:
    """Run the ``loopline`` command: what ``python -m loopline.cli`` calls."""
    app()
