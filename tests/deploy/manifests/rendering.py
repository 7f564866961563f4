"""Rendering deploy/ as the platform does: ``kubectl kustomize`` an overlay, and the Job
Prefect's Kubernetes worker makes from the work pool's base job template."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.manifests.common import K8S

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
