from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from loopline.data.generate import Scenario, generate, write


def scenario(**changes: object) -> Scenario:
    base = dict(customers=200, days=40, seed=3, start_date=date(2026, 1, 1), label_delay_days=10)
    return Scenario(**{**base, **changes})  # type: ignore[arg-type]


def test_same_seed_same_data() -> None:
    pd.testing.assert_frame_equal(generate(scenario()), generate(scenario()))


def test_different_seed_different_data() -> None:
    a, b = generate(scenario()), generate(scenario(seed=4))
    assert not a["monthly_charges"].equals(b["monthly_charges"])


def test_rows_scale_with_customers_and_days() -> None:
    small, large = generate(scenario()), generate(scenario(customers=2000))
    assert 8 < len(large) / len(small) < 12
    assert len(small) <= 200 * 40
    assert small["customer_id"].nunique() == 200


def test_one_snapshot_per_customer_and_day() -> None:
    frame = generate(scenario())
    assert not frame.duplicated(["customer_id", "event_timestamp"]).any()


def test_labels_only_known_after_the_delay() -> None:
    frame = generate(scenario())
    day = (frame["event_timestamp"] - frame["event_timestamp"].min()).dt.days
    assert frame.loc[day >= 30, "churned"].isna().all()
    assert frame.loc[day < 30, "churned"].notna().all()
    assert 0.02 < frame["churned"].astype(float).mean() < 0.3


def test_customers_disappear_after_churning() -> None:
    frame = generate(scenario())
    last_day = frame.groupby("customer_id")["event_timestamp"].max()
    assert (last_day < frame["event_timestamp"].max()).any()


def test_price_change_on_drift_day_raises_paid_charges() -> None:
    frame = generate(scenario(days=60, drift_day=30))
    day = (frame["event_timestamp"] - frame["event_timestamp"].min()).dt.days
    paid = frame["plan"] != "basic"
    before = frame.loc[paid & (day < 30), "monthly_charges"].mean()
    after = frame.loc[paid & (day >= 30), "monthly_charges"].mean()
    assert after == pytest.approx(before * 1.25, rel=0.05)
    basic_before = frame.loc[~paid & (day < 30), "monthly_charges"].mean()
    basic_after = frame.loc[~paid & (day >= 30), "monthly_charges"].mean()
    assert basic_after == pytest.approx(basic_before, rel=0.05)


def test_pii_present_in_raw_data() -> None:
    frame = generate(scenario())
    assert frame["email"].str.contains("@").all()
    assert frame["name"].notna().all()


def test_a_longer_world_keeps_the_shorter_ones_history() -> None:
    """The simulator and the drift story deliver "the world as known on day d" by generating
    d days: a later delivery must not rewrite what an earlier one said, only add labels."""
    short, long = generate(scenario(days=30, drift_day=35)), generate(scenario(drift_day=35))
    prefix = long[long["event_timestamp"] < short["event_timestamp"].max() + pd.Timedelta(days=1)]
    prefix = prefix.reset_index(drop=True)
    pd.testing.assert_frame_equal(short.drop(columns="churned"), prefix.drop(columns="churned"))
    known = short["churned"].notna()
    assert known.any() and not known.all()
    assert (short["churned"][known] == prefix["churned"][known]).all()


def test_written_in_row_groups_reads_back_as_generated(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    target = tmp_path / "churn.parquet"
    rows = write(scenario(), target, rows_per_group=1000)
    whole = generate(scenario())
    assert rows == len(whole)
    assert pq.ParquetFile(target).metadata.num_row_groups > 1
    pd.testing.assert_frame_equal(pd.read_parquet(target), whole)
