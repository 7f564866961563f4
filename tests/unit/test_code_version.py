"""The code commit an experiment records, and whether the code had changes: real git."""

from __future__ import annotations

import subprocess
from pathlib import Path

from loopline import steps
from loopline.settings import Paths

WHO = ["-c", "user.name=loopline-tests", "-c", "user.email=tests@loopline.invalid"]


def project(root: Path) -> Paths:
    files = {
        "params.yaml": "training: {seed: 7}\n",
        "dvc.lock": "schema: '2.0'\n",
        "data/raw/dataset.parquet.dvc": "outs: []\n",
        "artifacts/metrics.json": "{}\n",
        "feature_repo/features.py": "X = 1\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "."], cwd=root, check=True)
    subprocess.run(["git", *WHO, "commit", "-qm", "init"], cwd=root, check=True)
    return Paths(root, root / ".loopline")


def test_what_an_experiment_changes_is_not_a_code_change(tmp_path: Path) -> None:
    paths = project(tmp_path)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True)
    # What `dvc exp run -S training.seed=11` leaves changed in the workspace.
    for name in ("params.yaml", "dvc.lock", "data/raw/dataset.parquet.dvc"):
        (tmp_path / name).write_text("changed: true\n")
    (tmp_path / "artifacts" / "metrics.json").write_text('{"roc_auc": 0.8}\n')
    assert steps.code_version(paths) == (head.stdout.decode().strip(), False)


def test_a_changed_source_file_is_dirty(tmp_path: Path) -> None:
    paths = project(tmp_path)
    (tmp_path / "feature_repo" / "features.py").write_text("X = 2\n")
    commit, dirty = steps.code_version(paths)
    assert commit is not None and len(commit) == 40
    assert dirty is True
    assert steps.code_commit(paths) == f"{commit}+dirty"


def test_outside_git_there_is_no_commit(tmp_path: Path) -> None:
    assert steps.code_version(Paths(tmp_path, tmp_path / ".loopline")) == (None, None)
