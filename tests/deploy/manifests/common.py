"""Where deploy/ lives, the names of what it runs, and the :class:`Problem` a check reports."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from loopline.privacy.secrets import MASTER_KEY_ENV, PSEUDONYM_KEY_ENV
from loopline.settings import Paths, tool_environment

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("local", "production")
COMPOSE = REPO / "deploy" / "docker" / "compose.yaml"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
JOB_TEMPLATE = K8S / "work-pool" / "base-job-template.json"
# Kubernetes minor versions in support when this was written (each supported for ~14 months).
KUBERNETES_VERSIONS = ("1.35.0", "1.36.0", "1.37.0")

# The one Loopline user every image and pod runs as (deploy/docker/Dockerfile's USER).
LOOPLINE_UID = 10001
SERVICE_REF = "bentos.service:ChurnService"
PROCESS_POOL = "loopline-process"
KUBERNETES_POOL = "loopline-kubernetes"

# Workload (Deployment name, or the flow-run Job) -> what it must be.
SERVICE = "loopline-service"
DASHBOARD = "loopline-dashboard"
PREFECT = "loopline-prefect"
WORKER = "loopline-prefect-worker"
FLOW_RUN = "loopline-flow-run"
LOOPLINE_WORKLOADS = (SERVICE, DASHBOARD, FLOW_RUN)

# The environment variables that hold secrets: they must come from a Secret, never a value.
SECRET_ENV = frozenset(
    {
        PSEUDONYM_KEY_ENV,
        MASTER_KEY_ENV,
        "LOOPLINE_REGISTRY_URL",  # loopline.settings.Paths.registry_url: it carries a password
        "LOOPLINE_PG_PASSWORD",
        "LOOPLINE_REDIS_PASSWORD",
        "LOOPLINE_PASSWORD",
        "OPENLINEAGE_API_KEY",
        "PREFECT_API_KEY",
        "PREFECT_API_AUTH_STRING",
        "PREFECT_SERVER_API_AUTH_STRING",
        "PREFECT_API_DATABASE_CONNECTION_URL",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL",
    }
)

# Which secrets each workload needs, per overlay: the service pseudonymizes the ids it is
# sent; in production the registry, Feast's Redis and Prefect are external and guarded.
REQUIRED_SECRET_ENV: dict[str, dict[str, frozenset[str]]] = {
    "local": {
        SERVICE: frozenset({PSEUDONYM_KEY_ENV, "LOOPLINE_REGISTRY_URL"}),
        DASHBOARD: frozenset({"LOOPLINE_REGISTRY_URL"}),
        FLOW_RUN: frozenset({PSEUDONYM_KEY_ENV, MASTER_KEY_ENV, "LOOPLINE_REGISTRY_URL"}),
    },
    "production": {
        SERVICE: frozenset({PSEUDONYM_KEY_ENV, "LOOPLINE_REGISTRY_URL", "LOOPLINE_REDIS_PASSWORD"}),
        DASHBOARD: frozenset({"LOOPLINE_REGISTRY_URL", "PREFECT_API_AUTH_STRING"}),
        PREFECT: frozenset(
            {"PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_API_AUTH_STRING"}
        ),
        WORKER: frozenset({"PREFECT_API_AUTH_STRING"}),
        FLOW_RUN: frozenset(
            {PSEUDONYM_KEY_ENV, MASTER_KEY_ENV, "LOOPLINE_REGISTRY_URL", "LOOPLINE_REDIS_PASSWORD"}
        ),
    },
}

# Every tool's telemetry switch, as the code sets it for every process it starts.
TELEMETRY = {
    key: value
    for key, value in tool_environment(Paths(Path("/p"), Path("/s"))).items()
    if any(word in key for word in ("ANALYTICS", "TRACK", "USAGE"))
}

# Names read by libraries whose source is not installed here, each with who reads it.
THIRD_PARTY_ENV = {
    # prefect-kubernetes (in the worker's image): the namespaces its observer watches.
    "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES",
    # Every POSIX program: the home directory (the pods' users have none of their own).
    "HOME",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong, and where: the file(s), the object and the field."""

    file: str
    obj: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.obj}: {self.field}: {self.message}"


def report(problems: Iterable[Problem]) -> str:
    return "\n".join(str(p) for p in problems)
