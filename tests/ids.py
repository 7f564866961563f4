"""Customer ids as clients know them, and the pseudonyms every store holds instead."""

from __future__ import annotations

from typing import Any

import pandas as pd


def known_customers(paths: Any, params: Any, count: int) -> list[int]:
    """The first ``count`` customers (by id) of the batch in the drop folder."""
    source = paths.project / params.dataset.source
    entity = params.dataset.entity
    ids = pd.read_parquet(source, columns=[entity])[entity].unique().tolist()
    return [int(i) for i in sorted(ids)[:count]]


def pseudonym_of(paths: Any, customer: int) -> int:
    """The pseudonym ingestion gives ``customer``."""
    from loopline.privacy.pseudonyms import Pseudonyms
    from loopline.privacy.secrets import pseudonym_key

    return Pseudonyms(pseudonym_key(paths)).of(customer)
