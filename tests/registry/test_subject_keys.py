"""The subject key store on SQLite and PostgreSQL, and ingestion sealing kept columns with it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from loopline.config import DatasetParams
from loopline.privacy import encryption
from loopline.privacy.keystore import KeyStoreCorrupt, SubjectKeys, new_key
from loopline.privacy.protect import Protector
from loopline.privacy.pseudonyms import Pseudonyms

MASTER = bytes(range(32))
ID_KEY = bytes(range(1, 33))


def test_keys_round_trip_and_a_destroyed_one_is_gone(registry_url: str) -> None:
    store = SubjectKeys(registry_url, MASTER)
    keys = {11: new_key(), 12: new_key()}
    store.add(keys)
    assert store.get([11, 12, 13]) == keys
    assert store.destroy(11) is True
    assert store.destroy(11) is False  # a second erasure finds nothing left to destroy
    assert store.destroy(99) is False
    assert store.get([11, 12]) == {11: None, 12: keys[12]}
    store.close()


def test_a_destroyed_key_leaves_no_copy_in_the_database_files(registry_url: str) -> None:
    store = SubjectKeys(registry_url, MASTER)
    store.add({31: new_key(), 32: new_key()})
    engine = create_engine(registry_url)
    with engine.begin() as db:
        wrapped = db.execute(
            text("SELECT wrapped FROM privacy_subject_keys WHERE pseudonym = 31")
        ).scalar_one()
    # Another process's connection stays open, as a running service's does: SQLite then
    # keeps its write-ahead log, with every page image written since the last checkpoint.
    with engine.connect() as other:
        other.execute(text("SELECT count(*) FROM privacy_subject_keys")).scalar_one()
        other.commit()  # open but idle, between requests
        assert store.destroy(31)
        store.purge()
        assert 32 in store.get([32])
        leftovers = _files_holding(registry_url, wrapped)
    engine.dispose()
    store.close()
    assert leftovers == []


def _files_holding(registry_url: str, secret: bytes) -> list[Path]:
    if not registry_url.startswith("sqlite"):  # PostgreSQL's files are the server's to read
        return []
    database = Path(registry_url.split("///", 1)[1])
    files = [f for f in database.parent.iterdir() if f.name.startswith(database.name)]
    assert files
    return [f for f in files if secret in f.read_bytes()]


def test_a_changed_or_moved_key_is_refused(registry_url: str) -> None:
    store = SubjectKeys(registry_url, MASTER)
    store.add({21: new_key(), 22: new_key()})
    engine = create_engine(registry_url)
    with engine.begin() as db:  # 22 gets 21's wrapped key: each key opens only for its own
        wrapped = db.execute(
            text("SELECT wrapped FROM privacy_subject_keys WHERE pseudonym = 21")
        ).scalar_one()
        db.execute(
            text("UPDATE privacy_subject_keys SET wrapped = :w WHERE pseudonym = 22"),
            {"w": wrapped},
        )
    engine.dispose()
    assert 21 in store.get([21])
    with pytest.raises(KeyStoreCorrupt, match="subject 22 fails its integrity check"):
        store.get([22])
    with pytest.raises(KeyStoreCorrupt):
        SubjectKeys(registry_url, bytes(32)).get([21])  # another master key
    store.close()


def test_kept_columns_are_sealed_per_subject_and_keys_stored_on_commit(
    registry_url: str,
) -> None:
    dataset = DatasetParams.model_validate(
        {
            "name": "churn",
            "source": "x.parquet",
            "entity": "customer_id",
            "timestamp": "at",
            "label": "churned",
            "features": {"usage": "numeric"},
            "pii": {"email": "keep", "name": "drop"},
        }
    )
    store = SubjectKeys(registry_url, MASTER)
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2, 1, 3],
            "email": ["ada@example.com", "bo@example.com", "ada@example.com", None],
            "name": ["Ada", "Bo", "Ada", "Cy"],
            "usage": [1.0, 2.0, 3.0, 4.0],
        }
    )
    protector = Protector(dataset, ID_KEY, store)
    out = protector(frame)
    subjects = [Pseudonyms(ID_KEY).of(i) for i in (1, 2, 3)]
    assert store.get(subjects) == {}  # nothing stored before the batch is accepted
    protector.commit()
    keys = store.get(subjects)
    assert set(keys) == set(subjects)
    assert "name" not in out.columns and out["email"].iloc[3] is None
    assert out["email"].iloc[0] == out["email"].iloc[2]  # one token per (subject, value)
    opened = [
        encryption.open_token(keys[p], p, "email", t)  # type: ignore[arg-type]
        for p, t in zip(out["customer_id"][:3], out["email"][:3], strict=True)
    ]
    assert opened == ["ada@example.com", "bo@example.com", "ada@example.com"]

    # An erased subject's values are not kept when the source sends them again.
    store.destroy(subjects[0])
    again = Protector(dataset, ID_KEY, store)(frame)
    assert again["email"].iloc[0] is None and again["email"].iloc[1] is not None
    store.close()


def test_the_audit_log_is_a_chain_that_shows_an_altered_entry(registry_url: str) -> None:
    from loopline.privacy.audit import AuditLog

    log = AuditLog(registry_url)
    log.record("dpo", "erase", 11, "request 1", {"key_destroyed": True})
    log.record("dpo", "export", 12, "request 2", {"rows": 3})
    log.record("dpo", "erase-again", 11, "request 1", {})
    assert log.verify() is None
    assert [e["action"] for e in log.entries(subject=11)] == ["erase", "erase-again"]
    engine = create_engine(registry_url)
    with engine.begin() as db:
        db.execute(text("UPDATE privacy_audit SET reason = 'nothing' WHERE seq = 2"))
    engine.dispose()
    assert log.verify() == "entry 2 does not match its hash: it was altered"
    log.close()
