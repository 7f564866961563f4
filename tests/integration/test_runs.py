"""Runs are isolated and crash-safe: real `loopline run` processes against the session's
Prefect server, killed with SIGKILL at chosen points or raced against each other."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loopline import faults, locks, promotion, runs, steps
from loopline.data import versioning


def loopline(*args: str, crash_at: str | None = None) -> subprocess.Popen[str]:
    """A `loopline` command in its own process, on this session's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    env.pop(faults.CRASH_ENV, None)
    if crash_at:
        env[faults.CRASH_ENV] = crash_at
    command = [str(Path(sys.executable).with_name("loopline")), *args]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finished(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=900)
    return process.returncode, out, err


def result_of(out: str) -> dict[str, Any]:
    """The JSON object `loopline run` prints last."""
    start = out.rindex("\n{") + 1 if "\n{" in out else out.index("{")
    return dict(json.loads(out[start:]))


def world(params: Any, paths: Any) -> dict[str, Any]:
    """What serving and the next run depend on: registry, data pointer, online store, stores."""
    import bentoml

    from loopline import features

    registry = promotion.open_registry(paths)
    name = params.serving.model_name
    champion = registry.production(name)
    store = features.feature_store(paths.published)
    ids = sorted(pd.read_parquet(paths.ingested, columns=["customer_id"])["customer_id"].unique())
    online = features.online_features(store, params.features.service, "customer_id", ids[:5])
    return {
        "versions": [v.version for v in registry.list_versions(name)],
        "champion": champion.version if champion else None,
        "data_hash": versioning.tracked_hash(paths.raw_batch),
        "online": online,
        "models": sorted(str(m.tag) for m in bentoml.models.list(name)),
        "chain": registry.verify(),
    }


@pytest.fixture(scope="module")
def batches(built: dict[str, Any], project: Path, params: Any, tmp_path_factory: Any) -> Any:
    """The session's batch, and one with the first half of its customers."""
    full = project / params.dataset.source
    frame = pd.read_parquet(full)
    ids = sorted(frame[params.dataset.entity].unique())
    half = tmp_path_factory.mktemp("batches") / "half.parquet"
    frame[frame[params.dataset.entity].isin(ids[: len(ids) // 2])].to_parquet(half, index=False)
    return full, half


@pytest.fixture(scope="module")
def champion(built: dict[str, Any], params: Any, paths: Any) -> str:
    registry = promotion.open_registry(paths)
    current = registry.production(params.serving.model_name)
    if current is None:
        promotion.promote(
            params,
            paths,
            built["package"]["model"],
            actor="runs-test",
            reason="a champion to keep serving",
        )
        current = registry.production(params.serving.model_name)
    assert current is not None
    return current.version


@pytest.fixture
def restore(params: Any, paths: Any, batches: Any) -> Iterator[None]:
    """Leave the session's data version, features and artifacts as the bootstrap made them."""
    yield
    full, _ = batches
    steps.accept_step(params, paths, full)
    steps.prepare_step(params, paths)
    steps.features_step(params, paths)


@pytest.mark.parametrize("point", faults.POINTS)
def test_a_run_killed_mid_way_leaves_the_world_as_it_was(
    point: str, params: Any, paths: Any, batches: Any, champion: str, killed_models: set[str]
) -> None:
    """SIGKILL during features, fit or publish: no half-registered version, the champion
    still serves, and the data pointer, online store and model store are as before. (What
    a kill during publish left in the model store goes with the next run: see below.)"""
    full, _ = batches
    before = world(params, paths)
    # Features and fit die inside `loopline train` (on the current data version); publish
    # inside `loopline run`, the whole loop: both ways a user starts a run.
    command = ("run", str(full)) if point == "publish" else ("train",)
    code, out, err = finished(loopline(*command, crash_at=point))
    assert code == -signal.SIGKILL, err[-3000:]
    after = world(params, paths)
    killed = newest_run(paths)
    assert killed.get("status") in ("running", "trained", "publishing"), killed
    assert after["versions"] == before["versions"]
    assert after["champion"] == before["champion"] == champion
    assert after["data_hash"] == before["data_hash"]
    assert after["online"] == before["online"]
    assert after["chain"] is None
    left = set(after["models"]) - set(before["models"])
    assert left == ({killed["model"]} if point == "publish" else set()), (left, killed)
    killed_models.update(left)
    # The kernel released the dead run's lock: the next run takes it at once.
    with locks.training(paths, params.serving.model_name, wait=False):
        pass


@pytest.fixture(scope="module")
def killed_models() -> set[str]:
    return set()


def newest_run(paths: Any) -> dict[str, Any]:
    files = sorted(paths.runs.glob(f"*/{runs.RUN_FILE}"), key=lambda f: f.stat().st_mtime)
    return dict(json.loads(files[-1].read_text()))


def alone(params: Any, paths: Any, batch: Path) -> dict[str, Any]:
    """The same run done alone, step by step in a workspace of its own (no registration)."""
    run = runs.open_run(paths, runs.new_run_id(), kind="reference")
    version = steps.accept_step(params, run, batch)
    steps.prepare_step(params, run)
    steps.features_step(params, run)
    trained = steps.train_step(params, run)
    evaluation = steps.evaluate_step(params, run)
    return {
        "data_hash": version["data_hash"],
        "metrics": evaluation["holdout"],
        "rows": (trained["train_rows"], trained["holdout_rows"]),
    }


def test_two_concurrent_runs_each_train_on_their_own_batch(
    params: Any,
    paths: Any,
    built: dict[str, Any],
    batches: Any,
    champion: str,
    killed_models: set[str],
    restore: None,
) -> None:
    """`loopline run full` and, two seconds later, `loopline run half`: each registered
    version has the metrics, row counts and data hash of the same run done alone (the
    session's bootstrap is the full batch done alone). They are also the next runs after
    the killed ones above: both succeed, and the first to publish removes what the run
    killed during publish left in the model store."""
    full, half = batches
    first = loopline("run", str(full))
    time.sleep(2)  # the second starts while the first is ingesting or training
    second = loopline("run", str(half))
    results = {}
    for label, process in (("full", first), ("half", second)):
        code, out, err = finished(process)
        assert code == 0, err[-3000:]
        results[label] = result_of(out)
    bootstrap = built["train"]["candidates"]
    references = {
        "full": {
            "data_hash": built["data"]["version"]["data_hash"],
            "metrics": built["package"]["metrics"],
            "rows": (bootstrap["train_rows"], bootstrap["holdout_rows"]),
        },
        "half": alone(params, paths, half),
    }
    registry = promotion.open_registry(paths)
    for label, reference in references.items():
        version = registry.get(results[label]["model"])
        assert version.lineage["data_hash"] == reference["data_hash"], label
        assert version.metrics == reference["metrics"], label
        run = run_of(paths, version.lineage["flow_run_id"])
        assert (run["train_rows"], run["holdout_rows"]) == reference["rows"], label
        # Lineage names the flow run that trained it, whichever way it was started.
        assert flow_name(version.lineage["flow_run_id"]) == "train", label
        assert version.lineage["code_commit"], label
    assert results["full"]["metrics"] != results["half"]["metrics"]
    assert registry.production(params.serving.model_name).version == champion
    assert set(world(params, paths)["models"]) & killed_models == set()


def flow_name(run_id: str) -> str:
    from uuid import UUID

    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow(client.read_flow_run(UUID(run_id)).flow_id).name


def run_of(paths: Any, flow_run_id: str) -> dict[str, Any]:
    """The training run's candidates file, from the workspace the run published from."""
    for file in paths.runs.glob(f"*/{runs.RUN_FILE}"):
        info = json.loads(file.read_text())
        if flow_run_id in (info.get("trained_by"), info.get("run_id")):
            return dict(json.loads((file.parent / "artifacts" / "candidates.json").read_text()))
    raise AssertionError(f"no run workspace trained by {flow_run_id}")
