"""What ingestion does to personal data before a batch is stored anywhere.

The checked batch is rewritten piece by piece: the entity and every ``pii: identifier``
column become keyed pseudonyms, ``pii: drop`` columns go, ``pii: keep`` columns are sealed
with their subject's data key. The result is the accepted batch that DVC versions, and
everything after it reads only that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from loopline.config import DatasetParams
from loopline.errors import LooplineError
from loopline.privacy import encryption
from loopline.privacy.pseudonyms import Pseudonyms
from loopline.settings import Paths

if TYPE_CHECKING:
    from loopline.privacy.keystore import SubjectKeys


class Protector:
    """Applies a dataset's personal-data rules to the pieces of a checked batch.

    Keys for subjects seen for the first time are made here and held until :meth:`commit`,
    which the caller runs once the whole batch has been checked and written.
    """

    def __init__(
        self,
        dataset: DatasetParams,
        key: bytes,
        keys: SubjectKeys | None = None,
        erased: frozenset[int] = frozenset(),
    ) -> None:
        self.entity = dataset.entity
        self.identifiers = dataset.pii_columns("identifier")
        self.drop = dataset.pii_columns("drop")
        self.keep = dataset.pii_columns("keep")
        if self.keep and keys is None:
            raise LooplineError(f"dataset.pii keeps {self.keep}: that needs the subject key store")
        self._pseudonyms = Pseudonyms(key)
        self._erased = erased  # subjects erased before: their rows are not stored again
        self._keys = keys
        self._known: dict[int, bytes | None] = {}
        self.new: dict[int, bytes] = {}

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.drop(columns=[c for c in self.drop if c in frame.columns])
        out[self.entity] = self._pseudonyms.series(out[self.entity])
        if self._erased:
            out = out[~out[self.entity].isin(self._erased)]
        for column in (c for c in self.identifiers if c in out.columns):
            given = out[column].notna()
            values = pd.Series(pd.NA, index=out.index, dtype="Int64", name=column)
            if given.any():
                values[given] = self._pseudonyms.series(out.loc[given, column]).to_numpy()
            out[column] = values
        if self.keep:
            self._learn(pd.unique(out[self.entity]))
            for column in (c for c in self.keep if c in out.columns):
                out[column] = self._sealed(out[self.entity], out[column])
        return out

    def commit(self) -> None:
        """Store the keys of the subjects this batch brought (one short transaction)."""
        if self._keys is not None and self.new:
            self._keys.add(self.new)
        self._known |= self.new
        self.new = {}

    def _learn(self, subjects: np.ndarray) -> None:
        from loopline.privacy.keystore import new_key

        assert self._keys is not None
        unseen = [int(p) for p in subjects if int(p) not in self._known and int(p) not in self.new]
        if not unseen:
            return
        found = self._keys.get(unseen)
        self._known |= found
        self.new |= {p: new_key() for p in unseen if p not in found}

    def _sealed(self, subjects: pd.Series, values: pd.Series) -> pd.Series:
        """Each value sealed with its subject's key; an erased subject's values are not kept.

        A (subject, value) pair repeats on every snapshot row: it is sealed once."""
        sealed = np.full(len(values), None, dtype=object)
        given = values.notna().to_numpy()
        if not given.any():
            return pd.Series(sealed, index=values.index, name=values.name)
        pairs = pd.MultiIndex.from_arrays(
            [subjects.to_numpy()[given], values[given].astype(str).to_numpy()]
        )
        codes, uniques = pd.factorize(pairs)
        column = str(values.name)
        tokens = np.array([self._seal(int(p), column, v) for p, v in uniques], dtype=object)
        sealed[given] = tokens[codes]
        return pd.Series(sealed, index=values.index, name=values.name)

    def _seal(self, pseudonym: int, column: str, value: str) -> str | None:
        key = self.new.get(pseudonym) or self._known.get(pseudonym)
        return None if key is None else encryption.seal(key, pseudonym, column, value)


def protector_for(dataset: DatasetParams, paths: Paths) -> Protector:
    """The project's protector; a missing key is a MissingSecret before anything is read."""
    from loopline.privacy.secrets import master_key, pseudonym_key
    from loopline.privacy.subjects import tombstones

    key = pseudonym_key(paths)
    erased = frozenset(tombstones(paths))
    if not dataset.pii_columns("keep"):
        return Protector(dataset, key, erased=erased)
    from loopline.privacy.keystore import SubjectKeys

    keys = SubjectKeys(paths.registry_url, master_key(paths))
    return Protector(dataset, key, keys, erased)
