"""Which stage changes are legal, and validation of every argument before anything is read."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from loopline.registry.errors import IllegalTransition, InvalidInput
from loopline.registry.records import PolicyKind, Stage

# Production is left only by archiving (done automatically when another version takes
# production), and archived is terminal: only `rollback` brings an archived version back.
# staging -> candidate sends a version back for more work without retiring it.
LEGAL_MOVES: Mapping[Stage, frozenset[Stage]] = {
    Stage.CANDIDATE: frozenset({Stage.STAGING, Stage.ARCHIVED}),
    Stage.STAGING: frozenset({Stage.PRODUCTION, Stage.ARCHIVED, Stage.CANDIDATE}),
    Stage.PRODUCTION: frozenset({Stage.ARCHIVED}),
    Stage.ARCHIVED: frozenset(),
}
MAX_NAME = 255
STAGE_NAMES = tuple(stage.value for stage in Stage)
POLICY_KIND_NAMES = tuple(kind.value for kind in PolicyKind)


def check_move(version: str, current: Stage, target: Stage) -> None:
    """Raise IllegalTransition unless ``version`` may go from ``current`` to ``target``."""
    if target in LEGAL_MOVES[current]:
        return
    if current is target:
        raise IllegalTransition(f"model version {version!r} is already in {current.value}")
    if current is Stage.ARCHIVED:
        raise IllegalTransition(
            f"model version {version!r} is archived; only rollback can bring it back"
        )
    allowed = ", ".join(sorted(stage.value for stage in LEGAL_MOVES[current]))
    raise IllegalTransition(
        f"model version {version!r} cannot go from {current.value} to {target.value} "
        f"(from {current.value} it may go to: {allowed})"
    )


def require_text(name: str, value: object, *, max_length: int | None = MAX_NAME) -> str:
    """``value`` if it is a non-blank string within ``max_length`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} must be a non-empty string, got {value!r}")
    if "\x00" in value:
        raise InvalidInput(f"{name} must not contain NUL characters")
    if max_length is not None and len(value) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters: {value[:40]!r}...")
    return value


def require_change_note(actor: object, reason: object) -> tuple[str, str]:
    """The actor and reason every change must carry."""
    return require_text("actor", actor), require_text("reason", reason, max_length=None)


def parse_stage(value: object) -> Stage:
    """A Stage from a Stage or its name."""
    if isinstance(value, str) and value in STAGE_NAMES:
        return Stage(value)
    raise InvalidInput(f"unknown stage {value!r}; stages are: {', '.join(STAGE_NAMES)}")


def parse_metrics(value: object) -> dict[str, float]:
    """Metrics as a dict of finite floats keyed by non-empty names."""
    if not isinstance(value, Mapping):
        raise InvalidInput(f"metrics must be a mapping of name to number, got {value!r}")
    metrics: dict[str, float] = {}
    for key, number in value.items():
        name = require_text("metric name", key)
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise InvalidInput(f"metric {name!r} must be a number, got {number!r}")
        if not math.isfinite(number):
            raise InvalidInput(f"metric {name!r} must be finite, got {number!r}")
        metrics[name] = float(number)
    return metrics


def parse_json(name: str, value: object) -> Any:
    """``value`` as it will read back from the database (JSON round trip)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"{name} must be JSON-serializable: {error}") from None


def parse_json_object(name: str, value: object) -> dict[str, Any]:
    """A JSON object with string keys."""
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise InvalidInput(f"{name} must be a mapping with string keys, got {value!r}")
    parsed: dict[str, Any] = parse_json(name, dict(value))
    return parsed


def parse_json_list(name: str, value: object) -> list[Any]:
    """A JSON array (tuples are accepted and become lists)."""
    if not isinstance(value, list | tuple):
        raise InvalidInput(f"{name} must be a list, got {value!r}")
    parsed: list[Any] = parse_json(name, list(value))
    return parsed


def parse_policy(kind: object, challenger_share: object) -> tuple[PolicyKind, float]:
    """A valid (kind, challenger_share) pair."""
    if not isinstance(kind, str) or kind not in POLICY_KIND_NAMES:
        names = ", ".join(POLICY_KIND_NAMES)
        raise InvalidInput(f"unknown policy kind {kind!r}; kinds are: {names}")
    policy_kind = PolicyKind(kind)
    if isinstance(challenger_share, bool) or not isinstance(challenger_share, int | float):
        raise InvalidInput(f"challenger_share must be a number, got {challenger_share!r}")
    share = float(challenger_share)
    if not 0.0 <= share <= 1.0:
        raise InvalidInput(f"challenger_share must be between 0 and 1, got {challenger_share!r}")
    if policy_kind is PolicyKind.SINGLE and share != 0.0:
        raise InvalidInput(
            f"policy 'single' sends no traffic to a challenger; challenger_share must be 0, "
            f"got {challenger_share!r}"
        )
    return policy_kind, share


def require_aware(name: str, value: object) -> datetime:
    """A timezone-aware datetime (the registry never guesses a timezone)."""
    if not isinstance(value, datetime):
        raise InvalidInput(f"{name} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value
