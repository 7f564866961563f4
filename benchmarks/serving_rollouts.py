"""What Loopline's serving costs per routing policy, next to a bare FastAPI app.

Loopline (``bentoml serve bentos.service:ChurnService``) is measured under ``single``
(champion only), ``canary`` (challenger share 0.2) and ``shadow`` (every request also
scored by the challenger, off the response path). The baseline is a bare FastAPI app on
uvicorn (1 worker, 127.0.0.1) doing the same work per request: the Feast online lookup
through the same feature service, a DataFrame, ``predict_proba`` of the same pipeline,
with one thread via threadpoolctl (and ``OMP_NUM_THREADS=1``, which BentoML sets for its
workers); no keys, routing, prediction log or metrics.

Every point is closed-loop: ``concurrency`` clients each send their share of a fixed
number of requests (single customers drawn at random from the known ones), one
connection each. Latency is client-side; throughput is requests / wall time.

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
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from pydantic import BaseModel

CONCURRENCY = (1, 8, 32)
POLICIES: dict[str, tuple[str, float]] = {
    "single": ("single", 0.0),
    "canary": ("canary", 0.2),
    "shadow": ("shadow", 0.0),  # share 0 under shadow: the challenger sees every request
}
GOAL_P50_RATIO = 1.3
GOAL_RPS_RATIO = 1 / 1.3
ACTOR = "benchmark-serving-rollouts"
POINT_TIMEOUT_S = 180.0
HOST = "127.0.0.1"


def say(message: str) -> None:
    print(f"[serving_rollouts] {message}", file=sys.stderr, flush=True)


def summary(seconds: Sequence[float]) -> dict[str, float]:
    """Nearest-rank p50/p90/p99, max and mean in milliseconds (as benchutil computes them)."""
    ms = sorted(s * 1000 for s in seconds)

    def rank(q: float) -> float:
        return ms[max(1, math.ceil(q / 100 * len(ms))) - 1] if ms else math.nan

    return {
        "n": len(ms),
        "p50_ms": rank(50),
        "p90_ms": rank(90),
        "p99_ms": rank(99),
        "max_ms": ms[-1] if ms else math.nan,
        "mean_ms": sum(ms) / len(ms) if ms else math.nan,
    }


# --- the bare baseline ----------------------------------------------------------------


class PredictBody(BaseModel):
    """The bare app's request (module level: FastAPI resolves annotations by name)."""

    customer_id: int


def bare_app(model_tag: str) -> Any:
    """FastAPI app: Feast lookup through the feature service, then predict_proba; nothing else."""
    import pandas as pd
    from fastapi import FastAPI
    from threadpoolctl import threadpool_limits

    from loopline import features, packaging
    from loopline.config import load_params
    from loopline.settings import activate

    threadpool_limits(1)  # as ChurnService.__init__ does
    paths = activate()
    params = load_params(paths.params_file)
    entity, threshold = params.dataset.entity, params.serving.threshold
    store = features.feature_store(paths)
    feature_service = store.get_feature_service(params.features.service)
    model, _ = packaging.load_model(model_tag)
    inputs = list(model.feature_names_in_)

    def score(customer: int) -> float:
        rows = [{entity: customer}]
        values = store.get_online_features(features=feature_service, entity_rows=rows).to_dict()
        return float(model.predict_proba(pd.DataFrame(values)[inputs])[0, 1])

    score(0)  # the first lookup pays Feast's lazy imports

    app = FastAPI()

    @app.post("/predict")
    def predict(body: PredictBody) -> dict[str, Any]:  # sync, on the threadpool, as in BentoML
        probability = score(body.customer_id)
        return {
            "customer_id": body.customer_id,
            "probability": round(probability, 6),
            "label": int(probability >= threshold),
            "model_version": model_tag,
        }

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve_bare(port: int, model_tag: str) -> None:
    import uvicorn

    uvicorn.run(bare_app(model_tag), host=HOST, port=port, workers=1, log_level="warning")


# --- load -----------------------------------------------------------------------------


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) of a process and all its live descendants (a server's workers).

    CPU per request does not depend on what else the machine runs, unlike latency and
    throughput on a shared 2-core machine, so it is the steadier comparison.
    """
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
        pid = int(entry.name)
        parents[pid] = int(fields[1])  # field 4 of stat: the parent pid
        cpu[pid] = int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    total = 0
    for pid in cpu:
        ancestor, hops = pid, 0
        while ancestor not in (root, 0, 1) and hops < 64:
            ancestor, hops = parents.get(ancestor, 0), hops + 1
        if ancestor == root:
            total += cpu[pid]
    return total / tick


def closed_loop(
    url: str,
    headers: dict[str, str],
    ids: Sequence[int],
    concurrency: int,
    total: int,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """``total`` requests split over ``concurrency`` clients; bounded by count and time.

    With ``server_pid``, also the CPU per request of that server and its workers.
    """
    import httpx

    share = max(1, total // concurrency)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    barrier = threading.Barrier(concurrency + 1)
    deadline: list[float] = [math.inf]

    def worker(k: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(base_url=url, headers=headers, timeout=30, limits=limits) as client:
            client.post("/predict", json={"customer_id": ids[k % len(ids)]})  # open the connection
            barrier.wait()
            for n in range(share):
                if time.monotonic() > deadline[0]:
                    return
                customer = ids[(k * share + n) % len(ids)]
                started = time.perf_counter()
                try:
                    ok = client.post("/predict", json={"customer_id": customer}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies[k].append(time.perf_counter() - started)
                errors[k] += not ok

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=60)
    cpu = tree_cpu_seconds(server_pid) if server_pid is not None else math.nan
    started = time.perf_counter()
    deadline[0] = time.monotonic() + POINT_TIMEOUT_S
    for thread in threads:
        thread.join(timeout=POINT_TIMEOUT_S + 35)
    wall = time.perf_counter() - started
    done = sum(len(part) for part in latencies)
    if server_pid is not None:
        cpu = tree_cpu_seconds(server_pid) - cpu
    return summary([x for part in latencies for x in part]) | {
        "server_cpu_ms_per_request": round(1e3 * cpu / done, 3) if done else math.nan,
        "concurrency": concurrency,
        "requests": done,
        "errors": sum(errors),
        "seconds": round(wall, 3),
        "rps": done / wall if wall > 0 else math.nan,
    }


# --- the Loopline side ----------------------------------------------------------------


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


def _wait_for_table(
    url: str, headers: dict[str, str], counter: int, timeout: float = 10.0
) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        table: dict[str, Any] = httpx.post(
            f"{url}/model", json={}, headers=headers, timeout=10
        ).json()
        if table["registry_counter"] >= counter or time.monotonic() > deadline:
            return table
        time.sleep(0.05)


def _known_ids(paths: Any, entity: str, count: int, seed: int) -> list[int]:
    import pandas as pd

    known = pd.read_parquet(paths.ingested, columns=[entity])[entity].unique().tolist()
    rng = random.Random(seed)
    return [int(rng.choice(known)) for _ in range(count)]


def run(
    paths: Any,
    keys: dict[str, str],
    *,
    concurrency: Sequence[int] = CONCURRENCY,
    requests: int = 600,
    warmup: int = 50,
    seed: int = 11,
    log: Callable[[str], None] = say,
) -> dict[str, Any]:
    """Latency and throughput of Loopline per policy and of the bare app, with their ratios.

    ``paths`` is the activated project (``loopline.settings.activate()``); ``keys`` holds a
    client key (``loopline.platform.dev_keys(paths)``). Every point sends ``requests``
    requests (after ``warmup``), so the whole run sends about
    ``(1 + len(POLICIES)) * len(concurrency) * (requests + warmup)`` requests.
    """
    from loopline import platform
    from loopline.config import load_params
    from loopline.registry import Registry

    params = load_params(paths.params_file)
    entity = params.dataset.entity
    ids = _known_ids(paths, entity, max(requests, 1000), seed)
    headers = {"Authorization": f"Bearer {keys['client']}"}
    result: dict[str, Any] = {
        "config": {
            "concurrency": list(concurrency),
            "requests_per_point": requests,
            "warmup": warmup,
            "policies": {k: {"policy": p, "share": s} for k, (p, s) in POLICIES.items()},
            "cpus": os.cpu_count(),
            "loadavg_before": os.getloadavg(),
        },
        "goal": {"p50_ratio_max": GOAL_P50_RATIO, "rps_ratio_min": round(GOAL_RPS_RATIO, 3)},
    }
    previous = os.environ.get("LOOPLINE_REGISTRY_URL")
    with (
        tempfile.TemporaryDirectory(prefix="loopline-bench-rollouts-") as folder,
        ExitStack() as stack,
    ):
        url, versions = _private_registry(paths, params, Path(folder))
        result["versions"] = versions
        os.environ["LOOPLINE_REGISTRY_URL"] = url  # the Loopline server inherits it
        try:
            loopline = platform.start_serving(paths, platform.free_port(), versions["A"])
        finally:
            if previous is None:
                os.environ.pop("LOOPLINE_REGISTRY_URL", None)
            else:
                os.environ["LOOPLINE_REGISTRY_URL"] = previous
        stack.enter_context(platform.running(loopline))
        port = platform.free_port()
        command = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(port)]
        command += ["--model", versions["A"]]
        # BentoML starts its workers with OMP_NUM_THREADS=1; threadpool_limits(1) in the main
        # thread does not reach the threads a sync endpoint runs on, so give the bare app the
        # same environment, or its HistGradientBoosting predicts with an OpenMP team per thread.
        one_thread = {"OMP_NUM_THREADS": "1"}
        bare = platform.start("bare-fastapi", command, f"http://{HOST}:{port}", paths, one_thread)
        stack.enter_context(platform.running(bare))
        log(f"starting Loopline ({loopline.url}) and the bare app ({bare.url})")
        result["ready_seconds"] = {
            "loopline": platform.wait_ready(loopline, "/readyz"),
            "bare": platform.wait_ready(bare, "/readyz"),
        }
        registry = stack.enter_context(Registry(url))
        name = params.serving.model_name

        def warm(target: str) -> None:
            closed_loop(target, headers, ids, 1, warmup)

        bare_points: dict[str, Any] = {}
        policy_points: dict[str, dict[str, Any]] = {k: {} for k in POLICIES}
        for level in concurrency:
            log(f"concurrency {level}: bare app")
            warm(bare.url)
            bare_points[str(level)] = closed_loop(
                bare.url, headers, ids, level, requests, bare.process.pid
            )
            for key, (policy, share) in POLICIES.items():
                registry.set_policy(name, policy, share, actor=ACTOR, reason=f"benchmark {key}")
                table = _wait_for_table(loopline.url, headers, registry.change_counter(name))
                if table["policy"] != policy:
                    raise RuntimeError(f"the server did not pick up policy {policy}: {table}")
                log(f"concurrency {level}: Loopline {key}")
                warm(loopline.url)
                point = closed_loop(
                    loopline.url, headers, ids, level, requests, loopline.process.pid
                )
                policy_points[key][str(level)] = point
        result["bare"] = bare_points | {"max_rps": max(p["rps"] for p in bare_points.values())}
        result["loopline"] = {
            key: points | {"max_rps": max(p["rps"] for p in points.values())}
            for key, points in policy_points.items()
        }
    result["errors"] = sum(p["errors"] for p in bare_points.values()) + sum(
        p["errors"] for points in policy_points.values() for p in points.values()
    )
    result["ratios"] = _ratios(result["bare"], result["loopline"], concurrency)
    result["config"]["loadavg_after"] = os.getloadavg()
    return result


def _ratios(
    bare: dict[str, Any], loopline: dict[str, dict[str, Any]], concurrency: Sequence[int]
) -> dict[str, Any]:
    """Loopline / bare: p50 latency (goal <= 1.3) and throughput (goal >= 1/1.3)."""
    out: dict[str, Any] = {}
    for key, points in loopline.items():
        per_level = {
            str(level): {
                "p50": round(points[str(level)]["p50_ms"] / bare[str(level)]["p50_ms"], 3),
                "p99": round(points[str(level)]["p99_ms"] / bare[str(level)]["p99_ms"], 3),
                "rps": round(points[str(level)]["rps"] / bare[str(level)]["rps"], 3),
                "cpu": round(
                    points[str(level)]["server_cpu_ms_per_request"]
                    / bare[str(level)]["server_cpu_ms_per_request"],
                    3,
                ),
            }
            for level in concurrency
        }
        max_rps = round(points["max_rps"] / bare["max_rps"], 3)
        out[key] = per_level | {
            "max_rps": max_rps,
            "meets_goal": all(r["p50"] <= GOAL_P50_RATIO for r in per_level.values())
            and max_rps >= GOAL_RPS_RATIO,
        }
    return out


def render(result: dict[str, Any]) -> str:
    """A Markdown table of the result (what docs and reports show)."""
    lines = [
        "| target | clients | p50 ms | p99 ms | req/s | server CPU ms/req | errors "
        "| p50 ratio | req/s ratio | CPU ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for level in result["config"]["concurrency"]:
        b = result["bare"][str(level)]
        lines.append(
            f"| bare FastAPI | {level} | {b['p50_ms']:.1f} | {b['p99_ms']:.1f} | {b['rps']:.0f} "
            f"| {b['server_cpu_ms_per_request']:.2f} | {b['errors']} | 1 | 1 | 1 |"
        )
        for key, points in result["loopline"].items():
            p, r = points[str(level)], result["ratios"][key][str(level)]
            lines.append(
                f"| Loopline {key} | {level} | {p['p50_ms']:.1f} | {p['p99_ms']:.1f} "
                f"| {p['rps']:.0f} | {p['server_cpu_ms_per_request']:.2f} | {p['errors']} "
                f"| {r['p50']:.2f} | {r['rps']:.2f} | {r['cpu']:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    parser.add_argument("--requests", type=int, default=600, help="requests per point")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()

    # activate() before Feast/BentoML are imported: they read their homes at import time.
    from loopline.settings import activate

    paths = activate()
    if args.serve_bare is not None:
        serve_bare(args.serve_bare, args.model)
        return
    from loopline import platform

    result = run(
        paths,
        platform.dev_keys(paths),
        concurrency=args.concurrency,
        requests=args.requests,
        warmup=args.warmup,
    )
    print(render(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
