"""API keys for the HTTP service: a hashed key file, and the check every request passes.

Clients send ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``). A ``client`` key
may predict and send feedback; an ``admin`` key may also change traffic and reload.
The key itself is never stored, logged or put in an error message: only its name is.
Rotation gives a name a new key and the old one an expiry, so clients can switch over.
"""

from __future__ import annotations

import builtins
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bentoml.exceptions import BentoMLException

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from loopline.settings import Paths

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
# Far longer than any key we issue; hashing a megabyte header on every request is a cheap DoS.
MAX_KEY_LENGTH = 256
FORMAT_VERSION = 1


class Role(StrEnum):
    CLIENT = "client"
    ADMIN = "admin"

    def allows(self, required: Role) -> bool:
        """Whether a key with this role may do what ``required`` guards."""
        return self is Role.ADMIN or required is Role.CLIENT


class KeyStoreError(Exception):
    """The key file cannot be read, or a create/revoke request makes no sense."""


class Unauthorized(BentoMLException):
    """No key, or one that is unknown, revoked or expired (HTTP 401)."""

    error_code = HTTPStatus.UNAUTHORIZED


class Forbidden(BentoMLException):
    """A valid key whose role is too low for the route (HTTP 403)."""

    error_code = HTTPStatus.FORBIDDEN


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a key: never the key or its hash."""

    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None
    # Set by a rotation: the old key works until then, beside its replacement.
    expires_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def usable(self, now: datetime) -> bool:
        """Whether the key is accepted at ``now``: neither revoked nor expired."""
        return self.revoked_at is None and not self.expired(now)

    @property
    def active(self) -> bool:
        return self.usable(datetime.now(UTC))


@dataclass(frozen=True)
class _Record:
    info: KeyInfo
    sha256: str


@dataclass(frozen=True)
class _Snapshot:
    signature: tuple[int, int, int] | None
    records: tuple[_Record, ...]


def _digest(key: str) -> str:
    # A fast hash is enough here, unlike for passwords: keys are 256 random bits, so there is
    # no dictionary to try and brute force is 2**256 guesses however cheap each one is. A slow
    # hash (bcrypt, argon2) would only add its cost to every request.
    return hashlib.sha256(key.encode()).hexdigest()


def _timestamp(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _new_key(role: Role) -> str:
    return f"ll_{role}_{secrets.token_urlsafe(32)}"


def _nothing_to_change(name: str, exists: bool) -> str:
    if not exists:
        return f"no key named {name!r}: `loopline keys list` shows them"
    return f"key {name!r} is already revoked or expired: `loopline keys create` makes a new one"


class KeyStore:
    """API keys in one JSON file, hashed; cheap to ask on every request.

    The parsed file is cached and reread only when it changes on disk, so a key revoked
    by ``loopline keys revoke`` in another process stops working on the next request.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._snapshot = _Snapshot(signature=None, records=())

    def create(self, name: str, role: Role | str) -> str:
        """A new key for ``name``; the plaintext is returned here and never again."""
        if not NAME_PATTERN.fullmatch(name):
            raise KeyStoreError(
                f"bad key name {name!r}: use 1-64 of a-z, 0-9, '_', '.', '-', "
                "starting with a letter or digit"
            )
        try:
            role = Role(role)
        except ValueError:
            raise KeyStoreError(f"bad role {role!r}: use 'client' or 'admin'") from None
        key = _new_key(role)
        with self._locked():
            records = self._read()
            if any(r.info.name == name and r.info.active for r in records):
                raise KeyStoreError(
                    f"an active key named {name!r} already exists: rotate it "
                    "(`loopline keys rotate`), revoke it or pick another name"
                )
            info = KeyInfo(name=name, role=role, created_at=datetime.now(UTC))
            self._write([*records, _Record(info, _digest(key))])
        return key

    def rotate(self, name: str, overlap: timedelta) -> tuple[str, datetime]:
        """A new key for ``name`` with the same role; the old ones expire after ``overlap``.

        Returns the new key (shown here only) and when the old ones stop working. Both
        work meanwhile, so clients can switch over without an outage.
        """
        if overlap < timedelta(0):
            raise KeyStoreError("the overlap cannot be negative")
        with self._locked():
            records = self._read()
            now = datetime.now(UTC)
            current = [i for i, r in enumerate(records) if r.info.name == name]
            usable = [i for i in current if records[i].info.usable(now)]
            if not usable:
                raise KeyStoreError(_nothing_to_change(name, bool(current)))
            role = records[usable[-1]].info.role  # the newest: keys are appended
            key = _new_key(role)
            until = now + overlap
            for i in usable:
                old = records[i]
                ends = min(until, old.info.expires_at or until)
                records[i] = _Record(replace(old.info, expires_at=ends), old.sha256)
            info = KeyInfo(name=name, role=role, created_at=now)
            self._write([*records, _Record(info, _digest(key))])
        return key, until

    def revoke(self, name: str) -> KeyInfo:
        """Revoke the keys called ``name`` (a rotation's old one too); they fail from the
        next request on. Returns the newest of them."""
        with self._locked():
            records = self._read()
            now = datetime.now(UTC)
            matches = [i for i, r in enumerate(records) if r.info.name == name]
            usable = [i for i in matches if records[i].info.usable(now)]
            if not usable:
                raise KeyStoreError(_nothing_to_change(name, bool(matches)))
            for i in usable:
                old = records[i]
                records[i] = _Record(replace(old.info, revoked_at=now), old.sha256)
            self._write(records)
        return records[usable[-1]].info

    def list(self) -> builtins.list[KeyInfo]:
        """Every key ever created, revoked ones included, oldest first."""
        return sorted((r.info for r in self._current()), key=lambda info: info.created_at)

    def authenticate(self, key: str) -> KeyInfo | None:
        """The active key ``key`` is, or None if it is unknown, revoked or expired."""
        info = self.identify(key)
        return info if info is not None and info.active else None

    def identify(self, key: str) -> KeyInfo | None:
        """The key ``key`` is, whatever its state (usable, revoked, expired), or None."""
        if not key or len(key) > MAX_KEY_LENGTH:
            return None
        digest = _digest(key)
        found = None
        # Compare with every key, without stopping early, so timing reveals nothing.
        for record in self._current():
            if hmac.compare_digest(record.sha256, digest):
                found = record.info
        return found

    def _current(self) -> tuple[_Record, ...]:
        # Stat before reading: if the file is replaced in between, the cache holds the newer
        # content under the older signature, and the next call simply reads it again.
        signature = self._signature()
        snapshot = self._snapshot
        if signature != snapshot.signature:
            records = tuple(self._read()) if signature is not None else ()
            snapshot = _Snapshot(signature, records)
            # One assignment, so a concurrent request sees the old snapshot or the new one.
            self._snapshot = snapshot
        return snapshot.records

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        # os.replace gives the file a new inode, so a rewrite is seen even within one mtime tick.
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _read(self) -> builtins.list[_Record]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except ValueError as exc:
            raise KeyStoreError(f"{self.path} is not valid JSON: {exc}") from None
        try:
            return [
                _Record(
                    KeyInfo(
                        name=entry["name"],
                        role=Role(entry["role"]),
                        created_at=datetime.fromisoformat(entry["created_at"]),
                        revoked_at=_timestamp(entry.get("revoked_at")),
                        # Absent from files written before rotation existed.
                        expires_at=_timestamp(entry.get("expires_at")),
                    ),
                    sha256=entry["sha256"],
                )
                for entry in data["keys"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyStoreError(f"{self.path} is not a Loopline key file: {exc!r}") from None

    def _write(self, records: builtins.list[_Record]) -> None:
        entries: builtins.list[dict[str, Any]] = [
            {
                "name": r.info.name,
                "role": str(r.info.role),
                "sha256": r.sha256,
                "created_at": r.info.created_at.isoformat(),
                "revoked_at": _iso(r.info.revoked_at),
                "expires_at": _iso(r.info.expires_at),
            }
            for r in records
        ]
        text = json.dumps({"version": FORMAT_VERSION, "keys": entries}, indent=2) + "\n"
        # mkstemp creates the file 0600; os.replace swaps it in whole, so a reader never sees
        # half a file and a crash leaves the old one.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Two CLI calls at once would otherwise both read, then the second write drops the
        # first one's key, which its owner already holds in plaintext.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def key_store(paths: Paths) -> KeyStore:
    """The project's key store: the CLI writes it, the service reads it."""
    return KeyStore(paths.state / "auth" / "keys.json")


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries, from ``Authorization: Bearer`` or ``X-API-Key``."""
    # Plain dicts are case-sensitive and HTTP header names are not.
    lowered = {name.lower(): value for name, value in headers.items()}
    scheme, _, credentials = lowered.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return lowered.get("x-api-key", "").strip() or None


def authorize(store: KeyStore, headers: Mapping[str, str], required: Role) -> KeyInfo:
    """The key a request carries if its role allows ``required``; else Unauthorized/Forbidden."""
    key = presented_key(headers)
    if key is None:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    info = store.identify(key)
    now = datetime.now(UTC)
    if info is None or info.revoked_at is not None:
        raise Unauthorized("invalid or revoked API key")
    if info.expired(now):
        raise Unauthorized("expired API key: it was rotated; use the key that replaced it")
    if not info.role.allows(required):
        raise Forbidden(f"key {info.name!r} has role {info.role}; this needs {required}")
    return info


class ApiKeyMiddleware:
    """ASGI middleware that demands a key of the right role on the listed routes.

    BentoML answers a 401/403 raised inside an API with a bare "Authorization error", so
    the check runs here, before BentoML, to send the reason. Routes not in ``routes``
    (health probes, metrics, docs) pass untouched. Use it as
    ``Service.add_asgi_middleware(ApiKeyMiddleware, routes={"/predict": Role.CLIENT})``.
    The key's :class:`KeyInfo` is left in ``request.state.api_key`` for the handler.
    """

    def __init__(
        self, app: ASGIApp, routes: Mapping[str, Role], store: KeyStore | None = None
    ) -> None:
        self.app = app
        self.routes = dict(routes)
        self._store = store

    @property
    def store(self) -> KeyStore:
        if self._store is None:
            # Built on first use, not at import, when the service process knows its project.
            from loopline.settings import Paths

            self._store = key_store(Paths.discover())
        return self._store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        required = self.routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        if required is None:
            await self.app(scope, receive, send)
            return
        from starlette.datastructures import Headers
        from starlette.responses import JSONResponse

        try:
            info = authorize(self.store, Headers(scope=scope), required)
        except (Unauthorized, Forbidden) as exc:
            extra = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
            response = JSONResponse(
                {"error": exc.message}, status_code=exc.error_code, headers=extra
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["api_key"] = info
        await self.app(scope, receive, send)
