"""``make up``, the bootstrap and the scripted demo, composed from the local servers of
``loopline.processes`` (whose names are used from here too, e.g. ``platform.start_serving``)."""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import suppress
from typing import Any

import httpx
import typer

from loopline.config import ConfigError, Params
from loopline.processes import (
    DASHBOARD_PORT,
    HOST,
    PREFECT_PORT,
    SERVING_PORT,
    Service,
    _bin,
    dashboard_command,
    free_port,
    running,
    serving_workers,
    start,
    start_dashboard,
    start_deployments,
    start_prefect,
    start_serving,
    start_simulator,
    wait_ready,
)
from loopline.settings import Paths
from loopline.users import local_operator

# The process layer's names are part of this module's interface (callers and tests say
# ``platform.start_serving``), beside what the module itself defines.
__all__ = [
    "DASHBOARD_PORT",
    "HOST",
    "PREFECT_PORT",
    "SERVING_PORT",
    "Service",
    "dashboard_command",
    "free_port",
    "running",
    "serving_workers",
    "start",
    "start_dashboard",
    "start_deployments",
    "start_prefect",
    "start_serving",
    "start_simulator",
    "wait_ready",
    "announce_new_keys",
    "bootstrap",
    "curl_example",
    "demo",
    "dev_keys",
    "has_model",
    "login_line",
    "production_note",
    "sample_customer",
    "serve_forever",
    "tell_story",
    "up",
]


def has_model(params: Params) -> bool:
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return bool(bentoml.models.list(params.serving.model_name))
    except NotFound:
        return False


def production_note(params: Params, paths: Paths) -> str | None:
    """What to tell the user when nothing is in production: the service is up (``/readyz``
    is 200) but ``/predict`` answers 503 until a version is promoted."""
    from loopline import promotion
    from loopline.serving.router import no_production

    name = params.serving.model_name
    if promotion.open_registry(paths).production(name) is not None:
        return None
    if params.serving.allow_unpromoted:
        return (
            f"no version of {name!r} is in production: the Bento's own model answers, "
            "as arm 'unpromoted'"
        )
    return f"{no_production(name)}; until then /predict answers 503"


def bootstrap(params: Params, paths: Paths) -> dict[str, Any]:
    """First run: the built-in dataset if there is no data yet, the loop once, a champion."""
    from flows.lifecycle import lifecycle
    from loopline import promotion, steps

    source = paths.project / params.dataset.source
    if not source.exists():
        if params.generator is None:  # your own data must be where dataset.source says
            raise ConfigError(f"params.yaml: dataset.source {source} is not there")
        typer.echo(f"generating the built-in dataset at {source}")
        steps.generate_step(params, paths)
    result = lifecycle()
    outcome = promotion.promote(
        params, paths, result["package"]["model"], actor="bootstrap", reason="first model"
    )
    result["promotion"] = {"stage": outcome.version.stage, "gates": outcome.gates}
    return result


def announce_new_keys(paths: Paths) -> None:
    """Create the secrets a first run needs (the pseudonym key) and say where they are."""
    from loopline.privacy.secrets import ensure_keys

    for file in ensure_keys(paths):
        typer.echo(f"created {paths.shown(file)} (mode 0600): back it up; never commit it")


def dev_keys(paths: Paths) -> dict[str, str]:
    """A client and an admin key for this machine, made once and kept in the state folder.

    The service needs a key for every call; a local user should not have to make one
    before the first curl. Shared deployments create their own with ``loopline keys``.
    """
    from loopline.serving import auth

    saved = paths.state / "auth" / "dev-keys.json"
    if saved.exists():
        return dict(json.loads(saved.read_text()))
    store = auth.key_store(paths)
    keys = {
        "client": store.create("local-client", "client"),
        "admin": store.create("local-admin", "admin"),
    }
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.touch(mode=0o600)
    saved.write_text(json.dumps(keys))
    return keys


def sample_customer(params: Params, paths: Paths) -> int:
    """A customer the online store knows, by the id a client knows: the first one of the
    batch in the drop folder (every store after ingestion holds pseudonyms instead)."""
    from loopline.data.contract import read_batches

    source = paths.project / params.dataset.source
    first = next(iter(read_batches(source, params.dataset, rows=1)))
    return int(first[params.dataset.entity].iloc[0])


def curl_example(url: str, entity: str, customer: int, key: str) -> str:
    body = json.dumps({entity: customer})
    return (
        f"curl -s -X POST {url}/predict -H 'Content-Type: application/json' "
        f"-H 'Authorization: Bearer {key}' -d '{body}'"
    )


def up(
    params: Params, paths: Paths, *, bootstrap_if_needed: bool = True, simulate: bool = True
) -> None:
    """Start everything, bootstrap on first run, and stay up until Ctrl-C."""
    started = time.monotonic()
    services: list[Service] = []
    announce_new_keys(paths)
    if simulate and params.generator is None:
        typer.echo("simulator off: it replays the built-in dataset, and this project has its own")
        simulate = False
    stop = _stop_on_sigterm()
    try:
        # With a model already stored, serving starts at once, beside the Prefect server.
        serving = start_serving(paths) if has_model(params) else None
        if serving is not None:
            services.append(serving)
        if not os.environ.get("PREFECT_API_URL"):
            services.append(start_prefect(paths))
            if serving is not None:
                wait_ready(serving, "/readyz")
                typer.echo(f"serving at {serving.url} ({time.monotonic() - started:.0f} s)")
            wait_ready(services[-1], "/api/health")
            os.environ["PREFECT_API_URL"] = services[-1].url + "/api"
        api = os.environ["PREFECT_API_URL"]
        if serving is None:
            if not bootstrap_if_needed:
                raise typer.BadParameter("no model yet: run without --no-bootstrap first")
            typer.echo("first run: building data, features and a model (a few minutes)")
            bootstrap(params, paths)
            serving = start_serving(paths)
            services.append(serving)
        wait_ready(serving, "/readyz")
        note = production_note(params, paths)
        customer = sample_customer(params, paths)
        keys = dev_keys(paths)
        login = local_operator(paths)
        services.append(start_deployments(paths))
        prometheus = _start_prometheus(paths, serving)
        if prometheus is not None:
            services.append(prometheus)
        dashboard = None
        if (paths.project / "dashboard" / "app.py").is_file():
            dashboard = start_dashboard(paths)
            services.append(dashboard)
            wait_ready(dashboard, "/_stcore/health")
        if simulate:
            services.append(start_simulator(paths, serving.url, keys["client"]))
        typer.echo(
            f"\nLoopline is up (ready in {time.monotonic() - started:.0f} s).\n"
            f"  Prefect UI   {api.removesuffix('/api')}\n"
            f"  Serving      {serving.url}  (docs at /docs, metrics at /metrics)\n"
            + (f"  Dashboard    {dashboard.url}\n" if dashboard else "")
            + (f"  Prometheus   {prometheus.url}  (alerts, graphs)\n" if prometheus else "")
            + f"  Simulator    {'on, 5 requests/s' if simulate else 'off'}\n"
            f"  State        {paths.state}\n\n"
            "Try:\n  "
            + curl_example(serving.url, params.dataset.entity, customer, keys["client"])
            + "\n\n"
            f"Keys for this machine (client and admin): {paths.state / 'auth' / 'dev-keys.json'}\n"
            + login_line(paths, login)
            + "Ctrl-C stops everything this command started."
        )
        if note:
            typer.echo(f"\nNote: {note}")
        while not stop.is_set():
            for service in services:
                # The simulator ends when its days are replayed; everything else must stay up.
                if service.process.poll() is not None and service.name != "simulator":
                    raise RuntimeError(f"{service.name} stopped; see {service.log}")
            stop.wait(1)
    except KeyboardInterrupt:
        pass
    finally:
        typer.echo("stopping ...")
        for service in reversed(services):
            service.stop()


def login_line(paths: Paths, login: tuple[str, str | None] | None) -> str:
    """What `make up` says about the dashboard login: the password only when just made."""
    if login is None:
        return "Dashboard logins: the project's own (`loopline users list`)\n"
    name, password = login
    where = paths.state / "auth" / "dev-login.json"
    if password is None:
        return f"Dashboard login: {name} (password in {where})\n"
    return f"Dashboard login (made now, shown once): {name} / {password}  (kept in {where})\n"


def _start_prometheus(paths: Paths, serving: Service) -> Service | None:
    """Prometheus scraping ``serving``, when the binary is there (src/loopline/prometheus_local.py);
    the dashboard started after it links to it."""
    from loopline import prometheus_local

    prometheus = prometheus_local.start_if_present(paths, serving, typer.echo)
    if prometheus is not None:
        os.environ[prometheus_local.URL_ENV] = prometheus.url
    return prometheus


def _stop_on_sigterm() -> Any:
    import threading

    event = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: event.set())
    return event


def demo(params: Params, paths: Paths) -> dict[str, Any]:
    """The loop once, a prediction over HTTP, and a summary; returns what it printed."""
    from flows.lifecycle import lifecycle
    from loopline import promotion, steps

    timings: dict[str, float] = {}
    started = time.perf_counter()
    announce_new_keys(paths)
    source = paths.project / params.dataset.source
    if not source.exists():
        if params.generator is None:  # your own data must be where dataset.source says
            raise ConfigError(f"params.yaml: dataset.source {source} is not there")
        steps.generate_step(params, paths)
    timings["generate"] = time.perf_counter() - started
    result = lifecycle()
    timings["lifecycle"] = time.perf_counter() - started - timings["generate"]
    outcome = promotion.promote(
        params, paths, result["package"]["model"], actor="demo", reason="demo run"
    )
    timings["promote"] = time.perf_counter() - started - timings["generate"] - timings["lifecycle"]
    keys = dev_keys(paths)
    serving = start_serving(paths, free_port())
    with running(serving):
        timings["serving_ready"] = wait_ready(serving, "/readyz")
        customer = sample_customer(params, paths)
        response = httpx.post(
            serving.url + "/predict",
            json={params.dataset.entity: customer},
            headers={"Authorization": f"Bearer {keys['client']}"},
            timeout=30,
        )
    if response.status_code != 200:  # e.g. a promotion waiting for its approver: say why
        raise RuntimeError(
            f"the demo's prediction failed ({response.status_code}): {response.text}"
        )
    prediction = response.json()["predictions"][0]
    summary = {
        "model_version": result["package"]["model"],
        "bento": result["package"]["bento"],
        "metrics": result["package"]["metrics"],
        "data_version": result["data"]["version"]["data_hash"],
        "prediction": prediction,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    typer.echo(
        "\nLoopline demo\n"
        f"  data version   {summary['data_version']}  "
        f"({result['data']['version']['rows']} rows)\n"
        f"  model          {summary['model_version']}  "
        f"({result['train']['candidates']['selected']})\n"
        f"  holdout        "
        + ", ".join(f"{k} {v:.3f}" for k, v in summary["metrics"].items())
        + f"\n  bento          {summary['bento']}\n"
        f"  registry       {outcome.version.stage}, "
        f"{sum(1 for g in outcome.gates if g['passed'] and not g.get('skipped'))} gates passed\n"
        f"  served         customer {customer}: probability {prediction['probability']:.3f}, "
        f"label {prediction['label']}, request {prediction['request_id']}\n"
    )
    return summary


def tell_story(params: Params, paths: Paths) -> dict[str, Any]:
    """The drift story (``loopline demo --story``): its own Prefect server, the ``retrain``
    deployment with its event trigger, and the service, for as long as the story lasts."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from loopline import story

    typer.echo("\nThe drift story: starting Prefect, the retrain deployment and the service ...")
    prefect = start_prefect(paths, free_port())
    with running(prefect):
        wait_ready(prefect, "/api/health", timeout=240)
        api = prefect.url + "/api"
        runner = start(
            "retrain-runner",
            [_bin("loopline"), "deployments", "--only", "retrain"],
            "",
            paths,
            {"PREFECT_API_URL": api},
        )
        serving = start_serving(paths, free_port())
        with running(runner, serving), temporary_settings(updates={PREFECT_API_URL: api}):
            wait_ready(serving, "/readyz")
            typer.echo(f"  Prefect UI {prefect.url} (flow runs and events while the story runs)")
            record = story.tell(
                params,
                paths,
                serving_url=serving.url,
                client_key=dev_keys(paths)["client"],
                api_url=api,
                say=typer.echo,
            )
    typer.echo(story.timeline(record))
    return record


def serve_forever(params: Params, paths: Paths, *, port: int, model_tag: str | None) -> None:
    service = start_serving(paths, port, model_tag)
    with running(service):
        wait_ready(service, "/readyz")
        typer.echo(f"serving at {service.url}; Ctrl-C stops it")
        note = production_note(params, paths)
        if note:
            typer.echo(f"Note: {note}")
        with suppress(KeyboardInterrupt):
            service.process.wait()
