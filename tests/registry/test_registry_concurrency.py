"""Racing writers, from threads and from separate processes: exactly one winner, nothing
left of the loser, and a chain that still verifies."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy.orm import Session

from loopline.registry import (
    PolicyKind,
    Registry,
    RegistryConflict,
    Stage,
    database,
    queries,
    routing,
    stages,
)
from loopline.registry.ledger import Step, append
from tests.registry.registry_testing import (
    T0,
    RendezvousClock,
    promote,
    race_promotion_main,
    register_staged,
)

Change = Callable[[Registry], object]

RACES: dict[str, tuple[Change, Change]] = {
    "two versions to production": (
        lambda r: promote(r, "churn:b", actor="racer-1"),
        lambda r: promote(r, "churn:c", actor="racer-2"),
    ),
    "same version twice": (
        lambda r: promote(r, "churn:b", actor="racer-1"),
        lambda r: promote(r, "churn:b", actor="racer-2"),
    ),
    "promotion against rollback": (
        lambda r: promote(r, "churn:c", actor="racer-1"),
        lambda r: r.rollback("churn", actor="racer-2", reason="undo b"),
    ),
    "challenger against promotion of it": (
        lambda r: r.set_challenger("churn", "churn:c", actor="racer-1", reason="a/b"),
        lambda r: promote(r, "churn:c", actor="racer-2"),
    ),
    "unrelated changes": (
        lambda r: r.register("fraud", "fraud:x", metrics={}, lineage={}, actor="racer-1"),
        lambda r: r.set_policy("churn", "canary", 0.1, actor="racer-2", reason="canary"),
    ),
}


@pytest.fixture
def contested(registry: Registry) -> Registry:
    """churn:a in production; churn:b and churn:c in staging."""
    register_staged(registry, "churn", "a", "b", "c")
    promote(registry, "churn:a")
    return registry


def run_race(url: str, changes: tuple[Change, Change]) -> list[BaseException | None]:
    """Run both changes at once, validated against the same snapshot; return their outcomes."""
    barrier = threading.Barrier(len(changes))
    outcomes: list[BaseException | None] = [None] * len(changes)

    def racer(index: int) -> None:
        when = T0 + timedelta(days=1, seconds=index)
        with Registry(url, now=RendezvousClock(barrier, when)) as registry:
            try:
                changes[index](registry)
            except BaseException as error:  # reported to the test thread below
                outcomes[index] = error

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(len(changes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.mark.parametrize("race", list(RACES), ids=list(RACES))
def test_racing_threads_leave_exactly_one_winner(
    contested: Registry, registry_url: str, race: str
) -> None:
    if race == "promotion against rollback":
        promote(contested, "churn:b")
    before = contested.history()
    outcomes = run_race(registry_url, RACES[race])

    conflicts = [o for o in outcomes if isinstance(o, RegistryConflict)]
    assert len(conflicts) == 1, outcomes
    assert outcomes.count(None) == 1, outcomes
    assert "nothing was recorded" in str(conflicts[0])
    winner = f"racer-{outcomes.index(None) + 1}"
    after = contested.history()
    assert after[: len(before)] == before
    new = after[len(before) :]
    assert new and {entry.actor for entry in new} == {winner}
    assert contested.verify() is None
    assert len(contested.list_versions("churn", Stage.PRODUCTION)) == 1


def test_racing_promotions_in_separate_processes(contested: Registry, registry_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    racers = {
        version: context.Process(
            target=race_promotion_main,
            args=(registry_url, version, barrier, T0 + timedelta(days=1)),
        )
        for version in ("churn:b", "churn:c")
    }
    for process in racers.values():
        process.start()
    for process in racers.values():
        process.join(timeout=120)
    codes = {version: process.exitcode for version, process in racers.items()}
    assert sorted(code if code is not None else -1 for code in codes.values()) == [0, 3], codes
    [winner] = [version for version, code in codes.items() if code == 0]
    [loser] = [version for version, code in codes.items() if code == 3]
    assert contested.get(winner).stage is Stage.PRODUCTION
    assert contested.get(loser).stage is Stage.STAGING
    assert contested.get("churn:a").stage is Stage.ARCHIVED
    assert {e.actor for e in contested.history()[-2:]} == {f"racer-{winner}"}
    assert contested.verify() is None


def test_many_writers_without_coordination_stay_consistent(
    registry: Registry, registry_url: str
) -> None:
    workers, versions_each = 4, 3
    failures: list[BaseException] = []

    def retrying(worker: int, change: Callable[[], object]) -> None:
        for _ in range(200):
            try:
                change()
                return
            except RegistryConflict:
                time.sleep(0.005 * (worker + 1))
        raise AssertionError(f"worker {worker} never got its change in")

    def work(worker: int) -> None:
        actor = f"w{worker}"
        try:
            with Registry(registry_url) as own:
                for i in range(versions_each):
                    version = f"churn:{actor}-{i}"
                    register = partial(
                        own.register, "churn", version, metrics={}, lineage={}, actor=actor
                    )
                    retrying(worker, register)
                    retrying(worker, partial(promote, own, version, actor=actor))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert failures == []
    total = workers * versions_each
    # register + to staging + to production per version, plus one archive per replacement
    assert registry.change_counter() == 3 * total + (total - 1)
    production = registry.list_versions("churn", Stage.PRODUCTION)
    assert len(production) == 1
    assert len(registry.list_versions("churn", Stage.ARCHIVED)) == total - 1
    assert registry.history()[-1].version == production[0].version
    assert registry.verify() is None


def plan(registry: Registry, change: Callable[[Session], list[Step]]) -> tuple[int, list[Step]]:
    with Session(registry.engine) as session:
        return queries.last_seq(session), change(session)


BACKSTOPS: dict[str, tuple[Callable[[Session], list[Step]], Callable[[Session], list[Step]]]] = {
    "same rows": (
        lambda s: stages.request_promotion(
            s, "churn:b", actor="first", reason="r", gates=[], approver=None
        ),
        lambda s: stages.request_promotion(
            s, "churn:c", actor="second", reason="r", gates=[], approver=None
        ),
    ),
    "disjoint rows": (
        lambda s: stages.register(s, "fraud", "fraud:x", metrics={}, lineage={}, reason="r"),
        lambda s: routing.set_policy(s, "churn", PolicyKind.AB, 0.5, actor="second", reason="r"),
    ),
}


@pytest.mark.parametrize("case", list(BACKSTOPS), ids=list(BACKSTOPS))
def test_second_writer_waits_then_conflicts(contested: Registry, case: str) -> None:
    """White box: the second writer starts while the first one's transaction is still open.

    SQLite queues it at BEGIN IMMEDIATE; PostgreSQL lets it pass the seq check and then
    blocks it on the row or seq key the first writer holds. Either way it must fail once
    the first commits, and leave nothing behind.
    """
    first_plan, second_plan = BACKSTOPS[case]
    base, first_steps = plan(contested, first_plan)
    _, second_steps = plan(contested, second_plan)
    writer = database.writing(contested.engine)
    outcome: list[BaseException | None] = []

    def second() -> None:
        try:
            with database.write_session(writer, "second") as session:
                at = T0 + timedelta(days=2)
                append(
                    session, base_seq=base, steps=second_steps, actor="second", at=at, what="second"
                )
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    with database.write_session(writer, "first") as session:
        at = T0 + timedelta(days=1)
        append(session, base_seq=base, steps=first_steps, actor="first", at=at, what="first")
        waiting = threading.Thread(target=second)
        waiting.start()
        time.sleep(0.5)
        assert waiting.is_alive(), "the second writer should be waiting for the first"
    waiting.join(timeout=30)

    assert len(outcome) == 1 and isinstance(outcome[0], RegistryConflict), outcome
    assert {e.actor for e in contested.history()[base:]} == {"first"}
    assert contested.verify() is None
