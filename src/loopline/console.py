"""What a ``loopline`` command shows: its own lines, Prefect's run lines, and anyone's errors.

Libraries' warnings (deprecations inside BentoML, pygtrie, ibis; Feast's "experimental"
notes), third-party loggers below ERROR and what tools print on their own (Feast's
materialization banner) are not the user's to act on. They go to one log file in the state
folder, ``<state>/logs/console.log``, whose path is printed once, when the first of them
arrives. ``--verbose`` (or ``LOOPLINE_VERBOSE=1``) shows them on the console too.

The routing is set up by :func:`install` and re-asserts itself: Feast resets the warning
filters when imported (so warnings are routed where they are shown, not filtered), and
Prefect configures its handlers when it is imported (so each handler is fitted with the
router as records are made, not once).
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any, TextIO

VERBOSE_ENV = "LOOPLINE_VERBOSE"
LOG_NAME = "console.log"
# Loggers whose records are the console's own lines: Loopline's and Prefect's (flow and task
# runs, their links, the temporary server). Everyone else's reach the console at ERROR.
OWN_LOGGERS = ("loopline", "flows", "bentos", "prefect")
# Terminal colours a tool prints (Feast's banner): noise in a file.
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def shown(logger: str, level: int) -> bool:
    """Whether a log record belongs on the console (else in the log file only)."""
    if verbose() or level >= logging.ERROR:
        return True
    return any(logger == own or logger.startswith(own + ".") for own in OWN_LOGGERS)


def log_path() -> Path | None:
    """``<state>/logs/console.log`` of the project this command runs in; none outside one."""
    from loopline.settings import Paths

    try:
        return Paths.discover().logs / LOG_NAME
    except FileNotFoundError:
        return None


class ConsoleLog:
    """The log file: opened at the first line, named on ``notice`` (stderr) once."""

    def __init__(self, where: Callable[[], Path | None], notice: TextIO) -> None:
        self._where = where
        self._notice = notice
        self._file: TextIO | None = None
        self._tried = False
        self._lock = threading.Lock()
        self.path: Path | None = None

    def write(self, text: str) -> bool:
        """Append ``text``; False when there is no log to write to (show it instead)."""
        with self._lock:
            if not self._tried:
                self._tried = True
                self._open()
            if self._file is None:
                return False
            self._file.write(text if text.endswith("\n") else text + "\n")
            self._file.flush()
            return True

    def _open(self) -> None:
        path = self._where()
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")
        except OSError:
            return
        self.path = path
        # Several processes (a command and the runners it starts) share the file: each
        # says who it is before its first line.
        command = " ".join(["loopline", *sys.argv[1:]])
        self._file.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: {command}\n")
        if not verbose():
            self._notice.write(
                f"(third-party warnings and tool output: {path}; --verbose shows them)\n"
            )
            self._notice.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
            self._file, self._tried, self.path = None, False, None


class Router(logging.Filter):
    """On a console handler: lets the console's own records through, logs the others."""

    def __init__(self, log: ConsoleLog) -> None:
        super().__init__()
        self.log = log
        self._format = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def filter(self, record: logging.LogRecord) -> bool:
        if shown(record.name, record.levelno):
            return True
        return not self.log.write(self._format.format(record))


def is_console(handler: logging.Handler) -> bool:
    """A handler writing to the terminal streams (Prefect's console handler is one)."""
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    terminal = (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
    return any(handler.stream is stream for stream in terminal)


def route_handlers(router: Router, logger: logging.Logger | None = None) -> None:
    """Fit every console handler of ``logger`` (the root) with ``router``, once each."""
    for handler in (logger or logging.getLogger()).handlers:
        if router not in handler.filters and is_console(handler):
            handler.addFilter(router)


_router: Router | None = None


def install(*, verbose_: bool = False) -> ConsoleLog:
    """Route this process's warnings and log records; idempotent (a new command, a new log)."""
    global _router
    if verbose_:
        os.environ[VERBOSE_ENV] = "1"  # the commands this one starts are verbose too
    else:
        os.environ.pop(VERBOSE_ENV, None)
    if _router is not None:
        _router.log.close()  # resolved again: the next command may run in another project
        return _router.log
    log = ConsoleLog(log_path, sys.__stderr__ or sys.stderr)
    router = _router = Router(log)
    show = warnings.showwarning

    def showwarning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        text = warnings.formatwarning(message, category, filename, lineno, line)
        if not log.write(text.rstrip("\n")) or verbose():
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning
    make = logging.getLogRecordFactory()

    def record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        route_handlers(router)
        return make(*args, **kwargs)

    logging.setLogRecordFactory(record)
    # With no handler anywhere, logging prints WARNING and up on stderr by itself.
    last = logging.StreamHandler(sys.stderr)
    last.setLevel(logging.WARNING)
    last.addFilter(router)
    logging.lastResort = last
    return log


@contextmanager
def step(title: str, say: Callable[[str], Any] | None = None) -> Iterator[None]:
    """A long step of Loopline's own around a tool that prints (Feast's materialization):
    a spinner with the title on a terminal, the title as a line otherwise; what the tool
    prints goes to the log (``--verbose``: to the console); then how long it took.

    Only around steps nothing else runs beside: the process's stdout and stderr are swapped.
    Its lines go to stderr, beside Prefect's: a command's stdout may be its JSON result.
    """
    out = sys.stderr
    started = time.monotonic()
    if verbose() or _router is None:
        yield
        (say or _echo(out))(f"{title}: done in {time.monotonic() - started:.1f} s")
        return
    log = _router.log
    sink = _LogStream(log)
    with _spinner(title, out, say), redirect_stdout(sink), redirect_stderr(sink):
        yield
    sink.flush()
    (say or _echo(out))(f"{title}: done in {time.monotonic() - started:.1f} s")


@contextmanager
def _spinner(title: str, out: TextIO, say: Callable[[str], Any] | None) -> Iterator[None]:
    if not out.isatty() or say is not None:
        (say or _echo(out))(f"{title} ...")
        yield
        return
    from rich.console import Console

    with Console(file=out).status(title):
        yield


def _echo(out: TextIO) -> Callable[[str], None]:
    def echo(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    return echo


class _LogStream(io.TextIOBase):
    """A text stream whose lines go to the console log (what a tool prints in a step)."""

    def __init__(self, log: ConsoleLog) -> None:
        super().__init__()
        self.log = log
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line.strip():
                self.log.write(ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        if self._pending.strip():
            self.log.write(ANSI.sub("", self._pending))
        self._pending = ""

    def isatty(self) -> bool:
        return False
