"""Every error body the service can produce becomes the one documented shape."""

import json

import pytest

from loopline.serving.errors import error_body

RID = "0" * 32


@pytest.mark.parametrize(
    "status, body, message, code",
    [
        # BentoML: an exception raised in an API
        (404, b'[{"error":"unknown customer_id: 7"}]', "unknown customer_id: 7", "not_found"),
        # our key check
        (
            401,
            b'{"error":"invalid or revoked API key"}',
            "invalid or revoked API key",
            "unauthorized",
        ),
        # Starlette: an unknown route
        (404, b"Not Found", "Not Found", "not_found"),
        (503, b"", "Service Unavailable", "overloaded"),
        # the service's own code where one status has two meanings
        (
            503,
            b'{"error":"no production version","code":"no_production"}',
            "no production version",
            "no_production",
        ),
        (503, b'{"error":"x","code":"anything else"}', "x", "overloaded"),
    ],
)
def test_every_body_becomes_one_shape(status: int, body: bytes, message: str, code: str) -> None:
    assert error_body(status, body, RID) == {
        "error": message,
        "code": code,
        "detail": [],
        "request_id": RID,
    }


def test_validation_errors_name_the_field() -> None:
    pydantic = {
        "error": "1 validation error for Input",
        "detail": [
            {
                "type": "int_parsing",
                "loc": ["customer_id"],
                "msg": "Input should be a valid integer",
                "input": "x",
                "url": "https://example.invalid/int_parsing",
            }
        ],
    }
    body = error_body(400, json.dumps(pydantic).encode(), RID)
    assert body["error"] == "customer_id: Input should be a valid integer"
    assert body["code"] == "invalid_request"
    # Only what a caller needs: not the rejected input echoed back, not a documentation link.
    assert body["detail"] == [
        {"loc": ["customer_id"], "msg": "Input should be a valid integer", "type": "int_parsing"}
    ]
