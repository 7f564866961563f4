"""Helpers shared by the registry tests (importable by child processes, unlike conftest)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from loopline.registry import Registry

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


class ManualClock:
    """A clock that returns ``now`` and then steps it forward, unless set explicitly."""

    def __init__(self, start: datetime = T0, step: timedelta = timedelta(seconds=1)) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> datetime:
        current = self.now
        self.now = current + self.step
        return current

    def set(self, when: datetime) -> None:
        self.now = when


class Waiter(Protocol):
    def wait(self, timeout: float | None = None) -> Any: ...


class RendezvousClock:
    """A clock that blocks until every racer has validated its change (the registry reads
    the clock once per change, between validation and writing), so the changes overlap."""

    def __init__(self, barrier: Waiter, when: datetime) -> None:
        self.barrier = barrier
        self.when = when

    def __call__(self) -> datetime:
        self.barrier.wait(timeout=30)
        return self.when


def register_staged(registry: Registry, model: str, *tags: str) -> list[str]:
    """Register ``model:tag`` versions and move them to staging; return their versions."""
    versions = []
    for tag in tags:
        version = f"{model}:{tag}"
        registry.register(
            model,
            version,
            metrics={"auc": 0.8},
            lineage={"data_hash": f"data-{tag}"},
            actor="trainer",
        )
        registry.transition(version, "staging", actor="trainer", reason="passed offline gates")
        versions.append(version)
    return versions


def promote(registry: Registry, version: str, actor: str = "ci") -> None:
    """Promote ``version`` straight to production."""
    registry.request_promotion(version, actor=actor, reason="gates passed", gate_results=[])


def race_promotion(url: str, version: str, barrier: Any, when: datetime) -> int:
    """Child-process body: promote ``version``; 0 if it won, 3 on RegistryConflict."""
    from loopline.registry import RegistryConflict

    with Registry(url, now=RendezvousClock(barrier, when)) as registry:
        try:
            promote(registry, version, actor=f"racer-{version}")
        except RegistryConflict:
            return 3
    return 0


def race_promotion_main(url: str, version: str, barrier: Any, when: datetime) -> None:
    """multiprocessing target: exit with the code of race_promotion."""
    raise SystemExit(race_promotion(url, version, barrier, when))
