"""What a window is compared with: recent healthy traffic, or the model's holdout.

A holdout is a picture of the customers on the days the model was trained. Customers age
(tenure grows, the churners leave), so months later every healthy window differs from it:
measured, the same customers 60-90 days on drifted past Evidently's 0.1 in several
features every time. The recent reference is the served traffic of the windows that the
monitor judged healthy (no event found, cooldown or not) over the last
``reference_hours``, ending before the current window starts, so no row is on both sides.
It ages with the population; a change faster than that is what the comparison shows.

Until enough healthy rows exist (just after a promotion, or when every recent window
raised an event) the holdout is the reference, as before. A holdout is older than the
traffic by at least the label delay (its rows needed their labels), so it gets its own,
looser per-feature threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

Span = tuple[datetime, datetime]
# The most served rows read for a recent reference: a busy day holds millions, and the drift
# tests sample 50,000 anyway; the latest rows are read.
MAX_REFERENCE_ROWS = 200_000


@dataclass(frozen=True)
class Reference:
    """The reference rows and where they came from."""

    frame: pd.DataFrame
    source: Literal["recent", "holdout"]
    windows: int
    rows: int

    def feature_threshold(self, recent: float | None, holdout: float | None) -> float | None:
        """The per-feature drift threshold for this reference (``holdout`` None: ``recent``)."""
        return recent if self.source == "recent" or holdout is None else holdout

    def describe(self) -> str:
        """One phrase for reasons and logs."""
        if self.source == "holdout":
            return f"the model's holdout ({self.rows} rows)"
        return f"{self.rows} rows of {self.windows} recent healthy windows"


def healthy_spans(
    windows: list[dict[str, Any]], *, model_version: str, before: datetime, hours: float
) -> list[Span]:
    """Spans of recorded healthy windows of ``model_version`` ending in the ``hours`` to ``before``.

    Windows recorded before the monitor stored ``healthy`` (None) are not used: a window
    held back by the cooldown recorded no events and may still have drifted.
    """
    end, start = _utc(before), _utc(before) - timedelta(hours=hours)
    spans = [
        (_utc(w["window_start"]), _utc(w["window_end"]))
        for w in windows
        if w.get("healthy") and w.get("model_version") == model_version
    ]
    return sorted((a, b) for a, b in spans if b <= end and a >= start)


def in_spans(rows: pd.DataFrame, spans: list[Span], at: str = "at") -> pd.DataFrame:
    """The rows whose ``at`` falls in any span (``start <= at < end``), each once."""
    if not spans or rows.empty:
        return rows.iloc[:0]
    times = pd.to_datetime(rows[at], utc=True)
    keep = np.zeros(len(rows), dtype=bool)
    for start, end in spans:
        keep |= (
            (times >= pd.Timestamp(_utc(start))) & (times < pd.Timestamp(_utc(end)))
        ).to_numpy()
    return rows[keep]


def window_reference(
    holdout: pd.DataFrame,
    served: pd.DataFrame,
    spans: list[Span],
    *,
    min_rows: int,
    at: str = "at",
) -> Reference:
    """The served rows inside ``spans`` when there are ``min_rows`` of them, else the holdout."""
    recent = in_spans(served, spans, at)
    if len(recent) >= min_rows:
        return Reference(recent, "recent", len(spans), len(recent))
    return Reference(holdout, "holdout", 0, len(holdout))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def served_rows(
    folder: Path, version: str, since: datetime, until: datetime, limit: int | None = None
) -> pd.DataFrame:
    """``version``'s non-shadow predictions in ``[since, until)``, with labels that arrived.

    With ``limit``, only the latest ``limit`` predictions of the span are read.
    """
    from loopline.serving.predlog_read import labelled_predictions, read_predictions

    served = read_predictions(folder, since=since, until=until, limit=limit)
    if served.empty:
        return served
    # Labels only for the rows read: a limited read covers less than the span.
    since = max(_utc(since), pd.Timestamp(served["at"].min()).to_pydatetime())
    served = served[(~served["shadow"]) & (served["model_version"] == version)]
    labelled = labelled_predictions(folder, since=since, until=until)
    labelled = labelled[labelled["model_version"] == version]
    return served.merge(
        labelled[["request_id", "entity_id", "actual"]], on=["request_id", "entity_id"], how="left"
    )
