"""The service's hardening over real HTTPS: one ``bentoml serve`` for every check.

The server serves the session's project with TLS (a self-signed certificate for 127.0.0.1
made here) and a tiny rate for one dedicated key, both set in the project's params.yaml
for this module only and restored at its end. One worker, so one token bucket per key.
Checks: bodies over the size limit (by Content-Length and streamed), deeply nested JSON,
CR/LF in a header, revoked and rotated keys, the rate limit, and plain HTTP to the port.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from loopline import platform
from loopline.serving.auth import KeyStore, key_store
from tests.e2e.test_rollouts import ensure_production
from tests.ids import known_customers

pytestmark = pytest.mark.e2e

THROTTLED = "hardening-throttled"
# One token per 1,000 s: after the burst, the next request is refused whatever the pace.
THROTTLED_RATE = {"requests_per_second": 0.001, "burst": 3}
LIMIT = 1 << 20  # the repo's serving.limits.max_body_bytes
TIMEOUT_S = 30  # a hang guard for the raw sockets, as the other modules' clients have


@dataclass(frozen=True)
class Tls:
    certfile: Path
    keyfile: Path

    def context(self) -> ssl.SSLContext:
        """A client context that trusts only this certificate, host name checked."""
        return ssl.create_default_context(cafile=str(self.certfile))


@pytest.fixture(scope="module")
def tls(paths: Any) -> Tls:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = paths.state / "tls-hardening"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = Tls(folder / "cert.pem", folder / "key.pem")
    files.certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.keyfile.touch(mode=0o600)
    files.keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@pytest.fixture(scope="module")
def store(paths: Any) -> KeyStore:
    return key_store(paths)


@pytest.fixture(scope="module")
def keys(store: KeyStore) -> dict[str, str]:
    return {name: store.create(name, "client") for name in ("hardening-client", THROTTLED)}


@pytest.fixture(scope="module")
def service(
    built: dict[str, Any], params: Any, paths: Any, tls: Tls, keys: dict[str, str]
) -> Iterator[platform.Service]:
    ensure_production(params, paths, built["package"]["model"], "test-hardening")
    original = paths.params_file.read_text()
    edited = yaml.safe_load(original)
    serving = edited["serving"]
    # Relative to the project folder, as a user would write them.
    serving["tls"] = {
        "certfile": os.path.relpath(tls.certfile, paths.project),
        "keyfile": os.path.relpath(tls.keyfile, paths.project),
    }
    serving.setdefault("limits", {})["keys"] = {THROTTLED: THROTTLED_RATE}
    try:
        paths.params_file.write_text(yaml.safe_dump(edited, sort_keys=False))
        started = platform.start_serving(
            paths, platform.free_port(), built["package"]["model"], workers=1
        )
        with platform.running(started):
            platform.wait_ready(started, "/readyz")  # verifies the certificate itself
            yield started
    finally:
        # The session's other modules serve the project as the repo configures it.
        paths.params_file.write_text(original)


def client(service: platform.Service, tls: Tls, key: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.Client(base_url=service.url, headers=headers, verify=tls.context(), timeout=30)


@pytest.fixture(scope="module")
def http(service: platform.Service, tls: Tls, keys: dict[str, str]) -> Iterator[httpx.Client]:
    with client(service, tls, keys["hardening-client"]) as opened:
        yield opened


@pytest.fixture(scope="module")
def customer(paths: Any, params: Any) -> int:
    return known_customers(paths, params, 1)[0]


@dataclass
class Raw:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


def send_raw(service: platform.Service, tls: Tls, head: bytes, parts: Iterable[bytes] = ()) -> Raw:
    """Bytes as written, over TLS; the answer as read until the server closes."""
    url = httpx.URL(service.url)
    assert url.host and url.port
    with (
        socket.create_connection((url.host, url.port), timeout=TIMEOUT_S) as plain,
        tls.context().wrap_socket(plain, server_hostname=url.host) as sock,
    ):
        sock.sendall(head)
        for part in parts:
            sock.sendall(part)
        answer = b""
        while chunk := sock.recv(1 << 16):
            answer += chunk
    top, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = top.decode("latin-1").split("\r\n")
    fields = [line.split(":", 1) for line in lines]
    return Raw(int(status_line.split()[1]), [(k.lower(), v.strip()) for k, v in fields], body)


def request_head(key: str, *lines: str, path: str = "/predict") -> bytes:
    # Connection: close, so the answer ends where the server closes the connection.
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {key}"]
    head += ["Content-Type: application/json", "Connection: close", *lines]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")


def test_https_with_the_configured_certificate(
    service: platform.Service, http: httpx.Client, customer: int
) -> None:
    response = http.post("/predict", json={"customer_id": customer})

    assert service.url.startswith("https://127.0.0.1:")
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["customer_id"] == customer


def test_plain_http_and_untrusted_clients_are_refused(service: platform.Service) -> None:
    plain = service.url.replace("https://", "http://")

    with pytest.raises(httpx.TransportError):
        httpx.get(f"{plain}/readyz", timeout=30)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{service.url}/readyz", timeout=30)  # the usual CAs do not know it


def test_a_content_length_over_the_limit_is_refused_without_reading_the_body(
    service: platform.Service, tls: Tls, keys: dict[str, str]
) -> None:
    # The body is never sent: the answer comes from the headers alone.
    head = request_head(keys["hardening-client"], f"Content-Length: {10 * LIMIT}")

    answer = send_raw(service, tls, head)

    assert answer.status == 413, answer
    assert b'"request body is over the 1048576-byte limit"' in answer.body
    assert b'"code": "too_large"' in answer.body


def test_a_streamed_body_is_refused_once_it_passes_the_limit(
    service: platform.Service, tls: Tls, keys: dict[str, str]
) -> None:
    size = 1 << 16
    head = request_head(keys["hardening-client"], "Transfer-Encoding: chunked")
    chunk = f"{size:x}\r\n".encode() + b" " * size + b"\r\n"
    # Just past the limit, and no final chunk: the server must answer without the end.
    parts = [chunk] * (LIMIT // size + 1)

    answer = send_raw(service, tls, head, parts)

    assert answer.status == 413, answer
    assert b"request body is over the 1048576-byte limit" in answer.body


@pytest.mark.parametrize("route", ["/predict", "/feedback"])
def test_deeply_nested_json_is_a_400_and_the_worker_lives_on(
    http: httpx.Client, customer: int, route: str
) -> None:
    for body in (b"[" * 100_000, b'{"customer_ids": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"):
        response = http.post(route, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        error = response.json()
        assert error["code"] == "invalid_request"
        assert "Invalid JSON: recursion limit exceeded" in error["error"]

    after = http.post("/predict", json={"customer_id": customer})
    assert after.status_code == 200, after.text


@pytest.mark.parametrize(
    "value",
    [
        "abc\r\nX-Injected: yes",  # a second header line: must not come back
        "abc\rX-Injected: yes",  # a bare CR
        "abc\nX-Injected: yes",  # a bare LF
        "abc\r\n X-Injected: yes",  # an obsolete folded line
    ],
)
def test_cr_lf_in_a_header_never_reaches_the_answer(
    service: platform.Service,
    tls: Tls,
    keys: dict[str, str],
    http: httpx.Client,
    customer: int,
    value: str,
) -> None:
    body = f'{{"customer_id": {customer}}}'
    head = request_head(
        keys["hardening-client"], f"X-Request-ID: {value}", f"Content-Length: {len(body)}"
    )

    answer = send_raw(service, tls, head, [body.encode()])

    assert answer.status in (200, 400), answer
    assert answer.header("x-injected") == []
    assert b"X-Injected" not in answer.body
    if answer.status == 200:  # the id is the service's own, never the client's
        (rid,) = answer.header("x-request-id")
        assert re.fullmatch(r"[0-9a-f]{32}", rid)
    assert http.post("/predict", json={"customer_id": customer}).status_code == 200


def test_a_client_request_id_is_not_echoed(http: httpx.Client, customer: int) -> None:
    response = http.post(
        "/predict", json={"customer_id": customer}, headers={"X-Request-ID": "client-chosen"}
    )

    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_a_revoked_key_is_refused(
    service: platform.Service, tls: Tls, store: KeyStore, customer: int
) -> None:
    key = store.create("hardening-revoked", "client")
    with client(service, tls, key) as http:
        before = http.post("/predict", json={"customer_id": customer})
        store.revoke("hardening-revoked")
        after = http.post("/predict", json={"customer_id": customer})

    assert before.status_code == 200
    assert after.status_code == 401
    assert (after.json()["error"], after.json()["code"]) == (
        "invalid or revoked API key",
        "unauthorized",
    )


def test_a_rotated_key_works_during_its_overlap_and_is_expired_after(
    service: platform.Service, tls: Tls, store: KeyStore, customer: int
) -> None:
    old = store.create("hardening-rotated", "client")
    new, _ = store.rotate("hardening-rotated", timedelta(hours=1))

    def status(key: str) -> httpx.Response:
        with client(service, tls, key) as http:
            return http.post("/predict", json={"customer_id": customer})

    during = [status(old).status_code, status(new).status_code]
    newest, _ = store.rotate("hardening-rotated", timedelta(0))  # ends the overlap now
    after = [status(old), status(new), status(newest)]

    assert during == [200, 200]
    assert [r.status_code for r in after] == [401, 401, 200]
    for refused in after[:2]:
        assert refused.json()["error"].startswith("expired API key")


def test_a_key_over_its_rate_gets_429_and_others_are_unaffected(
    service: platform.Service, tls: Tls, keys: dict[str, str], http: httpx.Client, customer: int
) -> None:
    with client(service, tls, keys[THROTTLED]) as throttled:
        answers = [throttled.post("/model", json={}) for _ in range(4)]
        other = http.post("/model", json={})
        still = throttled.post("/model", json={})

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["code"] == "too_many_requests"
    assert refused.json()["error"].startswith(
        f"key {THROTTLED!r} is over its limit of 0.001 requests/s (burst 3) in this worker"
    )
    assert (other.status_code, still.status_code) == (200, 429)
