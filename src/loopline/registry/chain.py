"""The hash chain that makes the registry history tamper-evident."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loopline.registry.records import Action, ChainBreak, Stage
from loopline.registry.schema import HistoryRow

GENESIS = "0" * 64


@dataclass(frozen=True)
class Entry:
    """A history entry before it gets its place (seq, time, actor) in the chain."""

    action: Action
    model_name: str
    version: str | None
    reason: str
    from_stage: Stage | None = None
    to_stage: Stage | None = None
    details: dict[str, Any] = field(default_factory=dict)


def canonical_json(value: Any) -> str:
    """One byte-stable JSON spelling of a value: sorted keys, no spaces, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def timestamp(at: datetime) -> str:
    """The spelling of an instant that goes into a hash (UTC, microseconds)."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def content_hash(content: dict[str, Any], prev_hash: str) -> str:
    """sha256 over the canonical JSON of an entry's content and the previous entry's hash."""
    payload = canonical_json({**content, "prev_hash": prev_hash})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def chained_values(
    entry: Entry, *, seq: int, at: datetime, actor: str, prev_hash: str
) -> dict[str, Any]:
    """The column values of ``entry`` placed at ``seq``, hash included."""
    values: dict[str, Any] = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": entry.action.value,
        "model_name": entry.model_name,
        "version": entry.version,
        "from_stage": entry.from_stage.value if entry.from_stage else None,
        "to_stage": entry.to_stage.value if entry.to_stage else None,
        "reason": entry.reason,
        "details": entry.details,
    }
    values["hash"] = content_hash({**values, "at": timestamp(at)}, prev_hash)
    values["prev_hash"] = prev_hash
    return values


def row_hash(row: HistoryRow) -> str:
    """Recompute a stored row's hash from its content and stored prev_hash."""
    content = {
        "seq": row.seq,
        "at": timestamp(row.at),
        "actor": row.actor,
        "action": row.action,
        "model_name": row.model_name,
        "version": row.version,
        "from_stage": row.from_stage,
        "to_stage": row.to_stage,
        "reason": row.reason,
        "details": row.details,
    }
    return content_hash(content, row.prev_hash)


def find_break(rows: Iterable[HistoryRow]) -> ChainBreak | None:
    """Walk rows in seq order and return the first broken link, or None if the chain holds."""
    expected_seq, prev_hash = 1, GENESIS
    for row in rows:
        if row.seq != expected_seq:
            return ChainBreak(
                expected_seq, f"entry {expected_seq} is missing (the next entry is {row.seq})"
            )
        if row_hash(row) != row.hash:
            return ChainBreak(row.seq, f"entry {row.seq} does not match its hash: it was altered")
        if row.prev_hash != prev_hash:
            return ChainBreak(
                row.seq,
                f"entry {row.seq} does not link to entry {row.seq - 1}: "
                "one of them was altered or replaced",
            )
        expected_seq, prev_hash = row.seq + 1, row.hash
    return None
