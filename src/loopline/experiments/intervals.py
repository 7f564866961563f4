"""Stratified-bootstrap intervals of every holdout metric, without sorting each resample.

Every metric here depends on a resample only through how often each distinct score was
drawn per class, so the scores are ranked once and a resample costs two ``bincount``\\ s
and a few cumulative sums over the distinct scores: O(rows), where recomputing the
metrics with scikit-learn sorts every resample (13 s for ROC AUC alone over 200 resamples
of a 200,000-row holdout). The values equal scikit-learn's on the resample up to rounding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from loopline.training.evaluate import classification_metrics

# The clipping classification_metrics applies before log loss.
_EPS = 1e-6
CONFIDENCE = 0.95
METRICS = ("roc_auc", "average_precision", "log_loss", "f1", "accuracy")


class ResampledMetrics:
    """Every metric of :func:`classification_metrics` for resamples of one holdout."""

    def __init__(self, y_true: np.ndarray, score: np.ndarray, threshold: float) -> None:
        self.y = np.asarray(y_true).astype(int).ravel()
        s = np.asarray(score, dtype=float).ravel()
        levels, rank = np.unique(s, return_inverse=True)
        self.rank = rank.ravel()
        self.levels = len(levels)
        self.at_or_above = levels >= threshold
        clipped = np.clip(levels, _EPS, 1 - _EPS)
        self.loss_pos, self.loss_neg = -np.log(clipped), -np.log(1 - clipped)
        self.pos, self.neg = np.flatnonzero(self.y == 1), np.flatnonzero(self.y == 0)

    def draws(self, seed: int, resamples: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Positives and negatives each resampled with replacement to their own count.

        Every resample then has both classes (ROC AUC needs them) and the holdout's rate.
        """
        if len(self.pos) == 0 or len(self.neg) == 0:
            raise ValueError("the holdout needs both label classes to be bootstrapped")
        rng = np.random.default_rng(seed)
        for _ in range(resamples):
            yield (
                self.pos[rng.integers(0, len(self.pos), len(self.pos))],
                self.neg[rng.integers(0, len(self.neg), len(self.neg))],
            )

    def of(
        self, drawn_pos: np.ndarray, drawn_neg: np.ndarray, names: Iterable[str] = METRICS
    ) -> dict[str, float]:
        """The metrics ``names`` (all five by default) of one resample."""
        at_pos, at_neg = self._counts(drawn_pos), self._counts(drawn_neg)
        n_pos, n_neg = float(len(drawn_pos)), float(len(drawn_neg))
        return {name: getattr(self, f"_{name}")(at_pos, at_neg, n_pos, n_neg) for name in names}

    def _roc_auc(self, at_pos: np.ndarray, at_neg: np.ndarray, n_pos: float, n_neg: float) -> float:
        below = np.cumsum(at_neg) - at_neg
        return float(np.dot(at_pos, below + 0.5 * at_neg) / (n_pos * n_neg))

    def _average_precision(
        self, at_pos: np.ndarray, at_neg: np.ndarray, n_pos: float, n_neg: float
    ) -> float:
        # As scikit-learn computes it: one step per distinct score, from the highest down,
        # of recall gained times the precision there.
        tps, fps = np.cumsum(at_pos[::-1]), np.cumsum(at_neg[::-1])
        step = at_pos[::-1] > 0
        precision = tps[step] / (tps[step] + fps[step])
        return float(np.dot(at_pos[::-1][step], precision) / n_pos)

    def _log_loss(
        self, at_pos: np.ndarray, at_neg: np.ndarray, n_pos: float, n_neg: float
    ) -> float:
        loss = np.dot(at_pos, self.loss_pos) + np.dot(at_neg, self.loss_neg)
        return float(loss / (n_pos + n_neg))

    def _confusion(
        self, at_pos: np.ndarray, at_neg: np.ndarray, n_pos: float, n_neg: float
    ) -> tuple[float, float, float, float]:
        tp, fp = float(at_pos[self.at_or_above].sum()), float(at_neg[self.at_or_above].sum())
        return tp, fp, n_pos - tp, n_neg - fp

    def _f1(self, at_pos: np.ndarray, at_neg: np.ndarray, n_pos: float, n_neg: float) -> float:
        tp, fp, fn, _ = self._confusion(at_pos, at_neg, n_pos, n_neg)
        return float(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)

    def _accuracy(
        self, at_pos: np.ndarray, at_neg: np.ndarray, n_pos: float, n_neg: float
    ) -> float:
        tp, _, _, tn = self._confusion(at_pos, at_neg, n_pos, n_neg)
        return (tp + tn) / (n_pos + n_neg)

    def _counts(self, drawn: np.ndarray) -> np.ndarray:
        return np.bincount(self.rank[drawn], minlength=self.levels).astype(np.float64)


def metric_intervals(
    y_true: np.ndarray,
    score: np.ndarray,
    threshold: float,
    seed: int,
    resamples: int,
) -> dict[str, dict[str, float | None]]:
    """Each metric's holdout value and its 95 % stratified-bootstrap percentile interval.

    With one label class nothing can be resampled: the metrics that are still defined keep
    their value and every bound is None.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(score, dtype=float)
    if len(np.unique(y)) < 2:
        return {
            name: {"value": value, "low": None, "high": None}
            for name, value in _one_class_values(y, s, threshold).items()
        }
    values = classification_metrics(y, s, threshold)
    resampled = ResampledMetrics(y, s, threshold)
    drawn = [resampled.of(p, n) for p, n in resampled.draws(seed, resamples)]
    tail = (1 - CONFIDENCE) / 2 * 100
    out: dict[str, dict[str, float | None]] = {}
    for name, value in values.items():
        low, high = np.percentile([d[name] for d in drawn], [tail, 100 - tail])
        out[name] = {
            "value": round(value, 6),
            "low": round(float(low), 6),
            "high": round(float(high), 6),
        }
    return out


def _one_class_values(y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, float | None]:
    from loopline.training.evaluate import metric_value

    out: dict[str, float | None] = {}
    for name in METRICS:
        if name in ("roc_auc", "average_precision") or len(y) == 0:
            out[name] = None  # undefined without both classes
        else:
            out[name] = round(metric_value(name, y, s, threshold), 6)
    return out
