"""The errors a user causes and can fix: bad configuration, a bad file, definitions that disagree.

The command line prints their message as its last line, without a traceback (``--debug``
shows it), and Prefect tasks do not retry them: the same input fails the same way again.
"""

from __future__ import annotations


class LooplineError(ValueError):
    """A problem in what the user gave Loopline; the message names the file, key or column."""


def is_expected(error: BaseException | None) -> bool:
    """True for a user's error (reported as its message), False for a fault of Loopline's."""
    return isinstance(error, LooplineError)
