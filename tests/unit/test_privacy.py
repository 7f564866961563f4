"""Pseudonyms, the key they are made with, and what ingestion does to personal columns."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopline.config import DatasetParams
from loopline.privacy import encryption, pseudonyms, secrets
from loopline.privacy.protect import Protector
from loopline.privacy.pseudonyms import PseudonymCollision, Pseudonyms
from loopline.settings import Paths

KEY = bytes(range(32))


def dataset(pii: object) -> DatasetParams:
    return DatasetParams.model_validate(
        {
            "name": "churn",
            "source": "data/x.parquet",
            "entity": "customer_id",
            "timestamp": "at",
            "label": "churned",
            "features": {"usage": "numeric"},
            "pii": pii,
        }
    )


def test_a_pseudonym_is_stable_keyed_and_a_non_negative_int64() -> None:
    one, other = Pseudonyms(KEY), Pseudonyms(bytes(32))
    values = [one.of(i) for i in range(1000)]
    assert values == [Pseudonyms(KEY).of(i) for i in range(1000)]
    assert len(set(values)) == 1000 and all(0 <= v < 2**63 for v in values)
    assert all(one.of(i) != other.of(i) for i in range(1000))
    assert 17 not in values and one.of(17) != 17


def test_an_id_is_keyed_by_its_digits_whatever_its_type() -> None:
    p = Pseudonyms(KEY)
    assert p.of(42) == p.of(np.int64(42)) == p.of(42.0) == p.of("42")
    assert p.of("042") != p.of(42)
    with pytest.raises(TypeError, match="boolean"):
        p.of(True)
    with pytest.raises(TypeError, match="integer or text"):
        p.of(4.5)


def test_a_column_is_pseudonymized_per_distinct_id() -> None:
    ids = pd.Series([5, 3, 5, 9, 3], name="customer_id", index=[10, 11, 12, 13, 14])
    out = Pseudonyms(KEY).series(ids)
    assert out.dtype == "int64" and list(out.index) == list(ids.index)
    assert out.tolist() == [Pseudonyms(KEY).of(i) for i in ids]
    with pytest.raises(ValueError, match="missing ids"):
        Pseudonyms(KEY).series(pd.Series([1, None], name="customer_id"))


def test_two_ids_sharing_a_pseudonym_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pure logic: a collision cannot be found by search, so the mask is narrowed to force one.
    monkeypatch.setattr(pseudonyms, "_MASK", 1)
    with pytest.raises(PseudonymCollision, match="customer_id"):
        Pseudonyms(KEY).series(pd.Series(range(10), name="customer_id"))


def test_the_key_comes_from_the_environment_or_the_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = Paths(tmp_path, tmp_path / ".loopline")
    monkeypatch.delenv(secrets.PSEUDONYM_KEY_ENV, raising=False)
    monkeypatch.delenv(secrets.MASTER_KEY_ENV, raising=False)
    with pytest.raises(secrets.MissingSecret, match="pseudonym.key does not exist") as missing:
        secrets.pseudonym_key(paths)
    assert secrets.PSEUDONYM_KEY_ENV in str(missing.value) and "make up" in str(missing.value)

    made_files = [secrets.pseudonym_key_file(paths), secrets.master_key_file(paths)]
    assert secrets.ensure_keys(paths) == made_files
    file = secrets.pseudonym_key_file(paths)
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert stat.S_IMODE(file.parent.stat().st_mode) == 0o700
    made = secrets.pseudonym_key(paths)
    assert len(made) == secrets.KEY_BYTES
    assert secrets.ensure_keys(paths) == [] and secrets.pseudonym_key(paths) == made

    monkeypatch.setenv(secrets.PSEUDONYM_KEY_ENV, KEY.hex())
    assert secrets.pseudonym_key(paths) == KEY
    monkeypatch.setenv(secrets.PSEUDONYM_KEY_ENV, "ab" * 8)
    with pytest.raises(secrets.MissingSecret, match="has 8 bytes; it needs at least 32"):
        secrets.pseudonym_key(paths)
    monkeypatch.setenv(secrets.PSEUDONYM_KEY_ENV, "not hex")
    with pytest.raises(secrets.MissingSecret, match="not hexadecimal"):
        secrets.pseudonym_key(paths)


def test_a_list_of_pii_columns_drops_them_all() -> None:
    assert dataset(["name", "email"]).pii == {"name": "drop", "email": "drop"}
    with pytest.raises(ValueError, match="pii"):
        dataset({"name": "encrypt"})


def test_ingestion_pseudonymizes_ids_and_drops_personal_columns() -> None:
    d = dataset({"name": "drop", "email": "drop", "account": "identifier"})
    frame = pd.DataFrame(
        {
            "customer_id": [7, 8, 7],
            "name": ["Ada Smith", "Bo Lee", "Ada Smith"],
            "email": ["ada@example.com", "bo@example.com", "ada@example.com"],
            "account": pd.array([100, None, 100], dtype="Int64"),
            "usage": [1.0, 2.0, 3.0],
        }
    )
    out = Protector(d, KEY)(frame)
    p = Pseudonyms(KEY)
    assert list(out.columns) == ["customer_id", "account", "usage"]
    assert out["customer_id"].tolist() == [p.of(7), p.of(8), p.of(7)]
    assert out["account"].tolist() == [p.of(100), pd.NA, p.of(100)]
    assert out["usage"].tolist() == [1.0, 2.0, 3.0]
    assert frame["customer_id"].tolist() == [7, 8, 7]  # the input is left as it was


def test_kept_columns_need_the_key_store() -> None:
    with pytest.raises(ValueError, match=r"keeps \['email'\]: that needs the subject key store"):
        Protector(dataset({"email": "keep"}), KEY)


def test_a_sealed_value_opens_only_for_its_subject_and_column() -> None:
    key, other = bytes(range(32)), bytes(32)
    token = encryption.seal(key, 7, "email", "ada@example.com")
    assert token.startswith(encryption.PREFIX) and "ada" not in token
    assert encryption.open_token(key, 7, "email", token) == "ada@example.com"
    assert token != encryption.seal(key, 7, "email", "ada@example.com")  # a fresh nonce
    for args in ((other, 7, "email"), (key, 8, "email"), (key, 7, "name")):
        with pytest.raises(encryption.CannotOpen):
            encryption.open_token(*args, token)
    with pytest.raises(encryption.CannotOpen, match="not a sealed token"):
        encryption.open_token(key, 7, "email", "ada@example.com")
    with pytest.raises(encryption.CannotOpen, match="damaged"):
        encryption.open_token(key, 7, "email", encryption.PREFIX + "%%%")
