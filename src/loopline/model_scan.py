"""Model files are pickles, and unpickling runs whatever the file names: they are scanned
before they are registered, promoted or served, and never loaded when the scan finds more
than the classes a scikit-learn pipeline needs.

The scanner is picklescan: it walks the pickle's opcodes without running any of them and
lists every import the file would make. Loopline asks more of a file than picklescan does:
the walk must reach the end of the file, no import may be on picklescan's list of ones
that run code, and every import must come from the libraries a pipeline is built from.
Models are written as plain pickles (protocol 5) for that reason: joblib writes array data
raw between pickle frames, where a walk stops and a planted import could hide beyond it.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopline.errors import LooplineError

# What a fitted pipeline imports when it is unpickled. A module prefix admits the module
# and everything under it.
ALLOWED_PREFIXES = ("sklearn", "numpy", "scipy")
ALLOWED_NAMES = frozenset(
    {
        ("builtins", "slice"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "complex"),
        ("builtins", "bytearray"),
        ("builtins", "range"),
        ("collections", "OrderedDict"),
        ("copyreg", "_reconstructor"),
    }
)


class UnsafeModel(LooplineError):
    """A model file whose scan found imports that are not a pipeline's."""


@dataclass(frozen=True)
class ScanReport:
    """What the scanner found in one file; ``passed`` only when every rule holds."""

    file: str
    complete: bool  # the walk reached the end of the file
    dangerous: list[str]  # imports picklescan knows to run code
    unlisted: list[str]  # imports from outside the pipeline libraries

    @property
    def passed(self) -> bool:
        return self.complete and not self.dangerous and not self.unlisted

    def summary(self) -> str:
        if self.passed:
            return f"{Path(self.file).name}: only pipeline classes (picklescan)"
        found = []
        if not self.complete:
            found.append("the scan could not read the whole file")
        if self.dangerous:
            found.append("imports that run code: " + ", ".join(self.dangerous))
        if self.unlisted:
            found.append("imports from outside sklearn/numpy/scipy: " + ", ".join(self.unlisted))
        return f"{Path(self.file).name}: " + "; ".join(found)


def scan(path: Path) -> ScanReport:
    """Scan one model file without loading it."""
    from picklescan.scanner import SafetyLevel, scan_file_path

    # Its findings are reported by this module's report, not as log lines of its own.
    logging.getLogger("picklescan").setLevel(logging.ERROR)
    result = scan_file_path(str(path))
    dangerous, unlisted = set(), set()
    for found in result.globals:
        name = f"{found.module}.{found.name}"
        if found.safety == SafetyLevel.Dangerous:
            dangerous.add(name)
        elif not _allowed(found.module, found.name):
            unlisted.add(name)
    return ScanReport(str(path), not result.scan_err, sorted(dangerous), sorted(unlisted))


def _allowed(module: str, name: str) -> bool:
    if (module, name) in ALLOWED_NAMES:
        return True
    return any(module == p or module.startswith(p + ".") for p in ALLOWED_PREFIXES)


def require_safe(path: Path, what: str) -> ScanReport:
    """The scan of ``path``, or :class:`UnsafeModel` naming what it found."""
    report = scan(path)
    if not report.passed:
        raise UnsafeModel(f"{what}: refused, not loaded: {report.summary()}")
    return report


def write_model(model: Any, path: Path) -> None:
    """Write a fitted pipeline as a plain pickle the scanner can read to its end."""
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as out:
        pickle.dump(model, out, protocol=5)
    os.replace(partial, path)


def read_model(path: Path, what: str) -> Any:
    """Scan, then load: a file that fails the scan is never unpickled."""
    import joblib

    require_safe(path, what)
    return joblib.load(path)
