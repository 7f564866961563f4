"""A real ``bentoml serve`` refuses a model file that changed after training or carries a
payload, names it, and goes on serving what it served before.

The registry is pointed at the bad version directly, as someone with write access to the
model store and the registry could; the gates that would refuse it on the way in are
tested in tests/integration/test_promotion.py, and the scan with a matching hash (the
second line of defence) in-process there too, since the hash check comes first here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopline import packaging, platform, promotion
from tests.e2e.test_rollouts import ensure_production
from tests.ids import known_customers
from tests.integration.test_promotion import _plant, package_again

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def live(built: dict[str, Any], params: Any, paths: Any) -> Iterator[dict[str, Any]]:
    good = ensure_production(params, paths, built["package"]["model"], "test-model-path")
    keys = platform.dev_keys(paths)
    service = platform.start_serving(paths, platform.free_port(), built["package"]["model"], 1)
    try:
        with platform.running(service):
            platform.wait_ready(service, "/readyz")
            with httpx.Client(base_url=service.url, timeout=30) as http:
                yield {"http": http, "keys": keys, "good": good, "log": service.log}
    finally:
        # Later modules serve the production version: leave a sound one there.
        fresh = package_again(params, paths)
        promotion.open_registry(paths).request_promotion(
            fresh, actor="test-model-path", reason="restore a sound production", gate_results=[]
        )


def _served_by(live: dict[str, Any], customer: int) -> str:
    headers = {"Authorization": f"Bearer {live['keys']['client']}"}
    answered = live["http"].post("/predict", json={"customer_id": customer}, headers=headers)
    assert answered.status_code == 200, answered.text
    return str(answered.json()["predictions"][0]["model_version"])


def _reload(live: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {live['keys']['admin']}"}
    return live["http"].post("/admin/reload", json={}, headers=headers)


@pytest.mark.parametrize("harm", ["tampered", "planted"])
def test_a_bad_production_file_is_refused_and_the_last_good_model_serves(
    live: dict[str, Any], params: Any, paths: Any, tmp_path: Path, harm: str
) -> None:
    customer = known_customers(paths, params, 1)[0]
    before = _served_by(live, customer)
    bad = package_again(params, paths)
    model_file, _ = packaging.stored_files(bad)
    marker = tmp_path / "payload-ran"
    if harm == "tampered":
        with model_file.open("ab") as handle:
            handle.write(b"tampered")
    else:
        _plant(model_file, marker)  # a pipeline whose unpickling calls os.system
    registry = promotion.open_registry(paths)
    registry.request_promotion(bad, actor="attacker", reason=harm, gate_results=[])

    refused = _reload(live)
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["code"] == "model_refused"
    assert f"model {bad}" in body["error"] and "refusing to load it" in body["error"]
    assert _served_by(live, customer) == before != bad
    assert not marker.exists()
    assert "refusing to load it" in live["log"].read_text(errors="replace")
