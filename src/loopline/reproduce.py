"""Retrain a registered version from its recorded data version and configuration."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from loopline.settings import STATE_ENV, Paths

TOLERANCE = 1e-9


@dataclass(frozen=True)
class Reproduction:
    """Recorded and reproduced metrics of one version, and whether they match."""

    version: str
    data_hash: str
    recorded: dict[str, float]
    reproduced: dict[str, float]
    same_feature_definitions: bool
    workdir: str
    # The candidate retrained: the one the version was, not one selected again.
    candidate: str | None = None

    @property
    def matches(self) -> bool:
        return all(
            abs(self.recorded[k] - self.reproduced.get(k, float("nan"))) <= TOLERANCE
            for k in self.recorded
        )


@contextmanager
def _state(folder: Paths) -> Iterator[None]:
    # feature_store.yaml reads LOOPLINE_HOME: point it at the scratch state while we work.
    previous = os.environ.get(STATE_ENV)
    os.environ[STATE_ENV] = str(folder.state)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(STATE_ENV, None)
        else:
            os.environ[STATE_ENV] = previous


def scratch_project(paths: Paths, version: str, snapshot: dict[str, Any]) -> Paths:
    """A throwaway project with this project's feature repo and the recorded params."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    root = paths.state / "reproduce" / f"{version.replace(':', '-')}-{stamp}"
    shutil.copytree(paths.feature_repo, root / "feature_repo")
    (root / "params.yaml").write_text(yaml.safe_dump(snapshot, sort_keys=False))
    scratch = Paths(root, root / ".loopline")
    scratch.feast_dir.mkdir(parents=True, exist_ok=True)
    return scratch


def reproduce(paths: Paths, version: str) -> Reproduction:
    """Restore the version's data from DVC, retrain with its recorded params, compare metrics.

    The recorded candidate is retrained as it is: selection weighs measured latency, which
    does not measure the same twice, so selecting again could keep another candidate.
    """
    from loopline import features, steps
    from loopline.config import Params, migrate
    from loopline.data import versioning
    from loopline.registry import RegistryView
    from loopline.training.candidates import Candidate

    with RegistryView(paths.registry_url) as registry:
        record = registry.get(version)
    lineage = record.lineage
    missing = [k for k in ("data_hash", "params_snapshot") if k not in lineage]
    if missing:
        raise ValueError(f"{version} was registered without {', '.join(missing)}: cannot reproduce")
    snapshot = migrate(lineage["params_snapshot"])
    params = Params.model_validate(snapshot)
    estimator, grid_point = lineage.get("estimator"), lineage.get("params")
    pinned = None if estimator is None else Candidate(estimator, dict(grid_point or {})).name
    cached = versioning.restore(paths, paths.raw_batch, lineage["data_hash"])
    scratch = scratch_project(paths, version, snapshot)
    scratch.raw_batch.parent.mkdir(parents=True)
    shutil.copyfile(cached, scratch.raw_batch)
    with _state(scratch):
        steps.prepare_step(params, scratch)
        steps.features_step(params, scratch, online=False)
        steps.train_step(params, scratch, pinned=pinned)
        reproduced = steps.evaluate_step(params, scratch)["holdout"]
        same = features.definition_hash(scratch, params.features.service) == lineage.get(
            "feature_definition_hash"
        )
    return Reproduction(
        version=version,
        data_hash=lineage["data_hash"],
        recorded=dict(record.metrics),
        reproduced=reproduced,
        same_feature_definitions=same,
        workdir=str(scratch.project),
        candidate=pinned,
    )
