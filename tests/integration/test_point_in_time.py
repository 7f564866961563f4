"""Training rows must only see feature values from at or before their label's timestamp."""

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from loopline import features
from loopline.config import load_params
from loopline.data.contract import check_batch
from loopline.data.generate import Scenario, generate
from loopline.settings import Paths
from tests.conftest import make_project

FUTURE = -999.0


@pytest.fixture()
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    # Its own Feast registry and online store: this test rewrites the sources.
    root = make_project(tmp_path / "pit")
    monkeypatch.setenv("LOOPLINE_HOME", str(root / ".loopline"))
    monkeypatch.setenv("LOOPLINE_PROJECT", str(root))
    paths = Paths(root, root / ".loopline")
    paths.feast_dir.mkdir(parents=True)
    return paths


def test_no_feature_value_from_after_the_label(isolated: Paths) -> None:
    params = load_params(isolated.params_file)
    frame = check_batch(
        generate(Scenario(60, 30, 5, date(2026, 1, 1), 5)), params.dataset, Path("pit.parquet")
    )
    cutoff = frame["event_timestamp"].min() + pd.Timedelta(days=20)
    # Every value after the cutoff is poisoned; a leak would carry it into training.
    poisoned = frame.copy()
    poisoned.loc[poisoned["event_timestamp"] > cutoff, "usage_hours"] = FUTURE
    features.write_sources(poisoned, params.dataset, isolated)
    features.apply(isolated)

    labels = frame.loc[frame["event_timestamp"] <= cutoff, ["customer_id", "event_timestamp"]]
    # Label times between daily snapshots must take the earlier snapshot, never the next one.
    entity = labels.assign(event_timestamp=labels["event_timestamp"] + pd.Timedelta(hours=23))
    entity = entity.sample(300, random_state=0).reset_index(drop=True)
    joined = features.historical_features(isolated, "churn_v1", entity, params.dataset)

    assert len(joined) == len(entity)
    assert (joined["usage_hours"] != FUTURE).all()
    expected = entity.merge(
        frame[["customer_id", "event_timestamp", "usage_hours"]].assign(
            event_timestamp=lambda f: f["event_timestamp"] + pd.Timedelta(hours=23)
        ),
        on=["customer_id", "event_timestamp"],
    )
    assert joined["usage_hours"].tolist() == expected["usage_hours"].tolist()
    assert joined["customer_id"].tolist() == entity["customer_id"].tolist()
