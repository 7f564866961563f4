"""DVC plot files of the selected model, from the same records the registry keeps.

Each file is a JSON list of records, the shape ``dvc plots`` and its templates read:
``roc.json``, ``precision_recall.json``, ``calibration.json``, ``importance.json``, and
``confusion.json`` (one actual/predicted row per holdout row, for DVC's confusion
template; a seeded sample beyond :data:`CONFUSION_ROWS`, the exact counts being in the
experiment record's ``diagnostics.confusion``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

CONFUSION_ROWS = 20_000
PLOTS = "plots"
POSITIVE, NEGATIVE = "churn", "stay"


def write_plots(
    folder: Path,
    diagnostics: dict[str, Any],
    y_true: np.ndarray,
    score: np.ndarray,
    threshold: float,
    seed: int,
) -> list[Path]:
    """Write the plot files into ``folder`` and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "roc.json": diagnostics["roc"],
        "precision_recall.json": diagnostics["precision_recall"],
        "calibration.json": diagnostics["calibration"],
        "importance.json": diagnostics.get("importance") or [],
        "confusion.json": confusion_rows(y_true, score, threshold, seed),
    }
    written = []
    for name, records in files.items():
        path = folder / name
        path.write_text(json.dumps(records, indent=1) + "\n")
        written.append(path)
    return written


def confusion_rows(
    y_true: np.ndarray, score: np.ndarray, threshold: float, seed: int
) -> list[dict[str, str]]:
    """One ``{"actual", "predicted"}`` row per holdout row (a seeded sample beyond
    :data:`CONFUSION_ROWS`), in the holdout's order."""
    y = np.asarray(y_true).astype(int)
    predicted = np.asarray(score, dtype=float) >= threshold
    rows = np.arange(len(y))
    if len(rows) > CONFUSION_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(len(y), CONFUSION_ROWS, replace=False))
    return [
        {
            "actual": POSITIVE if y[i] == 1 else NEGATIVE,
            "predicted": POSITIVE if predicted[i] else NEGATIVE,
        }
        for i in rows
    ]
