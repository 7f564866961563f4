"""Which model answers a request: the routing table and the choice of arm.

A routing table is immutable. The service swaps its reference in one assignment when
the registry changes, so a request reads one consistent table from start to finish.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

ArmName = Literal["champion", "challenger"]


@dataclass(frozen=True)
class Arm:
    """A loaded model version ready to score: ``model`` is a ``loopline.inference`` Scorer."""

    version: str
    model: Any

    @property
    def inputs(self) -> list[str]:
        return list(self.model.inputs)


@dataclass(frozen=True)
class RoutingTable:
    """What serves now: the champion, an optional challenger, and the policy between them."""

    champion: Arm
    challenger: Arm | None = None
    kind: str = "single"
    share: float = 0.0
    counter: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "champion": self.champion.version,
            "challenger": self.challenger.version if self.challenger else None,
            "policy": self.kind,
            "challenger_share": self.share,
            "registry_counter": self.counter,
        }


def bucket(entity_id: int) -> float:
    """A stable number in [0, 1) per entity, so an A/B customer always sees the same arm."""
    digest = hashlib.blake2b(str(entity_id).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def choose_arm(table: RoutingTable, entity_id: int, draw: float) -> ArmName:
    """The arm that answers for one entity; ``draw`` is a uniform random number in [0, 1)."""
    if table.challenger is None:
        return "champion"
    if table.kind == "canary":
        return "challenger" if draw < table.share else "champion"
    if table.kind == "ab":
        return "challenger" if bucket(entity_id) < table.share else "champion"
    if table.kind == "blue-green":
        # Both colours stay loaded; the share flips all traffic at once.
        return "challenger" if table.share >= 0.5 else "champion"
    return "champion"  # single, shadow: the champion always answers


def shadowed(table: RoutingTable, draw: float) -> bool:
    """Whether the challenger also scores this request off the response path."""
    if table.challenger is None or table.kind != "shadow":
        return False
    # A share of 0 means "every request": a shadow that sees nothing is no shadow.
    return draw < (table.share or 1.0)
