"""Replaying history: what served a model at an instant, and whether the stored state is
the one the history explains."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from loopline.registry.chain import canonical_json
from loopline.registry.records import CHALLENGER, Action, ChainBreak, PolicyKind, ServedAt, Stage
from loopline.registry.schema import AliasRow, HistoryRow, PolicyRow, VersionRow


@dataclass
class Replay:
    """The state a sequence of history entries leads to."""

    stages: dict[str, str] = field(default_factory=dict)
    registered: dict[str, dict[str, Any]] = field(default_factory=dict)
    challengers: dict[str, str] = field(default_factory=dict)
    policies: dict[str, tuple[str, float]] = field(default_factory=dict)
    last_seq: dict[str, int] = field(default_factory=dict)

    def apply(self, row: HistoryRow) -> None:
        """Advance the replay by one entry."""
        if row.version is not None:
            self.last_seq[row.version] = row.seq
            if row.to_stage is not None:
                self.stages[row.version] = row.to_stage
        if row.action == Action.REGISTER and row.version is not None:
            self.registered[row.version] = row.details
        elif row.action == Action.ALIAS_SET and row.version is not None:
            self.challengers[row.model_name] = row.version
        elif row.action == Action.ALIAS_CLEARED:
            self.challengers.pop(row.model_name, None)
        elif row.action == Action.POLICY_SET:
            self.policies[row.model_name] = (
                row.details["kind"],
                float(row.details["challenger_share"]),
            )

    def in_production(self) -> list[str]:
        """The versions the replay leaves in production (one per model)."""
        return [version for version, stage in self.stages.items() if stage == Stage.PRODUCTION]


def replay(rows: Iterable[HistoryRow]) -> Replay:
    """Replay rows given in seq order."""
    state = Replay()
    for row in rows:
        state.apply(row)
    return state


def served(model_name: str, rows: Iterable[HistoryRow]) -> ServedAt:
    """What served ``model_name`` after the given rows (all of that model, in seq order)."""
    state = replay(rows)
    kind, share = state.policies.get(model_name, (PolicyKind.SINGLE.value, 0.0))
    return ServedAt(
        production=next(iter(state.in_production()), None),
        challenger=state.challengers.get(model_name),
        policy=kind,
        challenger_share=share,
    )


def state_mismatch(
    state: Replay,
    versions: Iterable[VersionRow],
    aliases: Iterable[AliasRow],
    policies: Iterable[PolicyRow],
) -> ChainBreak | None:
    """The first difference between the stored state and the state the history leads to."""
    newest = max(state.last_seq.values(), default=0)
    for row in versions:
        seq = state.last_seq.get(row.version, newest)
        expected = state.stages.get(row.version)
        if expected is None:
            return ChainBreak(seq, f"model version {row.version!r} is not in the history")
        if row.stage != expected:
            return ChainBreak(
                seq,
                f"model version {row.version!r} is {row.stage} but the history says {expected}",
            )
        recorded = state.registered.get(row.version, {})
        stored = {"metrics": row.metrics, "lineage": row.lineage}
        if canonical_json(stored) != canonical_json(
            {"metrics": recorded.get("metrics"), "lineage": recorded.get("lineage")}
        ):
            return ChainBreak(
                seq, f"metrics or lineage of {row.version!r} differ from when it was registered"
            )
    stored_challengers = {a.model_name: a.version for a in aliases if a.alias == CHALLENGER}
    if stored_challengers != state.challengers:
        model = sorted(set(stored_challengers.items()) ^ set(state.challengers.items()))[0][0]
        return ChainBreak(
            newest,
            f"the challenger of {model!r} is {stored_challengers.get(model)!r} but the history "
            f"says {state.challengers.get(model)!r}",
        )
    stored_policies = {p.model_name: (p.kind, p.challenger_share) for p in policies}
    if stored_policies != state.policies:
        model = sorted(set(stored_policies.items()) ^ set(state.policies.items()))[0][0]
        return ChainBreak(
            newest,
            f"the policy of {model!r} is {stored_policies.get(model)!r} but the history "
            f"says {state.policies.get(model)!r}",
        )
    return None
