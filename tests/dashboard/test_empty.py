"""Before anything has run, every page says so plainly and names the command that fills it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.conftest import texts
from tests.dashboard.seeding import make_project

EXPECTED = {
    "overview": ["No model versions yet: run `loopline run` or `make up`", "`loopline monitor`"],
    "runs": ["No training runs yet: run `make demo` (or `loopline run`)"],
    "compare": ["No champion yet: promote a version (`make demo` does) to compare"],
    "models": ["No model versions yet: run `loopline run` or `make up`"],
    "drift": ["No monitoring windows yet: run `loopline monitor`"],
    "lineage": ["No model versions yet: run `loopline run` or `make up`"],
    "data": ["No accepted data batch yet: run `loopline ingest`", "No data versions recorded yet"],
}


@pytest.mark.parametrize("page", list(EXPECTED))
def test_empty_pages_say_what_creates_their_data(on_empty: Path, dashboard: Any, page: str) -> None:
    app = dashboard(page=page)
    notes = " ".join(texts(app, "info"))
    for expected in EXPECTED[page]:
        assert expected in notes
    assert not texts(app, "error")
    assert not app.get("vega_lite_chart")


def test_without_users_the_login_page_says_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dashboard: Any
) -> None:
    project = make_project(tmp_path / "nobody")
    monkeypatch.setenv("LOOPLINE_PROJECT", str(project))
    monkeypatch.setenv("LOOPLINE_HOME", str(project / ".loopline"))
    app = dashboard(user=None)
    assert "loopline users add NAME --role operator" in " ".join(texts(app, "info"))
    assert not app.text_input  # no login form to fill


def test_a_removed_user_is_logged_out(on_empty: Path, dashboard: Any) -> None:
    app = dashboard(user="ghost", page=None)
    assert app.title[0].value == "Loopline"  # back on the login page
    assert "loopline_user" not in app.session_state
