"""A throwaway copy of the project to measure, with its own state folder.

The benchmark never touches the repository's own ``.loopline/``: everything it creates
(data, DVC cache, Prefect database, BentoML store, Feast registry) lives in the copy.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
COPIED = ("params.yaml", "dvc.yaml", "feature_repo", "bentos", "flows", "src")
# Variables that would point a child at another state folder, server or cache.
FOREIGN_PREFIXES = (
    "LOOPLINE_",
    "PREFECT_",
    "BENTOML_",
    "FEAST_",
    "DVC_",
    "XDG_",
    "UV_",
    "PIP_",
    "PROMETHEUS_",
)
FOREIGN_NAMES = ("PYTHONPATH", "MPLCONFIGDIR", "TMPDIR", "VIRTUAL_ENV")


def make_project(target: Path, source: Path = REPO) -> Path:
    """Copy the project's code and configuration into ``target`` and make it a git repo."""
    target.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        src = source / name
        if src.is_dir():
            shutil.copytree(src, target / name, ignore=ignore)
        else:
            shutil.copy2(src, target / name)
    unthrottled(target / "params.yaml")
    # DVC versions data inside a git repo, as in a user's project.
    subprocess.run(["git", "init", "-q", str(target)], check=True)
    # The pseudonym key `make up` would have made: stages run alone need it.
    from loopline.privacy.secrets import ensure_keys
    from loopline.settings import Paths

    ensure_keys(Paths(target, state_dir(target)))
    return target


def unthrottled(params_file: Path) -> None:
    """Turn the per-key rate limit off: wrk drives one key at whatever the server can take.

    The default (serving.limits in params.yaml, per worker) sits above what this machine
    serves, but not above what a faster one might; a benchmark measures the service, not
    a client's quota. The body limit stays: no benchmark request comes near it.
    """
    params = yaml.safe_load(params_file.read_text())
    params["serving"].setdefault("limits", {})["requests_per_second"] = None
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def state_dir(project: Path) -> Path:
    return project / ".loopline"


def child_env(project: Path) -> dict[str, str]:
    """Environment for anything run against the copy.

    ``PYTHONPATH`` puts the copy's ``src/`` and ``flows/`` ahead of the editable install,
    so a half-saved edit in the repo cannot change a run midway. Tool variables are
    dropped so ``loopline.settings.activate`` derives them all from the copy's state.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(FOREIGN_PREFIXES) and k not in FOREIGN_NAMES
    }
    state = state_dir(project)
    tmp = state / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "LOOPLINE_PROJECT": str(project),
            "LOOPLINE_HOME": str(state),
            "PYTHONPATH": f"{project / 'src'}{os.pathsep}{project}",
            # Line-by-line output: the demo's stages are timed by when their log lines arrive.
            "PYTHONUNBUFFERED": "1",
            # Feast and others create temp folders; keep them in the copy so cleanup is complete.
            "TMPDIR": str(tmp),
            "UV_CACHE_DIR": str(state / "cache" / "uv"),
            "PIP_CACHE_DIR": str(state / "cache" / "pip"),
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    return env


def run_script(script: str, args: list[str], project: Path, log: Path, timeout: float) -> None:
    """Run ``benchmarks/<script>`` against the copy; its output goes to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(Path(__file__).with_name(script)), *args]
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        process = subprocess.Popen(
            command,
            cwd=project,
            env=child_env(project),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode = process.wait(timeout)
        except subprocess.TimeoutExpired:
            # Its own process group: a stuck script goes with whatever it started.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    if returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{script} {' '.join(args)} failed ({returncode}):\n{tail}")
