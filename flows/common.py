"""What every flow needs: the project, its params, and the current flow-run id."""

from __future__ import annotations

from pathlib import Path

from loopline.config import Params, load_params
from loopline.settings import Paths, activate


def project(root: str | None = None) -> tuple[Params, Paths]:
    paths = activate(Path(root) if root else None)
    return load_params(paths.params_file), paths


def flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    run_id = flow_run.id
    return str(run_id) if run_id else None
