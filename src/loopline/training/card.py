"""The model card: a short markdown page a person reads in the Prefect UI."""

from __future__ import annotations

from typing import Any

from loopline.training.evaluate import LOWER_IS_BETTER
from loopline.training.selection import LATENCY_TIE


def model_card(candidates: dict[str, Any], evaluation: dict[str, Any]) -> str:
    """Markdown: what was chosen, why, and how it compares with a naive model."""
    metric = candidates["metric"]
    within = set(candidates["within_tolerance"])
    ranked = sorted(
        candidates["candidates"], key=lambda c: c[metric], reverse=metric not in LOWER_IS_BETTER
    )
    rows = "\n".join(
        f"| {_name(c['candidate'], candidates['selected'])} | {c[metric]:.4f} "
        f"| {c['latency_p95_ms']:.3f} | {'yes' if c['candidate'] in within else 'no'} "
        f"| {c['fit_seconds']:.1f} |"
        for c in ranked
    )
    se = candidates["best_metric_se"]
    spread = "" if se is None else f" ± {se:.4f} (bootstrap standard error)"
    tolerance = candidates["selection_tolerance"]
    if tolerance == 0:
        rule = "tolerance 0: the metric alone decides."
    else:
        rule = (
            f"the candidates within {tolerance:.4f} of it are ranked by the single-row p95 "
            f"latency of their serving scorer, fastest first (p95s within "
            f"{1 + LATENCY_TIE:g}x of the fastest tie, and the metric decides)."
        )
    holdout, baseline = evaluation["holdout"], evaluation["baseline"]
    rate = evaluation["positive_rate"]
    return (
        f"""# Model card

**Selected:** `{candidates["selected"]}`: {candidates["selection_reason"]}.

**Selection:** the best holdout `{metric}` is {candidates["best_metric"]:.4f}{spread};
{rule}

**Data:** {_data(candidates)} (holdout positive rate {rate}).{_sample(candidates)}

| metric | model | naive baseline |
|---|---|---|
"""
        + "\n".join(f"| {k} | {holdout[k]:.4f} | {baseline[k]:.4f} |" for k in holdout)
        + f"""

## Candidates

| candidate | {metric} | latency p95 ms | within tolerance | fit seconds |
|---|---|---|---|---|
{rows}
"""
        + _failed(candidates.get("failed") or [])
    )


def _failed(failed: list[dict[str, Any]]) -> str:
    if not failed:
        return ""
    lines = "\n".join(f"- `{c['candidate']}`: {c['error']}" for c in failed)
    return f"\n**Failed to fit** (not compared):\n\n{lines}\n"


def _data(candidates: dict[str, Any]) -> str:
    """How many labelled rows there were, how many trained, and what was held out."""
    train, holdout = candidates["train_rows"], candidates["holdout_rows"]
    cutoff = candidates.get("cutoff")
    split = (
        f"{train:,} training rows up to {cutoff}, {holdout:,} holdout rows after"
        if cutoff
        else f"{train:,} training rows, {holdout:,} holdout rows ({candidates.get('holdout')})"
    )
    if "labelled_rows" not in candidates:  # recorded before the counts were
        return split
    return (
        f"{candidates['labelled_rows']:,} labelled rows; {candidates['label_sampling']}: "
        f"{candidates['sampled_rows']:,} used: {split}"
    )


def _sample(candidates: dict[str, Any]) -> str:
    """The training-at-scale line: what ``training.max_rows`` cut, and the error it left."""
    sample = candidates.get("sample")
    if not sample:
        return ""
    se = candidates.get("best_metric_se")
    measured = "" if se is None else f"; measured (bootstrap) {se:.4f}"
    return (
        f"\n\n**Trained on a sample** (`training.max_rows` = {sample['max_rows']:,}, stratified "
        f"by {sample['stratified_by']}): {candidates['train_rows']:,} of "
        f"{sample['train_rows_before']:,} training rows and {candidates['holdout_rows']:,} of "
        f"{sample['holdout_rows_before']:,} holdout rows (never fewer than "
        f"{sample['holdout_minimum']:,}). The holdout's {candidates['metric']} standard error "
        f"is at most {sample['holdout_se_bound']:.4f} (bound){measured}."
    )


def _name(candidate: str, selected: str) -> str:
    return f"**{candidate}**" if candidate == selected else candidate
