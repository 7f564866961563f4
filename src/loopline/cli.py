"""The ``loopline`` command. Heavy imports stay inside the commands that need them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopline import cli_models
from loopline.cli_errors import DEBUG_ENV, quiet_library_deprecations, reported
from loopline.cli_init import init
from loopline.cli_keys import keys_app
from loopline.cli_lineage import lineage
from loopline.cli_subjects import subjects_app
from loopline.cli_users import users_app
from loopline.settings import Paths, activate

if TYPE_CHECKING:
    from loopline.config import Params

app = typer.Typer(
    help="Loopline: the whole ML lifecycle on one machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Datasets: generate the built-in one.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(cli_models.models_app, name="models")
app.add_typer(cli_models.registry_app, name="registry")
app.command("served-at")(cli_models.served_at)
app.command()(lineage)
app.add_typer(keys_app, name="keys")
app.add_typer(subjects_app, name="subjects")
app.add_typer(users_app, name="users")
app.command()(init)


@app.callback()
def main(
    debug: Annotated[bool, typer.Option(help="Show tracebacks of a user's errors too")] = False,
) -> None:
    """Loopline: the whole ML lifecycle on one machine."""
    import os

    if debug:
        os.environ[DEBUG_ENV] = "1"
    else:
        quiet_library_deprecations()


STAGES = ("ingest", "validate", "features", "train", "evaluate", "package")


def _context() -> tuple[Params, Paths]:
    # Imported here: building the pydantic models costs a third of a second --help need not pay.
    from loopline.config import ConfigError, load_params

    paths = activate()
    try:
        return load_params(paths.params_file), paths
    except ConfigError as exc:
        typer.secho(f"configuration error:\n{exc}", fg="red", err=True)
        raise typer.Exit(2) from exc


def _print(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


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

    params, paths = _context()
    overrides = {k: v for k, v in {"customers": customers, "days": days}.items() if v is not None}
    with reported():
        built_in = params.built_in()
        if overrides:
            generator = built_in.model_validate(built_in.model_dump() | overrides)
            params = params.model_copy(update={"generator": generator})
        typer.echo(steps.generate_step(params, paths, out))


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


NOTHING_CHANGED = "nothing changed: the last good data version stays current"


@app.command()
def ingest(source: Annotated[Path | None, typer.Argument()] = None) -> None:
    """Accept a batch as the new data version (Prefect flow ``ingest``)."""
    params, paths = _context()
    with reported(note=NOTHING_CHANGED):
        _checked_first(params, paths, source)
        from flows.ingest import ingest as ingest_flow

        _print(ingest_flow(source=str(source.resolve()) if source else None))


@app.command()
def train() -> None:
    """Build features and train the candidates (Prefect flow ``train``)."""
    _context()
    with reported():
        _runner_checked()
        from flows.train import train as train_flow

        _print(train_flow()["evaluation"])


@app.command()
def package() -> None:
    """Save the selected model to BentoML and build a Bento (Prefect flow ``package``)."""
    _context()
    with reported():
        from flows.package import package as package_flow

        result = package_flow()
    _print({"model": result["model"], "bento": result["bento"]})


@app.command()
def run(source: Annotated[Path | None, typer.Argument()] = None) -> None:
    """The whole loop once: ingest → train → package (Prefect flow ``lifecycle``)."""
    params, paths = _context()
    with reported(note=NOTHING_CHANGED):
        _checked_first(params, paths, source)
        from flows.lifecycle import lifecycle

        result = lifecycle(source=str(source.resolve()) if source else None)
    _print({"model": result["package"]["model"], "metrics": result["package"]["metrics"]})


@app.command()
def score(
    source: Path,
    target: Annotated[Path | None, typer.Option(help="where the scores go")] = None,
    version: Annotated[str | None, typer.Option(help="a model version, not production")] = None,
) -> None:
    """Score the entity ids of a csv or parquet file, or of a folder of parquet partitions
    (scored in parallel on a Dask task runner), with the production model (flow
    ``score-batch``)."""
    _context()
    with reported():
        _runner_checked()
        from flows.score import score_batch

        _print(
            score_batch(
                str(source.resolve()),
                str(target.resolve()) if target else None,
                version=version,
            )
        )


@app.command()
def stage(name: Annotated[str, typer.Argument(help=" | ".join(STAGES))]) -> None:
    """Run one pipeline step without Prefect: what ``dvc repro`` calls."""
    from loopline import steps

    params, paths = _context()
    runners = {
        "ingest": steps.prepare_step,
        "validate": steps.validate_step,
        "features": steps.features_step,
        "train": steps.train_step,
        "evaluate": steps.evaluate_step,
        "package": steps.package_step,
    }
    if name not in runners:
        raise typer.BadParameter(f"unknown stage {name!r}; one of {', '.join(STAGES)}")
    with reported():
        result = runners[name](params, paths)
    _print({k: v for k, v in result.items() if k != "candidates"})


@app.command()
def reproduce(version: str) -> None:
    """Retrain VERSION from its recorded data version and params; report whether metrics match."""
    from loopline.reproduce import reproduce as run_reproduction

    _, paths = _context()
    try:
        result = run_reproduction(paths, version)
    except (LookupError, ValueError, FileNotFoundError) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from exc
    for metric, recorded in result.recorded.items():
        typer.echo(
            f"  {metric:<18} recorded {recorded:.6f}  reproduced {result.reproduced[metric]:.6f}"
        )
    if not result.same_feature_definitions:
        typer.echo("  note: the feature definitions have changed since this version was trained")
    typer.echo("metrics match" if result.matches else "metrics DIFFER")
    if not result.matches:
        raise typer.Exit(1)


@app.command()
def simulate(
    days: Annotated[int, typer.Option(help="Days to replay")] = 30,
    rate: Annotated[float, typer.Option(help="Prediction requests per second")] = 5.0,
    seconds_per_day: Annotated[float, typer.Option(help="Real seconds per simulated day")] = 10.0,
    feedback_delay_days: Annotated[
        int | None, typer.Option(help="Days before labels arrive (default: label_delay_days)")
    ] = None,
    drift_day: Annotated[int | None, typer.Option(help="Override generator.drift_day")] = None,
    url: Annotated[str, typer.Option(help="The serving URL")] = "http://127.0.0.1:3000",
    key: Annotated[str | None, typer.Option(help="Client key (default: this machine's)")] = None,
) -> None:
    """Replay generated days against the HTTP API, with feedback after the label delay."""
    from loopline import platform
    from loopline.simulate import simulate as run_simulation

    params, paths = _context()
    with reported():
        params.built_in()
    stats = run_simulation(
        params,
        paths,
        url=url,
        key=key or platform.dev_keys(paths)["client"],
        days=days,
        rate=rate,
        seconds_per_day=seconds_per_day,
        feedback_delay_days=feedback_delay_days,
        drift_day=drift_day,
    )
    _print(stats.__dict__)


@app.command()
def monitor(
    minutes: Annotated[float | None, typer.Option(help="Window length (default: params)")] = None,
) -> None:
    """Check the last window of predictions for drift now (the ``monitor`` flow's step)."""
    from loopline.monitoring.loop import monitor_window

    params, paths = _context()
    result = monitor_window(params, paths, minutes=minutes)
    _print({k: v for k, v in result.items() if k != "feature_scores"})


@app.command()
def deployments(
    only: Annotated[
        list[str] | None, typer.Option(help="Serve only this flow's deployment (repeatable)")
    ] = None,
) -> None:
    """Serve every Prefect deployment (schedules, event triggers, actions) until Ctrl-C."""
    _context()
    from flows.deployments import serve_all

    try:
        serve_all(only)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--only") from exc


@app.command()
def up(
    bootstrap: Annotated[bool, typer.Option(help="Build data and a model on first run")] = True,
    simulate: Annotated[bool, typer.Option(help="Replay traffic in the background")] = True,
) -> None:
    """Start the platform: Prefect server, BentoML serving; bootstrap on first run."""
    from loopline import platform

    params, paths = _context()
    with reported():
        platform.up(params, paths, bootstrap_if_needed=bootstrap, simulate=simulate)


@app.command()
def demo(
    story: Annotated[
        bool, typer.Option(help="Then replay drift: detect → retrain → canary → verdict")
    ] = False,
) -> None:
    """One finite tour: the loop once, then a prediction over HTTP, then a summary."""
    from loopline import platform

    params, paths = _context()
    with reported():
        platform.demo(params, paths)
    if story:
        platform.tell_story(params, paths)


@app.command()
def serve(
    port: Annotated[int, typer.Option()] = 3000,
    model: Annotated[str | None, typer.Option(help="Model tag (default: latest)")] = None,
) -> None:
    """Serve the model over HTTP with ``bentoml serve`` on 127.0.0.1."""
    from loopline import platform

    params, paths = _context()
    platform.serve_forever(params, paths, port=port, model_tag=model)


if __name__ == "__main__":
    app()
