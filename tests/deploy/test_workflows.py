"""The GitHub Actions workflows, offline: GitHub's schema and shellcheck pass, checkov finds
nothing, every
change runs lint, tests and the pipeline with its gates, and main promotes only through
Loopline's own command."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import manifests as m

CI = m.WORKFLOWS / "ci.yaml"
RELEASE = m.WORKFLOWS / "release.yaml"


BIN = m.REPO / ".venv" / "bin"
# An expression GitHub fills in before the shell runs: a plain word to shellcheck.
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


def workflow_problems(file: Path) -> list[str]:
    """What is wrong with a workflow file, each naming the file and where: GitHub's workflow
    schema (check-jsonschema's vendored copy, offline), jobs that need a job that is not
    there, and shellcheck on every ``run:`` script (both tools from the dev group)."""
    schema = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    problems = [] if schema.returncode == 0 else [f"{file}: {schema.stdout}{schema.stderr}"]
    data = workflow(file)
    for name, job in data.get("jobs", {}).items():
        needs = job.get("needs", [])
        for needed in [needs] if isinstance(needs, str) else needs:
            if needed not in data["jobs"]:
                problems.append(f"{file}: jobs.{name}.needs names no job {needed!r}")
        for n, step in enumerate(job.get("steps", [])):
            if "run" in step and step.get("shell", "bash") == "bash":
                problems += _shellcheck(file, f"jobs.{name}.steps[{n}].run", step["run"])
    return problems


def _shellcheck(file: Path, where: str, script: str) -> list[str]:
    checked = subprocess.run(
        [str(BIN / "shellcheck"), "--shell=bash", "--format=gcc", "-"],
        input=EXPRESSION.sub("EXPR", script),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return [f"{file}: {where}: {line}" for line in checked.stdout.splitlines()]


def workflow(file: Path) -> dict[Any, Any]:
    return yaml.safe_load(file.read_text())


def run_lines(data: dict[Any, Any]) -> list[str]:
    lines = []
    for job in data["jobs"].values():
        for step in job.get("steps", []):
            lines += step.get("run", "").splitlines()
    return lines


def test_the_workflows_pass_the_schema_and_shellcheck() -> None:
    files = sorted(m.WORKFLOWS.glob("*.yaml"))
    assert files
    assert [p for f in files for p in workflow_problems(f)] == []


def test_a_sloppy_run_script_is_named_with_its_step(tmp_path: Path) -> None:
    sloppy = tmp_path / "sloppy.yaml"
    sloppy.write_text(CI.read_text().replace("run: make lint", "run: make $TARGET lint"))
    problems = workflow_problems(sloppy)
    assert problems and all(str(sloppy) in p for p in problems)
    assert any(".run:" in p and "SC2086" in p for p in problems), problems


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (("runs-on: ubuntu-24.04", "runs-on: ubuntu-24.04\n    needs: nope"), "needs names no job"),
        (("runs-on: ubuntu-24.04", "runs-on: ubuntu-24.04\n    timeout-minutes: soon"), "timeout"),
    ],
    ids=["unknown-needs", "schema"],
)
def test_a_broken_workflow_names_the_file_and_the_field(
    tmp_path: Path, change: tuple[str, str], named: str
) -> None:
    broken = tmp_path / "ci.yaml"
    broken.write_text(CI.read_text().replace(*change, 1))
    problems = workflow_problems(broken)
    assert problems and all(str(broken) in p for p in problems)
    assert any(named in p for p in problems), problems


def test_every_change_runs_lint_tests_and_the_gated_pipeline() -> None:
    data = workflow(CI)
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "pull_request" in triggers and "push" in triggers
    lines = run_lines(data)
    for command in ("make lint", "make test", "dvc repro", "loopline models promote"):
        assert any(command in line for line in lines), command
    assert data["permissions"] == {"contents": "read"}


def test_main_promotes_only_through_loopline() -> None:
    data = workflow(RELEASE)
    triggers = data.get("on", data.get(True))
    assert triggers["workflow_run"]["workflows"] == ["ci"]
    assert triggers["workflow_run"]["branches"] == ["main"]
    text = RELEASE.read_text()
    assert "loopline models promote" in text
    # Never the registry's tables or database directly.
    for forbidden in ("psql", "sqlite3", "INSERT ", "UPDATE ", "Registry(", "registry.db"):
        assert forbidden not in text, forbidden
    for job in data["jobs"].values():
        if any("kubectl" in s.get("run", "") for s in job.get("steps", [])):
            assert job.get("environment") == "production"
    assert "--load-restrictor LoadRestrictionsNone" in text


@pytest.mark.parametrize("file", [CI, RELEASE], ids=lambda f: f.name)
def test_files_the_workflows_name_exist(file: Path) -> None:
    text = file.read_text()
    for path in sorted(
        set(re.findall(r"(?<![\w/])(?:deploy|scripts|tools)/[\w.-]+/[\w./-]*\w", text))
    ):
        assert (m.REPO / path).exists(), f"{file.name} names {path}"
    makefile = (m.REPO / "Makefile").read_text()
    for target in set(re.findall(r"\bmake (\w+)", text)):
        assert re.search(rf"^{target}:", makefile, re.M), f"{file.name}: make {target}"


def test_checkov_passes_on_the_workflows() -> None:
    found, summary = m.checkov_results()
    assert [str(f) for f in found["failed"] if f.framework == "github_actions"] == [], summary


def test_the_release_pins_every_image_to_a_digest(tmp_path: Path) -> None:
    """The release step's own script, run on a copy: every rendered image is a digest."""
    steps = workflow(RELEASE)["jobs"]["deploy"]["steps"]
    script = next(s["run"] for s in steps if s.get("name") == "Apply the production overlay")
    program = script.split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    shutil.copytree(m.K8S, tmp_path / "deploy" / "k8s")
    shutil.copy(m.REPO / "params.yaml", tmp_path / "params.yaml")
    digests = [f"sha256:{c * 64}" for c in "abc"]
    subprocess.run(
        [sys.executable, "-", "registry.example.org/loopline/platform", *digests],
        input=program,
        text=True,
        cwd=tmp_path,
        check=True,
        timeout=60,
    )
    objects = m.render(tmp_path / "deploy" / "k8s" / "overlays" / "production")
    images = {
        c["image"]
        for o in objects
        if o["kind"] == "Deployment"
        for group in ("initContainers", "containers")
        for c in o["spec"]["template"]["spec"].get(group, [])
    }
    assert images == {
        f"registry.example.org/loopline/platform@{digests[0]}",
        f"prefecthq/prefect@{digests[1]}",
        f"prefecthq/prefect@{digests[2]}",
    }
