"""``make bench``: measure the platform on a throwaway copy and write docs/benchmarks.md.

One run measures, in order:

1. a cold ``loopline demo`` on a fresh copy, split into stages;
2. serving in-process: the Feast lookup and the model alone (one row, 1,000 rows);
3. serving over HTTP under load from wrk, per rollout policy (single, canary, shadow), beside
   BentoML's trivial endpoint and a bare FastAPI app doing the same per-request work, and
   one request of 1,000 customers; the online read (Feast's paths and Loopline's reader);
   and each means of serving speed turned on one at a time;
4. point-in-time retrieval of 100k, 1M and 10M entity rows: Loopline's offline store (with
   and without the on-demand view) and Feast's own duckdb store (up to 1M rows) beside the
   join hand-written in DuckDB;
5. drift detection quality against the generator's known truth, and the time of a
   1M-row x 20-column window, sampled and in full;
6. dashboard page render times (cold and warm caches) on a seeded state;
7. rollout verdicts' error rates over many simulated canary and shadow rollouts;
8. every pipeline stage at the default size, 1M and ~10M rows (``scale.py``): wall time and
   peak RSS of each, and the whole ``loopline run`` at each size.

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
from candidates import compare as compare_runners
from demo_timeline import run_demo
from machine import LoadMonitor, machine_info
from project import REPO, make_project, run_script
from report import render, render_pit
from scale import run_sizes
from scale_report import render_scale

FULL: dict[str, Any] = {
    "calls": 1000,
    "warmup": 100,
    "batch_calls": 30,
    "customers": 24_000,
    "serving_seconds": 15,
    "serving_warmup_seconds": 2,
    "concurrency": [1, 8, 32],
    "dashboard_repeats": 5,
    "means_seconds": 10,
}
QUICK: dict[str, Any] = {
    "calls": 200,
    "warmup": 20,
    "batch_calls": 10,
    "customers": 2_000,
    "serving_seconds": 3,
    "serving_warmup_seconds": 1,
    "concurrency": [1, 8, 32],
    "dashboard_repeats": 2,
    "means_seconds": 3,
}
STEPS = 8
# Point-in-time sizes. Feast's own duckdb store needed 10.6 GiB at 1M entity rows and grows
# with entity rows x snapshots per customer: 10M would not fit in this machine's 24 GiB, so
# it is measured up to FEAST_MAX_ROWS only (the report says so instead of running it).
PIT_SIZES = [100_000, 1_000_000, 10_000_000]
PIT_SIZES_QUICK = [10_000, 50_000]
FEAST_MAX_ROWS = 1_000_000
# Feast's python-mode on-demand view turns its input into Python lists (to_pydict): given
# the whole result that passed 14 GiB at 10M rows; given only its inputs (Loopline's store
# narrows them) it needs 9.3 GiB there. Above this size only the batch views are retrieved.
ON_DEMAND_MAX_ROWS = 10_000_000


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
    parser.add_argument(
        "--serving-only", action="store_true", help="the demo and the serving steps, no others"
    )
    parser.add_argument(
        "--only",
        choices=("pit", "scale"),
        help="only this step (pit: point-in-time retrieval; scale: every stage at 200k, 1M "
        "and 10M rows); its report goes to the temp folder unless --out names a file",
    )
    args = parser.parse_args()
    if args.from_results:
        args.out.write_text(render(json.loads(args.from_results.read_text())))
        say(f"wrote {args.out}")
        return 0
    sizes = PIT_SIZES_QUICK if args.quick else PIT_SIZES
    knobs = QUICK if args.quick else FULL
    if args.only == "pit":
        return _only_pit(args, knobs, sizes)
    if args.only == "scale":
        return _only_scale(args)

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
            say(f"1/{STEPS} cold `loopline demo` on a fresh project copy")
            demo_project = make_project(root / "demo")
            results["demo"] = run_demo(demo_project, logs / "demo.log")

        monitor.mark("serving")
        say(f"2/{STEPS} serving in-process: the Feast lookup and the model alone")
        out = root / "serving.json"
        serving_args = ["--calls", str(knobs["calls"]), "--warmup", str(knobs["warmup"])]
        serving_args += ["--batch-calls", str(knobs["batch_calls"]), "--out", str(out)]
        run_script("serving.py", serving_args, demo_project, logs / "serving.log", 900)
        results["serving"] = read_result(out)

        monitor.mark("serving over HTTP")
        say(f"3/{STEPS} serving over HTTP under wrk: rollout policies beside two baselines")
        # On the demo's copy: it needs the trained, registered model. The script serves
        # from a private copy of two registry records, so the copy's registry is unchanged.
        out = root / "serving_rollouts.json"
        http = ["--seconds", str(knobs["serving_seconds"]), "--out", str(out)]
        http += ["--warmup-seconds", str(knobs["serving_warmup_seconds"])]
        http += ["--batch-calls", str(knobs["batch_calls"])]
        http += ["--concurrency", *map(str, knobs["concurrency"])]
        run_script("serving_rollouts.py", http, demo_project, logs / "rollouts.log", 2400)
        results["serving_rollouts"] = read_result(out)
        _serving_means(knobs, root, demo_project, monitor, results)
        if not args.serving_only:
            _other_steps(args, knobs, sizes, root, monitor, results)
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


def _serving_means(
    knobs: dict[str, Any], root: Path, project: Path, monitor: LoadMonitor, results: dict[str, Any]
) -> None:
    """Step 3, continued: the online read (Feast's paths, ours), then each means alone."""
    logs = root / "logs"
    monitor.mark("feature reads")
    say(f"3/{STEPS} feature reads: Feast's faster paths, and Loopline's online reader")
    # On copies of the demo (each edits or adds to its store): the served copy stays as it is.
    for script, key in (("feast_read.py", "feast_read"), ("online_read.py", "online_read")):
        copy = root / f"{key}-project"
        shutil.copytree(project, copy, symlinks=True)
        out = root / f"{key}.json"
        run_script(script, ["--out", str(out)], copy, logs / f"{key}.log", 1200)
        results[key] = read_result(out)
    monitor.mark("serving means")
    say(f"3/{STEPS} serving: each means of speed turned on one at a time")
    copy = root / "means-project"
    shutil.copytree(project, copy, symlinks=True)
    out = root / "serving_means.json"
    means = ["--seconds", str(knobs["means_seconds"]), "--out", str(out)]
    run_script("serving_means.py", means, copy, logs / "means.log", 1800)
    results["serving_means"] = read_result(out)


def _only_pit(args: argparse.Namespace, knobs: dict[str, Any], sizes: list[int]) -> int:
    """``--only pit``: step 4 alone, on its own copy, with its own report."""
    started = time.perf_counter()
    monitor = LoadMonitor()
    monitor.start()
    root = Path(tempfile.mkdtemp(prefix="loopline-bench-pit-"))
    say(f"working in {root} (logs in {root / 'logs'})")
    results: dict[str, Any] = {"machine": machine_info(), "quick": args.quick, "knobs": knobs}
    results["sizes"] = sizes
    ok = False
    try:
        _pit_step(knobs, sizes, root, monitor, results)
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
    saved = Path(tempfile.gettempdir()) / "loopline-bench-pit-results.json"
    saved.write_text(json.dumps(results, indent=2, default=str))
    say(f"raw results in {saved}")
    # docs/benchmarks.md holds one full run; a part measured alone must not replace it.
    out = args.out
    if out == REPO / "docs" / "benchmarks.md":
        out = Path(tempfile.gettempdir()) / "loopline-bench-pit.md"
    out.write_text(render_pit(results))
    say(f"wrote {out} after {results['bench_seconds'] / 60:.1f} min")
    return 0


def _only_scale(args: argparse.Namespace) -> int:
    """``--only scale``: step 8 alone, with its own report."""
    started = time.perf_counter()
    monitor = LoadMonitor()
    monitor.start()
    root = Path(tempfile.mkdtemp(prefix="loopline-bench-scale-"))
    say(f"working in {root} (logs in {root / 'logs'})")
    results: dict[str, Any] = {"machine": machine_info(), "quick": args.quick}
    ok = False
    try:
        _scale_step(args, root, monitor, results)
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
    saved = Path(tempfile.gettempdir()) / "loopline-bench-scale-results.json"
    saved.write_text(json.dumps(results, indent=2, default=str))
    say(f"raw results in {saved}")
    out = args.out
    if out == REPO / "docs" / "benchmarks.md":
        out = Path(tempfile.gettempdir()) / "loopline-bench-scale.md"
    out.write_text(render_scale(results))
    say(f"wrote {out} after {results['bench_seconds'] / 60:.1f} min")
    return 0


def _scale_step(
    args: argparse.Namespace, root: Path, monitor: LoadMonitor, results: dict[str, Any]
) -> None:
    """Step 8: every stage by dataset size, one stage (and one 10M-row job) at a time."""
    sizes = ["default"] if args.quick else ["default", "1M", "10M"]
    monitor.mark("10M rows")
    say(f"8/{STEPS} every stage at {', '.join(sizes)} rows, then the whole `loopline run`")
    results["scale"] = run_sizes(sizes, root / "scale")
    monitor.mark("candidates")
    say(f"8/{STEPS} the candidates step: one at a time, threads, two Dask workers")
    results["candidates"] = compare_runners(root / "candidates")


def _pit_step(
    knobs: dict[str, Any],
    sizes: list[int],
    root: Path,
    monitor: LoadMonitor,
    results: dict[str, Any],
) -> None:
    """Step 4: point-in-time retrieval, each join in its own process, one at a time.

    Per size: the hand-written ASOF join (the baseline), Loopline's offline store on the batch
    views alone and, where they fit in memory, on the whole service (with Feast's on-demand
    view) and Feast's own duckdb store; every output is compared with the baseline's row by
    row.
    """
    logs = root / "logs"
    monitor.mark("point-in-time: prepare")
    say(f"4/{STEPS} point-in-time retrieval: generating feature sources and entity frames")
    pit_project = make_project(root / "pit")
    work = root / "pit-work"
    prepare = ["prepare", "--work", str(work), "--out", str(work / "prepare.json")]
    prepare += ["--customers", str(knobs["customers"]), "--sizes", *map(str, sizes)]
    run_script("pit.py", prepare, pit_project, logs / "pit.log", 1800)
    results["pit"] = {
        "manifest": read_result(work / "prepare.json"),
        "joins": [],
        "verify": [],
        "feast_max_rows": FEAST_MAX_ROWS,
        "on_demand_max_rows": ON_DEMAND_MAX_ROWS,
    }
    for size in sizes:
        engines = ["duckdb"] + (["loopline"] if size <= ON_DEMAND_MAX_ROWS else [])
        engines += ["loopline_views"] + (["feast"] if size <= FEAST_MAX_ROWS else [])
        for engine in engines:
            monitor.mark(f"point-in-time: {engine} {size:,}")
            say(f"point-in-time: {engine}, {size:,} entity rows")
            out = work / f"{engine}_{size}.json"
            join = ["join", "--engine", engine, "--size", str(size)]
            join += ["--work", str(work), "--out", str(out)]
            run_script("pit.py", join, pit_project, logs / "pit.log", 2400)
            results["pit"]["joins"].append(read_result(out))
        for engine in engines[1:]:
            monitor.mark(f"point-in-time: verify {engine} {size:,}")
            out = work / f"verify_{engine}_{size}.json"
            verify = ["verify", "--engine", engine, "--size", str(size)]
            verify += ["--work", str(work), "--out", str(out)]
            run_script("pit.py", verify, pit_project, logs / "pit.log", 1200)
            results["pit"]["verify"].append(read_result(out))
        # Outputs of 1M+ rows are large; the verdict is all that is kept.
        for stale in work.glob(f"out_*_{size}.parquet"):
            stale.unlink()


def _other_steps(
    args: argparse.Namespace,
    knobs: dict[str, Any],
    sizes: list[int],
    root: Path,
    monitor: LoadMonitor,
    results: dict[str, Any],
) -> None:
    """Steps 4-7: point-in-time retrieval, drift, dashboard, rollout verdicts."""
    logs = root / "logs"
    _pit_step(knobs, sizes, root, monitor, results)

    monitor.mark("drift quality")
    say(f"5/{STEPS} drift detection quality, then a 1M-row window (sampled and in full)")
    drift_project = make_project(root / "drift")
    out = root / "drift_quality.json"
    drift = ["--out", str(out), *(["--quick"] if args.quick else [])]
    run_script("drift_quality.py", drift, drift_project, logs / "drift.log", 3600)
    results["drift"] = read_result(out)

    monitor.mark("dashboard")
    say(f"6/{STEPS} dashboard: seeding a state, then rendering every page")
    dashboard_project = make_project(root / "dashboard")
    out = root / "dashboard.json"
    dashboard = ["--project", str(dashboard_project), "--out", str(out)]
    dashboard += ["--repeats", str(knobs["dashboard_repeats"])]
    run_script("dashboard.py", dashboard, dashboard_project, logs / "dashboard.log", 1800)
    results["dashboard"] = read_result(out) | {"repeats": knobs["dashboard_repeats"]}

    monitor.mark("rollout verdicts")
    say(f"7/{STEPS} rollout verdicts: simulated canary and shadow rollouts")
    out = root / "rollout_verdicts.json"
    verdicts = ["--out", str(out), *(["--quick"] if args.quick else [])]
    run_script("rollout_verdicts.py", verdicts, drift_project, logs / "verdicts.log", 1800)
    results["verdicts"] = read_result(out)

    _scale_step(args, root, monitor, results)


if __name__ == "__main__":
    sys.exit(main())
