"""What every flow needs: the project, its params, the current flow-run id, its workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopline import runs
from loopline.config import Params, load_params
from loopline.errors import is_expected
from loopline.settings import Paths, activate


def project(root: str | None = None) -> tuple[Params, Paths]:
    paths = activate(Path(root) if root else None)
    return load_params(paths.params_file), paths


def flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    run_id = flow_run.id
    return str(run_id) if run_id else None


def workspace(root: str | None, run: str | None, kind: str) -> tuple[Params, Paths, str]:
    """The paths of run ``run`` (handed down by a parent flow), or of a new run named after
    this flow run; returns its id too."""
    params, paths = project(root)
    if run is not None:
        return params, runs.existing_run(paths, run), run
    run_id = flow_run_id() or runs.new_run_id()
    return params, runs.open_run(paths, run_id, kind=kind, flow_run_id=flow_run_id()), run_id


def retry_unless_expected(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a task that failed by a fault (a busy file, a lost connection), not one that
    failed on a user's error: the same batch or config fails the same way again."""
    try:
        state.result()
    except Exception as exc:
        return not is_expected(exc)
    return True
