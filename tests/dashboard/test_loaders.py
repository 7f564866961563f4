"""The loaders' pure parts: metrics parsing and rates, lineage pictures, safe report paths."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from loaders import common, drift, service_metrics

METRICS_TEXT = """\
# HELP loopline_predictions_total Predictions served
# TYPE loopline_predictions_total counter
loopline_predictions_total{model_version="churn:a",arm="champion"} 90.0
loopline_predictions_total{model_version="churn:b",arm="challenger"} 10.0
# HELP loopline_prediction_latency_seconds Time from request to answer
# TYPE loopline_prediction_latency_seconds histogram
loopline_prediction_latency_seconds_bucket{model_version="churn:a",arm="champion",le="0.005"} 50.0
loopline_prediction_latency_seconds_bucket{model_version="churn:a",arm="champion",le="0.01"} 90.0
loopline_prediction_latency_seconds_bucket{model_version="churn:a",arm="champion",le="+Inf"} 90.0
loopline_prediction_latency_seconds_count{model_version="churn:a",arm="champion"} 90.0
loopline_prediction_latency_seconds_sum{model_version="churn:a",arm="champion"} 0.5
loopline_prediction_latency_seconds_bucket{model_version="churn:b",arm="challenger",le="0.005"} 10.0
loopline_prediction_latency_seconds_bucket{model_version="churn:b",arm="challenger",le="0.01"} 10.0
loopline_prediction_latency_seconds_bucket{model_version="churn:b",arm="challenger",le="+Inf"} 10.0
# HELP loopline_errors_total Requests refused, by reason
# TYPE loopline_errors_total counter
loopline_errors_total{reason="unknown_entity"} 5.0
"""


def test_metrics_are_parsed_by_version_and_arm() -> None:
    sample = service_metrics.parse_metrics(METRICS_TEXT, at=100.0)
    assert sample.predictions == {"churn:a|champion": 90.0, "churn:b|challenger": 10.0}
    assert sample.errors == {"unknown_entity": 5.0}
    assert sample.latency_buckets == {0.005: 60.0, 0.01: 100.0, float("inf"): 100.0}


def test_one_scrape_gives_totals_two_give_rates() -> None:
    first = service_metrics.parse_metrics(METRICS_TEXT, at=100.0)
    once = service_metrics.summarize("u", [first])
    assert once.request_rate is None
    assert once.error_rate == pytest.approx(5 / 105)
    assert once.latency_p50_ms == pytest.approx(5 * 50 / 60)  # inside the first bucket
    later = service_metrics.parse_metrics(
        METRICS_TEXT.replace("} 90.0", "} 150.0").replace(
            '"unknown_entity"} 5.0', '"unknown_entity"} 8.0'
        ),
        at=130.0,
    )
    live = service_metrics.summarize("u", [first, later])
    assert live.request_rate == pytest.approx(60 / 30)
    assert live.error_rate == pytest.approx(3 / 63)
    champion = next(a for a in live.by_arm if a["arm"] == "champion")
    assert champion["per_s"] == pytest.approx(2.0)


def test_histogram_quantile_matches_prometheus() -> None:
    buckets = {0.1: 50.0, 0.2: 100.0, float("inf"): 100.0}
    assert service_metrics.histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert service_metrics.histogram_quantile(0.75, buckets) == pytest.approx(0.15)
    assert service_metrics.histogram_quantile(0.5, {}) is None
    assert service_metrics.histogram_quantile(
        0.99, {0.1: 1.0, float("inf"): 10.0}
    ) == pytest.approx(0.1)


def test_reports_outside_the_reports_folder_are_never_opened(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    inside = reports / "w.html"
    inside.write_text("<html></html>")
    secret = tmp_path / "secret.html"
    secret.write_text("no")
    assert common.report_path(reports, str(inside)) == inside.resolve()
    assert common.report_path(reports, "w.html") == inside.resolve()
    assert common.report_path(reports, str(secret)) is None
    assert common.report_path(reports, "../secret.html") is None
    assert common.report_path(reports, str(reports / "gone.html")) is None
    assert common.report_path(reports, None) is None


def test_bins_stay_few_whatever_the_span() -> None:
    for start in ("2026-01-01", "2026-01-01 07:13"):
        times = pd.Series(pd.date_range(start, periods=10_000, freq="519s", tz="UTC"))
        width = drift.bin_width(times, 120)
        assert times.dt.floor(width).nunique() <= 120
    assert drift.bin_width(times.head(10), 120) == "1min"


def test_heatmap_cells_from_recorded_entries_and_bare_scores(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from loopline.tracking import Store

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    store = Store(url).migrate()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    entries = [
        {"a": {"score": 0.3, "method": "wasserstein", "threshold": 0.1, "drifted": True}},
        {"a": {"score": 0.1, "method": "wasserstein", "threshold": 0.1, "drifted": False}},
        {"a": 0.5},  # an older monitor's bare score: no drifted flag
    ]
    for index, scores in enumerate(entries):
        store.record_window(
            computed_at=start,
            model_name="m",
            model_version="m:1",
            window_start=start + timedelta(minutes=index),
            window_end=start + timedelta(minutes=index + 1),
            rows=10,
            drift_share=0.0,
            drifted_features=0,
            feature_scores=scores,
            prediction_drift=None,
            n_labels=0,
            accuracy=None,
            roc_auc=None,
            report_html=None,
            report_json=None,
            events=[],
        )
    store.close()
    cells = drift.feature_drift(url, "m", "all", max_bins=1)
    [cell] = cells.to_dict("records")
    assert cell["feature"] == "a"
    assert cell["score"] == pytest.approx(0.3)  # (0.3 + 0.1 + 0.5) / 3
    assert cell["drifted"] == pytest.approx(0.5)  # one of the two flagged windows
