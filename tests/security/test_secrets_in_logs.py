"""No log the suite wrote holds a key or a secret: run last (tests/conftest.py orders it).

Every API key and dashboard password made in this process (tests/conftest.py remembers
them as they are made), the keys ``make up`` would keep in ``dev-keys.json``, the
pseudonym and master keys and any key file in a state folder, looked for in every log
file under the session's folders (the servers', the CLI's, Prefect's, BentoML's) and in
the Prefect server's database, which keeps every flow and task run's log lines.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import MADE_SECRETS, SESSION_ROOT
from tests.security import leaks


def _log_files(roots: list[Path]) -> list[Path]:
    return sorted(
        file
        for root in roots
        for file in root.rglob("*")
        if file.is_file() and (".log" in file.suffixes or "logs" in file.parts)
    )


def _secrets(roots: list[Path]) -> dict[str, bytes]:
    found = {f"made in the session ({n})": s.encode() for n, s in enumerate(MADE_SECRETS)}
    for name in ("LOOPLINE_PSEUDONYM_KEY", "LOOPLINE_MASTER_KEY"):
        found[name] = os.environ[name].encode()
    for root in roots:
        for file in root.rglob("dev-keys.json"):
            for role, key in json.loads(file.read_text()).items():
                found[f"{role} key of {file}"] = key.encode()
        for file in root.rglob("dev-login.json"):
            found[f"the local operator's password in {file}"] = json.loads(file.read_text())[
                "password"
            ].encode()
        for name in ("pseudonym.key", "master.key"):  # a state folder's own key files
            for file in root.rglob(f"secrets/{name}"):
                found[f"the key in {file}"] = file.read_bytes().strip()
    return found


def test_no_log_holds_a_key_or_a_secret(
    tmp_path_factory: pytest.TempPathFactory, prefect_harness: None
) -> None:
    roots = [SESSION_ROOT, tmp_path_factory.getbasetemp()]
    logs = [*_log_files(roots), *leaks.prefect_database_files()]
    secrets = _secrets(roots)
    assert logs and len(secrets) > 2
    # The hits name the file and which secret, never the secret itself.
    assert leaks.scan(logs, secrets) == []
