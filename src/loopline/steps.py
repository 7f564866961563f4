"""The pipeline's steps: plain typed functions over files, driven by Prefect flows and DVC alike.

Each step reads what the previous one wrote under ``data/`` and ``artifacts/`` and returns a
small JSON-able summary, so either driver can record it. DVC runs them on the project's own
folders; a flow run gives them its workspace (:mod:`loopline.runs`), and only
:func:`package_step` publishes from there.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from loopline.config import Params
from loopline.faults import checkpoint
from loopline.settings import Paths


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def generate_step(params: Params, paths: Paths, target: Path | None = None) -> Path:
    """Write the built-in dataset where ``dataset.source`` points (or to ``target``)."""
    from loopline.data.generate import Scenario, write

    g = params.built_in()
    scenario = Scenario(
        customers=g.customers,
        days=g.days,
        seed=g.seed,
        start_date=g.start_date,
        label_delay_days=params.dataset.label_delay_days,
        drift_day=g.drift_day,
    )
    out = target or paths.project / params.dataset.source
    out.parent.mkdir(parents=True, exist_ok=True)
    write(scenario, out)
    return out


def accept_step(params: Params, paths: Paths, source: Path | None = None) -> dict[str, Any]:
    """Check a batch against the contract and version it with DVC (the ingest flow's core)."""
    from loopline.data.ingest import accept_batch, as_dict
    from loopline.safe_paths import outside_state

    batch = outside_state(paths, source or paths.project / params.dataset.source, "the batch")
    return as_dict(accept_batch(batch, params.dataset, paths))


def prepare_step(params: Params, paths: Paths, *, checked: bool = False) -> dict[str, Any]:
    """Re-check the accepted batch (unless this run's accept step just wrote it from its
    check), drop PII and type the columns (DVC stage ``ingest``)."""
    from loopline.data.ingest import prepare

    rows = prepare(params.dataset, paths, checked=checked)
    return {"rows": rows, "path": str(paths.shown(paths.ingested))}


def validate_step(params: Params, paths: Paths) -> dict[str, Any]:
    """The prepared batch's quality summary, kept as DVC metrics (DVC stage ``validate``)."""
    from loopline.data.contract import read_batches
    from loopline.data.ingest import quality_summary_of

    summary = quality_summary_of(read_batches(paths.ingested), params.dataset)
    _write_json(paths.artifacts / "validation.json", summary)
    return summary


def features_step(params: Params, paths: Paths, *, online: bool = True) -> dict[str, Any]:
    """Write Feast sources and labels, apply the definitions, load the online store.

    The definitions are first brought in step with params.yaml (when Loopline generated
    them) and checked against it: a disagreement names every difference and changes nothing.
    """
    from loopline import feature_definitions, features

    feature_definitions.sync(params, paths)
    feature_definitions.check(params, paths)
    # The sources are copied file to file; only the label events' columns are read here.
    d = params.dataset
    written = features.write_sources(paths.ingested, d, paths)
    frame = pd.read_parquet(paths.ingested, columns=[d.entity, d.timestamp, d.label])
    labels = features.label_events(frame, d)
    paths.labels.parent.mkdir(parents=True, exist_ok=True)
    labels.to_parquet(paths.labels, index=False)
    checkpoint("features")
    applied = features.apply(paths)
    # A run's features reach the shared online store only when it publishes.
    if online and paths.workspace is None:
        load_online(params, paths, frame)
    labelled = int(frame[params.dataset.label].notna().sum())
    return {
        "sources": written,
        "labelled_rows": labelled,
        "labels": len(labels),
        "applied": applied,
    }


def load_online(params: Params, paths: Paths, frame: pd.DataFrame | None = None) -> None:
    """Materialize the project's feature sources into the online store."""
    from loopline import features

    if frame is None:
        frame = pd.read_parquet(paths.ingested, columns=[params.dataset.timestamp])
    start = frame[params.dataset.timestamp].min().to_pydatetime() - timedelta(seconds=1)
    features.materialize(paths, start, datetime.now(UTC))


def train_step(
    params: Params,
    paths: Paths,
    *,
    pinned: str | None = None,
    say: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Point-in-time training set from the feature service; fit candidates; keep the best.

    ``pinned`` names the candidate to keep instead of selecting one (a reproduction's);
    ``say`` gets a progress line as each candidate is fitted. The train flow runs the same
    three stages, fitting the candidates as parallel tasks.
    """
    from loopline.training import stages

    prepared = stages.training_set_step(params, paths)
    names = prepared["candidates"]
    for done, name in enumerate(names, start=1):
        fit = stages.fit_candidate_step(params, paths, name)
        if say is not None:
            say(stages.progress(done, len(names), fit, params.training.metric))
    return selected_step(params, paths, pinned=pinned)


def selected_step(params: Params, paths: Paths, *, pinned: str | None = None) -> dict[str, Any]:
    """The selection over the fitted candidates, recorded in ``artifacts/candidates.json``."""
    from loopline.training import stages

    chosen = stages.select_step(params, paths, pinned=pinned)
    summary = {
        **chosen,
        # Every labelled row of the data version, and how many label_sampling kept.
        "labelled_rows": _labelled_rows(params, paths),
        "label_sampling": params.dataset.describe_sampling(),
        "holdout": _holdout_rule(params),
    }
    _write_json(paths.artifacts / "candidates.json", summary)
    return summary


def _labelled_rows(params: Params, paths: Paths) -> int:
    label = params.dataset.label
    return int(pd.read_parquet(paths.ingested, columns=[label])[label].notna().sum())


def _holdout_rule(params: Params) -> str:
    training = params.training
    if training.holdout_days is not None:
        return f"the last {training.holdout_days} days of label timestamps"
    return f"{training.holdout_fraction:.0%} of the entities, drawn with seed {training.seed}"


def record_run(
    params: Params,
    paths: Paths,
    candidates: dict[str, Any],
    evaluation: dict[str, Any],
    flow_run_id: str | None,
) -> str:
    """Keep the training run (every candidate's scores) for comparison on the dashboard."""
    import uuid

    from loopline import runs
    from loopline.tracking import Store
    from loopline.training.stages import EXPERIMENTS

    run_id = flow_run_id or (paths.workspace.name if paths.workspace else uuid.uuid4().hex)
    commit, dirty = code_version(paths)
    store = Store(paths.registry_url).migrate()
    store.record_run(
        run_id=run_id,
        started_at=datetime.now(UTC),
        model_name=params.serving.model_name,
        data_hash=runs.data_hash(paths),
        feature_service=params.features.service,
        selected=candidates["selected"],
        metric=candidates["metric"],
        params={"estimator": candidates["estimator"], **candidates["params"]},
        metrics=evaluation["holdout"],
        candidates=candidates["candidates"],
        flow_run_id=flow_run_id,
        code_commit=commit,
        code_dirty=dirty,
    )
    # Each candidate's own record; the run's data, code and flow run go on every one.
    experiments = paths.artifacts / EXPERIMENTS
    if experiments.is_file():
        store.record_candidates(run_id, json.loads(experiments.read_text()))
    store.close()
    return run_id


def evaluate_step(params: Params, paths: Paths) -> dict[str, Any]:
    """Holdout metrics of the selected model beside the naive baseline (DVC metrics)."""
    import joblib

    from loopline.training.evaluate import classification_metrics
    from loopline.training.train import Split, feature_columns, naive_baseline

    model = joblib.load(paths.artifacts / "model.joblib")
    holdout = pd.read_parquet(paths.artifacts / "holdout.parquet")
    numeric, categorical = feature_columns(holdout, params.dataset)
    y = holdout[params.dataset.label].to_numpy()
    score = model.predict_proba(holdout[numeric + categorical])[:, 1]
    metrics = classification_metrics(y, score, params.serving.threshold)
    # The training rows are the labels that are not in the holdout, for either kind of split.
    keys = [params.dataset.entity, params.dataset.timestamp]
    labels = pd.read_parquet(paths.labels)
    held = labels.merge(holdout[keys].drop_duplicates(), on=keys, how="left", indicator=True)
    train = labels[(held["_merge"] == "left_only").to_numpy()]
    baseline = naive_baseline(Split(train, holdout, None), params.dataset, 0.5)
    result = {
        "holdout": {k: round(v, 4) for k, v in metrics.items()},
        "baseline": {k: round(v, 4) for k, v in baseline.items()},
        "holdout_rows": len(holdout),
        "positive_rate": round(float(y.mean()), 4),
    }
    _write_json(paths.artifacts / "metrics.json", result)
    _write_plots(params, paths, y, score)
    return result


def _write_plots(params: Params, paths: Paths, y: Any, score: Any) -> None:
    """DVC's plot files of the selected model, from its experiment record (the same model on
    the same holdout: every fitted candidate is assessed where it is fitted)."""
    from loopline.experiments.plots import PLOTS, write_plots
    from loopline.training.stages import EXPERIMENTS

    records = json.loads((paths.artifacts / EXPERIMENTS).read_text())
    found = next(r for r in records if r["selected"])["diagnostics"]
    threshold, seed = params.serving.threshold, params.training.seed
    write_plots(paths.artifacts / PLOTS, found, y, score, threshold, seed)


# What is not code: the parameters (recorded in full beside every model, and what
# `dvc exp run -S` changes), the data pointers, DVC's lock and the pipeline's outputs.
NOT_CODE = (
    ":(exclude)params.yaml",
    ":(exclude)dvc.lock",
    ":(exclude,glob)**/*.dvc",
    ":(exclude)artifacts",
    ":(exclude)data",
)


def code_version(paths: Paths) -> tuple[str | None, bool | None]:
    """The project's git commit (40 hex digits) and whether tracked code has changes.

    ``(None, None)`` outside a git repository or without git.
    """
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=paths.project, capture_output=True, text=True
        )
        if rev.returncode != 0:
            return None, None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *NOT_CODE],
            cwd=paths.project,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return rev.stdout.strip(), bool(dirty)
    except FileNotFoundError:
        return None, None


def code_commit(paths: Paths) -> str | None:
    """The git commit of the project, with ``+dirty`` when the tree has changes (lineage's
    form; the experiment records keep the two apart, :func:`code_version`)."""
    commit, dirty = code_version(paths)
    return None if commit is None else commit + ("+dirty" if dirty else "")


def lineage_record(params: Params, paths: Paths, flow_run_id: str | None) -> dict[str, Any]:
    """Everything the model is made from, recorded as it is made."""
    from loopline import features, runs
    from loopline.data import versioning

    candidates = json.loads((paths.artifacts / "candidates.json").read_text())
    published = paths.published
    return {
        "data_hash": runs.data_hash(paths),
        "data_path": str(published.raw_batch.relative_to(paths.project)),
        "data_git_rev": versioning.pointer_revision(published, published.raw_batch),
        "feature_service": params.features.service,
        "feature_definition_hash": features.definition_hash(paths, params.features.service),
        "estimator": candidates["estimator"],
        "params": candidates["params"],
        "training": params.training.model_dump(),
        # The whole configuration, so `loopline reproduce` can train the same way again.
        "params_snapshot": params.model_dump(mode="json"),
        "code_commit": code_commit(paths),
        "flow_run_id": flow_run_id,
        "run_workspace": paths.workspace.name if paths.workspace else None,
        "created_at": datetime.now(UTC).isoformat(),
    }


def package_step(
    params: Params,
    paths: Paths,
    flow_run_id: str | None = None,
    *,
    registered_by: str | None = None,
    why: str | None = None,
) -> dict[str, Any]:
    """Save the selected model to BentoML with its lineage and build a Bento, then publish:
    register it as ``registered_by`` (default: :func:`actor`) with reason ``why``.

    ``flow_run_id`` is the flow run that trained the model. The model and Bento get new tags
    that nothing serves yet, so they are made outside the lock; the shared features and the
    registry change inside it, the registry last.
    """
    from loopline import locks, packaging, runs, sbom
    from loopline.registry import Registry

    metrics = json.loads((paths.artifacts / "metrics.json").read_text())
    lineage = lineage_record(params, paths, flow_run_id)
    run_id = paths.workspace.name if paths.workspace else None
    if run_id:
        runs.update(paths, status="publishing", pid=os.getpid())
    tag, digest = packaging.save_model(
        params.serving.model_name,
        paths.artifacts / "model.joblib",
        paths.artifacts / "holdout.parquet",
        metrics["holdout"],
        lineage,
    )
    if run_id:
        runs.update(paths, model=tag)
    bento = packaging.build_bento(paths, tag)
    if run_id:
        runs.update(paths, bento=bento)
    lineage |= {"bento": bento, "model_sha256": digest}
    lineage |= sbom.write_sbom(packaging.bento_path(bento))
    registry = Registry(paths.registry_url)
    registry.upgrade()
    with locks.publishing(paths.published, run_id=run_id):
        if run_id:
            registered = {v.version for v in registry.list_versions(params.serving.model_name)}
            runs.recover(paths.published, registered)
            runs.publish_working_files(paths)
            features_published(params, paths.published)
        checkpoint("publish")
        registry.register(
            params.serving.model_name,
            tag,
            metrics=metrics["holdout"],
            lineage=lineage,
            actor=registered_by or actor(),
            reason=why or (f"trained by flow run {flow_run_id}" if flow_run_id else "trained"),
        )
    if run_id:
        runs.update(paths, status="published", published_at=datetime.now(UTC).isoformat())
        runs.prune(paths.published)
    result = {"model": tag, "bento": bento, "lineage": lineage, "metrics": metrics["holdout"]}
    _write_json(paths.artifacts / "package.json", result)
    if run_id:
        _write_json(paths.published.artifacts / "package.json", result)
        # What was published becomes DVC's pipeline record, committed (docs/runs.md).
        from loopline.data import versioning

        versioning.record_pipeline(paths, lineage["data_hash"], tag)
    return result


def features_published(params: Params, published: Paths) -> None:
    """Register the definitions with the shared Feast registry and load the online store."""
    from loopline import features

    features.apply(published)
    load_online(params, published)


def actor() -> str:
    """Who is acting: LOOPLINE_ACTOR when set (the dashboard, automations), else the OS user."""
    import getpass
    import os

    return os.environ.get("LOOPLINE_ACTOR") or getpass.getuser()
