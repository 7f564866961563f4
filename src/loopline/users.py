"""Dashboard users: names, roles and scrypt-hashed passwords in the state folder.

``<state>/auth/users.json`` holds one record per user. Passwords are hashed with scrypt
(``hashlib``, no extra dependency), salted per user, and compared in constant time; the
plain password is never stored or logged. Viewers see everything; operators may also
act (promote, approve, roll out, roll back, retrain).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopline.settings import Paths

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # scrypt time grows with the input; refuse absurd inputs early
FORMAT_VERSION = 1
# scrypt cost: about 16 MiB and tens of milliseconds per check; a login, not a request path.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
DIGEST_BYTES = 32


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"

    @property
    def can_act(self) -> bool:
        """Whether this role may start actions that change what serves."""
        return self is Role.OPERATOR


class UserStoreError(Exception):
    """The user file cannot be read, or an add/remove request makes no sense."""


@dataclass(frozen=True)
class User:
    """Who is logged in: what the dashboard shows and attributes actions to."""

    name: str
    role: Role

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))  # "viewer" works as well as Role

    @property
    def can_act(self) -> bool:
        return self.role.can_act


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$digest`` (base64), the form kept in the user file."""
    salt = salt or secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    encoded = [base64.b64encode(part).decode() for part in (salt, digest)]
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), *encoded])


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a :func:`hash_password` string (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    if len(password) > MAX_PASSWORD:
        raise ValueError("password too long")
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=DIGEST_BYTES
    )


# Verifying an unknown name still costs one scrypt, so timing does not reveal which names exist.
_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + base64.b64encode(bytes(32)).decode()


class UserStore:
    """Dashboard users in one JSON file, written atomically under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, name: str, role: Role | str, password: str) -> User:
        """A new user; fails if ``name`` exists (remove it first to reset a password)."""
        if not NAME_PATTERN.fullmatch(name):
            raise UserStoreError(
                f"bad user name {name!r}: use 1-64 of a-z, 0-9, '_', '.', '-', "
                "starting with a letter or digit"
            )
        try:
            role = Role(role)
        except ValueError:
            raise UserStoreError(f"bad role {role!r}: use 'viewer' or 'operator'") from None
        if len(password) < MIN_PASSWORD:
            raise UserStoreError(f"password too short: use at least {MIN_PASSWORD} characters")
        if len(password) > MAX_PASSWORD:
            raise UserStoreError(f"password too long: at most {MAX_PASSWORD} characters")
        record = {
            "name": name,
            "role": role.value,
            "password": hash_password(password),
            "created_at": datetime.now(UTC).isoformat(),
        }
        with self._locked():
            users = self._read()
            if any(u["name"] == name for u in users):
                raise UserStoreError(f"user {name!r} already exists: remove it first")
            self._write([*users, record])
        return User(name, role)

    def remove(self, name: str) -> None:
        """Delete a user; their open dashboard sessions end at the next check."""
        with self._locked():
            users = self._read()
            kept = [u for u in users if u["name"] != name]
            if len(kept) == len(users):
                raise UserStoreError(f"no user named {name!r}")
            self._write(kept)

    def users(self) -> list[User]:
        """Every user, in the order they were added."""
        return [User(u["name"], Role(u["role"])) for u in self._read()]

    def verify(self, name: str, password: str) -> User | None:
        """The user when ``password`` is theirs, else None (wrong name or wrong password)."""
        found = next((u for u in self._read() if u["name"] == name), None)
        ok = check_password(password[:MAX_PASSWORD], found["password"] if found else _DUMMY_HASH)
        return User(found["name"], Role(found["role"])) if ok and found else None

    def lookup(self, name: str) -> User | None:
        """The user called ``name`` as the file says now (a removed user gives None)."""
        found = next((u for u in self._read() if u["name"] == name), None)
        return User(found["name"], Role(found["role"])) if found else None

    def _read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        try:
            payload = json.loads(self.path.read_text())
            users = payload["users"]
            for user in users:
                Role(user["role"])
                str(user["name"]), str(user["password"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserStoreError(f"cannot read the user file {self.path}: {exc}") from exc
        return list(users)

    def _write(self, users: list[dict[str, Any]]) -> None:
        payload = json.dumps({"format": FORMAT_VERSION, "users": users}, indent=2)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".users-")
        try:
            with os.fdopen(handle, "w") as out:
                out.write(payload + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        finally:
            Path(temporary).unlink(missing_ok=True)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path.with_name(f".{self.path.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


def users_file(paths: Paths) -> Path:
    """Where the dashboard's users live: ``<state>/auth/users.json``."""
    return paths.state / "auth" / "users.json"


def user_store(paths: Paths) -> UserStore:
    return UserStore(users_file(paths))


LOCAL_OPERATOR = "operator"


def local_operator(paths: Paths) -> tuple[str, str | None] | None:
    """The operator login `make up` makes on a machine's first run, so the dashboard opens.

    ``(name, password)`` when it was made now (the caller prints it, once), ``(name, None)``
    when it was made before (the password stays in ``<state>/auth/dev-login.json``, mode
    0600, like the dev API keys), and None when the project has users of its own: then it
    makes nothing.
    """
    saved = paths.state / "auth" / "dev-login.json"
    if saved.exists():
        return str(json.loads(saved.read_text())["name"]), None
    store = user_store(paths)
    if store.users():
        return None
    password = secrets.token_urlsafe(18)  # 144 random bits
    store.add(LOCAL_OPERATOR, Role.OPERATOR, password)
    saved.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps({"name": LOCAL_OPERATOR, "password": password}) + "\n")
    return LOCAL_OPERATOR, password
