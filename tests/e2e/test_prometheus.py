"""A real Prometheus (Debian's binary) scraping a real ``bentoml serve``, read back through
Prometheus's HTTP API: the request-rate series, the project's rules loaded, and a test
alert firing. Every wait is a poll for a condition, with a hang guard.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopline import platform, prometheus_local
from tests.e2e.test_rollouts import ensure_production
from tests.ids import known_customers

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        prometheus_local.binary() is None,
        reason="no prometheus: run `bash scripts/ensure_promtool.sh` as root",
    ),
]
REPO = Path(__file__).resolve().parents[2]
BOARD = REPO / "deploy" / "grafana" / "dashboards" / "loopline.json"
HANG_GUARD_S = 180  # a broken setup fails here instead of hanging; never an expectation
TEST_ALERT = "LooplineTestTraffic"
TEST_RULES = f"""
groups:
  - name: loopline-e2e
    rules:
      - alert: {TEST_ALERT}
        expr: sum(rate(loopline_predictions_total{{arm!="shadow"}}[10s])) > 0
        for: 0s
        labels:
          severity: test
        annotations:
          summary: "predictions are being served"
"""


@pytest.fixture(scope="module")
def serving(built: dict[str, Any], params: Any, paths: Any) -> Iterator[platform.Service]:
    ensure_production(params, paths, built["package"]["model"], "test-prometheus")
    # One worker: this module tests scraping, not failover; a second one only costs start-up.
    service = platform.start_serving(paths, platform.free_port(), workers=1)
    with platform.running(service):
        platform.wait_ready(service, "/readyz")
        yield service


@pytest.fixture(scope="module")
def prometheus(
    serving: platform.Service, paths: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[platform.Service]:
    """The project's config and rules, a test rule beside them, a scrape every second."""
    rules = tmp_path_factory.mktemp("prometheus") / "test_rules.yml"
    rules.write_text(TEST_RULES)
    started = prometheus_local.start_prometheus(
        paths,
        platform.free_port(),
        serving.url,
        source=REPO / prometheus_local.SOURCE,
        interval="1s",
        extra_rules=[rules],
    )
    with platform.running(started):
        platform.wait_ready(started, "/-/ready", timeout=HANG_GUARD_S)
        yield started


@pytest.fixture(scope="module")
def traffic(serving: platform.Service, paths: Any, params: Any) -> Iterator[None]:
    """Predictions at a steady trickle for as long as the module runs."""
    keys = platform.dev_keys(paths)
    customers = known_customers(paths, params, 20)
    stop = threading.Event()
    failures: list[str] = []

    def drive() -> None:
        headers = {"Authorization": f"Bearer {keys['client']}"}
        with httpx.Client(base_url=serving.url, headers=headers, timeout=30) as http:
            n = 0
            while not stop.is_set():
                answer = http.post("/predict", json={"customer_id": customers[n % len(customers)]})
                if answer.status_code != 200:
                    failures.append(answer.text)
                n += 1
                stop.wait(0.1)

    driver = threading.Thread(target=drive, name="traffic", daemon=True)
    driver.start()
    yield
    stop.set()
    driver.join(timeout=60)
    assert not failures, failures[:3]


def api(prometheus: platform.Service, path: str, **params: str) -> Any:
    answer = httpx.get(f"{prometheus.url}/api/v1/{path}", params=params, timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "success", body
    return body["data"]


def poll(what: str, found: Callable[[], Any]) -> Any:
    """``found()``'s first truthy answer; fails after the hang guard naming ``what``."""
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        answer = found()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"Prometheus never showed {what} (last answer: {answer!r})")
        time.sleep(0.5)


def query(prometheus: platform.Service, expr: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = api(prometheus, "query", query=expr)["result"]
    return result


def test_the_service_is_a_healthy_target(prometheus: platform.Service) -> None:
    def up() -> list[dict[str, Any]]:
        active = api(prometheus, "targets")["activeTargets"]
        return [t for t in active if t["health"] == "up"]

    (target,) = poll("the service as a target that is up", up)
    assert target["labels"]["job"] == prometheus_local.JOB
    assert target["scrapeUrl"].endswith("/metrics")


def test_the_request_rate_series(
    prometheus: platform.Service, traffic: None, params: Any, paths: Any, built: dict[str, Any]
) -> None:
    version = ensure_production(params, paths, built["package"]["model"], "test-prometheus")
    requests = 'bentoml_service_request_total{endpoint="/predict"}'
    by_status = f"sum by (http_response_code) (rate({requests}[10s]))"
    (ok,) = poll(
        "a /predict request rate",
        lambda: [s for s in query(prometheus, by_status) if float(s["value"][1]) > 0],
    )
    assert ok["metric"] == {"http_response_code": "200"}
    predictions = 'loopline_predictions_total{job="loopline-serving"}'
    per_arm = f"sum by (model_version, arm) (rate({predictions}[10s]))"
    (served,) = poll(
        "predictions per version and arm",
        lambda: [s for s in query(prometheus, per_arm) if float(s["value"][1]) > 0],
    )
    assert served["metric"] == {"model_version": version, "arm": "champion"}


def test_the_project_rules_are_loaded_and_a_test_alert_fires(
    prometheus: platform.Service, traffic: None
) -> None:
    import yaml

    groups = {g["name"]: g for g in api(prometheus, "rules")["groups"]}
    project = yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yml").read_text())
    for group in project["groups"]:
        loaded = groups[group["name"]]["rules"]
        assert [r["name"] for r in loaded] == [r["alert"] for r in group["rules"]]
        assert {r["health"] for r in loaded} <= {"ok", "unknown"}, loaded

    def firing() -> list[dict[str, Any]]:
        alerts = api(prometheus, "alerts")["alerts"]
        return [
            a for a in alerts if a["labels"]["alertname"] == TEST_ALERT and a["state"] == "firing"
        ]

    (alert,) = poll(f"{TEST_ALERT} firing", firing)
    assert alert["labels"]["severity"] == "test"
    assert alert["annotations"]["summary"] == "predictions are being served"
    names = {a["labels"]["alertname"] for a in api(prometheus, "alerts")["alerts"]}
    assert "LooplineServiceDown" not in names


def test_every_board_query_runs_in_prometheus(prometheus: platform.Service, traffic: None) -> None:
    """Each of the board's queries, as Grafana would send it, is valid PromQL to Prometheus."""
    board = json.loads(BOARD.read_text())
    for panel in (p for p in board["panels"] if p["type"] != "row"):
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "1m")
            answer = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": expr})
            assert answer.status_code == 200, (panel["title"], expr, answer.text)


def test_prometheus_keeps_its_data_in_the_state_folder(
    prometheus: platform.Service, paths: Any
) -> None:
    data = prometheus_local.state_folder(paths) / "data"
    assert poll("a TSDB under the state folder", lambda: list(data.glob("wal/*")))
    assert prometheus.log.is_relative_to(paths.state)
