"""Property-based fuzzing of the real service from its own OpenAPI document (schemathesis).

Schemathesis reads ``/docs.json`` (what BentoML publishes for the service), generates
bodies that fit each operation's schema (positive) and bodies that break it (negative),
sends them with the right key, and runs its ``not_a_server_error`` check on every answer.
Every failing input is collected and listed (no shrinking), so a 5xx names its body.

The module serves from a registry of its own: the fuzzed ``/admin/traffic`` changes the
traffic policy, and that must not leak into other modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from loopline import platform, promotion
from tests.e2e.test_rollouts import fresh_version, private_registry

pytestmark = [
    pytest.mark.e2e,
    # schemathesis' own negative strategies use `random` inside; not this module's concern.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

ACTOR = "test-schemathesis"
MAX_EXAMPLES = 100
OPERATIONS = [
    ("/predict", "client"),
    ("/feedback", "client"),
    ("/model", "client"),
    ("/admin/reload", "admin"),
    ("/admin/traffic", "admin"),
]


@pytest.fixture(scope="module")
def registry_url(built: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with private_registry(tmp_path_factory.mktemp("schemathesis")) as url:
        yield url


@pytest.fixture(scope="module")
def versions(registry_url: str, params: Any, paths: Any) -> dict[str, str]:
    """A champion and a challenger, so every policy the fuzzer picks has both arms."""
    a, b = fresh_version(params, paths), fresh_version(params, paths)
    registry = promotion.open_registry(paths)
    registry.request_promotion(a, actor=ACTOR, reason="schemathesis: A", gate_results=[])
    registry.transition(b, "staging", actor=ACTOR, reason="schemathesis: B")
    registry.set_challenger(params.serving.model_name, b, actor=ACTOR, reason="schemathesis")
    return {"A": a, "B": b}


@pytest.fixture(scope="module")
def server(versions: dict[str, str], paths: Any) -> Iterator[str]:
    # One worker: request validation does not depend on how many answer.
    service = platform.start_serving(paths, platform.free_port(), versions["A"], workers=1)
    with platform.running(service):
        platform.wait_ready(service, "/readyz")
        yield service.url


@pytest.fixture(scope="module")
def schema(server: str) -> Any:
    return schemathesis.openapi.from_url(f"{server}/docs.json", timeout=30)


@pytest.fixture(scope="module")
def keys(paths: Any) -> dict[str, str]:
    return platform.dev_keys(paths)


def test_the_schema_lists_every_route(schema: Any) -> None:
    for path, _ in OPERATIONS:
        assert schema[path]["POST"] is not None


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("path", "role"), OPERATIONS)
def test_no_input_makes_a_server_error(
    schema: Any,
    server: str,
    keys: dict[str, str],
    path: str,
    role: str,
    mode: GenerationMode,
) -> None:
    operation = schema[path]["POST"]
    headers = {"Authorization": f"Bearer {keys[role]}"}
    sent: list[int] = []
    errors: list[str] = []

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # collect every failure; no shrinking
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        response = case.call(base_url=server, headers=headers, timeout=30)
        sent.append(response.status_code)
        try:
            case.validate_response(response, checks=[not_a_server_error], headers=headers)
        except (AssertionError, BaseExceptionGroup):
            errors.append(f"{response.status_code} for body {case.body!r}: {response.text[:300]}")

    fuzz()
    assert sent, f"no request was generated for {path} ({mode})"
    assert not errors, f"{len(errors)} server errors on {path} ({mode}):\n" + "\n".join(errors[:10])
    # The service is still healthy after the fuzzing.
    assert httpx.get(f"{server}/readyz", timeout=10).status_code == 200


def test_predict_with_known_customers_never_fails(
    server: str, keys: dict[str, str], paths: Any, params: Any
) -> None:
    """The schema cannot say which ids exist, so random ids almost never reach the model:
    this drives the model path with known ids, duplicates and a few unknown ones mixed in."""
    from hypothesis import strategies as st

    from tests.ids import known_customers

    known = known_customers(paths, params, 400)
    ids = st.one_of(st.sampled_from(known), st.integers(min_value=0, max_value=2**62))
    batch = st.lists(st.sampled_from(known), min_size=1, max_size=1000)
    bodies = st.one_of(
        st.fixed_dictionaries({"customer_id": st.sampled_from(known)}),
        st.fixed_dictionaries({"customer_ids": batch}),
        st.fixed_dictionaries({"customer_ids": st.lists(ids, min_size=1, max_size=50)}),
    )
    headers = {"Authorization": f"Bearer {keys['client']}"}
    errors: list[str] = []
    answered: list[int] = []

    with httpx.Client(base_url=server, headers=headers, timeout=30) as client:

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(body=bodies)
        def fuzz(body: dict[str, Any]) -> None:
            response = client.post("/predict", json=body)
            answered.append(response.status_code)
            if response.status_code >= 500:
                errors.append(f"{response.status_code} for body {body!r}: {response.text[:300]}")
            elif response.status_code == 200:
                asked = body.get("customer_ids") or [body["customer_id"]]
                got = [p["customer_id"] for p in response.json()["predictions"]]
                if got != asked:
                    errors.append(f"answered {got} for {asked}")

        fuzz()
    assert answered.count(200) > MAX_EXAMPLES // 3, answered
    assert not errors, f"{len(errors)} bad answers:\n" + "\n".join(errors[:10])
