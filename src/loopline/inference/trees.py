"""Tree ensembles as flat arrays, walked for all trees and all rows at once, level by level.

Every tree's nodes are stacked into one set of arrays. A node ``g`` lives at slot ``2g``:
``feature[2g]`` and ``threshold[2g]`` are its test, ``children[2g]`` and ``children[2g + 1]``
the slots of its left and right child, so one step is ``s = children[s + (x > threshold[s])]``
for every (tree, row) pair. Leaves are their own children (threshold +inf), so walking
``depth`` steps leaves every pair at its leaf whatever depth the leaf is at.

Why not ONNX Runtime: its tree ensembles keep thresholds in float32 rounded to nearest.
sklearn's thresholds are float64 midpoints between float32 training values; where two are
one float32 step apart (nearly equal raw values), the nearest float32 is the upper value
itself, and inputs equal to it go left instead of right: on the demo holdout that moved 87
of 4,557 forest probabilities by up to 0.006. sklearn compares
the float32-cast input with the float64 threshold; here the threshold is rounded *down* to
float32, which for a float32 input decides ``x <= t`` exactly as sklearn does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.tree import DecisionTreeClassifier

from loopline.inference.errors import NotCompilable

# Rows per walk: keeps each (tree, row) working array small enough to stay in cache.
CHUNK_ROWS = 256


@dataclass(frozen=True)
class Tree:
    """One tree's nodes in sklearn's own numbering (leaves have ``left == -1``)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray  # what the tree predicts at each node; only leaves' values are read
    depth: int


@dataclass(frozen=True)
class Ensemble:
    """Many trees as flat arrays: ``leaf_values(X)`` is every tree's prediction for every row."""

    feature: np.ndarray  # int32, per slot
    threshold: np.ndarray  # the input's dtype, per slot
    children: np.ndarray  # int32, per slot
    value: np.ndarray  # float64, per slot
    roots: np.ndarray  # int32, one slot per tree
    depth: int

    def leaf_values(self, X: np.ndarray) -> np.ndarray:
        """(n_trees, n_rows) leaf values; X must already have the thresholds' dtype."""
        X = np.ascontiguousarray(X, dtype=self.threshold.dtype)
        out = np.empty((len(self.roots), len(X)), dtype=np.float64)
        for start in range(0, len(X), CHUNK_ROWS):
            rows = X[start : start + CHUNK_ROWS]
            out[:, start : start + len(rows)] = self.value[self._leaves(rows)]
        return out

    def _leaves(self, X: np.ndarray) -> np.ndarray:
        n, width = X.shape
        flat = X.reshape(-1)
        base = (np.arange(n, dtype=np.int32) * width)[None, :]
        slot = np.repeat(self.roots[:, None], n, axis=1)
        # Buffers are per call, so threads scoring at once share nothing mutable.
        following = np.empty_like(slot)
        index = np.empty_like(slot)
        x = np.empty(slot.shape, dtype=X.dtype)
        threshold = np.empty(slot.shape, dtype=X.dtype)
        right = np.empty(slot.shape, dtype=bool)
        # Every index is in range by construction; mode="clip" spares take() buffering `out`.
        for _ in range(self.depth):
            np.take(self.feature, slot, out=index, mode="clip")
            index += base
            np.take(flat, index, out=x, mode="clip")
            np.take(self.threshold, slot, out=threshold, mode="clip")
            # The input has no NaN (the imputer fills it), so missing_go_to_left never applies.
            np.greater(x, threshold, out=right)
            slot += right
            np.take(self.children, slot, out=following, mode="clip")
            slot, following = following, slot
        return slot


def stack(trees: list[Tree], dtype: type[np.floating[Any]]) -> Ensemble:
    """Stack trees into one :class:`Ensemble` comparing inputs of ``dtype``."""
    sizes = [len(t.left) for t in trees]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    slots = 2 * int(offsets[-1])
    if slots >= 2**31:
        raise NotCompilable(f"the ensemble has {slots // 2} nodes, too many for int32 slots")
    feature = np.zeros(slots, dtype=np.int32)
    threshold = np.full(slots, np.inf, dtype=dtype)
    children = np.zeros(slots, dtype=np.int32)
    value = np.zeros(slots, dtype=np.float64)
    for tree, offset in zip(trees, offsets[:-1], strict=True):
        node = offset + np.arange(len(tree.left))
        leaf = tree.left < 0
        feature[2 * node] = np.where(leaf, 0, tree.feature)
        threshold[2 * node] = np.where(leaf, np.inf, _rounded_down(tree.threshold, dtype))
        children[2 * node] = 2 * np.where(leaf, node, offset + tree.left)
        children[2 * node + 1] = 2 * np.where(leaf, node, offset + tree.right)
        value[2 * node] = tree.value
    roots = (2 * offsets[:-1]).astype(np.int32)
    depth = max((t.depth for t in trees), default=0)
    return Ensemble(feature, threshold, children, value, roots, depth)


def _rounded_down(threshold: np.ndarray, dtype: type[np.floating[Any]]) -> np.ndarray:
    # The largest value of dtype <= the float64 threshold: for an input x of dtype,
    # x <= rounded is exactly x <= threshold.
    rounded = threshold.astype(dtype)
    above = rounded.astype(np.float64) > threshold
    rounded[above] = np.nextafter(rounded[above], dtype(-np.inf))
    return rounded


@dataclass(frozen=True)
class ForestModel:
    """RandomForest/ExtraTrees/DecisionTree: the mean of the trees' leaf class fractions."""

    ensemble: Ensemble

    def positive_proba(self, X: np.ndarray) -> np.ndarray:
        leaves = self.ensemble.leaf_values(X.astype(np.float32))
        # sklearn adds tree by tree into zeros, then divides: cumsum adds in that order.
        return np.cumsum(leaves, axis=0)[-1] / len(leaves)


@dataclass(frozen=True)
class BoostingModel:
    """HistGradientBoosting (binary): expit of baseline plus every tree's leaf value."""

    ensemble: Ensemble
    baseline: float

    def positive_proba(self, X: np.ndarray) -> np.ndarray:
        leaves = self.ensemble.leaf_values(X)
        raw = np.cumsum(np.vstack([np.full(leaves.shape[1], self.baseline), leaves]), axis=0)[-1]
        return np.asarray(expit(raw), dtype=np.float64)


def compile_forest(
    model: RandomForestClassifier | ExtraTreesClassifier | DecisionTreeClassifier,
) -> ForestModel:
    """Lower a fitted binary forest (or one tree) of sklearn's Cython trees."""
    estimators = model.estimators_ if not isinstance(model, DecisionTreeClassifier) else [model]
    trees = []
    for estimator in estimators:
        t = estimator.tree_
        if t.n_outputs != 1 or t.value.shape[2] != 2:
            raise NotCompilable(f"{type(model).__name__} is not a binary classifier")
        # In sklearn >= 1.4 a classifier's tree stores class fractions: predict_proba's values.
        trees.append(
            Tree(
                t.feature,
                t.threshold,
                t.children_left,
                t.children_right,
                t.value[:, 0, 1],
                t.max_depth,
            )
        )
    return ForestModel(stack(trees, np.float32))


def compile_boosting(model: HistGradientBoostingClassifier) -> BoostingModel:
    """Lower a fitted binary HistGradientBoostingClassifier (numeric splits only)."""
    if model.n_trees_per_iteration_ != 1 or len(model.classes_) != 2:
        raise NotCompilable("HistGradientBoostingClassifier is not binary")
    if getattr(model, "is_categorical_", None) is not None:
        raise NotCompilable("HistGradientBoostingClassifier with categorical features")
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise NotCompilable("HistGradientBoostingClassifier has categorical splits")
        leaf = nodes["is_leaf"].astype(bool)
        left = np.where(leaf, -1, nodes["left"].astype(np.int64))
        right = np.where(leaf, -1, nodes["right"].astype(np.int64))
        depth = int(nodes["depth"].max())
        trees.append(
            Tree(nodes["feature_idx"], nodes["num_threshold"], left, right, nodes["value"], depth)
        )
    baseline = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
    return BoostingModel(stack(trees, np.float64), float(baseline[0]))
