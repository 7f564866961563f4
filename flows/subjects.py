"""A data subject's erasure: one flow, every store, one audit entry.

The flow is given the subject's pseudonym, never the raw id: Prefect keeps every flow
run's parameters in its database, which must not hold the id it is erasing.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from flows.common import project, retry_unless_expected
from loopline.privacy import subjects
from loopline.privacy.audit import AuditLog


@task
def known_subject(pseudonym: int, root: str | None) -> bool:
    params, paths = project(root)
    return not subjects.rows_of(paths, params, pseudonym).empty


@task
def tombstone(pseudonym: int, root: str | None) -> bool:
    _, paths = project(root)
    return subjects.add_tombstone(paths, pseudonym)


@task(retries=2, retry_delay_seconds=1, retry_condition_fn=retry_unless_expected)
def destroy_key(pseudonym: int, root: str | None) -> bool:
    _, paths = project(root)
    return subjects.destroy_key(paths, pseudonym)


@task(retries=2, retry_delay_seconds=1, retry_condition_fn=retry_unless_expected)
def erase_online(pseudonym: int, root: str | None) -> int:
    _, paths = project(root)
    return subjects.erase_online(paths, pseudonym)


@task(retries=2, retry_delay_seconds=1, retry_condition_fn=retry_unless_expected)
def erase_logs(pseudonym: int, root: str | None) -> dict[str, int]:
    _, paths = project(root)
    return subjects.erase_logs(paths, pseudonym)


@task
def versions_trained_on(pseudonym: int, root: str | None) -> list[str]:
    params, paths = project(root)
    return subjects.versions_trained_on(paths, params, pseudonym)


@task
def audit(
    pseudonym: int, action: str, reason: str, actor: str, details: dict[str, Any], root: str | None
) -> dict[str, Any]:
    _, paths = project(root)
    log = AuditLog(paths.registry_url)
    try:
        return log.record(actor, action, pseudonym, reason, details)
    finally:
        log.close()


@flow(name="erase-subject")
def erase_subject(
    pseudonym: int, reason: str, actor: str = "cli", root: str | None = None
) -> dict[str, Any]:
    """Erase one subject: the tombstone first (every later read skips them from then on),
    then the data key, the online rows and the log rows. Every step is idempotent, so a
    run cut short is finished by running it again; a run that finds nothing left to
    remove says so. Audited either way, a failure included."""
    try:
        known = known_subject(pseudonym, root)
        outcome: dict[str, Any] = {
            "subject": pseudonym,
            "known": known,
            "tombstoned": tombstone(pseudonym, root),
            "key_destroyed": destroy_key(pseudonym, root),
            "online_rows_deleted": erase_online(pseudonym, root),
            "log_rows_deleted": erase_logs(pseudonym, root),
            "trained_on_subject": versions_trained_on(pseudonym, root),
        }
    except Exception as exc:
        audit(pseudonym, "erase-failed", reason, actor, {"error": str(exc)}, root)
        raise
    removed = outcome["online_rows_deleted"] + sum(outcome["log_rows_deleted"].values())
    again = not (outcome["tombstoned"] or outcome["key_destroyed"] or removed)
    if again:
        outcome["note"] = "already erased: nothing left to remove"
    elif not known:
        outcome["note"] = "no accepted batch holds this subject; tombstoned so none will"
    audit(pseudonym, "erase-again" if again else "erase", reason, actor, outcome, root)
    return outcome
