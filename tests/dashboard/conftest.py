"""Fixtures for the dashboard tests: a seeded state, an empty one, and a logged-in AppTest."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loaders.common import page_scripts
from tests.dashboard.seeding import PASSWORDS, Seeded, make_project, seed

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PAGES = page_scripts()


def closed_port() -> int:
    """A local port nothing listens on (the service is 'down')."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """1,000 runs, 200 versions and 10,000 drift windows, seeded once per session."""
    return seed(tmp_path_factory.mktemp("dashboard") / "seeded")


@pytest.fixture(scope="session")
def empty_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with its params and dashboard users, and nothing else yet."""
    from loopline.settings import Paths
    from loopline.users import user_store

    root = make_project(tmp_path_factory.mktemp("dashboard") / "empty")
    store = user_store(Paths(root, root / ".loopline"))
    store.add("olivia", "operator", PASSWORDS["olivia"])
    store.add("victor", "viewer", PASSWORDS["victor"])
    return root


def _point_at(monkeypatch: pytest.MonkeyPatch, project: Path) -> None:
    import streamlit as st

    monkeypatch.setenv("LOOPLINE_PROJECT", str(project))
    monkeypatch.setenv("LOOPLINE_HOME", str(project / ".loopline"))
    monkeypatch.setenv("LOOPLINE_SERVING_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("LOOPLINE_REGISTRY_URL", raising=False)
    st.cache_data.clear()


@pytest.fixture
def on_seeded(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    """The dashboard pointed at the seeded state (service and Prefect down)."""
    _point_at(monkeypatch, seeded.project)
    yield seeded
    import streamlit as st

    st.cache_data.clear()


@pytest.fixture
def on_empty(empty_project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    _point_at(monkeypatch, empty_project)
    yield empty_project
    import streamlit as st

    st.cache_data.clear()


@pytest.fixture
def dashboard() -> Callable[..., Any]:
    """``dashboard(user, page)``: an AppTest logged in as ``user`` showing ``page``."""
    from streamlit.testing.v1 import AppTest

    def open_page(user: str | None = "olivia", page: str | None = None) -> Any:
        app = AppTest.from_file(str(APP), default_timeout=120)
        if user is not None:
            app.session_state["loopline_user"] = user
        app.run()
        if page is not None:
            app.switch_page(PAGES[page]).run()
        assert not app.exception, app.exception[0].value if app.exception else None
        return app

    return open_page


def texts(app: Any, kind: str) -> list[str]:
    """Every value of one element kind (info, caption, error, ...) as text."""
    return [str(element.value) for element in getattr(app, kind)]


def metrics(app: Any) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def charts(app: Any) -> list[dict[str, Any]]:
    """Vega-Lite specs of every Altair chart on the page, datasets inlined by name."""
    import json

    specs = []
    for chart in app.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        spec["_datasets"] = {d.name: d for d in chart.proto.datasets}
        specs.append(spec)
    return specs
