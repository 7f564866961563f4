"""sklearn's ``predict_proba`` beside the compiled numpy path, per candidate, on one thread.

    .venv/bin/python benchmarks/inference.py [--project DIR] [--served-only] [--out FILE]

By default every candidate of ``training.candidates`` is fitted again on the project's
training frame (as the train step does; it keeps only the best) and measured on the
project's holdout; ``--served-only`` measures ``artifacts/model.joblib`` alone. Nothing is
written but ``--out``. ``serving.py`` imports :func:`measure` for the served model.

sklearn is timed on a ready one-row DataFrame (today's service call); the compiled path on
the Feast-shaped dict of lists it gets in serving, so its numbers include that conversion.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline.inference import compile_pipeline, serving_scorer

BATCH_ROWS = 1000


def measure(
    pipeline: Any, holdout: pd.DataFrame, *, calls: int = 300, batch_calls: int = 10
) -> dict[str, Any]:
    """Single-row p50/p95 and the median 1,000-row time of both engines, OpenMP and BLAS at
    one thread; plus the engine serving would pick, its parity and the compiled build time."""
    from threadpoolctl import threadpool_limits

    inputs = list(pipeline.feature_names_in_)
    frames = [holdout.iloc[[i % len(holdout)]][inputs] for i in range(calls)]
    batch = holdout.iloc[:BATCH_ROWS]
    with threadpool_limits(1):
        _, engine = serving_scorer(pipeline, holdout)
        result: dict[str, Any] = {
            "estimator": type(pipeline.steps[-1][1]).__name__,
            "holdout_rows": len(holdout),
            "batch_rows": len(batch),
            "inference": engine,
            "sklearn": _timings(
                lambda f: pipeline.predict_proba(f)[:, 1], frames, batch[inputs], batch_calls
            ),
        }
        if engine["engine"] != "numpy":
            return result
        started = time.perf_counter()
        scorer = compile_pipeline(pipeline)
        result["build_ms"] = (time.perf_counter() - started) * 1000
        rows = [_feast(f) for f in frames]
        result["numpy"] = _timings(scorer.positive_proba, rows, _feast(batch), batch_calls)
    for key in ("single_p50_ms", "batch_ms"):
        result[f"speedup_{key.removesuffix('_ms')}"] = result["sklearn"][key] / result["numpy"][key]
    return result


def _timings(
    call: Callable[[Any], Any], singles: list[Any], batch: Any, batch_calls: int
) -> dict[str, float]:
    for arg in singles[:20]:
        call(arg)
    seconds = []
    for arg in singles:
        started = time.perf_counter()
        call(arg)
        seconds.append(time.perf_counter() - started)
    batch_seconds = []
    for _ in range(batch_calls + 1):
        started = time.perf_counter()
        call(batch)
        batch_seconds.append(time.perf_counter() - started)
    ms = np.array(seconds) * 1000
    return {
        "single_p50_ms": float(np.percentile(ms, 50)),
        "single_p95_ms": float(np.percentile(ms, 95)),
        "batch_ms": statistics.median(batch_seconds[1:]) * 1000,
    }


def _feast(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """Rows as Feast's ``to_dict()`` has them: lists of float or None, str or None."""
    return {c: [None if pd.isna(v) else v for v in frame[c].tolist()] for c in frame.columns}


def candidate_pipelines(project: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """Every candidate fitted on the project's training frame, and the project's holdout."""
    from loopline import features
    from loopline.config import load_params
    from loopline.settings import activate
    from loopline.training.candidates import build_pipeline, expand
    from loopline.training.train import feature_columns, holdout_split

    paths = activate(project)
    params = load_params(paths.params_file)
    labels = pd.read_parquet(paths.labels)
    frame = features.historical_features(paths, params.features.service, labels, params.dataset)
    split = holdout_split(frame, params.dataset, params.training)
    numeric, categorical = feature_columns(split.train, params.dataset)
    pipelines = {}
    for candidate in expand(params.training.candidates):
        pipeline = build_pipeline(candidate, numeric, categorical, params.training.seed)
        x, y = split.train[numeric + categorical], split.train[params.dataset.label]
        pipelines[candidate.name] = pipeline.fit(x, y)
    return pipelines, split.holdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", type=Path, default=Path.cwd())
    parser.add_argument("--served-only", action="store_true")
    parser.add_argument("--calls", type=int, default=300, help="single-row calls per engine")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import joblib

    if args.served_only:
        holdout = pd.read_parquet(args.project / "artifacts" / "holdout.parquet")
        pipelines = {"served": joblib.load(args.project / "artifacts" / "model.joblib")}
    else:
        pipelines, holdout = candidate_pipelines(args.project)
    results = {}
    print(f"{'candidate':58} {'engine':7} {'1 row p50/p95 ms':>18} {'1,000 rows ms':>14}")
    for name, pipeline in pipelines.items():
        results[name] = found = measure(pipeline, holdout, calls=args.calls)
        for engine in ("sklearn", "numpy"):
            if engine in found:
                t = found[engine]
                single = f"{t['single_p50_ms']:.3f}/{t['single_p95_ms']:.3f}"
                print(f"{name:58} {engine:7} {single:>18} {t['batch_ms']:>14.2f}")
        inference = found["inference"]
        parity = inference.get("parity_max_abs_diff", inference.get("engine_reason"))
        print(f"{'':58} parity over {len(holdout)} holdout rows: {parity}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
