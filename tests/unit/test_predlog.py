"""The prediction and feedback log: buffered Parquet writes, windows, labels, live accuracy."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopline.serving import predlog_read
from loopline.serving.predlog import TIMESTAMP, FeedbackLog, PartitionedLog, PredictionLog
from loopline.serving.predlog_read import (
    compact,
    labelled_predictions,
    live_accuracy,
    read_feedback,
    read_predictions,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FEATURES = {"tenure_days": 120, "monthly_spend": 42.5, "plan": "basic"}


def log_one(log: PredictionLog, entity_id: int, **overrides: Any) -> None:
    values: dict[str, Any] = {
        "request_id": f"r{entity_id}",
        "entity_id": entity_id,
        "model_version": "churn:v1",
        "arm": "champion",
        "score": 0.8,
        "label": 1,
        "latency_ms": 4.0,
        "features": FEATURES,
    }
    log.log(**(values | overrides))


def files(folder: Path, table: str = "predictions") -> list[Path]:
    return sorted((folder / table).glob("date=*/part-*.parquet"))


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_rows_round_trip_with_their_features(tmp_path: Path) -> None:
    with PredictionLog(tmp_path) as log:
        log_one(log, 1, at=T0)
        log_one(log, 2, at=T0 + timedelta(seconds=1), score=0.1, label=0, shadow=True)

    frame = read_predictions(tmp_path)

    assert frame["entity_id"].tolist() == [1, 2]
    assert frame["at"].tolist() == [pd.Timestamp(T0), pd.Timestamp(T0 + timedelta(seconds=1))]
    assert frame["shadow"].tolist() == [False, True]
    assert frame["score"].tolist() == [0.8, 0.1]
    assert frame[list(FEATURES)].iloc[0].to_dict() == FEATURES
    assert str(frame["at"].dtype) == "datetime64[us, UTC]"
    assert frame["label"].dtype == "int8" and frame["entity_id"].dtype == "int64"
    assert [p.parent.name for p in files(tmp_path)] == ["date=2026-03-01"]


def test_a_flush_runs_every_interval(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_interval=0.1).start()
    log_one(log, 1)
    assert wait_for(lambda: log.written == 1, timeout=2.0)
    log_one(log, 2)
    assert wait_for(lambda: log.written == 2, timeout=2.0)
    log.close()
    assert len(files(tmp_path)) == 2


def test_a_flush_runs_as_soon_as_max_rows_wait(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_interval=3600, max_rows=100).start()
    for i in range(99):
        log_one(log, i)
    time.sleep(0.2)
    assert log.written == 0

    log_one(log, 99)

    assert wait_for(lambda: log.written == 100, timeout=2.0)
    log.close()


def test_close_writes_everything_and_refuses_later_rows(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_interval=3600, max_rows=1_000_000).start()
    for i in range(25_000):
        log_one(log, i)

    log.close()
    log.close()  # idempotent

    assert len(read_predictions(tmp_path)) == 25_000 == log.written == log.appended
    with pytest.raises(RuntimeError, match="closed"):
        log_one(log, 1)


def test_concurrent_appends_from_threads_are_all_written(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_interval=0.02, max_rows=500).start()

    def worker(thread: int) -> None:
        for i in range(5_000):
            log_one(log, thread * 100_000 + i, request_id=f"t{thread}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()

    frame = read_predictions(tmp_path)
    assert len(frame) == 40_000 == frame["entity_id"].nunique()
    assert len(files(tmp_path)) > 1


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    partition = tmp_path / "predictions" / "date=2026-03-01"
    partition.mkdir(parents=True)
    (partition / ".part-20260301T120000000000Z-1-abc-000001.parquet.tmp").write_bytes(b"PAR1 half")
    log = PredictionLog(tmp_path, flush_interval=0.01, max_rows=50).start()
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            log_one(log, i, at=T0 + timedelta(milliseconds=i))
            i += 1
            if i % 50 == 0:
                time.sleep(0.002)  # a steady stream of small files, not a flood

    writer = threading.Thread(target=write)
    writer.start()
    counts = []
    try:
        for _ in range(20):
            counts.append(len(read_predictions(tmp_path)))  # a torn file would raise here
    finally:
        stop.set()
        writer.join()
        log.close()

    assert counts == sorted(counts) and counts[-1] > 0
    assert len(read_predictions(tmp_path)) == log.appended


def test_time_windows_read_only_the_days_they_need(tmp_path: Path) -> None:
    with PredictionLog(tmp_path) as log:
        for hours in range(0, 72, 6):
            log_one(log, hours, at=T0 + timedelta(hours=hours))
    days = [p.parent.name for p in files(tmp_path)]
    assert sorted(set(days)) == [
        "date=2026-03-01",
        "date=2026-03-02",
        "date=2026-03-03",
        "date=2026-03-04",
    ]
    # A broken file on a day outside the window must not even be opened.
    (tmp_path / "predictions" / "date=2026-03-01" / "part-broken.parquet").write_bytes(b"junk")

    window = read_predictions(
        tmp_path, since=T0 + timedelta(hours=24), until=T0 + timedelta(hours=48)
    )
    latest = read_predictions(tmp_path, since=T0 + timedelta(hours=13), limit=3)

    assert window["entity_id"].tolist() == [24, 30, 36, 42]
    assert latest["entity_id"].tolist() == [54, 60, 66]
    naive = read_predictions(
        tmp_path, since=datetime(2026, 3, 3, 12), until=datetime(2026, 3, 3, 19)
    )
    assert naive["entity_id"].tolist() == [48, 54]


def test_a_flush_across_midnight_goes_to_both_days(tmp_path: Path) -> None:
    with PredictionLog(tmp_path) as log:
        log_one(log, 1, at=datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC))
        log_one(log, 2, at=datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC))
    assert [p.parent.name for p in files(tmp_path)] == ["date=2026-03-01", "date=2026-03-02"]


def test_empty_log_reads_as_empty_frames_with_the_right_columns(tmp_path: Path) -> None:
    assert {"request_id", "at", "score", "arm"} <= set(read_predictions(tmp_path).columns)
    assert {"request_id", "received_at", "label"} <= set(read_feedback(tmp_path).columns)
    assert labelled_predictions(tmp_path).empty
    assert live_accuracy(tmp_path).empty


def test_a_new_feature_column_is_still_readable(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log_one(log, 1, at=T0, features={"tenure_days": 10})
    log.flush()
    log_one(log, 2, at=T0 + timedelta(seconds=1), features={"tenure_days": 2.5, "region": "eu"})
    log.flush()

    frame = read_predictions(tmp_path)

    assert frame["tenure_days"].tolist() == [10.0, 2.5]
    assert frame["region"].isna().tolist() == [True, False]


def test_a_feature_with_mixed_types_in_one_flush_is_kept_as_text(tmp_path: Path) -> None:
    with PredictionLog(tmp_path) as log:
        log_one(log, 1, at=T0, features={"plan": 3})
        log_one(log, 2, at=T0 + timedelta(seconds=1), features={"plan": "basic"})
    assert read_predictions(tmp_path)["plan"].tolist() == ["3", "basic"]


def test_every_arm_the_router_names_is_logged(tmp_path: Path) -> None:
    # "unpromoted": the Bento's own model, answering while nothing is in production.
    with PredictionLog(tmp_path) as log:
        for n, arm in enumerate(("champion", "challenger", "unpromoted")):
            log_one(log, n, arm=arm)
    assert sorted(read_predictions(tmp_path)["arm"]) == ["challenger", "champion", "unpromoted"]


def test_bad_rows_are_refused_before_they_are_buffered(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    feedback = FeedbackLog(tmp_path)
    with pytest.raises(ValueError, match="clash"):
        log_one(log, 1, features={"score": 1.0})
    with pytest.raises(ValueError, match="clash"):
        log_one(log, 1, features={"date": "2026-03-01"})
    with pytest.raises(ValueError, match="arm"):
        log_one(log, 1, arm="canary")
    with pytest.raises(ValueError, match="label"):
        log_one(log, 1, label=2)
    with pytest.raises(TypeError, match="datetime"):
        log.append({"request_id": "r1", "at": "yesterday"})
    with pytest.raises(ValueError, match="label"):
        feedback.record(label=2, request_id="r1")
    with pytest.raises(ValueError, match="request_id"):
        feedback.record(label=1)
    assert log.appended == feedback.appended == 0


def test_a_failed_write_keeps_the_rows_for_the_next_flush(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log_one(log, 1)
    (tmp_path / "predictions").write_text("not a folder")  # every write now fails

    with pytest.raises(OSError):
        log.flush()
    (tmp_path / "predictions").unlink()

    assert log.flush() == 1
    assert read_predictions(tmp_path)["entity_id"].tolist() == [1]


def test_rows_that_cannot_be_converted_are_dropped_and_logging_goes_on(tmp_path: Path) -> None:
    log = PartitionedLog(tmp_path, "events", types={"at": TIMESTAMP, "n": pa.int8()})
    log.append({"at": T0, "n": 1000})  # does not fit an int8
    assert log.flush() == 0 and log.dropped == 1

    log.append({"at": T0, "n": 7})

    assert log.flush() == 1
    assert pq.read_table(files(tmp_path, "events")[0])["n"].to_pylist() == [7]


def test_feedback_by_request_id_labels_that_request(tmp_path: Path) -> None:
    with PredictionLog(tmp_path) as log:
        for entity in (1, 2):  # one batch request for two customers
            log_one(log, entity, request_id="batch", at=T0)
        log_one(log, 3, request_id="single", at=T0)
        log_one(log, 3, request_id="single", at=T0, arm="challenger", shadow=True, score=0.3)
    with FeedbackLog(tmp_path) as feedback:
        feedback.record(label=0, request_id="batch", entity_id=2)
        feedback.record(label=1, request_id="single")
        feedback.record(label=1, request_id="unknown", entity_id=9)

    served = labelled_predictions(tmp_path)
    everything = labelled_predictions(tmp_path, include_shadow=True)

    assert served[["request_id", "entity_id", "actual"]].values.tolist() == [
        ["batch", 2, 0],
        ["single", 3, 1],
    ]
    assert sorted(everything["arm"]) == ["challenger", "champion", "champion"]
    assert len(read_feedback(tmp_path)) == 3


def test_feedback_by_entity_and_time_labels_the_prediction_it_refers_to(tmp_path: Path) -> None:
    with PredictionLog(tmp_path) as log:
        log_one(log, 7, request_id="monday", at=T0)
        log_one(log, 7, request_id="monday", at=T0, arm="challenger", shadow=True)
        log_one(log, 7, request_id="friday", at=T0 + timedelta(days=4))
        log_one(log, 8, request_id="other", at=T0 + timedelta(days=1))
    with FeedbackLog(tmp_path) as feedback:
        feedback.record(label=1, entity_id=7, at=T0 + timedelta(days=2))  # about monday's
        feedback.record(label=0, entity_id=7)  # no time: the latest before it arrived

    frame = labelled_predictions(tmp_path, include_shadow=True)

    assert frame[["request_id", "arm", "actual"]].values.tolist() == [
        ["monday", "champion", 1],
        ["monday", "challenger", 1],
        ["friday", "champion", 0],
    ]
    window = labelled_predictions(tmp_path, until=T0 + timedelta(days=1))
    assert window["request_id"].tolist() == ["monday"]


def test_the_latest_label_for_a_prediction_wins(tmp_path: Path) -> None:
    with PredictionLog(tmp_path) as log:
        log_one(log, 1, at=T0)
    with FeedbackLog(tmp_path) as feedback:
        feedback.record(label=1, request_id="r1", entity_id=1)
        time.sleep(0.002)
        feedback.record(label=0, request_id="r1", entity_id=1)  # a correction
    assert labelled_predictions(tmp_path)["actual"].tolist() == [0]


def test_live_accuracy_per_version_and_arm_matches_a_hand_count(tmp_path: Path) -> None:
    champion = [(0.9, 1), (0.2, 0), (0.7, 0), (0.4, 0)]  # (score, actual)
    challenger = [0.6, 0.3, 0.8, 0.1]
    with PredictionLog(tmp_path) as log:
        for i, ((score, _), shadow_score) in enumerate(zip(champion, challenger, strict=True)):
            at = T0 + timedelta(minutes=i)
            log_one(log, i, at=at, score=score, label=int(score >= 0.5))
            log_one(log, i, at=at, score=shadow_score, label=int(shadow_score >= 0.5),
                    model_version="churn:v2", arm="challenger", shadow=True)  # fmt: skip
        log_one(log, 99, at=T0, model_version="churn:v0")  # never labelled: not counted
        log_one(log, 98, at=T0, model_version="churn:v3", score=0.9, label=1)
    with FeedbackLog(tmp_path) as feedback:
        for i, (_, actual) in enumerate(champion):
            feedback.record(label=actual, request_id=f"r{i}", entity_id=i)
        feedback.record(label=1, request_id="r98")

    table = live_accuracy(tmp_path).set_index("model_version")

    assert list(table.index) == ["churn:v1", "churn:v2", "churn:v3"]
    v1, v2, v3 = (table.loc[v] for v in table.index)
    # v1 predicts 1,0,1,0 against 1,0,0,0: 3 of 4 right; its one positive outranks all
    # three negatives (AUC 1); 1 of 4 actual positives; 2 of 4 predicted positive.
    assert (v1.arm, v1.n_labelled, v1.accuracy, v1.roc_auc) == ("champion", 4, 0.75, 1.0)
    assert (v1.positive_rate, v1.predicted_positive_rate) == (0.25, 0.5)
    # v2 predicts 1,0,1,0 too; its positive (0.6) outranks 0.3 and 0.1 but not 0.8: AUC 2/3.
    assert (v2.arm, v2.n_labelled, v2.accuracy) == ("challenger", 4, 0.75)
    assert v2.roc_auc == pytest.approx(2 / 3)
    assert (v3.n_labelled, v3.accuracy, v3.positive_rate) == (1, 1.0, 1.0)
    assert math.isnan(v3.roc_auc)  # one class only
    served_only = live_accuracy(tmp_path, include_shadow=False)
    assert "churn:v2" not in set(served_only["model_version"])


def test_compaction_merges_a_day_without_losing_or_doubling_rows(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    for i in range(5):
        log_one(log, i, at=T0 + timedelta(seconds=i), features={"f": i} | ({"g": "x"} if i else {}))
        log.flush()
    before = read_predictions(tmp_path)
    first = files(tmp_path)[0]
    saved = first.read_bytes()

    merged = compact(tmp_path, "predictions", T0.date(), min_age=0)

    assert merged is not None and files(tmp_path) == [merged]
    pd.testing.assert_frame_equal(read_predictions(tmp_path), before)
    # A compaction that died before deleting its sources: readers still count each row once.
    first.write_bytes(saved)
    pd.testing.assert_frame_equal(read_predictions(tmp_path), before)
    log_one(log, 5, at=T0 + timedelta(seconds=5))
    log.flush()
    assert compact(tmp_path, "predictions", T0.date(), min_age=3600) is None  # all too new
    again = compact(tmp_path, "predictions", T0.date(), min_age=0)
    assert again is not None and files(tmp_path) == [again]  # the leftover is gone too
    assert read_predictions(tmp_path)["entity_id"].tolist() == [0, 1, 2, 3, 4, 5]


def test_a_reader_lists_again_when_compaction_removes_a_file_under_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = PredictionLog(tmp_path)
    for i in range(3):
        log_one(log, i, at=T0 + timedelta(seconds=i))
        log.flush()
    listed = predlog_read._files
    listings = []

    def list_then_compact(*args: Any) -> list[str]:
        found = listed(*args)
        if not listings:  # the first listing goes stale at once
            compact(tmp_path, "predictions", T0.date(), min_age=0)
        listings.append(found)
        return found

    monkeypatch.setattr(predlog_read, "_files", list_then_compact)

    assert read_predictions(tmp_path)["entity_id"].tolist() == [0, 1, 2]
    assert len(listings) == 2


def test_a_flush_drops_the_rows_of_subjects_erased_meanwhile(tmp_path: Path) -> None:
    erased: set[int] = set()
    log = PredictionLog(tmp_path, erased=lambda: erased)
    log_one(log, 5)
    log_one(log, 6)
    erased.add(5)  # erased after the rows were buffered, before they were written
    assert log.flush() == 1
    assert read_predictions(tmp_path)["entity_id"].tolist() == [6]


def test_a_flush_waits_while_an_erasure_rewrites_the_log(tmp_path: Path) -> None:
    from loopline.serving.predlog import erasing_lock

    log = PredictionLog(tmp_path)
    log_one(log, 5)
    done = threading.Event()
    with erasing_lock(tmp_path, exclusive=True):
        flusher = threading.Thread(target=lambda: (log.flush(), done.set()))
        flusher.start()
        # Blocked for as long as the lock is held: however slow the machine, it cannot
        # have written (a broken lock could only make this pass by luck, never fail).
        flusher.join(0.2)
        assert not done.is_set() and not list(tmp_path.rglob("*.parquet"))
    flusher.join()
    assert done.is_set() and read_predictions(tmp_path)["entity_id"].tolist() == [5]


def test_erasing_a_subject_rewrites_the_logs_and_keeps_compaction_manifests(
    tmp_path: Path,
) -> None:
    from loopline.privacy.subjects import erase_logs
    from loopline.settings import Paths

    paths = Paths(tmp_path, tmp_path / ".loopline")
    folder = paths.serving_log
    log = PredictionLog(folder)
    feedback = FeedbackLog(folder)
    for entity in (5, 6):
        log_one(log, entity, at=T0)
    log_one(log, 5, request_id="shared", at=T0)
    log_one(log, 6, request_id="shared", at=T0)
    log.flush()
    log_one(log, 7, at=T0)
    log.flush()
    compacted = compact(folder, "predictions", T0.date(), min_age=0)
    assert compacted is not None
    feedback.record(label=1, request_id="r5")  # names no customer: theirs, by request
    feedback.record(label=0, request_id="shared")  # asked for two customers: kept
    feedback.record(label=1, entity_id=5, at=T0)
    feedback.record(label=0, request_id="r6")
    feedback.flush()
    manifest = pq.read_schema(compacted).metadata[b"loopline.compacted"]
    removed = erase_logs(paths, 5)
    assert removed == {"predictions": 2, "feedback": 2}
    assert sorted(read_predictions(folder)["entity_id"].tolist()) == [6, 6, 7]
    assert sorted(read_feedback(folder)["request_id"].dropna().tolist()) == ["r6", "shared"]
    # The merged file was rewritten and still names the files it replaced.
    assert pq.read_schema(compacted).metadata[b"loopline.compacted"] == manifest
    assert erase_logs(paths, 5) == {"predictions": 0, "feedback": 0}
