"""A batch checked in pieces (as big Parquet files are) is judged as the whole batch is."""

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopline.config import load_params
from loopline.data.contract import BatchRejected, check_batch, check_batches, read_batches
from loopline.data.generate import Scenario, generate
from loopline.data.ingest import check_file, write_checked

DATASET = load_params(Path(__file__).resolve().parents[2] / "params.yaml").dataset


@pytest.fixture()
def batch() -> pd.DataFrame:
    return generate(Scenario(50, 10, 1, date(2026, 1, 1), 3))


def pieces(frame: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    return [frame.iloc[rows] for rows in np.array_split(np.arange(len(frame)), n)]


def message(check: object) -> str:
    with pytest.raises(BatchRejected) as info:
        check()  # type: ignore[operator]
    return str(info.value)


def test_good_batch_in_pieces_is_the_batch_checked_whole(batch: pd.DataFrame) -> None:
    whole = check_batch(batch, DATASET, Path("b.parquet"))
    parts = list(check_batches(pieces(batch, 4), DATASET, Path("b.parquet")))
    assert len(parts) == 4
    pd.testing.assert_frame_equal(pd.concat(parts), whole)


def test_problems_in_different_pieces_are_named_as_in_the_whole(batch: pd.DataFrame) -> None:
    bad = batch.astype({"monthly_charges": object, "event_timestamp": object})
    bad.loc[[4, 300], "monthly_charges"] = ["twelve", "x"]
    bad.loc[[5, 400], "plan"] = [None, " "]
    bad.loc[2, "usage_hours"] = np.inf
    bad.loc[[9, 350], "event_timestamp"] = ["yesterday", "soon"]
    whole = message(lambda: check_batch(bad, DATASET, Path("b.parquet")))
    in_pieces = message(lambda: list(check_batches(pieces(bad, 5), DATASET, Path("b.parquet"))))
    assert in_pieces == whole
    assert "e.g. ['twelve', 'x'] at rows [4, 300]" in in_pieces
    assert "column 'plan': missing values (2 rows; at rows [5, 400])" in in_pieces
    assert "unparseable timestamps at rows [9, 350]" in in_pieces


def test_duplicates_across_pieces_are_found(batch: pd.DataFrame) -> None:
    bad = pd.concat([batch, batch.iloc[[0, 3]]], ignore_index=True)
    found = message(lambda: list(check_batches(pieces(bad, 3), DATASET, Path("b.parquet"))))
    assert found == message(lambda: check_batch(bad, DATASET, Path("b.parquet")))
    last = len(batch)
    assert f"duplicate (entity, timestamp) rows (2 rows; e.g. ['1', '4'] at rows [{last}, " in found


def test_spelled_labels_are_counted_over_pieces(batch: pd.DataFrame) -> None:
    dataset = DATASET.model_copy(update={"label_values": {"yes": 1, "no": 0}})
    spelled = batch["churned"].map({1: "yes", 0: "no"}).astype(object)
    bad = batch.assign(churned=spelled.where(batch["churned"].notna(), None))
    bad.loc[[5, 250, 420], "churned"] = ["maybe", "Yes?", "nah"]
    whole = message(lambda: check_batch(bad, dataset, Path("b.parquet")))
    assert whole == message(lambda: list(check_batches(pieces(bad, 4), dataset, Path("b.parquet"))))
    assert "(3 rows; e.g. ['Yes?', 'maybe', 'nah'] at rows [5, 250, 420])" in whole


def test_a_parquet_file_is_read_in_pieces_named_by_row(tmp_path: Path, batch: pd.DataFrame) -> None:
    source = tmp_path / "batch.parquet"
    batch.to_parquet(source, index=False, row_group_size=100)
    parts = list(read_batches(source, DATASET, rows=100))
    assert len(parts) > 1 and parts[1].index[0] == 100
    pd.testing.assert_frame_equal(pd.concat(parts), pd.read_parquet(source))


def test_written_batch_is_the_checked_batch(tmp_path: Path, batch: pd.DataFrame) -> None:
    import pyarrow.parquet as pq

    import loopline.data.contract as contract

    source, target = tmp_path / "batch.parquet", tmp_path / "accepted.parquet"
    batch.to_parquet(source, index=False)
    facts = write_checked(source, DATASET, target)
    expected = check_batch(batch, DATASET, source)
    pd.testing.assert_frame_equal(pd.read_parquet(target), expected)
    assert (facts.rows, facts.entities) == (len(batch), batch["customer_id"].nunique())
    assert facts.start == expected["event_timestamp"].min().isoformat()
    assert check_file(source, DATASET) == facts
    # In pieces of 100 rows: the same file, in row groups.
    with pytest.MonkeyPatch.context() as small:
        small.setattr(contract, "ROWS_PER_BATCH", 100)
        write_checked(source, DATASET, target)
    assert pq.ParquetFile(target).metadata.num_row_groups > 1
    pd.testing.assert_frame_equal(pd.read_parquet(target), expected)


def test_a_rejected_batch_writes_nothing(tmp_path: Path, batch: pd.DataFrame) -> None:
    source, target = tmp_path / "batch.parquet", tmp_path / "accepted.parquet"
    target.write_bytes(b"the last good batch")
    bad = batch.copy()
    bad.loc[len(batch) - 1, "usage_hours"] = np.inf  # in the last piece
    bad.to_parquet(source, index=False, row_group_size=100)
    with pytest.raises(
        BatchRejected, match=rf"'usage_hours': finite .* at rows \[{len(bad) - 1}\]"
    ):
        write_checked(source, DATASET, target)
    assert target.read_bytes() == b"the last good batch"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accepted.parquet", "batch.parquet"]


def test_precheck_reads_the_first_piece_of_a_big_file(tmp_path: Path, batch: pd.DataFrame) -> None:
    from loopline.data.ingest import precheck

    # Numbers as text, as a csv export would have them, so that Parquet can hold a word too.
    bad = batch.assign(monthly_charges=batch["monthly_charges"].astype(str))
    late, early = len(batch) - 5, 7
    source = tmp_path / "batch.parquet"
    # A bad value after the first 100 rows: the pre-check of 100 rows does not see it (the
    # ingest's full check does), a check of the whole file does.
    bad.loc[late, "monthly_charges"] = "twelve"
    bad.to_parquet(source, index=False)
    precheck(source, DATASET, rows=100)
    assert "at rows [" in message(lambda: precheck(source, DATASET, rows=len(batch)))
    # One inside them is refused, saying how much was read.
    bad.loc[early, "monthly_charges"] = "eleven"
    bad.to_parquet(source, index=False)
    found = message(lambda: precheck(source, DATASET, rows=100))
    assert f"e.g. ['eleven'] at rows [{early}]" in found
    assert f"found in the first 100 of its {len(batch):,} rows" in found
    assert "twelve" not in found


def test_quality_summary_in_pieces_is_the_whole_batchs(batch: pd.DataFrame) -> None:
    from loopline.data.ingest import quality_summary, quality_summary_of

    frame = check_batch(batch, DATASET, Path("b.parquet"))
    frame.loc[[3, 200], "usage_hours"] = np.nan
    whole = quality_summary(frame, DATASET)
    assert quality_summary_of(pieces(frame, 4), DATASET) == whole
    assert whole["missing_values"] == {"usage_hours": 2}
    assert whole["entities"] == batch["customer_id"].nunique()
