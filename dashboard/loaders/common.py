"""Where the dashboard reads, its shared connections, the page list and small helpers."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from loopline.settings import PROJECT_ENV, STATE_ENV, Paths
from loopline.users import User

try:  # Prefect's own JSON parser: three times faster on 10,000 windows of feature scores
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads  # type: ignore[assignment]

if TYPE_CHECKING:
    import httpx

    from loopline.config import Params
    from loopline.registry import Registry
    from loopline.tracking import Store

SERVING_URL_ENV = "LOOPLINE_SERVING_URL"
DEFAULT_SERVING_URL = "http://127.0.0.1:3000"
MAX_CHART_BINS = 120
# The dashboard's pages: script (relative to dashboard/), title, icon. app.py builds its
# navigation from this; tests and the benchmark visit every page through it.
PAGES = [
    ("pages/overview.py", "Overview", ":material/dashboard:"),
    ("pages/runs.py", "Runs", ":material/science:"),
    ("pages/models.py", "Models and promotions", ":material/rocket_launch:"),
    ("pages/compare.py", "Compare models", ":material/compare_arrows:"),
    ("pages/drift.py", "Drift and quality", ":material/monitoring:"),
    ("pages/lineage.py", "Lineage", ":material/account_tree:"),
    ("pages/data.py", "Data", ":material/database:"),
]


def page_scripts() -> dict[str, str]:
    """Each page's script by short name (``overview`` → ``pages/overview.py``)."""
    return {Path(script).stem: script for script, _, _ in PAGES}


# --- where to read -----------------------------------------------------------------------


def paths() -> Paths:
    """The project and state folders (activated once per distinct environment)."""
    return _activate(os.environ.get(PROJECT_ENV, ""), os.environ.get(STATE_ENV, ""))


@st.cache_resource(show_spinner=False)
def _activate(project: str, state: str) -> Paths:
    from loopline.settings import activate

    return activate(Path(project) if project else None)


WARM_IMPORTS = (
    "pandas",
    "pyarrow.parquet",
    "altair",
    "duckdb",
    "sqlalchemy",
    "alembic.command",
    "sklearn.metrics",
    "prometheus_client.parser",
    "loopline.registry",
    "loopline.lineage",
    "loopline.serving.predlog_read",
)
PREFECT_IMPORTS = ("prefect.client.orchestration", "prefect.client.schemas.filters")


@st.cache_resource(show_spinner=False)
def warm_up(registry_url: str, prefect: bool) -> threading.Thread:
    """Pay the slow imports and the registry migration in the background, once per server.

    Cold imports of pandas, Altair, SQLAlchemy, scikit-learn (and Prefect's client, when
    a Prefect API is set) cost seconds; paid while the first user is still typing a
    password, no page has to pay them.
    """
    import importlib

    modules = WARM_IMPORTS + (PREFECT_IMPORTS if prefect else ())

    def imports() -> None:
        for module in modules:
            try:
                importlib.import_module(module)
            except Exception:  # a page importing it will report the real error
                continue
        try:
            from loopline.registry import Registry

            with Registry(registry_url) as warmed:  # the migration, if one is due
                warmed.upgrade()
        except Exception:  # the pages report an unreachable registry themselves
            return

    thread = threading.Thread(target=imports, name="dashboard-warm-up", daemon=True)
    thread.start()
    return thread


@st.cache_data(ttl=60, show_spinner=False)
def params(params_file: str) -> Params:
    from loopline.config import load_params

    return load_params(Path(params_file))


def serving_url() -> str:
    return os.environ.get(SERVING_URL_ENV, DEFAULT_SERVING_URL).rstrip("/")


def prefect_api() -> str | None:
    """The Prefect API the dashboard reads runs from and starts actions on, if configured."""
    return os.environ.get("PREFECT_API_URL") or None


@st.cache_resource(show_spinner=False)
def http() -> httpx.Client:
    """One HTTP client for the service and Prefect probes (a new one costs ~0.1 s of TLS setup)."""
    import httpx

    return httpx.Client(timeout=1.5)


@st.cache_resource(show_spinner=False)
def registry_at(url: str) -> Registry:
    """One registry connection pool per URL, migrated once (it creates nothing else)."""
    from loopline.registry import Registry

    opened = Registry(url)
    opened.upgrade()
    return opened


@st.cache_resource(show_spinner=False)
def store_at(url: str) -> Store:
    """The tracking store (runs, candidates, windows) at ``url``, migrated once."""
    from loopline.tracking import Store

    return Store(url).migrate()


def json_value(value: Any) -> Any:
    """A JSON column's value: SQLite hands it back as text, PostgreSQL's driver decoded."""
    return _loads(value) if isinstance(value, str | bytes) else value


# --- small helpers pages share -----------------------------------------------------------


def report_path(reports: Path, stored: str | None) -> Path | None:
    """A window's Evidently HTML report, only if it is a file inside the reports folder."""
    if not stored:
        return None
    path = Path(stored)
    path = path if path.is_absolute() else reports / path
    try:
        resolved = path.resolve()
        resolved.relative_to(reports.resolve())
    except (OSError, ValueError):
        return None
    return resolved if resolved.is_file() else None


def since_label(moment: datetime | None, now: datetime | None = None) -> str:
    """``3 h ago`` style text for a timestamp."""
    if moment is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def window_start(choice: str, now: datetime | None = None) -> datetime | None:
    """The start of a named period (``24 h``, ``7 d``, ``30 d``, ``all``)."""
    spans = {"24 h": timedelta(days=1), "7 d": timedelta(days=7), "30 d": timedelta(days=30)}
    return None if choice not in spans else (now or datetime.now(UTC)) - spans[choice]


# --- who is logged in --------------------------------------------------------------------

USER_KEY = "loopline_user"


def current_user() -> User | None:
    """The logged-in user as the user file says now (a removed user is logged out)."""
    from loopline.users import user_store

    name = st.session_state.get(USER_KEY)
    if not name:
        return None
    user = user_store(paths()).lookup(str(name))
    if user is None:
        st.session_state.pop(USER_KEY, None)
    return user


def empty(what: str, command: str) -> None:
    """The plain 'nothing yet' message every page shows, naming the command that fills it."""
    st.info(f"{what}: {command}", icon=":material/info:")
