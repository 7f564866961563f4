"""Traffic simulator: replays generated days against the real HTTP API.

Each simulated day writes that day's feature snapshots to the online store, sends
prediction requests for that day's customers at a steady rate, and sends feedback for
earlier days once their label delay has passed. It follows the dataset's drift scenario,
so a drift day in the replayed range shows up in the monitor.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd

from loopline.config import Params
from loopline.settings import Paths


@dataclass
class SimulationStats:
    days: int = 0
    predictions: int = 0
    feedback: int = 0
    errors: int = 0
    versions: dict[str, int] = field(default_factory=dict)


def world(params: Params, days: int, drift_day: int | None = None) -> pd.DataFrame:
    """The generator's world as known after ``days`` days (same seed: the same history).

    Labels are only known ``label_delay_days`` after their snapshot, so the last days of
    the frame carry none, exactly as a batch delivered on that day would.
    """
    from loopline.data.generate import Scenario, generate

    g = params.built_in()
    return generate(
        Scenario(
            customers=g.customers,
            days=days,
            seed=g.seed,
            start_date=g.start_date,
            label_delay_days=params.dataset.label_delay_days,
            drift_day=drift_day if drift_day is not None else g.drift_day,
        )
    )


def push_day(
    store: Any, views: list[Any], day: pd.DataFrame, entity: str, stamp: str, pseudonyms: Any
) -> None:
    """Make one day's snapshots the latest online features, as a streaming job would: under
    the pseudonyms ingestion gives the ids (``pseudonyms``: a :class:`Pseudonyms`)."""
    keyed = day.assign(**{entity: pseudonyms.series(day[entity])})
    for view in views:
        columns = [entity, stamp, *(f.name for f in view.features)]
        store.write_to_online_store(view.name, keyed[columns])


def replay_frame(params: Params, last_day: int, drift_day: int | None) -> pd.DataFrame:
    """Every snapshot up to ``last_day`` with its eventual label (the simulator's truth)."""
    return world(params, last_day + 1 + params.dataset.label_delay_days, drift_day)


def simulate(
    params: Params,
    paths: Paths,
    *,
    url: str,
    key: str,
    days: int,
    rate: float,
    seconds_per_day: float,
    feedback_delay_days: int | None = None,
    drift_day: int | None = None,
    max_seconds: float | None = None,
    start_day: int | None = None,
    pending: deque[tuple[int, list[dict[str, Any]]]] | None = None,
) -> SimulationStats:
    """Replay ``days`` days from ``start_day`` (default: the day after the generated data)
    at ``rate`` requests/s; bounded in count and time. Labels not yet due stay in
    ``pending`` (pass the same deque to the next call to deliver them on time)."""
    from loopline import features
    from loopline.privacy.pseudonyms import Pseudonyms
    from loopline.privacy.secrets import pseudonym_key

    pseudonyms = Pseudonyms(pseudonym_key(paths))
    entity, stamp, label = params.dataset.entity, params.dataset.timestamp, params.dataset.label
    first = params.built_in().days if start_day is None else start_day
    frame = replay_frame(params, first + days - 1, drift_day)
    start = frame[stamp].min()
    frame["day"] = (frame[stamp] - start).dt.days
    store = features.feature_store(paths)
    views = features.batch_views(paths)
    delay = params.dataset.label_delay_days if feedback_delay_days is None else feedback_delay_days
    pending = deque() if pending is None else pending
    stats = SimulationStats()
    rng = np.random.default_rng(params.built_in().seed)
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + (max_seconds or float("inf"))
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        for day in range(first, first + days):
            if time.monotonic() > deadline:
                break
            today = frame[frame["day"] == day]
            push_day(store, views, today, entity, stamp, pseudonyms)
            budget = min(len(today), max(1, int(rate * seconds_per_day)))
            chosen = today.iloc[rng.choice(len(today), size=budget, replace=False)]
            answered = _predict_day(client, chosen, entity, label, stamp, rate, stats)
            pending.append((day, answered))
            while pending and pending[0][0] <= day - delay:
                _send_feedback(client, pending.popleft()[1], stats)
            stats.days += 1
    return stats


def _predict_day(
    client: httpx.Client,
    chosen: pd.DataFrame,
    entity: str,
    label: str,
    stamp: str,
    rate: float,
    stats: SimulationStats,
) -> list[dict[str, Any]]:
    answered = []
    gap = 1.0 / rate
    next_at = time.monotonic()
    for row in chosen.itertuples(index=False):
        next_at += gap
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        response = client.post("/predict", json={entity: int(getattr(row, entity))})
        if response.status_code != 200:
            stats.errors += 1
            continue
        body = response.json()
        version = body["predictions"][0]["model_version"]
        stats.versions[version] = stats.versions.get(version, 0) + 1
        stats.predictions += 1
        truth = getattr(row, label)
        if pd.notna(truth):
            answered.append({"request_id": body["request_id"], "label": int(truth)})
    return answered


def _send_feedback(
    client: httpx.Client, rows: list[dict[str, Any]], stats: SimulationStats
) -> None:
    for row in rows:
        response = client.post("/feedback", json=row)
        if response.status_code == 200:
            stats.feedback += 1
        else:
            stats.errors += 1


def day_of(params: Params, when: datetime) -> int:
    """The generator day number of an instant (for reading timelines)."""
    start = datetime.combine(params.built_in().start_date, datetime.min.time())
    return (when.replace(tzinfo=None) - start) // timedelta(days=1)
