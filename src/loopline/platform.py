"""Running the platform's servers: Prefect, BentoML serving; and the scripted demo."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import typer

from loopline.config import ConfigError, Params
from loopline.serving.tls import tls_files, trusting
from loopline.settings import Paths
from loopline.users import local_operator

HOST = "127.0.0.1"
PREFECT_PORT = 4200
SERVING_PORT = 3000
DASHBOARD_PORT = 8501


def _bin(name: str) -> str:
    # The console scripts of this environment, whatever PATH says.
    return str(Path(sys.executable).with_name(name))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    """A server this command started; stopped with its whole process group."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    # The certificate an https server presents: what wait_ready verifies it against.
    certfile: Path | None = None

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start(name: str, command: list[str], url: str, paths: Paths, env: dict[str, str]) -> Service:
    """Start a server in its own process group, logging to the state folder."""
    paths.logs.mkdir(parents=True, exist_ok=True)
    log = paths.logs / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            cwd=paths.project,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Service(name, process, url, log)


def wait_ready(service: Service, path: str, timeout: float = 180) -> float:
    """Poll ``path`` until it answers 200; fail with the log's tail if the process dies."""
    started = time.monotonic()
    verify = trusting(service.certfile)
    while time.monotonic() - started < timeout:
        if service.process.poll() is not None:
            tail = service.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}:\n{tail}")
        try:
            if httpx.get(service.url + path, timeout=2, verify=verify).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{service.name} not ready at {service.url}{path} after {timeout:.0f}s")


def start_prefect(paths: Paths, port: int = PREFECT_PORT) -> Service:
    command = [_bin("prefect"), "server", "start", "--host", HOST, "--port", str(port)]
    command.append("--analytics-off")
    return start("prefect", command, f"http://{HOST}:{port}", paths, {})


def start_serving(
    paths: Paths,
    port: int = SERVING_PORT,
    model_tag: str | None = None,
    workers: int | None = None,
) -> Service:
    """``bentoml serve`` the service; ``workers`` overrides LOOPLINE_SERVING_WORKERS.

    With ``serving.tls`` set (:func:`tls_files`) it serves HTTPS only, at an https url.
    """
    from loopline.serving.workers import WORKERS_ENV

    tls = tls_files(paths)  # before starting anything: a missing file is a config error
    command = [_bin("bentoml"), "serve", "bentos.service:ChurnService"]
    command += ["--host", HOST, "--port", str(port), "--working-dir", str(paths.project)]
    if tls is not None:
        # Hidden in `bentoml serve --help`, but BentoML's own options, passed to uvicorn.
        command += ["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])]
    # OpenMP/BLAS threads are pinned per worker by the service's own envs.
    env = {"LOOPLINE_MODEL_TAG": model_tag} if model_tag else {}
    if workers is not None:
        env[WORKERS_ENV] = str(workers)
    scheme = "http" if tls is None else "https"
    service = start("serving", command, f"{scheme}://{HOST}:{port}", paths, env)
    return service if tls is None else replace(service, certfile=tls[0])


def serving_workers(service: Service) -> list[int]:
    """Pids of the worker processes of a ``bentoml serve`` this command started."""
    import psutil

    # The serve process is BentoML's arbiter (circus); each worker runs this module.
    children = psutil.Process(service.process.pid).children(recursive=True)
    return sorted(c.pid for c in children if _is_worker(c))


def _is_worker(process: Any) -> bool:
    import psutil

    try:
        return "_bentoml_impl.worker.service" in process.cmdline()
    except psutil.Error:  # gone between listing and reading: not a worker any more
        return False


def start_deployments(paths: Paths) -> Service:
    """Serve the Prefect deployments (schedules, event triggers, dashboard actions)."""
    return start("deployments", [_bin("loopline"), "deployments"], "", paths, {})


def dashboard_command(app: Path, port: int = DASHBOARD_PORT) -> list[str]:
    """``streamlit run`` as users get it (the real-browser test runs the same command)."""
    command = [_bin("streamlit"), "run", str(app)]
    command += ["--server.address", HOST, "--server.port", str(port), "--server.headless", "true"]
    command += ["--browser.gatherUsageStats", "false"]
    # Viewer mode: no "Deploy" button or developer menu in a user's toolbar.
    command += ["--client.toolbarMode", "viewer"]
    return command


def start_dashboard(paths: Paths, port: int = DASHBOARD_PORT) -> Service:
    command = dashboard_command(paths.project / "dashboard" / "app.py", port)
    return start("dashboard", command, f"http://{HOST}:{port}", paths, {})


def start_simulator(paths: Paths, url: str, key: str) -> Service:
    """Background traffic so the platform is alive at once: a year of days, 5 requests/s."""
    command = [_bin("loopline"), "simulate", "--days", "365", "--rate", "5"]
    command += ["--seconds-per-day", "20", "--url", url, "--key", key]
    return start("simulator", command, "", paths, {})


@contextmanager
def running(*services: Service) -> Iterator[None]:
    try:
        yield
    finally:
        for service in reversed(services):
            service.stop()


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
