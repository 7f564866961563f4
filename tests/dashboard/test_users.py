"""The dashboard's user store and the ``loopline users`` commands."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loopline.cli.users import users_app
from loopline.users import Role, User, UserStore, UserStoreError, check_password, hash_password


@pytest.fixture
def store(tmp_path: Path) -> UserStore:
    return UserStore(tmp_path / "auth" / "users.json")


def test_passwords_are_salted_scrypt_hashes_never_plain_text(store: UserStore) -> None:
    store.add("olivia", "operator", "correct horse")
    store.add("victor", Role.VIEWER, "correct horse")
    text = store.path.read_text()
    assert "correct horse" not in text
    hashes = [u["password"] for u in json.loads(text)["users"]]
    assert all(h.startswith("scrypt$") for h in hashes)
    assert hashes[0] != hashes[1]  # same password, different salts
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_verify_returns_the_user_only_for_the_right_password(store: UserStore) -> None:
    store.add("olivia", "operator", "correct horse")
    assert store.verify("olivia", "correct horse") == User("olivia", Role.OPERATOR)
    assert store.verify("olivia", "wrong horse") is None
    assert store.verify("nobody", "correct horse") is None
    assert store.verify("olivia", "x" * 5000) is None


def test_roles_decide_who_may_act(store: UserStore) -> None:
    store.add("olivia", "operator", "correct horse")
    store.add("victor", "viewer", "correct horse")
    assert store.lookup("olivia").can_act  # type: ignore[union-attr]
    assert not store.lookup("victor").can_act  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "role", "password", "message"),
    [
        ("Bad Name", "viewer", "long enough", "bad user name"),
        ("olivia", "admin", "long enough", "bad role"),
        ("olivia", "viewer", "short", "too short"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    store: UserStore, name: str, role: str, password: str, message: str
) -> None:
    with pytest.raises(UserStoreError, match=message):
        store.add(name, role, password)
    assert store.users() == []


def test_a_name_is_added_once_and_removal_logs_the_user_out(store: UserStore) -> None:
    store.add("olivia", "operator", "correct horse")
    with pytest.raises(UserStoreError, match="already exists"):
        store.add("olivia", "viewer", "another one")
    store.remove("olivia")
    assert store.lookup("olivia") is None
    with pytest.raises(UserStoreError, match="no user"):
        store.remove("olivia")


def test_a_corrupt_file_is_a_clear_error(store: UserStore) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{not json")
    with pytest.raises(UserStoreError, match="cannot read the user file"):
        store.users()


def test_hash_format_round_trips_and_rejects_garbage() -> None:
    stored = hash_password("s3cret-pass")
    assert check_password("s3cret-pass", stored)
    assert not check_password("s3cret-pass", "md5$abc")
    assert not check_password("s3cret-pass", "scrypt$x$y$z$a$b")


def test_cli_adds_lists_and_removes_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text("{}\n")
    monkeypatch.setenv("LOOPLINE_PROJECT", str(project))
    monkeypatch.setenv("LOOPLINE_HOME", str(project / ".loopline"))
    runner = CliRunner()
    added = runner.invoke(
        users_app, ["add", "olivia", "--role", "operator", "--password", "pw-123456"]
    )
    assert added.exit_code == 0, added.output
    prompted = runner.invoke(users_app, ["add", "victor"], input="pw-abcdefg\npw-abcdefg\n")
    assert prompted.exit_code == 0, prompted.output
    listed = runner.invoke(users_app, ["list"])
    assert "olivia" in listed.output and "operator" in listed.output
    assert "victor" in listed.output and "viewer" in listed.output
    refused = runner.invoke(users_app, ["add", "olivia", "--password", "pw-123456"])
    assert refused.exit_code == 1 and "already exists" in refused.output
    assert runner.invoke(users_app, ["remove", "victor"]).exit_code == 0
    assert UserStore(project / ".loopline" / "auth" / "users.json").verify("olivia", "pw-123456")


def test_make_up_makes_one_local_operator_login_and_shows_it_once(tmp_path: Path) -> None:
    from loopline.platform import login_line
    from loopline.settings import Paths
    from loopline.users import local_operator, user_store, users_file

    paths = Paths(tmp_path, tmp_path / ".loopline")
    made = local_operator(paths)
    assert made is not None
    name, password = made
    assert name == "operator" and password is not None and len(password) >= 24
    saved = paths.state / "auth" / "dev-login.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    user = user_store(paths).verify(name, password)
    assert user is not None and user.can_act
    assert password not in users_file(paths).read_text()  # the user file holds its hash
    assert password in login_line(paths, made)
    again = local_operator(paths)
    assert again == ("operator", None) and password not in login_line(paths, again)
    assert str(saved) in login_line(paths, again)


def test_a_project_with_users_of_its_own_gets_no_local_login(tmp_path: Path) -> None:
    from loopline.settings import Paths
    from loopline.users import local_operator, user_store

    paths = Paths(tmp_path, tmp_path / ".loopline")
    user_store(paths).add("olivia", "operator", "a long password")
    assert local_operator(paths) is None
    assert [u.name for u in user_store(paths).users()] == ["olivia"]
    assert not (paths.state / "auth" / "dev-login.json").exists()
