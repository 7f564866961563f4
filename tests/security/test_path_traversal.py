"""Every file path a user or a flow run's parameters name: none reaches into the state folder.

Ingestion (the CLI and the flow's own step), batch scoring (its source and its target) and
the dashboard's Evidently reports, each given ``..`` paths, absolute paths and symlinks
that lead to the API keys ``make up`` keeps in plain text (``auth/dev-keys.json``) or to
the registry's database. Each is refused, names the path, and reads, writes or echoes
nothing of what it points at.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loaders import common
from loopline import platform, scoring, steps
from loopline.safe_paths import UnsafePath

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def keys_file(built: dict[str, Any], paths: Any) -> Path:
    platform.dev_keys(paths)
    file = paths.state / "auth" / "dev-keys.json"
    assert file.is_file()
    return file


def _ways_in(paths: Any, keys_file: Path, tmp_path: Path) -> list[Path]:
    link = tmp_path / "innocent.csv"
    link.symlink_to(keys_file)
    dotted = paths.project / "data" / "incoming" / ".." / ".." / ".loopline" / "auth"
    return [dotted / keys_file.name, keys_file, link, paths.state / "registry.db"]


def _unchanged(paths: Any) -> tuple[bytes, list[str]]:
    pointer = paths.project / "data" / "raw" / "dataset.parquet.dvc"
    rejected = sorted(p.name for p in paths.rejected.glob("*")) if paths.rejected.exists() else []
    return pointer.read_bytes(), rejected


def test_ingest_from_the_cli_refuses_a_way_into_the_state(
    paths: Any, keys_file: Path, tmp_path: Path
) -> None:
    before = _unchanged(paths)
    secrets = keys_file.read_text()
    for way in _ways_in(paths, keys_file, tmp_path)[:3]:
        command = [str(Path(sys.executable).with_name("loopline")), "ingest", str(way)]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=300, env=os.environ.copy()
        )
        assert done.returncode == 1, done.stdout
        *_, refused, note = done.stderr.strip().splitlines()
        assert "leads into Loopline's state folder" in refused and str(way) in refused, refused
        assert note.startswith("nothing changed")
        assert "Traceback" not in done.stderr
        for key in json.loads(secrets).values():
            assert key not in done.stdout + done.stderr
    assert _unchanged(paths) == before


def test_flow_steps_refuse_a_way_into_the_state(
    params: Any, paths: Any, keys_file: Path, tmp_path: Path
) -> None:
    before = _unchanged(paths)
    for way in _ways_in(paths, keys_file, tmp_path):
        with pytest.raises(UnsafePath, match="leads into Loopline's state folder"):
            steps.accept_step(params, paths, way)  # what the ingest flow's task runs
        with pytest.raises(UnsafePath, match="leads into Loopline's state folder"):
            scoring.score_file(params, paths, str(way))
    outside = tmp_path / "ids.csv"
    outside.write_text("customer_id\n1\n")
    registry = paths.state / "registry.db"
    was = registry.read_bytes()
    with pytest.raises(UnsafePath, match="scores' target"):
        scoring.score_file(params, paths, str(outside), str(registry))  # would overwrite it
    assert registry.read_bytes() == was
    assert _unchanged(paths) == before


def test_the_dashboard_opens_only_reports_inside_the_reports_folder(
    paths: Any, keys_file: Path, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "w.html").write_text("<html></html>")
    (reports / "escape.html").symlink_to(keys_file)
    for stored in [
        "../../" * 12 + str(keys_file).lstrip("/"),
        str(keys_file),
        "escape.html",  # a link inside the folder that leads out of it
        "w.html\x00.png",
        "..%2F..%2Fauth%2Fdev-keys.json",
    ]:
        assert common.report_path(reports, stored) is None, stored
    assert common.report_path(reports, "w.html") == (reports / "w.html").resolve()
