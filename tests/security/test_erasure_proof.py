"""The proof of erasure: after ``loopline subjects erase``, nothing Loopline keeps gives the
subject away, and everyone else still decrypts and serves.

A project of its own, with every tool's state in its own state folder: a warehouse-style
table whose ids are random 62-bit numbers and whose subject has a name and e-mail found
nowhere else, so a hit can only be them. It is ingested (name and e-mail kept, sealed),
trained on, served by a real ``bentoml serve`` that logs predictions and feedback for the
subject, then the subject is erased while the service runs. Then every file of the project
(state folder, ``data/``, artifacts, git) and the Prefect server's database is read, through
Parquet, gzip, zip and zlib where a file is one of those, for the subject's id, name and
e-mail. Only the drop folder where the source's batches arrive is left out: it is the
source system's own copy (docs/privacy.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from loopline import platform
from loopline.settings import Paths, tool_environment
from tests.conftest import make_project
from tests.own_data import public_style_table
from tests.security import leaks

pytestmark = pytest.mark.e2e

ROWS = 600
NAME = "Zebulon Quarrington-Vasquez"
EMAIL = "zebulon.quarrington.4417@example.org"
OPERATOR, VIEWER, PASSWORD = "dpo", "victor", "a long enough password"


@dataclass
class Proof:
    root: Path
    paths: Paths
    env: dict[str, str]
    table: pd.DataFrame
    subject: int
    others: list[int]

    def loopline(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        command = [str(Path(sys.executable).with_name("loopline")), *args]
        return subprocess.run(
            command,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=900,
            cwd=self.root,
        )

    def ok(self, *args: str) -> str:
        done = self.loopline(*args)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout


def own_environment(paths: Paths) -> dict[str, str]:
    """This project's tools in its own state folder (the session's are set in os.environ)."""
    from prefect.settings import PREFECT_API_URL

    return {
        **os.environ,
        **tool_environment(paths),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "LOOPLINE_PASSWORD": PASSWORD,
    }


@pytest.fixture(scope="module")
def proof(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Proof:
    root = make_project(tmp_path_factory.mktemp("proof") / "project")
    paths = Paths(root, root / ".loopline")
    table = public_style_table(ROWS, seed=7)
    ids = np.random.default_rng(7).integers(2**61, 2**62, ROWS)
    assert len(set(ids)) == ROWS
    table["customer_id"] = ids
    table.loc[0, ["contact", "email"]] = [NAME, EMAIL]
    drop = root / "data" / "incoming"  # the source's own copy: the one place not scanned
    drop.mkdir(parents=True)
    table.to_csv(drop / "customers.csv", index=False)
    proof = Proof(
        root, paths, own_environment(paths), table, int(ids[0]), [int(i) for i in ids[1:6]]
    )
    proof.ok(
        "init", "--from", str(drop / "customers.csv"), "--entity", "customer_id",
        "--label", "churned", "--timestamp", "signup_date", "--yes",
    )  # fmt: skip
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["dataset"]["pii"].update({"contact": "keep", "email": "keep"})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proof.ok("run")
    proof.ok("users", "add", OPERATOR, "--role", "operator", "--password", PASSWORD)
    proof.ok("users", "add", VIEWER, "--role", "viewer", "--password", PASSWORD)
    return proof


@pytest.fixture(scope="module")
def served(proof: Proof) -> Iterator[tuple[platform.Service, dict[str, str]]]:
    from loopline.config import load_params
    from loopline.promotion import open_registry

    with pytest.MonkeyPatch.context() as patch:
        for name, value in proof.env.items():
            patch.setenv(name, value)
        params = load_params(proof.paths.params_file)
        registry = open_registry(proof.paths)
        (version,) = [v.version for v in registry.list_versions(params.serving.model_name)]
        registry.request_promotion(version, actor="proof", reason="serve it", gate_results=[])
        service = platform.start_serving(proof.paths, platform.free_port(), version)
        with platform.running(service):
            platform.wait_ready(service, "/readyz")
            yield service, {"Authorization": f"Bearer {platform.dev_keys(proof.paths)['client']}"}


def test_after_erasure_nothing_gives_the_subject_away(
    proof: Proof, served: tuple[platform.Service, dict[str, str]]
) -> None:
    service, headers = served
    with httpx.Client(base_url=service.url, headers=headers, timeout=30) as http:
        for ask in (
            {"customer_id": proof.subject},
            {"customer_ids": [proof.subject, *proof.others]},
        ):
            answered = http.post("/predict", json=ask)
            assert answered.status_code == 200, answered.text
        rid = answered.json()["request_id"]
        now = datetime.now(UTC).isoformat()
        for feedback in (
            {"label": 1, "request_id": rid},
            {"label": 1, "customer_id": proof.subject, "at": now},
        ):
            assert http.post("/feedback", json=feedback).status_code == 200

        # Enough traffic for a monitor window, so an Evidently report holds their row too.
        everyone = {"customer_ids": [int(i) for i in proof.table["customer_id"]]}
        assert http.post("/predict", json=everyone).status_code == 200
        logged(proof.paths, len(everyone["customer_ids"]) + 1 + len(proof.others) + 1)
        window = proof.loopline("monitor", "--minutes", "60")
        assert window.returncode == 0, window.stderr[-3000:]
        assert list(proof.paths.reports.rglob("*.html")), window.stdout

        held = json.loads(proof.ok("subjects", "export", str(proof.subject), "--as", OPERATOR))
        assert [(r["contact"], r["email"]) for r in held["data"]] == [(NAME, EMAIL)]
        pseudonym = held["subject"]
        as_stored = pseudonym.to_bytes(8, "little", signed=True)
        live = [proof.paths.serving_log, proof.paths.feast_dir]
        assert leaks.scan([proof.paths.feast_dir], {"pseudonym": as_stored})  # online, for now
        wrapped = wrapped_key(proof.paths, pseudonym)
        # While the service runs: what it still buffers for them must not reach a file.
        erased = json.loads(
            proof.ok(
                "subjects",
                "erase",
                str(proof.subject),
                "--reason",
                "art. 17 request",
                "--as",
                OPERATOR,
            )
        )
        assert (
            erased["tombstoned"] and erased["key_destroyed"] and erased["online_rows_deleted"] > 0
        )
        assert erased["trained_on_subject"]

        gone = http.post("/predict", json={"customer_id": proof.subject})
        assert gone.status_code == 404, gone.text
        still = http.post("/predict", json={"customer_ids": proof.others})
        assert still.status_code == 200, still.text
    service.stop()  # every worker flushes its logs on the way out

    other = proof.table.iloc[1]
    kept = json.loads(proof.ok("subjects", "export", str(other["customer_id"]), "--as", OPERATOR))
    assert [(r["contact"], r["email"]) for r in kept["data"]] == [
        (other["contact"], other["email"])
    ]

    roots = [proof.root, *leaks.prefect_database_files()]
    skip = [proof.root / "data" / "incoming"]
    wanted = {**leaks.needles(proof.subject, [NAME, EMAIL]), "their wrapped data key": wrapped}
    assert leaks.scanned_files(roots, skip) > 100
    # The scan finds a person where they are: the drop folder still holds the source's copy.
    assert leaks.scan([proof.root / "data" / "incoming"], wanted)
    assert leaks.scan(roots, wanted, skip) == []
    # And the live stores no longer hold even the pseudonym.
    assert leaks.scan(live, {"pseudonym": as_stored}) == []


def logged(paths: Paths, rows: int) -> None:
    """Until the service's log files hold ``rows`` predictions (it flushes every second)."""
    import time

    from loopline.serving.predlog_read import read_predictions

    deadline = time.monotonic() + 120  # a hang guard, not a timing assumption
    while len(read_predictions(paths.serving_log)) < rows:
        assert time.monotonic() < deadline, "the service never wrote its prediction log"
        time.sleep(0.2)


def wrapped_key(paths: Paths, pseudonym: int) -> bytes:
    """The subject's data key as the key store holds it (wrapped by the master key)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(paths.registry_url)
    try:
        with engine.connect() as db:
            query = text("SELECT wrapped FROM privacy_subject_keys WHERE pseudonym = :p")
            return bytes(db.execute(query, {"p": pseudonym}).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("asker", [VIEWER, "nobody"])
@pytest.mark.parametrize("action", ["export", "erase"])
def test_only_an_operator_may_export_or_erase_and_a_refusal_is_audited(
    proof: Proof, asker: str, action: str
) -> None:
    from loopline.privacy.audit import AuditLog

    other = str(proof.others[-1])
    extra = ["--reason", "curious"] if action == "erase" else []
    done = proof.loopline("subjects", action, other, *extra, "--as", asker)
    assert done.returncode == 1 and done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("refused, nothing ") and repr(asker) in last, last
    assert ("role viewer" in last) == (asker == VIEWER)
    log = AuditLog(proof.paths.registry_url)
    try:
        assert log.entries()[-1]["action"] == f"{action}-refused"
        assert log.verify() is None
    finally:
        log.close()
    held = json.loads(proof.ok("subjects", "export", other, "--as", OPERATOR))
    assert not held["erased"] and held["data"]  # nothing was erased either
