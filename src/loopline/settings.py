"""Where Loopline keeps its runtime state, and the environment every tool sees.

All runtime state lives under one folder (``.loopline/`` in the project by
default, moved by ``LOOPLINE_HOME``). Nothing here touches the disk or the
environment when imported; :func:`activate` does that, once, at the start of
a command.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STATE_ENV = "LOOPLINE_HOME"
PROJECT_ENV = "LOOPLINE_PROJECT"


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` that holds a ``params.yaml``."""
    if os.environ.get(PROJECT_ENV):
        return Path(os.environ[PROJECT_ENV]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").is_file():
            return folder
    raise FileNotFoundError(
        f"no params.yaml in {here} or any folder above it: run loopline inside a Loopline "
        f"project, or set {PROJECT_ENV}"
    )


@dataclass(frozen=True)
class Paths:
    """Every path Loopline reads or writes, derived from the project and state folders.

    With a ``workspace`` (a run's own folder under the state), the pipeline's working files
    (``data/`` and ``artifacts/``) live there instead of in the project, so a flow run never
    reads another run's unpublished files; everything else is shared.
    """

    project: Path
    state: Path
    workspace: Path | None = None

    @classmethod
    def discover(cls, project: Path | None = None) -> Paths:
        root = (project or find_project_root()).resolve()
        state = Path(os.environ.get(STATE_ENV) or root / ".loopline").resolve()
        return cls(project=root, state=state)

    def shown(self, path: Path) -> Path:
        """A path as a person reads it: relative to the project when inside it.

        A run's workspace lives in the state folder, which LOOPLINE_HOME may put anywhere.
        """
        return path.relative_to(self.project) if path.is_relative_to(self.project) else path

    # --- project files (in git, or tracked by DVC) ---
    @property
    def params_file(self) -> Path:
        return self.project / "params.yaml"

    @property
    def feature_repo(self) -> Path:
        return self.project / "feature_repo"

    @property
    def published(self) -> Paths:
        """The shared world that runs publish into: the project's own ``data/``, ``artifacts/``."""
        return Paths(self.project, self.state)

    def for_run(self, run_id: str) -> Paths:
        """The paths of run ``run_id``, whose working files live in its own workspace."""
        return Paths(self.project, self.state, self.runs / run_id)

    @property
    def data_dir(self) -> Path:
        return (self.workspace or self.project) / "data"

    @property
    def raw_batch(self) -> Path:
        """The current accepted raw batch; its DVC hash is the data version."""
        return self.data_dir / "raw" / "dataset.parquet"

    @property
    def ingested(self) -> Path:
        return self.data_dir / "ingested" / "dataset.parquet"

    @property
    def feature_sources(self) -> Path:
        return self.data_dir / "features"

    @property
    def labels(self) -> Path:
        return self.data_dir / "features" / "labels.parquet"

    @property
    def artifacts(self) -> Path:
        """Per-pipeline outputs that DVC tracks: the fitted model, candidates, metrics."""
        return (self.workspace or self.project) / "artifacts"

    # --- runtime state (never in git) ---
    @property
    def prefect_home(self) -> Path:
        return self.state / "prefect"

    @property
    def bentoml_home(self) -> Path:
        return self.state / "bentoml"

    @property
    def feast_dir(self) -> Path:
        return self.state / "feast"

    @property
    def runs(self) -> Path:
        """One workspace per flow run: its inputs, features, candidates, model, reports."""
        return self.state / "runs"

    @property
    def locks(self) -> Path:
        return self.state / "locks"

    @property
    def dvc_cache(self) -> Path:
        return self.state / "dvc" / "cache"

    @property
    def dvc_remote(self) -> Path:
        return self.state / "dvc" / "remote"

    @property
    def dvc_site_cache(self) -> Path:
        return self.state / "dvc" / "site"

    @property
    def incoming(self) -> Path:
        """Batches land here before they are checked; a bad one never leaves."""
        return self.state / "incoming"

    @property
    def rejected(self) -> Path:
        return self.state / "rejected"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def serving_log(self) -> Path:
        """Prediction and feedback logs (Parquet partitions) written by the service."""
        return self.state / "serving-log"

    @property
    def registry_url(self) -> str:
        return os.environ.get("LOOPLINE_REGISTRY_URL") or f"sqlite:///{self.state / 'registry.db'}"

    @property
    def lineage_dir(self) -> Path:
        return self.state / "lineage"

    @property
    def reports(self) -> Path:
        return self.state / "reports"


def tool_environment(paths: Paths) -> dict[str, str]:
    """Environment that keeps every tool's state in the state folder and its telemetry off."""
    cache = paths.state / "cache"
    return {
        STATE_ENV: str(paths.state),
        PROJECT_ENV: str(paths.project),
        "PREFECT_HOME": str(paths.prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # The first start of the temporary server migrates its database: slow on 2 cores.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_UI_ENABLED": os.environ.get("PREFECT_UI_ENABLED", "true"),
        "BENTOML_HOME": str(paths.bentoml_home),
        "BENTOML_DO_NOT_TRACK": "true",
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(paths.dvc_site_cache),
        "DVC_GLOBAL_CONFIG_DIR": str(paths.state / "dvc" / "global"),
        "DO_NOT_TRACK": "1",
        "FEAST_USAGE": "False",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        "XDG_CACHE_HOME": str(cache),
        "XDG_CONFIG_HOME": str(paths.state / "config"),
        "XDG_DATA_HOME": str(paths.state / "share"),
        "MPLCONFIGDIR": str(cache / "matplotlib"),
    }


def activate(project: Path | None = None) -> Paths:
    """Point every tool at the state folder; call before importing Prefect, BentoML or Feast.

    Values the user already set win, so shared infrastructure (a remote Prefect API,
    another BentoML home) is reached by configuration alone.
    """
    paths = Paths.discover(project)
    for key, value in tool_environment(paths).items():
        if key in (STATE_ENV, PROJECT_ENV):
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    for folder in (paths.state, paths.prefect_home, paths.bentoml_home, paths.feast_dir):
        folder.mkdir(parents=True, exist_ok=True)
    return paths
