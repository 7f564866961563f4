"""DVC's experiment tooling on a project right after the loop ran, as after `make demo`.

The session's project (the loop ran through the real flows) is copied whole, git history,
data and state included, and every tool pointed at the copy: the experiments change its
params, lock and registry, never the session's. Real DVC, real steps.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

PLOTS = {"roc", "precision_recall", "calibration", "confusion", "importance"}
# Only git-tracked paths: what a clone of the project would have.
COMMITTED = ("data/raw/dataset.parquet.dvc", "dvc.lock", "artifacts/metrics.json")


def run(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=root, env=env, capture_output=True, text=True)


def git(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    who = ["-c", "user.name=loopline-tests", "-c", "user.email=tests@loopline.invalid"]
    return run(root, env, "git", *who, *args)


@pytest.fixture(scope="module")
def demo(built: dict[str, Any], paths: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A copy of the project after the loop: its own folder, state and tools' homes."""
    from loopline.settings import Paths, tool_environment

    root = tmp_path_factory.mktemp("dvc-experiments") / "project"
    # Run workspaces and the model stores are not what an experiment starts from.
    skip = shutil.ignore_patterns("runs", "bentoml", "prefect", "__pycache__")
    shutil.copytree(paths.project, root, symlinks=True, ignore=skip)
    copy = Paths(root, root / ".loopline")
    env = os.environ | tool_environment(copy)
    # The repository's .gitignore, as a clone has it (the session project is made without).
    shutil.copy2(REPO / ".gitignore", root / ".gitignore")
    git(root, env, "add", ".gitignore")
    git(root, env, "commit", "-qm", "the repository's .gitignore")
    # What `make demo` leaves, pointed at the copy: DVC's cache and remote, Feast's registry.
    relocate = (
        "from loopline import features; from loopline.data import versioning; "
        "from loopline.settings import activate; p = activate(); "
        "versioning.ensure_repo(p); features.apply(p)"
    )
    done = run(root, env, sys.executable, "-c", relocate)
    assert done.returncode == 0, done.stderr[-3000:]
    return root, env


def dvc(demo: Any, *args: str) -> subprocess.CompletedProcess[str]:
    root, env = demo
    return run(root, env, "dvc", *args)


def experiments(demo: Any) -> dict[str, dict[str, Any]]:
    """Each experiment's metrics by name, from `dvc exp show --json`."""
    shown = dvc(demo, "exp", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    found = {}
    for baseline in json.loads(shown.stdout):
        for experiment in baseline.get("experiments") or []:
            for rev in experiment["revs"]:
                found[rev["name"]] = (rev.get("data") or {}).get("metrics") or {}
    return found


def roc_auc(metrics: dict[str, Any]) -> Any:
    return metrics["artifacts/metrics.json"]["data"]["holdout"]["roc_auc"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_loop_commits_the_data_version_and_the_pipeline(demo: Any) -> None:
    root, env = demo
    tracked = run(root, env, "git", "ls-files", "--error-unmatch", *COMMITTED)
    assert tracked.returncode == 0, tracked.stderr
    changed = run(root, env, "git", "status", "--porcelain", "--", *COMMITTED)
    assert changed.stdout == "", changed.stdout
    status = dvc(demo, "status", "--json")
    assert status.returncode == 0 and "deleted" not in status.stdout, status.stdout


def test_exp_run_show_and_plots(demo: Any) -> None:
    ran = dvc(demo, "exp", "run", "-S", "training.seed=11", "--name", "seed-11")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "No file hash info" not in ran.stdout + ran.stderr
    metrics = experiments(demo)["seed-11"]
    assert isinstance(roc_auc(metrics), float), metrics
    assert isinstance(metrics["artifacts/candidates.json"]["data"]["best_metric"], float)

    shown = dvc(demo, "plots", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    plots = json.loads(shown.stdout)["data"]
    assert set(plots) >= PLOTS, sorted(plots)
    for name in PLOTS:
        assert plots[name][0]["content"]["data"]["values"] or name == "importance", name
    # The experiment's plots against the commit it started from, read from DVC's cache.
    diff = dvc(demo, "plots", "diff", "seed-11", "HEAD", "--json")
    assert diff.returncode == 0, diff.stderr
    revisions = json.loads(diff.stdout)["data"]["roc"][0]["revisions"]
    assert len(revisions) == 2 and "seed-11" in revisions, revisions


def test_a_failed_experiment_leaves_the_workspace_usable(demo: Any) -> None:
    root, _ = demo
    model = root / "artifacts" / "model.joblib"
    before = digest(model)
    holdout_days = yaml.safe_load((root / "params.yaml").read_text())["training"]["holdout_days"]

    failed = dvc(demo, "exp", "run", "evaluate", "-S", "training.holdout_days=100000")
    assert failed.returncode != 0
    assert "holdout_days" in failed.stdout + failed.stderr, failed.stdout[-2000:]
    assert (root / "data" / "raw" / "dataset.parquet").is_file()
    assert digest(model) == before
    status = dvc(demo, "status", "--json")
    assert status.returncode == 0, status.stderr
    # The changed parameter is the only news: no output deleted, none missing from the cache.
    assert "deleted" not in status.stdout and "not in cache" not in status.stdout, status.stdout
    assert set(json.loads(status.stdout)) <= {"train", "evaluate", "package"}

    again = [f"training.holdout_days={holdout_days}", "training.seed=12"]
    fixed = dvc(demo, "exp", "run", "evaluate", "-S", again[0], "-S", again[1], "-n", "fixed")
    assert fixed.returncode == 0, fixed.stdout[-3000:] + fixed.stderr[-3000:]
    assert isinstance(roc_auc(experiments(demo)["fixed"]), float)
