"""The pipeline's commands: ingest, train, package, run, score, stage and reproduce.

Each runs a Prefect flow (``stage`` runs one step without Prefect, for ``dvc repro``);
the flows are imported inside the commands, so ``--help`` does not pay for Prefect.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopline.cli.common import context, print_json, refused
from loopline.cli.errors import reported

if TYPE_CHECKING:
    from loopline.config import Params
    from loopline.settings import Paths

STAGES = ("ingest", "validate", "features", "train", "evaluate", "package")
NOTHING_CHANGED = "nothing changed: the last good data version stays current"


def _checked_first(params: Params, paths: Paths, source: Path | None) -> None:
    """The batch and the feature definitions, checked before any flow starts: a bad file
    is refused in a second, not after Prefect has started and retried."""
    from loopline import feature_definitions
    from loopline.data.contract import BatchRejected
    from loopline.data.ingest import precheck, record_rejection
    from loopline.safe_paths import outside_state

    batch = outside_state(paths, source or paths.project / params.dataset.source, "the batch")
    try:
        precheck(batch, params.dataset)
    except BatchRejected as exc:
        record_rejection(paths, exc)
        raise
    done = feature_definitions.sync(params, paths)
    if done:
        typer.echo(done)
    feature_definitions.check(params, paths)
    _runner_checked()


def _runner_checked() -> None:
    """The configured task runner means something and its scheduler answers, in seconds."""
    from flows.runner import check_scheduler, chosen

    spec, _ = chosen()
    if "://" in spec:
        check_scheduler(spec)


def ingest(source: Annotated[Path | None, typer.Argument()] = None) -> None:
    """Accept a batch as the new data version (Prefect flow ``ingest``)."""
    params, paths = context()
    with reported(note=NOTHING_CHANGED):
        _checked_first(params, paths, source)
        from flows.ingest import ingest as ingest_flow

        print_json(ingest_flow(source=str(source.resolve()) if source else None))


def train() -> None:
    """Build features and train the candidates (Prefect flow ``train``)."""
    context()
    with reported():
        _runner_checked()
        from flows.train import train as train_flow

        print_json(train_flow()["evaluation"])


def package() -> None:
    """Save the selected model to BentoML and build a Bento (Prefect flow ``package``)."""
    context()
    with reported():
        from flows.package import package as package_flow

        result = package_flow()
    print_json({"model": result["model"], "bento": result["bento"]})


def run(source: Annotated[Path | None, typer.Argument()] = None) -> None:
    """The whole loop once: ingest → train → package (Prefect flow ``lifecycle``)."""
    params, paths = context()
    with reported(note=NOTHING_CHANGED):
        _checked_first(params, paths, source)
        from flows.lifecycle import lifecycle

        result = lifecycle(source=str(source.resolve()) if source else None)
    print_json({"model": result["package"]["model"], "metrics": result["package"]["metrics"]})


def score(
    source: Path,
    target: Annotated[Path | None, typer.Option(help="where the scores go")] = None,
    version: Annotated[str | None, typer.Option(help="a model version, not production")] = None,
) -> None:
    """Score the entity ids of a csv or parquet file, or of a folder of parquet partitions
    (scored in parallel on a Dask task runner), with the production model (flow
    ``score-batch``)."""
    context()
    with reported():
        _runner_checked()
        from flows.score import score_batch

        print_json(
            score_batch(
                str(source.resolve()),
                str(target.resolve()) if target else None,
                version=version,
            )
        )


def stage(name: Annotated[str, typer.Argument(help=" | ".join(STAGES))]) -> None:
    """Run one pipeline step without Prefect: what ``dvc repro`` calls."""
    from loopline import steps

    params, paths = context()
    runners: dict[str, Callable[[Params, Paths], dict[str, Any]]] = {
        "ingest": steps.prepare_step,
        "validate": steps.validate_step,
        "features": steps.features_step,
        # dvc repro's console: a line as each candidate is fitted (stdout is the result).
        "train": functools.partial(steps.train_step, say=functools.partial(typer.echo, err=True)),
        "evaluate": steps.evaluate_step,
        "package": steps.package_step,
    }
    if name not in runners:
        raise typer.BadParameter(f"unknown stage {name!r}; one of {', '.join(STAGES)}")
    with reported():
        result = runners[name](params, paths)
    print_json({k: v for k, v in result.items() if k != "candidates"})


def reproduce(version: str) -> None:
    """Retrain VERSION from its recorded data version and params; report whether metrics match."""
    from loopline.reproduce import reproduce as run_reproduction

    _, paths = context()
    try:
        result = run_reproduction(paths, version)
    except (LookupError, ValueError, FileNotFoundError) as exc:
        raise refused(str(exc)) from exc
    for metric, recorded in result.recorded.items():
        typer.echo(
            f"  {metric:<18} recorded {recorded:.6f}  reproduced {result.reproduced[metric]:.6f}"
        )
    if not result.same_feature_definitions:
        typer.echo("  note: the feature definitions have changed since this version was trained")
    typer.echo("metrics match" if result.matches else "metrics DIFFER")
    if not result.matches:
        raise typer.Exit(1)
