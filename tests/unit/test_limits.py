"""Body size and per-key rate limits: the token bucket, both middlewares, their settings."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from loopline.config import ConfigError, LimitsParams, RateParams, TlsParams, load_params
from loopline.serving import tls
from loopline.serving.auth import ApiKeyMiddleware, KeyStore, Role
from loopline.serving.errors import ErrorShapeMiddleware
from loopline.serving.limits import BodyLimitMiddleware, RateLimitMiddleware, TokenBucket
from loopline.settings import Paths

REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- the token bucket -------------------------------------------------------------------


def test_a_bucket_lets_a_burst_through_then_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3, now=0.0)

    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # one token comes every 1/2 s
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0


def test_a_bucket_refills_at_its_rate_and_never_above_its_capacity() -> None:
    bucket = TokenBucket(rate=10.0, capacity=2, now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)

    assert bucket.take(1000.0) == 0.0  # long idle: full again, but only to 2
    assert bucket.take(1000.0) == 0.0
    assert bucket.take(1000.0) > 0.0


def test_the_burst_defaults_to_one_second_of_requests() -> None:
    assert RateParams(requests_per_second=5).capacity == 5
    assert RateParams(requests_per_second=0.1).capacity == 1
    assert RateParams(requests_per_second=5, burst=50).capacity == 50


# --- the rate limit middleware ----------------------------------------------------------


def keyed_app(store: KeyStore, limits: LimitsParams, clock: Clock) -> Starlette:
    async def predict(request: Request) -> JSONResponse:
        return JSONResponse({"name": request.state.api_key.name})

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
    app.add_route("/healthz", lambda request: JSONResponse({"ok": True}))
    # add_middleware puts the last one outermost: the key check runs before the buckets.
    app.add_middleware(RateLimitMiddleware, limits=limits, clock=clock)
    app.add_middleware(ApiKeyMiddleware, routes={"/predict": Role.CLIENT}, store=store)
    app.add_middleware(ErrorShapeMiddleware)
    return app


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_key_over_its_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    busy, calm = store.create("busy", "client"), store.create("calm", "client")
    clock = Clock()
    limits = LimitsParams(requests_per_second=0.5, burst=2)

    with TestClient(keyed_app(store, limits, clock)) as http:
        allowed = [http.post("/predict", headers=bearer(busy)).status_code for _ in range(2)]
        refused = http.post("/predict", headers=bearer(busy))
        other = http.post("/predict", headers=bearer(calm))
        health = [http.get("/healthz").status_code for _ in range(5)]  # no key: no bucket
        clock.now += 2.0
        later = http.post("/predict", headers=bearer(busy))

    assert allowed == [200, 200]
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "2"
    body = refused.json()
    assert body["code"] == "too_many_requests"
    assert body["error"] == (
        "key 'busy' is over its limit of 0.5 requests/s (burst 2) in this worker: retry after 2 s"
    )
    assert (other.status_code, health, later.status_code) == (200, [200] * 5, 200)


def test_a_rotated_key_shares_its_names_bucket(tmp_path: Path) -> None:
    from datetime import timedelta

    store = KeyStore(tmp_path / "keys.json")
    old = store.create("web-app", "client")
    new, _ = store.rotate("web-app", timedelta(hours=1))
    limits = LimitsParams(requests_per_second=0.001, burst=1)

    with TestClient(keyed_app(store, limits, Clock())) as http:
        first = http.post("/predict", headers=bearer(old))
        second = http.post("/predict", headers=bearer(new))

    assert (first.status_code, second.status_code) == (200, 429)


def test_per_key_limits_replace_the_general_one_and_null_is_no_limit(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    bulk, tiny, anyone = (store.create(n, "client") for n in ("bulk", "tiny", "anyone"))
    limits = LimitsParams(
        requests_per_second=None,
        keys={
            "bulk": RateParams(requests_per_second=None),
            "tiny": RateParams(requests_per_second=0.001, burst=1),
        },
    )

    with TestClient(keyed_app(store, limits, Clock())) as http:
        answers = {
            name: [http.post("/predict", headers=bearer(key)).status_code for _ in range(30)]
            for name, key in (("bulk", bulk), ("tiny", tiny), ("anyone", anyone))
        }

    assert answers["bulk"] == answers["anyone"] == [200] * 30
    assert answers["tiny"] == [200] + [429] * 29


# --- the body limit middleware ----------------------------------------------------------


def body_app(limit: int) -> tuple[Starlette, list[int]]:
    read: list[int] = []

    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        read.append(len(body))
        return JSONResponse({"bytes": len(body)})

    app = Starlette(routes=[Route("/predict", echo, methods=["POST"])])
    app.add_middleware(BodyLimitMiddleware, max_bytes=limit)
    app.add_middleware(ErrorShapeMiddleware)
    return app, read


def test_a_content_length_over_the_limit_is_refused_before_the_app_runs() -> None:
    app, read = body_app(1024)

    with TestClient(app) as http:
        over = http.post("/predict", content=b"x" * 1025)
        at = http.post("/predict", content=b"x" * 1024)

    assert over.status_code == 413
    assert over.json()["error"] == "request body is over the 1024-byte limit"
    assert over.json()["code"] == "too_large"
    assert over.headers["connection"] == "close"
    assert at.status_code == 200 and read == [1024]  # the refused one was never read


def call(app: Any, chunks: list[bytes]) -> tuple[list[dict[str, Any]], int]:
    """Send ``chunks`` as a streamed body (no Content-Length); the answer and chunks pulled."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    pending = list(chunks)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not pending:
            return {"type": "http.disconnect"}
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent, len(chunks) - len(pending)


def test_a_streamed_body_is_cut_off_as_soon_as_it_passes_the_limit() -> None:
    app, read = body_app(1024)

    sent, pulled = call(app, [b"x" * 600, b"x" * 600, b"x" * 600, b"x" * 600])

    start, body = sent
    assert start["status"] == 413 and (b"connection", b"close") in start["headers"]
    assert json.loads(body["body"])["error"] == "request body is over the 1024-byte limit"
    assert pulled == 2 and read == []  # nothing after the chunk that passed the limit


def test_an_app_that_answers_its_read_error_itself_still_gives_413() -> None:
    async def swallowing(request: Request) -> JSONResponse:
        try:  # as BentoML does: any exception in an API becomes a 500
            await request.body()
        except Exception:
            return JSONResponse({"error": "unexpected"}, status_code=500)
        return JSONResponse({})

    app = Starlette(routes=[Route("/predict", swallowing, methods=["POST"])])
    app.add_middleware(BodyLimitMiddleware, max_bytes=1024)

    sent, _ = call(app, [b"x" * 2000, b"x"])

    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [413]
    assert b"1024-byte limit" in b"".join(m.get("body", b"") for m in sent)


def test_a_streamed_body_within_the_limit_reaches_the_app() -> None:
    app, read = body_app(1024)

    sent, _ = call(app, [b"x" * 500, b"x" * 524])

    assert sent[0]["status"] == 200 and read == [1024]


# --- settings -----------------------------------------------------------------------------


def test_the_repo_defaults_are_far_above_what_the_batch_limit_sends() -> None:
    limits = load_params(REPO / "params.yaml").serving.limits
    batch = json.dumps({"customer_ids": [2**62] * 1000}).encode()

    assert limits.max_body_bytes == 1 << 20 and len(batch) * 40 < limits.max_body_bytes
    assert limits.requests_per_second == 1000 and limits.capacity == 2000
    assert load_params(REPO / "params.yaml").serving.tls == TlsParams()


def test_tls_needs_both_files() -> None:
    with pytest.raises(ValueError, match="both certfile and keyfile"):
        TlsParams(certfile="cert.pem")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    monkeypatch.delenv(tls.TLS_CERTFILE_ENV, raising=False)
    monkeypatch.delenv(tls.TLS_KEYFILE_ENV, raising=False)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return Paths(tmp_path, tmp_path / ".loopline")


def set_tls(paths: Paths, certfile: str | None, keyfile: str | None) -> None:
    raw = yaml.safe_load(paths.params_file.read_text())
    raw["serving"]["tls"] = {"certfile": certfile, "keyfile": keyfile}
    paths.params_file.write_text(yaml.safe_dump(raw))


def test_tls_files_are_relative_to_the_project_and_must_exist(project: Paths) -> None:
    assert tls.tls_files(project) is None
    set_tls(project, "tls/cert.pem", "tls/key.pem")
    with pytest.raises(ConfigError, match=r"serving\.tls\.certfile: .*cert\.pem is not there"):
        tls.tls_files(project)
    (project.project / "tls").mkdir()
    for name in ("cert.pem", "key.pem"):
        (project.project / "tls" / name).write_text("PEM")

    assert tls.tls_files(project) == (
        project.project / "tls" / "cert.pem",
        project.project / "tls" / "key.pem",
    )


def test_the_environment_overrides_tls_files(
    project: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mounted = tmp_path / "secrets"
    mounted.mkdir()
    for name in ("tls.crt", "tls.key"):
        (mounted / name).write_text("PEM")
    monkeypatch.setenv(tls.TLS_CERTFILE_ENV, str(mounted / "tls.crt"))
    monkeypatch.setenv(tls.TLS_KEYFILE_ENV, str(mounted / "tls.key"))

    assert tls.tls_files(project) == (mounted / "tls.crt", mounted / "tls.key")
    monkeypatch.delenv(tls.TLS_KEYFILE_ENV)
    with pytest.raises(ConfigError, match="set both certfile and keyfile"):
        tls.tls_files(project)
