"""Run a cold ``loopline demo`` and split its wall time into stages.

The temporary Prefect server stops with the demo, so its run history is gone by the time
the demo returns. Instead every line the demo prints (and every line the serving log
gets) is stamped as it arrives; Prefect logs each task and flow run as it finishes, so
consecutive stamps bound each stage. Two boundaries have no log line and are observed
on disk: the generator creates ``data/incoming/`` before it computes and writes the
parquet (its mtime) when done.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchutil import say
from project import VENV_BIN, child_env, state_dir

ANSI = re.compile(r"\x1b\[[0-9;]*m")
FLOW_BEGIN = re.compile(r"Beginning (?:sub)?flow run '([^']+)' for flow '([^']+)'")
FLOW_END = re.compile(r"Flow run '([^']+)' - Finished in state (\w+)")
TASK_END = re.compile(r"Task run '([A-Za-z_]\w*?)-[0-9a-f]+' - Finished in state (\w+)")
POLL = 0.02


@dataclass
class Timeline:
    """Stamped events of one demo run (seconds since the demo process was started)."""

    events: list[tuple[float, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, t: float, source: str, text: str) -> None:
        with self.lock:
            self.events.append((t, source, text))

    def first(self, source: str, needle: str | re.Pattern[str]) -> float | None:
        for t, src, text in sorted(self.events):
            if src != source:
                continue
            hit = needle.search(text) if isinstance(needle, re.Pattern) else needle in text
            if hit:
                return t
        return None


def run_demo(project: Path, log: Path, timeout: float = 900) -> dict[str, Any]:
    """Run ``loopline demo`` on a fresh copy; return wall time, stages and the demo's summary."""
    env = child_env(project)
    state = state_dir(project)
    source = project / _dataset_source(project)
    serving_log = state / "logs" / "serving.log"
    timeline = Timeline()
    log.parent.mkdir(parents=True, exist_ok=True)
    wall_at_start = time.time()
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(VENV_BIN / "loopline"), "demo"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    stdout = process.stdout

    def read_output() -> None:
        with log.open("w") as out:
            for raw in stdout:
                now = time.perf_counter() - started
                text = ANSI.sub("", raw.decode(errors="replace")).rstrip("\n")
                out.write(f"{now:9.3f} | {text}\n")
                timeline.add(now, "demo", text)

    def watch_files() -> None:
        offset = 0
        partial = b""
        seen_incoming = seen_serving = False
        while process.poll() is None:
            now = time.perf_counter() - started
            if not seen_incoming and source.parent.is_dir():
                seen_incoming = True
                timeline.add(now, "disk", "incoming folder created")
            if serving_log.is_file():
                if not seen_serving:
                    seen_serving = True
                    timeline.add(now, "disk", "serving log created")
                with serving_log.open("rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
                offset += len(chunk)
                *lines, partial = (partial + chunk).split(b"\n")
                for line in lines:
                    timeline.add(now, "serving", line.decode(errors="replace"))
            time.sleep(POLL)

    reader = threading.Thread(target=read_output, daemon=True)
    watcher = threading.Thread(target=watch_files, daemon=True)
    reader.start()
    watcher.start()
    try:
        returncode = process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    total = time.perf_counter() - started
    reader.join(10)
    watcher.join(10)
    if returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"loopline demo failed ({returncode}):\n{tail}")
    generated = source.stat().st_mtime - wall_at_start if source.is_file() else None
    if generated is not None:
        timeline.add(generated, "disk", "dataset written")
    say(f"demo finished in {total:.1f}s")
    return {
        "total_seconds": total,
        "stages": stages(timeline, total),
        "summary": _summary(timeline),
        "candidates": _candidates(project),
    }


def _dataset_source(project: Path) -> str:
    # params.yaml is read without loopline so this process stays free of its imports.
    import yaml

    params = yaml.safe_load((project / "params.yaml").read_text())
    return str(params["dataset"]["source"])


def stages(timeline: Timeline, total: float) -> list[dict[str, Any]]:
    """Contiguous stages that add up to the demo's wall time, each with its boundaries."""
    runs: dict[str, str] = {}  # flow-run name -> flow name
    begins: dict[str, float] = {}
    ends: dict[str, float] = {}
    tasks: dict[str, float] = {}
    for t, src, text in sorted(timeline.events):
        if src != "demo":
            continue
        if m := FLOW_BEGIN.search(text):
            runs[m.group(1)] = m.group(2)
            begins.setdefault(m.group(2), t)
        elif m := FLOW_END.search(text):
            ends.setdefault(runs.get(m.group(1), m.group(1)), t)
        elif m := TASK_END.search(text):
            tasks.setdefault(m.group(1), t)

    incoming = timeline.first("disk", "incoming folder created")
    written = timeline.first("disk", "dataset written")
    ready = timeline.first("serving", re.compile(r"Service \S+ initialized"))
    bento_cli = timeline.first("serving", "Starting production HTTP BentoServer")

    def span(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else max(b - a, 0.0)

    rows: list[dict[str, Any]] = []

    def add(name: str, a: float | None, b: float | None, what: str, level: int = 0) -> None:
        rows.append({"stage": name, "seconds": span(a, b), "what": what, "level": level})

    life0, life1 = begins.get("lifecycle"), ends.get("lifecycle")
    add("startup", 0.0, incoming, "`loopline` CLI, Prefect and flow imports, params")
    add("generate", incoming, written, "built-in dataset (params.yaml generator)")
    add(
        "Prefect: temporary server start",
        written,
        life0,
        "ephemeral API server + database migration, until the first flow run begins",
    )
    server = timeline.first("demo", "Starting temporary server")
    add("engine set-up", written, server, "flow call until Prefect starts its server", 1)
    add("server start", server, life0, "server process until the first flow run begins", 1)
    add("ingest", begins.get("ingest"), tasks.get("prepare"), "subflow `ingest`")
    add("accept", begins.get("ingest"), tasks.get("accept"), "contract + DVC init/add/push", 1)
    add("prepare", tasks.get("accept"), tasks.get("prepare"), "re-check, drop PII, validate", 1)
    add(
        "features",
        begins.get("train"),
        tasks.get("build_features"),
        "Feast sources, apply, materialize",
    )
    add("train", tasks.get("build_features"), tasks.get("fit"), "point-in-time set + candidates")
    add("evaluate", tasks.get("fit"), tasks.get("evaluate"), "holdout metrics vs baseline")
    add("package", begins.get("package"), tasks.get("save_and_build"), "model store + Bento")
    first_task = next(n for n, row in enumerate(rows) if row["stage"] == "ingest")
    measured = [r["seconds"] for r in rows[first_task:] if r["level"] == 0]
    lifecycle = span(life0, life1)
    overhead = (
        None
        if lifecycle is None or any(s is None for s in measured)
        else max(lifecycle - sum(s for s in measured if s is not None), 0.0)
    )
    rows.append(
        {
            "stage": "Prefect: orchestration",
            "seconds": overhead,
            "what": "flow/subflow/task runs, artifacts, results (lifecycle span minus its tasks)",
            "level": 0,
        }
    )
    serving = timeline.first("disk", "serving log created")
    add(
        "after the flow",
        life1,
        serving,
        "what the demo does between the flow and serving (registry gates and promotion, keys)",
    )
    add("serving-ready", serving, ready, "`bentoml serve` until the service is initialized")
    add("bentoml CLI", serving, bento_cli, "process start and imports", 1)
    add("worker start", bento_cli, ready, "worker: model load, Feast store, warm-up", 1)
    add("predict + shutdown", ready, total, "one POST /predict, stop serving and Prefect server")
    for row in rows:
        row["share"] = None if row["seconds"] is None else row["seconds"] / total
    return rows


def _summary(timeline: Timeline) -> dict[str, str]:
    keys = ("data version", "model", "holdout", "bento", "registry", "served")
    out: dict[str, str] = {}
    for _, src, text in sorted(timeline.events):
        stripped = text.strip()
        if src == "demo":
            for key in keys:
                if stripped.startswith(key + " "):
                    out.setdefault(key, stripped[len(key) :].strip())
    return out


def _candidates(project: Path) -> list[dict[str, Any]]:
    path = project / "artifacts" / "candidates.json"
    if not path.is_file():
        return []
    rows: list[dict[str, Any]] = json.loads(path.read_text()).get("candidates", [])
    return rows
