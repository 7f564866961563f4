"""Fixtures of init's tests: the public-style churn table, its csv, and init's proposal for it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from loopline.data.infer import Proposal, propose
from loopline.data.sample import read_sample
from tests.own_data import public_style_table


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return public_style_table()


@pytest.fixture(scope="module")
def own_csv(table: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("own") / "customers.csv"
    table.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def proposal(own_csv: Path) -> Proposal:
    return propose(read_sample(own_csv), "customer_id", "churned", "signup_date")
