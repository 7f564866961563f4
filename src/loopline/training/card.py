"""The model card: a short markdown page a person reads in the Prefect UI."""

from __future__ import annotations

from typing import Any


def model_card(candidates: dict[str, Any], evaluation: dict[str, Any]) -> str:
    """Markdown: what was chosen, why, and how it compares with a naive model."""
    metric = candidates["metric"]
    rows = "\n".join(
        f"| {c['candidate']} | {c[metric]:.4f} | {c['fit_seconds']:.1f} |"
        for c in sorted(candidates["candidates"], key=lambda c: c[metric], reverse=True)
    )
    holdout, baseline = evaluation["holdout"], evaluation["baseline"]
    return (
        f"""# Model card

**Selected:** `{candidates["selected"]}` by holdout `{metric}`.

**Data:** {candidates["train_rows"]} training rows before {candidates["cutoff"]},
{candidates["holdout_rows"]} holdout rows after (positive rate {evaluation["positive_rate"]}).

| metric | model | naive baseline |
|---|---|---|
"""
        + "\n".join(f"| {k} | {holdout[k]:.4f} | {baseline[k]:.4f} |" for k in holdout)
        + f"""

## Candidates

| candidate | {metric} | fit seconds |
|---|---|---|
{rows}
"""
    )
