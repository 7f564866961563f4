"""Planning routing changes: the challenger alias and the deployment policy."""

from __future__ import annotations

from sqlalchemy import Insert, Update, delete, insert, update
from sqlalchemy.orm import Session

from loopline.registry import queries
from loopline.registry.chain import Entry
from loopline.registry.errors import IllegalTransition, InvalidInput, UnknownModel
from loopline.registry.ledger import Step
from loopline.registry.records import CHALLENGER, Action, PolicyKind, Stage
from loopline.registry.schema import AliasRow, PolicyRow


def clear_challenger(model_name: str, version: str, reason: str) -> Step:
    """Remove the challenger alias from ``version``."""
    statement = delete(AliasRow).where(
        AliasRow.model_name == model_name,
        AliasRow.alias == CHALLENGER,
        AliasRow.version == version,
    )
    entry = Entry(Action.ALIAS_CLEARED, model_name, version, reason, details={"alias": CHALLENGER})
    return Step(statement, entry)


def set_challenger(
    session: Session, model_name: str, version: str | None, *, reason: str
) -> list[Step]:
    """Point the challenger alias at a staging version, or clear it (no-op if unchanged)."""
    if not queries.model_exists(session, model_name):
        raise UnknownModel(model_name)
    current = queries.challenger_of(session, model_name)
    if version == current:
        return []
    if version is None:
        assert current is not None
        return [clear_challenger(model_name, current, reason)]
    row = queries.version_row(session, version)
    if row.model_name != model_name:
        raise InvalidInput(
            f"model version {version!r} belongs to {row.model_name!r}, not {model_name!r}"
        )
    if row.stage != Stage.STAGING:
        raise IllegalTransition(
            f"model version {version!r} is in {row.stage}; only a staging version can be "
            "the challenger"
        )
    if current is None:
        statement: Insert | Update = insert(AliasRow).values(
            model_name=model_name, alias=CHALLENGER, version=version
        )
    else:
        statement = (
            update(AliasRow)
            .where(
                AliasRow.model_name == model_name,
                AliasRow.alias == CHALLENGER,
                AliasRow.version == current,
            )
            .values(version=version)
        )
    details = {"alias": CHALLENGER, "previous": current}
    entry = Entry(Action.ALIAS_SET, model_name, version, reason, details=details)
    return [Step(statement, entry, stamp="updated_at")]


def set_policy(
    session: Session, model_name: str, kind: PolicyKind, share: float, *, actor: str, reason: str
) -> list[Step]:
    """Change how serving splits traffic for a model (no-op if unchanged)."""
    if not queries.model_exists(session, model_name):
        raise UnknownModel(model_name)
    current = queries.policy_of(session, model_name)
    if (current.kind, current.challenger_share) == (kind, share):
        return []
    values = {"kind": kind.value, "challenger_share": share, "updated_by": actor}
    if current.updated_at is None:
        statement: Insert | Update = insert(PolicyRow).values(model_name=model_name, **values)
    else:
        statement = update(PolicyRow).where(PolicyRow.model_name == model_name).values(**values)
    previous = {"kind": current.kind.value, "challenger_share": current.challenger_share}
    details = {"kind": kind.value, "challenger_share": share, "previous": previous}
    entry = Entry(Action.POLICY_SET, model_name, None, reason, details=details)
    return [Step(statement, entry, stamp="updated_at")]
