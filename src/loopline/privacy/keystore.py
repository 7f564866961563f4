"""Per-subject data keys, wrapped by the master key, in the registry's database.

Destroying a subject's key is what erases the subject from every stored version at once
(crypto-shredding): DVC keeps every version by content hash and cannot rewrite one, but
ciphertext whose key is gone is noise. New keys are written in one short transaction,
after the batch that needs them was checked, so a rejected batch adds none.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, update

from loopline.errors import LooplineError
from loopline.privacy.encryption import NONCE_BYTES
from loopline.registry.database import (
    create_registry_engine,
    read_session,
    reading,
    upgrade,
    write_session,
    writing,
)
from loopline.registry.schema import SubjectKeyRow

_WRAP_CONTEXT = b"loopline-subject-key\x00"
_CHUNK = 10_000  # pseudonyms per IN (...) query: within every backend's parameter limit


class KeyStoreCorrupt(LooplineError):
    """A wrapped key fails its authentication: changed, moved, or another master key's."""


class SubjectKeys:
    """The data keys of subjects, by pseudonym (``None``: the subject was erased)."""

    def __init__(self, url: str, master: bytes) -> None:
        self._engine = create_registry_engine(url)
        upgrade(self._engine)
        self._wrap = AESGCM(master)

    def get(self, pseudonyms: Iterable[int]) -> dict[int, bytes | None]:
        """The stored keys of these subjects, unwrapped; subjects without one are absent."""
        wanted = sorted(set(map(int, pseudonyms)))
        found: dict[int, bytes | None] = {}
        with read_session(reading(self._engine)) as session:
            for start in range(0, len(wanted), _CHUNK):
                part = wanted[start : start + _CHUNK]
                rows = session.execute(
                    select(SubjectKeyRow.pseudonym, SubjectKeyRow.wrapped).where(
                        SubjectKeyRow.pseudonym.in_(part)
                    )
                )
                for pseudonym, wrapped in rows:
                    found[pseudonym] = None if wrapped is None else self._unwrap(pseudonym, wrapped)
        return found

    def add(self, keys: dict[int, bytes]) -> None:
        """Store new subjects' keys in one transaction (a subject stored meanwhile by another
        ingestion is a RegistryConflict: nothing is stored, and the batch is not accepted)."""
        if not keys:
            return
        now = datetime.now(UTC)
        rows = [
            SubjectKeyRow(pseudonym=p, wrapped=self._wrapped(p, k), created_at=now)
            for p, k in keys.items()
        ]
        with write_session(writing(self._engine), "storing subject keys") as session:
            session.add_all(rows)

    def destroy(self, pseudonym: int) -> bool:
        """Destroy a subject's key; False when there was none left to destroy."""
        with write_session(writing(self._engine), "destroying a subject key") as session:
            done = session.execute(
                update(SubjectKeyRow)
                .where(SubjectKeyRow.pseudonym == pseudonym, SubjectKeyRow.wrapped.is_not(None))
                .values(wrapped=None, destroyed_at=datetime.now(UTC))
            )
        return bool(getattr(done, "rowcount", 0))

    def purge(self) -> None:
        """Leave no copy of a destroyed key in the database's files.

        An UPDATE keeps the old row's bytes: SQLite in the page's free space (zeroed here by
        ``secure_delete``, which the registry's connections turn on) and in older page
        images in its write-ahead log, until a truncating checkpoint; PostgreSQL in a dead
        tuple, until the table is rewritten. The key table is small, so both are cheap.
        """
        dialect = self._engine.dialect.name
        if dialect == "postgresql":
            with self._engine.connect() as connection:
                outside = connection.execution_options(isolation_level="AUTOCOMMIT")
                outside.exec_driver_sql(f"VACUUM FULL {SubjectKeyRow.__tablename__}")
        elif dialect == "sqlite":
            # The driver's own connection (autocommit): a checkpoint cannot run in a transaction.
            raw = self._engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                row = cursor.fetchone()
                cursor.close()
            finally:
                raw.close()
            if row is None or row[0]:
                raise RuntimeError(
                    "the registry's write-ahead log could not be truncated (a reader held it): "
                    "run the erasure again; it is complete when this step passes"
                )

    def _wrapped(self, pseudonym: int, key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._wrap.encrypt(nonce, key, _context(pseudonym))

    def _unwrap(self, pseudonym: int, wrapped: bytes) -> bytes:
        nonce, sealed = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
        try:
            return self._wrap.decrypt(nonce, sealed, _context(pseudonym))
        except InvalidTag:
            raise KeyStoreCorrupt(
                f"the data key of subject {pseudonym} fails its integrity check: the key store "
                "was changed or the master key is not the one it was made with; nothing was "
                "decrypted"
            ) from None

    def close(self) -> None:
        self._engine.dispose()


def _context(pseudonym: int) -> bytes:
    return _WRAP_CONTEXT + pseudonym.to_bytes(8, "big")


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)
