"""Serving over HTTP under load from wrk: Loopline per rollout policy, beside two baselines.

Targets, all on 127.0.0.1 and all up at once (so drifting load from other processes falls
on each alike, the points run level by level, target by target):

- ``trivial``: BentoML's trivial sync endpoint (``trivial_service.py``) on the service's
  own server settings: the most BentoML allows here;
- ``bare``: a FastAPI/uvicorn app with as many workers as the service, doing the same
  Feast lookup and scoring and nothing else (``baselines.py``);
- Loopline (``bentoml serve bentos.service:ChurnService``) under ``single`` (champion
  only), ``canary`` (challenger share 0.2) and ``shadow`` (every request also scored by
  the challenger, off the response path).

Each point is ``wrk -t1 -c<level>`` for a fixed time after a short warm-up run: single
``POST /predict`` bodies for random known customers with the client key (``wrk.py``).
Then one request of 1,000 customers, sequentially from a Python client, against the
trivial endpoint, the bare app and Loopline: the latency of one request, not throughput.

The Loopline server runs on a registry of its own (a temporary SQLite file), holding
copies of two version records of the project's registry: nothing in the project's
registry changes. Its requests do go to the project's prediction log, like any traffic:
run it on a copy of a project whose monitoring matters.

Standalone: ``LOOPLINE_PROJECT=/path/to/project python benchmarks/serving_rollouts.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import wrk
from baselines import start_bare, start_trivial, wait_workers
from benchutil import latency_summary, tree_cpu_seconds

CONCURRENCY = (1, 8, 32)
POLICIES: dict[str, tuple[str, float]] = {
    "single": ("single", 0.0),
    "canary": ("canary", 0.2),
    "shadow": ("shadow", 0.0),  # share 0 under shadow: the challenger sees every request
}
BASELINES = ("trivial", "bare")
BATCH = 1000
# The service's request fields (bentos/service.py), whatever the dataset calls its entity.
FIELD, BATCH_FIELD = "customer_id", "customer_ids"
ACTOR = "benchmark-serving-rollouts"
# BentoML's access log line ends with the server-side handling time, e.g. "... 3.402ms (trace=".
ACCESS = re.compile(r"path=/predict,.*\(status=(\d+).*?\)\s+([\d.]+)ms")


def say(message: str) -> None:
    print(f"[serving_rollouts] {message}", file=sys.stderr, flush=True)


def run(
    paths: Any,
    keys: dict[str, str],
    *,
    concurrency: Sequence[int] = CONCURRENCY,
    seconds: int = 15,
    warmup_seconds: int = 2,
    batch_calls: int = 30,
    seed: int = 11,
    log: Callable[[str], None] = say,
) -> dict[str, Any]:
    """Every target at every concurrency under wrk, then the 1,000-customer request.

    ``paths`` is the activated project (``loopline.settings.activate()``); ``keys`` holds a
    client key (``loopline.platform.dev_keys(paths)``). About
    ``5 * len(concurrency) * (seconds + warmup_seconds)`` seconds of load in all.
    """
    import httpx

    from loopline import platform
    from loopline.config import load_params
    from loopline.registry import Registry

    params = load_params(paths.params_file)
    entity = params.dataset.entity
    known = _known_ids(paths, entity)
    headers = {"Authorization": f"Bearer {keys['client']}"}
    result: dict[str, Any] = {
        "config": {
            "concurrency": list(concurrency),
            "seconds": seconds,
            "warmup_seconds": warmup_seconds,
            "batch_calls": batch_calls,
            "batch_size": BATCH,
            "known_customers": len(known),
            "policies": {k: {"policy": p, "share": s} for k, (p, s) in POLICIES.items()},
            "cpus": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)),
            "loadavg_before": os.getloadavg(),
            "wrk": {"version": wrk.version(), "threads": wrk.THREADS, "timeout_s": wrk.TIMEOUT_S},
        },
    }
    with (
        tempfile.TemporaryDirectory(prefix="loopline-bench-rollouts-") as folder,
        ExitStack() as stack,
    ):
        url, versions = _private_registry(paths, params, Path(folder))
        result["versions"] = versions
        ids_file = wrk.write_ids(known, Path(folder))
        # The Loopline server inherits the private registry; nothing else should.
        previous = os.environ.get("LOOPLINE_REGISTRY_URL")
        os.environ["LOOPLINE_REGISTRY_URL"] = url
        try:
            loopline = platform.start_serving(paths, platform.free_port(), versions["A"])
        finally:
            if previous is None:
                os.environ.pop("LOOPLINE_REGISTRY_URL", None)
            else:
                os.environ["LOOPLINE_REGISTRY_URL"] = previous
        stack.enter_context(platform.running(loopline))
        trivial = start_trivial(paths, platform.free_port())
        stack.enter_context(platform.running(trivial))
        log(f"starting Loopline ({loopline.url}) and BentoML's trivial service ({trivial.url})")
        ready = {"loopline": platform.wait_ready(loopline, "/readyz")}
        ready["trivial"] = platform.wait_ready(trivial, "/readyz")
        workers = len(platform.serving_workers(loopline))
        bare = start_bare(paths, platform.free_port(), versions["A"], workers)
        stack.enter_context(platform.running(bare))
        log(f"starting the bare app ({bare.url}) with {workers} workers, as Loopline has")
        ready["bare"] = platform.wait_ready(bare, "/readyz")
        result["ready_seconds"] = ready
        # Imports BentoML and the service here, after every server has its environment.
        result["settings"] = _settings()
        result["workers"] = {
            "loopline": wait_workers(f"{loopline.url}/model", workers, headers),
            "trivial": wait_workers(
                f"{trivial.url}/worker", len(platform.serving_workers(trivial))
            ),
            "bare": wait_workers(f"{bare.url}/worker", workers),
        }
        registry = stack.enter_context(Registry(url))
        name = params.serving.model_name
        servers = {"trivial": trivial, "bare": bare} | dict.fromkeys(POLICIES, loopline)
        points: dict[str, dict[str, Any]] = {key: {} for key in servers}

        def switch(key: str) -> None:
            policy, share = POLICIES[key]
            registry.set_policy(name, policy, share, actor=ACTOR, reason=f"benchmark {key}")
            _wait_for_policy(loopline.url, headers, registry.change_counter(name), workers)

        load = {"ids_file": ids_file, "api_key": keys["client"], "field": FIELD}
        for level in concurrency:
            for key, server in servers.items():
                if key in POLICIES:
                    switch(key)
                log(f"{level} connection(s): {key}")
                _load(server, level, warmup_seconds, load)
                offset = server.log.stat().st_size
                point = _measured(server, level, seconds, load | {"seed": seed})
                if key == "single" and level == 1:
                    result["server_side"] = _server_side(server.log, offset)
                points[key][str(level)] = point
        result["points"] = points

        log(f"{batch_calls} sequential requests of {BATCH:,} customers per target")
        switch("single")
        rng = random.Random(seed)
        batches = [
            rng.sample(known, BATCH) if len(known) >= BATCH else rng.choices(known, k=BATCH)
            for _ in range(batch_calls + 3)
        ]
        clients = {
            key: stack.enter_context(
                httpx.Client(base_url=servers[key].url, headers=headers, timeout=60)
            )
            for key in (*BASELINES, "single")
        }
        result["batch"] = _batch_latency(clients, batches, warm=3)
    result["config"]["loadavg_after"] = os.getloadavg()
    result["errors"] = sum(p["errors"] for by in points.values() for p in by.values())
    return result


def _measured(server: Any, connections: int, seconds: int, load: dict[str, Any]) -> dict[str, Any]:
    """One wrk run, with the CPU time the server and its workers spent per request."""
    cpu = tree_cpu_seconds(server.process.pid)
    point = _load(server, connections, seconds, load)
    cpu = tree_cpu_seconds(server.process.pid) - cpu
    done = point["requests"]
    point["server_cpu_ms_per_request"] = round(1e3 * cpu / done, 3) if done else math.nan
    return point


def _load(server: Any, connections: int, seconds: int, load: dict[str, Any]) -> dict[str, Any]:
    """One wrk run against ``server``; a server that died meanwhile says so, with its log."""
    try:
        return wrk.run(f"{server.url}/predict", connections=connections, seconds=seconds, **load)
    except RuntimeError as exc:
        if server.process.poll() is None:
            raise
        tail = server.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(
            f"{server.name} exited ({server.process.returncode}) under {connections} "
            f"connection(s); a clean exit means something outside stopped it:\n{tail}"
        ) from exc


def _batch_latency(clients: dict[str, Any], batches: list[list[int]], warm: int) -> dict[str, Any]:
    """One ``customer_ids`` request at a time, the targets taking turns call by call."""
    seconds: dict[str, list[float]] = {key: [] for key in clients}
    errors = dict.fromkeys(clients, 0)
    for n, ids in enumerate(batches):
        for key, client in clients.items():
            started = time.perf_counter()
            response = client.post("/predict", json={BATCH_FIELD: ids})
            elapsed = time.perf_counter() - started
            if n >= warm:
                seconds[key].append(elapsed)
                errors[key] += not 200 <= response.status_code < 300
    return {
        key: latency_summary(values) | {"errors": errors[key]} for key, values in seconds.items()
    }


def _server_side(log: Path, offset: int) -> dict[str, Any]:
    """BentoML's own handling time per request, from its access log (bytes after ``offset``)."""
    time.sleep(1.0)  # log lines may trail the responses by a moment
    with log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    times = [float(m.group(2)) / 1000 for m in ACCESS.finditer(text) if m.group(1) == "200"]
    return latency_summary(times) if times else {"n": 0}


def _settings() -> dict[str, Any]:
    """The server settings of Loopline's service and of the trivial one, and whether they match."""
    try:
        import trivial_service
        from bentos.service import ChurnService
    except Exception as exc:  # a half-edited service must not stop the benchmark
        return {"error": repr(exc)}

    def of(service: Any) -> dict[str, Any]:
        return json.loads(json.dumps({**service.config, "envs": service.envs}, default=str))

    churn, trivial = of(ChurnService), of(trivial_service.TrivialService)
    differs = sorted(k for k in churn.keys() | trivial.keys() if churn.get(k) != trivial.get(k))
    return {"loopline": churn, "trivial": trivial, "differs": differs}


# --- the Loopline side's private registry -------------------------------------------------


def _pick_versions(paths: Any, model_name: str) -> list[Any]:
    """Two version records with their files in the model store: champion first."""
    from loopline import packaging
    from loopline.registry import Registry

    registry = Registry(paths.registry_url)
    registry.upgrade()
    production = registry.production(model_name)
    records = [production] if production else []
    for record in reversed(registry.list_versions(model_name)):
        if all(record.version != r.version for r in records):
            records.append(record)
    usable = []
    for record in records:
        try:
            packaging.stored_files(record.version)
        except FileNotFoundError:
            continue
        usable.append(record)
    if not usable:
        raise SystemExit(f"no registered version of {model_name!r} has its files in the store")
    return usable[:2]


def _second_copy(params: Any, record: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A second model-store entry with the champion's files, when the project has one version."""
    from loopline import packaging

    model_file, holdout_file = packaging.stored_files(record.version)
    tag, digest = packaging.save_model(
        params.serving.model_name, model_file, holdout_file, record.metrics, record.lineage
    )
    return tag, record.metrics, record.lineage | {"model_sha256": digest}


def _private_registry(paths: Any, params: Any, folder: Path) -> tuple[str, dict[str, str]]:
    """A temporary registry with a champion A and a staging challenger B (copied records)."""
    from loopline.registry import Registry

    name = params.serving.model_name
    picked = _pick_versions(paths, name)
    url = f"sqlite:///{folder / 'registry.db'}"
    registry = Registry(url)
    registry.upgrade()
    entries = [(r.version, r.metrics, r.lineage) for r in picked]
    if len(entries) == 1:
        entries.append(_second_copy(params, picked[0]))
    for version, metrics, lineage in entries:
        registry.register(
            name, version, metrics=metrics, lineage=lineage, actor=ACTOR, reason="benchmark copy"
        )
    a, b = entries[0][0], entries[1][0]
    registry.request_promotion(a, actor=ACTOR, reason="benchmark champion", gate_results=[])
    registry.transition(b, "staging", actor=ACTOR, reason="benchmark challenger")
    registry.set_challenger(name, b, actor=ACTOR, reason="benchmark challenger")
    registry.close()
    return url, {"A": a, "B": b}


def _wait_for_policy(
    url: str, headers: dict[str, str], counter: int, workers: int, timeout: float = 15.0
) -> None:
    """Until ``workers`` distinct workers report a routing table at least ``counter`` new."""
    import httpx

    current: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(current) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(current)} of {workers} workers took the new policy")
        # A fresh connection each time, so that every worker gets asked in turn.
        with httpx.Client(headers=headers, timeout=10) as client:
            table = client.post(f"{url}/model", json={}).json()
        if table["registry_counter"] >= counter:
            current.add(int(table["worker"]))
        time.sleep(0.05)


def _known_ids(paths: Any, entity: str) -> list[int]:
    from benchutil import client_ids

    return client_ids(paths)


# --- what the report shows ----------------------------------------------------------------


def render(result: dict[str, Any]) -> str:
    """Every target at every concurrency: a Markdown table."""
    labels = {"trivial": "BentoML trivial endpoint", "bare": "bare FastAPI, same work"}
    lines = [
        "| target | connections | req/s | p50 ms | p90 ms | p99 ms | max ms | errors "
        "| server CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for level in result["config"]["concurrency"]:
        for key, points in result["points"].items():
            p = points[str(level)]
            bold = "**" if key == "single" else ""
            lines.append(
                f"| {bold}{labels.get(key, f'Loopline {key}')}{bold} | {level} "
                f"| {bold}{p['rps']:.0f}{bold} | {p['p50_ms']:.2f} | {p['p90_ms']:.2f} "
                f"| {p['p99_ms']:.2f} | {p['max_ms']:.1f} | {_errors(p)} "
                f"| {p['server_cpu_ms_per_request']:.2f} |"
            )
    return "\n".join(lines)


def _errors(point: dict[str, Any]) -> str:
    if not point["errors"]:
        return "0"
    detail = {k: v for k, v in point["error_detail"].items() if v and k != "status"}
    bad = {code: n for code, n in point["statuses"].items() if not code.startswith("2")}
    return f"**{point['errors']}** ({', '.join(f'{k} {v}' for k, v in (detail | bad).items())})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    parser.add_argument("--seconds", type=int, default=15, help="wrk seconds per point")
    parser.add_argument("--warmup-seconds", type=int, default=2)
    parser.add_argument("--batch-calls", type=int, default=30)
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    args = parser.parse_args()

    # activate() before Feast/BentoML are imported: they read their homes at import time.
    from loopline.settings import activate

    paths = activate()
    from loopline import platform

    result = run(
        paths,
        platform.dev_keys(paths),
        concurrency=args.concurrency,
        seconds=args.seconds,
        warmup_seconds=args.warmup_seconds,
        batch_calls=args.batch_calls,
    )
    print(render(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
