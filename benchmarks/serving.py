"""The in-process work one serving request does: the Feast lookup and the model, alone.

These are the baselines the HTTP numbers (``serving_rollouts.py``) stand beside: what the
feature lookup, the model's predict on one row and on a 1,000-row batch, and the two
together cost in one Python process, without HTTP, BentoML or Loopline's own work.

Run by ``run.py`` against the project copy after the demo built its state
(``LOOPLINE_PROJECT``/``LOOPLINE_HOME`` point at the copy). Writes one JSON result.
Every loop is bounded by a call count and, because a shared 2-core machine can slow
calls a hundredfold, by a time budget too: a loop that runs out of time reports the
calls it made (``n``) rather than stretching the run.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchutil import latency_summary, say, write_result

# Time budgets (seconds) per measurement loop.
IN_PROCESS_BUDGET = 45.0
SIDE_BUDGET = 25.0
BATCH = 1000  # customers in one request: the service's maximum


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--calls", type=int, default=1000, help="sequential calls per measurement")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--batch-calls", type=int, default=30, help="calls of 1,000 rows")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    # activate() before Feast/BentoML are imported: they read their homes at import time.
    from loopline.settings import activate

    paths = activate()
    import numpy as np
    import pandas as pd
    from baselines import scorer

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
    batches = [
        [{entity: int(i)} for i in rng.choice(known, size=BATCH, replace=len(known) < BATCH)]
        for _ in range(args.batch_calls + 2)
    ]
    result["lookup_1000"] = _timed(
        lambda rows: store.get_online_features(features=feature_service, entity_rows=rows),
        batches[:2],
        batches[2:],
        SIDE_BUDGET,
    )

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

    say("in-process: the service's scorer on one row and on 1,000 rows")
    _, holdout_file = packaging.stored_files(tag)
    holdout = pd.read_parquet(holdout_file)
    score_columns, result["scorer_name"] = scorer(model, holdout)
    # One row as a request has it: the lookup's columns, as Feast returns them.
    result["scorer"] = _timed(score_columns, values[: args.warmup], values, SIDE_BUDGET)
    batch = pd.concat([holdout[inputs]] * (BATCH // len(holdout) + 1), ignore_index=True)[:BATCH]
    columns = {c: batch[c].tolist() for c in inputs}
    result["scorer_1000"] = _timed(
        score_columns, [columns] * 2, [columns] * args.batch_calls, SIDE_BUDGET
    )
    result["predict_1000"] = _timed(
        model.predict_proba, [batch] * 2, [batch] * args.batch_calls, SIDE_BUDGET
    )
    result["inference"] = _inference(model, holdout)

    say("in-process: lookup -> scorer (the service's core work without HTTP)")
    result["in_process"] = _timed(lambda i: score_columns(lookup(i)), warm, timed, SIDE_BUDGET)
    write_result(args.out, result)


def _inference(model: Any, holdout: Any) -> dict[str, Any] | None:
    """``benchmarks/inference.py``'s measurements of the model, when this version has it."""
    try:
        from inference import measure
    except ImportError:
        return None
    found: dict[str, Any] = measure(model, holdout)
    return found


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


if __name__ == "__main__":
    main()
