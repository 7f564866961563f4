"""The rollout verdict's rule on samples whose true difference is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loopline.monitoring.verdict import Rule, Sample, decide


def scores(
    n: int, *, gap: float, seed: int, rate: float = 0.2, shared: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Labels, and scores that separate the classes by ``gap`` (plus optional shared noise)."""
    rng = np.random.default_rng(seed)
    actual = (rng.random(n) < rate).astype(int)
    noise = rng.normal(size=n) if shared is None else shared
    return actual, gap * actual + noise + 0.3 * rng.normal(size=n)


def pair(n: int, champion_gap: float, challenger_gap: float, seed: int = 0) -> tuple[Sample, ...]:
    """Both models scoring the same requests; request-level noise is shared, as in shadow."""
    shared = np.random.default_rng(seed + 1000).normal(size=n)
    actual, a = scores(n, gap=champion_gap, seed=seed, shared=shared)
    rng = np.random.default_rng(seed + 1)
    b = challenger_gap * actual + shared + 0.3 * rng.normal(size=n)
    return Sample.of(actual, a), Sample.of(actual, b)


def arms(n: int, champion_gap: float, challenger_gap: float, seed: int = 0) -> tuple[Sample, ...]:
    """Two independent arms (canary): different requests."""
    return (
        Sample.of(*scores(n, gap=champion_gap, seed=seed)),
        Sample.of(*scores(n, gap=challenger_gap, seed=seed + 7)),
    )


def brute_auc(sample: Sample) -> float:
    pos = sample.score[sample.actual == 1][:, None]
    neg = sample.score[sample.actual == 0][None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


@pytest.mark.parametrize("method", ["analytic", "bootstrap"])
@pytest.mark.parametrize("paired", [True, False])
def test_clearly_better_is_promoted_and_clearly_worse_rolled_back(
    method: str, paired: bool
) -> None:
    make = pair if paired else arms
    rule = Rule(method=method, resamples=500)  # type: ignore[arg-type]
    good, bad = make(4000, 1.5, 0.5)
    better = decide(bad, good, paired=paired, rule=rule)
    assert better.decision == "promote" and better.interval[0] > 0, better.evidence
    worse = decide(good, bad, paired=paired, rule=rule)
    assert worse.decision == "rollback" and worse.interval[1] < 0, worse.evidence
    assert worse.test.startswith("paired" if paired else "unpaired")


def test_identical_models_in_shadow_are_promoted_exactly() -> None:
    # The same scores on the same requests: the paired difference is 0 with no spread.
    actual, score = scores(600, gap=1.0, seed=3)
    verdict = decide(Sample.of(actual, score), Sample.of(actual, score), paired=True)
    assert verdict.decision == "promote"
    assert verdict.estimate == 0 and verdict.interval == (0.0, 0.0)


def test_equal_models_on_few_labels_are_extended() -> None:
    champion, challenger = arms(500, 1.0, 1.0, seed=5)
    verdict = decide(champion, challenger, paired=False)
    assert verdict.decision == "extend", verdict.evidence
    lo, hi = verdict.interval
    assert lo < -0.01 and hi > 0 and "keep collecting" in verdict.evidence


def test_minimums_are_per_class_and_per_arm() -> None:
    # 2000 labels but only 10 positives: far from enough to rank anything.
    actual = np.r_[np.ones(10), np.zeros(1990)].astype(int)
    score = np.random.default_rng(0).random(2000)
    verdict = decide(Sample.of(actual, score), Sample.of(actual, score + 1), paired=True)
    assert verdict.decision == "wait" and math.isnan(verdict.estimate)
    assert "10 of 30 positives" in verdict.reason
    champion, challenger = arms(4000, 1.5, 0.5)
    few = Sample.of(challenger.actual[:100], challenger.score[:100])
    assert decide(champion, few, paired=False).decision == "wait"
    assert verdict.as_json()["estimate"] is None  # JSON-safe for the registry


@pytest.mark.parametrize("default", ["rollback", "promote"])
def test_inconclusive_at_the_limit_takes_the_default(default: str) -> None:
    champion, challenger = arms(500, 1.0, 1.0, seed=5)
    rule = Rule(default=default, max_minutes=60)  # type: ignore[arg-type]
    assert decide(champion, challenger, paired=False, rule=rule, minutes=59).decision == "extend"
    late = decide(champion, challenger, paired=False, rule=rule, minutes=60)
    assert late.decision == default and late.by_default and "limit" in late.reason
    by_labels = decide(champion, challenger, paired=False, rule=Rule(max_labels=1000))
    assert by_labels.decision == "rollback" and by_labels.by_default
    actual = np.r_[np.ones(5), np.zeros(500)].astype(int)
    starved = Sample.of(actual, np.linspace(0, 1, 505))
    expired = decide(starved, starved, paired=True, rule=rule, minutes=61)
    assert expired.decision == default and "not enough evidence" in expired.reason


def test_bootstrap_is_deterministic_given_its_seed() -> None:
    champion, challenger = pair(1500, 1.0, 1.1, seed=2)
    rule = Rule(method="bootstrap", resamples=300, seed=11)
    first = decide(champion, challenger, paired=True, rule=rule)
    again = decide(champion, challenger, paired=True, rule=rule)
    other = decide(champion, challenger, paired=True, rule=Rule(method="bootstrap", seed=12))
    assert first == again and first.interval != other.interval


def test_paired_intervals_are_narrower_than_unpaired_ones() -> None:
    champion, challenger = pair(3000, 1.0, 1.1, seed=4)
    paired = decide(champion, challenger, paired=True)
    unpaired = decide(champion, challenger, paired=False)
    assert paired.estimate == pytest.approx(unpaired.estimate)
    width = [v.interval[1] - v.interval[0] for v in (paired, unpaired)]
    assert width[0] < width[1] / 3
    assert paired.n_paired == 3000 and unpaired.n_paired == 0


def test_delong_matches_brute_force_and_the_bootstrap_with_ties() -> None:
    champion, challenger = pair(2000, 1.0, 1.2, seed=6)
    rounded = [Sample.of(s.actual, np.round(s.score, 1)) for s in (champion, challenger)]
    analytic = decide(*rounded, paired=True)
    assert analytic.values["champion"] == pytest.approx(brute_auc(rounded[0]))
    assert analytic.values["challenger"] == pytest.approx(brute_auc(rounded[1]))
    boot = decide(*rounded, paired=True, rule=Rule(method="bootstrap", resamples=2000))
    assert boot.estimate == pytest.approx(analytic.estimate)
    assert boot.interval == pytest.approx(analytic.interval, abs=0.006)


def test_accuracy_when_a_class_is_missing_and_mismatched_pairs_refused() -> None:
    actual = np.zeros(200, dtype=int)
    champion = Sample.of(actual, np.full(200, 0.9))  # always wrong
    challenger = Sample.of(actual, np.full(200, 0.1))  # always right
    rule = Rule(min_positives=0)
    verdict = decide(champion, challenger, paired=True, rule=rule)
    assert verdict.metric == "accuracy" and verdict.decision == "promote"
    assert verdict.estimate == pytest.approx(1.0)
    flipped = Sample.of(1 - actual, challenger.score)
    with pytest.raises(ValueError, match="same requests"):
        decide(champion, flipped, paired=True, rule=rule)
