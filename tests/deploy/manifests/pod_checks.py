"""The Kubernetes checker's pod checks: security contexts, resources, volumes, where each
variable comes from, telemetry, images, and the mounts Loopline's containers need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopline.serving.auth import key_store
from loopline.serving.tls import TLS_CERTFILE_ENV, TLS_KEYFILE_ENV
from loopline.settings import Paths
from tests.deploy.manifests.checker_base import CheckerBase, Workload, _by_kind, container_env
from tests.deploy.manifests.common import (
    LOOPLINE_WORKLOADS,
    REQUIRED_SECRET_ENV,
    SECRET_ENV,
    SERVICE,
    TELEMETRY,
)
from tests.deploy.manifests.reads import env_is_read, locked_version


class PodChecks(CheckerBase):
    """Each workload's pod and containers, and the objects they refer to."""

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
