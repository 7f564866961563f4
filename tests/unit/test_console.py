"""The console's routing: whose records and warnings are shown, and what goes to the log."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from loopline import console


@pytest.fixture(autouse=True)
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(console.VERBOSE_ENV, raising=False)


@pytest.mark.parametrize(
    ("logger", "level", "on_console"),
    [
        ("loopline.promotion", logging.INFO, True),
        ("flows.runner", logging.WARNING, True),
        ("prefect.flow_runs", logging.INFO, True),
        ("prefect", logging.INFO, True),
        ("dvc.repo.scm_context", logging.INFO, False),
        ("feast.feature_store", logging.WARNING, False),
        ("prefectish", logging.WARNING, False),  # a prefix of a name is not the name
        ("bentoml", logging.ERROR, True),  # anyone's error stays visible
        ("root", logging.WARNING, False),
    ],
)
def test_whose_records_are_shown(logger: str, level: int, on_console: bool) -> None:
    assert console.shown(logger, level) is on_console


def test_verbose_shows_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(console.VERBOSE_ENV, "1")
    assert console.shown("dvc.repo.scm_context", logging.DEBUG)


def test_the_log_is_named_once_at_its_first_line(tmp_path: Path) -> None:
    notice = io.StringIO()
    log = console.ConsoleLog(lambda: tmp_path / "logs" / "console.log", notice)
    assert notice.getvalue() == ""  # nothing logged, nothing said
    assert log.write("first")
    assert log.write("second\n")
    log.close()
    assert notice.getvalue().count(str(tmp_path / "logs" / "console.log")) == 1
    header, *lines = (tmp_path / "logs" / "console.log").read_text().splitlines()
    assert header.startswith("--- ") and lines == ["first", "second"]


def test_outside_a_project_nothing_is_hidden(tmp_path: Path) -> None:
    notice = io.StringIO()
    log = console.ConsoleLog(lambda: None, notice)
    assert not log.write("a warning")  # the caller shows it instead
    assert notice.getvalue() == ""


def test_a_third_party_record_goes_to_the_log_not_the_console(tmp_path: Path) -> None:
    log = console.ConsoleLog(lambda: tmp_path / "console.log", io.StringIO())
    shown = io.StringIO()
    handler = logging.StreamHandler(shown)
    handler.addFilter(console.Router(log))
    for name, message in (("dvc.repo", "To track the changes with git"), ("loopline.x", "ours")):
        record = logging.makeLogRecord(
            {"name": name, "levelno": logging.WARNING, "levelname": "WARNING", "msg": message}
        )
        handler.handle(record)
    log.close()
    assert "To track the changes" not in shown.getvalue() and "ours" in shown.getvalue()
    assert (
        "WARNING dvc.repo: To track the changes with git" in (tmp_path / "console.log").read_text()
    )


def test_only_terminal_handlers_are_routed(tmp_path: Path) -> None:
    import sys

    router = console.Router(console.ConsoleLog(lambda: None, io.StringIO()))
    logger = logging.Logger("test-console-handlers")
    terminal = logging.StreamHandler(sys.stderr)
    captured = logging.StreamHandler(io.StringIO())  # e.g. pytest's caplog
    to_file = logging.FileHandler(tmp_path / "f.log", delay=True)
    for handler in (terminal, captured, to_file):
        logger.addHandler(handler)
    console.route_handlers(router, logger)
    console.route_handlers(router, logger)  # again, as at every record: fitted once
    assert terminal.filters == [router]
    assert captured.filters == [] and to_file.filters == []


def test_a_tool_printing_inside_a_step_prints_to_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log = console.ConsoleLog(lambda: tmp_path / "console.log", io.StringIO())
    monkeypatch.setattr(console, "_router", console.Router(log))
    said: list[str] = []
    with console.step("materializing", say=said.append):
        print("Materializing \x1b[1m\x1b[32m2\x1b[0m feature views")
        print("customer_profile:", end="")
    log.close()
    assert said[0] == "materializing ..." and said[1].startswith("materializing: done in ")
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err == ""
    text = (tmp_path / "console.log").read_text()
    assert "Materializing 2 feature views\ncustomer_profile:" in text


def test_verbose_steps_print_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(console.VERBOSE_ENV, "1")
    log = console.ConsoleLog(lambda: tmp_path / "console.log", io.StringIO())
    monkeypatch.setattr(console, "_router", console.Router(log))
    with console.step("materializing", say=lambda _: None):
        print("Materializing 2 feature views")
    assert "Materializing 2 feature views" in capsys.readouterr().out  # where the tool put it
