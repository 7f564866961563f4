"""The drift story ``make demo`` tells, on the real services.

Simulated days pass at a fixed number of real seconds each. A healthy stretch of traffic;
then the generator's price change (``generator.drift_day``) reaches the served customers;
new data batches arrive as a data team would deliver them, labels only ``label_delay_days``
after their snapshot; the monitor compares the last stretch of predictions with the
champion's reference and emits a Prefect event; the ``retrain`` deployment's trigger starts
a retrain on the newest data version, which begins as a canary; once the canary's
predictions have their labels, the rollout is reviewed on live ROC AUC and the challenger
is promoted or rolled back. What happened is read back from the registry's history and
the drift history, not from this module's memory.

The monitor runs once per stretch here, not every ``interval_minutes``: in compressed time
a real-time interval would be hundreds of simulated days. The drift stretch is long enough
for the newest batch to hold labelled snapshots from after the change (label delay plus the
training holdout), or a retrain could learn nothing new.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loopline.config import Params
from loopline.settings import Paths

ACTOR = "demo"


@dataclass(frozen=True)
class Pace:
    """How fast simulated time runs and how much traffic each day carries."""

    seconds_per_day: float = 0.5
    rate: float = 120.0  # prediction requests per real second
    healthy_days: int = 14
    canary_days: int = 60
    batch_every_days: int = 30


@dataclass
class Chapter:
    day: int
    at: datetime
    what: str


def drift_days(params: Params) -> int:
    """Days of drifted traffic before the monitor looks: enough for the newest batch to hold
    labelled rows from after the change beyond the training holdout (two weeks of them)."""
    return params.dataset.label_delay_days + (params.training.holdout_days or 0) + 14


def deliver_batch(params: Params, paths: Paths, day: int) -> dict[str, Any]:
    """The world as known on ``day``, accepted through the ``ingest`` flow (a new DVC version)."""
    from flows.ingest import ingest
    from loopline.simulate import world

    batch = paths.project / "data" / "incoming" / f"{params.dataset.name}-day{day:03d}.parquet"
    batch.parent.mkdir(parents=True, exist_ok=True)
    world(params, day).to_parquet(batch, index=False)
    return dict(ingest(source=str(batch)))


def monitor(api_url: str, minutes: float) -> dict[str, Any]:
    """``loopline monitor`` in its own process, so its event goes to this story's server."""
    result = subprocess.run(
        [sys.executable, "-m", "loopline.cli", "monitor", "--minutes", f"{minutes:.3f}"],
        env={**os.environ, "PREFECT_API_URL": api_url},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        raise RuntimeError(f"monitor failed:\n{result.stderr[-3000:]}")
    return dict(json.loads(result.stdout[result.stdout.index("{") :]))


def wait_for_retrain(api_url: str, after: datetime, timeout: float = 900) -> Any:
    """The first ``retrain`` flow run started after ``after``, once it has finished."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + timeout
    with (
        temporary_settings(updates={PREFECT_API_URL: api_url}),
        get_client(sync_client=True) as client,
    ):
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["retrain"]))
            )
            done = [
                r
                for r in runs
                if r.start_time is not None
                and r.start_time >= after
                and r.state is not None
                and r.state.is_final()
            ]
            if done:
                return done[0]
            time.sleep(2)
    raise TimeoutError(f"no retrain flow run finished within {timeout:.0f} s of the event")


def tell(
    params: Params,
    paths: Paths,
    *,
    serving_url: str,
    client_key: str,
    api_url: str,
    pace: Pace | None = None,
    say: Any = print,
) -> dict[str, Any]:
    """Run the story against running services; return the registry's and monitor's record."""
    from loopline import promotion
    from loopline.monitoring import loop
    from loopline.simulate import simulate

    pace = pace or Pace()
    g = params.built_in()
    if g.drift_day is None or g.drift_day <= g.days:
        raise ValueError(
            f"generator.drift_day must fall after the generated {g.days} days for the story "
            f"to start healthy (it is {g.drift_day})"
        )
    name = params.serving.model_name
    registry = promotion.open_registry(paths)
    story_start = datetime.now(UTC)
    first_seq = max((e.seq for e in registry.history(name)), default=0)
    chapters: list[Chapter] = []

    def note(day: int, what: str) -> None:
        chapters.append(Chapter(day, datetime.now(UTC), what))
        say(f"  day {day:>3}  {what}")

    labels_due: deque[Any] = deque()  # feedback outlives each stretch of replay

    def replay(start: int, days: int) -> tuple[Any, float]:
        began = time.monotonic()
        stats = simulate(
            params,
            paths,
            url=serving_url,
            key=client_key,
            days=days,
            rate=pace.rate,
            seconds_per_day=pace.seconds_per_day,
            start_day=start,
            pending=labels_due,
        )
        time.sleep(1.5)  # the service flushes its prediction log every second
        return stats, (time.monotonic() - began) / 60

    day = g.days
    healthy = min(pace.healthy_days, g.drift_day - day)
    stats, minutes = replay(day, healthy)
    minutes += 0.25  # the monitor's process starts seconds after the last request
    note(day, f"{stats.predictions} predictions over {healthy} healthy days, {stats.errors} errors")
    day += healthy
    window = monitor(api_url, minutes)
    note(
        day,
        f"monitor: {window['rows']} rows, drift share {window['drift_share']:.2f} "
        f"({', '.join(window['drifted']) or 'no feature'}); events {window['events'] or 'none'}",
    )

    day = max(day, g.drift_day)
    note(day, "the price change reaches customers (generator.drift_day)")
    drifted = drift_days(params)
    # The monitor's window is the last stretch of drifted traffic (a month at most), the
    # way an interval schedule would see it.
    stretch = min(30, drifted)
    for start in range(day, day + drifted, pace.batch_every_days):
        length = min(pace.batch_every_days, day + drifted - start)
        stats, minutes = replay(start, length)
        note(start + length, f"{stats.predictions} predictions, {stats.feedback} labels back")
        version = deliver_batch(params, paths, start + length)["version"]
        note(
            start + length, f"new data version {version['data_hash'][:10]} ({version['rows']} rows)"
        )
    day += drifted
    window_minutes = minutes * stretch / max(1, length)
    asked = datetime.now(UTC)
    window = monitor(api_url, window_minutes)
    note(
        day,
        f"monitor: drift share {window['drift_share']:.2f} "
        f"({', '.join(window['drifted']) or 'no feature'}), live ROC AUC "
        f"{_num(window['roc_auc'])} on {window['n_labels']} labels; events "
        f"{window['events'] or 'none'}",
    )
    if not window["events"]:
        return _record(registry, paths, name, first_seq, story_start, chapters, window=window)
    run = wait_for_retrain(api_url, asked)
    note(day, f"Prefect started retrain ({run.name}): {run.state.name}")
    challenger = registry.challenger(name)
    if challenger is None:
        note(day, "the retrained model did not pass its gates; nothing rolled out")
        return _record(registry, paths, name, first_seq, story_start, chapters, window=window)
    policy = registry.policy(name)
    note(day, f"{challenger.version} starts as {policy.kind} at {policy.challenger_share:.0%}")

    stats, _ = replay(day, pace.canary_days)
    day += pace.canary_days
    note(day, f"{stats.predictions} predictions under the rollout: {stats.versions}")
    # The rollout's age is counted in simulated days here, not in canary_minutes.
    now_params = params.model_copy(
        update={"monitoring": params.monitoring.model_copy(update={"canary_minutes": 0})}
    )
    review = loop.review_rollout(now_params, paths, actor=ACTOR)
    note(day, f"review: {review['decision']} ({review.get('why') or review.get('evidence')})")
    return _record(
        registry, paths, name, first_seq, story_start, chapters, window=window, review=review
    )


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _num(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def _record(
    registry: Any,
    paths: Paths,
    name: str,
    first_seq: int,
    since: datetime,
    chapters: list[Chapter],
    **extra: Any,
) -> dict[str, Any]:
    from loopline.tracking import Store

    history = [e for e in registry.history(name) if e.seq > first_seq]
    store = Store(paths.registry_url).migrate()
    try:
        # By when they were computed: a window may reach back before the story started.
        windows = [w for w in store.windows(name) if _aware(w["computed_at"]) >= since]
    finally:
        store.close()
    return {
        "chapters": [vars(c) for c in chapters],
        "history": [
            {
                "seq": e.seq,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "version": e.version,
                "reason": e.reason,
            }
            for e in history
        ],
        "windows": [
            {k: w[k] for k in ("window_end", "rows", "drift_share", "roc_auc", "events")}
            for w in windows
        ],
        **extra,
    }


def timeline(record: dict[str, Any]) -> str:
    """The registry's own account of the story, one line per recorded action."""
    lines = ["", "What the monitor recorded:"]
    for w in record["windows"]:
        lines.append(
            f"  {w['window_end']:%H:%M:%S}  {w['rows']:>5} rows  drift share "
            f"{w['drift_share']:.2f}  live ROC AUC {_num(w['roc_auc'])}  "
            f"events {', '.join(w['events']) or 'none'}"
        )
    lines += ["", "What the registry recorded:"]
    for e in record["history"]:
        lines.append(
            f"  #{e['seq']:<4} {e['at']:%H:%M:%S}  {e['action']:<14} {e['version'] or '':<26} "
            f"by {e['actor']}: {e['reason']}"
        )
    return "\n".join(lines)
