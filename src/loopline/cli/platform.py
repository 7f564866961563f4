"""Running the platform: up, demo, serve, deployments, and live traffic (simulate, monitor)."""

from __future__ import annotations

from typing import Annotated

import typer

from loopline.cli.common import context, print_json
from loopline.cli.errors import reported


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

    params, paths = context()
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
    print_json(stats.__dict__)


def monitor(
    minutes: Annotated[float | None, typer.Option(help="Window length (default: params)")] = None,
) -> None:
    """Check the last window of predictions for drift now (the ``monitor`` flow's step)."""
    from loopline.monitoring.loop import monitor_window

    params, paths = context()
    result = monitor_window(params, paths, minutes=minutes)
    print_json({k: v for k, v in result.items() if k != "feature_scores"})


def deployments(
    only: Annotated[
        list[str] | None, typer.Option(help="Serve only this flow's deployment (repeatable)")
    ] = None,
) -> None:
    """Serve every Prefect deployment (schedules, event triggers, actions) until Ctrl-C."""
    context()
    from flows.deployments import serve_all

    try:
        serve_all(only)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--only") from exc


def up(
    bootstrap: Annotated[bool, typer.Option(help="Build data and a model on first run")] = True,
    simulate: Annotated[bool, typer.Option(help="Replay traffic in the background")] = True,
) -> None:
    """Start the platform: Prefect server, BentoML serving; bootstrap on first run."""
    from loopline import platform

    params, paths = context()
    with reported():
        platform.up(params, paths, bootstrap_if_needed=bootstrap, simulate=simulate)


def demo(
    story: Annotated[
        bool, typer.Option(help="Then replay drift: detect → retrain → canary → verdict")
    ] = False,
) -> None:
    """One finite tour: the loop once, then a prediction over HTTP, then a summary."""
    from loopline import platform

    params, paths = context()
    with reported():
        platform.demo(params, paths)
    if story:
        platform.tell_story(params, paths)


def serve(
    port: Annotated[int, typer.Option()] = 3000,
    model: Annotated[str | None, typer.Option(help="Model tag (default: latest)")] = None,
) -> None:
    """Serve the model over HTTP with ``bentoml serve`` on 127.0.0.1."""
    from loopline import platform

    params, paths = context()
    platform.serve_forever(params, paths, port=port, model_tag=model)
