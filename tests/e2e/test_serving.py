"""``bentoml serve`` in a subprocess, called over real HTTP."""

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import psutil
import pytest

from loopline import platform
from loopline.serving.workers import NATIVE_THREAD_VARIABLES
from tests.e2e.test_rollouts import ensure_production
from tests.ids import known_customers, pseudonym_of

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def keys(paths: Any) -> dict[str, str]:
    return platform.dev_keys(paths)


@pytest.fixture(scope="module")
def service(
    built: dict[str, Any], params: Any, paths: Any, keys: dict[str, str]
) -> Iterator[platform.Service]:
    # Nothing answers without a production version (tests/e2e/test_unpromoted.py).
    ensure_production(params, paths, built["package"]["model"], "test-serving")
    # No worker count given: the default (one per CPU) is what this module serves with.
    started = platform.start_serving(paths, platform.free_port(), built["package"]["model"])
    with platform.running(started):
        platform.wait_ready(started, "/readyz")
        yield started


@pytest.fixture(scope="module")
def server(service: platform.Service) -> str:
    return service.url


@pytest.fixture(scope="module")
def client(server: str, keys: dict[str, str]) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {keys['client']}"}
    with httpx.Client(base_url=server, headers=headers, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def customers(paths: Any, params: Any) -> list[int]:
    return known_customers(paths, params, 5)


def serving_now(paths: Any, params: Any, built: dict[str, Any]) -> str:
    """What should serve: the registry's production version (other tests promote)."""
    return ensure_production(params, paths, built["package"]["model"], "test-serving")


def test_single_prediction(
    client: httpx.Client, customers: list[int], built: dict[str, Any], paths: Any, params: Any
) -> None:
    response = client.post("/predict", json={"customer_id": customers[0]})
    assert response.status_code == 200, response.text
    body = response.json()
    (prediction,) = body["predictions"]
    assert prediction["customer_id"] == customers[0]
    assert 0.0 <= prediction["probability"] <= 1.0
    assert prediction["label"] in (0, 1)
    assert prediction["model_version"] == serving_now(paths, params, built)
    assert prediction["arm"] == "champion"
    assert len(prediction["request_id"]) == 32


def test_batch_prediction(client: httpx.Client, customers: list[int]) -> None:
    response = client.post("/predict", json={"customer_ids": customers})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["customer_id"] for p in predictions] == customers
    assert len({p["request_id"] for p in predictions}) == 1


def test_same_answer_as_the_model_in_process(
    client: httpx.Client, customers: list[int], built: dict[str, Any], paths: Any, params: Any
) -> None:
    from loopline import features, packaging

    model, _ = packaging.load_model(serving_now(paths, params, built))
    # The store knows the customer by the pseudonym ingestion gave them.
    values = features.online_features(
        features.feature_store(paths),
        params.features.service,
        "customer_id",
        [pseudonym_of(paths, customers[0])],
    )
    expected = model.predict_proba(pd.DataFrame(values)[list(model.feature_names_in_)])[0, 1]
    served = client.post("/predict", json={"customer_id": customers[0]}).json()
    assert served["predictions"][0]["probability"] == pytest.approx(expected, abs=1e-6)


def test_unknown_customer_is_a_404_naming_it(client: httpx.Client, customers: list[int]) -> None:
    response = client.post("/predict", json={"customer_ids": [customers[0], 987654321]})
    assert response.status_code == 404
    assert "987654321" in response.text


@pytest.mark.parametrize(
    "body",
    [
        {"customer_id": "abc"},
        {"customer_id": -1},
        {"customer_ids": []},
        {"customer_ids": "1,2"},
        {"customer_ids": list(range(1001))},
    ],
)
def test_malformed_body_is_a_400_with_field_errors(
    client: httpx.Client, body: dict[str, Any]
) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == 400, response.text
    assert "customer_id" in response.text


@pytest.mark.parametrize("body", [{}, {"customer_id": 1, "customer_ids": [1]}])
def test_exactly_one_of_the_two_fields(client: httpx.Client, body: dict[str, Any]) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == 400
    assert "exactly one" in response.text


def test_not_json_is_a_client_error(client: httpx.Client) -> None:
    response = client.post(
        "/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500


def test_health_and_metrics(server: str, client: httpx.Client, customers: list[int]) -> None:
    assert httpx.get(f"{server}/readyz").status_code == 200
    assert httpx.get(f"{server}/livez").status_code == 200
    client.post("/predict", json={"customer_id": customers[0]})
    metrics = httpx.get(f"{server}/metrics")
    assert metrics.status_code == 200
    assert "loopline_predictions_total" in metrics.text
    assert 'arm="champion"' in metrics.text
    assert "loopline_prediction_latency_seconds_bucket" in metrics.text


def test_missing_or_wrong_key_is_401(server: str, customers: list[int]) -> None:
    missing = httpx.post(f"{server}/predict", json={"customer_id": customers[0]})
    assert missing.status_code == 401
    assert "API key" in missing.text
    wrong = httpx.post(
        f"{server}/predict",
        json={"customer_id": customers[0]},
        headers={"Authorization": "Bearer ll_client_not-a-real-key"},
    )
    assert wrong.status_code == 401


def test_client_key_cannot_change_traffic(client: httpx.Client) -> None:
    response = client.post("/admin/traffic", json={"policy": "canary", "reason": "try it"})
    assert response.status_code == 403
    assert "admin" in response.text


def test_feedback_by_request_id(client: httpx.Client, customers: list[int]) -> None:
    answer = client.post("/predict", json={"customer_id": customers[0]}).json()
    response = client.post("/feedback", json={"request_id": answer["request_id"], "label": 1})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    bad = client.post("/feedback", json={"label": 1})
    assert bad.status_code == 400
    assert client.post("/feedback", json={"request_id": "x", "label": 3}).status_code == 400


def test_one_worker_per_cpu_each_with_one_native_thread(service: platform.Service) -> None:
    from bentoml._internal.resource import system_resources

    workers = platform.serving_workers(service)
    # BentoML's own CPU count for workers="cpu_count" (it honours cgroup CPU limits).
    assert len(workers) == max(1, int(system_resources()["cpu"]))
    for pid in workers:
        environment = psutil.Process(pid).environ()
        for name in NATIVE_THREAD_VARIABLES:
            # Pinned to 1 unless the operator chose a value for the server's environment.
            assert environment.get(name) == os.environ.get(name, "1"), (pid, name)


@pytest.mark.parametrize(
    "call, status, code, says",
    [
        (
            lambda c, s: c.post("/predict", json={"customer_id": 987654321}),
            404,
            "not_found",
            "987654321",
        ),
        (
            lambda c, s: c.post("/predict", json={"customer_id": "abc"}),
            400,
            "invalid_request",
            "customer_id",
        ),
        (lambda c, s: c.post("/predict", json={}), 400, "invalid_request", "exactly one"),
        (
            lambda c, s: httpx.post(f"{s}/predict", json={"customer_id": 1}),
            401,
            "unauthorized",
            "API key",
        ),
        (
            lambda c, s: c.post("/admin/traffic", json={"policy": "canary", "reason": "try it"}),
            403,
            "forbidden",
            "admin",
        ),
        (lambda c, s: c.post("/no-such-route", json={}), 404, "not_found", "Not Found"),
    ],
)
def test_every_error_has_the_one_documented_shape(
    client: httpx.Client, server: str, call: Any, status: int, code: str, says: str
) -> None:
    response = call(client, server)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "code", "detail", "request_id"}, body
    assert body["code"] == code and says in body["error"], body
    assert body["request_id"] == response.headers["x-request-id"]
    assert isinstance(body["detail"], list)


def test_bad_requests_batched_with_good_ones_fail_alone(
    client: httpx.Client, keys: dict[str, str], server: str, paths: Any, params: Any
) -> None:
    """Under concurrent load, unknown customers share batches with good requests.

    Every good answer must equal the answer the same customer gets alone, every bad one is
    a 404 naming its customer, nothing is shed (503), and each good answer is in the
    prediction log under its own request id. Batching itself is checked on the server's
    histogram: with 32 requests in flight on a worker that scores one batch at a time,
    a run of 640 requests without one batch of two would need the event loop never to read
    a request while a batch is running.
    """
    import threading
    import time

    from loopline.serving.predlog_read import read_predictions

    known = known_customers(paths, params, 40)
    alone = {
        i: client.post("/predict", json={"customer_id": i}).json()["predictions"][0]["probability"]
        for i in known
    }
    since = pd.Timestamp.now(tz="UTC")
    results: list[tuple[int, int, dict[str, Any]]] = []
    lock = threading.Lock()

    def caller(k: int) -> None:
        headers = {"Authorization": f"Bearer {keys['client']}"}
        with httpx.Client(base_url=server, headers=headers, timeout=30) as http:
            for n in range(20):
                bad = (k + n) % 5 == 0
                customer = 900_000_000 + k * 100 + n if bad else known[(k * 7 + n) % len(known)]
                response = http.post("/predict", json={"customer_id": customer})
                with lock:
                    results.append((customer, response.status_code, response.json()))

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 640
    good = [(c, b) for c, status, b in results if c < 900_000_000]
    for customer, status, body in results:
        if customer >= 900_000_000:
            assert status == 404 and str(customer) in body["error"], body
        else:
            assert status == 200, body
            (prediction,) = body["predictions"]
            assert prediction["customer_id"] == customer
            assert prediction["probability"] == alone[customer]
    metrics = httpx.get(f"{server}/metrics").text
    assert 'loopline_errors_total{reason="overloaded"}' not in metrics
    assert _batches_larger_than_one(metrics) > 0

    # The log holds the pseudonym of each customer asked about, never the id itself.
    expected = {b["request_id"]: pseudonym_of(paths, c) for c, b in good}
    deadline = time.monotonic() + 60
    while True:  # the log flushes every second; wait for every row, not for a fixed time
        rows = read_predictions(paths.serving_log, since=since.to_pydatetime())
        logged = rows[rows["request_id"].isin(list(expected)) & ~rows["shadow"]]
        if len(logged) >= len(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert dict(zip(logged["request_id"], logged["entity_id"], strict=True)) == expected


def _batches_larger_than_one(metrics: str) -> float:
    total = one = 0.0
    for line in metrics.splitlines():
        if line.startswith("loopline_batch_customers_count"):
            total += float(line.rsplit(" ", 1)[1])
        if line.startswith("loopline_batch_customers_bucket") and 'le="1.0"' in line:
            one += float(line.rsplit(" ", 1)[1])
    return total - one
