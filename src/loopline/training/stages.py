"""Training as three steps over files, so each candidate can be fitted by a task of its own.

``training_set_step`` writes the point-in-time training set and holdout (sampled to
``training.max_rows``); ``fit_candidate_step`` fits one candidate from them and saves it;
``select_step`` times the fitted candidates side by side, keeps one and writes every
candidate's experiment record (``artifacts/experiments.json``). Run one after the
other they are :func:`loopline.steps.train_step`; the train flow maps the middle one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from loopline.config import Params
from loopline.settings import Paths
from loopline.training.candidates import Candidate, expand

TRAINING_SET = "training"
FITTED = "candidates"
EXPERIMENTS = "experiments.json"


def _folder(paths: Paths) -> Path:
    return paths.artifacts / TRAINING_SET


def candidate_names(params: Params) -> list[str]:
    """Every candidate of the grid, by name, in the order they are reported."""
    return [c.name for c in expand(params.training.candidates)]


def _candidate(params: Params, name: str) -> tuple[int, Candidate]:
    for index, candidate in enumerate(expand(params.training.candidates)):
        if candidate.name == name:
            return index, candidate
    raise ValueError(f"no candidate {name!r} in training.candidates: {candidate_names(params)}")


def training_set_step(params: Params, paths: Paths) -> dict[str, Any]:
    """Features for every sampled label, split into training rows and holdout rows."""
    from loopline import features
    from loopline.training.sampling import sample_parts
    from loopline.training.train import holdout_split

    dataset, training = params.dataset, params.training
    labels = pd.read_parquet(paths.labels)
    frame = features.historical_features(paths, params.features.service, labels, dataset)
    split = holdout_split(frame, dataset, training)
    train, holdout, sample = split.train, split.holdout, None
    if training.max_rows is not None:
        train, holdout, record = sample_parts(
            split.train,
            split.holdout,
            label=dataset.label,
            timestamp=dataset.timestamp,
            metric=training.metric,
            max_rows=training.max_rows,
            seed=training.seed,
        )
        sample = record.record() if record.sampled else None
    folder = _folder(paths)
    folder.mkdir(parents=True, exist_ok=True)
    train.to_parquet(folder / "train.parquet", index=False)
    holdout.to_parquet(paths.artifacts / "holdout.parquet", index=False)
    summary = {
        "sampled_rows": len(labels),
        "train_rows": len(train),
        "holdout_rows": len(holdout),
        "cutoff": None if split.cutoff is None else split.cutoff.isoformat(),
        "sample": sample,
        "candidates": candidate_names(params),
    }
    (folder / "set.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _split(params: Params, paths: Paths) -> Any:
    from loopline.training.train import Split

    summary = json.loads((_folder(paths) / "set.json").read_text())
    cutoff = summary["cutoff"]
    return Split(
        train=pd.read_parquet(_folder(paths) / "train.parquet"),
        holdout=pd.read_parquet(paths.artifacts / "holdout.parquet"),
        cutoff=None if cutoff is None else pd.Timestamp(cutoff),
    )


def fit_candidate_step(params: Params, paths: Paths, name: str) -> dict[str, Any]:
    """Fit the candidate called ``name``, assess it on the holdout, and save the result.

    A fit that fails is saved as failed, with its reason, and returned as such: the step
    itself succeeds, so the other candidates are still compared (:func:`select_step`).
    """
    import joblib

    from loopline.training.train import fit_one

    index, candidate = _candidate(params, name)
    split = _split(params, paths)
    result = fit_one(candidate, split, params.dataset, params.training, params.serving.threshold)
    if not result.failed:
        result.assessment = _assess(params, split.holdout, result.model, result.holdout_score)
    target = paths.artifacts / FITTED / f"{index:03d}.joblib"
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed: a retried or crashed fit never leaves half a file.
    partial = target.with_suffix(".partial")
    joblib.dump(result, partial)
    partial.replace(target)
    if result.failed:
        return {"candidate": name, "status": "failed", "error": result.error}
    return {
        "candidate": name,
        "status": "ok",
        "fit_seconds": round(result.fit_seconds, 2),
        **{k: round(v, 4) for k, v in result.metrics.items()},
    }


def progress(done: int, total: int, fit: dict[str, Any], metric: str) -> str:
    """One line per finished candidate, as the fits end: what a long training shows."""
    head = f"candidate {done}/{total} {fit['candidate']}"
    if fit.get("status") == "failed":
        return f"{head}: failed: {fit.get('error')}"
    value = fit.get(metric)
    scored = f"{metric} {value:.4f} on the holdout, " if isinstance(value, int | float) else ""
    return f"{head}: {scored}fitted in {fit.get('fit_seconds', 0):.1f} s"


def _assess(params: Params, holdout: pd.DataFrame, model: Any, score: Any) -> Any:
    from loopline.experiments.record import assess
    from loopline.training.train import feature_columns

    numeric, categorical = feature_columns(holdout, params.dataset)
    column = params.promotion.segment_column
    return assess(
        model,
        holdout[numeric + categorical],
        holdout[params.dataset.label].to_numpy(),
        score,
        metric=params.training.metric,
        threshold=params.serving.threshold,
        seed=params.training.seed,
        segment_column=column,
        segment_values=holdout[column] if column in holdout.columns else None,
    )


def select_step(params: Params, paths: Paths, *, pinned: str | None = None) -> dict[str, Any]:
    """Time every fitted candidate, keep one (cost-aware), write the model and candidates.json."""
    import joblib

    from loopline.model_scan import write_model
    from loopline.training.train import select, time_candidates

    split = _split(params, paths)
    names = candidate_names(params)
    results = []
    for index, name in enumerate(names):
        saved = paths.artifacts / FITTED / f"{index:03d}.joblib"
        if not saved.is_file():
            raise FileNotFoundError(f"candidate {name} was not fitted ({saved} is missing)")
        results.append(joblib.load(saved))
    fitted = [r for r in results if not r.failed]
    if fitted:
        time_candidates(fitted, split.holdout, params.dataset)
    y_hold = split.holdout[params.dataset.label].to_numpy()
    threshold = params.serving.threshold
    selection = select(results, y_hold, params.training, threshold, pinned=pinned)
    best = selection.selected
    # A plain pickle: the model scanner reads it to the end (loopline.model_scan).
    write_model(best.model, paths.artifacts / "model.joblib")
    # Every candidate's experiment record, which the run's record in the registry keeps.
    records = [r.experiment(selected=r is best) for r in results]
    (paths.artifacts / EXPERIMENTS).write_text(json.dumps(records, default=str) + "\n")
    summary = json.loads((_folder(paths) / "set.json").read_text())
    return {
        "selected": best.candidate.name,
        "estimator": best.candidate.estimator,
        "params": best.candidate.params,
        "metric": params.training.metric,
        "sampled_rows": summary["sampled_rows"],
        "train_rows": summary["train_rows"],
        "holdout_rows": summary["holdout_rows"],
        "cutoff": summary["cutoff"],
        "sample": summary["sample"],
        "candidates": [r.row() for r in fitted],
        "failed": [r.row() for r in results if r.failed],
        **selection.record(),
    }
