"""Every pipeline stage at the default size, 1M and ~10M rows: wall time and peak memory.

Each size gets its own project copy (``project.make_project``) whose ``params.yaml`` sets
``generator.customers`` and ``generator.days``; each stage then runs in a child process of
its own (``scale.py stage NAME``), in order, against that copy, without Prefect: the same
step functions the flows call. The parent samples the resident memory of the child and
every process under it (``/proc`` through psutil, every 50 ms) and keeps the highest sum:
the stage's peak RSS. The kernel's own high-water mark of the child (``os.wait4``'s
``ru_maxrss``, the largest single process) is kept beside it as a check on the sampler.
Last, the whole ``loopline run`` (Prefect flows and all) runs on a fresh copy of the same
project with the generated batch, measured the same way.

    python benchmarks/scale.py --out /tmp/scale.json             # default, 1M and 10M
    python benchmarks/scale.py --sizes default 1M --out /tmp/s.json
    python benchmarks/run.py --only scale                         # and write the report
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# generator.customers and generator.days per size; None keeps params.yaml's own.
# 100 days keep about 84 % of customer-days alive, so 12,000 customers make ~1M rows.
SIZES: dict[str, tuple[int, int] | None] = {
    "default": None,
    "1M": (12_000, 100),
    "10M": (120_000, 100),
}
BUDGET_MIB = 8 * 1024
# The goal for the whole `loopline run` at 10M rows on this machine.
RUN_GOAL_S = 253.0
SAMPLE_SECONDS = 0.05
WINDOW_DAYS = 14  # the monitor window: served predictions of this many label days

STAGES: list[tuple[str, str]] = [
    ("generate", "the built-in dataset written to `dataset.source`"),
    ("contract", "contract check of the batch, pseudonymized, written as the accepted batch"),
    ("dvc", "`dvc add` + `dvc push` of the accepted batch"),
    ("prepare", "re-check, PII dropped, typed; the validation summary"),
    ("sources", "Feast sources and label events written, definitions applied"),
    ("materialize", "the online store loaded (`load_online`)"),
    ("training_set", "point-in-time training set of every label event (`historical_features`)"),
    ("train", "`train_step`: the training set again, every candidate fitted, selection"),
    ("evaluate", "holdout metrics beside the baseline"),
    ("package", "model saved to BentoML, Bento built, registered"),
    ("promote", "gates, then production (so the next two have a champion)"),
    ("score", "batch score of every customer through the online store"),
    (
        "partitions",
        "every snapshot row's id written as Parquet partitions of 1M rows, then scored "
        "partition by partition (`loopline score FOLDER`, streaming)",
    ),
    ("monitor", f"one monitor window: {WINDOW_DAYS} label days of served predictions"),
]
RUN_STAGE = ("run", "the whole `loopline run` (Prefect flows) on a fresh copy, same batch")


# ---------------------------------------------------------------- measuring (the parent)


def _tree_rss(root: Any) -> int:
    import psutil

    total = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


def measure(command: list[str], project: Path, log: Path, timeout: float) -> dict[str, Any]:
    """Run ``command`` against ``project``; its wall time and the peak RSS of its tree."""
    import psutil
    from project import child_env

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=project,
            env=child_env(project),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        root = psutil.Process(process.pid)
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss(root))
                done.wait(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        deadline = started + timeout
        status, usage = 0, None
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(process.pid, 9)
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "seconds": seconds,
        "peak_rss_mib": peak / 2**20,
        # ru_maxrss is in KiB on Linux: the largest single process of the tree it waited for.
        "maxrss_mib": (usage.ru_maxrss / 1024) if usage else None,
        "returncode": process.returncode,
        "timed_out": seconds > timeout,
    }


def _configure(project: Path, size: str) -> None:
    shape = SIZES[size]
    if shape is None:
        return
    customers, days = shape
    params = project / "params.yaml"
    text = params.read_text()
    text = re.sub(r"(?m)^(  customers:) \d+", rf"\1 {customers}", text, count=1)
    text = re.sub(r"(?m)^(  days:) \d+", rf"\1 {days}", text, count=1)
    params.write_text(text)


def _stage_command(name: str, out: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "stage", name, "--out", str(out)]


def run_size(size: str, root: Path, *, whole_run: bool, timeout: float) -> dict[str, Any]:
    """Every stage of one size, each in its own child process; then the whole run."""
    from benchutil import say
    from project import make_project

    project = make_project(root / f"scale-{size}")
    _configure(project, size)
    logs = root / "logs"
    rows: list[dict[str, Any]] = []
    facts: dict[str, Any] = {"size": size, "shape": SIZES[size]}
    for name, what in STAGES:
        out = root / f"scale-{size}-{name}.json"
        say(f"scale {size}: {name}")
        row = measure(_stage_command(name, out), project, logs / f"scale-{size}.log", timeout)
        row |= {"stage": name, "what": what}
        if out.is_file():
            row["result"] = json.loads(out.read_text())
        rows.append(row)
        if name == "generate" and "result" in row:
            facts["rows"] = row["result"]["rows"]
        say(
            f"  {row['seconds']:.1f} s, peak {row['peak_rss_mib']:.0f} MiB"
            + ("" if row["returncode"] == 0 else f"  FAILED ({row['returncode']})")
        )
        if row["returncode"] != 0:
            break
    if whole_run and all(r["returncode"] == 0 for r in rows):
        rows.append(_whole_run(size, project, root, timeout))
    # Keep nothing big: the next size needs the disk (a failed size is kept to look into).
    if all(r["returncode"] == 0 for r in rows):
        shutil.rmtree(project, ignore_errors=True)
    return facts | {"stages": rows}


def _whole_run(size: str, project: Path, root: Path, timeout: float) -> dict[str, Any]:
    """``loopline run`` on a fresh copy of the project, given the batch ``generate`` wrote."""
    from benchutil import say
    from project import VENV_BIN, make_project

    fresh = make_project(root / f"scale-{size}-run")
    shutil.copy2(project / "params.yaml", fresh / "params.yaml")
    batch = _batch_path(project)
    target = fresh / batch.relative_to(project)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(batch, target)
    say(f"scale {size}: the whole `loopline run`")
    command = [str(VENV_BIN / "loopline"), "run"]
    row = measure(command, fresh, root / "logs" / f"scale-{size}-run.log", timeout)
    say(f"  {row['seconds']:.1f} s, peak {row['peak_rss_mib']:.0f} MiB")
    shutil.rmtree(fresh, ignore_errors=True)
    return row | {"stage": RUN_STAGE[0], "what": RUN_STAGE[1]}


def _batch_path(project: Path) -> Path:
    import yaml

    params = yaml.safe_load((project / "params.yaml").read_text())
    return project / params["dataset"]["source"]


def run_sizes(
    sizes: list[str], root: Path, *, whole_run: bool = True, timeout: float = 3600
) -> dict[str, Any]:
    """The scale part of ``make bench``: every size in turn, one 10M-row job at a time."""
    return {
        "sizes": [run_size(s, root, whole_run=whole_run, timeout=timeout) for s in sizes],
        "budget_mib": BUDGET_MIB,
        "run_goal_seconds": RUN_GOAL_S,
        "sampler": f"psutil over /proc every {SAMPLE_SECONDS * 1000:.0f} ms, summed over the tree",
    }


# ---------------------------------------------------------------- the stages (the child)


def _stage(name: str) -> dict[str, Any]:
    from loopline.config import load_params
    from loopline.settings import activate

    paths = activate()
    params = load_params(paths.params_file)
    return STAGE_RUNNERS[name](params, paths)


def _generate(params: Any, paths: Any) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from loopline import steps

    out = steps.generate_step(params, paths)
    return {"rows": pq.ParquetFile(out).metadata.num_rows}


def _contract(params: Any, paths: Any) -> dict[str, Any]:
    from loopline.data.ingest import write_checked
    from loopline.privacy.protect import protector_for

    source = paths.project / params.dataset.source
    target = paths.raw_batch
    target.parent.mkdir(parents=True, exist_ok=True)
    protector = protector_for(params.dataset, paths)
    facts = write_checked(source, params.dataset, target, protector)
    protector.commit()
    return {"rows": facts.rows}


def _dvc(params: Any, paths: Any) -> dict[str, Any]:
    from loopline.data import versioning

    versioning.ensure_repo(paths)
    return {"data_hash": versioning.track(paths, paths.raw_batch)}


def _prepare(params: Any, paths: Any) -> dict[str, Any]:
    from loopline import steps

    prepared = steps.prepare_step(params, paths)
    return prepared | {"validation": steps.validate_step(params, paths)}


def _sources(params: Any, paths: Any) -> dict[str, Any]:
    from loopline import steps

    return steps.features_step(params, paths, online=False)


def _materialize(params: Any, paths: Any) -> dict[str, Any]:
    from loopline import steps

    steps.load_online(params, paths)
    return {}


def _training_set(params: Any, paths: Any) -> dict[str, Any]:
    import pandas as pd

    from loopline import features

    labels = pd.read_parquet(paths.labels)
    frame = features.historical_features(paths, params.features.service, labels, params.dataset)
    frame.to_parquet(paths.artifacts / "scale_training_set.parquet", index=False)
    return {"rows": len(frame), "columns": len(frame.columns)}


def _train(params: Any, paths: Any) -> dict[str, Any]:
    from loopline import steps

    summary = steps.train_step(params, paths)
    return {k: summary.get(k) for k in ("selected", "train_rows", "holdout_rows")}


def _evaluate(params: Any, paths: Any) -> dict[str, Any]:
    from loopline import steps

    return steps.evaluate_step(params, paths)["holdout"]


def _package(params: Any, paths: Any) -> dict[str, Any]:
    from loopline import steps

    result = steps.package_step(params, paths, registered_by="bench", why="scale benchmark")
    return {"model": result["model"], "bento": result["bento"]}


def _promote(params: Any, paths: Any) -> dict[str, Any]:
    from loopline import promotion

    version = json.loads((paths.artifacts / "package.json").read_text())["model"]
    outcome = promotion.promote(params, paths, version, actor="bench", reason="scale benchmark")
    return {"version": version, "waiting_for": outcome.waiting_for}


def _score(params: Any, paths: Any) -> dict[str, Any]:
    import pandas as pd

    from loopline import scoring

    # Ids as a client knows them: the drop folder's batch (the stores hold pseudonyms).
    entity = params.dataset.entity
    batch = paths.project / params.dataset.source
    ids = pd.read_parquet(batch, columns=[entity])[entity].drop_duplicates()
    source = paths.artifacts / "scale_ids.parquet"
    ids.to_frame().to_parquet(source, index=False)
    return scoring.score_file(params, paths, str(source))


def _partitions(params: Any, paths: Any) -> dict[str, Any]:
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq

    from loopline import batch_scoring

    entity = params.dataset.entity
    source = paths.artifacts / "scale_partitions"
    source.mkdir(parents=True, exist_ok=True)
    batch = pq.ParquetFile(paths.project / params.dataset.source)  # ids as clients know them
    for n, piece in enumerate(batch.iter_batches(batch_size=1_000_000, columns=[entity])):
        pq.write_table(pa.Table.from_batches([piece]), source / batch_scoring.PART.format(n))
    started = time.perf_counter()
    summary = batch_scoring.score_partitioned(params, paths, str(source), None, None)
    return summary | {"scoring_seconds": round(time.perf_counter() - started, 2)}


def _monitor(params: Any, paths: Any) -> dict[str, Any]:
    from datetime import UTC, datetime

    from loopline.monitoring import loop

    now = datetime.now(UTC)
    rows = _served_window(params, paths, now)
    result = loop.monitor_window(params, paths, now=now)
    return {"window_rows": rows, "drifted": result.get("drift", {}).get("drifted")}


def _served_window(params: Any, paths: Any, now: Any) -> int:
    """Log the training set's last label days as the champion's predictions of the last
    window, with their labels as feedback (setup: written before the window is read)."""
    from datetime import timedelta

    import joblib
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from loopline import packaging
    from loopline.promotion import open_registry
    from loopline.serving.predlog import FEEDBACK, FEEDBACK_TYPES, PREDICTION_TYPES, PREDICTIONS

    d = params.dataset
    champion = open_registry(paths).production(params.serving.model_name)
    model = joblib.load(packaging.stored_files(champion.version)[0])
    frame = pd.read_parquet(paths.artifacts / "scale_training_set.parquet")
    days = np.sort(frame[d.timestamp].unique())[-WINDOW_DAYS:]
    frame = frame[frame[d.timestamp].isin(days)].reset_index(drop=True)
    inputs = list(model.feature_names_in_)
    score = model.predict_proba(frame[inputs])[:, 1]
    n = len(frame)
    minutes = params.monitoring.window_minutes
    at = pd.Timestamp(now) - pd.to_timedelta(np.linspace(minutes * 60 - 1, 1, n), unit="s")
    ids = [f"scale-{i}" for i in range(n)]
    predictions = pd.DataFrame(
        {
            "request_id": ids,
            "at": at,
            "entity_id": frame[d.entity].astype("int64"),
            "model_version": champion.version,
            "arm": "champion",
            "shadow": False,
            "score": score,
            "label": (score >= params.serving.threshold).astype("int8"),
            "latency_ms": 1.0,
        }
    ).join(frame[inputs])
    feedback = pd.DataFrame(
        {
            "request_id": ids,
            "entity_id": predictions["entity_id"],
            "at": at,
            "received_at": pd.Timestamp(now) - timedelta(seconds=0.5),
            "label": frame[d.label].astype("int8"),
        }
    )
    logged = (
        (PREDICTIONS, predictions, "at", PREDICTION_TYPES),
        (FEEDBACK, feedback, "received_at", FEEDBACK_TYPES),
    )
    for table, part, column, types in logged:
        for day, group in part.groupby(part[column].dt.date):
            folder = paths.serving_log / table / f"date={day.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            arrow = pa.Table.from_pandas(group, preserve_index=False)
            for name, kind in types.items():  # the log's own types (microsecond UTC times)
                arrow = arrow.set_column(
                    arrow.schema.get_field_index(name), name, arrow[name].cast(kind, safe=False)
                )
            pq.write_table(arrow, folder / f"part-{now:%Y%m%dT%H%M%S}-scale-0-000000.parquet")
    return n


STAGE_RUNNERS = {
    "generate": _generate,
    "contract": _contract,
    "dvc": _dvc,
    "prepare": _prepare,
    "sources": _sources,
    "materialize": _materialize,
    "training_set": _training_set,
    "train": _train,
    "evaluate": _evaluate,
    "package": _package,
    "promote": _promote,
    "score": _score,
    "partitions": _partitions,
    "monitor": _monitor,
}


# ---------------------------------------------------------------- command line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("stage", help="run one stage here (the child process)")
    one.add_argument("name", choices=sorted(STAGE_RUNNERS))
    one.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "scale.json")
    parser.add_argument("--no-run", action="store_true", help="skip the whole `loopline run`")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a new temporary one)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.command == "stage":
        result = _stage(args.name)
        args.out.write_text(json.dumps(result, indent=2, default=str))
        return 0
    root = args.work or Path(tempfile.mkdtemp(prefix="loopline-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    results = run_sizes(args.sizes, root, whole_run=not args.no_run)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
