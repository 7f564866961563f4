"""Run workspaces: each flow run's own folder, and the one locked step that publishes it.

A run copies the data version it trains on into ``<state>/runs/<run id>/`` and does all its
work there (prepared data, feature sources, its own Feast registry, candidates, model,
holdout, reports). Nothing shared changes until :func:`publish`, which, under the publish
lock, replaces the published feature sources, loads the online store, and registers the
model last: serving sees the old world or the new one, and a run killed at any instant
leaves the published world as it was. What a killed run left in the model and Bento
stores is removed by the next publish (:func:`recover`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loopline import locks
from loopline.settings import Paths

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
VERSION_FILE = "data_version.json"
KEEP_RUNS = 20


class WorkspaceGone(RuntimeError):
    """A run's workspace vanished while the run needed it."""


def new_run_id() -> str:
    return uuid.uuid4().hex


def _record_file(run: Paths) -> Path:
    assert run.workspace is not None, "not a run workspace"
    return run.workspace / RUN_FILE


def record(run: Paths) -> dict[str, Any]:
    """What the run wrote about itself: who, since when, what it made, where it got to."""
    file = _record_file(run)
    if not file.is_file():
        raise WorkspaceGone(
            f"run workspace {run.workspace} is gone (deleted mid-run?): nothing was published; "
            "start the run again"
        )
    return dict(json.loads(file.read_text()))


def update(run: Paths, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into the run's record (written whole, then renamed into place)."""
    current = record(run) | fields
    file = _record_file(run)
    staged = file.with_suffix(".tmp")
    staged.write_text(json.dumps(current, indent=2, default=str))
    os.replace(staged, file)
    return current


def open_run(paths: Paths, run_id: str, *, kind: str, flow_run_id: str | None = None) -> Paths:
    """The workspace of run ``run_id``, created on first use."""
    run = paths.published.for_run(run_id)
    assert run.workspace is not None
    file = _record_file(run)
    if not file.is_file():
        run.workspace.mkdir(parents=True, exist_ok=True)
        file.write_text(
            json.dumps(
                {
                    "run_id": run_id,
                    "kind": kind,
                    "flow_run_id": flow_run_id,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started_at": datetime.now(UTC).isoformat(),
                    "status": "running",
                },
                indent=2,
            )
        )
    return run


def existing_run(paths: Paths, run_id: str) -> Paths:
    """A workspace that must already exist (handed from one flow to the next)."""
    run = paths.published.for_run(run_id)
    record(run)
    return run


def last_trained(paths: Paths) -> Paths:
    """The newest run that trained a model and has not published it (``loopline package``)."""
    runs = sorted(paths.runs.glob(f"*/{RUN_FILE}"), key=lambda f: f.stat().st_mtime)
    for file in reversed(runs):
        run = paths.published.for_run(file.parent.name)
        if record(run).get("status") == "trained":
            return run
    raise FileNotFoundError("no trained run waits to be packaged: run `loopline train` first")


# --- the data version a run trains on ------------------------------------------------------


def data_version(paths: Paths) -> dict[str, Any]:
    """The data version the run (or, outside a run, the project) works on."""
    from loopline.data import versioning

    if paths.workspace is None:
        return {"data_hash": versioning.tracked_hash(paths.raw_batch)}
    file = paths.workspace / VERSION_FILE
    if not file.is_file():
        raise FileNotFoundError(f"run {paths.workspace.name} has no data version yet")
    return dict(json.loads(file.read_text()))


def data_hash(paths: Paths) -> str:
    return str(data_version(paths)["data_hash"])


def keep_version(run: Paths, data_hash: str) -> None:
    """Remember which data version the run's copy of the batch is."""
    assert run.workspace is not None
    (run.workspace / VERSION_FILE).write_text(json.dumps({"data_hash": data_hash}))


def snapshot_data(run: Paths) -> str:
    """Copy the current data version into the run, read under the publish lock (one version,
    never a batch half-replaced by an ingest); returns its hash."""
    from loopline.data import versioning

    published = run.published
    if run.raw_batch.is_file() and run.workspace and (run.workspace / VERSION_FILE).is_file():
        return data_hash(run)
    with locks.publishing(published, run_id=run.workspace.name if run.workspace else None):
        if not published.raw_batch.is_file():
            raise FileNotFoundError("no data version yet: ingest a batch first (loopline ingest)")
        digest = versioning.tracked_hash(published.raw_batch)
        run.raw_batch.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(published.raw_batch, run.raw_batch)
    keep_version(run, digest)
    return digest


# --- publishing ----------------------------------------------------------------------------


def _replace_file(source: Path, target: Path) -> None:
    """Copy beside the target, then rename over it: readers see the old file or the new."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.{os.getpid()}.incoming")
    shutil.copyfile(source, staged)
    os.replace(staged, target)


def publish_working_files(run: Paths) -> list[str]:
    """The run's prepared data, feature sources, labels and artifacts become the project's."""
    published = run.published
    moved = []
    pairs = [(run.ingested, published.ingested)]
    sources = run.feature_sources.glob("*.parquet")
    pairs += [(f, published.feature_sources / f.name) for f in sources]
    pairs += [(f, published.artifacts / f.name) for f in run.artifacts.glob("*") if f.is_file()]
    # The selected model's plot files, which DVC's `dvc plots` reads (loopline.experiments).
    pairs += [(f, published.artifacts / "plots" / f.name) for f in run.artifacts.glob("plots/*")]
    for source, target in pairs:
        if source.is_file():
            _replace_file(source, target)
            moved.append(str(target))
    return moved


def recover(paths: Paths, registered: set[str]) -> list[str]:
    """Remove what killed runs left in the model and Bento stores (never a registered model)."""
    removed: list[str] = []
    for file in paths.runs.glob(f"*/{RUN_FILE}"):
        try:
            info = json.loads(file.read_text())
        except json.JSONDecodeError:
            continue
        if info.get("status") != "publishing" or locks.alive(info):
            continue
        for tag in (info.get("bento"), info.get("model")):
            if tag and tag not in registered:
                removed += _delete_stored(tag)
        run = paths.published.for_run(file.parent.name)
        update(run, status="abandoned", abandoned_at=datetime.now(UTC).isoformat())
        log.warning("run %s died while publishing; removed: %s", info["run_id"], removed)
    return removed


def _delete_stored(tag: str) -> list[str]:
    import bentoml
    from bentoml.exceptions import NotFound

    for store in (bentoml.bentos, bentoml.models):
        try:
            store.delete(tag)
            return [tag]
        except NotFound:
            continue
    return []


def prune(paths: Paths, keep: int = KEEP_RUNS) -> list[str]:
    """Delete the working data of old finished runs; their records stay for audit."""
    finished = [
        f.parent
        for f in paths.runs.glob(f"*/{RUN_FILE}")
        if json.loads(f.read_text()).get("status") in ("published", "abandoned", "refused")
    ]
    finished.sort(key=lambda folder: (folder / RUN_FILE).stat().st_mtime)
    dropped = []
    for folder in finished[:-keep] if keep else finished:
        for part in ("data", "feast"):
            shutil.rmtree(folder / part, ignore_errors=True)
        dropped.append(folder.name)
    return dropped
