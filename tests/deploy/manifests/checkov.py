"""One checkov run over everything deploy/ ships, and its findings."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.deploy.manifests.common import DOCKERFILE, JOB_TEMPLATE, OVERLAYS, REPO
from tests.deploy.manifests.rendering import flow_run_job, rendered

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
