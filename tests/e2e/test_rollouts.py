"""Traffic policies on a real server over HTTP, driven only by the registry.

The module has a registry of its own (``LOOPLINE_REGISTRY_URL``, the supported setting):
other modules promote and roll back in the session registry, and some of them expect
its champion to be the model the flows built. Here two fresh versions, A (champion) and
B (challenger), are registered, promoted and routed explicitly, whatever the session
registry holds. The server is never restarted: every change is picked up by its watcher.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopline import platform, promotion, steps
from tests.ids import known_customers, pseudonym_of

pytestmark = pytest.mark.e2e

ACTOR = "test-rollouts"
# A correctness bound on "picked up without restart", not a performance target: the
# watcher polls every 0.5 s and may load a model file; 5 s means something is wrong.
PICKUP_LIMIT_S = 5.0
POLL_S = 0.02
FLUSH_WAIT_S = 15.0


# --- helpers shared with the other rollout modules -----------------------------------


@contextmanager
def private_registry(folder: Path) -> Iterator[str]:
    """Point this process (and any server started inside) at a fresh SQLite registry."""
    url = f"sqlite:///{folder / 'registry.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOOPLINE_REGISTRY_URL", url)
        yield url


def fresh_version(params: Any, paths: Any) -> str:
    """A newly registered version made from the built artifacts (as package_again does)."""
    return str(steps.package_step(params, paths, None)["model"])


def promote_now(params: Any, paths: Any, version: str, reason: str) -> None:
    """Promote through the gates, approving at once if the policy asks for an approver."""
    outcome = promotion.promote(params, paths, version, actor=ACTOR, reason=reason)
    if outcome.waiting_for is not None:
        promotion.approve(paths, version, actor=outcome.waiting_for, reason=reason)
    assert promotion.open_registry(paths).get(version).stage == "production"


def ensure_production(params: Any, paths: Any, version: str, actor: str) -> str:
    """The version in production, promoting ``version`` (no gates) when there is none.

    The service answers no prediction while nothing is in production (a 503 naming the
    promote command); modules testing serving itself promote the flows' model first.
    """
    registry = promotion.open_registry(paths)
    production = registry.production(params.serving.model_name)
    if production is not None:
        return str(production.version)
    reason = "serving tests need a production version"
    registry.request_promotion(version, actor=actor, reason=reason, gate_results=[])
    return version


@dataclass
class Live:
    """A running server plus the registry that drives it."""

    url: str
    client: httpx.Client
    admin: dict[str, str]
    registry: Any
    model_name: str
    delays: list[tuple[str, float]] = field(default_factory=list)

    def table(self) -> dict[str, Any]:
        response = self.client.post("/model", json={})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_for_counter(self, target: int, limit: float = 2 * PICKUP_LIMIT_S) -> dict[str, Any]:
        """Poll /model until the served table reflects registry change ``target``."""
        deadline = time.monotonic() + limit
        table = self.table()
        while table["registry_counter"] < target and time.monotonic() < deadline:
            time.sleep(POLL_S)
            table = self.table()
        return table

    def apply(self, what: str, change: Callable[[], Any]) -> tuple[dict[str, Any], float]:
        """Make a registry change, then measure how long the server takes to serve it."""
        change()
        committed = time.monotonic()
        target = self.registry.change_counter(self.model_name)
        table = self.wait_for_counter(target)
        delay = time.monotonic() - committed
        self.delays.append((what, delay))
        assert table["registry_counter"] >= target, f"{what}: not picked up after {delay:.1f} s"
        assert delay < PICKUP_LIMIT_S, f"{what}: picked up after {delay:.2f} s"
        return table, delay

    def predict(self, customer: int) -> dict[str, Any]:
        response = self.client.post("/predict", json={"customer_id": customer})
        assert response.status_code == 200, response.text
        (prediction,) = response.json()["predictions"]
        assert prediction["customer_id"] == customer
        return dict(prediction)


def check_arm(prediction: dict[str, Any], table: dict[str, Any]) -> None:
    """A prediction names the version of the arm it names, under the served table."""
    expected = table["champion"] if prediction["arm"] == "champion" else table["challenger"]
    assert prediction["arm"] in ("champion", "challenger"), prediction
    assert prediction["model_version"] == expected, (prediction, table)


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry_url(built: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with private_registry(tmp_path_factory.mktemp("rollouts")) as url:
        yield url


@pytest.fixture(scope="module")
def versions(registry_url: str, params: Any, paths: Any) -> dict[str, str]:
    """A is promoted through the gates; B waits as a candidate."""
    a, b = fresh_version(params, paths), fresh_version(params, paths)
    promote_now(params, paths, a, "rollout champion A")
    return {"A": a, "B": b}


@pytest.fixture(scope="module")
def live(versions: dict[str, str], params: Any, paths: Any, registry_url: str) -> Iterator[Live]:
    keys = platform.dev_keys(paths)
    # One worker: routing is what this module tests (two workers: test_zero_downtime.py).
    service = platform.start_serving(paths, platform.free_port(), versions["A"], workers=1)
    headers = {"Authorization": f"Bearer {keys['client']}"}
    with (
        platform.running(service),
        httpx.Client(base_url=service.url, headers=headers, timeout=30) as client,
    ):
        platform.wait_ready(service, "/readyz")
        registry = promotion.open_registry(paths)
        admin = {"Authorization": f"Bearer {keys['admin']}"}
        yield Live(service.url, client, admin, registry, params.serving.model_name)


@pytest.fixture(scope="module")
def customers(paths: Any, params: Any) -> list[int]:
    return known_customers(paths, params, 300)


def route(
    live: Live, params: Any, paths: Any, policy: str, share: float, challenger: str | None
) -> dict[str, Any]:

    def change() -> None:
        promotion.set_traffic(
            params,
            paths,
            policy=policy,
            challenger=challenger,
            share=share,
            actor=ACTOR,
            reason=f"{policy} at {share}",
        )

    table, _ = live.apply(f"set_traffic {policy} {share}", change)
    assert table["policy"] == policy
    assert table["challenger_share"] == share
    assert table["challenger"] == challenger
    return table


# --- tests ----------------------------------------------------------------------------


def test_canary_sends_about_its_share_to_the_challenger(
    live: Live, versions: dict[str, str], customers: list[int], params: Any, paths: Any
) -> None:
    table = route(live, params, paths, "canary", 0.3, challenger=versions["B"])
    assert table["champion"] == versions["A"]
    predictions = [live.predict(c) for c in customers[:300]]
    for prediction in predictions:
        check_arm(prediction, table)
    arms = Counter(p["arm"] for p in predictions)
    share = arms["challenger"] / len(predictions)
    # Binomial(300, 0.3): sd 0.026; the band is about +-4.5 sd wide.
    assert 0.18 <= share <= 0.42, arms


def test_ab_keeps_each_customer_on_one_arm(
    live: Live, versions: dict[str, str], customers: list[int], params: Any, paths: Any
) -> None:
    from loopline.serving.router import bucket

    table = route(live, params, paths, "ab", 0.5, challenger=versions["B"])
    seen: dict[int, set[str]] = {}
    for customer in customers[:60]:
        for _ in range(3):
            prediction = live.predict(customer)
            check_arm(prediction, table)
            seen.setdefault(customer, set()).add(prediction["arm"])
    assert all(len(arms) == 1 for arms in seen.values()), seen
    arms = Counter(next(iter(a)) for a in seen.values())
    assert arms["champion"] > 0 and arms["challenger"] > 0, arms
    # The assignment is the documented stable hash (of the pseudonym the service keys the
    # customer by), not a per-process draw.
    for customer, (arm,) in seen.items():
        assert arm == ("challenger" if bucket(pseudonym_of(paths, customer)) < 0.5 else "champion")


def test_shadow_answers_with_the_champion_and_logs_the_challenger(
    live: Live, versions: dict[str, str], customers: list[int], params: Any, paths: Any
) -> None:
    from loopline.serving.predlog_read import read_predictions

    table = route(live, params, paths, "shadow", 1.0, challenger=versions["B"])
    since = datetime.now(UTC)
    request_ids = set()
    for customer in customers[:30]:
        prediction = live.predict(customer)
        assert prediction["arm"] == "champion"
        assert prediction["model_version"] == versions["A"] == table["champion"]
        request_ids.add(prediction["request_id"])

    # The log flushes about once a second: wait (bounded) until every shadow row is in.
    deadline = time.monotonic() + FLUSH_WAIT_S
    while True:
        rows = read_predictions(paths.serving_log, since=since)
        rows = rows[rows["request_id"].isin(request_ids)]
        shadow = rows[rows["shadow"]]
        if set(shadow["request_id"]) == request_ids or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    served = rows[~rows["shadow"]]
    assert set(shadow["request_id"]) == request_ids
    assert set(served["request_id"]) == request_ids
    assert set(shadow["model_version"]) == {versions["B"]}
    assert set(shadow["arm"]) == {"challenger"}
    assert set(served["model_version"]) == {versions["A"]}
    assert set(served["arm"]) == {"champion"}
    assert len(shadow) == len(served) == len(request_ids)


def test_blue_green_flips_all_traffic_at_once(
    live: Live, versions: dict[str, str], customers: list[int], params: Any, paths: Any
) -> None:
    table = route(live, params, paths, "blue-green", 1.0, challenger=versions["B"])
    on_green = [live.predict(c) for c in customers[:40]]
    assert {(p["arm"], p["model_version"]) for p in on_green} == {("challenger", versions["B"])}
    check_arm(on_green[0], table)

    table = route(live, params, paths, "blue-green", 0.0, challenger=versions["B"])
    on_blue = [live.predict(c) for c in customers[:40]]
    assert {(p["arm"], p["model_version"]) for p in on_blue} == {("champion", versions["A"])}
    check_arm(on_blue[0], table)


def test_single_serves_the_champion_only(
    live: Live, versions: dict[str, str], customers: list[int], params: Any, paths: Any
) -> None:
    table = route(live, params, paths, "single", 0.0, challenger=None)
    assert table["champion"] == versions["A"]
    predictions = [live.predict(c) for c in customers[:40]]
    assert {(p["arm"], p["model_version"]) for p in predictions} == {("champion", versions["A"])}


def test_admin_endpoint_changes_policy_and_records_the_key(
    live: Live, versions: dict[str, str], customers: list[int], params: Any, paths: Any
) -> None:
    route(live, params, paths, "canary", 0.3, challenger=versions["B"])
    reason = "admin endpoint: canary at 10%"
    body = {"policy": "canary", "reason": reason, "challenger_share": 0.1}
    response = httpx.post(f"{live.url}/admin/traffic", json=body, headers=live.admin, timeout=30)
    assert response.status_code == 200, response.text
    table = response.json()
    # The endpoint refreshes before answering: its answer already is the new table.
    assert table["policy"] == "canary" and table["challenger_share"] == 0.1
    assert table["registry_counter"] == live.registry.change_counter(live.model_name)
    entry = live.registry.history(live.model_name)[-1]
    assert entry.action == "policy_set"
    assert entry.actor == "key:local-admin"
    assert entry.reason == reason
    assert entry.details["kind"] == "canary" and entry.details["challenger_share"] == 0.1
    assert live.registry.policy(live.model_name).updated_by == "key:local-admin"

    refused = httpx.post(
        f"{live.url}/admin/traffic",
        json={"policy": "single", "reason": "share must be 0", "challenger_share": 0.5},
        headers=live.admin,
        timeout=30,
    )
    assert refused.status_code == 400, refused.text
    assert live.registry.history(live.model_name)[-1].seq == entry.seq
    check_arm(live.predict(customers[0]), table)


def test_promotion_and_rollback_are_picked_up_without_restart(
    live: Live, versions: dict[str, str], customers: list[int], params: Any, paths: Any
) -> None:
    route(live, params, paths, "canary", 0.3, challenger=versions["B"])

    table, _ = live.apply("promote B", lambda: promote_now(params, paths, versions["B"], "B wins"))
    # B left staging, so it is no longer the challenger: the champion answers alone.
    assert table["champion"] == versions["B"] and table["challenger"] is None
    assert {live.predict(c)["model_version"] for c in customers[:20]} == {versions["B"]}

    def roll_back() -> None:
        restored = promotion.rollback(paths, live.model_name, actor=ACTOR, reason="back to A")
        assert restored.version == versions["A"]

    table, _ = live.apply("rollback to A", roll_back)
    assert table["champion"] == versions["A"]
    assert {live.predict(c)["model_version"] for c in customers[:20]} == {versions["A"]}
    print(f"\npick-up delays (s): {[(w, round(d, 3)) for w, d in live.delays]}")
    assert max(d for _, d in live.delays) < PICKUP_LIMIT_S
