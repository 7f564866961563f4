"""Personal values sealed with their subject's data key: AES-256-GCM, one token per value.

A token is ``llv1.`` and the URL-safe base64 of nonce and ciphertext. The column's name
and the subject's pseudonym are its associated data, so a token copied into another
column or onto another subject's row does not open.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from loopline.errors import LooplineError

PREFIX = "llv1."
NONCE_BYTES = 12
TAG_BYTES = 16  # GCM's authentication tag, at the end of every ciphertext


class CannotOpen(LooplineError):
    """A token is not one of Loopline's, or not this subject's and column's."""


def seal(key: bytes, pseudonym: int, column: str, value: str) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, value.encode(), _context(pseudonym, column))
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()


def open_token(key: bytes, pseudonym: int, column: str, token: str) -> str:
    if not token.startswith(PREFIX):
        raise CannotOpen(f"column {column!r} holds a value that is not a sealed token")
    try:
        raw = base64.urlsafe_b64decode(token[len(PREFIX) :].encode("ascii"))
    except ValueError:  # binascii.Error and non-ASCII text are both
        raw = b""
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise CannotOpen(f"column {column!r} holds a damaged sealed token")
    nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
    try:
        plain = AESGCM(key).decrypt(nonce, sealed, _context(pseudonym, column))
    except InvalidTag:
        raise CannotOpen(
            f"a value of column {column!r} does not open with subject {pseudonym}'s key"
        ) from None
    return plain.decode()


def _context(pseudonym: int, column: str) -> bytes:
    return column.encode() + b"\x00" + pseudonym.to_bytes(8, "big")
