"""Locks and run workspaces: a held lock names its holder, a dead holder's lock is taken
over with a log line, a vanished workspace is a clear error."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from loopline import locks, runs
from loopline.settings import Paths


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "project", tmp_path / "state")


def _hold_forever(paths: Paths, ready: Any) -> None:
    with locks.training(paths, "churn", run_id="run-in-another-process"):
        ready.set()
        signal.pause()


def holder_process(paths: Paths) -> multiprocessing.Process:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    process = ctx.Process(target=_hold_forever, args=(paths, ready), daemon=True)
    process.start()
    assert ready.wait(60), "the holder process never took the lock"
    return process


def test_a_held_lock_refuses_naming_the_running_one(paths: Paths) -> None:
    process = holder_process(paths)
    try:
        refusal = pytest.raises(locks.LockHeld, match="run run-in-another-process")
        with refusal as refused, locks.training(paths, "churn", wait=False):
            pass
        assert f"pid {process.pid}" in str(refused.value)
    finally:
        process.kill()
        process.join()


def test_a_dead_holders_lock_is_taken_over_with_a_log_line(paths: Paths) -> None:
    process = holder_process(paths)
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    said: list[str] = []
    with locks.training(paths, "churn", wait=False, say=said.append):
        holder = locks.read_holder(paths.locks / "train-churn.lock")
        assert holder["pid"] == os.getpid()
    assert len(said) == 1 and "stale lock" in said[0] and "run-in-another-process" in said[0]


def test_the_thread_that_holds_a_lock_may_enter_it_again(paths: Paths) -> None:
    outer = locks.training(paths, "churn", run_id="outer")
    with outer, locks.training(paths, "churn", run_id="inner", wait=False):
        holder = locks.read_holder(paths.locks / "train-churn.lock")
        assert holder["run_id"] == "outer"
    with locks.training(paths, "churn", wait=False):
        pass


def test_locks_of_different_models_do_not_block_each_other(paths: Paths) -> None:
    process = holder_process(paths)
    try:
        with locks.training(paths, "another-model", wait=False):
            pass
    finally:
        process.kill()
        process.join()


def test_a_workspace_deleted_mid_run_is_a_clear_error(paths: Paths) -> None:
    import shutil

    run = runs.open_run(paths, "r1", kind="train")
    assert runs.record(run)["status"] == "running"
    assert run.workspace is not None
    shutil.rmtree(run.workspace)
    with pytest.raises(runs.WorkspaceGone, match="deleted mid-run.*nothing was published"):
        runs.update(run, status="trained")
    with pytest.raises(runs.WorkspaceGone):
        runs.existing_run(paths, "r1")


def test_a_runs_working_files_are_its_own(paths: Paths) -> None:
    run = runs.open_run(paths, "r2", kind="train")
    assert run.raw_batch.is_relative_to(paths.runs / "r2")
    assert run.artifacts.is_relative_to(paths.runs / "r2")
    assert run.published.raw_batch == paths.project / "data" / "raw" / "dataset.parquet"
    assert run.registry_url == paths.registry_url
    info = json.loads((paths.runs / "r2" / runs.RUN_FILE).read_text())
    assert info["pid"] == os.getpid() and info["kind"] == "train"
