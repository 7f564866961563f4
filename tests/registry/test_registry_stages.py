"""Stages, legal and illegal transitions, champion and challenger."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa

from loopline.registry import (
    CHALLENGER,
    CHAMPION,
    LEGAL_MOVES,
    DuplicateVersion,
    IllegalTransition,
    InvalidInput,
    Registry,
    Stage,
    UnknownModel,
    UnknownVersion,
)
from tests.registry.registry_testing import promote, register_staged

ALL_MOVES = list(itertools.product(Stage, Stage))
LEGAL = [(a, b) for a, b in ALL_MOVES if b in LEGAL_MOVES[a]]
ILLEGAL = [(a, b) for a, b in ALL_MOVES if b not in LEGAL_MOVES[a]]


def bring_to(registry: Registry, version: str, stage: Stage) -> None:
    """Register ``version`` (model "churn") and walk it to ``stage`` by legal moves."""
    registry.register("churn", version, metrics={"auc": 0.7}, lineage={}, actor="trainer")
    path = {
        Stage.CANDIDATE: [],
        Stage.STAGING: [Stage.STAGING],
        Stage.PRODUCTION: [Stage.STAGING, Stage.PRODUCTION],
        Stage.ARCHIVED: [Stage.ARCHIVED],
    }[stage]
    for step in path:
        registry.transition(version, step, actor="setup", reason="walk to the test's stage")


def test_register_records_a_candidate(registry: Registry) -> None:
    record = registry.register(
        "churn",
        "churn:abc123",
        metrics={"auc": 0.91, "rows": 1200},
        lineage={"data_hash": "md5:1", "params": {"C": 1.0}, "flow_run_id": "run-7"},
        actor="trainer",
    )
    assert record.stage is Stage.CANDIDATE
    assert record.model_name == "churn"
    assert record.metrics == {"auc": 0.91, "rows": 1200.0}
    assert record.lineage["params"] == {"C": 1.0}
    assert record.created_at.tzinfo is not None
    assert registry.get("churn:abc123") == record
    [entry] = registry.history()
    assert (entry.action, entry.version, entry.to_stage, entry.reason) == (
        "register",
        "churn:abc123",
        Stage.CANDIDATE,
        "registered",
    )


def test_registering_twice_is_refused(registry: Registry) -> None:
    registry.register("churn", "churn:a", metrics={}, lineage={}, actor="trainer")
    with pytest.raises(DuplicateVersion, match="churn:a"):
        registry.register("churn", "churn:a", metrics={}, lineage={}, actor="trainer")
    assert registry.change_counter() == 1


def test_unknown_version_is_named(registry: Registry) -> None:
    with pytest.raises(UnknownVersion, match="churn:nope"):
        registry.get("churn:nope")
    with pytest.raises(UnknownVersion, match="churn:nope"):
        registry.transition("churn:nope", "staging", actor="me", reason="why not")
    with pytest.raises(UnknownVersion, match="churn:nope"):
        registry.approve("churn:nope", actor="me", reason="ok")
    assert registry.history() == []


@pytest.mark.parametrize(("start", "target"), LEGAL, ids=lambda s: s.value)
def test_legal_transition(registry: Registry, start: Stage, target: Stage) -> None:
    bring_to(registry, "churn:v", start)
    record = registry.transition("churn:v", target, actor="alice", reason="because")
    assert record.stage is target
    last = registry.history()[-1]
    assert (last.actor, last.action, last.from_stage, last.to_stage, last.reason) == (
        "alice",
        "transition",
        start,
        target,
        "because",
    )


@pytest.mark.parametrize(("start", "target"), ILLEGAL, ids=lambda s: s.value)
def test_illegal_transition_changes_nothing(
    registry: Registry, start: Stage, target: Stage
) -> None:
    bring_to(registry, "churn:v", start)
    before = registry.history()
    with pytest.raises(IllegalTransition, match="churn:v") as raised:
        registry.transition("churn:v", target, actor="alice", reason="because")
    assert start.value in str(raised.value)
    assert registry.get("churn:v").stage is start
    assert registry.history() == before


def test_promotion_archives_the_previous_production_version(registry: Registry) -> None:
    a, b = register_staged(registry, "churn", "a", "b")
    promote(registry, a)
    counter = registry.change_counter()
    promote(registry, b)
    assert registry.get(a).stage is Stage.ARCHIVED
    assert registry.get(b).stage is Stage.PRODUCTION
    archived, promoted = registry.history()[-2:]
    assert (archived.version, archived.from_stage, archived.to_stage) == (
        a,
        Stage.PRODUCTION,
        Stage.ARCHIVED,
    )
    assert archived.details == {"replaced_by": b}
    assert (promoted.version, promoted.to_stage) == (b, Stage.PRODUCTION)
    assert (archived.seq, promoted.seq) == (counter + 1, counter + 2)
    assert archived.at == promoted.at  # one change, one transaction, one instant
    assert [v.version for v in registry.list_versions("churn", Stage.PRODUCTION)] == [b]


def test_champion_alias_follows_production(registry: Registry) -> None:
    a, b = register_staged(registry, "churn", "a", "b")
    assert registry.production("churn") is None
    promote(registry, a)
    champion = registry.production("churn")
    assert champion is not None and champion.version == a
    assert CHAMPION in registry.get(a).aliases
    promote(registry, b)
    champion = registry.production("churn")
    assert champion is not None and champion.version == b
    assert CHAMPION not in registry.get(a).aliases
    registry.rollback("churn", actor="oncall", reason="latency regression")
    champion = registry.production("churn")
    assert champion is not None and champion.version == a


def test_models_keep_separate_production_versions(registry: Registry) -> None:
    [churn] = register_staged(registry, "churn", "a")
    [fraud] = register_staged(registry, "fraud", "a")
    promote(registry, churn)
    promote(registry, fraud)
    assert registry.get(churn).stage is Stage.PRODUCTION
    assert registry.get(fraud).stage is Stage.PRODUCTION


def test_database_refuses_a_second_production_version(registry: Registry) -> None:
    a, b = register_staged(registry, "churn", "a", "b")
    promote(registry, a)
    with pytest.raises(sa.exc.IntegrityError), registry.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE registry_versions SET stage = 'production' WHERE version = :v"),
            {"v": b},
        )


def test_challenger_must_be_a_staging_version_of_the_model(registry: Registry) -> None:
    a, b = register_staged(registry, "churn", "a", "b")
    registry.register("churn", "churn:c", metrics={}, lineage={}, actor="trainer")
    [other] = register_staged(registry, "fraud", "x")
    promote(registry, a)
    before = registry.change_counter()
    with pytest.raises(IllegalTransition, match="churn:c"):
        registry.set_challenger("churn", "churn:c", actor="me", reason="try")
    with pytest.raises(IllegalTransition, match="churn:a"):
        registry.set_challenger("churn", a, actor="me", reason="try")
    with pytest.raises(InvalidInput, match="fraud:x"):
        registry.set_challenger("churn", other, actor="me", reason="try")
    with pytest.raises(UnknownModel, match="nomodel"):
        registry.set_challenger("nomodel", None, actor="me", reason="try")
    assert registry.change_counter() == before

    record = registry.set_challenger("churn", b, actor="me", reason="a/b test")
    assert record is not None and CHALLENGER in record.aliases
    challenger = registry.challenger("churn")
    assert challenger is not None and challenger.version == b


def test_challenger_is_replaced_cleared_and_unchanged_when_same(registry: Registry) -> None:
    a, b, c = register_staged(registry, "churn", "a", "b", "c")
    registry.set_challenger("churn", a, actor="me", reason="first")
    registry.set_challenger("churn", b, actor="me", reason="second")
    assert registry.get(a).aliases == ()
    last = registry.history()[-1]
    assert (last.action, last.version, last.details) == (
        "alias_set",
        b,
        {"alias": "challenger", "previous": a},
    )
    counter = registry.change_counter()
    registry.set_challenger("churn", b, actor="me", reason="again")
    assert registry.change_counter() == counter  # nothing changed, nothing recorded
    assert registry.set_challenger("churn", None, actor="me", reason="done") is None
    assert registry.challenger("churn") is None
    assert registry.history()[-1].action == "alias_cleared"


@pytest.mark.parametrize("leaves_to", [Stage.PRODUCTION, Stage.ARCHIVED, Stage.CANDIDATE])
def test_challenger_is_cleared_when_it_leaves_staging(registry: Registry, leaves_to: Stage) -> None:
    [b] = register_staged(registry, "churn", "b")
    registry.set_challenger("churn", b, actor="me", reason="a/b test")
    registry.transition(b, leaves_to, actor="me", reason="moving on")
    assert registry.challenger("churn") is None
    cleared, moved = registry.history()[-2:]
    assert (cleared.action, cleared.version) == ("alias_cleared", b)
    assert moved.to_stage is leaves_to
    assert registry.verify() is None


def test_list_versions_and_lineage_search(registry: Registry) -> None:
    a, b = register_staged(registry, "churn", "a", "b")
    [x] = register_staged(registry, "fraud", "x")
    promote(registry, a)
    assert [v.version for v in registry.list_versions()] == [a, b, x]
    assert [v.version for v in registry.list_versions("churn")] == [a, b]
    assert [v.version for v in registry.list_versions(stage="staging")] == [b, x]
    assert [v.version for v in registry.versions_trained_on("data-b")] == [b]
    assert registry.versions_trained_on("data-zzz") == []
    with pytest.raises(InvalidInput, match="live"):
        registry.list_versions(stage="live")
