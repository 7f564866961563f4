"""deploy/docker, statically (no container engine here): the platform image is built from
uv.lock as a non-root user with nothing secret in it, and compose.yaml wires the same
services, ports and environment names as the code and the Kubernetes manifests."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import pytest
import yaml

from loopline import platform
from tests.deploy import manifests as m

SECRET_WORDS = re.compile(r"KEY|PASSWORD|SECRET|TOKEN|AUTH_STRING|CONNECTION_URL|REGISTRY_URL")


def instructions() -> list[m.Instruction]:
    return m.dockerfile(m.DOCKERFILE.read_text())


def final_stage() -> list[m.Instruction]:
    steps = instructions()
    last = max(i.stage for i in steps)
    return [i for i in steps if i.stage == last]


def test_the_image_is_built_from_the_lock() -> None:
    steps = instructions()
    copies = [i.value for i in steps if i.keyword == "COPY"]
    assert any("uv.lock" in c.split() for c in copies)
    syncs = [i.value for i in steps if i.keyword == "RUN" and "uv sync" in i.value]
    assert syncs and all("--frozen" in s for s in syncs)
    # The uv that uv.lock pins, and the Python that pyproject.toml requires.
    args = {i.value.split("=")[0]: i.value.split("=", 1)[1] for i in steps if i.keyword == "ARG"}
    assert args["UV_VERSION"] == m.locked_version("uv")
    requires = tomllib.loads((m.REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    minor = re.search(r">=3\.(\d+)", requires).group(1)  # type: ignore[union-attr]
    for base in (i.value.split()[0] for i in steps if i.keyword == "FROM"):
        assert base.startswith(f"python:3.{minor}-"), base


def test_the_image_runs_as_loopline_s_user_with_nothing_secret() -> None:
    users = [i.value for i in final_stage() if i.keyword == "USER"]
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) == m.LOOPLINE_UID != 0
    for step in instructions():
        if step.keyword in ("ENV", "ARG"):
            names = m.env_pairs(step.value) if step.keyword == "ENV" else {step.value: ""}
            for name in names:
                assert not SECRET_WORDS.search(name.split("=")[0]), f"line {step.line}: {name}"
        if step.keyword in ("COPY", "ADD"):
            sources = [s for s in step.value.split()[:-1] if not s.startswith("--")]
            assert "." not in sources and "./" not in sources, f"line {step.line} copies all"
            assert not any(".loopline" in s or s.startswith(".env") for s in sources)
    assert not [i for i in instructions() if i.keyword == "ADD"]


def test_every_copied_path_exists() -> None:
    for step in instructions():
        if step.keyword != "COPY" or "--from=" in step.value:
            continue
        for source in [s for s in step.value.split()[:-1] if not s.startswith("--")]:
            assert (m.REPO / source).exists(), f"Dockerfile line {step.line}: {source}"


def test_the_image_environment_matches_the_code_and_the_manifests() -> None:
    env: dict[str, str] = {}
    for step in final_stage():
        if step.keyword == "ENV":
            env.update(m.env_pairs(step.value))
    for key, value in m.TELEMETRY.items():
        assert env.get(key) == value, key
    for key in env:
        assert m.env_is_read(key) is None or key == "PATH", key
    k8s = next(o for o in m.rendered("production") if o["metadata"]["name"] == "loopline-env")
    for key in ("LOOPLINE_HOME", "PREFECT_HOME", "BENTOML_HOME"):
        assert env[key] == k8s["data"][key], key
    exposed = {int(p) for i in final_stage() if i.keyword == "EXPOSE" for p in i.value.split()}
    assert {platform.SERVING_PORT, platform.DASHBOARD_PORT} <= exposed


def test_the_build_context_keeps_state_and_data_out() -> None:
    ignored = (m.DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().split()
    for folder in (".loopline", ".venv", ".git", "data", "artifacts", ".dvc/config.local"):
        assert folder in ignored, folder


def test_the_bento_serves_the_class_the_deployments_serve() -> None:
    bentofile = yaml.safe_load((m.REPO / "bentos" / "bentofile.yaml").read_text())
    assert bentofile["service"] == m.SERVICE_REF


def test_checkov_passes_on_the_dockerfile() -> None:
    found, summary = m.checkov_results()
    assert [str(f) for f in found["failed"] if f.framework == "dockerfile"] == [], summary
    skipped = [f for f in found["skipped"] if f.framework == "dockerfile"]
    assert all(f.justification for f in skipped)


# --- compose -----------------------------------------------------------------------------


def test_compose_agrees_with_the_code() -> None:
    assert m.report(m.check_compose()) == ""


def test_compose_and_kubernetes_run_the_same_things() -> None:
    services = yaml.safe_load(m.COMPOSE.read_text())["services"]
    k8s = {o["metadata"]["name"]: o for o in m.rendered("production") if o["kind"] == "Deployment"}
    pairs = {"serving": m.SERVICE, "dashboard": m.DASHBOARD, "prefect": m.PREFECT}
    for compose_name, k8s_name in pairs.items():
        container = k8s[k8s_name]["spec"]["template"]["spec"]["containers"][0]
        k8s_command = [*container.get("command", []), *container.get("args", [])]
        compose_command = [str(c) for c in services[compose_name]["command"]]
        assert compose_command == k8s_command[: len(compose_command)], compose_name
        if compose_name == "prefect":
            assert services[compose_name]["image"] == container["image"]
    compose_env = services["serving"]["environment"]
    k8s_env = next(o for o in m.rendered("production") if o["metadata"]["name"] == "loopline-env")
    for key in ("LOOPLINE_HOME", "PREFECT_HOME", "BENTOML_HOME"):
        assert compose_env[key] == k8s_env["data"][key], key


@pytest.fixture
def compose_copy(tmp_path: Path) -> Path:
    """compose.yaml where it lives, with the files it mounts, in a scratch repository."""
    shutil.copytree(m.COMPOSE.parent, tmp_path / "deploy" / "docker")
    shutil.copytree(m.REPO / "deploy" / "prometheus", tmp_path / "deploy" / "prometheus")
    for name in ("params.yaml", "prefect.yaml"):
        shutil.copy(m.REPO / name, tmp_path / name)
    return tmp_path / "deploy" / "docker" / "compose.yaml"


def compose_problems(file: Path) -> list[str]:
    return [str(p) for p in m.check_compose(file, root=file.parents[2])]


def edit(file: Path, old: str, new: str) -> None:
    text = file.read_text()
    assert old in text, old
    file.write_text(text.replace(old, new, 1))


def test_compose_port_drift_is_named(compose_copy: Path) -> None:
    edit(compose_copy, '"127.0.0.1:8501:8501"', '"127.0.0.1:8502:8502"')
    found = compose_problems(compose_copy)
    assert any(
        p.startswith("deploy/docker/compose.yaml: service dashboard: ports: ")
        and f"the code serves on {platform.DASHBOARD_PORT}" in p
        for p in found
    ), found


def test_compose_inlined_secret_is_named(compose_copy: Path) -> None:
    edit(
        compose_copy,
        "  LOOPLINE_PSEUDONYM_KEY: ${LOOPLINE_PSEUDONYM_KEY:?set LOOPLINE_PSEUDONYM_KEY in "
        "deploy/docker/.env}",
        "  LOOPLINE_PSEUDONYM_KEY: " + "ab" * 32,
    )
    found = compose_problems(compose_copy)
    assert any(
        "deploy/docker/compose.yaml: service serving: environment.LOOPLINE_PSEUDONYM_KEY: " in p
        and "never inline" in p
        for p in found
    ), found


def test_compose_optional_secret_is_named(compose_copy: Path) -> None:
    edit(
        compose_copy,
        "LOOPLINE_MASTER_KEY: ${LOOPLINE_MASTER_KEY:?set LOOPLINE_MASTER_KEY in "
        "deploy/docker/.env}",
        "LOOPLINE_MASTER_KEY: ${LOOPLINE_MASTER_KEY:-}",
    )
    found = compose_problems(compose_copy)
    assert any(
        "service worker: environment.LOOPLINE_MASTER_KEY: " in p and ":?message" in p for p in found
    ), found


def test_compose_env_drift_is_named(compose_copy: Path) -> None:
    edit(compose_copy, "      LOOPLINE_SERVING_WORKERS:", "      LOOPLINE_WORKERS:")
    found = compose_problems(compose_copy)
    assert any(
        "service serving: environment.LOOPLINE_WORKERS: " in p and "not read anywhere" in p
        for p in found
    ), found
