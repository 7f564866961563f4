"""Drift detection quality against known truth, and the cost of a 1M-row window.

Windows come from the built-in generator, so which of them drifted, and how, is known:

* no drift: rows of other customers over the same days as the reference;
* covariate shift in 1, 3 or all 12 features at magnitude m: a numeric feature moves by m
  reference standard deviations, a categorical one has a share m of its rows moved to its
  rarest category; labels are kept, the on-demand ratios are recomputed;
* label-prior shift: the churn rate doubled by resampling each class, inputs unchanged;
* concept drift: the same customers from the generator with price sensitivity reversed, so
  who churns changes while the inputs barely do;
* the generator's own drift scenario (the demo's): a 25 % price rise on paid plans and
  churn three times as price sensitive.

Every window goes through ``compare_window`` and ``decide`` as the monitor runs them, over
the model's 14 inputs (12 features and the feature service's 2 on-demand ratios), against
one of the monitor's two references (``loopline.monitoring.reference``):

* holdout: a holdout of other customers scored by a model trained on a third group, what
  the monitor uses until healthy windows have accumulated (just after a promotion);
* recent: the served traffic of the healthy windows of the ``RECENT_DAYS`` days before the
  window, picked by the monitor's own ``healthy_spans`` and ``window_reference`` from daily
  window records. The windows are then the same customers 60-90 days after the holdout's
  snapshots, each from ``RECENT_DAYS`` consecutive days: the steady state months after a
  promotion, when the customers have aged. Every earlier day counts as healthy here (in
  the monitor, only windows that raised nothing would), which the no-drift rate justifies.

``run(quick)`` measures and returns a JSON-able dict; ``markdown(result)`` renders it as a
section of docs/benchmarks.md; ``large_window_timing(rows)`` times a 1M-row x 20-column
window and measures what sampling does to its scores. As a script: ``--out result.json``
(and ``--markdown`` to print the section).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import say  # noqa: E402

from loopline.config import DatasetParams, load_params  # noqa: E402
from loopline.data.generate import Scenario, generate  # noqa: E402
from loopline.monitoring.drift import compare_window  # noqa: E402
from loopline.monitoring.loop import _policy  # noqa: E402
from loopline.monitoring.policy import (  # noqa: E402
    DRIFT_DETECTED,
    PERFORMANCE_DEGRADED,
    MonitoringPolicy,
    decide,
)
from loopline.monitoring.reference import (  # noqa: E402
    Reference,
    healthy_spans,
    window_reference,
)

REPO = Path(__file__).resolve().parent.parent
START = date(2026, 1, 1)
# Rows from the first 60 of 90 generated days: every one has its 30-day label.
LABELLED_DAYS = 60
MAGNITUDES = {"small": 0.1, "moderate": 0.25, "large": 0.5}
THREE_FEATURES = ["monthly_charges", "usage_hours", "plan"]
# Price sensitivity after the "drift day" (1.0 before): reversed, churn follows value less.
CONCEPT = {"moderate": -6.0, "large": -10.0}
PRIOR_FACTOR = 2.0
# A stricter drift-share threshold reported beside the project's: 5 of the 14 inputs.
ALT_SHARE = 0.3
# Days between the reference's snapshots and the "aged" no-drift windows' snapshots.
AGED_DAYS = (60, 90)
RATIOS = ["charges_per_usage_hour", "tickets_per_session"]
NOW = datetime(2026, 6, 1, tzinfo=UTC)
MODEL = ("logistic_regression", {"C": 1.0})
PADDING = 6  # standard-normal columns that pad the 14 model inputs to 20 in the 1M window
# The recent reference: healthy traffic of this many days before a window of as many days.
RECENT_DAYS = 7
MODES = ("holdout", "recent")
# The ROC AUC check re-decided per window at these confidences and allowed drops, beside
# the project's, from each window's estimate and standard error (one run, every setting).
AUC_CONFIDENCES = (0.8, 0.9, 0.95, 0.99)
AUC_DROPS = (0.03, 0.04, 0.05)


@dataclass(frozen=True)
class Settings:
    customers: int
    reference_rows: int
    window_rows: int
    windows: int  # per drift scenario
    null_windows: int  # no-drift windows, for the false-alarm rate
    streams: int  # per delay scenario
    stream_length: int
    onset: int  # index of the first drifted window of a stream
    ramp: int  # windows a gradual drift takes to reach full strength
    large_rows: int


FULL = Settings(12_000, 10_000, 2000, 20, 100, 4, 8, 3, 3, 1_000_000)
QUICK = Settings(4000, 5000, 2000, 5, 10, 2, 6, 2, 2, 100_000)

# A window from a pool of served rows, at a strength in [0, 1] (ramps scale it).
Window = Callable[[np.random.Generator, float, pd.DataFrame], pd.DataFrame]
# The reference a window is judged against, and the pool of rows the window is drawn from.
Source = Callable[[np.random.Generator], tuple[Reference, pd.DataFrame]]


@dataclass
class World:
    dataset: DatasetParams
    model: Any
    threshold: float
    policy: MonitoringPolicy
    feature_threshold: float | None
    holdout_feature_threshold: float | None
    reference_min_rows: int
    reference: pd.DataFrame
    holdout_auc: float
    stream: pd.DataFrame
    aged: pd.DataFrame
    # The stream's customers over 150 days (scored), and each row's day since START.
    served: pd.DataFrame
    served_day: pd.Series
    concept: dict[str, pd.DataFrame]
    spread: dict[str, float]
    rarest: dict[str, str]
    window_rows: int

    @property
    def numeric(self) -> list[str]:
        return [*self.dataset.numeric, *RATIOS]

    @property
    def inputs(self) -> list[str]:
        return [*self.numeric, *self.dataset.categorical]


def with_ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """The feature service's on-demand ratios, with its formulas."""
    return frame.assign(
        charges_per_usage_hour=frame["monthly_charges"] / (frame["usage_hours"] * 4 + 1),
        tickets_per_session=frame["support_tickets_30d"] / (frame["sessions_per_week"] + 1),
    )


def _population(
    dataset: DatasetParams, customers: int, seed: int, days: int = LABELLED_DAYS, **drift: float
) -> pd.DataFrame:
    frame = generate(
        Scenario(
            customers=customers,
            days=days + dataset.label_delay_days,
            seed=seed,
            start_date=START,
            label_delay_days=dataset.label_delay_days,
            **drift,
        )
    )
    frame = with_ratios(frame[frame[dataset.label].notna()])
    return frame.astype({dataset.label: int}).reset_index(drop=True)


def _draw(rows: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    return rows.iloc[rng.choice(len(rows), size=n, replace=False)]


def build_world(s: Settings, seed: int = 101, feature_threshold: float | None = None) -> World:
    """Reference, model and window sources; customers split by id so no row is shared."""
    from sklearn.metrics import roc_auc_score

    from loopline.training.candidates import Candidate, build_pipeline

    params = load_params(REPO / "params.yaml")
    ds = params.dataset
    features = [*ds.numeric, *RATIOS, *ds.categorical]
    base = _population(ds, s.customers, seed)
    group = base[ds.entity] % 4
    rng = np.random.default_rng(seed)
    train = _draw(base[group == 0], min(40_000, int((group == 0).sum())), rng)
    model = build_pipeline(Candidate(*MODEL), [*ds.numeric, *RATIOS], ds.categorical, 7)
    model.fit(train[features], train[ds.label])
    holdout = base[group == 1]
    holdout = holdout.assign(score=model.predict_proba(holdout[features])[:, 1])
    reference = _draw(holdout, s.reference_rows, rng)
    # The same seed gives the same customers and inputs; only churn reacts to price differently.
    concept = {
        size: _population(
            ds,
            s.customers,
            seed,
            drift_day=0,
            price_increase=0.0,
            price_sensitivity_after_drift=sensitivity,
        )
        for size, sensitivity in CONCEPT.items()
    }
    concept["price change"] = _population(ds, s.customers, seed, drift_day=0)
    # The same customers, no drift, snapshots 60-90 days after the reference's: the
    # survivors are older (tenure) and differ from the churners that left.
    later = _population(ds, s.customers, seed, days=LABELLED_DAYS + AGED_DAYS[1])
    day = (later[ds.timestamp] - pd.Timestamp(START, tz="UTC")).dt.days
    aged = later[(day >= AGED_DAYS[0]) & (day < AGED_DAYS[1]) & (later[ds.entity] % 4 >= 2)]
    served = later[later[ds.entity] % 4 >= 2]
    served = served.assign(score=model.predict_proba(served[features])[:, 1])
    m = params.monitoring
    return World(
        dataset=ds,
        model=model,
        threshold=params.serving.threshold,
        # The project's own policy, as the monitor applies it.
        policy=_policy(params).model_copy(
            update={
                "auc_confidence": m.auc_confidence,
                "auc_min_class_labels": m.auc_min_class_labels,
            }
        ),
        feature_threshold=(
            feature_threshold if feature_threshold is not None else m.feature_drift_threshold
        ),
        # --feature-threshold sets both, to measure one threshold on both references.
        holdout_feature_threshold=(
            feature_threshold
            if feature_threshold is not None
            else m.holdout_feature_drift_threshold
        ),
        reference_min_rows=m.reference_min_rows,
        reference=reference,
        # On every holdout row: the customers' churn is shared by all their daily rows, so a
        # 10k-row sample's ROC AUC alone strays by a few hundredths.
        holdout_auc=float(roc_auc_score(holdout[ds.label], holdout["score"])),
        stream=base[group >= 2],
        aged=aged.reset_index(drop=True),
        served=served.reset_index(drop=True),
        served_day=day[later[ds.entity] % 4 >= 2].reset_index(drop=True),
        concept={k: v[v[ds.entity] % 4 >= 2] for k, v in concept.items()},
        spread={c: float(reference[c].std()) for c in ds.numeric},
        rarest={c: str(reference[c].value_counts().idxmin()) for c in ds.categorical},
        window_rows=s.window_rows,
    )


# --- references: what a window is judged against, and where its rows come from -----------


def holdout_source(w: World) -> Source:
    """The holdout of other customers; windows from the stream's same days."""
    reference = Reference(w.reference, "holdout", 0, len(w.reference))
    return lambda rng: (reference, w.stream)


def recent_source(w: World) -> Source:
    """Windows of ``RECENT_DAYS`` days 60-90 days on; the monitor's recent reference."""
    # The daily windows the monitor would have recorded, all healthy, all the same model.
    records = [
        {
            "window_start": _at(day),
            "window_end": _at(day + 1),
            "model_version": "benchmark",
            "healthy": True,
        }
        for day in range(AGED_DAYS[0] - RECENT_DAYS, AGED_DAYS[1])
    ]

    def source(rng: np.random.Generator) -> tuple[Reference, pd.DataFrame]:
        day = int(rng.integers(AGED_DAYS[0], AGED_DAYS[1] - RECENT_DAYS + 1))
        spans = healthy_spans(
            records, model_version="benchmark", before=_at(day), hours=24 * RECENT_DAYS
        )
        reference = window_reference(
            w.reference,
            w.served,
            spans,
            min_rows=w.reference_min_rows,
            at=w.dataset.timestamp,
        )
        pool = w.served[w.served_day.between(day, day + RECENT_DAYS - 1)]
        return reference, pool

    return source


def _at(day: int) -> datetime:
    return datetime.combine(START + timedelta(days=day), datetime.min.time(), tzinfo=UTC)


# --- windows: each takes a generator, a strength in [0, 1] (ramps scale it) and a pool ----


def no_drift(w: World) -> Window:
    return lambda rng, strength, pool: _draw(pool, w.window_rows, rng)


def covariate(w: World, features: list[str], magnitude: float) -> Window:
    def make(rng: np.random.Generator, strength: float, pool: pd.DataFrame) -> pd.DataFrame:
        window = _draw(pool, w.window_rows, rng).copy()
        m = magnitude * strength
        for column in features:
            if column in w.spread:
                window[column] = window[column] + m * w.spread[column]
            else:
                window.loc[rng.random(len(window)) < m, column] = w.rarest[column]
        return with_ratios(window)

    return make


def prior_shift(w: World, factor: float) -> Window:
    label = w.dataset.label

    def make(rng: np.random.Generator, strength: float, pool: pd.DataFrame) -> pd.DataFrame:
        positives, negatives = pool[pool[label] == 1], pool[pool[label] == 0]
        rate = len(positives) / len(pool)
        k = round(w.window_rows * rate * (1 + (factor - 1) * strength))
        return pd.concat([_draw(positives, k, rng), _draw(negatives, w.window_rows - k, rng)])

    return make


def concept(w: World, size: str) -> Window:
    rows = w.concept[size]

    def make(rng: np.random.Generator, strength: float, pool: pd.DataFrame) -> pd.DataFrame:
        k = round(w.window_rows * strength)
        return pd.concat([_draw(rows, k, rng), _draw(pool, w.window_rows - k, rng)])

    return make


def judge(w: World, window: pd.DataFrame, reference: Reference) -> dict[str, Any]:
    """One window through the monitor's two steps: compare with the reference, then decide."""
    ds = w.dataset
    scores = w.model.predict_proba(window[w.inputs])[:, 1]
    window = window.assign(score=scores, predicted=(scores >= w.threshold).astype(int))
    result = compare_window(
        reference.frame,
        window,
        numeric=w.numeric,
        categorical=ds.categorical,
        score_column="score",
        label_column=ds.label,
        prediction_column="predicted",
        feature_threshold=reference.feature_threshold(
            w.feature_threshold, w.holdout_feature_threshold
        ),
        entity_column=ds.entity,
    )
    decision = decide(
        result, holdout_auc=w.holdout_auc, last_trigger_at=None, now=NOW, policy=w.policy
    )
    return {
        "drift_share": result.drift_share,
        "drifted": result.drifted,
        "feature_alarm": result.drifted_features > 0,
        "drift_event": DRIFT_DETECTED in decision.events,
        # Drift found by the features alone, and by the prior checks (either or both).
        "feature_event": result.drift_share >= w.policy.drift_share_threshold,
        "prior_event": any(p.outcome == "shifted" for p in decision.prior),
        "label_rate_unjudged": any(
            p.outcome == "not enough evidence" and p.quantity == "label rate"
            for p in decision.prior
        ),
        "reference": reference.source,
        "prediction_drift": bool(result.prediction_drifted),
        "performance_event": PERFORMANCE_DEGRADED in decision.events,
        "event": decision.triggered,
        "roc_auc": result.roc_auc,
        "auc_se": decision.auc.se if decision.auc else None,
        "seconds": result.seconds,
    }


def _auc_sweep(w: World, records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per (confidence, drop): the share of windows with a ROC AUC event, and with any event."""
    out = {}
    for confidence in AUC_CONFIDENCES:
        z = NormalDist().inv_cdf(0.5 + confidence / 2)
        for drop in AUC_DROPS:
            fired = [
                r["auc_se"] is not None
                and r["roc_auc"] + z * r["auc_se"] < w.holdout_auc - drop - 1e-9
                for r in records
            ]
            out[f"{confidence:g}/{drop:g}"] = {
                "performance_event": sum(fired) / len(records),
                "event": sum(f or r["drift_event"] for f, r in zip(fired, records, strict=True))
                / len(records),
            }
    return out


def scenarios(w: World, mode: str = "holdout") -> list[tuple[str, str, Window]]:
    """(name, truth, window) for every detection-rate scenario against ``mode``'s reference."""
    every = list(w.dataset.features)
    aged_name = f"no drift, same customers {AGED_DAYS[0]}-{AGED_DAYS[1]} days later"
    if mode == "recent":
        out: list[tuple[str, str, Window]] = [(aged_name, "none", no_drift(w))]
    else:
        out = [("no drift, other customers, same days", "none", no_drift(w))]
        aged = lambda rng, strength, pool: _draw(w.aged, w.window_rows, rng)  # noqa: E731
        out.append((aged_name, "none", aged))
    for label, features in (("1 feature", ["monthly_charges"]), ("3 features", THREE_FEATURES)):
        for size, m in MAGNITUDES.items():
            out.append((f"covariate, {label}, {size} (m={m})", "inputs", covariate(w, features, m)))
    for size, m in MAGNITUDES.items():
        name = f"covariate, all 12 features, {size} (m={m})"
        out.append((name, "inputs", covariate(w, every, m)))
    out.append((f"label prior x{PRIOR_FACTOR:g}", "labels", prior_shift(w, PRIOR_FACTOR)))
    if mode == "recent":
        # The concept populations cover the holdout's days only.
        return out
    for size, sensitivity in CONCEPT.items():
        out.append((f"concept, {size} (sensitivity {sensitivity:g})", "relation", concept(w, size)))
    out.append(("generator's price change", "both", concept(w, "price change")))
    return out


def streams(w: World) -> list[tuple[str, Window]]:
    every = list(w.dataset.features)
    return [
        ("covariate, all 12 features, moderate", covariate(w, every, MAGNITUDES["moderate"])),
        ("covariate, 3 features, large", covariate(w, THREE_FEATURES, MAGNITUDES["large"])),
        ("concept, large", concept(w, "large")),
    ]


def _rates(records: list[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "feature_alarm",
        "drift_event",
        "feature_event",
        "prior_event",
        "label_rate_unjudged",
        "prediction_drift",
        "performance_event",
        "event",
    )
    aucs = [r["roc_auc"] for r in records if r["roc_auc"] is not None]
    ses = [r["auc_se"] for r in records if r["auc_se"] is not None]
    flagged = Counter(f for r in records for f in r["drifted"])
    return {
        "windows": len(records),
        "recent_reference": sum(r["reference"] == "recent" for r in records) / len(records),
        **{k: sum(r[k] for r in records) / len(records) for k in keys},
        "alt_share_event": sum(r["drift_share"] >= ALT_SHARE for r in records) / len(records),
        "mean_drift_share": float(np.mean([r["drift_share"] for r in records])),
        "mean_roc_auc": float(np.mean(aucs)) if aucs else None,
        # The spread of the windows' ROC AUCs beside the mean standard error the check uses.
        "sd_roc_auc": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else None,
        "mean_auc_se": float(np.mean(ses)) if ses else None,
        "flagged": dict(flagged.most_common()),
        # The median: the first window of a run also pays Evidently's import.
        "seconds_per_window": float(np.median([r["seconds"] for r in records])),
    }


def detection_rates(
    w: World, s: Settings, seed: int = 0, mode: str = "holdout"
) -> list[dict[str, Any]]:
    source = recent_source(w) if mode == "recent" else holdout_source(w)
    out = []
    for index, (name, truth, window) in enumerate(scenarios(w, mode)):
        rng = np.random.default_rng([seed, index, MODES.index(mode)])
        count = s.null_windows if truth == "none" else s.windows
        records = []
        for _ in range(count):
            reference, pool = source(rng)
            records.append(judge(w, window(rng, 1.0, pool), reference))
        rates = _rates(records) | {"auc_sweep": _auc_sweep(w, records)}
        out.append({"scenario": name, "truth": truth, "mode": mode, **rates})
        say(f"drift quality ({mode}): {name}: events {out[-1]['event']:.0%}")
    return out


def detection_delays(w: World, s: Settings, seed: int = 0) -> list[dict[str, Any]]:
    """Streams where drift starts at window ``s.onset``: windows until the first alarm.

    Two alarms are followed: the policy's events, and a drift share of ``ALT_SHARE`` or more.
    """
    reference = Reference(w.reference, "holdout", 0, len(w.reference))
    out = []
    for index, (name, window) in enumerate(streams(w)):
        for onset in ("abrupt", "gradual"):
            alarms: dict[str, list[list[bool]]] = {"policy": [], "alt_share": []}
            for stream in range(s.streams):
                rng = np.random.default_rng([seed, 100 + index, stream, onset == "gradual"])
                records = []
                for i in range(s.stream_length):
                    after = i - s.onset + 1
                    strength = 0.0 if after <= 0 else 1.0 if onset == "abrupt" else after / s.ramp
                    drawn = window(rng, min(1.0, strength), w.stream)
                    records.append(judge(w, drawn, reference))
                alarms["policy"].append([r["event"] for r in records])
                alarms["alt_share"].append([r["drift_share"] >= ALT_SHARE for r in records])
            row: dict[str, Any] = {"stream": f"{name}, {onset}", "streams": s.streams}
            for alarm, fired in alarms.items():
                row[alarm] = _delays(fired, s.onset)
            out.append(row)
            say(f"drift delay: {row['stream']}: {row['policy']['delays']}")
    return out


def _delays(streams: list[list[bool]], onset: int) -> dict[str, Any]:
    delays = [next((i - onset for i in range(onset, len(f)) if f[i]), None) for f in streams]
    found = [d for d in delays if d is not None]
    return {
        "delays": delays,
        "detected": len(found) / len(delays),
        "mean_delay": float(np.mean(found)) if found else None,
        "max_delay": max(found) if found else None,
        "early_alarm_rate": sum(sum(f[:onset]) for f in streams) / (len(streams) * onset),
    }


# --- the 1M-row window ---------------------------------------------------------------------


def _large_frames(rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Any]:
    from loopline.training.candidates import Candidate, build_pipeline

    ds = load_params(REPO / "params.yaml").dataset
    days = 100
    # Churn removes up to ~25 % of the snapshots over 100 days (more after the price change),
    # so enough customers are generated for ~40 % spare.
    customers = math.ceil(rows / days / 0.6)
    rng = np.random.default_rng(seed)

    def frame(population_seed: int, **drift: float) -> pd.DataFrame:
        raw = generate(
            Scenario(customers, days, population_seed, START, ds.label_delay_days, **drift)
        )
        raw = with_ratios(_draw(raw, rows, rng).drop(columns=["name", "email"]))
        for i in range(PADDING):
            raw[f"padding_{i + 1}"] = rng.normal(size=len(raw))
        return raw

    reference = frame(seed)
    same = frame(seed + 1)
    # The generator's own drift scenario from day 0: a 25 % price rise on paid plans.
    drifted = frame(seed + 2, drift_day=0)
    inputs = [*ds.numeric, *RATIOS, *ds.categorical]
    numeric = [c for c in inputs if c not in ds.categorical]
    model = build_pipeline(Candidate("logistic_regression", {"C": 1.0}), numeric, ds.categorical, 0)
    sample = reference[reference[ds.label].notna()].sample(50_000, random_state=seed)
    model.fit(sample[inputs], sample[ds.label].astype(int))
    for f in (reference, same, drifted):
        f["score"] = model.predict_proba(f[inputs])[:, 1]
    return reference, same, drifted, ds


def large_window_timing(rows: int = 1_000_000, seed: int = 0, repeats: int = 3) -> dict[str, Any]:
    """Seconds for a ``rows`` x 20-column window, and what sampling does to its drift scores.

    Both sides have ``rows`` rows: the 12 dataset features, the 2 on-demand ratios and 6
    padding columns (20 compared columns), plus the model score and the label.
    """
    started = time.perf_counter()
    reference, same, drifted, ds = _large_frames(rows, seed)
    numeric = [c for c in reference.columns if c.startswith("padding_")]
    numeric = [*ds.numeric, *RATIOS, *numeric]
    columns = {"numeric": numeric, "categorical": ds.categorical}
    say(f"1M window: frames ready in {time.perf_counter() - started:.0f}s")

    def compare(current: pd.DataFrame, max_rows: int, sample_seed: int = 0, **kw: Any) -> Any:
        return compare_window(
            reference,
            current,
            **columns,
            score_column="score",
            label_column=ds.label,
            max_rows=max_rows,
            seed=sample_seed,
            **kw,
        )

    t = time.perf_counter()
    compare(same.head(5000), 50_000, report_dir=Path(tempfile.mkdtemp()))
    warmup = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as folder:
        with_report = compare(same, 50_000, report_dir=Path(folder)).seconds
        report_mib = sum(p.stat().st_size for p in Path(folder).iterdir()) / 2**20

    effect, timed = {}, {"sampled_50k_with_report": with_report}
    for name, current in (("undrifted", same), ("drifted", drifted)):
        full = compare(current, rows)
        sizes: dict[str, Any] = {}
        for size in (50_000, 100_000):
            runs = [compare(current, size, sample_seed=k) for k in range(repeats)]
            if name == "undrifted":
                timed[f"sampled_{size // 1000}k"] = float(np.median([r.seconds for r in runs]))
            sizes[str(size)] = _sampling_effect(full, runs)
        if name == "undrifted":
            timed["full"] = full.seconds
        effect[name] = {
            "drift_share": full.drift_share,
            "drifted": full.drifted,
            "prediction_drift": full.prediction_drift,
            "scores": {f: s["score"] for f, s in full.feature_scores.items()},
            "samples": sizes,
        }
        say(f"1M window: sampling effect on the {name} window measured")
    return {
        "rows": rows,
        "columns": len(numeric) + len(ds.categorical),
        "repeats": repeats,
        "warmup_seconds": warmup,
        "seconds": timed,
        "report_mib": report_mib,
        "sampling": effect,
        "total_seconds": time.perf_counter() - started,
    }


def _sampling_effect(full: Any, runs: list[Any]) -> dict[str, Any]:
    def score(result: Any, feature: str) -> float:
        return float(result.feature_scores[feature]["score"])

    features = list(full.feature_scores)
    diffs = [abs(score(r, f) - score(full, f)) for r in runs for f in features]
    flips = {f for r in runs for f in features if r.drifted.count(f) != full.drifted.count(f)}
    return {
        "drift_share_min": min(r.drift_share for r in runs),
        "drift_share_max": max(r.drift_share for r in runs),
        "max_abs_diff": max(diffs),
        "mean_abs_diff": float(np.mean(diffs)),
        "prediction_drift_max_abs_diff": max(
            abs((r.prediction_drift or 0.0) - (full.prediction_drift or 0.0)) for r in runs
        ),
        # The drifted features' scores over the samples, beside their score on all rows.
        "drifted_scores": {
            f: [score(full, f), min(score(r, f) for r in runs), max(score(r, f) for r in runs)]
            for f in full.drifted
        },
        "verdict_flips": sorted(flips),
    }


def run(
    quick: bool = False,
    feature_threshold: float | None = None,
    large: bool = True,
    modes: tuple[str, ...] = MODES,
    delays: bool = True,
    windows: int | None = None,
) -> dict[str, Any]:
    """Detection rates and delays, then the large-window timing; JSON-able."""
    from threadpoolctl import threadpool_limits

    s = QUICK if quick else FULL
    if windows is not None:
        s = replace(s, windows=windows)
    started = time.perf_counter()
    # One thread: scoring a 2,000-row window gains nothing from more, and on a busy 2-core
    # machine spinning OpenMP threads made one gradient-boosting predict take ~1.2 s.
    with threadpool_limits(limits=1):
        world = build_world(s, feature_threshold=feature_threshold)
        say(f"drift quality: world ready (holdout ROC AUC {world.holdout_auc:.3f})")
        result: dict[str, Any] = {
            "quick": quick,
            "settings": asdict(s),
            "policy": world.policy.model_dump(),
            "feature_threshold": world.feature_threshold,
            "holdout_feature_threshold": world.holdout_feature_threshold,
            "holdout_auc": world.holdout_auc,
            "reference_rows": len(world.reference),
            "magnitudes": MAGNITUDES,
            "three_features": THREE_FEATURES,
            "concept_sensitivity": CONCEPT,
            "prior_factor": PRIOR_FACTOR,
            "alt_share": ALT_SHARE,
            "model": MODEL[0].replace("_", " "),
            "rates": [r for mode in modes for r in detection_rates(world, s, mode=mode)],
            "modes": list(modes),
            "recent_days": RECENT_DAYS,
            "delays": detection_delays(world, s) if delays else [],
        }
    result["quality_seconds"] = time.perf_counter() - started
    result["large_window"] = large_window_timing(s.large_rows) if large else None
    result["seconds"] = time.perf_counter() - started
    return result


# --- the docs/benchmarks.md section -------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f} %"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(r: dict[str, Any]) -> str:
    """The drift section of docs/benchmarks.md."""
    s, p = r["settings"], r["policy"]
    lines = [
        "## Drift detection\n",
        f"Known truth from the generator: windows of {s['window_rows']:,} rows against a "
        f"reference holdout of {r['reference_rows']:,} rows of other customers, scored by a "
        f"{r['model']} trained on a third group (holdout ROC AUC {r['holdout_auc']:.3f}), over "
        "the model's 14 inputs: 12 features and the 2 on-demand ratios, recomputed after a "
        "shift. Each window "
        "goes through `compare_window` and `decide` as the monitor runs them, with the "
        "project's policy (`params.yaml`): a feature drifts at a distance of "
        f"{r.get('feature_threshold') or 0.1:g} against the recent reference and "
        f"{r.get('holdout_feature_threshold') or r.get('feature_threshold') or 0.1:g} against "
        "the holdout, drift event at a drift share of "
        f"{p['drift_share_threshold']:g} or more, ROC AUC "
        f"event when the upper bound of the {p.get('auc_confidence', 0.9):.0%} interval of the "
        f"window's ROC AUC is more than {p['accuracy_drop']:g} below the holdout's, on at "
        f"least {p['min_labels']} labels and {p.get('auc_min_class_labels', 30)} of each "
        "class. Covariate magnitude m: numeric features move by m reference standard "
        "deviations, categorical ones have a share m of rows moved to their rarest category "
        f"(3 features: {', '.join(r['three_features'])}). Concept drift reverses the "
        "generator's price sensitivity (-6, -10); the label-prior shift doubles the churn "
        "rate; the generator's price change is the demo's drift (+25 % on paid plans, churn "
        f"three times as price sensitive). The aged no-drift windows are the same customers "
        "60-90 days after the reference's snapshots, nothing changed but time: survivors are "
        f"older and differ from the churners that left. {s['windows']} windows per scenario, "
        f"{s['null_windows']} without drift. Reference *holdout*: the holdout above; "
        f"*recent*: the monitor's recent reference, the healthy traffic of the "
        f"{r.get('recent_days', 7)} days before a window of as many days, 60-90 days after the "
        "holdout. Drift event = feature drift (share) or a prior shift (label rate or mean "
        f"score beyond ±{p.get('prior_tolerance', 0.25):.0%} with "
        f"{p.get('prior_confidence', 0.95):.0%} confidence).\n",
        f"| reference | scenario | windows | drift event | by features | by prior check "
        f"| share ≥ {r['alt_share']:g} | any feature flagged "
        "| prediction drift | ROC AUC event | any event | mean drift share | mean ROC AUC |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["rates"]:
        lines.append(
            f"| {row.get('mode', 'holdout')} | {row['scenario']} | {row['windows']} "
            f"| {_pct(row['drift_event'])} | {_pct(row.get('feature_event'))} "
            f"| {_pct(row.get('prior_event'))} | {_pct(row['alt_share_event'])} "
            f"| {_pct(row['feature_alarm'])} | {_pct(row['prediction_drift'])} "
            f"| {_pct(row['performance_event'])} | {_pct(row['event'])} "
            f"| {row['mean_drift_share']:.2f} | {_num(row['mean_roc_auc'])} |"
        )
    lines.append("")
    swept = [row for row in r["rates"] if "auc_sweep" in row]
    if swept:
        settings = list(swept[0]["auc_sweep"])
        lines += [
            "The ROC AUC check at other confidences / allowed drops, re-decided on the same "
            "windows (ROC AUC event; any event in brackets):\n",
            "| reference | scenario | " + " | ".join(settings) + " |",
            "|---|---|" + "---:|" * len(settings),
        ]
        for row in swept:
            cells = [
                f"{_pct(v['performance_event'])} ({_pct(v['event'])})"
                for v in row["auc_sweep"].values()
            ]
            lines.append(f"| {row['mode']} | {row['scenario']} | " + " | ".join(cells) + " |")
        lines.append("")
    for null in (row for row in r["rates"] if row["truth"] == "none"):
        flagged = ", ".join(f"{f} {n}" for f, n in null["flagged"].items()) or "none"
        lines.append(
            f"False alarms ({null.get('mode', 'holdout')}, {null['scenario']}): any event "
            f"{_pct(null['event'])}, a feature flagged {_pct(null['feature_alarm'])} (flags per "
            f"feature: {flagged}); {null['seconds_per_window'] * 1000:.0f} ms per window in "
            "`compare_window` (no HTML report).\n"
        )
    lines += [
        f"Detection delay: streams of {s['stream_length']} windows, drift from window "
        f"{s['onset']} (0-based); gradual drift reaches full strength over {s['ramp']} windows. "
        "Delay counts windows after onset until the first alarm (0 = caught in the first "
        f"drifted window): the policy's events, or a drift share of {r['alt_share']:g} or "
        "more.\n",
        f"| stream | streams | policy: detected | mean delay | max delay | alarms before onset "
        f"| share ≥ {r['alt_share']:g}: detected | mean delay | max delay | alarms before onset |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["delays"]:
        cells = [
            f"{_pct(d['detected'])} | {_num(d['mean_delay'], 1)} | {_num(d['max_delay'], 0)} "
            f"| {_pct(d['early_alarm_rate'])}"
            for d in (row["policy"], row["alt_share"])
        ]
        lines.append(f"| {row['stream']} | {row['streams']} | {cells[0]} | {cells[1]} |")
    lines.append("")
    if r["large_window"]:
        lines.append(_large_markdown(r["large_window"]))
    return "\n".join(lines).rstrip() + "\n"


def _large_markdown(big: dict[str, Any]) -> str:
    t = big["seconds"]
    lines = [
        f"### A {big['rows']:,}-row x {big['columns']}-column window\n",
        f"Reference and window both {big['rows']:,} rows: 12 dataset features, 2 on-demand "
        "ratios and 6 padding columns, plus score and label. Missing shares and ROC AUC use "
        "every row; sampling applies to the drift tests. Seconds in a warm process (the first "
        f"call, which imports Evidently, took {big['warmup_seconds']:.1f} s); sampled rows are "
        f"the median of {big['repeats']} seeds.\n",
        "| drift tests on | seconds |",
        "|---|---:|",
        f"| 50,000 sampled rows per side (the default) | {t['sampled_50k']:.1f} |",
        f"| 50,000, plus the HTML + JSON report ({big['report_mib']:.1f} MiB) "
        f"| {t['sampled_50k_with_report']:.1f} |",
        f"| 100,000 sampled rows per side | {t['sampled_100k']:.1f} |",
        f"| all {big['rows']:,} rows | {t['full']:.1f} |",
        "",
        f"What sampling changes, against the same comparison on all rows ({big['repeats']} "
        "sampling seeds each):\n",
        "| window | drift share, all rows | sampled to | drift share, sampled "
        "| max abs score change | mean abs score change | verdicts changed |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    notes = []
    for name, e in big["sampling"].items():
        for size, m in e["samples"].items():
            share = f"{m['drift_share_min']:.2f}-{m['drift_share_max']:.2f}"
            lines.append(
                f"| {name} | {e['drift_share']:.2f} | {int(size):,} | {share} "
                f"| {m['max_abs_diff']:.4f} | {m['mean_abs_diff']:.4f} "
                f"| {', '.join(m['verdict_flips']) or 'none'} |"
            )
            for feature, (full, low, high) in m["drifted_scores"].items():
                notes.append(
                    f"{feature} in the {name} window: {full:.3f} on all rows, "
                    f"{low:.3f}-{high:.3f} on {int(size):,}"
                )
    if notes:
        lines += ["", "Drifted features' scores: " + "; ".join(notes) + "."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    parser.add_argument("--markdown", action="store_true", help="print the docs section")
    parser.add_argument(
        "--feature-threshold",
        type=float,
        help="per-feature drift threshold (default: monitoring.feature_drift_threshold)",
    )
    parser.add_argument("--no-large", action="store_true", help="skip the 1M-row timing")
    parser.add_argument("--no-delays", action="store_true", help="skip the delay streams")
    parser.add_argument("--windows", type=int, help="windows per drift scenario (default 20)")
    parser.add_argument(
        "--mode", choices=MODES, action="append", help="reference(s) to measure (default: both)"
    )
    args = parser.parse_args()
    result = run(
        quick=args.quick,
        feature_threshold=args.feature_threshold,
        large=not args.no_large,
        modes=tuple(args.mode or MODES),
        delays=not args.no_delays,
        windows=args.windows,
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if args.markdown:
        print(markdown(result))
    say(f"drift quality done in {result['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
