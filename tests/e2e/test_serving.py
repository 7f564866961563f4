"""``bentoml serve`` in a subprocess, called over real HTTP."""

from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest

from loopline import platform

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(built: dict[str, Any], paths: Any) -> Iterator[str]:
    service = platform.start_serving(paths, platform.free_port(), built["package"]["model"])
    with platform.running(service):
        platform.wait_ready(service, "/readyz")
        yield service.url


@pytest.fixture(scope="module")
def customers(paths: Any) -> list[int]:
    return sorted(pd.read_parquet(paths.ingested)["customer_id"].unique().tolist())[:5]


def test_single_prediction(server: str, customers: list[int], built: dict[str, Any]) -> None:
    response = httpx.post(f"{server}/predict", json={"customer_id": customers[0]})
    assert response.status_code == 200, response.text
    body = response.json()
    (prediction,) = body["predictions"]
    assert prediction["customer_id"] == customers[0]
    assert 0.0 <= prediction["probability"] <= 1.0
    assert prediction["label"] in (0, 1)
    assert prediction["model_version"] == built["package"]["model"]
    assert len(prediction["request_id"]) == 32


def test_batch_prediction(server: str, customers: list[int]) -> None:
    response = httpx.post(f"{server}/predict", json={"customer_ids": customers})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["customer_id"] for p in predictions] == customers
    assert len({p["request_id"] for p in predictions}) == 1


def test_same_answer_as_the_model_in_process(
    server: str, customers: list[int], built: dict[str, Any], paths: Any, params: Any
) -> None:
    from loopline import features, packaging

    model, _ = packaging.load_model(built["package"]["model"])
    values = features.online_features(
        features.feature_store(paths), params.features.service, "customer_id", customers[:1]
    )
    expected = model.predict_proba(pd.DataFrame(values)[list(model.feature_names_in_)])[0, 1]
    served = httpx.post(f"{server}/predict", json={"customer_id": customers[0]}).json()
    assert served["predictions"][0]["probability"] == pytest.approx(expected, abs=1e-6)


def test_unknown_customer_is_a_404_naming_it(server: str, customers: list[int]) -> None:
    response = httpx.post(f"{server}/predict", json={"customer_ids": [customers[0], 987654321]})
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
def test_malformed_body_is_a_400_with_field_errors(server: str, body: dict[str, Any]) -> None:
    response = httpx.post(f"{server}/predict", json=body)
    assert response.status_code == 400, response.text
    assert "customer_id" in response.text


@pytest.mark.parametrize("body", [{}, {"customer_id": 1, "customer_ids": [1]}])
def test_exactly_one_of_the_two_fields(server: str, body: dict[str, Any]) -> None:
    response = httpx.post(f"{server}/predict", json=body)
    assert response.status_code == 400
    assert "exactly one" in response.text


def test_not_json_is_a_client_error(server: str) -> None:
    response = httpx.post(
        f"{server}/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500


def test_health_and_metrics(server: str) -> None:
    assert httpx.get(f"{server}/readyz").status_code == 200
    assert httpx.get(f"{server}/livez").status_code == 200
    metrics = httpx.get(f"{server}/metrics")
    assert metrics.status_code == 200
    assert "bentoml_service_request_total" in metrics.text or "request" in metrics.text
