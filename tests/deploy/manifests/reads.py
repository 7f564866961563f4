"""What the code reads: the environment names of src/, bentos/, flows/ and dashboard/, the
settings of the tools the containers run, BentoML's own endpoints and uv.lock's versions."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import yaml

from loopline.settings import Paths, tool_environment
from tests.deploy.manifests.common import REPO, TELEMETRY, THIRD_PARTY_ENV

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
