"""Named locks that serialize runs and publishing, and say who holds them.

A lock is an ``flock`` on a file under the state folder: the kernel releases it when its
holder dies, so a crashed run never leaves a lock that hangs the next one; its holder file
then names a dead process, which is logged as a stale lock taken over. When the registry
is PostgreSQL (runs on several machines share it), a session-level advisory lock with the
same name is taken too, and the database releases it when the holder's connection drops.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loopline.settings import Paths

log = logging.getLogger(__name__)
_held = threading.local()


class LockHeld(RuntimeError):
    """Another live run holds the lock; the message names it."""

    def __init__(self, name: str, holder: dict[str, Any]) -> None:
        self.holder = holder
        who = describe(holder)
        super().__init__(f"{name} is held by {who}: wait for it to finish, or cancel it")


def describe(holder: dict[str, Any]) -> str:
    """A holder as a person reads it: run, process, host and since when."""
    if not holder:
        return "another process"
    run = holder.get("run_id") or "a run"
    return f"run {run} (pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('at')})"


def alive(holder: dict[str, Any]) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # another machine's process: only its lock can tell
    try:
        os.kill(int(holder.get("pid", 0)), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def read_holder(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text()
        return dict(json.loads(text)) if text.strip() else {}
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


@contextmanager
def hold(
    paths: Paths,
    name: str,
    *,
    run_id: str | None = None,
    wait: bool = True,
    say: Callable[[str], None] = log.info,
) -> Iterator[None]:
    """Hold lock ``name`` for the block; wait for it (``wait``) or raise :class:`LockHeld`.

    A thread that already holds it (a flow and the subflows it runs) just goes on.
    """
    held: set[str] = _held.__dict__.setdefault("names", set())
    if name in held:
        yield
        return
    held.add(name)
    try:
        with _hold(paths, name, run_id=run_id, wait=wait, say=say):
            yield
    finally:
        held.discard(name)


@contextmanager
def _hold(
    paths: Paths, name: str, *, run_id: str | None, wait: bool, say: Callable[[str], None]
) -> Iterator[None]:
    paths.locks.mkdir(parents=True, exist_ok=True)
    file = paths.locks / f"{name}.lock"
    handle = file.open("a+")
    try:
        if not _try(handle):
            holder = read_holder(file)
            if not wait:
                raise LockHeld(name, holder)
            say(f"waiting for {name}, held by {describe(holder)}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        previous = read_holder(file)
        if previous and not alive(previous):
            say(f"{name}: took over a stale lock of {describe(previous)}, which is gone")
        me = {
            "run_id": run_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(me))
        handle.flush()
        with _database_lock(paths, name, wait=wait, holder=me):
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                handle.flush()
    finally:
        handle.close()  # closing releases the flock


def _try(handle: Any) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def _database_lock(
    paths: Paths, name: str, *, wait: bool, holder: dict[str, Any]
) -> Iterator[None]:
    """A PostgreSQL advisory lock of the same name when the registry is PostgreSQL."""
    url = paths.registry_url
    if not url.startswith("postgresql"):
        yield
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        while not got:
            if not wait:
                raise LockHeld(name, {"host": "another machine sharing the registry"})
            time.sleep(0.5)
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    engine.dispose()


def training(paths: Paths, model_name: str, **kwargs: Any) -> Any:
    """One training run per model at a time: the second queues (``wait``) or is refused."""
    return hold(paths, f"train-{model_name}", **kwargs)


def publishing(paths: Paths, **kwargs: Any) -> Any:
    """The short step in which a run changes shared state."""
    return hold(paths, "publish", **kwargs)
