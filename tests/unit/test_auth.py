"""API keys on real files: the store, the per-request check, the middleware and the CLI."""

from __future__ import annotations

import json
import stat
import threading
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from typer.testing import CliRunner

from loopline.cli.keys import keys_app, parse_duration
from loopline.serving.auth import (
    ApiKeyMiddleware,
    Forbidden,
    KeyStore,
    KeyStoreError,
    Role,
    Unauthorized,
    authorize,
)


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "auth" / "keys.json")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_created_key_authenticates_with_its_role(store: KeyStore) -> None:
    key = store.create("web-app", Role.CLIENT)

    info = store.authenticate(key)

    assert key.startswith("ll_client_") and len(key) > 40
    assert info is not None and (info.name, info.role, info.active) == ("web-app", "client", True)
    assert store.authenticate(key + "x") is None
    assert store.authenticate("") is None


def test_a_revoked_key_gets_401(store: KeyStore) -> None:
    key = store.create("web-app", "client")
    assert authorize(store, bearer(key), Role.CLIENT).name == "web-app"

    store.revoke("web-app")

    assert store.authenticate(key) is None
    with pytest.raises(Unauthorized, match="invalid or revoked API key") as caught:
        authorize(store, bearer(key), Role.CLIENT)
    assert caught.value.error_code == HTTPStatus.UNAUTHORIZED
    assert key not in str(caught.value)


def test_a_client_key_is_forbidden_where_admin_is_needed(store: KeyStore) -> None:
    key = store.create("web-app", "client")

    with pytest.raises(Forbidden) as caught:
        authorize(store, bearer(key), Role.ADMIN)

    assert caught.value.error_code == HTTPStatus.FORBIDDEN
    assert str(caught.value) == "key 'web-app' has role client; this needs admin"


def test_an_admin_key_may_do_what_a_client_may(store: KeyStore) -> None:
    key = store.create("ops", "admin")

    assert key.startswith("ll_admin_")
    assert authorize(store, {"x-api-key": key}, Role.CLIENT).role is Role.ADMIN
    assert authorize(store, {"authorization": f"bearer {key}"}, Role.ADMIN).name == "ops"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic dXNlcjpwYXNz"}]
)
def test_no_key_gets_401_saying_how_to_send_one(store: KeyStore, headers: dict[str, str]) -> None:
    store.create("web-app", "client")

    with pytest.raises(Unauthorized) as caught:
        authorize(store, headers, Role.CLIENT)

    assert str(caught.value) == "missing API key: send 'Authorization: Bearer <key>'"


def test_the_file_holds_hashes_only_and_only_its_owner_may_read_it(store: KeyStore) -> None:
    key = store.create("web-app", "client")
    store.create("ops", "admin")

    text = store.path.read_text()

    assert key not in text
    assert key.removeprefix("ll_client_") not in text
    assert {entry["name"] for entry in json.loads(text)["keys"]} == {"web-app", "ops"}
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert [p.name for p in store.path.parent.iterdir() if p.suffix == ".tmp"] == []


def test_a_revoke_by_another_process_takes_effect_on_the_next_request(store: KeyStore) -> None:
    key = store.create("web-app", "client")
    assert store.authenticate(key) is not None  # the service has cached the file
    cli = KeyStore(store.path)

    cli.revoke("web-app")
    assert store.authenticate(key) is None

    fresh = cli.create("web-app", "client")
    assert store.authenticate(fresh) is not None


def test_an_unchanged_file_is_not_read_again(
    store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = store.create("web-app", "client")
    store.authenticate(key)
    reads = 0
    original = KeyStore._read

    def counting(self: KeyStore) -> Any:
        nonlocal reads
        reads += 1
        return original(self)

    monkeypatch.setattr(KeyStore, "_read", counting)
    for _ in range(5):
        assert store.authenticate(key) is not None

    assert reads == 0


def test_names_are_unique_among_active_keys(store: KeyStore) -> None:
    store.create("web-app", "client")

    with pytest.raises(KeyStoreError, match="active key named 'web-app' already exists"):
        store.create("web-app", "admin")
    store.revoke("web-app")
    store.create("web-app", "admin")

    assert [(k.name, k.role, k.active) for k in store.list()] == [
        ("web-app", "client", False),
        ("web-app", "admin", True),
    ]


@pytest.mark.parametrize("name", ["", "Web", "-lead", "has space", "a/b", "x" * 65, "ключ"])
def test_bad_names_are_refused(store: KeyStore, name: str) -> None:
    with pytest.raises(KeyStoreError, match="bad key name"):
        store.create(name, "client")


def test_bad_role_and_unknown_or_revoked_names_are_refused(store: KeyStore) -> None:
    with pytest.raises(KeyStoreError, match="bad role 'root'"):
        store.create("web-app", "root")
    with pytest.raises(KeyStoreError, match="no key named 'ghost'"):
        store.revoke("ghost")
    store.create("web-app", "client")
    store.revoke("web-app")
    with pytest.raises(KeyStoreError, match="already revoked"):
        store.revoke("web-app")


def test_a_damaged_file_is_an_error_not_an_empty_store(store: KeyStore) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_text('{"keys": [{"name": "x"}]}')

    with pytest.raises(KeyStoreError, match="not a Loopline key file"):
        store.authenticate("ll_client_anything")


def test_no_file_means_no_key_is_valid(store: KeyStore) -> None:
    assert store.list() == []
    with pytest.raises(Unauthorized, match="invalid or revoked"):
        authorize(store, bearer("ll_client_guess"), Role.CLIENT)


def test_concurrent_creates_lose_no_key(store: KeyStore) -> None:
    keys: dict[str, str] = {}

    def create(name: str) -> None:
        keys[name] = KeyStore(store.path).create(name, "client")

    threads = [threading.Thread(target=create, args=(f"client-{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert {k.name for k in store.list()} == set(keys)
    assert all(store.authenticate(key) is not None for key in keys.values())


def test_the_middleware_answers_401_and_403_with_the_reason(store: KeyStore) -> None:
    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse({"name": request.state.api_key.name})

    app = Starlette(routes=[Route(p, whoami, methods=["POST"]) for p in ("/predict", "/reload")])
    app.add_middleware(
        ApiKeyMiddleware, routes={"/predict": Role.CLIENT, "/reload": Role.ADMIN}, store=store
    )
    app.add_route("/healthz", lambda request: JSONResponse({"ok": True}))
    client_key = store.create("web-app", "client")

    with TestClient(app) as http:
        missing = http.post("/predict")
        wrong = http.post("/predict", headers=bearer("ll_client_wrong"))
        forbidden = http.post("/reload", headers=bearer(client_key))
        allowed = http.post("/predict", headers={"X-API-Key": client_key})
        health = http.get("/healthz")

    assert (missing.status_code, missing.headers["www-authenticate"]) == (401, "Bearer")
    assert missing.json() == {"error": "missing API key: send 'Authorization: Bearer <key>'"}
    assert (wrong.status_code, wrong.json()) == (401, {"error": "invalid or revoked API key"})
    assert forbidden.status_code == 403
    assert forbidden.json() == {"error": "key 'web-app' has role client; this needs admin"}
    assert (allowed.status_code, allowed.json()) == (200, {"name": "web-app"})
    assert health.status_code == 200


def test_the_cli_creates_lists_and_revokes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.setenv("LOOPLINE_PROJECT", str(project))
    monkeypatch.setenv("LOOPLINE_HOME", str(tmp_path / "state"))
    runner = CliRunner()

    created = runner.invoke(keys_app, ["create", "ops", "--role", "admin"])
    key = created.stdout.strip()
    listed = runner.invoke(keys_app, ["list"])
    duplicate = runner.invoke(keys_app, ["create", "ops"])
    revoked = runner.invoke(keys_app, ["revoke", "ops"])
    unknown = runner.invoke(keys_app, ["revoke", "ghost"])
    bad_role = runner.invoke(keys_app, ["create", "x", "--role", "root"])

    assert created.exit_code == 0 and key.startswith("ll_admin_")
    assert "cannot be shown again" in created.stderr
    store = KeyStore(tmp_path / "state" / "auth" / "keys.json")
    assert store.path.is_file() and store.authenticate(key) is None  # revoked by then
    assert listed.exit_code == 0 and "ops" in listed.stdout and "admin" in listed.stdout
    assert key not in listed.output
    assert (duplicate.exit_code, "already exists" in duplicate.stderr) == (1, True)
    assert revoked.exit_code == 0
    assert (unknown.exit_code, "no key named 'ghost'" in unknown.stderr) == (1, True)
    assert bad_role.exit_code != 0
    assert "revoked" in runner.invoke(keys_app, ["list"]).stdout


# --- rotation --------------------------------------------------------------------------


def test_rotation_keeps_both_keys_working_during_the_overlap(store: KeyStore) -> None:
    old = store.create("web-app", "admin")

    new, until = store.rotate("web-app", timedelta(hours=1))

    assert new != old and new.startswith("ll_admin_")  # the same role
    assert authorize(store, bearer(old), Role.ADMIN).expires_at == until
    assert authorize(store, bearer(new), Role.ADMIN).expires_at is None
    assert timedelta(minutes=59) < until - datetime.now(UTC) <= timedelta(hours=1)
    assert [(k.name, k.active) for k in store.list()] == [("web-app", True), ("web-app", True)]


def test_after_the_overlap_the_old_key_is_refused_as_expired(store: KeyStore) -> None:
    old = store.create("web-app", "client")
    middle, _ = store.rotate("web-app", timedelta(hours=1))

    newest, _ = store.rotate("web-app", timedelta(0))  # ends every earlier overlap now

    for key in (old, middle):
        assert store.authenticate(key) is None
        with pytest.raises(Unauthorized, match="^expired API key") as caught:
            authorize(store, bearer(key), Role.CLIENT)
        assert key not in str(caught.value)
    assert authorize(store, bearer(newest), Role.CLIENT).name == "web-app"


def test_a_revoked_key_stays_revoked_not_expired(store: KeyStore) -> None:
    old = store.create("web-app", "client")
    new, _ = store.rotate("web-app", timedelta(hours=1))

    store.revoke("web-app")  # both: a rotation's old key is no way back in

    for key in (old, new):
        with pytest.raises(Unauthorized, match="invalid or revoked API key"):
            authorize(store, bearer(key), Role.CLIENT)


def test_create_still_refuses_a_name_with_a_working_key(store: KeyStore) -> None:
    store.create("web-app", "client")
    store.rotate("web-app", timedelta(hours=1))

    with pytest.raises(KeyStoreError, match="already exists: rotate it"):
        store.create("web-app", "client")


def test_only_a_working_key_can_be_rotated(store: KeyStore) -> None:
    with pytest.raises(KeyStoreError, match="no key named 'ghost'"):
        store.rotate("ghost", timedelta(hours=1))
    store.create("web-app", "client")
    store.revoke("web-app")
    with pytest.raises(KeyStoreError, match="already revoked or expired"):
        store.rotate("web-app", timedelta(hours=1))
    with pytest.raises(KeyStoreError, match="negative"):
        store.rotate("web-app", timedelta(seconds=-1))


def test_a_key_file_from_before_rotation_is_read(store: KeyStore) -> None:
    key = store.create("web-app", "client")
    data = json.loads(store.path.read_text())
    for entry in data["keys"]:
        del entry["expires_at"]
    store.path.write_text(json.dumps(data))

    info = KeyStore(store.path).authenticate(key)

    assert info is not None and info.expires_at is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0", timedelta(0)),
        ("30s", timedelta(seconds=30)),
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("1.5h", timedelta(minutes=90)),
        (" 2D ", timedelta(days=2)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "h", "-1h", "1w", "1h30m", "soon"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="use a number and s, m, h or d"):
        parse_duration(text)


def test_the_cli_rotates_and_lists_the_overlap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLINE_PROJECT", str(tmp_path))
    monkeypatch.setenv("LOOPLINE_HOME", str(tmp_path / "state"))
    runner = CliRunner()
    old = runner.invoke(keys_app, ["create", "web-app"]).stdout.strip()

    rotated = runner.invoke(keys_app, ["rotate", "web-app", "--overlap", "2d"])
    during = runner.invoke(keys_app, ["list"]).stdout
    again = runner.invoke(keys_app, ["rotate", "web-app", "--overlap", "0"])
    after = runner.invoke(keys_app, ["list"]).stdout
    bad = runner.invoke(keys_app, ["rotate", "web-app", "--overlap", "soon"])

    new = rotated.stdout.strip()
    assert rotated.exit_code == 0 and new.startswith("ll_client_") and new != old
    assert "the old one stops working at" in rotated.stderr
    assert [line.split()[4] for line in during.splitlines()[1:]] == ["expires", "active"]
    assert again.exit_code == 0
    assert [line.split()[4] for line in after.splitlines()[1:]] == ["expired"] * 2 + ["active"]
    assert (bad.exit_code, "bad duration 'soon'" in bad.stderr) == (1, True)
