"""deploy/docker/: compose.yaml checked against the code, and the Dockerfile parsed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from loopline import platform
from loopline.serving.auth import key_store
from loopline.settings import Paths
from tests.deploy.manifests.common import (
    COMPOSE,
    LOOPLINE_UID,
    PROCESS_POOL,
    REPO,
    SECRET_ENV,
    SERVICE_REF,
    TELEMETRY,
    Problem,
)
from tests.deploy.manifests.reads import env_is_read, locked_version

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
