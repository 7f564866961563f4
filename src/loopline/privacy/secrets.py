"""The pseudonym key and the master key: each from its environment variable
(``LOOPLINE_PSEUDONYM_KEY``, ``LOOPLINE_MASTER_KEY``) or a 0600 file in the state folder.

``make up`` (and ``loopline init``, ``loopline demo``) create the file once. Nothing else
does: a key that went missing after data was pseudonymized with it cannot be replaced by
a new one without cutting every stored row off from its subject, so ingestion refuses
instead of silently making another.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from loopline.errors import LooplineError
from loopline.settings import Paths

PSEUDONYM_KEY_ENV = "LOOPLINE_PSEUDONYM_KEY"
MASTER_KEY_ENV = "LOOPLINE_MASTER_KEY"  # wraps the per-subject data keys
KEY_BYTES = 32  # HMAC-SHA256's own block of strength; shorter keys weaken it


class MissingSecret(LooplineError):
    """A key Loopline needs is neither in the environment nor in the state folder."""


def pseudonym_key_file(paths: Paths) -> Path:
    return paths.state / "secrets" / "pseudonym.key"


def master_key_file(paths: Paths) -> Path:
    return paths.state / "secrets" / "master.key"


def pseudonym_key(paths: Paths) -> bytes:
    """The HMAC key that turns ids into pseudonyms; :class:`MissingSecret` if there is none."""
    return _key("pseudonym key", PSEUDONYM_KEY_ENV, pseudonym_key_file(paths))


def master_key(paths: Paths) -> bytes:
    """The AES-256 key that wraps every subject's data key; :class:`MissingSecret` if none."""
    return _key("master key", MASTER_KEY_ENV, master_key_file(paths), exact=True)


def _key(what: str, variable: str, file: Path, exact: bool = False) -> bytes:
    text = os.environ.get(variable)
    where = f"${variable}"
    if text is None:
        where = str(file)
        try:
            text = file.read_text()
        except FileNotFoundError:
            raise MissingSecret(
                f"no {what}: {file} does not exist and {variable} is not set; "
                "`make up` creates it once (restore it if data was ingested with it before)"
            ) from None
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise MissingSecret(f"the {what} in {where} is not hexadecimal") from None
    if len(key) < KEY_BYTES or (exact and len(key) != KEY_BYTES):
        need = f"exactly {KEY_BYTES}" if exact else f"at least {KEY_BYTES}"
        raise MissingSecret(f"the {what} in {where} has {len(key)} bytes; it needs {need}")
    return key


def ensure_keys(paths: Paths) -> list[Path]:
    """Create the key files that do not exist yet (mode 0600 in a 0700 folder).

    Returns the files created. A key given by the environment is left to the environment.
    """
    created = []
    for variable, file in (
        (PSEUDONYM_KEY_ENV, pseudonym_key_file(paths)),
        (MASTER_KEY_ENV, master_key_file(paths)),
    ):
        if variable not in os.environ and _create(file, secrets.token_hex(KEY_BYTES)):
            created.append(file)
    return created


def _create(file: Path, text: str) -> bool:
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # O_EXCL: two first runs at once keep one key, not the last writer's.
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")
    return True
