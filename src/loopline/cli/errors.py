"""A user's mistake reads as one message, last on the console: no traceback, no retries.

Prefect logs a failed task's traceback, and stops its temporary server at exit with a line
of its own; for a :class:`LooplineError` the traceback goes (``--debug`` keeps it) and the
server is stopped before the message is printed, so the message is the last thing shown.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import typer

from loopline.errors import LooplineError, is_expected

DEBUG_ENV = "LOOPLINE_DEBUG"


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV) == "1"


_installed = False


def quiet_expected_tracebacks() -> None:
    """Drop the traceback of a user's error from what Prefect logs (its message stays).

    At the making of each log record, not in a handler: Prefect configures its handlers
    again when its engine starts, and a filter on the old ones would be lost.
    """
    global _installed
    if _installed:
        return
    _installed = True
    make = logging.getLogRecordFactory()

    def record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made = make(*args, **kwargs)
        if made.exc_info and is_expected(made.exc_info[1]) and not debugging():
            made.exc_info, made.exc_text = None, None
        return made

    logging.setLogRecordFactory(record)


def stop_temporary_prefect() -> None:
    """Stop Prefect's temporary server now rather than at exit (it says so when it stops).

    The run logs still queued for it are sent first: sent after, they fail, loudly.
    """
    import sys

    if "prefect.server.api.server" not in sys.modules:
        return  # no flow ran, so no temporary server was started (and importing it is slow)
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer

    servers = list(SubprocessASGIServer._instances.values())
    if not servers:
        return
    with suppress(Exception):  # logs that cannot be sent must not hide the error itself
        APILogWorker.drain_all(timeout=5)
    for server in servers:
        server.stop()


def fail(error: BaseException, *, note: str | None = None) -> typer.Exit:
    """Print ``error`` (and ``note``) as the console's last lines; the exit to raise."""
    stop_temporary_prefect()
    typer.secho(str(error), fg="red", err=True)
    if note:
        typer.secho(note, err=True)
    return typer.Exit(1)


@contextmanager
def reported(note: str | None = None) -> Iterator[None]:
    """Around a command: a :class:`LooplineError` becomes its message and exit code 1."""
    quiet_expected_tracebacks()
    try:
        yield
    except LooplineError as exc:
        if debugging():
            raise
        raise fail(exc, note=note) from None
