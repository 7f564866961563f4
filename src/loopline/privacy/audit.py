"""The privacy audit log: every erasure and export, chained by hash like the registry's
history, so a changed, removed or reordered entry is found by :meth:`AuditLog.verify`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from loopline.registry.chain import GENESIS, content_hash, timestamp
from loopline.registry.database import (
    create_registry_engine,
    read_session,
    reading,
    upgrade,
    write_session,
    writing,
)
from loopline.registry.schema import PrivacyAuditRow

_KEYS = ("seq", "at", "actor", "action", "subject", "reason", "details")


def _content(row: PrivacyAuditRow | dict[str, Any]) -> dict[str, Any]:
    def get(name: str) -> Any:
        return row[name] if isinstance(row, dict) else getattr(row, name)

    return {
        "seq": get("seq"),
        "at": timestamp(get("at")),
        "actor": get("actor"),
        "action": get("action"),
        "subject": get("subject"),
        "reason": get("reason"),
        "details": get("details"),
    }


class AuditLog:
    def __init__(self, url: str) -> None:
        self._engine = create_registry_engine(url)
        upgrade(self._engine)

    def record(
        self, actor: str, action: str, subject: int | None, reason: str, details: dict[str, Any]
    ) -> dict[str, Any]:
        """Append one entry (a concurrent append is a RegistryConflict: retry)."""
        with write_session(writing(self._engine), "recording a privacy audit entry") as session:
            last = session.execute(
                select(PrivacyAuditRow.seq, PrivacyAuditRow.hash)
                .order_by(PrivacyAuditRow.seq.desc())
                .limit(1)
            ).first()
            seq, prev = (1, GENESIS) if last is None else (last[0] + 1, last[1])
            values: dict[str, Any] = {
                "seq": seq,
                "at": datetime.now(UTC),
                "actor": actor,
                "action": action,
                "subject": subject,
                "reason": reason,
                "details": details,
            }
            values["hash"] = content_hash(_content(values), prev)
            session.add(PrivacyAuditRow(**values, prev_hash=prev))
        return values | {"prev_hash": prev}

    def entries(self, subject: int | None = None) -> list[dict[str, Any]]:
        with read_session(reading(self._engine)) as session:
            query = select(PrivacyAuditRow).order_by(PrivacyAuditRow.seq)
            if subject is not None:
                query = query.where(PrivacyAuditRow.subject == subject)
            rows = session.scalars(query).all()
            return [_content(r) | {"hash": r.hash, "prev_hash": r.prev_hash} for r in rows]

    def verify(self) -> str | None:
        """Why the chain is broken, or None when every entry links to the one before."""
        expected, prev = 1, GENESIS
        for entry in self.entries():
            if entry["seq"] != expected:
                return f"entry {expected} is missing (the next entry is {entry['seq']})"
            content = {k: entry[k] for k in _KEYS}  # "at" is spelled for hashing already
            if content_hash(content, entry["prev_hash"]) != entry["hash"]:
                return f"entry {entry['seq']} does not match its hash: it was altered"
            if entry["prev_hash"] != prev:
                return f"entry {entry['seq']} does not link to entry {expected - 1}"
            expected, prev = expected + 1, entry["hash"]
        return None

    def close(self) -> None:
        self._engine.dispose()
