"""One shape for every error the service answers, and a request id for every request.

BentoML answers an exception raised in an API with a list (``[{"error": ...}]``), a body
that fails validation with an object carrying pydantic's details, and an unknown route
with plain text; the key check answers with its own object. Clients should not need four
parsers, so this middleware, outside everything else, rewrites every error response to::

    {"error": "<what went wrong, naming the field or the customer>",
     "code": "<stable machine-readable code>",
     "detail": [{"loc": [...], "msg": "...", "type": "..."}],   # field errors, maybe empty
     "request_id": "<32 hex digits>"}

Every request gets its id here (also sent back as ``X-Request-ID``), so the id in an
error body, in a prediction and in the prediction log are one and the same.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal_error",
    503: "overloaded",
}
# Codes the service itself puts in a body where one status has two meanings: a 503 is
# "overloaded" (retry soon) or "no_production" (nothing may answer until a promotion); a
# 409 "model_refused" is a registry version whose file failed its hash check or scan.
SERVICE_CODES = frozenset({"no_production", "model_refused"})
REQUEST_ID_HEADER = b"x-request-id"


def request_id(scope: Scope) -> str:
    """The id this middleware gave the request (a new one outside the middleware)."""
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        state["request_id"] = uuid.uuid4().hex
    return str(state["request_id"])


def error_body(status: int, body: bytes, rid: str) -> dict[str, Any]:
    """The one error shape, from whatever body BentoML, Starlette or our code produced."""
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, list) and parsed and all(isinstance(p, dict) for p in parsed):
        message = "; ".join(str(p.get("error", p)) for p in parsed)
        detail: list[Any] = []
    elif isinstance(parsed, dict) and "error" in parsed:
        message = str(parsed["error"])
        detail = [_field_error(d) for d in parsed.get("detail") or [] if isinstance(d, dict)]
        if detail:  # pydantic's "1 validation error for Input" says nothing a caller can use
            message = "; ".join(f"{_where(d['loc'])}: {d['msg']}" for d in detail)
    else:
        message = body.decode("utf-8", "replace").strip() or _reason(status)
        detail = []
    code = CODES.get(status, "internal_error" if status >= 500 else "invalid_request")
    if isinstance(parsed, dict) and parsed.get("code") in SERVICE_CODES:
        code = parsed["code"]
    return {
        "error": message,
        "code": code,
        "detail": detail,
        "request_id": rid,
    }


def _field_error(error: dict[str, Any]) -> dict[str, Any]:
    return {
        "loc": list(error.get("loc", [])),
        "msg": error.get("msg", ""),
        "type": error.get("type"),
    }


def _where(loc: list[Any]) -> str:
    return ".".join(map(str, loc)) or "body"


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


class ErrorShapeMiddleware:
    """ASGI middleware: a request id for each request, one JSON shape for each error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        start: Message | None = None
        chunks: list[bytes] = []

        async def reshape(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (REQUEST_ID_HEADER, rid.encode())]
                message = {**message, "headers": headers}
                if message["status"] < 400:
                    await send(message)
                    return
                start = message  # held until the whole error body is read
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = json.dumps(error_body(start["status"], b"".join(chunks), rid)).encode()
            headers = [
                (k, v)
                for k, v in start.get("headers", [])
                if k.lower() not in (b"content-length", b"content-type")
            ]
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, reshape)
