"""The model scan: a pipeline passes; a planted payload is refused and never run."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from loopline.model_scan import UnsafeModel, read_model, scan, write_model


class Payload:
    """Unpickling this runs a shell command: what an attacker would put in a model file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def fitted() -> Pipeline:
    x = np.random.default_rng(0).normal(size=(60, 3))
    return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(
        x, (x[:, 0] > 0).astype(int)
    )


def test_a_fitted_pipeline_passes_and_loads(tmp_path: Path) -> None:
    file = tmp_path / "model.joblib"
    write_model(fitted(), file)
    report = scan(file)
    assert report.passed and report.complete, report
    assert isinstance(read_model(file, "model"), Pipeline)


def test_a_planted_payload_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    file = tmp_path / "model.joblib"
    file.write_bytes(pickle.dumps({"model": fitted(), "extra": Payload(marker)}, protocol=5))
    report = scan(file)
    assert not report.passed and report.dangerous == ["posix.system"], report
    with pytest.raises(UnsafeModel, match="refused, not loaded: .*imports that run code: posix"):
        read_model(file, "model x")
    assert not marker.exists()


def test_imports_from_outside_the_pipeline_libraries_are_refused(tmp_path: Path) -> None:
    from collections import Counter

    file = tmp_path / "model.joblib"
    file.write_bytes(pickle.dumps([fitted(), Counter("ab")], protocol=5))
    report = scan(file)
    assert report.unlisted == ["collections.Counter"] and not report.passed


def test_a_file_the_scan_cannot_read_to_its_end_is_refused(tmp_path: Path) -> None:
    # joblib writes arrays raw between pickle frames: what follows one is never walked.
    file = tmp_path / "model.joblib"
    joblib.dump(fitted(), file)
    report = scan(file)
    assert not report.complete and not report.passed
    assert "could not read the whole file" in report.summary()
