"""What each means of serving speed contributed, one at a time, under wrk.

The service is started five times on the same project copy, each time with one more of
the means on, starting from all of them off:

1. ``off``: one worker, scikit-learn's own ``predict_proba``, no batching
   (``max_batch_size: 1``), serving the candidate with the best holdout metric (the
   random forest selection picked before cost-aware selection);
2. ``+ workers``: one worker per CPU (``LOOPLINE_SERVING_WORKERS`` unset);
3. ``+ compiled``: the numpy-lowered pipeline (``loopline.inference``);
4. ``+ batching``: concurrent requests served together (``serving.batching``);
5. ``+ cost-aware selection``: the model the project's training selected.

Then the full set twice more, once with BentoML's access log off and once with BentoML's
own request metrics off: what each costs per request.

Each configuration runs ``wrk -t1`` at 1 and 32 connections (single-customer ``POST
/predict``), and one 1,000-customer request a few times. The service's registry is an
empty temporary one and ``serving.allow_unpromoted`` is on, so the model given by tag is
what serves (as the ``unpromoted`` arm). Writes one JSON result.

Standalone: ``LOOPLINE_PROJECT=<copy> LOOPLINE_HOME=<copy>/.loopline python
benchmarks/serving_means.py --out FILE`` (the copy's params.yaml is edited and restored).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import wrk
from baselines import wait_workers

STEPS: list[tuple[str, dict[str, Any]]] = [
    ("off", {"workers": 1, "engine": "sklearn", "batch": 1, "model": "best_metric"}),
    ("+ workers", {"workers": None, "engine": "sklearn", "batch": 1, "model": "best_metric"}),
    ("+ compiled", {"workers": None, "engine": "auto", "batch": 1, "model": "best_metric"}),
    ("+ batching", {"workers": None, "engine": "auto", "batch": 1000, "model": "best_metric"}),
    (
        "+ cost-aware selection",
        {"workers": None, "engine": "auto", "batch": 1000, "model": "selected"},
    ),
]
# Then what BentoML's per-request layers cost, each turned off alone from the full set.
OFF: list[tuple[str, dict[str, str]]] = [
    ("full, access log off", {"LOOPLINE_SERVING_ACCESS_LOG": "0"}),
    ("full, BentoML's request metrics off", {"LOOPLINE_SERVING_BENTOML_METRICS": "0"}),
]
FULL = STEPS[-1][1]
LEVELS = (1, 32)


def say(message: str) -> None:
    print(f"[serving-means] {message}", flush=True)


def best_metric_model(paths: Any, params: Any) -> tuple[str, str]:
    """Fit and store the candidate with the best holdout metric; its tag and name."""
    import pandas as pd

    from loopline import features, packaging
    from loopline.model_scan import write_model
    from loopline.training.candidates import Candidate, build_pipeline
    from loopline.training.evaluate import better
    from loopline.training.train import feature_columns, holdout_split

    record = json.loads((paths.artifacts / "candidates.json").read_text())
    metric = record["metric"]
    best = record["candidates"][0]
    for row in record["candidates"][1:]:
        if better(metric, row[metric], best[metric]):
            best = row
    estimator, settings = best["candidate"].split("(", 1)
    values = dict(kv.split("=") for kv in settings.rstrip(")").split(",") if kv)
    grid = params.training.candidates[estimator]
    chosen = {k: next(v for v in grid[k] if str(v) == values[k]) for k in values}
    labels = pd.read_parquet(paths.labels)
    frame = features.historical_features(paths, params.features.service, labels, params.dataset)
    split = holdout_split(frame, params.dataset, params.training)
    numeric, categorical = feature_columns(split.train, params.dataset)
    pipeline = build_pipeline(
        Candidate(estimator, chosen), numeric, categorical, params.training.seed
    )
    pipeline.fit(split.train[numeric + categorical], split.train[params.dataset.label])
    with tempfile.TemporaryDirectory() as folder:
        model_file, holdout_file = Path(folder) / "model.joblib", Path(folder) / "holdout.parquet"
        write_model(pipeline, model_file)
        split.holdout.to_parquet(holdout_file)
        lineage = {"feature_service": params.features.service, "estimator": estimator}
        tag, _ = packaging.save_model(
            params.serving.model_name, model_file, holdout_file, {metric: best[metric]}, lineage
        )
    return tag, best["candidate"]


@contextmanager
def serving_params(params_file: Path, max_batch_size: int) -> Iterator[None]:
    """The step's batch size, and the unpromoted model allowed to answer (nothing is in
    production in the benchmark's empty registry)."""
    import yaml

    original = params_file.read_text()
    edited = yaml.safe_load(original)
    edited["serving"].setdefault("batching", {})["max_batch_size"] = max_batch_size
    edited["serving"]["allow_unpromoted"] = True
    params_file.write_text(yaml.safe_dump(edited, sort_keys=False))
    try:
        yield
    finally:
        params_file.write_text(original)


def run_step(
    paths: Any, settings: dict[str, Any], tag: str, ids_file: Path, ids: list[int], seconds: int
) -> dict[str, Any]:
    """One configuration: wrk at each level, then the 1,000-customer request."""
    import httpx

    from loopline import platform

    keys = platform.dev_keys(paths)
    headers = {"Authorization": f"Bearer {keys['client']}"}
    extra = dict(settings.get("env", {}))
    if settings["engine"] == "sklearn":
        extra["LOOPLINE_SERVING_ENGINE"] = "sklearn"
    os.environ.update(extra)
    try:
        with serving_params(paths.params_file, settings["batch"]):
            server = platform.start_serving(paths, platform.free_port(), tag, settings["workers"])
            with platform.running(server):
                platform.wait_ready(server, "/readyz")
                workers = len(platform.serving_workers(server))
                wait_workers(f"{server.url}/model", workers, headers)
                url = f"{server.url}/predict"
                wrk.run(url, connections=8, seconds=2, ids_file=ids_file, api_key=keys["client"])
                points = {
                    str(level): wrk.run(
                        url,
                        connections=level,
                        seconds=seconds,
                        ids_file=ids_file,
                        api_key=keys["client"],
                    )
                    for level in LEVELS
                }
                with httpx.Client(headers=headers, timeout=60) as client:
                    batch = ids[:1000]
                    times = []
                    for n in range(12):
                        started = time.perf_counter()
                        response = client.post(url, json={"customer_ids": batch})
                        elapsed = 1e3 * (time.perf_counter() - started)
                        if response.status_code != 200:
                            raise RuntimeError(f"1,000-customer request: {response.text[:300]}")
                        if n >= 2:  # the first two warm the path
                            times.append(elapsed)
    finally:
        for name in extra:
            os.environ.pop(name, None)
    return {
        "workers": workers,
        "points": points,
        "batch_1000_ms": {"p50": round(statistics.median(times), 1), "max": round(max(times), 1)},
    }


METRICS_COST = """
import os, sys, tempfile, time
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp()  # as BentoML's workers run it
from loopline.serving.metrics import ServingMetrics
m = ServingMetrics()
def per_call(scores, calls):
    m.observe("churn:x", "champion", scores, 0.002)
    started = time.perf_counter()
    for _ in range(calls):
        m.observe("churn:x", "champion", scores, 0.002)
    return 1e6 * (time.perf_counter() - started) / calls
print(round(per_call([0.3], 5000), 2), round(per_call([0.3] * 1000, 50), 1))
"""


def metrics_cost() -> dict[str, float]:
    """Loopline's own Prometheus writes per request, in BentoML's multiprocess mode (us)."""
    import subprocess
    import sys

    shown = subprocess.run(
        [sys.executable, "-c", METRICS_COST], capture_output=True, text=True, check=True
    )
    one, thousand = shown.stdout.split()
    return {"one_customer_us": float(one), "thousand_customers_us": float(thousand)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()

    from loopline.settings import activate

    paths = activate()
    from benchutil import client_ids

    from loopline.config import load_params

    params = load_params(paths.params_file)
    selected = json.loads((paths.artifacts / "package.json").read_text())["model"]
    record = json.loads((paths.artifacts / "candidates.json").read_text())
    say("fitting the best-metric candidate (what selection picked before)")
    best_tag, best_name = best_metric_model(paths, params)
    ids = client_ids(paths)
    result: dict[str, Any] = {
        "models": {
            "best_metric": [best_name, best_tag],
            "selected": [record["selected"], selected],
        },
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "wrk": wrk.version(),
        "seconds": args.seconds,
        "steps": [],
    }
    with tempfile.TemporaryDirectory(prefix="loopline-means-") as folder:
        # An empty registry: the tag each step names is what serves.
        os.environ["LOOPLINE_REGISTRY_URL"] = f"sqlite:///{Path(folder) / 'registry.db'}"
        ids_file = wrk.write_ids(ids, Path(folder))
        steps = STEPS + [(name, {**FULL, "env": env}) for name, env in OFF]
        for name, settings in steps:
            tag = best_tag if settings["model"] == "best_metric" else selected
            say(f"{name}: {settings}")
            measured = run_step(paths, settings, tag, ids_file, ids, args.seconds)
            result["steps"].append({"name": name, "settings": settings, **measured})
            shown = {k: (v["rps"], v["p50_ms"], v["p99_ms"]) for k, v in measured["points"].items()}
            say(f"{name}: (req/s, p50, p99) {shown}, 1,000 customers {measured['batch_1000_ms']}")
    result["metrics_cost"] = metrics_cost()
    result["loadavg_after"] = os.getloadavg()
    args.out.write_text(json.dumps(result, indent=2))
    print(render(result))


def render(result: dict[str, Any]) -> str:
    """Markdown: one row per step, each number beside the previous step's."""
    lines = [
        "| step | workers | 1 client p50 / p99 ms | 1 client req/s | 32 clients req/s "
        "| 32 clients p50 / p99 ms | errors | 1,000 customers p50 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for step in result["steps"]:
        one, many = step["points"]["1"], step["points"]["32"]
        errors = one["errors"] + many["errors"]
        lines.append(
            f"| {step['name']} | {step['workers']} | {one['p50_ms']:.1f} / {one['p99_ms']:.1f} "
            f"| {one['rps']:.0f} | {many['rps']:.0f} | {many['p50_ms']:.1f} / {many['p99_ms']:.1f} "
            f"| {errors} | {step['batch_1000_ms']['p50']:.0f} |"
        )
    cost = result.get("metrics_cost")
    if cost:
        lines.append("")
        lines.append(
            f"Loopline's own Prometheus metrics (count, latency, score histogram) cost "
            f"{cost['one_customer_us']:.0f} us for a one-customer request and "
            f"{cost['thousand_customers_us'] / 1e3:.1f} ms for a 1,000-customer one "
            "(in process, multiprocess mode as in BentoML's workers)."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
