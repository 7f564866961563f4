"""The one write path: conditional state changes plus their history entries, in one
transaction that fails as a whole if any other change got in first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Delete, Insert, Update, func, insert, select
from sqlalchemy.orm import Session

from loopline.registry.chain import GENESIS, Entry, chained_values
from loopline.registry.errors import RegistryConflict, RegistryError
from loopline.registry.schema import HistoryRow


@dataclass(frozen=True)
class Step:
    """One write that must touch exactly one row, and the history entry that records it."""

    statement: Insert | Update | Delete | None
    entry: Entry | None = None
    stamp: str | None = None  # a column of the statement that takes the change's timestamp


def append(
    session: Session, *, base_seq: int, steps: list[Step], actor: str, at: datetime, what: str
) -> int:
    """Apply ``steps`` planned against history entry ``base_seq``; return the new last seq.

    Raises RegistryConflict when another change was committed since ``base_seq``, or
    when a conditional write finds its row already changed; the caller's transaction
    must then be rolled back. Entries get ``at``, or the previous entry's time if later.
    """
    last = session.scalar(select(func.max(HistoryRow.seq))) or 0
    if last != base_seq:
        raise RegistryConflict(
            f"{what} was prepared against history entry {base_seq} but entry {last} has "
            "been written since by another change; nothing was recorded, retry it"
        )
    prev_hash = GENESIS
    if last:
        previous = session.execute(
            select(HistoryRow.hash, HistoryRow.at).where(HistoryRow.seq == last)
        ).one_or_none()
        if previous is None:
            raise RegistryError(f"history entry {last} is missing; run verify()")
        prev_hash = previous.hash
        # History time never runs backwards, even when this writer's clock lags another's:
        # served_at() relies on every instant selecting a prefix of the chain.
        at = max(at, previous.at)
    seq = last
    connection = session.connection()
    for step in steps:
        if step.statement is not None:
            statement = step.statement
            if step.stamp is not None and not isinstance(statement, Delete):
                statement = statement.values({step.stamp: at})
            touched = connection.execute(statement).rowcount
            # A single-row INSERT either lands or raises; some drivers report -1 for it.
            if not isinstance(statement, Insert) and touched != 1:
                raise RegistryConflict(
                    f"{what} found the registry changed by another change; "
                    "nothing was recorded, retry it"
                )
        if step.entry is not None:
            seq += 1
            values: dict[str, Any] = chained_values(
                step.entry, seq=seq, at=at, actor=actor, prev_hash=prev_hash
            )
            connection.execute(insert(HistoryRow).values(values))
            prev_hash = values["hash"]
    return seq
