"""The Grafana dashboard and its provisioning: they parse, and every query (the board's and
the alerts') names a metric a real ``bentoml serve`` of the service exports on /metrics.

Metric names are read from PromQL by a small tokenizer: label matchers, strings, ranges,
grouping clauses, functions, keywords and Grafana variables are not metric names, and a
histogram's ``_bucket``/``_count``/``_sum`` series count as the histogram.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from loopline import platform

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"
BOARD = GRAFANA / "dashboards" / "loopline.json"
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
# Series Prometheus makes itself for every target.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")
WAIT_S = 120  # hang guard for the prediction log's flush, never an expectation

TOKEN = re.compile(
    r"""(?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
      | (?P<variable>\$\{[^}]*\}|\$\w+)
      | (?P<number>\d[\w.]*|\.\d+)
      | (?P<ident>[A-Za-z_:][\w:]*)
      | (?P<open>[({\[])
      | (?P<close>[)}\]])
      | (?P<space>\s+)
      | (?P<operator>[^\s\w"'`$(){}\[\]]+)""",
    re.VERBOSE,
)
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    tokens, end = [], 0
    for match in TOKEN.finditer(expr):
        assert match.start() == end, f"cannot read {expr[end:]!r} in {expr!r}"
        end = match.end()
        if match.lastgroup != "space":
            tokens.append((match.lastgroup, match.group()))
    assert end == len(expr), f"cannot read {expr[end:]!r} in {expr!r}"
    names: set[str] = set()
    braces = brackets = 0
    skip_group = False  # inside the label list of by (...), on (...) and the like
    for i, (kind, text) in enumerate(tokens):
        after = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "open":
            braces += text == "{"
            brackets += text == "["
        elif kind == "close":
            braces -= text == "}"
            brackets -= text == "]"
            skip_group = skip_group and text != ")"
        elif kind == "ident" and braces:
            if text == "__name__" and after == "=":
                names.add(tokens[i + 2][1].strip("\"'`"))
        elif kind == "ident" and not (brackets or skip_group):
            if text in GROUPING:
                skip_group = after == "("
            elif after == "(" or (text in AGGREGATIONS and after in GROUPING):
                pass  # a function or an aggregation
            elif text.lower() not in KEYWORDS:
                names.add(text)
    return names


def board() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(BOARD.read_text())
    return data


def panels() -> list[dict[str, Any]]:
    return [p for p in board()["panels"] if p["type"] != "row"]


def queries() -> dict[str, str]:
    """Every query of the board and of the alerts, by where it is."""
    found = {f"{p['title']} / {t['refId']}": t["expr"] for p in panels() for t in p["targets"]}
    groups = yaml.safe_load(RULES.read_text())["groups"]
    found |= {f"alert {r['alert']}": r["expr"] for g in groups for r in g["rules"]}
    return found


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job="loopline-serving"} == 0', {"up"}),
        (
            "histogram_quantile(0.99, sum by (service_name, le) "
            '(rate(bentoml_service_request_duration_seconds_bucket{endpoint="/predict"}[5m])))',
            {"bentoml_service_request_duration_seconds_bucket"},
        ),
        (
            '(sum(increase(loopline_predictions_total{arm!="shadow"}[10m])) or vector(0)) == 0\n'
            '  and on () max(up{job="loopline-serving"}) == 1',
            {"loopline_predictions_total", "up"},
        ),
        (
            "sum without (instance) (rate(a_total[$__rate_interval])) / ignoring(arm) "
            "group_left(model_version) b offset 5m",
            {"a_total", "b"},
        ),
        ('count({__name__="c", x="sum"}) > bool 1e-3', {"c"}),
        ('label_replace(d, "dst", "$1", "src", "(.*)")', {"d"}),
    ],
)
def test_metric_names_of_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_the_board_parses_and_every_panel_queries_prometheus() -> None:
    data = board()
    assert data["uid"] == "loopline" and data["title"] == "Loopline"
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    (variable,) = data["templating"]["list"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    for panel in panels():
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel["targets"]:
            assert metric_names(target["expr"]), (panel["title"], target["expr"])


def test_the_board_shows_what_the_issue_asks_for() -> None:
    """Request rate, latency, traffic per version and per arm, drift share, live accuracy."""
    shown: dict[str, str] = {}
    for where, expr in queries().items():
        title = where.split(" / ")[0]
        shown[title] = f"{shown.get(title, '')}\n{expr}"
    wanted = {
        "Request rate by status": "bentoml_service_request_total",
        "Latency of /predict": "bentoml_service_request_duration_seconds_bucket",
        "Predictions per version": "loopline_predictions_total",
        "Predictions per arm": "loopline_predictions_total",
        "Drift share": "loopline_drift_share",
        "Live accuracy": "loopline_live_roc_auc",
    }
    for title, metric in wanted.items():
        assert metric in metric_names(shown[title]), title
    assert "by (model_version)" in shown["Predictions per version"]
    assert "by (arm)" in shown["Predictions per arm"]


def test_provisioning_points_grafana_at_prometheus_and_the_board() -> None:
    provisioning = GRAFANA / "provisioning"
    (datasources,) = sorted((provisioning / "datasources").glob("*.yml"))
    (source,) = yaml.safe_load(datasources.read_text())["datasources"]
    assert source["type"] == "prometheus" and source["access"] == "proxy"
    assert source["url"] == "${LOOPLINE_PROMETHEUS_URL}"
    (dashboards,) = sorted((provisioning / "dashboards").glob("*.yml"))
    (provider,) = yaml.safe_load(dashboards.read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    assert yaml.safe_load(datasources.read_text())["apiVersion"] == 1


# --- against a real server ------------------------------------------------------------


@pytest.fixture(scope="module")
def scraped(built: dict[str, Any], params: Any, paths: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """/metrics of a real server after predictions, a refusal, feedback and a monitor run."""
    from loopline.monitoring import loop
    from tests.e2e.test_rollouts import ensure_production
    from tests.ids import known_customers

    ensure_production(params, paths, built["package"]["model"], "test-grafana")
    keys = platform.dev_keys(paths)
    started_at = datetime.now(UTC)
    service = platform.start_serving(paths, platform.free_port(), workers=1)
    headers = {"Authorization": f"Bearer {keys['client']}"}
    try:
        with (
            platform.running(service),
            httpx.Client(base_url=service.url, headers=headers, timeout=30) as http,
        ):
            platform.wait_ready(service, "/readyz")
            asked = []
            for n, customer in enumerate(known_customers(paths, params, 40)):
                answer = http.post("/predict", json={"customer_id": customer})
                assert answer.status_code == 200, answer.text
                request = answer.json()["request_id"]
                asked.append(request)
                labelled = http.post("/feedback", json={"request_id": request, "label": n % 2})
                assert labelled.status_code == 200, labelled.text
            assert http.post("/predict", json={"customer_id": 987654321}).status_code == 404
            _wait_for_log(paths, asked, started_at)
            window = loop.monitor_window(params, paths)
            assert window.get("roc_auc") is not None, window
            metrics = httpx.get(f"{service.url}/metrics")
            assert metrics.status_code == 200
            yield metrics.text, window
    finally:
        _forget_windows(paths, params.serving.model_name, started_at)


def _wait_for_log(paths: Any, requests: list[str], since: datetime) -> None:
    """Until the service's logs hold every prediction and its feedback (flushed each second)."""
    from loopline.serving.predlog_read import labelled_predictions

    deadline = time.monotonic() + WAIT_S
    while True:
        rows = labelled_predictions(paths.serving_log, since=since)
        if set(requests) <= set(rows["request_id"]) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert set(requests) <= set(rows["request_id"]), "the service's logs never held them all"


def _forget_windows(paths: Any, model_name: str, since: datetime) -> None:
    """Later modules judge windows (cooldowns, recent references): this one's must not count."""
    from sqlalchemy import delete

    from loopline.registry import Registry
    from loopline.registry.schema import DriftWindowRow

    table = DriftWindowRow.__table__
    with Registry(paths.registry_url) as registry, registry.engine.begin() as connection:
        connection.execute(
            delete(table).where(table.c.model_name == model_name, table.c.computed_at >= since)
        )


def exported(text: str) -> set[str]:
    """Names with samples on /metrics; a histogram also by its own name."""
    from prometheus_client.parser import text_string_to_metric_families

    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        samples = {sample.name for sample in family.samples}
        names |= samples
        if family.type == "histogram" and samples:
            names.add(family.name)
    return names


def known(name: str, names: set[str]) -> bool:
    base = next((name.removesuffix(s) for s in HISTOGRAM_SERIES if name.endswith(s)), name)
    return name in names or base in names or name in SYNTHETIC


@pytest.mark.e2e
def test_every_query_names_a_metric_the_service_exports(scraped: tuple[str, Any]) -> None:
    names = exported(scraped[0])
    missing = {
        where: sorted(n for n in metric_names(expr) if not known(n, names))
        for where, expr in queries().items()
    }
    assert {where: m for where, m in missing.items() if m} == {}


@pytest.mark.e2e
def test_the_monitor_metrics_are_those_of_its_last_window(
    scraped: tuple[str, dict[str, Any]], params: Any
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    text, window = scraped
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    labels = (("model_name", params.serving.model_name), ("model_version", window["model_version"]))
    for metric, key in [
        ("loopline_drift_share", "drift_share"),
        ("loopline_drifted_features", "drifted_features"),
        ("loopline_live_roc_auc", "roc_auc"),
        ("loopline_live_accuracy", "accuracy"),
        ("loopline_monitor_window_labels", "n_labels"),
        ("loopline_monitor_window_rows", "rows"),
    ]:
        assert samples[metric, labels] == pytest.approx(window[key]), metric
    end = samples["loopline_monitor_window_end_timestamp_seconds", labels]
    assert end == pytest.approx(window["window_end"].timestamp())
    for event in ("loopline.drift.detected", "loopline.performance.degraded"):
        counted = (("event", event), ("model_name", params.serving.model_name))
        assert samples["loopline_monitor_events_total", counted] >= 0
