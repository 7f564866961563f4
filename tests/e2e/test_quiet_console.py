"""A quiet console: a healthy ``loopline demo`` prints Loopline's and Prefect's lines only.

The real command, in a fresh project of its own with its own temporary Prefect server, as
a user runs it. What libraries say meanwhile lands in the log file the command names once;
``--verbose`` shows it on the console.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from loopline.console import VERBOSE_ENV
from loopline.settings import Paths, tool_environment
from tests.conftest import make_project

pytestmark = pytest.mark.e2e

NOISE = ("Warning", "DeprecationWarning", "Traceback", "warnings.warn(")
# Feast warns at every offline retrieval through an on-demand feature view, which the
# training flow's feature build does: a library warning certain to occur in every demo.
FEAST_NOTE = "On demand feature view is an experimental feature"
NOTICE = re.compile(
    r"^\(third-party warnings and tool output: (?P<path>.+); --verbose shows them\)$"
)


def demo(project: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``loopline [options] demo`` in ``project``, stdout and stderr as one console."""
    session = tool_environment(Paths(project, project / ".loopline"))
    # The session's tool homes are not this project's: the command derives its own.
    env = {k: v for k, v in os.environ.items() if k not in session}
    env.pop("PREFECT_API_URL", None)  # its own temporary server, as a user's first demo
    env.pop(VERBOSE_ENV, None)
    env["LOOPLINE_PROJECT"] = str(project)
    env["LOOPLINE_HOME"] = str(project / ".loopline")
    command = [str(Path(sys.executable).with_name("loopline")), *options, "demo"]
    return subprocess.run(
        command, env=env, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("quiet") / "project")


@pytest.fixture(scope="module")
def quiet(project: Path) -> list[str]:
    done = demo(project)
    assert done.returncode == 0, done.stdout[-3000:]
    return done.stdout.splitlines()


@pytest.fixture(scope="module")
def verbose(project: Path, quiet: list[str]) -> list[str]:
    done = demo(project, "--verbose")
    assert done.returncode == 0, done.stdout[-3000:]
    return done.stdout.splitlines()


def test_a_healthy_demo_prints_no_warning_and_no_traceback(quiet: list[str]) -> None:
    noisy = [line for line in quiet if any(word in line for word in NOISE)]
    assert noisy == [], "\n".join(quiet)
    assert "Loopline demo" in quiet
    # Prefect's own lines stay: its flow runs are the demo's progress.
    assert any("Beginning flow run" in line for line in quiet)
    # Feast's banner is replaced by the step's own line.
    assert not any(line.startswith("Materializing ") for line in quiet)
    assert any(line.startswith("materializing features into the online store") for line in quiet)
    # Training shows a line as each candidate's fit ends.
    assert any(re.search(r"candidate 1/\d+ .*fitted in", line) for line in quiet), quiet


def test_the_log_it_names_once_is_where_it_said(project: Path, quiet: list[str]) -> None:
    named = [m["path"] for m in map(NOTICE.match, quiet) if m]
    assert len(named) == 1, "\n".join(quiet)
    log = Path(named[0])
    assert log == project / ".loopline" / "logs" / "console.log"
    text = log.read_text()
    assert FEAST_NOTE in text
    assert "Materializing " in text  # what Feast printed, kept for whoever wants it


def test_verbose_shows_what_the_log_holds(verbose: list[str]) -> None:
    assert any(FEAST_NOTE in line for line in verbose), "\n".join(verbose)
    assert any(line.startswith("Materializing ") for line in verbose)
    assert not any(NOTICE.match(line) for line in verbose)
