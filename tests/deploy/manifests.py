"""Reading deploy/ the way the platform reads it, and checking it against what the code reads.

Kubernetes manifests are rendered by ``kubectl kustomize``; compose, the Dockerfile and the
work pool's job template are parsed. The checkers return :class:`Problem` s that name the
file, the object and the field, so a manifest that drifts from the code fails with a
message saying where. Everything they compare with comes from the code: ports and probe
paths from ``loopline.platform`` and BentoML's own configuration, environment variable
names from the sources of src/, bentos/, flows/ and dashboard/ (and the settings of the
tools the containers run), secret names from the modules that read them.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from loopline import platform
from loopline.privacy.secrets import MASTER_KEY_ENV, PSEUDONYM_KEY_ENV
from loopline.serving.auth import key_store
from loopline.serving.tls import TLS_CERTFILE_ENV, TLS_KEYFILE_ENV
from loopline.serving.workers import WORKERS_ENV
from loopline.settings import Paths, tool_environment

REPO = Path(__file__).resolve().parents[2]
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


# --- rendering ---------------------------------------------------------------------------


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl is not on PATH: run scripts/ensure_kubectl.sh (make services)")
    return found


def render(overlay: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` an overlay, offline, as docs/deploy.md tells a user to."""
    result = subprocess.run(
        [kubectl(), "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    return tuple(render(K8S / "overlays" / overlay))


def flow_run_job(template: dict[str, Any]) -> dict[str, Any]:
    """The Job Prefect's Kubernetes worker makes from the work pool's base job template:
    each ``{{ variable }}`` replaced by its default (an example name for ``name``)."""
    variables = template["variables"]["properties"]
    values = {key: spec.get("default") for key, spec in variables.items()}
    values["name"] = "example-flow-run"
    values["command"] = "prefect flow-run execute"
    values["env"] = {}
    values["labels"] = {}
    values["annotations"] = values.get("annotations") or {}

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: fill(v) for k, v in node.items()}
            return {k: v for k, v in out.items() if v is not None}
        if isinstance(node, list):
            return [fill(v) for v in node]
        if isinstance(node, str):
            whole = re.fullmatch(r"\{\{ *(\w+) *\}\}", node)
            if whole:
                return values.get(whole.group(1))
            return re.sub(r"\{\{ *(\w+) *\}\}", lambda m: str(values.get(m.group(1))), node)
        return node

    job = fill(template["job_configuration"]["job_manifest"])
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["args"] = values["command"].split()
    if not container.get("env"):
        container.pop("env", None)
    job["metadata"]["name"] = job["metadata"].pop("generateName") + "0"
    for key in ("labels", "annotations"):
        if not job["metadata"].get(key):
            job["metadata"].pop(key, None)
    return job


# --- what the code reads -----------------------------------------------------------------

CODE_DIRS = ("src", "bentos", "flows", "dashboard")
_NAME = re.compile(r"[\"']([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)[\"']")


@functools.cache
def code_env_names(root: Path = REPO) -> frozenset[str]:
    """Every UPPER_CASE string literal in the code: the environment names it can read."""
    names: set[str] = set()
    for folder in CODE_DIRS:
        for file in (root / folder).rglob("*.py"):
            names.update(_NAME.findall(file.read_text()))
    return frozenset(names)


@functools.cache
def prefect_setting_names() -> frozenset[str]:
    from prefect.settings import Settings
    from prefect.settings.legacy import _get_valid_setting_names

    return frozenset(_get_valid_setting_names(Settings))


@functools.cache
def streamlit_setting_names() -> frozenset[str]:
    from streamlit import config

    return frozenset(
        "STREAMLIT_" + key.replace(".", "_").upper() for key in config._config_options_template
    )


@functools.cache
def library_literals(*packages: str) -> frozenset[str]:
    """Upper-case string literals in installed packages' sources (BentoML, httpx)."""
    import importlib.util

    names: set[str] = set()
    for package in packages:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            continue
        for file in Path(spec.origin).parent.rglob("*.py"):
            names.update(_NAME.findall(file.read_text(errors="replace")))
    return frozenset(names)


def env_is_read(name: str) -> str | None:
    """None if some code the containers run reads ``name``; else why it is unknown.

    Loopline's own names (LOOPLINE_*) must be read by Loopline's code: no other source can
    excuse a typo in them."""
    if name in code_env_names():
        return None
    if name.startswith("LOOPLINE_"):
        return f"{name} is not read anywhere in {', '.join(CODE_DIRS)}"
    if name in TELEMETRY or name in tool_environment(Paths(Path("/p"), Path("/s"))):
        return None
    if name.startswith("PREFECT_"):
        return (
            None
            if name in prefect_setting_names() or name in THIRD_PARTY_ENV
            else (f"{name} is not a Prefect setting")
        )
    if name.startswith("STREAMLIT_"):
        return None if name in streamlit_setting_names() else f"{name} is not a Streamlit option"
    if name in THIRD_PARTY_ENV or name in library_literals("bentoml", "_bentoml_impl", "httpx"):
        return None
    return f"{name} is read neither by the code nor by the tools it runs"


# --- where an object comes from ----------------------------------------------------------


def _docs(file: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(file.read_text()) if isinstance(d, dict)]


def kustomize_sources(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(file, document) for every resource and patch file of a kustomization, base first."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    out: list[tuple[Path, dict[str, Any]]] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            out += kustomize_sources(path)
        else:
            out += [(path, d) for d in _docs(path)]
    for generator in kustomization.get("configMapGenerator", []):
        literals = dict(item.split("=", 1) for item in generator.get("literals", []))
        files = {item.split("=", 1)[0]: item for item in generator.get("files", [])}
        doc = {
            "kind": "ConfigMap",
            "metadata": {"name": generator["name"]},
            "data": {**literals, **files},
        }
        out.append((directory / "kustomization.yaml", doc))
    for patch in kustomization.get("patches", []):
        if "path" in patch:
            path = (directory / patch["path"]).resolve()
            out += [(path, d) for d in _docs(path)]
        else:  # an inline patch: it lives in the kustomization itself
            target = patch.get("target", {})
            doc = {"kind": target.get("kind"), "metadata": {"name": target.get("name")}}
            out.append((directory / "kustomization.yaml", doc))
    return out


class Sources:
    """Which file sets which field of which object (the last file that sets it wins)."""

    def __init__(self, overlay: Path, root: Path) -> None:
        self.root = root
        self.entries = kustomize_sources(overlay)

    def files(self, kind: str, name: str) -> list[Path]:
        return [
            f
            for f, d in self.entries
            if d.get("kind") == kind and d.get("metadata", {}).get("name") == name
        ]

    def of(self, kind: str, name: str, path: tuple[str, ...]) -> str:
        """The file that last sets ``path`` (list items chosen by name) on the object; when
        none does, the files that define or patch the object."""
        setting = [
            f
            for f, d in self.entries
            if d.get("kind") == kind
            and d.get("metadata", {}).get("name") == name
            and _lookup(d, path) is not _MISSING
        ]
        chosen = setting[-1:] or self.files(kind, name)
        return ", ".join(dict.fromkeys(self._shown(f) for f in chosen)) or "(no source file)"

    def _shown(self, file: Path) -> str:
        return str(file.relative_to(self.root)) if file.is_relative_to(self.root) else str(file)


_MISSING = object()


def _lookup(node: Any, path: tuple[str, ...]) -> Any:
    for token in path:
        if isinstance(node, dict):
            node = node.get(token, _MISSING)
        elif isinstance(node, list):
            matches = [
                item for item in node if isinstance(item, dict) and item.get("name") == token
            ]
            node = matches[0] if matches else _MISSING
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def dotted(path: tuple[str, ...]) -> str:
    """``spec.template.spec.containers[service].ports[http]``: list items by their name."""
    out = ""
    after_list = False
    for token in path:
        if after_list:
            out += f"[{token}]"
            after_list = False
        else:
            out += ("." if out else "") + token
            after_list = token in _LISTS
    return out


_LISTS = frozenset({"containers", "initContainers", "ports", "env", "volumes", "volumeMounts"})


# --- the Kubernetes checker --------------------------------------------------------------


@dataclass
class Workload:
    kind: str
    name: str
    pod: dict[str, Any]  # the pod spec
    meta: dict[str, Any]  # the pod template's metadata


def workloads(objects: Iterable[dict[str, Any]]) -> Iterator[Workload]:
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            template = obj["spec"]["template"]
            yield Workload(
                obj["kind"], obj["metadata"]["name"], template["spec"], template.get("metadata", {})
            )


def _by_kind(objects: Iterable[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def container_env(
    container: dict[str, Any], configmaps: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each variable a container gets -> where from: {"value": v} | {"secret": (name, key)} |
    {"configMap": name}. ``env`` wins over ``envFrom``, as in Kubernetes."""
    out: dict[str, dict[str, Any]] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref and ref.get("name") in configmaps:
            for key, value in configmaps[ref["name"]].get("data", {}).items():
                out[key] = {"value": value, "configMap": ref["name"]}
    for entry in container.get("env", []):
        value_from = entry.get("valueFrom", {})
        if "secretKeyRef" in value_from:
            ref = value_from["secretKeyRef"]
            out[entry["name"]] = {"secret": (ref.get("name"), ref.get("key"))}
        elif "configMapKeyRef" in value_from:
            out[entry["name"]] = {"configMap": value_from["configMapKeyRef"].get("name")}
        elif value_from:
            out[entry["name"]] = {"field": value_from}
        else:
            out[entry["name"]] = {"value": entry.get("value")}
    return out


def _port_number(container: dict[str, Any], port: Any) -> Any:
    if isinstance(port, int):
        return port
    for entry in container.get("ports", []):
        if entry.get("name") == port:
            return entry.get("containerPort")
    return port


class KubernetesChecker:
    """Compares one rendered overlay with the code; ``problems`` lists every mismatch."""

    def __init__(
        self,
        overlay: str,
        objects: Iterable[dict[str, Any]],
        *,
        k8s: Path = K8S,
        root: Path = REPO,
        job_template: dict[str, Any] | None = None,
    ) -> None:
        self.overlay = overlay
        self.objects = list(objects)
        self.sources = Sources(k8s / "overlays" / overlay, root)
        self.root = root
        self.problems: list[Problem] = []
        template = job_template
        if template is None and JOB_TEMPLATE.is_file():
            template = json.loads(JOB_TEMPLATE.read_text())
        self.job = flow_run_job(template) if template is not None else None
        self.job_file = str(JOB_TEMPLATE.relative_to(REPO))

    # -- helpers
    def fail(self, kind: str, name: str, path: tuple[str, ...], message: str) -> None:
        if kind == "Job" and name.startswith("example-flow-run"):
            file, name = self.job_file, FLOW_RUN
        else:
            file = self.sources.of(kind, name, path)
        self.problems.append(Problem(file, f"{kind}/{name}", dotted(path), message))

    def check(self) -> list[Problem]:
        self._check()
        return list(dict.fromkeys(self.problems))

    def _check(self) -> None:
        self.configmaps = _by_kind(self.objects, "ConfigMap")
        self._no_inline_secrets()
        all_workloads = list(workloads(self.objects))
        if self.job is not None:
            all_workloads += list(workloads([self.job]))
        names = {w.name for w in all_workloads}
        for expected in (SERVICE, DASHBOARD, PREFECT, WORKER):
            if expected not in names:
                self.fail(
                    "Deployment",
                    expected,
                    (),
                    "missing: every process Loopline runs has a workload",
                )
        for workload in all_workloads:
            self._pod(workload)
        self._service_contract(all_workloads)
        self._ports_and_probes(all_workloads)
        self._services_and_ingress(all_workloads)
        self._network_policies()
        self._params()

    def _workload_key(self, workload: Workload) -> str:
        return FLOW_RUN if workload.kind == "Job" else workload.name

    # -- checks
    def _no_inline_secrets(self) -> None:
        for obj in self.objects:
            if obj["kind"] == "Secret":
                self.fail(
                    "Secret",
                    obj["metadata"]["name"],
                    ("data",),
                    "a Secret is defined in the manifests: reference it, never inline it",
                )
        for name, cm in self.configmaps.items():
            for key in cm.get("data", {}):
                if key in SECRET_ENV:
                    self.fail(
                        "ConfigMap",
                        name,
                        ("data", key),
                        f"{key} is a secret: it belongs in a Secret, not a ConfigMap",
                    )

    def _pod(self, w: Workload) -> None:
        base = ("spec", "template", "spec")
        pod = w.pod
        security = pod.get("securityContext", {})
        if not security.get("runAsNonRoot"):
            self.fail(
                w.kind,
                w.name,
                (*base, "securityContext", "runAsNonRoot"),
                "pods run as a non-root user",
            )
        required = REQUIRED_SECRET_ENV[self.overlay].get(self._workload_key(w), frozenset())
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for v in volumes.values():
            if "configMap" in v and v["configMap"]["name"] not in self.configmaps:
                self.fail(
                    w.kind,
                    w.name,
                    (*base, "volumes", v["name"], "configMap"),
                    f"ConfigMap {v['configMap']['name']} is not in the manifests",
                )
            claim = v.get("persistentVolumeClaim", {}).get("claimName")
            if claim and claim not in _by_kind(self.objects, "PersistentVolumeClaim"):
                self.fail(
                    w.kind,
                    w.name,
                    (*base, "volumes", v["name"], "persistentVolumeClaim"),
                    f"PersistentVolumeClaim {claim} is not in the manifests",
                )
        account = pod.get("serviceAccountName")
        if account and account not in _by_kind(self.objects, "ServiceAccount"):
            self.fail(
                w.kind,
                w.name,
                (*base, "serviceAccountName"),
                f"ServiceAccount {account} is not in the manifests",
            )
        for group in ("initContainers", "containers"):
            for c in pod.get(group, []):
                path = (*base, group, c["name"])
                self._container(w, c, path, volumes, required if group == "containers" else None)

    def _container(
        self,
        w: Workload,
        c: dict[str, Any],
        path: tuple[str, ...],
        volumes: dict[str, dict[str, Any]],
        required: frozenset[str] | None,
    ) -> None:
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            self.fail(
                w.kind,
                w.name,
                (*path, "securityContext", "allowPrivilegeEscalation"),
                "must be false",
            )
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            self.fail(
                w.kind, w.name, (*path, "securityContext", "capabilities"), "drop ALL capabilities"
            )
        if w.kind == "Deployment" and sc.get("readOnlyRootFilesystem") is not True:
            self.fail(
                w.kind,
                w.name,
                (*path, "securityContext", "readOnlyRootFilesystem"),
                "long-running containers have a read-only root filesystem",
            )
        resources = c.get("resources", {})
        for part in ("requests", "limits"):
            for res in ("cpu", "memory"):
                if res not in resources.get(part, {}):
                    self.fail(w.kind, w.name, (*path, "resources", part, res), "not set")
        for ref in c.get("envFrom", []):
            name = (ref.get("configMapRef") or {}).get("name")
            if ref.get("secretRef"):
                self.fail(
                    w.kind,
                    w.name,
                    (*path, "envFrom"),
                    "name each secret variable with secretKeyRef (envFrom secretRef hides "
                    "which variables a Secret must hold)",
                )
            elif name not in self.configmaps:
                self.fail(
                    w.kind, w.name, (*path, "envFrom"), f"ConfigMap {name} is not in the manifests"
                )
        env = container_env(c, self.configmaps)
        for name, source in env.items():
            if "configMap" in source and "value" in source:  # from envFrom: the ConfigMap's key
                kind, obj, where = "ConfigMap", source["configMap"], ("data", name)
            else:
                kind, obj, where = w.kind, w.name, (*path, "env", name)
            unknown = env_is_read(name)
            if unknown:
                self.fail(kind, obj, where, unknown)
            if name in SECRET_ENV and "secret" not in source:
                self.fail(
                    kind, obj, where, f"{name} is a secret: take it from a Secret (secretKeyRef)"
                )
            if "secret" in source and not all(source["secret"]):
                self.fail(kind, obj, where, "secretKeyRef needs both name and key")
        if required is None:
            return
        for name in sorted(required):
            if "secret" not in env.get(name, {}):
                self.fail(
                    w.kind,
                    w.name,
                    (*path, "env"),
                    f"{name} is not referenced from a Secret (the {self.overlay} overlay "
                    f"needs it: env[].valueFrom.secretKeyRef)",
                )
        for key, value in TELEMETRY.items():
            if env.get(key, {}).get("value") != value:
                self.fail(
                    w.kind,
                    w.name,
                    (*path, "env", key),
                    f"telemetry: {key} must be {value!r} (loopline.settings.tool_environment)",
                )
        image = c.get("image", "")
        if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
            self.fail(
                w.kind,
                w.name,
                (*path, "image"),
                f"{image!r} has no tag or digest: the overlay's images: must set it",
            )
        if image.startswith("prefecthq/prefect:"):
            tag = image.split(":", 1)[1]
            if not tag.startswith(locked_version("prefect") + "-"):
                self.fail(
                    w.kind,
                    w.name,
                    (*path, "image"),
                    f"Prefect {tag} differs from uv.lock's prefect {locked_version('prefect')}",
                )
        self._loopline_container(w, c, path, env, volumes)

    def _loopline_container(
        self,
        w: Workload,
        c: dict[str, Any],
        path: tuple[str, ...],
        env: dict[str, dict[str, Any]],
        volumes: dict[str, dict[str, Any]],
    ) -> None:
        if self._workload_key(w) not in LOOPLINE_WORKLOADS:
            return
        state = env.get("LOOPLINE_HOME", {}).get("value")
        project = env.get("LOOPLINE_PROJECT", {}).get("value")
        if not state or not project:
            self.fail(
                w.kind,
                w.name,
                (*path, "env"),
                "LOOPLINE_HOME and LOOPLINE_PROJECT must be set (loopline.settings)",
            )
            return
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        state_mount = mounts.get(state)
        if state_mount is None or "persistentVolumeClaim" not in volumes.get(
            state_mount["name"], {}
        ):
            self.fail(
                w.kind,
                w.name,
                (*path, "volumeMounts"),
                f"the state folder {state} (LOOPLINE_HOME) is not the shared volume",
            )
        params = mounts.get(f"{project}/params.yaml")
        if params is None or "configMap" not in volumes.get(params["name"], {}):
            self.fail(
                w.kind,
                w.name,
                (*path, "volumeMounts"),
                f"{project}/params.yaml is not mounted from the params ConfigMap",
            )
        if self._workload_key(w) == SERVICE:
            keys = key_store(Paths(Path(project), Path(state))).path
            mount = mounts.get(str(keys.parent))
            secret = volumes.get(mount["name"], {}).get("secret") if mount else None
            items = {i["path"] for i in (secret or {}).get("items", [])} if secret else set()
            if not secret or (items and keys.name not in items):
                self.fail(
                    w.kind,
                    w.name,
                    (*path, "volumeMounts"),
                    f"the API key file {keys} (loopline.serving.auth.key_store) is not "
                    "mounted from a Secret",
                )
            for variable in (TLS_CERTFILE_ENV, TLS_KEYFILE_ENV):
                if variable in env:
                    file = env[variable].get("value") or ""
                    holder = [p for p, m in mounts.items() if file.startswith(p + "/")]
                    if not holder or "secret" not in volumes.get(mounts[holder[0]]["name"], {}):
                        self.fail(
                            w.kind,
                            w.name,
                            (*path, "env", variable),
                            f"{file} is not in a volume mounted from a Secret",
                        )
                    if f"$({variable})" not in c.get("args", []):
                        self.fail(
                            w.kind,
                            w.name,
                            (*path, "args"),
                            f"{variable} is set but not passed to bentoml serve",
                        )

    def _service_contract(self, all_workloads: list[Workload]) -> None:
        platform_source = Path(platform.__file__).read_text()
        for w in all_workloads:
            if w.name != SERVICE:
                continue
            path = ("spec", "template", "spec", "containers", "service")
            c = next((c for c in w.pod["containers"] if c["name"] == "service"), None)
            if c is None:
                self.fail(w.kind, w.name, path[:-1], "no container named service")
                return
            command = [*c.get("command", []), *c.get("args", [])]
            if SERVICE_REF not in command or SERVICE_REF not in platform_source:
                self.fail(
                    w.kind,
                    w.name,
                    (*path, "command"),
                    f"must serve {SERVICE_REF}, as loopline.platform.start_serving does",
                )
            cpus = _cpus(c.get("resources", {}).get("limits", {}).get("cpu"))
            env = container_env(c, self.configmaps)
            workers = env.get(WORKERS_ENV, {}).get("value")
            if workers is None or not workers.isdigit() or (cpus and int(workers) > cpus):
                self.fail(
                    w.kind,
                    w.name,
                    (*path, "env", WORKERS_ENV),
                    f"set it to at most the CPU limit ({cpus}): its default counts the node's CPUs",
                )
            annotations = w.meta.get("annotations", {})
            meta = ("spec", "template", "metadata", "annotations")
            expected = {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(platform.SERVING_PORT),
                "prometheus.io/path": "/metrics",
            }
            for key, value in expected.items():
                if annotations.get(key) != value:
                    self.fail(
                        w.kind,
                        w.name,
                        (*meta, key),
                        f"{annotations.get(key)!r}, but the service exports metrics at {value!r}"
                        if key != "prometheus.io/scrape"
                        else "must be 'true'",
                    )
            tls = TLS_CERTFILE_ENV in env
            scheme = "https" if tls else "http"
            if annotations.get("prometheus.io/scheme", "http") != scheme:
                self.fail(
                    w.kind, w.name, (*meta, "prometheus.io/scheme"), f"the service speaks {scheme}"
                )
            hpas = [
                h
                for h in _by_kind(self.objects, "HorizontalPodAutoscaler").values()
                if h["spec"]["scaleTargetRef"]["name"] == SERVICE
            ]
            if not hpas:
                self.fail(
                    "HorizontalPodAutoscaler",
                    SERVICE,
                    ("spec", "scaleTargetRef"),
                    "the service has no HorizontalPodAutoscaler",
                )
            selects = [
                p
                for p in _by_kind(self.objects, "PodDisruptionBudget").values()
                if _selects(p["spec"]["selector"].get("matchLabels", {}), w.meta)
            ]
            if not selects:
                self.fail(
                    "PodDisruptionBudget",
                    SERVICE,
                    ("spec", "selector"),
                    "no PodDisruptionBudget selects the service's pods",
                )

    def _ports_and_probes(self, all_workloads: list[Workload]) -> None:
        bentoml_paths = bentoml_endpoints()
        expected = {
            SERVICE: ("service", platform.SERVING_PORT, "/livez", "/readyz", "--port"),
            PREFECT: ("prefect", platform.PREFECT_PORT, "/api/health", None, "--port"),
            DASHBOARD: (
                "dashboard",
                platform.DASHBOARD_PORT,
                "/_stcore/health",
                "/_stcore/health",
                "--server.port",
            ),
        }
        platform_source = Path(platform.__file__).read_text()
        for w in all_workloads:
            if w.name not in expected:
                continue
            name, port, live, ready, flag = expected[w.name]
            path = ("spec", "template", "spec", "containers", name)
            c = next((c for c in w.pod["containers"] if c["name"] == name), None)
            if c is None:
                self.fail(w.kind, w.name, path[:-1], f"no container named {name}")
                continue
            for entry in c.get("ports", []):
                if entry.get("containerPort") != port:
                    self.fail(
                        w.kind,
                        w.name,
                        (*path, "ports", entry.get("name", "?"), "containerPort"),
                        f"{entry.get('containerPort')}, but the code serves on {port} "
                        "(loopline.platform)",
                    )
            args = [*c.get("command", []), *c.get("args", [])]
            if flag not in args or args[args.index(flag) + 1] != str(port):
                self.fail(
                    w.kind, w.name, (*path, "args"), f"must pass {flag} {port} (loopline.platform)"
                )
            for probe, want in (
                ("livenessProbe", live),
                ("readinessProbe", ready),
                ("startupProbe", None),
            ):
                spec = c.get(probe)
                if spec is None:
                    if probe != "startupProbe":
                        self.fail(w.kind, w.name, (*path, probe), "no probe")
                    continue
                get = spec.get("httpGet", {})
                if _port_number(c, get.get("port")) != port:
                    self.fail(
                        w.kind,
                        w.name,
                        (*path, probe, "httpGet", "port"),
                        f"{get.get('port')}, but the code serves on {port}",
                    )
                probe_path = get.get("path")
                if want is not None and probe_path != want:
                    self.fail(
                        w.kind,
                        w.name,
                        (*path, probe, "httpGet", "path"),
                        f"{probe_path}, but the code's {probe} endpoint is {want}",
                    )
                if w.name == SERVICE and probe_path not in bentoml_paths:
                    self.fail(
                        w.kind,
                        w.name,
                        (*path, probe, "httpGet", "path"),
                        f"{probe_path} is not one of BentoML's endpoints {bentoml_paths}",
                    )
                if (
                    probe_path
                    and probe_path.startswith("/_stcore")
                    or probe_path in ("/readyz", "/api/health")
                ) and f'"{probe_path}"' not in platform_source:
                    self.fail(
                        w.kind,
                        w.name,
                        (*path, probe, "httpGet", "path"),
                        f"loopline.platform no longer waits on {probe_path}",
                    )

    def _services_and_ingress(self, all_workloads: list[Workload]) -> None:
        pods = {w.name: w for w in all_workloads if w.kind == "Deployment"}
        services = _by_kind(self.objects, "Service")
        for name, svc in services.items():
            selected = [
                w for w in pods.values() if _selects(svc["spec"].get("selector", {}), w.meta)
            ]
            if not selected:
                self.fail("Service", name, ("spec", "selector"), "selects no pod")
                continue
            containers = selected[0].pod["containers"]
            ports = {
                p.get("name"): p.get("containerPort")
                for c in containers
                for p in c.get("ports", [])
            }
            for entry in svc["spec"].get("ports", []):
                target = entry.get("targetPort", entry.get("port"))
                number = ports.get(target, target)
                if number not in ports.values():
                    self.fail(
                        "Service",
                        name,
                        ("spec", "ports", entry.get("name", "?"), "targetPort"),
                        f"{target} is no port of the pods it selects",
                    )
                if entry.get("port") != number:
                    self.fail(
                        "Service",
                        name,
                        ("spec", "ports", entry.get("name", "?"), "port"),
                        f"{entry.get('port')}: keep the code's port {number}",
                    )
            if svc["spec"].get("type", "ClusterIP") != "ClusterIP" and name != SERVICE:
                self.fail(
                    "Service",
                    name,
                    ("spec", "type"),
                    "only the service is exposed outside the cluster",
                )
        for name, ingress in _by_kind(self.objects, "Ingress").items():
            for rule in ingress["spec"].get("rules", []):
                for entry in rule.get("http", {}).get("paths", []):
                    backend = entry["backend"]["service"]
                    svc = services.get(backend["name"])
                    ports = [p.get("port") for p in (svc or {}).get("spec", {}).get("ports", [])]
                    if svc is None or backend["port"].get("number") not in ports:
                        self.fail(
                            "Ingress",
                            name,
                            ("spec", "rules", "backend"),
                            f"{backend['name']}:{backend['port']} is no Service port",
                        )
                    if backend["name"] == SERVICE:
                        self.fail(
                            "Ingress",
                            name,
                            ("spec", "rules", "backend"),
                            "the service is reached on its own port, not the Ingress",
                        )
            annotations = ingress["metadata"].get("annotations", {})
            if not (
                annotations.get("nginx.ingress.kubernetes.io/auth-url")
                or annotations.get("nginx.ingress.kubernetes.io/auth-secret")
            ):
                self.fail(
                    "Ingress",
                    name,
                    ("metadata", "annotations"),
                    "the dashboard and the Prefect UI need authentication at the ingress",
                )

    def _network_policies(self) -> None:
        policies = _by_kind(self.objects, "NetworkPolicy")
        deny = [
            n
            for n, p in policies.items()
            if p["spec"].get("podSelector") == {}
            and "Ingress" in p["spec"].get("policyTypes", [])
            and not p["spec"].get("ingress")
        ]
        if not deny:
            self.fail(
                "NetworkPolicy",
                "(default deny)",
                ("spec",),
                "no policy denies ingress to every pod by default",
            )
        for name, policy in policies.items():
            target = policy["spec"].get("podSelector", {}).get("matchLabels", {})
            for i, rule in enumerate(policy["spec"].get("ingress", [])):
                ports = {p.get("port") for p in rule.get("ports", [])}
                sources = rule.get("from")
                path = ("spec", "ingress", str(i))
                outside = not sources or any(
                    "ipBlock" in s or ("namespaceSelector" in s and "podSelector" not in s)
                    for s in sources
                )
                if outside and (
                    target.get("app.kubernetes.io/name") != SERVICE
                    or ports != {platform.SERVING_PORT}
                ):
                    self.fail(
                        "NetworkPolicy",
                        name,
                        path,
                        f"open to other namespaces on {sorted(ports)}: only the service's "
                        f"port {platform.SERVING_PORT} may be",
                    )

    def _params(self) -> None:
        from loopline.config import load_params

        cm = self.configmaps.get("loopline-params")
        if cm is None or "params.yaml" not in cm.get("data", {}):
            self.fail(
                "ConfigMap",
                "loopline-params",
                ("data", "params.yaml"),
                "the params ConfigMap must carry params.yaml",
            )
            return
        text = cm["data"]["params.yaml"]
        if text != (self.root / "params.yaml").read_text():
            self.fail(
                "ConfigMap",
                "loopline-params",
                ("data", "params.yaml"),
                "differs from the repository's params.yaml",
            )
        with tempfile.TemporaryDirectory() as folder:
            file = Path(folder) / "params.yaml"
            file.write_text(text)
            load_params(file)  # a wrong key is a clear ConfigError naming it


def _selects(selector: dict[str, str], meta: dict[str, Any]) -> bool:
    labels = meta.get("labels", {})
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _cpus(value: Any) -> float | None:
    if value is None:
        return None
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


@functools.cache
def bentoml_endpoints() -> tuple[str, ...]:
    """The paths BentoML itself serves beside the APIs (its default configuration lists
    them as the ones its access log skips)."""
    import bentoml

    file = Path(bentoml.__file__).parent / "_internal/configuration/v2/default_configuration.yaml"
    config = yaml.safe_load(file.read_text())
    return tuple(config["services"]["logging"]["access"]["skip_paths"])


@functools.cache
def locked_version(package: str) -> str:
    text = (REPO / "uv.lock").read_text()
    match = re.search(rf'^name = "{re.escape(package)}"\nversion = "([^"]+)"', text, re.M)
    if match is None:
        raise LookupError(f"{package} is not in uv.lock")
    return match.group(1)


def check_overlay(overlay: str, **kwargs: Any) -> list[Problem]:
    return KubernetesChecker(overlay, rendered(overlay), **kwargs).check()


# --- compose -----------------------------------------------------------------------------

_REQUIRED_VAR = re.compile(r"^\$\{[A-Z][A-Z0-9_]*:\?[^}]+\}$")
_ANY_VAR = re.compile(r"\$\{[A-Z][A-Z0-9_]*(:[?-][^}]*)?\}")
COMPOSE_LOOPLINE = ("serving", "dashboard", "worker")
COMPOSE_PORTS = {
    "serving": (platform.SERVING_PORT, "--port", "/readyz"),
    "prefect": (platform.PREFECT_PORT, "--port", "/api/health"),
    "dashboard": (platform.DASHBOARD_PORT, "--server.port", "/_stcore/health"),
}


def check_compose(file: Path = COMPOSE, root: Path = REPO) -> list[Problem]:
    """compose.yaml against the code: ports, probes, variables, secrets, the work pool."""
    shown = str(file.relative_to(root)) if file.is_relative_to(root) else str(file)
    data = yaml.safe_load(file.read_text())
    services = data.get("services", {})
    problems: list[Problem] = []

    def fail(service: str, field: str, message: str) -> None:
        problems.append(Problem(shown, f"service {service}", field, message))

    for name in ("postgres", "redis", "prefect", "worker", "serving", "dashboard"):
        if name not in services:
            fail(name, "services", "missing: compose wires every process Loopline runs")
    for name, service in services.items():
        image = str(service.get("image", ""))
        ours = name in COMPOSE_LOOPLINE or "loopline-platform" in image
        env = service.get("environment", {}) or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        for key, value in env.items():
            field = f"environment.{key}"
            if ours or image.startswith("prefecthq/prefect:"):
                unknown = env_is_read(key)
                if unknown:
                    fail(name, field, unknown)
            text = "" if value is None else str(value)
            if key in SECRET_ENV and not _ANY_VAR.search(text):
                fail(name, field, f"{key} is a secret: interpolate it from .env, never inline it")
            if (
                key in SECRET_ENV
                and _ANY_VAR.search(text)
                and not _REQUIRED_VAR.search(_secret_part(text))
            ):
                fail(
                    name,
                    field,
                    f"{key}: use ${{VAR:?message}} so a missing secret stops "
                    "compose before anything starts",
                )
        if ours or image.startswith("prefecthq/prefect:"):
            for key, value in TELEMETRY.items():
                if str(env.get(key)) != value:
                    fail(
                        name,
                        f"environment.{key}",
                        f"telemetry: must be {value!r} (loopline.settings.tool_environment)",
                    )
            if str(service.get("user", "")).split(":")[0] != str(LOOPLINE_UID):
                fail(name, "user", f"run as Loopline's user {LOOPLINE_UID}, not the image's")
        if image.startswith("prefecthq/prefect:"):
            tag = image.split(":", 1)[1]
            if not tag.startswith(locked_version("prefect") + "-"):
                fail(
                    name,
                    "image",
                    f"Prefect {tag} differs from uv.lock's prefect {locked_version('prefect')}",
                )
        for volume in service.get("volumes", []) or []:
            source = str(volume).split(":")[0]
            if source.startswith(".") and not (file.parent / source).resolve().exists():
                fail(name, "volumes", f"{source} does not exist")
        if name in COMPOSE_LOOPLINE:
            state = env.get("LOOPLINE_HOME")
            project = env.get("LOOPLINE_PROJECT")
            targets = {str(v).split(":")[1] for v in service.get("volumes", []) or []}
            if state not in targets:
                fail(name, "volumes", f"the state folder {state} (LOOPLINE_HOME) is no volume")
            if f"{project}/params.yaml" not in targets:
                fail(name, "volumes", f"{project}/params.yaml is not the repository's params.yaml")
    for name, (port, flag, probe) in COMPOSE_PORTS.items():
        service = services.get(name)
        if service is None:
            continue
        command = [str(c) for c in service.get("command", [])]
        if flag not in command or command[command.index(flag) + 1] != str(port):
            fail(name, "command", f"must pass {flag} {port} (loopline.platform)")
        published = [str(p) for p in service.get("ports", [])]
        if not any(p.endswith(f":{port}") for p in published):
            fail(name, "ports", f"{published}, but the code serves on {port}")
        if name != "serving" and not all(p.startswith("127.0.0.1:") for p in published):
            fail(name, "ports", "only the service is published beyond 127.0.0.1")
        test = " ".join(str(t) for t in service.get("healthcheck", {}).get("test", []))
        if f":{port}{probe}" not in test:
            fail(name, "healthcheck.test", f"must probe {probe} on {port}")
    if "serving" in services:
        command = [str(c) for c in services["serving"].get("command", [])]
        if SERVICE_REF not in command:
            fail("serving", "command", f"must serve {SERVICE_REF} (loopline.platform)")
        paths = Paths(Path("/app"), Path("/var/lib/loopline"))
        keys = str(key_store(paths).path)
        targets = [
            s.get("target") for s in services["serving"].get("secrets", []) if isinstance(s, dict)
        ]
        if keys not in targets:
            fail("serving", "secrets", f"the API key file {keys} is not mounted from a secret")
    if "worker" in services:
        command = [str(c) for c in services["worker"].get("command", [])]
        pool = command[command.index("--pool") + 1] if "--pool" in command else None
        if pool != prefect_yaml_pool(root / "prefect.yaml"):
            fail(
                "worker",
                "command",
                f"pool {pool} is not prefect.yaml's {prefect_yaml_pool(root / 'prefect.yaml')}",
            )
    for name, secret in (data.get("secrets") or {}).items():
        if "file" not in secret and "environment" not in secret:
            problems.append(Problem(shown, f"secret {name}", "file", "a secret comes from a file"))
    return problems


def _secret_part(text: str) -> str:
    found = _ANY_VAR.search(text)
    return found.group(0) if found else ""


def prefect_yaml_pool(file: Path) -> str | None:
    if not file.is_file():
        return PROCESS_POOL
    data = yaml.safe_load(file.read_text())
    pools = {d.get("work_pool", {}).get("name") for d in data.get("deployments", [])}
    return pools.pop() if len(pools) == 1 else None


# --- Dockerfile --------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    value: str
    stage: int


def dockerfile(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile (continuations joined, comments dropped)."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, value = whole.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(start, keyword, value.strip(), stage))
    return out


def env_pairs(value: str) -> dict[str, str]:
    """``ENV A=1 B=two`` (or the legacy ``ENV A 1``) as a dict."""
    if "=" not in value.split()[0]:
        key, _, rest = value.partition(" ")
        return {key: rest.strip()}
    pairs = {}
    for token in re.findall(r'(\w+)=("[^"]*"|\S+)', value):
        pairs[token[0]] = token[1].strip('"')
    return pairs


# --- checkov -----------------------------------------------------------------------------

WORKFLOWS = REPO / ".github" / "workflows"


@dataclass(frozen=True)
class CheckovFinding:
    framework: str
    check: str
    name: str
    file: str
    resource: str
    justification: str | None

    def __str__(self) -> str:
        return f"{self.file}: {self.resource}: {self.check} {self.name}"


@functools.cache
def checkov_results() -> tuple[dict[str, list[CheckovFinding]], str]:
    """One checkov run (it takes seconds to start) over everything deploy/ ships: each
    overlay rendered, the flow-run Job, the Dockerfile and the workflows. Returns the
    failed and skipped findings by outcome, and the summary line."""
    with tempfile.TemporaryDirectory(prefix="loopline-checkov-") as folder:
        scan = Path(folder)
        (scan / "k8s").mkdir()
        for overlay in OVERLAYS:
            text = yaml.safe_dump_all(list(rendered(overlay)), sort_keys=False)
            (scan / "k8s" / f"{overlay}.yaml").write_text(text)
        job = flow_run_job(json.loads(JOB_TEMPLATE.read_text()))
        (scan / "k8s" / "flow-run-job.yaml").write_text(yaml.safe_dump(job, sort_keys=False))
        shutil.copy(DOCKERFILE, scan / "Dockerfile")
        shutil.copytree(WORKFLOWS, scan / ".github" / "workflows")
        result = subprocess.run(
            [
                "bash",
                str(REPO / "scripts" / "checkov.sh"),
                "-d",
                str(scan),
                "--framework",
                "kubernetes",
                "dockerfile",
                "github_actions",
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    if result.returncode not in (0, 1) or not result.stdout.strip().startswith(("[", "{")):
        raise RuntimeError(f"checkov did not run ({result.returncode}):\n{result.stderr[-3000:]}")
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    found: dict[str, list[CheckovFinding]] = {"failed": [], "skipped": []}
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    for entry in reports:
        framework = entry.get("check_type", "?")
        summary = entry.get("summary", {})
        for key in totals:
            totals[key] += int(summary.get(key, 0))
        for outcome in ("failed", "skipped"):
            for item in entry.get("results", {}).get(f"{outcome}_checks", []):
                found[outcome].append(
                    CheckovFinding(
                        framework,
                        item["check_id"],
                        item.get("check_name", ""),
                        item.get("file_path", ""),
                        item.get("resource", ""),
                        (item.get("check_result") or {}).get("suppress_comment"),
                    )
                )
    line = ", ".join(f"{count} {key}" for key, count in totals.items())
    return found, line
