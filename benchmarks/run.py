"""``make bench``: measure the platform on a throwaway copy and write docs/benchmarks.md.

One run measures, in order:

1. a cold ``loopline demo`` on a fresh copy, split into stages;
2. serving latency and throughput over HTTP, beside the in-process lookup and predict;
3. point-in-time retrieval of 100k and 1M entity rows, Feast beside plain DuckDB.

Every measuring step runs in its own process against the copy (its own state folder,
never the repository's ``.loopline/``); this process only orchestrates, watches machine
load and writes the report. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchutil import read_result, say
from demo_timeline import run_demo
from machine import LoadMonitor, machine_info
from project import REPO, make_project, run_script
from report import render

FULL = {"calls": 1000, "warmup": 100, "clients": 8, "load": 2000, "customers": 24_000}
QUICK = {"calls": 200, "warmup": 20, "clients": 8, "load": 400, "customers": 2_000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects")
    parser.add_argument(
        "--reuse-demo",
        type=Path,
        help="a project copy kept from an earlier run (--keep): skip the demo, measure the rest",
    )
    parser.add_argument(
        "--from-results", type=Path, help="only render the report from a saved results.json"
    )
    args = parser.parse_args()
    if args.from_results:
        args.out.write_text(render(json.loads(args.from_results.read_text())))
        say(f"wrote {args.out}")
        return 0
    sizes = [10_000, 50_000] if args.quick else [100_000, 1_000_000]
    knobs = QUICK if args.quick else FULL

    started = time.perf_counter()
    monitor = LoadMonitor()
    monitor.start()
    root = Path(tempfile.mkdtemp(prefix="loopline-bench-"))
    logs = root / "logs"
    say(f"working in {root} (logs in {logs})")
    results: dict[str, Any] = {
        "machine": machine_info(),
        "quick": args.quick,
        "knobs": knobs,
        "sizes": sizes,
    }
    ok = False
    try:
        if args.reuse_demo:
            demo_project = args.reuse_demo.resolve()
            results["demo"] = None
        else:
            monitor.mark("cold demo")
            say("1/3 cold `loopline demo` on a fresh project copy")
            demo_project = make_project(root / "demo")
            results["demo"] = run_demo(demo_project, logs / "demo.log")

        monitor.mark("serving")
        say("2/3 serving: in-process baselines, then HTTP (sequential and concurrent)")
        serving_args = ["--calls", str(knobs["calls"]), "--warmup", str(knobs["warmup"])]
        serving_args += ["--clients", str(knobs["clients"]), "--load-requests", str(knobs["load"])]
        out = root / "serving.json"
        serving_args += ["--out", str(out)]
        run_script("serving.py", serving_args, demo_project, logs / "serving.log", 900)
        results["serving"] = read_result(out)

        monitor.mark("point-in-time: prepare")
        say("3/3 point-in-time retrieval: generating feature sources and entity frames")
        pit_project = make_project(root / "pit")
        work = root / "pit-work"
        prepare = ["prepare", "--work", str(work), "--out", str(work / "prepare.json")]
        prepare += ["--customers", str(knobs["customers"]), "--sizes", *map(str, sizes)]
        run_script("pit.py", prepare, pit_project, logs / "pit.log", 900)
        results["pit"] = {"manifest": read_result(work / "prepare.json"), "joins": [], "verify": []}
        for size in sizes:
            for engine in ("duckdb", "feast"):
                monitor.mark(f"point-in-time: {engine} {size:,}")
                say(f"point-in-time: {engine}, {size:,} entity rows")
                out = work / f"{engine}_{size}.json"
                join = ["join", "--engine", engine, "--size", str(size)]
                join += ["--work", str(work), "--out", str(out)]
                run_script("pit.py", join, pit_project, logs / "pit.log", 1200)
                results["pit"]["joins"].append(read_result(out))
            monitor.mark(f"point-in-time: verify {size:,}")
            out = work / f"verify_{size}.json"
            verify = ["verify", "--size", str(size), "--work", str(work), "--out", str(out)]
            run_script("pit.py", verify, pit_project, logs / "pit.log", 600)
            results["pit"]["verify"].append(read_result(out))
            # Outputs of 1M rows are large; the verdict is all that is kept.
            for stale in work.glob(f"out_*_{size}.parquet"):
                stale.unlink()
        ok = True
    finally:
        monitor.stop()
        if not ok or args.keep:
            say(f"kept {root} for inspection")
        else:
            shutil.rmtree(root, ignore_errors=True)

    results["load"] = {
        "phases": [vars(p) for p in monitor.phases if p.name != "end"],
        "top_others": monitor.top_others(),
    }
    results["bench_seconds"] = time.perf_counter() - started
    # The raw numbers outlive the temporary projects, so the report can be re-rendered
    # (--from-results) after a change to report.py without measuring again.
    saved = Path(tempfile.gettempdir()) / "loopline-bench-results.json"
    saved.write_text(json.dumps(results, indent=2, default=str))
    say(f"raw results in {saved}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results))
    say(f"wrote {args.out} after {results['bench_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
