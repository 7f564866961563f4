"""Cost-aware selection: of the candidates as good as the best within the holdout's noise,
the one that serves fastest.

A holdout of a few thousand rows measures ROC AUC to about ±0.013 (the demo's 4,557 rows
with 325 churners), so a forest 0.0004 ahead of a boosted model that serves twice as fast
has not shown it is better. The tolerance defaults to the bootstrap standard error of the
best candidate's metric; inside it, single-row p95 latency decides. Latencies within
:data:`LATENCY_TIE` of the fastest count as equal and the metric decides between them, so
the choice between two models of the same cost does not turn on machine noise."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from loopline.training.evaluate import LOWER_IS_BETTER

BOOTSTRAP_RESAMPLES = 200
WARMUP_CALLS = 50
LATENCY_ROUNDS = 3
# A p95 up to 1.5x the fastest's counts as as fast. At a load of 4-6 on 2 cores, equally
# costly candidates (logistic regressions differing in C) measured up to 1.4x apart; a
# boosted model against a linear one 1.5-2.2x.
LATENCY_TIE = 0.5

# Takes a one-row DataFrame, or a dict of one-value lists (as_columns).
Predict = Callable[[Any], Any]


@dataclass(frozen=True)
class Choice:
    """Which candidate the rule picks (indices into the inputs), and why, in one line."""

    index: int
    best_index: int
    within: tuple[int, ...]
    reason: str


def best_index(scores: Sequence[float], metric: str) -> int:
    """The best score's position; a tie keeps the earlier one (the grid lists simpler first)."""
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    return min(range(len(scores)), key=lambda i: (sign * scores[i], i))


def choose(
    names: Sequence[str],
    scores: Sequence[float],
    latencies_ms: Sequence[float],
    metric: str,
    tolerance: float,
) -> Choice:
    """The fastest of the candidates within ``tolerance`` of the best ``metric``.

    Latencies within :data:`LATENCY_TIE` of the fastest tie, and the better metric, then the
    earlier candidate, wins a tie. ``tolerance`` 0 is the metric alone, latency unconsulted.
    """
    if not names:
        raise ValueError("no candidates were trained: training.candidates is empty")
    if not tolerance >= 0:
        raise ValueError(f"the selection tolerance must be >= 0, got {tolerance}")
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    best = best_index(scores, metric)
    # How far behind the best each candidate is, in the metric's own units.
    behind = [sign * (s - scores[best]) for s in scores]
    within = tuple(i for i, gap in enumerate(behind) if gap <= tolerance + 1e-12)
    top = f"{metric} {scores[best]:.4f}"
    if tolerance == 0:
        return Choice(best, best, within, f"best {top}; tolerance 0: the metric alone decides")
    if len(within) == 1:
        return Choice(best, best, within, f"best {top}; no other within {tolerance:.4f}")
    if not all(math.isfinite(latencies_ms[i]) for i in within):
        raise ValueError("every candidate within the tolerance needs a measured latency")
    fastest = min(latencies_ms[i] for i in within)
    as_fast = [i for i in within if latencies_ms[i] <= fastest * (1 + LATENCY_TIE)]
    pick = min(as_fast, key=lambda i: (behind[i], i))
    head = f"{len(within)} candidates within {tolerance:.4f} of the best {top}"
    if len(as_fast) == 1:
        how = "the fastest"
    else:
        how = f"the best {metric} of the {len(as_fast)} within {1 + LATENCY_TIE:g}x of the fastest"
    if pick == best:
        tail = f" is the top-scoring one itself, at {_ms(latencies_ms[pick])} p95"
    else:
        tail = (
            f": {metric} {scores[pick]:.4f} at {_ms(latencies_ms[pick])} p95 against "
            f"{_ms(latencies_ms[best])} for the top-scoring {names[best]}"
        )
    return Choice(pick, best, within, f"{head}; {how}{tail}")


def _ms(value: float) -> str:
    return f"{value:.3g} ms"


def bootstrap_se(
    metric: str,
    y_true: np.ndarray,
    score: np.ndarray,
    threshold: float,
    seed: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> float:
    """Standard error of ``metric`` on a holdout, by stratified bootstrap of its rows.

    Positives and negatives are each resampled with replacement to their own count, so
    every resample has both classes (ROC AUC needs them) and the holdout's churn rate. The
    resamples are the experiment records' (:mod:`loopline.experiments.intervals`): the same
    draws for a seed, each metric computed without sorting the resample.
    """
    from loopline.experiments.intervals import ResampledMetrics

    y = np.asarray(y_true)
    if not ((y == 1).any() and (y == 0).any()):
        raise ValueError("the holdout needs both label classes for a bootstrap standard error")
    resampled = ResampledMetrics(y, np.asarray(score), threshold)
    draws = resampled.draws(seed, resamples)
    values = [resampled.of(pos, neg, (metric,))[metric] for pos, neg in draws]
    return float(np.std(values, ddof=1))


def latency_p95_ms(
    predicts: Sequence[Predict],
    rows: pd.DataFrame,
    calls: int = 200,
    *,
    rounds: int = LATENCY_ROUNDS,
    as_columns: bool = False,
) -> list[float]:
    """Single-row p95 latency in milliseconds of each predict, measured interleaved.

    Call ``i`` of a round times every predict on row ``i``, in a shuffled order, so a burst
    of machine noise lands on all of them rather than on whichever ran then. Each predict's
    p95 is that of its quietest of ``rounds`` rounds of ``calls`` calls (other processes only
    ever add time). One thread, as a serving worker runs a single-row predict (OpenMP pools
    otherwise stall for hundreds of ms on a busy machine). ``as_columns`` passes each row as
    serving does, a dict of one-value lists (Feast's ``to_dict()``), not a one-row DataFrame.
    """
    if rows.empty:
        raise ValueError("no rows to time the candidates on")
    if calls < 1 or rounds < 1:
        raise ValueError(f"calls and rounds must be at least 1, got {calls} and {rounds}")
    order = list(range(len(predicts)))
    # Rows are sliced before timing so only the model is measured, as in a serving call.
    singles: list[Any] = [rows.iloc[[i % len(rows)]] for i in range(calls)]
    if as_columns:
        singles = [{c: row[c].tolist() for c in row.columns} for row in singles]
    p95s: list[list[float]] = [[] for _ in order]
    # A fresh order each call: no candidate always follows the one that evicts the caches.
    rng = np.random.default_rng(0)
    with threadpool_limits(limits=1):
        for i in range(WARMUP_CALLS):
            for k in order:
                predicts[k](singles[i % calls])
        for _ in range(rounds):
            elapsed: list[list[float]] = [[] for _ in order]
            for row in singles:
                for k in rng.permutation(order):
                    started = time.perf_counter()
                    predicts[k](row)
                    elapsed[k].append(time.perf_counter() - started)
            for k in order:
                p95s[k].append(float(np.percentile(elapsed[k], 95)) * 1000)
    return [min(values) for values in p95s]


def single_row_p95_ms(
    predict: Predict,
    rows: pd.DataFrame,
    calls: int = 200,
    *,
    rounds: int = LATENCY_ROUNDS,
    as_columns: bool = False,
) -> float:
    """Single-row p95 latency in milliseconds of one predict (see :func:`latency_p95_ms`)."""
    return latency_p95_ms([predict], rows, calls, rounds=rounds, as_columns=as_columns)[0]
