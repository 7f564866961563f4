"""The hash-chained history: contents, tamper detection, replay in time and counters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from loopline.registry import (
    InvalidInput,
    Registry,
)
from loopline.registry.chain import GENESIS, row_hash
from loopline.registry.schema import HistoryRow
from tests.registry.registry_testing import T0, ManualClock, promote, register_staged


def busy_day(registry: Registry) -> None:
    """A realistic mix of every kind of change."""
    a, b, c = register_staged(registry, "churn", "a", "b", "c")
    promote(registry, a)
    registry.set_challenger("churn", b, actor="lead", reason="a/b test")
    registry.set_policy("churn", "ab", 0.5, actor="lead", reason="split evenly")
    registry.request_promotion(b, actor="flow", reason="b wins", gate_results=[], approver="lead")
    registry.approve(b, actor="lead", reason="agreed")
    registry.rollback("churn", actor="oncall", reason="latency")
    registry.transition(c, "archived", actor="lead", reason="not needed")


def sql(registry: Registry, statement: str, **params: Any) -> None:
    with registry.engine.begin() as connection:
        connection.execute(sa.text(statement), params)


def test_history_entries_chain_and_carry_who_when_why(
    registry: Registry, clock: ManualClock
) -> None:
    busy_day(registry)
    entries = registry.history()
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert entries[0].prev_hash == GENESIS
    for before, after in zip(entries, entries[1:], strict=False):
        assert after.prev_hash == before.hash
        assert after.at >= before.at
    assert all(e.actor and e.reason and e.at.tzinfo is not None for e in entries)
    assert entries[0].at == T0
    actions = {e.action.value for e in entries}
    assert actions == {
        "register",
        "transition",
        "alias_set",
        "alias_cleared",
        "policy_set",
        "approval_requested",
        "approved",
        "rollback",
    }
    assert [e.seq for e in registry.history(version="churn:c")] == [
        e.seq for e in entries if e.version == "churn:c"
    ]
    assert registry.history(model_name="fraud") == []
    assert registry.verify() is None


def test_verify_reports_an_entry_edited_in_place(registry: Registry) -> None:
    busy_day(registry)
    sql(registry, "UPDATE registry_history SET reason = 'nothing to see' WHERE seq = 5")
    broken = registry.verify()
    assert broken is not None and broken.seq == 5
    assert "altered" in broken.problem


def test_verify_reports_an_entry_rewritten_with_a_fresh_hash(registry: Registry) -> None:
    busy_day(registry)
    sql(registry, "UPDATE registry_history SET actor = 'someone else' WHERE seq = 7")
    with registry.engine.connect() as connection:
        row = connection.execute(sa.select(HistoryRow).where(HistoryRow.seq == 7)).one()
    forged = HistoryRow(**row._asdict())
    sql(registry, "UPDATE registry_history SET hash = :h WHERE seq = 7", h=row_hash(forged))
    broken = registry.verify()
    assert broken is not None and broken.seq == 8
    assert "does not link to entry 7" in broken.problem


def test_verify_reports_a_deleted_entry(registry: Registry) -> None:
    busy_day(registry)
    sql(registry, "DELETE FROM registry_history WHERE seq = 4")
    broken = registry.verify()
    assert broken is not None and broken.seq == 4 and "missing" in broken.problem


@pytest.mark.parametrize(
    ("statement", "fragment"),
    [
        ("UPDATE registry_versions SET stage = 'staging' WHERE version = 'churn:c'", "churn:c"),
        ("UPDATE registry_versions SET lineage = '{}' WHERE version = 'churn:b'", "churn:b"),
        ("DELETE FROM registry_aliases", "challenger"),
        ("UPDATE registry_policies SET challenger_share = 0.9", "policy"),
    ],
    ids=["stage", "lineage", "alias", "policy"],
)
def test_verify_reports_state_the_history_does_not_explain(
    registry: Registry, statement: str, fragment: str
) -> None:
    a, b, c = register_staged(registry, "churn", "a", "b", "c")
    registry.transition(c, "archived", actor="lead", reason="not needed")
    registry.set_challenger("churn", b, actor="lead", reason="a/b test")
    registry.set_policy("churn", "canary", 0.1, actor="lead", reason="try b")
    sql(registry, statement)
    broken = registry.verify()
    assert broken is not None and fragment in broken.problem


def at_hour(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_served_at_replays_history_not_current_state(
    registry: Registry, clock: ManualClock
) -> None:
    a, b, c = register_staged(registry, "churn", "a", "b", "c")  # all before hour 1
    script: list[tuple[float, Callable[[], object]]] = [
        (1, lambda: promote(registry, a)),
        (3, lambda: registry.set_challenger("churn", b, actor="lead", reason="a/b")),
        (4, lambda: registry.set_policy("churn", "canary", 0.2, actor="lead", reason="c")),
        (5, lambda: promote(registry, b)),
        (7, lambda: promote(registry, c)),
        (8, lambda: registry.rollback("churn", actor="oncall", reason="bad c")),
        (9, lambda: registry.rollback("churn", actor="oncall", reason="c was fine")),
    ]
    for hour, change in script:
        clock.set(at_hour(hour))
        change()

    def served(hour: float) -> tuple[str | None, str | None, str, float]:
        state = registry.served_at("churn", at_hour(hour))
        return (
            state["production"],
            state["challenger"],
            state["policy"],
            state["challenger_share"],
        )

    assert served(0.5) == (None, None, "single", 0.0)
    assert served(1) == (a, None, "single", 0.0)  # the instant of the change counts
    assert served(3.5) == (a, b, "single", 0.0)
    assert served(4.5) == (a, b, "canary", 0.2)
    assert served(5) == (b, None, "canary", 0.2)
    assert served(7.5) == (c, None, "canary", 0.2)
    assert served(8.5) == (b, None, "canary", 0.2)
    assert served(24) == (c, None, "canary", 0.2)
    assert registry.served_at("fraud", at_hour(24))["production"] is None
    east = at_hour(3.5).astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert registry.served_at("churn", east)["production"] == a
    with pytest.raises(InvalidInput, match="timezone-aware"):
        registry.served_at("churn", datetime(2025, 3, 1, 12))


def test_change_counter_grows_with_every_change(registry: Registry) -> None:
    assert registry.change_counter() == 0
    seen = [registry.change_counter()]
    [a] = register_staged(registry, "churn", "a")
    seen.append(registry.change_counter())
    register_staged(registry, "fraud", "x")
    seen.append(registry.change_counter())
    promote(registry, a)
    seen.append(registry.change_counter())
    assert seen == sorted(set(seen))
    assert registry.change_counter("churn") == registry.history(model_name="churn")[-1].seq
    assert registry.change_counter("fraud") < registry.change_counter()
    assert registry.change_counter("nomodel") == 0


def test_history_time_never_runs_backwards(registry: Registry, clock: ManualClock) -> None:
    a, b = register_staged(registry, "churn", "a", "b")
    clock.set(at_hour(2))
    promote(registry, a)
    clock.set(at_hour(1))  # a writer whose clock lags behind the last entry's
    promote(registry, b)
    assert registry.history()[-1].at == at_hour(2)
    assert registry.served_at("churn", at_hour(1.5))["production"] is None
    assert registry.served_at("churn", at_hour(2))["production"] == b
    assert registry.verify() is None
