"""A viewer cannot act through the dashboard, whatever their session sends.

Streamlit keeps session state on the server; what a browser controls is which widgets it
says it touched. So the attacks are: a viewer's session sending an operator form's
widget values (the action, the reason) as if the form were there, and an operator
demoted to viewer while their page is still open submitting the form they see. Both must
start no run and change nothing: the role is read from the user file on every rerun, and
the action itself checks it again (loaders.start_action).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loaders import actions, common
from loopline.users import Role, User, user_store
from tests.dashboard.conftest import APP, PAGES, _point_at, texts
from tests.dashboard.seeding import PASSWORDS, Seeded, make_project, seed

pytestmark = pytest.mark.e2e
VIEWER_NOTE = "signed in as a viewer"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    root = make_project(tmp_path_factory.mktemp("session") / "project")
    return seed(root, runs=5, versions=16, windows=20, predictions=100)


@pytest.fixture
def on_small(small: Seeded, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    import streamlit as st

    _point_at(monkeypatch, small.project)
    yield small
    st.cache_data.clear()


def models_page(user: str) -> Any:
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(APP), default_timeout=120)
    app.session_state["loopline_user"] = user
    app.run()
    app.switch_page(PAGES["models"]).run()
    assert not app.exception, app.exception[0].value if app.exception else None
    return app


def _history(seeded: Seeded) -> int:
    from loopline.registry import RegistryView

    return len(RegistryView(seeded.registry_url).history())


def test_a_viewer_session_sending_an_operator_form_starts_nothing(on_small: Seeded) -> None:
    before = _history(on_small)
    app = models_page("victor")
    assert any(VIEWER_NOTE in note for note in texts(app, "info"))
    # What a crafted websocket message could claim: the action picked, a reason typed.
    app.session_state["models_action"] = "Promote"
    app.session_state["reason_promote"] = "forged"
    app.run()
    assert not app.exception
    assert not [b for b in app.button if b.label == "Promote"]
    assert "started_runs" not in app.session_state
    assert _history(on_small) == before
    with pytest.raises(PermissionError, match="only operators can act"):
        actions.start_action(User("victor", Role.VIEWER), "promote", "forged", version="v1")


def test_an_operator_demoted_while_the_page_is_open_cannot_submit(
    on_small: Seeded, tmp_path: Path
) -> None:
    before = _history(on_small)
    app = models_page("olivia")
    [button] = [b for b in app.button if b.label == "Promote"]
    store = user_store(common.paths())
    store.remove("olivia")
    store.add("olivia", "viewer", PASSWORDS["olivia"])
    try:
        app.text_input(key="reason_promote").input("still open")
        button.click().run()
        assert not app.exception
        assert any(VIEWER_NOTE in note for note in texts(app, "info"))
        # Had the old role been trusted, the action would have gone on to look for Prefect.
        assert not [e for e in texts(app, "error") if "Prefect" in e]
        assert "started_runs" not in app.session_state
        assert _history(on_small) == before
    finally:
        store.remove("olivia")
        store.add("olivia", "operator", PASSWORDS["olivia"])
