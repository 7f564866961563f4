"""A seeded Loopline state for the dashboard: runs, versions, drift history, logs, data.

Written through the real stores (the registry's API for versions and their history, the
tracking tables for runs and windows, the prediction log writers, DVC for data versions),
so the dashboard reads exactly what the platform would have written. The benchmark
(`benchmarks/dashboard.py`) seeds the same state at full size.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MODEL = "churn"
FEATURE_SERVICE = "churn_v1"
FEATURES = (
    "plan",
    "country",
    "payment_method",
    "contract",
    "tenure_months",
    "monthly_charges",
    "discount_pct",
    "usage_hours",
    "sessions_per_week",
    "support_tickets_30d",
    "payment_failures_90d",
    "days_since_last_login",
)
ESTIMATORS = ("logistic_regression", "hist_gradient_boosting", "random_forest")
PASSWORDS = {"olivia": "operator-pass-1", "victor": "viewer-pass-1", "alice": "approver-pass-1"}


@dataclass
class Seeded:
    """What the seeded state holds, for tests to check the pages against."""

    project: Path
    state: Path
    registry_url: str
    data_hashes: list[str]
    data_rows: list[int]
    production: str
    challenger: str
    candidate: str
    pending: str
    champion_run: str
    challenger_run: str
    runs: int
    versions: int
    windows: int
    predictions: dict[str, int] = field(default_factory=dict)
    live_accuracy: dict[str, float] = field(default_factory=dict)
    last_drift_share: float = 0.0
    rejected: int = 0


def make_project(root: Path) -> Path:
    """An empty Loopline project: the repo's params.yaml, its own git repository."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "params.yaml", root / "params.yaml")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def _clock(start: datetime, step: timedelta) -> Iterator[datetime]:
    moment = start
    while True:
        yield moment
        moment += step


def seed(
    project: Path,
    *,
    runs: int = 1000,
    versions: int = 200,
    windows: int = 10_000,
    data_versions: int = 3,
    predictions: int = 2000,
    policy: str = "canary",
    now: datetime | None = None,
) -> Seeded:
    """Fill ``project``'s state folder (``<project>/.loopline``); returns what went in."""
    from loopline.settings import Paths

    now = now or datetime.now(UTC)
    make_project(project)
    paths = Paths(project.resolve(), (project / ".loopline").resolve())
    paths.state.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    hashes, rows = _data(paths, data_versions)
    made = _registry(paths, versions, hashes, now, rng, policy)
    _runs(paths, runs, hashes, now, rng, made)
    from tests.dashboard.seed_candidates import record_candidates

    record_candidates(paths, runs, made)
    last_share = _windows(paths, windows, made, now, rng)
    served, accuracy = _predictions(paths, made, predictions, now, rng, policy)
    rejected = _rejections(paths)
    _users(paths)
    return Seeded(
        project=paths.project,
        state=paths.state,
        registry_url=paths.registry_url,
        data_hashes=hashes,
        data_rows=rows,
        production=made["production"],
        challenger=made["challenger"],
        candidate=made["candidate"],
        champion_run=made["champion_run"],
        challenger_run=made["challenger_run"],
        pending=made["pending"],
        runs=runs,
        versions=versions,
        windows=windows,
        predictions=served,
        live_accuracy=accuracy,
        last_drift_share=last_share,
        rejected=rejected,
    )


def _data(paths: Any, count: int) -> tuple[list[str], list[int]]:
    """``count`` accepted batches, each tracked by DVC (its hash is the data version)."""
    import pandas as pd

    from loopline.config import load_params
    from loopline.data import versioning
    from loopline.data.ingest import quality_summary

    dataset = load_params(paths.params_file).dataset
    hashes, sizes = [], []
    versioning.ensure_repo(paths)
    for index in range(count):
        n = 100 * (index + 1)
        frame = pd.DataFrame(
            {
                "customer_id": range(n),
                "event_timestamp": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
                "plan": ["basic", "pro"] * (n // 2),
                "country": "DE",
                "payment_method": "card",
                "contract": "monthly",
                "tenure_months": [float(i % 48) for i in range(n)],
                "monthly_charges": 30.0 + index,
                "discount_pct": 0.0,
                "usage_hours": 5.0,
                "sessions_per_week": 3.0,
                "support_tickets_30d": 0.0,
                "payment_failures_90d": 0.0,
                "days_since_last_login": 1.0,
                "churned": [i % 10 == 0 for i in range(n)],
            }
        )
        paths.raw_batch.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(paths.raw_batch, index=False)
        hashes.append(versioning.track(paths, paths.raw_batch))
        sizes.append(n)
    summary = quality_summary(frame.assign(churned=frame["churned"].astype(float)), dataset)
    paths.artifacts.mkdir(parents=True, exist_ok=True)
    (paths.artifacts / "validation.json").write_text(json.dumps(summary, default=str))
    return hashes, sizes


def _gates(rng: random.Random) -> list[dict[str, Any]]:
    auc = round(0.8 + rng.random() / 10, 4)
    return [
        {"name": "floor:roc_auc", "value": auc, "threshold": 0.65, "passed": True, "detail": "ok"},
        {"name": "latency_p95_ms", "value": 3.2, "threshold": 50.0, "passed": True, "detail": "ok"},
        {
            "name": "vs_champion:roc_auc",
            "value": None,
            "threshold": None,
            "passed": True,
            "detail": "no champion",
            "skipped": True,
        },
    ]


def _registry(
    paths: Any, count: int, hashes: list[str], now: datetime, rng: random.Random, policy: str
) -> dict[str, str]:
    """``count`` versions over 60 days; every tenth promoted, then a canary and an approval."""
    from loopline.registry import Registry

    step = timedelta(days=60) / (count * 2)
    clock = _clock(now - timedelta(days=60), step)
    registry = Registry(paths.registry_url, now=lambda: next(clock))
    registry.upgrade()
    names = []
    for index in range(count):
        version = f"{MODEL}:v{index:04d}{uuid.UUID(int=rng.getrandbits(128)).hex[:6]}"
        data_hash = hashes[min(len(hashes) - 1, index * len(hashes) // count)]
        lineage = {
            "data_hash": data_hash,
            "data_path": "data/raw/dataset.parquet",
            "feature_service": FEATURE_SERVICE,
            "feature_definition_hash": "f" * 12,
            "estimator": ESTIMATORS[index % 3],
            "params": {"C": 1.0},
            "flow_run_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "bento": f"loopline-churn:b{index:04d}",
            "code_commit": "abc1234",
        }
        metrics = {"roc_auc": round(0.8 + rng.random() / 10, 4), "accuracy": 0.9}
        registry.register(MODEL, version, metrics=metrics, lineage=lineage, actor="seed")
        names.append(version)
        if index % 10 == 9 and index < count - 5:
            registry.request_promotion(
                version, actor="olivia", reason="better on holdout", gate_results=_gates(rng)
            )
    production = registry.production(MODEL)
    assert production is not None
    challenger, pending, candidate = names[-3], names[-2], names[-1]
    registry.transition(challenger, "staging", actor="olivia", reason="canary")
    registry.set_challenger(MODEL, challenger, actor="olivia", reason="canary")
    share = 0.2 if policy == "canary" else 1.0
    registry.set_policy(MODEL, policy, share, actor="olivia", reason=f"{policy} at {share:.0%}")
    registry.request_promotion(
        pending, actor="olivia", reason="needs sign-off", gate_results=_gates(rng), approver="alice"
    )
    # The runs that trained them: a run is named by its flow run (steps.record_run).
    runs = {
        role: registry.get(v).lineage["flow_run_id"]
        for role, v in (("champion_run", production.version), ("challenger_run", challenger))
    }
    registry.close()
    return {
        "production": production.version,
        "challenger": challenger,
        "pending": pending,
        "candidate": candidate,
        **runs,
    }


def _runs(
    paths: Any,
    count: int,
    hashes: list[str],
    now: datetime,
    rng: random.Random,
    made: dict[str, str],
) -> None:
    """Training runs, written in one transaction (one per run would take minutes).

    The third- and second-latest trained the champion and the challenger.
    """
    serving = {count - 3: made["champion_run"], count - 2: made["challenger_run"]}
    from sqlalchemy import insert
    from sqlalchemy.orm import Session

    from loopline.registry import Registry
    from loopline.registry.schema import RunRow

    rows = []
    for index in range(count):
        estimator = ESTIMATORS[index % 3]
        auc = round(0.75 + 0.15 * rng.random(), 4)
        rows.append(
            {
                "run_id": serving.get(index, f"run-{index:05d}"),
                "started_at": now - timedelta(days=60) + timedelta(minutes=index * 60),
                "model_name": MODEL,
                "data_hash": hashes[min(len(hashes) - 1, index * len(hashes) // count)],
                "feature_service": FEATURE_SERVICE,
                "selected": f"{estimator}-{index % 4}",
                "metric": "roc_auc",
                "params": {"estimator": estimator, "C": [0.1, 1.0][index % 2]},
                "metrics": {"roc_auc": auc, "accuracy": round(0.85 + rng.random() / 10, 4)},
                "candidates": [
                    {"name": f"{e}-0", "estimator": e, "roc_auc": round(auc - 0.01 * i, 4)}
                    for i, e in enumerate(ESTIMATORS)
                ],
                "flow_run_id": serving.get(index),
            }
        )
    registry = Registry(paths.registry_url)
    with Session(registry.engine) as session, session.begin():
        session.execute(insert(RunRow), rows)
    registry.close()


def _windows(
    paths: Any, count: int, made: dict[str, str], now: datetime, rng: random.Random
) -> float:
    """Drift windows every few minutes; the newest ones keep a small HTML report."""
    from sqlalchemy import insert
    from sqlalchemy.orm import Session

    from loopline.registry import Registry
    from loopline.registry.schema import DriftWindowRow

    reports = paths.reports
    reports.mkdir(parents=True, exist_ok=True)
    step = timedelta(days=60) / max(count, 1)
    rows = []
    share = 0.0
    for index in range(count):
        end = now - timedelta(days=60) + step * (index + 1)
        drifting = index > count * 0.9
        # As the monitor records them: Wasserstein distance, drifted above its threshold.
        scores = {
            f: {"score": score, "method": "wasserstein", "threshold": 0.1, "drifted": score > 0.1}
            for f in FEATURES
            for score in [rng.random() * (0.4 if drifting else 0.05)]
        }
        drifted = sum(1 for s in scores.values() if s["drifted"])
        share = drifted / len(FEATURES)
        report = None
        if index >= count - 3:
            report = reports / f"window-{index}.html"
            report.write_text(f"<html><body><h1>Evidently report {index}</h1></body></html>")
        rows.append(
            {
                "computed_at": end,
                "model_name": MODEL,
                "model_version": made["production"],
                "window_start": end - step,
                "window_end": end,
                "rows": 500,
                "drift_share": share,
                "drifted_features": drifted,
                "feature_scores": scores,
                "prediction_drift": rng.random() / 10,
                "n_labels": 50 + index % 100,
                "accuracy": 0.9 - (0.1 if drifting else 0.0) * rng.random(),
                "roc_auc": 0.85,
                "report_html": str(report) if report else None,
                "report_json": None,
                "events": ["loopline.drift.detected"] if drifting and index % 500 == 0 else [],
            }
        )
    registry = Registry(paths.registry_url)
    with Session(registry.engine) as session, session.begin():
        session.execute(insert(DriftWindowRow), rows)
    registry.close()
    return share


def _predictions(
    paths: Any,
    made: dict[str, str],
    count: int,
    now: datetime,
    rng: random.Random,
    policy: str = "canary",
) -> tuple[dict[str, int], dict[str, float]]:
    """Served predictions in the last hour (champion and canary), half of them labelled.

    Under ``policy="shadow"`` the champion answers every request and the challenger
    scores each one too, logged as a shadow row of the same request.
    """
    from loopline.serving.predlog import FeedbackLog, PredictionLog

    served: dict[str, int] = {}
    right: dict[str, list[int]] = {}
    predictions = PredictionLog(paths.serving_log)
    feedback = FeedbackLog(paths.serving_log)
    for index in range(count):
        version, arm = (
            (made["challenger"], "challenger")
            if index % 5 == 0 and policy != "shadow"
            else (made["production"], "champion")
        )
        label = (index // 2) % 2
        request = f"req-{index}"
        predictions.log(
            request_id=request,
            entity_id=index,
            model_version=version,
            arm=arm,
            score=(0.7 if label else 0.05) + 0.2 * rng.random(),
            label=label,
            latency_ms=2.0 + 2.0 * rng.random(),
            features={"plan": ["basic", "pro"][index % 3 % 2]},
            at=now - timedelta(minutes=30) + timedelta(seconds=index),
        )
        if policy == "shadow":  # the challenger is right more often: it ranks better
            predictions.log(
                request_id=request,
                entity_id=index,
                model_version=made["challenger"],
                arm="challenger",
                score=(0.6 if label else 0.1) + 0.3 * rng.random(),
                label=label,
                latency_ms=2.5,
                features={"plan": ["basic", "pro"][index % 3 % 2]},
                shadow=True,
                at=now - timedelta(minutes=30) + timedelta(seconds=index),
            )
        served[version] = served.get(version, 0) + 1
        if index % 2 == 0:
            # The champion is right on two labels in three, the canary on every one.
            correct = arm == "challenger" or index % 3 != 0
            actual = label if correct else 1 - label
            feedback.record(label=actual, request_id=request, entity_id=index)
            right.setdefault(version, []).append(int(actual == label))
    predictions.close()
    feedback.close()
    return served, {v: sum(hits) / len(hits) for v, hits in right.items()}


def _rejections(paths: Any) -> int:
    from loopline.data.contract import BatchRejected
    from loopline.data.ingest import record_rejection

    problems = [
        ["column 'tenure_months': 3 values below 0", "missing column 'plan'"],
        ["file not found"],
    ]
    for index, found in enumerate(problems):
        record_rejection(paths, BatchRejected(paths.project / f"bad-{index}.parquet", found))
    return len(problems)


def _users(paths: Any) -> None:
    from loopline.users import user_store

    store = user_store(paths)
    store.add("olivia", "operator", PASSWORDS["olivia"])
    store.add("victor", "viewer", PASSWORDS["victor"])
    store.add("alice", "operator", PASSWORDS["alice"])
