"""Nothing in production: a real ``bentoml serve`` over HTTP, before and after a promotion.

Each test has a registry of its own holding one fresh version and nothing in production,
and serves that version as the Bento's model (``LOOPLINE_MODEL_TAG``). By default the
service refuses to predict (503, naming the command that promotes a version) while
``/readyz`` stays ready; with ``serving.allow_unpromoted`` the Bento's model answers as
the ``unpromoted`` arm. Either way, a promotion is picked up by the watcher without a
restart and the same model then answers as the ``champion``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from loopline import platform, promotion
from loopline.serving.predlog_read import read_predictions
from tests.e2e.test_rollouts import fresh_version, private_registry
from tests.ids import known_customers

pytestmark = pytest.mark.e2e

ACTOR = "test-unpromoted"
POLL_S = 0.05  # between two looks at the server: how often, not how long


@dataclass
class Live:
    service: platform.Service
    client: httpx.Client

    def predict(self, customer: int) -> httpx.Response:
        return self.client.post("/predict", json={"customer_id": customer})

    def table(self) -> dict[str, Any]:
        response = self.client.post("/model", json={})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def poll(self) -> None:
        """One pause between looks; fails at once if the server has stopped."""
        code = self.service.process.poll()
        assert code is None, f"the server exited with {code}: {self.service.log}"
        time.sleep(POLL_S)

    def wait_for_counter(self, target: int) -> dict[str, Any]:
        """Until the served routing table reflects registry change ``target``."""
        table = self.table()
        while table["registry_counter"] < target:
            self.poll()
            table = self.table()
        return table


@pytest.fixture
def version(built: dict[str, Any], params: Any, paths: Any, tmp_path: Path) -> Iterator[str]:
    """A fresh version in a registry of this test's own, with nothing in production."""
    with private_registry(tmp_path):
        yield fresh_version(params, paths)


@pytest.fixture
def customer(paths: Any, params: Any) -> int:
    return known_customers(paths, params, 1)[0]


@contextmanager
def serving(paths: Any, version: str, *, allow_unpromoted: bool = False) -> Iterator[Live]:
    """One worker serving ``version`` as the Bento's model; params.yaml restored after."""
    original = paths.params_file.read_text()
    if allow_unpromoted:
        edited = yaml.safe_load(original)
        edited["serving"]["allow_unpromoted"] = True
        paths.params_file.write_text(yaml.safe_dump(edited, sort_keys=False))
    headers = {"Authorization": f"Bearer {platform.dev_keys(paths)['client']}"}
    try:
        service = platform.start_serving(paths, platform.free_port(), version, workers=1)
        with (
            platform.running(service),
            httpx.Client(base_url=service.url, headers=headers, timeout=30) as client,
        ):
            platform.wait_ready(service, "/readyz")
            yield Live(service, client)
    finally:
        paths.params_file.write_text(original)


def promote(paths: Any, params: Any, version: str) -> int:
    """Promote through the registry (no gates: serving is tested here); the new counter."""
    registry = promotion.open_registry(paths)
    registry.request_promotion(
        version, actor=ACTOR, reason="a production version at last", gate_results=[]
    )
    return registry.change_counter(params.serving.model_name)


def test_no_production_is_a_503_naming_the_command_until_one_is_promoted(
    version: str, customer: int, params: Any, paths: Any
) -> None:
    with serving(paths, version) as live:
        # Up and warm, so `make up` and orchestrators see it start; /predict says why not.
        assert httpx.get(f"{live.service.url}/readyz").status_code == 200
        table = live.table()
        assert (table["champion"], table["unpromoted"]) == (None, None), table

        for body in ({"customer_id": customer}, {"customer_ids": [customer, customer + 1]}):
            response = live.client.post("/predict", json=body)
            assert response.status_code == 503, response.text
            error = response.json()
            assert set(error) == {"error", "code", "detail", "request_id"}, error
            assert error["code"] == "no_production", error
            assert error["error"] == (
                f"no production version of model {params.serving.model_name!r} yet: promote "
                "one with `loopline models promote <version> --reason ...` "
                "(`loopline models list` shows the versions)"
            )
            assert error["request_id"] == response.headers["x-request-id"]
        metrics = httpx.get(f"{live.service.url}/metrics").text
        assert 'loopline_errors_total{reason="no_production"}' in metrics

        table = live.wait_for_counter(promote(paths, params, version))
        assert table["champion"] == version, table
        response = live.predict(customer)
        assert response.status_code == 200, response.text
        (prediction,) = response.json()["predictions"]
        assert (prediction["arm"], prediction["model_version"]) == ("champion", version)


def test_allow_unpromoted_answers_with_the_bentos_model_as_unpromoted(
    version: str, customer: int, params: Any, paths: Any
) -> None:
    with serving(paths, version, allow_unpromoted=True) as live:
        table = live.table()
        assert (table["champion"], table["unpromoted"]) == (None, version), table
        since = datetime.now(UTC)
        response = live.predict(customer)
        assert response.status_code == 200, response.text
        (prediction,) = response.json()["predictions"]
        assert (prediction["arm"], prediction["model_version"]) == ("unpromoted", version)
        metrics = httpx.get(f"{live.service.url}/metrics").text.splitlines()
        counted = [m for m in metrics if m.startswith("loopline_predictions_total{")]
        assert any('arm="unpromoted"' in m and f'"{version}"' in m for m in counted), counted
        assert not any('arm="champion"' in m for m in counted), counted

        # The prediction log names the arm too (it flushes every second: look until it has).
        rid = prediction["request_id"]
        logged = read_predictions(paths.serving_log, since=since)
        while rid not in set(logged["request_id"]):
            live.poll()
            logged = read_predictions(paths.serving_log, since=since)
        row = logged[logged["request_id"] == rid]
        assert row["arm"].tolist() == ["unpromoted"] and not row["shadow"].any()
        assert row["model_version"].tolist() == [version]

        live.wait_for_counter(promote(paths, params, version))
        response = live.predict(customer)
        assert response.status_code == 200, response.text
        (prediction,) = response.json()["predictions"]
        assert (prediction["arm"], prediction["model_version"]) == ("champion", version)
