"""Reading deploy/ the way the platform reads it, and checking it against what the code reads.

Kubernetes manifests are rendered by ``kubectl kustomize``; compose, the Dockerfile and the
work pool's job template are parsed. The checkers return :class:`Problem` s that name the
file, the object and the field, so a manifest that drifts from the code fails with a
message saying where. Everything they compare with comes from the code: ports and probe
paths from ``loopline.platform`` and BentoML's own configuration, environment variable
names from the sources of src/, bentos/, flows/ and dashboard/ (and the settings of the
tools the containers run), secret names from the modules that read them.

One module per concern, all re-exported here (the tests read ``m.NAME``): ``common`` (paths,
names, :class:`Problem`), ``rendering`` (kustomize, the flow-run Job), ``reads`` (what the
code reads), ``sources`` (which file sets a field), ``checker_base``, ``pod_checks``,
``service_checks`` and ``kubernetes`` (the Kubernetes checker), ``docker`` (compose and the
Dockerfile) and ``checkov``.
"""

from tests.deploy.manifests.checker_base import (
    Workload,
    container_env,
    workloads,
)
from tests.deploy.manifests.checkov import (
    WORKFLOWS,
    CheckovFinding,
    checkov_results,
)
from tests.deploy.manifests.common import (
    COMPOSE,
    DASHBOARD,
    DOCKERFILE,
    FLOW_RUN,
    JOB_TEMPLATE,
    K8S,
    KUBERNETES_POOL,
    KUBERNETES_VERSIONS,
    LOOPLINE_UID,
    LOOPLINE_WORKLOADS,
    OVERLAYS,
    PREFECT,
    PROCESS_POOL,
    REPO,
    REQUIRED_SECRET_ENV,
    SECRET_ENV,
    SERVICE,
    SERVICE_REF,
    TELEMETRY,
    THIRD_PARTY_ENV,
    WORKER,
    Problem,
    report,
)
from tests.deploy.manifests.docker import (
    COMPOSE_LOOPLINE,
    COMPOSE_PORTS,
    Instruction,
    check_compose,
    dockerfile,
    env_pairs,
    prefect_yaml_pool,
)
from tests.deploy.manifests.kubernetes import (
    KubernetesChecker,
    check_overlay,
)
from tests.deploy.manifests.reads import (
    CODE_DIRS,
    bentoml_endpoints,
    code_env_names,
    env_is_read,
    library_literals,
    locked_version,
    prefect_setting_names,
    streamlit_setting_names,
)
from tests.deploy.manifests.rendering import (
    flow_run_job,
    kubectl,
    render,
    rendered,
)
from tests.deploy.manifests.sources import (
    Sources,
    dotted,
    kustomize_sources,
)

__all__ = [
    "CODE_DIRS",
    "COMPOSE",
    "COMPOSE_LOOPLINE",
    "COMPOSE_PORTS",
    "CheckovFinding",
    "DASHBOARD",
    "DOCKERFILE",
    "FLOW_RUN",
    "Instruction",
    "JOB_TEMPLATE",
    "K8S",
    "KUBERNETES_POOL",
    "KUBERNETES_VERSIONS",
    "KubernetesChecker",
    "LOOPLINE_UID",
    "LOOPLINE_WORKLOADS",
    "OVERLAYS",
    "PREFECT",
    "PROCESS_POOL",
    "Problem",
    "REPO",
    "REQUIRED_SECRET_ENV",
    "SECRET_ENV",
    "SERVICE",
    "SERVICE_REF",
    "Sources",
    "TELEMETRY",
    "THIRD_PARTY_ENV",
    "WORKER",
    "WORKFLOWS",
    "Workload",
    "bentoml_endpoints",
    "check_compose",
    "check_overlay",
    "checkov_results",
    "code_env_names",
    "container_env",
    "dockerfile",
    "dotted",
    "env_is_read",
    "env_pairs",
    "flow_run_job",
    "kubectl",
    "kustomize_sources",
    "library_literals",
    "locked_version",
    "prefect_setting_names",
    "prefect_yaml_pool",
    "render",
    "rendered",
    "report",
    "streamlit_setting_names",
    "workloads",
]
