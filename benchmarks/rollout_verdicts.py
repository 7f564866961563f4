"""Rollout verdicts' error rates: many simulated rollouts of known-worse, equal and better
challengers, under canary and under shadow, decided by the project's review rule.

Models: logistic regressions trained on the built-in generator's churn data. The *strong*
model uses every feature; the *weak* one leaves out the three that carry most of the
churn signal, the *mild* one two that carry a little of it; the *twin* is the strong
pipeline trained on other customers (equal in quality, not in scores). A pool of
labelled snapshots of yet other customers is scored by all four, so each request has its
label and the four models' answers, and the pool's ROC AUCs are the models' true ones.

A rollout: each day ``requests`` requests arrive (drawn from the pool with a rollout's
own seed) and are labelled; the review looks every 6 hours at everything labelled so far
(``decide`` with the rule from params.yaml), as the monitor does. Canary routes
``canary_share`` of the requests to the challenger (unpaired arms); shadow scores every
request with both (paired). The rollout ends at the first promote or rollback, or at
the rule's limits (``max_minutes``, ``max_labels``) with its default.

As a script: ``--out result.json`` (``--quick`` for fewer rollouts, ``--markdown`` to
print the section).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import say  # noqa: E402

from loopline.config import load_params  # noqa: E402
from loopline.data.generate import Scenario, generate  # noqa: E402
from loopline.monitoring.review import rule_of  # noqa: E402
from loopline.monitoring.verdict import Rule, Sample, decide  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# The features that carry most of the churn signal, left out of the weak model.
WEAK_DROPS = ["days_since_last_login", "sessions_per_week", "usage_hours"]
# Two that carry a little of it: the slightly worse model leaves these out.
MILD_DROPS = ["usage_hours", "tenure_months"]
SCENARIOS = {  # name: (champion, challenger)
    "worse": ("strong", "weak"),
    "slightly worse": ("strong", "mild"),
    "equal": ("strong", "twin"),
    "better": ("weak", "strong"),
}
POLICIES = ("canary", "shadow")
# The monitor reviews every few minutes; here the labels are looked at every 6 hours.
LOOKS_PER_DAY = 4


@dataclasses.dataclass(frozen=True)
class Settings:
    rollouts: int  # per scenario and policy
    requests: int  # per day
    customers: int  # per group (training, twin's training, live pool)


FULL = Settings(rollouts=400, requests=2000, customers=3000)
QUICK = Settings(rollouts=60, requests=2000, customers=1500)


def labelled_rows(customers: int, seed: int) -> pd.DataFrame:
    """Weekly labelled snapshots of ``customers`` generated customers."""
    frame = generate(Scenario(customers=customers, days=90, seed=seed, start_date=date(2026, 1, 1)))
    frame = frame[frame["churned"].notna() & (frame["event_timestamp"].dt.dayofweek == 0)]
    return frame.assign(churned=frame["churned"].astype(int)).reset_index(drop=True)


def fit(frame: pd.DataFrame, columns: dict[str, str]) -> Any:
    """A scaled, one-hot logistic regression on ``columns`` (name: kind)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c, kind in columns.items() if kind == "numeric"]
    categorical = [c for c, kind in columns.items() if kind == "categorical"]
    prepare = ColumnTransformer(
        [("num", StandardScaler(), numeric), ("cat", OneHotEncoder(), categorical)]
    )
    model = make_pipeline(prepare, LogisticRegression(max_iter=1000))
    return model.fit(frame[list(columns)], frame["churned"])


def scored_pool(settings: Settings, features: dict[str, str]) -> tuple[pd.DataFrame, dict]:
    """The live pool with each model's score, and the models' true ROC AUCs on it."""
    from sklearn.metrics import roc_auc_score

    train, other, live = (labelled_rows(settings.customers, seed) for seed in (101, 202, 303))
    weak = {c: k for c, k in features.items() if c not in WEAK_DROPS}
    mild = {c: k for c, k in features.items() if c not in MILD_DROPS}
    models = {
        "strong": fit(train, features),
        "weak": fit(train, weak),
        "mild": fit(train, mild),
        "twin": fit(other, features),
    }
    pool = pd.DataFrame({"actual": live["churned"].to_numpy()})
    for name, model in models.items():
        pool[name] = model.predict_proba(live[list(features)])[:, 1]
    truth = {name: float(roc_auc_score(pool["actual"], pool[name])) for name in models}
    return pool, truth


def one_rollout(
    pool: pd.DataFrame, champion: str, challenger: str, policy: str, rule: Rule, seed: int,
    requests: int, share: float, threshold: float,
) -> dict[str, Any]:  # fmt: skip
    """Days of traffic until the review decides; the verdict and the labels it took."""
    rng = np.random.default_rng(seed)
    days = int(np.ceil(rule.max_minutes / 1440))
    drawn = rng.integers(0, len(pool), size=days * requests)
    to_challenger = rng.random(days * requests) < share
    actual = pool["actual"].to_numpy()[drawn]
    a, b = pool[champion].to_numpy()[drawn], pool[challenger].to_numpy()[drawn]
    for look in range(1, days * LOOKS_PER_DAY + 1):
        n = look * requests // LOOKS_PER_DAY
        if policy == "shadow":
            first = Sample.of(actual[:n], a[:n], threshold=threshold)
            second = Sample.of(actual[:n], b[:n], threshold=threshold)
        else:
            mine, theirs = to_challenger[:n], ~to_challenger[:n]
            first = Sample.of(actual[:n][theirs], a[:n][theirs], threshold=threshold)
            second = Sample.of(actual[:n][mine], b[:n][mine], threshold=threshold)
        minutes = look * 1440 / LOOKS_PER_DAY
        verdict = decide(first, second, paired=policy == "shadow", rule=rule, minutes=minutes)
        if verdict.decision in ("promote", "rollback"):
            break
    return {"decision": verdict.decision, "days": minutes / 1440, "labels": n,
            "by_default": verdict.by_default}  # fmt: skip


def run(quick: bool) -> dict[str, Any]:
    """Every scenario under every policy, ``rollouts`` times each."""
    settings = QUICK if quick else FULL
    params = load_params(REPO / "params.yaml")
    rule = rule_of(params)
    say("training the four models and scoring the live pool")
    pool, truth = scored_pool(settings, {c: f.kind for c, f in params.dataset.features.items()})
    say(f"true ROC AUC on {len(pool):,} live rows: {truth}")
    rows = []
    for scenario, (champion, challenger) in SCENARIOS.items():
        for policy in POLICIES:
            began = time.perf_counter()
            outcomes = [
                one_rollout(
                    pool,
                    champion,
                    challenger,
                    policy,
                    rule,
                    10_000 + seed,
                    settings.requests,
                    params.monitoring.canary_share,
                    params.serving.threshold,
                )  # fmt: skip
                for seed in range(settings.rollouts)
            ]
            decided = [o for o in outcomes if not o["by_default"]]
            row = {
                "scenario": scenario,
                "policy": policy,
                "true_difference": truth[challenger] - truth[champion],
                "rollouts": len(outcomes),
                "promoted": _share(outcomes, "promote"),
                "rolled_back": _share(outcomes, "rollback"),
                "by_default": sum(o["by_default"] for o in outcomes) / len(outcomes),
                "median_labels": _median([o["labels"] for o in decided]),
                "median_days": _median([o["days"] for o in decided]),
                "seconds": time.perf_counter() - began,
            }
            say(f"{scenario} {policy}: {row}")
            rows.append(row)
    return {
        "settings": dataclasses.asdict(settings),
        "rule": dataclasses.asdict(rule),
        "canary_share": params.monitoring.canary_share,
        "pool_rows": len(pool),
        "positive_rate": float(pool["actual"].mean()),
        "true_roc_auc": truth,
        "rows": rows,
    }


def _share(outcomes: list[dict[str, Any]], decision: str) -> float:
    return sum(o["decision"] == decision for o in outcomes) / len(outcomes)


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def markdown(result: dict[str, Any]) -> str:
    """The table for docs/monitoring.md and docs/benchmarks.md."""
    s, r = result["settings"], result["rule"]
    lines = [
        f"{s['rollouts']} rollouts per row; {s['requests']} labelled requests a day "
        f"(positive rate {result['positive_rate']:.1%}); canary share "
        f"{result['canary_share']:.0%}; a look every {24 // LOOKS_PER_DAY} hours; "
        f"{r['method']} test at "
        f"{r['confidence']:.0%}, margin {r['margin']}, at least {r['min_positives']} "
        f"positives and {r['min_negatives']} negatives per arm, limit "
        f"{r['max_minutes'] / 1440:.0f} days or {r['max_labels']:,} labels, then {r['default']}. "
        "True ROC AUC on the live pool: "
        + ", ".join(f"{k} {v:.3f}" for k, v in result["true_roc_auc"].items())
        + ".",
        "",
        "| challenger | policy | true difference | promoted | rolled back | by the default "
        "| median labels to a verdict | median days |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        labels = "–" if row["median_labels"] is None else f"{row['median_labels']:,.0f}"
        days = "–" if row["median_days"] is None else f"{row['median_days']:.2g}"
        lines.append(
            f"| {row['scenario']} | {row['policy']} | {row['true_difference']:+.3f} "
            f"| {row['promoted']:.1%} | {row['rolled_back']:.1%} | {row['by_default']:.1%} "
            f"| {labels} | {days} |"
        )
    lines += [
        "",
        "Goals: a worse challenger promoted in at most 1 % of rollouts, a better one rolled "
        "back in at most 5 %. Medians are over rollouts decided by the test (not by the "
        "default); days count traffic, the label delay comes on top.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rollouts, for development")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    parser.add_argument("--markdown", action="store_true", help="print the docs section")
    args = parser.parse_args()
    result = run(args.quick)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    if args.markdown or not args.out:
        print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
