"""A data subject's rights across Loopline's stores: access (export) and erasure.

Each function is one step of the erase flow (``flows/subjects.py``) or of an export, and
takes the subject's pseudonym: the raw id is turned into it once, by the caller, so it
never becomes a flow parameter in Prefect's database.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from loopline.config import Params
from loopline.privacy.pseudonyms import Pseudonyms
from loopline.privacy.secrets import MissingSecret, master_key, pseudonym_key
from loopline.registry.database import (
    create_registry_engine,
    read_session,
    reading,
    upgrade,
    writing,
)
from loopline.registry.schema import TombstoneRow
from loopline.settings import Paths


def subject_of(paths: Paths, raw_id: Any) -> int:
    """The pseudonym every store knows the subject by."""
    return Pseudonyms(pseudonym_key(paths)).of(raw_id)


def rows_of(paths: Paths, params: Params, pseudonym: int, file: Path | None = None) -> pd.DataFrame:
    """The subject's rows of an accepted batch (default: the current one)."""
    entity = params.dataset.entity
    source = file or paths.raw_batch
    if not source.is_file():
        return pd.DataFrame()
    table = pq.read_table(source, filters=[(entity, "==", pseudonym)])
    return table.to_pandas()


def destroy_key(paths: Paths, pseudonym: int) -> bool:
    """Destroy the subject's data key (their kept columns, in every version, become noise)."""
    from loopline.privacy.keystore import SubjectKeys

    try:
        master = master_key(paths)
    except MissingSecret:
        return False  # no key was ever made with it: nothing is sealed for anyone
    keys = SubjectKeys(paths.registry_url, master)
    try:
        destroyed = keys.destroy(pseudonym)
        keys.purge()  # also when already destroyed: a run cut short before it finishes here
        return destroyed
    finally:
        keys.close()


def add_tombstone(paths: Paths, pseudonym: int) -> bool:
    """Mark the subject erased; False if it already was."""
    engine = create_registry_engine(paths.registry_url)
    upgrade(engine)
    try:
        with writing(engine).begin() as connection:
            row = {"pseudonym": pseudonym, "erased_at": datetime.now(UTC)}
            connection.execute(insert(TombstoneRow).values(**row))
        return True
    except IntegrityError:
        return False
    finally:
        engine.dispose()


class ErasedSubjects:
    """The tombstone list, for writers that run for long (the service's logs ask it at every
    flush): one engine, kept, rather than one per question."""

    def __init__(self, registry_url: str) -> None:
        self._engine = create_registry_engine(registry_url)

    def __call__(self) -> set[int]:
        try:
            with read_session(reading(self._engine)) as session:
                return set(session.scalars(select(TombstoneRow.pseudonym)))
        except DBAPIError:  # no table yet: read paths do not migrate, writers do
            return set()

    def close(self) -> None:
        self._engine.dispose()


def tombstones(paths: Paths) -> set[int]:
    """Every erased subject's pseudonym (none before the registry has its privacy tables)."""
    erased = ErasedSubjects(paths.registry_url)
    try:
        return erased()
    finally:
        erased.close()


def erase_online(paths: Paths, pseudonym: int) -> int:
    """Delete the subject's rows from every feature view of the online store."""
    from loopline import features
    from loopline.privacy import online_erase

    return online_erase.erase_online(features.feature_store(paths), pseudonym)


def erase_logs(paths: Paths, pseudonym: int) -> dict[str, int]:
    """Rewrite every prediction and feedback log file that holds the subject, without them.

    Run after the tombstone is in: under the logs' exclusive erasing lock, so a running
    service's next flush drops the subject's buffered rows (serving/predlog.py).
    """
    from loopline.serving.predlog import FEEDBACK, PREDICTIONS, erasing_lock

    removed = {PREDICTIONS: 0, FEEDBACK: 0}
    with erasing_lock(paths.serving_log, exclusive=True):
        # Feedback sent by request id alone names no customer: it is theirs when the
        # request asked for them only.
        only_theirs: set[str] = set()
        for file in sorted((paths.serving_log / PREDICTIONS).rglob("*.parquet")):
            count, requests = _without(file, pseudonym)
            removed[PREDICTIONS] += count
            only_theirs |= requests
        for file in sorted((paths.serving_log / FEEDBACK).rglob("*.parquet")):
            removed[FEEDBACK] += _without(file, pseudonym, only_theirs)[0]
    return removed


def _without(file: Path, pseudonym: int, requests: set[str] | None = None) -> tuple[int, set[str]]:
    """Drop the subject's rows (and feedback for ``requests``) from one log file; how many,
    and the ids of the requests that asked for the subject alone."""
    import pyarrow.compute as pc

    data = pq.read_table(file)
    ids = data.column("entity_id")
    hit = pc.fill_null(pc.equal(ids, pseudonym), False)
    if requests:
        unnamed = pc.and_(pc.is_null(ids), pc.is_in(data.column("request_id"), pa.array(requests)))
        hit = pc.or_(hit, pc.fill_null(unnamed, False))
    count = pc.sum(hit).as_py() or 0
    if not count:
        return 0, set()
    alone: set[str] = set()
    if requests is None:  # a prediction file: which of the subject's requests were theirs only
        mine = set(data.filter(hit).column("request_id").to_pylist())
        others = set(data.filter(pc.invert(hit)).column("request_id").to_pylist())
        alone = mine - others
    partial = file.with_name(f".{file.name}.erasing")
    pq.write_table(data.filter(pc.invert(hit)), partial)
    os.replace(partial, file)  # readers see the old file or the new one, never half of one
    return int(count), alone


def versions_trained_on(paths: Paths, params: Params, pseudonym: int) -> list[str]:
    """Registered model versions whose training data held the subject (from lineage); a
    version whose data version can no longer be restored is listed too (not ruled out)."""
    from loopline.data import versioning
    from loopline.promotion import open_registry

    registry = open_registry(paths)
    found = []
    by_hash: dict[str, bool] = {}
    for record in registry.list_versions(params.serving.model_name):
        data_hash = (record.lineage or {}).get("data_hash")
        if not data_hash:
            continue
        if data_hash not in by_hash:
            try:
                file = versioning.restore(paths, paths.raw_batch, data_hash)
            except FileNotFoundError:
                by_hash[data_hash] = True  # the version is gone: it cannot be ruled out
            else:
                by_hash[data_hash] = not rows_of(paths, params, pseudonym, file).empty
        if by_hash[data_hash]:
            found.append(record.version)
    return found


def export(paths: Paths, params: Params, pseudonym: int) -> dict[str, Any]:
    """Everything Loopline holds about the subject, kept columns decrypted (an access request)."""
    from loopline.privacy.audit import AuditLog
    from loopline.serving.predlog import FEEDBACK, PREDICTIONS

    rows = rows_of(paths, params, pseudonym)
    kept = [c for c in params.dataset.pii_columns("keep") if c in rows.columns]
    if kept and not rows.empty:
        rows = _opened(paths, pseudonym, rows, kept)
    logs = {
        table: _log_rows(paths.serving_log / table, pseudonym) for table in (PREDICTIONS, FEEDBACK)
    }
    audit = AuditLog(paths.registry_url)
    try:
        entries = audit.entries(subject=pseudonym)
    finally:
        audit.close()
    return {
        "subject": pseudonym,
        "erased": pseudonym in tombstones(paths),
        "data": _records(rows),
        "predictions": _records(logs[PREDICTIONS]),
        "feedback": _records(logs[FEEDBACK]),
        "models_trained_on_subject": versions_trained_on(paths, params, pseudonym),
        "audit": entries,
    }


def _opened(paths: Paths, pseudonym: int, rows: pd.DataFrame, kept: list[str]) -> pd.DataFrame:
    from loopline.privacy.encryption import open_token
    from loopline.privacy.keystore import SubjectKeys

    keys = SubjectKeys(paths.registry_url, master_key(paths))
    try:
        key = keys.get([pseudonym]).get(pseudonym)
    finally:
        keys.close()
    out = rows.copy()
    for column in kept:
        out[column] = [
            None if key is None or t is None else open_token(key, pseudonym, column, t)
            for t in rows[column]
        ]
    return out


def _log_rows(folder: Path, pseudonym: int) -> pd.DataFrame:
    parts = [
        pq.read_table(f, filters=[("entity_id", "==", pseudonym)]).to_pandas()
        for f in sorted(folder.rglob("*.parquet"))
    ]
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    import json

    return list(json.loads(frame.to_json(orient="records", date_format="iso")))
