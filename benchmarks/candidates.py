"""The candidates step on threads against a local Dask cluster of two worker processes.

Subcommands, each run in its own process against a scratch copy of the project:

``prepare``  generate and ingest the built-in data (the default params.yaml)
``fit``      one train flow with ``LOOPLINE_TASK_RUNNER`` as given; saves its outcome

``run.py`` compares the outcomes: the same candidates and metrics (same seed) are required
before a speed-up is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from benchutil import peak_rss_mib, say, write_result

VARYING = ("fit_seconds", "latency_p95_ms")


def prepare() -> dict[str, Any]:
    from loopline import steps
    from loopline.config import load_params
    from loopline.settings import activate

    paths = activate()
    params = load_params(paths.params_file)
    started = time.perf_counter()
    steps.generate_step(params, paths)
    steps.accept_step(params, paths)
    return {"seconds": time.perf_counter() - started}


def fit(runner: str, workers: int) -> dict[str, Any]:
    os.environ["LOOPLINE_TASK_RUNNER"] = runner
    os.environ["LOOPLINE_TASK_WORKERS"] = str(workers)
    from loopline.settings import activate

    activate()
    from flows.train import train

    say(f"train flow on {runner} ({workers} workers)")
    started = time.perf_counter()
    trained = train()
    candidates = trained["candidates"]
    return {
        "runner": runner,
        "workers": workers,
        "flow_seconds": time.perf_counter() - started,
        "fit_wall_seconds": trained["fit_wall_seconds"],
        "fit_cpu_seconds": sum(c["fit_seconds"] for c in candidates["candidates"]),
        "candidates": len(candidates["candidates"]),
        "train_rows": candidates["train_rows"],
        "processes": len({(f["host"], f["pid"]) for f in trained["fitted"]}),
        "peak_rss_mib": peak_rss_mib(),
        "outcome": {
            "selected": candidates["selected"],
            "metrics": [
                {k: v for k, v in row.items() if k not in VARYING}
                for row in candidates["candidates"]
            ],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=("prepare", "fit"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--runner", default="threads")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    result = prepare() if args.command == "prepare" else fit(args.runner, args.workers)
    write_result(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "outcome"}))


if __name__ == "__main__":
    main()
