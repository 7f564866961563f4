"""The candidates step on threads against a local Dask cluster of two worker processes.

Subcommands, each run in its own process against a scratch copy of the project:

``prepare``  generate and ingest the built-in data (the default params.yaml)
``fit``      one train flow with ``LOOPLINE_TASK_RUNNER`` as given; saves its outcome

:func:`compare` (called by ``run.py``'s scale step) prepares one project of
:data:`SHAPE` customers x days, then fits its candidates once per runner of
:data:`RUNNERS`, each in its own process, and compares the outcomes: the same selection and
metrics (same seed) are required before a speed-up is reported.
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
# 20,000 customers x 120 days: about 2M snapshot rows, 170,000 training rows: fits that take
# long enough for a cluster's start-up not to decide the comparison.
SHAPE = (20_000, 120)
# (label, LOOPLINE_TASK_RUNNER, LOOPLINE_TASK_WORKERS): one candidate at a time (how the
# candidates were fitted before they were mapped), threads, and two Dask worker processes.
RUNNERS = (
    ("one at a time", "threads", 1),
    ("threads", "threads", 2),
    ("Dask, 2 local workers", "dask", 2),
)


def compare(root: Path) -> dict[str, Any]:
    """Every runner of :data:`RUNNERS` on one prepared project; outcomes compared."""
    import re

    from benchutil import read_result
    from project import make_project, run_script

    project = make_project(root / "candidates")
    params = project / "params.yaml"
    text = re.sub(r"(?m)^(  customers:) \d+", rf"\1 {SHAPE[0]}", params.read_text(), count=1)
    params.write_text(re.sub(r"(?m)^(  days:) \d+", rf"\1 {SHAPE[1]}", text, count=1))
    log = root / "logs" / "candidates.log"
    say(f"candidates: preparing {SHAPE[0]:,} customers x {SHAPE[1]} days")
    prepared = ["prepare", "--out", str(root / "cand-prep.json")]
    run_script("candidates.py", prepared, project, log, 1800)
    runs = []
    for label, runner, workers in RUNNERS:
        out = root / f"cand-{runner}-{workers}.json"
        say(f"candidates: {label}")
        args = ["fit", "--runner", runner, "--workers", str(workers), "--out", str(out)]
        run_script("candidates.py", args, project, log, 1800)
        runs.append(read_result(out) | {"label": label})
    first = runs[0]["outcome"]
    return {
        "shape": SHAPE,
        "prepare": read_result(root / "cand-prep.json"),
        "runs": runs,
        "same_outcome": all(r["outcome"] == first for r in runs),
    }


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
