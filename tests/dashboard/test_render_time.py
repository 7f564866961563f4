"""Every page renders in under 2 s on the seeded state (the same measure as the docs)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.dashboard.seeding import Seeded

BUDGET_S = 2.0


@pytest.fixture
def restored_environment() -> Any:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_each_page_renders_within_budget(seeded: Seeded, restored_environment: Any) -> None:
    from benchmarks.dashboard import measure_pages

    result = measure_pages(seeded.project, repeats=2)
    slow = {
        page: times
        for page, times in result["pages"].items()
        if max(times["cold_s"], times["warm_s"]) >= BUDGET_S
    }
    assert not slow, f"pages over {BUDGET_S} s: {slow}"
