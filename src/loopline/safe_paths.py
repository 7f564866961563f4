"""Paths a user (or a flow run's parameters) names: never into Loopline's own state.

The state folder holds the pseudonym and master keys, the API-key and user files, the
registry and every store. Nothing there is a batch to ingest or score, nor a place to write
scores: a source that resolves into it (``../.loopline/auth/dev-keys.json``, a symlink in
the drop folder) would have its first line echoed back in the contract's error about
missing columns, and a target there could overwrite the registry. So such a path is refused
before it is opened. A flow started through Prefect's API passes through the same checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from loopline.errors import LooplineError

if TYPE_CHECKING:
    from loopline.settings import Paths


class UnsafePath(LooplineError):
    """A file path that leads into the state folder."""


def outside_state(paths: Paths, path: Path | str, what: str) -> Path:
    """``path``, resolved (links followed, ``..`` removed), if it leads outside the state."""
    given = Path(path)
    try:
        resolved = given.resolve()
    except (OSError, ValueError) as exc:  # a loop of links, an embedded NUL byte
        raise UnsafePath(f"{what} {str(given)!r} is not a usable path: {exc}") from None
    if resolved.is_relative_to(paths.state.resolve()):
        raise UnsafePath(
            f"{what} {str(given)!r} leads into Loopline's state folder ({paths.state}), which "
            "holds keys and stores, never a batch: nothing was read or written"
        )
    return resolved
