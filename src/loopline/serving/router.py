"""Which model answers a request: the routing table and the choice of arm.

A routing table is immutable. The service swaps its reference in one assignment when
the registry changes, so a request reads one consistent table from start to finish.

Only a production version answers as the ``champion``. With nothing in production the
table has no champion: the service refuses to predict (503), unless
``serving.allow_unpromoted`` lets the Bento's own model answer, as the ``unpromoted``
arm. Without a champion no challenger serves either: a rollout compares a challenger
with a champion, and there is none.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

ArmName = Literal["champion", "challenger", "unpromoted"]
PROMOTE_COMMAND = "loopline models promote <version> --reason ..."


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
    """What serves now: the champion, an optional challenger, and the policy between them.

    ``unpromoted`` is the Bento's own model, set only when nothing is in production and
    ``serving.allow_unpromoted`` is on; a table with neither answers no prediction.
    """

    champion: Arm | None
    challenger: Arm | None = None
    kind: str = "single"
    share: float = 0.0
    counter: int = 0
    unpromoted: Arm | None = None

    @property
    def default_arm(self) -> ArmName | None:
        """The arm that answers unless the policy picks the challenger; None: nothing may."""
        if self.champion is not None:
            return "champion"
        return "unpromoted" if self.unpromoted is not None else None

    def arm(self, name: ArmName) -> Arm:
        """The loaded arm called ``name`` (only names :func:`choose_arm` can return)."""
        if name == "champion":
            arm = self.champion
        elif name == "challenger":
            arm = self.challenger
        else:
            arm = self.unpromoted
        if arm is None:
            raise RuntimeError(f"the routing table has no {name} arm")
        return arm

    def describe(self) -> dict[str, Any]:
        return {
            "champion": self.champion.version if self.champion else None,
            "challenger": self.challenger.version if self.challenger else None,
            "unpromoted": self.unpromoted.version if self.unpromoted else None,
            "policy": self.kind,
            "challenger_share": self.share,
            "registry_counter": self.counter,
        }


def no_production(model_name: str) -> str:
    """Why a table without a champion or an unpromoted model answers no prediction."""
    return (
        f"no production version of model {model_name!r} yet: promote one with "
        f"`{PROMOTE_COMMAND}` (`loopline models list` shows the versions)"
    )


def bucket(entity_id: int) -> float:
    """A stable number in [0, 1) per entity, so an A/B customer always sees the same arm."""
    digest = hashlib.blake2b(str(entity_id).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def choose_arm(table: RoutingTable, entity_id: int, draw: float) -> ArmName:
    """The arm that answers for one entity; ``draw`` is a uniform random number in [0, 1).

    Raises LookupError for a table that may answer nothing (see :func:`no_production`).
    """
    default = table.default_arm
    if default is None:
        raise LookupError("the routing table has no model that may answer")
    if table.challenger is None or table.champion is None:
        return default
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
    if table.challenger is None or table.champion is None or table.kind != "shadow":
        return False
    # A share of 0 means "every request": a shadow that sees nothing is no shadow.
    return draw < (table.share or 1.0)
