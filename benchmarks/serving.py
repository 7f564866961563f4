"""Serving latency and throughput over HTTP, next to the in-process work one request does.

Run by ``run.py`` against the project copy after the demo built its state
(``LOOPLINE_PROJECT``/``LOOPLINE_HOME`` point at the copy). Writes one JSON result.
All traffic goes to 127.0.0.1. Every loop is bounded by a call count and, because a
shared 2-core machine can slow calls a hundredfold, by a time budget too: a loop that
runs out of time reports the calls it made (``n``) rather than stretching the run.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchutil import latency_summary, say, write_result

# BentoML's access log line ends with the server-side handling time, e.g. "... 3.402ms (trace=".
ACCESS = re.compile(r"path=/predict,.*\(status=(\d+).*?\)\s+([\d.]+)ms")
# Time budgets (seconds) per measurement loop.
IN_PROCESS_BUDGET = 45.0
SIDE_BUDGET = 25.0
HTTP_BUDGET = 90.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--calls", type=int, default=1000, help="sequential calls per measurement")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--load-requests", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    # activate() before Feast/BentoML are imported: they read their homes at import time.
    from loopline.settings import activate

    paths = activate()
    import numpy as np
    import pandas as pd

    from loopline import features, packaging
    from loopline.config import load_params

    params = load_params(paths.params_file)
    entity = params.dataset.entity
    tag = json.loads((paths.artifacts / "package.json").read_text())["model"]
    known = pd.read_parquet(paths.ingested, columns=[entity])[entity].unique()
    rng = np.random.default_rng(args.seed)
    # Random known customers: each call hits a different row, as real traffic would.
    ids = [int(i) for i in rng.choice(known, size=args.calls + args.warmup, replace=True)]
    warm, timed = ids[: args.warmup], ids[args.warmup :]
    side = max(args.calls * 3 // 10, 50)
    result: dict[str, Any] = {"model": tag, "customers": len(known)}

    say("in-process: Feast online lookup through the feature service")
    store = features.feature_store(paths)
    name = params.features.service
    # bentos/service.py fetches the FeatureService once at start-up and reuses it; the
    # platform helper features.online_features fetches it from the registry on every call.
    # Both are measured: the first is what a request pays, the second what other callers pay.
    feature_service = store.get_feature_service(name)

    def lookup(i: int) -> dict[str, list[Any]]:
        rows = [{entity: i}]
        return store.get_online_features(features=feature_service, entity_rows=rows).to_dict()

    def helper(i: int) -> dict[str, list[Any]]:
        return features.online_features(store, name, entity, [i])

    values: list[dict[str, list[Any]]] = []
    result["lookup"] = _timed(lookup, warm, timed, IN_PROCESS_BUDGET, values)
    result["lookup_helper"] = _timed(helper, warm, timed[:side], SIDE_BUDGET)

    say("in-process: model.predict_proba on one row")
    model, _ = packaging.load_model(tag)
    inputs = list(model.feature_names_in_)
    result["estimator"] = type(model[-1]).__name__ if hasattr(model, "steps") else str(model)
    frames = [pd.DataFrame(v)[inputs] for v in values]
    # BentoML calls sync APIs on a worker thread, while the service is built on the main
    # thread. OpenMP's thread count is per calling thread (HistGradientBoosting predicts with
    # OpenMP), so what the main thread sets or measures need not hold for the worker. The
    # variants run in alternating blocks so that load from other processes, which drifts,
    # falls on all of them alike.
    result["openmp_threads"] = _openmp_threads()
    with _worker(limit_openmp=False) as plain, _worker(limit_openmp=True) as limited:
        result |= _interleaved(
            {
                "predict": model.predict_proba,
                "predict_worker_thread": lambda f: plain.submit(model.predict_proba, f).result(),
                "predict_worker_thread_omp1": lambda f: limited.submit(
                    model.predict_proba, f
                ).result(),
            },
            frames[: args.warmup],
            {"predict": frames, "predict_worker_thread": frames[:side]}
            | {"predict_worker_thread_omp1": frames[:side]},
            IN_PROCESS_BUDGET * 2,
        )

    say("in-process: lookup -> DataFrame -> predict (the service's core work without HTTP)")
    stored = {f.name for view in store.list_feature_views() for f in view.features}
    stored_inputs = [c for c in inputs if c in stored]

    def score(i: int) -> Any:
        # The scoring steps of ChurnService.predict for one id.
        frame = pd.DataFrame(lookup(i))
        frame[stored_inputs].notna().any(axis=1)
        return model.predict_proba(frame[inputs])[:, 1]

    result["in_process"] = _timed(score, warm, timed, SIDE_BUDGET)

    result |= _serve_pair(paths, tag, entity, ids, args)
    write_result(args.out, result)


def _timed(
    call: Callable[[Any], Any],
    warm: Sequence[Any],
    timed: Sequence[Any],
    budget: float,
    keep: list[Any] | None = None,
) -> dict[str, float]:
    """Latency of ``call`` per argument, after calling it on every ``warm`` argument."""
    for arg in warm:
        call(arg)
    seconds = []
    deadline = time.perf_counter() + budget
    for arg in timed:
        t = time.perf_counter()
        out = call(arg)
        seconds.append(time.perf_counter() - t)
        if keep is not None:
            keep.append(out)
        if t > deadline:
            break
    return latency_summary(seconds) | {"planned": len(timed)}


@contextmanager
def _worker(*, limit_openmp: bool) -> Iterator[Any]:
    """One worker thread, as BentoML runs a sync API; optionally OpenMP at 1 thread on it."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    def limit() -> None:
        # Set on the worker itself: a limit set on the main thread does not reach it.
        if limit_openmp:
            threadpool_limits(1, user_api="openmp")

    with ThreadPoolExecutor(1, initializer=limit) as pool:
        yield pool


def _openmp_threads() -> dict[str, int]:
    """OpenMP threads sklearn will use, per thread, after ``threadpool_limits(1)`` on main.

    ``ChurnService.__init__`` may limit threads this way; requests then run on another
    thread. This shows, without timing anything, which threads the limit reaches.
    """
    from concurrent.futures import ThreadPoolExecutor

    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
    from threadpoolctl import threadpool_limits

    before = _openmp_effective_n_threads()
    with threadpool_limits(1), ThreadPoolExecutor(1) as pool:
        on_main = _openmp_effective_n_threads()
        worker = pool.submit(_openmp_effective_n_threads).result()
    return {"default": before, "main_after_limit": on_main, "worker_after_main_limit": worker}


def _interleaved(
    variants: dict[str, Callable[[Any], Any]],
    warm: Sequence[Any],
    timed: dict[str, Sequence[Any]],
    budget: float,
    rounds: int = 5,
) -> dict[str, dict[str, float]]:
    """Time several variants in ``rounds`` alternating blocks; one shared time budget."""
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for call in variants.values():
        for arg in warm:
            call(arg)
    deadline = time.perf_counter() + budget
    for r in range(rounds):
        for name, call in variants.items():
            args = timed[name]
            block = args[r * len(args) // rounds : (r + 1) * len(args) // rounds]
            for arg in block:
                t = time.perf_counter()
                call(arg)
                seconds[name].append(time.perf_counter() - t)
        if time.perf_counter() > deadline:
            break
    return {
        name: latency_summary(values) | {"planned": len(timed[name])}
        for name, values in seconds.items()
    }


def _serve_pair(
    paths: Any, tag: str, entity: str, ids: list[int], args: argparse.Namespace
) -> dict[str, Any]:
    """The server as configured and, beside it, the same with ``OMP_NUM_THREADS=1``.

    Both run at once and are called in turn (sequential calls alternate, load comes in
    alternating blocks), so drifting load from other processes falls on both alike.
    The experiment gets half the sequential calls and a quarter of the load.
    """
    import httpx

    from loopline import platform

    # The service wants an API key on every call; the demo made this machine's keys.
    make_keys = getattr(platform, "dev_keys", None)
    headers = {"Authorization": f"Bearer {make_keys(paths)['client']}"} if make_keys else {}
    port = platform.free_port()
    say(f"starting bentoml serve on 127.0.0.1:{port} (as configured)")
    configured = platform.start_serving(paths, port, model_tag=tag)
    with platform.running(configured):
        out: dict[str, Any] = {
            "http": {"ready_seconds": platform.wait_ready(configured, "/readyz")}
        }
        # Same command on another port; start() keeps its log apart for the server-side times.
        port = platform.free_port()
        command = [
            str(port) if a == configured.url.rsplit(":", 1)[1] else a
            for a in configured.process.args
        ]
        say(f"starting bentoml serve on 127.0.0.1:{port} (OMP_NUM_THREADS=1)")
        env = {"OMP_NUM_THREADS": "1", "LOOPLINE_MODEL_TAG": tag}
        omp1 = platform.start("serving-omp1", command, f"http://127.0.0.1:{port}", paths, env)
        with platform.running(omp1):
            out["http_omp1"] = {"ready_seconds": platform.wait_ready(omp1, "/readyz")}
            servers = {"http": configured, "http_omp1": omp1}
            plan = {"http": args.calls, "http_omp1": args.calls // 2}
            clients = {
                name: httpx.Client(base_url=svc.url, headers=headers, timeout=30)
                for name, svc in servers.items()
            }
            try:
                for client in clients.values():
                    for i in ids[: args.warmup]:
                        client.post("/predict", json={entity: i}).raise_for_status()
                offsets = {name: svc.log.stat().st_size for name, svc in servers.items()}
                say(f"HTTP: {plan} sequential single-customer calls, alternating servers")
                cpu0 = time.process_time()
                timed = ids[args.warmup :]
                errors = dict.fromkeys(servers, 0)

                def caller(name: str) -> Callable[[int], None]:
                    def call(i: int) -> None:
                        response = clients[name].post("/predict", json={entity: i})
                        errors[name] += response.status_code != 200

                    return call

                runs = _interleaved(
                    {name: caller(name) for name in servers},
                    [],
                    {name: timed[: plan[name]] for name in servers},
                    HTTP_BUDGET * 1.5,
                )
                calls = sum(r["n"] for r in runs.values())
                cpu_ms = (time.process_time() - cpu0) / max(calls, 1) * 1000
                for name, svc in servers.items():
                    out[name]["sequential"] = runs[name] | {"errors": errors[name]}
                    out[name]["client_cpu_ms_per_call"] = cpu_ms
                    out[name]["server_side"] = _server_side(
                        svc.log, offsets[name], int(runs[name]["n"])
                    )
                # An endpoint that reads neither Feast nor the model: BentoML's and HTTP's
                # own cost.
                client = clients["http"]
                out["http"]["floor"] = _timed(
                    lambda _: client.post("/model", json={}).raise_for_status(),
                    [],
                    range(max(args.calls * 3 // 10, 50)),
                    SIDE_BUDGET,
                )
            finally:
                for client in clients.values():
                    client.close()

            say(f"HTTP: {args.load_requests} calls from {args.clients} concurrent clients")
            blocks: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
            for _ in range(2):
                for name, share in (("http", 2), ("http_omp1", 8)):
                    blocks[name].append(
                        _load(
                            servers[name].url,
                            headers,
                            entity,
                            ids,
                            args.clients,
                            args.load_requests // share,
                        )
                    )
            for name, parts in blocks.items():
                out[name]["concurrent"] = _merge(parts)
    return out


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Blocks of one load test as if they had been one."""
    latencies = [x for p in parts for x in p["latencies"]]
    wall = sum(p["seconds"] for p in parts)
    return latency_summary(latencies) | {
        "clients": parts[0]["clients"],
        "requests": len(latencies),
        "planned": sum(p["planned"] for p in parts),
        "errors": sum(p["errors"] for p in parts),
        "seconds": wall,
        "rps": len(latencies) / wall,
        "client_cpu_cores": sum(p["client_cpu"] for p in parts) / wall,
        "blocks": len(parts),
    }


def _server_side(log: Path, offset: int, expected: int) -> dict[str, Any]:
    """BentoML's own handling time per request, from its access log (bytes after ``offset``)."""
    # Log lines may trail the responses by a moment.
    time.sleep(1.0)
    with log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    times = [float(m.group(2)) / 1000 for m in ACCESS.finditer(text) if m.group(1) == "200"]
    return latency_summary(times[:expected]) if times else {"n": 0}


def _load(
    url: str, headers: dict[str, str], entity: str, ids: list[int], clients: int, total: int
) -> dict[str, Any]:
    """``total`` calls split evenly over ``clients`` threads, each with its own connection."""
    import httpx

    share = total // clients
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    barrier = threading.Barrier(clients + 1)
    deadline: list[float] = []

    def worker(k: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            client.post("/predict", json={entity: ids[k]})  # open the connection before timing
            barrier.wait()
            for n in range(share):
                i = ids[(k * share + n) % len(ids)]
                t = time.perf_counter()
                response = client.post("/predict", json={entity: i})
                latencies[k].append(time.perf_counter() - t)
                errors[k] += response.status_code != 200
                if t > deadline[0]:
                    break

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    deadline.append(time.perf_counter() + HTTP_BUDGET / 2)
    barrier.wait()
    cpu0 = time.process_time()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return {
        "latencies": [x for part in latencies for x in part],
        "clients": clients,
        "planned": share * clients,
        "errors": sum(errors),
        "seconds": time.perf_counter() - started,
        "client_cpu": time.process_time() - cpu0,
    }


if __name__ == "__main__":
    main()
