from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopline.config import load_params
from loopline.data.contract import BatchRejected, check_batch, read_batch
from loopline.data.generate import Scenario, generate

DATASET = load_params(Path(__file__).resolve().parents[2] / "params.yaml").dataset


@pytest.fixture()
def batch() -> pd.DataFrame:
    return generate(Scenario(50, 10, 1, date(2026, 1, 1), 3))


def rejected(frame: pd.DataFrame, name: str = "batch.parquet") -> BatchRejected:
    with pytest.raises(BatchRejected) as info:
        check_batch(frame, DATASET, Path(name))
    return info.value


def test_good_batch_passes_and_is_typed(batch: pd.DataFrame) -> None:
    checked = check_batch(batch, DATASET, Path("good.parquet"))
    assert len(checked) == len(batch)
    assert checked["sessions_per_week"].dtype == "float64"
    assert str(checked["event_timestamp"].dtype) == "datetime64[ns, UTC]"


def test_missing_column_is_named(batch: pd.DataFrame) -> None:
    error = rejected(batch.drop(columns=["plan", "usage_hours"]), "march.csv")
    assert "march.csv" in str(error)
    assert "missing columns: usage_hours, plan" in str(error)


def test_unparseable_number_names_column_and_row(batch: pd.DataFrame) -> None:
    bad = batch.astype({"monthly_charges": object})
    bad.loc[4, "monthly_charges"] = "twelve"
    message = str(rejected(bad))
    assert "'monthly_charges'" in message and "twelve" in message and "[4]" in message


def test_unparseable_timestamp(batch: pd.DataFrame) -> None:
    bad = batch.astype({"event_timestamp": object})
    bad.loc[2, "event_timestamp"] = "yesterday"
    assert "unparseable timestamps at rows [2]" in str(rejected(bad))


def test_label_outside_zero_one(batch: pd.DataFrame) -> None:
    bad = batch.astype({"churned": object})
    bad.loc[1, "churned"] = 7
    assert "'churned'" in str(rejected(bad))


def test_infinite_value(batch: pd.DataFrame) -> None:
    bad = batch.copy()
    bad.loc[0, "usage_hours"] = np.inf
    assert "'usage_hours'" in str(rejected(bad))


def test_duplicate_entity_timestamp(batch: pd.DataFrame) -> None:
    bad = pd.concat([batch, batch.iloc[[0]]], ignore_index=True)
    assert "duplicate (entity, timestamp) rows" in str(rejected(bad))


def test_naive_timestamps_are_read_as_utc(batch: pd.DataFrame) -> None:
    naive = batch.assign(event_timestamp=batch["event_timestamp"].dt.tz_localize(None))
    checked = check_batch(naive, DATASET, Path("naive.parquet"))
    assert checked["event_timestamp"].iloc[0] == batch["event_timestamp"].iloc[0]


def test_empty_file(tmp_path: Path, batch: pd.DataFrame) -> None:
    empty = tmp_path / "empty.csv"
    batch.head(0).to_csv(empty, index=False)
    with pytest.raises(BatchRejected, match=r"empty\.csv.*\n.*file is empty"):
        read_batch(empty)


def test_unreadable_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(BatchRejected, match="cannot be read"):
        read_batch(broken)


def test_csv_round_trip(tmp_path: Path, batch: pd.DataFrame) -> None:
    path = tmp_path / "batch.csv"
    batch.to_csv(path, index=False)
    checked = check_batch(read_batch(path), DATASET, path)
    assert len(checked) == len(batch)


def test_arrival_stamps_every_row_with_one_instant(batch: pd.DataFrame) -> None:
    from loopline.data.contract import stamp_arrival

    arrival = DATASET.model_copy(update={"timestamp_source": "arrival"})
    unstamped = batch.drop(columns=[DATASET.timestamp]).drop_duplicates(DATASET.entity)
    stamped = stamp_arrival(unstamped, arrival, Path("new.csv"))
    checked = check_batch(stamped, arrival, Path("new.csv"))
    assert checked[DATASET.timestamp].nunique() == 1
    assert checked[DATASET.timestamp].notna().all()


def test_arrival_refuses_a_file_that_has_the_column(batch: pd.DataFrame) -> None:
    from loopline.data.contract import stamp_arrival

    arrival = DATASET.model_copy(update={"timestamp_source": "arrival"})
    with pytest.raises(BatchRejected, match="timestamp_source is arrival"):
        stamp_arrival(batch, arrival, Path("new.csv"))


def test_old_generator_key_names_its_new_place(tmp_path: Path) -> None:
    import yaml

    from loopline.config import ConfigError

    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    raw["generator"]["label_every_days"] = 7
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"label_sampling: \{every_days: 7\}"):
        load_params(path)


def test_recorded_snapshots_migrate_to_label_sampling() -> None:
    from loopline.config import Params, migrate

    raw = load_params(Path(__file__).resolve().parents[2] / "params.yaml").model_dump(mode="json")
    raw["dataset"].pop("label_sampling")
    raw["generator"]["label_every_days"] = 5
    params = Params.model_validate(migrate(raw))
    assert params.dataset.label_sampling != "all"
    assert params.dataset.label_sampling.every_days == 5
