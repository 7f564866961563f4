"""Shared fixtures: one small throwaway project, built once per session by the real flows.

The environment is set here, before anything imports Prefect, BentoML or Feast, so every
tool's state lands in the session's temporary folder and never in the home directory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SESSION_ROOT = Path(tempfile.mkdtemp(prefix="loopline-tests-"))
PROJECT = SESSION_ROOT / "project"
os.environ["LOOPLINE_PROJECT"] = str(PROJECT)
os.environ["LOOPLINE_HOME"] = str(PROJECT / ".loopline")
os.environ.pop("PREFECT_API_URL", None)
# The keys `make up` makes, given as a shared deployment gives it: every project, server and
# worker of the session pseudonymizes alike (tests/security unset it to see the refusal).
os.environ["LOOPLINE_PSEUDONYM_KEY"] = secrets.token_hex(32)
os.environ["LOOPLINE_MASTER_KEY"] = secrets.token_hex(32)
os.environ["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"

from loopline.settings import Paths, tool_environment  # noqa: E402

for _key, _value in tool_environment(Paths(PROJECT, PROJECT / ".loopline")).items():
    os.environ[_key] = _value

PROJECT_FILES = ("params.yaml", "dvc.yaml", ".dvc", ".dvcignore", "feature_repo", "bentos", "src")

# Small enough to train in seconds, large enough for a meaningful holdout.
SMALL = {
    "dataset": {"label_sampling": {"every_days": 3}},
    "generator": {"customers": 400, "days": 90, "drift_day": 100},
    "training": {
        "holdout_days": 14,
        "candidates": {
            "logistic_regression": {"C": [1.0]},
            "hist_gradient_boosting": {"learning_rate": [0.1], "max_depth": [3]},
            "random_forest": {"n_estimators": [40], "max_depth": [6]},
        },
    },
}


def make_project(root: Path, overrides: dict[str, Any] | None = None) -> Path:
    """A fresh project folder: the repo's project files, small params, its own git repo."""
    root.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in (overrides or SMALL).items():
        params[section] = {**params[section], **values}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    # A committed project, as a user's is: lineage records the code commit of each model.
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    who = ["-c", "user.name=loopline-tests", "-c", "user.email=tests@loopline.invalid"]
    subprocess.run(["git", *who, "commit", "-qm", "test project"], cwd=root, check=True)
    return root


def run_loopline(
    project: Path,
    *args: str,
    extra_env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """A `loopline` command in ``project``, in its own process, on this session's Prefect."""
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "LOOPLINE_PROJECT": str(project),
        "LOOPLINE_HOME": str(project / ".loopline"),
        **(extra_env or {}),
    }
    command = [str(Path(sys.executable).with_name("loopline")), *args]
    return subprocess.run(
        command, env=env, cwd=project, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def project() -> Path:
    return make_project(PROJECT)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def built(project: Path, prefect_harness: None) -> dict[str, Any]:
    """The whole loop once, through the real Prefect flows: data, features, model, Bento."""
    from flows.lifecycle import lifecycle
    from loopline import steps
    from loopline.config import load_params
    from loopline.settings import activate

    paths = activate(project)
    steps.generate_step(load_params(paths.params_file), paths)
    return lifecycle()


@pytest.fixture(scope="session")
def paths(project: Path) -> Any:
    from loopline.settings import activate

    return activate(project)


@pytest.fixture(scope="session")
def params(project: Path) -> Any:
    from loopline.config import load_params

    return load_params(project / "params.yaml")


# Every API key and password this process makes, for the last test of the session, which
# looks for each of them in every log the suite wrote (tests/security/test_secrets_in_logs.py).
MADE_SECRETS: list[str] = []
LAST = "tests/security/test_secrets_in_logs.py"


@pytest.fixture(scope="session", autouse=True)
def made_secrets() -> Iterator[list[str]]:
    from loopline.serving.auth import KeyStore
    from loopline.users import UserStore

    create, rotate, add = KeyStore.create, KeyStore.rotate, UserStore.add

    def created(store: KeyStore, *args: Any, **kwargs: Any) -> str:
        key = create(store, *args, **kwargs)
        MADE_SECRETS.append(key)
        return key

    def rotated(store: KeyStore, *args: Any, **kwargs: Any) -> Any:
        made = rotate(store, *args, **kwargs)
        MADE_SECRETS.append(made[0])
        return made

    def added(store: UserStore, name: str, role: Any, password: str) -> Any:
        user = add(store, name, role, password)
        MADE_SECRETS.append(password)  # only once accepted: refused ones ("short") are no one's
        return user

    with pytest.MonkeyPatch.context() as patch:  # the same calls, remembered
        patch.setattr(KeyStore, "create", created)
        patch.setattr(KeyStore, "rotate", rotated)
        patch.setattr(UserStore, "add", added)
        yield MADE_SECRETS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The log scan runs last, after every other test has written its logs.
    items.sort(key=lambda item: item.nodeid.startswith(LAST))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(SESSION_ROOT, ignore_errors=True)
