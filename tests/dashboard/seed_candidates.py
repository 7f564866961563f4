"""Experiment records for the seeded runs, written through the tracking store.

Built with the core's own curve functions on synthetic holdouts, so the Runs page draws
what a real run would have recorded.
"""

from __future__ import annotations

from typing import Any

from tests.dashboard.seeding import ESTIMATORS, FEATURES

# Experiment records are written for the latest runs only: each carries its curves.
RECORDED_RUNS = 12


def run_id_of(index: int, count: int, made: dict[str, str]) -> str:
    serving = {count - 3: made["champion_run"], count - 2: made["challenger_run"]}
    return serving.get(index, f"run-{index:05d}")


def record_candidates(paths: Any, count: int, made: dict[str, str]) -> None:
    """Every candidate of the latest runs, as loopline.experiments records them.

    The latest run's random forest failed (its record says why); the run before it had a
    one-class holdout, so its curves are unavailable.
    """
    import numpy as np

    from loopline.experiments.curves import diagnostics
    from loopline.tracking import Store

    store = Store(paths.registry_url)
    for index in range(max(0, count - RECORDED_RUNS), count):
        run_id = run_id_of(index, count, made)
        rng = np.random.default_rng(index)
        rows = []
        for rank, estimator in enumerate(ESTIMATORS):
            name = f"{estimator}-0"
            if index == count - 1 and estimator == "random_forest":
                rows.append(_failed(name, estimator))
                continue
            y = (rng.random(400) < (0.0 if index == count - 4 else 0.2)).astype(int)
            score = np.clip(0.2 + 0.35 * y * (1 - rank / 4) + rng.normal(0, 0.15, 400), 0, 1)
            curves = diagnostics(y, score, 0.25)
            auc = 0.78 + 0.04 * rank + 0.002 * (index % 10)
            plan = np.where(np.arange(400) % 2 == 0, "basic", "pro")
            rows.append(
                {
                    "candidate": name,
                    "estimator": estimator,
                    "params": {"C": [0.1, 1.0, 10.0][rank], "max_depth": 4 + index % 3},
                    "status": "ok",
                    "error": None,
                    "selected": rank == 2 if index != count - 1 else rank == 1,
                    "metrics": {
                        "roc_auc": {"value": auc, "low": auc - 0.03, "high": auc + 0.03},
                        "accuracy": {"value": 0.88, "low": 0.86, "high": 0.9},
                    },
                    "fit_seconds": 1.5 + rank,
                    "latency_p95_ms": 2.0 + rank,
                    "model_bytes": 10_000 * (rank + 1),
                    "code_commit": "a" * 40,
                    "code_dirty": index % 2 == 0,
                    "diagnostics": curves
                    | {
                        "importance": [
                            {"feature": f, "mean": 0.05 / (i + 1), "std": 0.005}
                            for i, f in enumerate(FEATURES)
                        ],
                        "segments": {
                            "column": "plan",
                            "rows": [
                                {
                                    "segment": segment,
                                    "rows": int((plan == segment).sum()),
                                    "positives": int(y[plan == segment].sum()),
                                    "roc_auc": None if not y.any() else auc - 0.01 * i,
                                    "accuracy": 0.88,
                                }
                                for i, segment in enumerate(("basic", "pro"))
                            ],
                        },
                    },
                }
            )
        store.record_candidates(run_id, rows)
    store.close()


def _failed(name: str, estimator: str) -> dict[str, Any]:
    return {
        "candidate": name,
        "estimator": estimator,
        "params": {"C": 1.0},
        "status": "failed",
        "error": "ValueError: max_depth must be >= 1, got 0",
        "selected": False,
        "metrics": {},
        "fit_seconds": None,
        "latency_p95_ms": None,
        "model_bytes": None,
        "code_commit": "a" * 40,
        "code_dirty": False,
        "diagnostics": {},
    }
