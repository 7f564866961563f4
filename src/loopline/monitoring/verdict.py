"""The rollout verdict: promote, roll back, keep collecting, or wait, from labelled samples.

Pure numpy. Shadow traffic gives both models' answers on the same requests, so the
difference is measured PAIRED: request-to-request noise cancels and far fewer labels
settle it. Canary and A/B arms see different requests: the comparison is UNPAIRED, and
the variance of the difference is the sum of the arms' variances.

The rule, on an interval for ``challenger - champion`` at ``confidence``:

* below the per-class minimums (positives AND negatives in every arm): ``wait``;
* the upper bound is below 0 (certainly worse): ``rollback``;
* the lower bound is at or above ``-margin`` (at most ``margin`` worse): ``promote``;
* otherwise ``extend`` (keep collecting), until ``max_minutes`` or ``max_labels``; then
  the configured ``default`` outcome.

Rollback is checked first: a challenger known to be worse is never promoted, even by
less than the margin.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

Decision = Literal["promote", "rollback", "extend", "wait"]
Method = Literal["analytic", "bootstrap"]
MetricName = Literal["roc_auc", "accuracy"]
# Bootstrap resamples are processed this many at a time: bounded memory at 10k+ labels.
CHUNK = 100


@dataclass(frozen=True)
class Rule:
    """How the verdict decides; mirrors ``monitoring.review`` in params.yaml."""

    confidence: float = 0.95
    margin: float = 0.01
    min_positives: int = 30
    min_negatives: int = 30
    min_labels: int = 1
    max_labels: int = 20_000
    max_minutes: float = 7 * 24 * 60
    default: Literal["rollback", "promote"] = "rollback"
    metric: MetricName = "roc_auc"
    method: Method = "analytic"
    resamples: int = 2000
    seed: int = 0


@dataclass(frozen=True)
class Sample:
    """One arm's labelled predictions: true labels, scores and thresholded labels."""

    actual: np.ndarray
    score: np.ndarray
    predicted: np.ndarray

    @classmethod
    def of(cls, actual: Any, score: Any, predicted: Any = None, threshold: float = 0.5) -> Sample:
        """A sample from array-likes; ``predicted`` defaults to ``score >= threshold``."""
        y = np.asarray(actual, dtype=np.int8)
        s = np.asarray(score, dtype=np.float64)
        p = (s >= threshold) if predicted is None else np.asarray(predicted)
        if not (len(y) == len(s) == len(p)):
            raise ValueError("actual, score and predicted must have the same length")
        return cls(y, s, p.astype(np.int8))

    def counts(self) -> Counts:
        """How many labels, positives and negatives this sample holds."""
        positives = int(self.actual.sum())
        return Counts(len(self.actual), positives, len(self.actual) - positives)


@dataclass(frozen=True)
class Counts:
    """Labels behind one arm."""

    n: int
    positives: int
    negatives: int


@dataclass(frozen=True)
class Verdict:
    """A rollout decision and the evidence behind it."""

    decision: Decision
    test: str
    metric: str
    estimate: float  # challenger - champion; NaN while waiting for labels
    interval: tuple[float, float]
    confidence: float
    champion: Counts
    challenger: Counts
    n_paired: int
    reason: str
    by_default: bool = False
    values: dict[str, float] = field(default_factory=dict)  # each model's metric

    @property
    def evidence(self) -> str:
        """One line a person can read: the test, the difference, its interval, the counts."""
        c, h = self.champion, self.challenger
        counts = (
            f"challenger {h.positives}+/{h.negatives}- vs champion {c.positives}+/{c.negatives}-"
        )
        if self.n_paired:
            counts = f"{self.n_paired} paired requests, {h.positives}+/{h.negatives}-"
        if math.isnan(self.estimate):
            return f"{self.decision}: {self.reason} ({counts})"
        lo, hi = self.interval
        return (
            f"{self.decision}: {self.test} on {self.metric}, challenger - champion "
            f"{self.estimate:+.4f}, {self.confidence:.0%} CI [{lo:+.4f}, {hi:+.4f}], "
            f"{counts}; {self.reason}"
        )

    def as_json(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN becomes None), for the registry history."""
        raw = asdict(self)
        raw["interval"] = list(self.interval)
        raw["evidence"] = self.evidence
        return finite(raw)


def decide(
    champion: Sample,
    challenger: Sample,
    *,
    paired: bool,
    rule: Rule = Rule(),
    minutes: float = 0.0,
) -> Verdict:
    """Apply the rule to a rollout ``minutes`` old; ``paired`` samples are row-aligned."""
    if paired and not np.array_equal(champion.actual, challenger.actual):
        raise ValueError("paired samples must hold the same requests with the same labels")
    counts = champion.counts(), challenger.counts()
    n_paired = counts[0].n if paired else 0
    labels = n_paired if paired else counts[0].n + counts[1].n
    expired = minutes >= rule.max_minutes or labels >= rule.max_labels
    limit = f"{minutes:.0f} of {rule.max_minutes:.0f} min, {labels} of {rule.max_labels} labels"
    test, metric = "none", rule.metric
    values: dict[str, float] = {}
    estimate, lo, hi = math.nan, math.nan, math.nan
    decision: Decision
    by_default = False
    short = _shortfall(counts, rule)
    if short:
        decision, by_default = (rule.default, True) if expired else ("wait", False)
        why = f"not enough evidence: {short}" + (f"; limit reached ({limit})" if expired else "")
    else:
        if not all(c.positives and c.negatives for c in counts):
            metric = "accuracy"  # ROC AUC needs both classes in both arms
        test, estimate, lo, hi, values = _interval(champion, challenger, paired, metric, rule)
        if hi < 0:
            decision, why = "rollback", "upper bound below 0: the challenger is worse"
        elif lo >= -rule.margin:
            decision, why = "promote", f"lower bound at or above -{rule.margin:g}"
        elif expired:
            decision, by_default = rule.default, True
            why = f"inconclusive at the limit ({limit}): default {rule.default}"
        else:
            decision, why = "extend", f"inconclusive, keep collecting ({limit})"
    return Verdict(
        decision=decision,
        test=test,
        metric=metric,
        estimate=estimate,
        interval=(lo, hi),
        confidence=rule.confidence,
        champion=counts[0],
        challenger=counts[1],
        n_paired=n_paired,
        reason=why,
        by_default=by_default,
        values=values,
    )


def _shortfall(counts: tuple[Counts, Counts], rule: Rule) -> str:
    missing = []
    for arm, c in zip(("champion", "challenger"), counts, strict=True):
        if c.positives < rule.min_positives:
            missing.append(f"{arm} {c.positives} of {rule.min_positives} positives")
        if c.negatives < rule.min_negatives:
            missing.append(f"{arm} {c.negatives} of {rule.min_negatives} negatives")
        if c.n < rule.min_labels:
            missing.append(f"{arm} {c.n} of {rule.min_labels} labels")
    return ", ".join(missing)


def _interval(
    champion: Sample, challenger: Sample, paired: bool, metric: MetricName, rule: Rule
) -> tuple[str, float, float, float, dict[str, float]]:
    kind = "paired" if paired else "unpaired"
    if rule.method == "bootstrap":
        estimate, lo, hi, values = _bootstrap(champion, challenger, paired, metric, rule)
        return f"{kind} stratified bootstrap", estimate, lo, hi, values
    if metric == "roc_auc":
        values, variance = _delong(champion, challenger, paired)
        name = "DeLong"
    else:
        values, variance = _wald_accuracy(champion, challenger, paired)
        name = "Wald"
    estimate = values["challenger"] - values["champion"]
    half = NormalDist().inv_cdf(0.5 + rule.confidence / 2) * math.sqrt(max(variance, 0.0))
    return f"{kind} {name}", estimate, estimate - half, estimate + half, values


def _midranks(x: np.ndarray) -> np.ndarray:
    # Ties share the average of the ranks they span (ROC AUC counts a tie as a half).
    order = np.argsort(x, kind="mergesort")
    ordered = x[order]
    starts = np.r_[0, np.flatnonzero(ordered[1:] != ordered[:-1]) + 1]
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def _delong_components(sample: Sample) -> tuple[float, np.ndarray, np.ndarray]:
    """ROC AUC and its structural components (Sun and Xu's fast DeLong)."""
    positive = sample.actual == 1
    x, y = sample.score[positive], sample.score[~positive]
    m, n = len(x), len(y)
    tz = _midranks(np.concatenate([x, y]))
    v10 = (tz[:m] - _midranks(x)) / n
    v01 = 1.0 - (tz[m:] - _midranks(y)) / m
    return float(v10.mean()), v10, v01


def _delong(champion: Sample, challenger: Sample, paired: bool) -> tuple[dict[str, float], float]:
    auc_c, v10_c, v01_c = _delong_components(champion)
    auc_h, v10_h, v01_h = _delong_components(challenger)
    values = {"champion": auc_c, "challenger": auc_h}
    if paired:  # the same positives and negatives: the covariance term stays
        d10, d01 = v10_h - v10_c, v01_h - v01_c
        return values, _var(d10) / len(d10) + _var(d01) / len(d01)
    variance = sum(_var(a) / len(a) for a in (v10_c, v01_c, v10_h, v01_h))
    return values, variance


def _var(a: np.ndarray) -> float:
    return float(a.var(ddof=1)) if len(a) > 1 else 0.0


def _wald_accuracy(
    champion: Sample, challenger: Sample, paired: bool
) -> tuple[dict[str, float], float]:
    right_c = (champion.predicted == champion.actual).astype(float)
    right_h = (challenger.predicted == challenger.actual).astype(float)
    values = {"champion": float(right_c.mean()), "challenger": float(right_h.mean())}
    if paired:
        return values, _var(right_h - right_c) / len(right_c)
    return values, _var(right_c) / len(right_c) + _var(right_h) / len(right_h)


def _bootstrap(
    champion: Sample, challenger: Sample, paired: bool, metric: MetricName, rule: Rule
) -> tuple[float, float, float, dict[str, float]]:
    """Percentile interval; resampling positives and negatives apart keeps both classes."""
    rng = np.random.default_rng(rule.seed)
    stat_c, stat_h = (_resampler(s, metric) for s in (champion, challenger))
    whole_c, whole_h = (_whole(s) for s in (champion, challenger))
    point = {"champion": float(stat_c(*whole_c)[0]), "challenger": float(stat_h(*whole_h)[0])}
    diffs = []
    for start in range(0, rule.resamples, CHUNK):
        size = min(CHUNK, rule.resamples - start)
        draw_c = _stratified_draw(champion.actual, size, rng)
        draw_h = draw_c if paired else _stratified_draw(challenger.actual, size, rng)
        diffs.append(stat_h(*draw_h) - stat_c(*draw_c))
    spread = np.concatenate(diffs)
    tail = (1 - rule.confidence) / 2
    lo, hi = np.quantile(spread, [tail, 1 - tail])
    return point["challenger"] - point["champion"], float(lo), float(hi), point


Draw = tuple[np.ndarray, np.ndarray]  # rows of positives, rows of negatives (resamples x n)


def _whole(sample: Sample) -> Draw:
    return np.flatnonzero(sample.actual == 1)[None, :], np.flatnonzero(sample.actual == 0)[None, :]


def _stratified_draw(actual: np.ndarray, size: int, rng: np.random.Generator) -> Draw:
    # Each class resampled with replacement within itself, so every resample has both.
    pos, neg = np.flatnonzero(actual == 1), np.flatnonzero(actual == 0)
    return (
        pos[rng.integers(0, len(pos), size=(size, len(pos)))],
        neg[rng.integers(0, len(neg), size=(size, len(neg)))],
    )


def _resampler(sample: Sample, metric: MetricName) -> Any:
    """The metric of each resample (one per row of a draw), vectorised."""
    if metric == "accuracy":
        right = (sample.predicted == sample.actual).astype(float)
        return lambda pos, neg: np.concatenate([right[pos], right[neg]], axis=1).mean(axis=1)
    # Negatives matter only by where they fall among the distinct positive scores u_j:
    # slot 2j is "below u_j, above u_(j-1)", slot 2j+1 is "tied with u_j". Counting per
    # slot keeps each resample's table at 2k+1 cells (k distinct positive scores), not n.
    positive = sample.actual == 1
    cuts, pos_slot = np.unique(sample.score[positive], return_inverse=True)
    below = np.searchsorted(cuts, sample.score, side="left")
    tied = below < len(cuts)
    tied[tied] = cuts[below[tied]] == sample.score[tied]
    slot = np.where(positive, 0, 2 * below + tied)
    group = np.zeros(len(sample.score), dtype=np.intp)
    group[positive] = pos_slot
    k = len(cuts)

    def auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        b = pos.shape[0]
        p = np.bincount((group[pos] + k * np.arange(b)[:, None]).ravel(), minlength=b * k)
        cells = 2 * k + 1
        n = np.bincount((slot[neg] + cells * np.arange(b)[:, None]).ravel(), minlength=b * cells)
        n = n.reshape(b, cells)
        strictly = np.cumsum(n, axis=1)[:, 0 : 2 * k : 2]  # negatives below each u_j
        ties = n[:, 1 : 2 * k : 2]
        wins = (p.reshape(b, k) * (2 * strictly + ties)).sum(axis=1) / 2
        return wins / (pos.shape[1] * neg.shape[1])

    return auc


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity (in dicts, lists, tuples) replaced by None."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
