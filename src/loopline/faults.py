"""Crash points for the crash-safety tests: ``LOOPLINE_CRASH_AT=<point>`` kills the process
with SIGKILL when it reaches that point, exactly as a power cut or the OOM killer would.

Unset (always, outside those tests) a checkpoint costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "LOOPLINE_CRASH_AT"
POINTS = ("features", "fit", "publish")


def checkpoint(point: str) -> None:
    """Die here, without cleanup, when the crash tests asked for this point."""
    if os.environ.get(CRASH_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
