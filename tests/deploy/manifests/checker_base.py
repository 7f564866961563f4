"""The frame of the Kubernetes checker: the workloads among the rendered objects, where
their variables come from, and how a problem is pinned to its file, object and field."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.deploy.manifests.common import FLOW_RUN, JOB_TEMPLATE, K8S, REPO, Problem
from tests.deploy.manifests.rendering import flow_run_job
from tests.deploy.manifests.sources import Sources, dotted

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


def _selects(selector: dict[str, str], meta: dict[str, Any]) -> bool:
    labels = meta.get("labels", {})
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _cpus(value: Any) -> float | None:
    if value is None:
        return None
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


class CheckerBase:
    """What every part of :class:`~tests.deploy.manifests.kubernetes.KubernetesChecker`
    shares: the overlay's objects, the flow-run Job, and where a problem is reported."""

    configmaps: dict[str, dict[str, Any]]  # set by KubernetesChecker._check

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

    def _workload_key(self, workload: Workload) -> str:
        return FLOW_RUN if workload.kind == "Job" else workload.name
