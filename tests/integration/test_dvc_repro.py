"""``dvc repro`` drives the same steps and reproduces the flow's metrics."""

import json
import os
import subprocess
from typing import Any


def dvc(paths: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["dvc", *args], cwd=paths.project, capture_output=True, text=True, env=os.environ.copy()
    )


def test_repro_reproduces_metrics(built: dict[str, Any], paths: Any) -> None:
    flow_metrics = built["train"]["evaluation"]
    # The flow recorded what it published in dvc.lock (tests/integration/test_dvc_experiments).
    assert (paths.project / "dvc.lock").is_file()
    # Every stage run again by DVC, from the same data and params, gives the same metrics.
    first = dvc(paths, "repro", "--force")
    assert first.returncode == 0, first.stdout + first.stderr
    repro_metrics = json.loads((paths.artifacts / "metrics.json").read_text())
    assert repro_metrics == json.loads(json.dumps(flow_metrics))

    again = dvc(paths, "repro")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "up to date" in again.stdout
    shown = dvc(paths, "metrics", "show", "--json")
    assert str(flow_metrics["holdout"]["roc_auc"]) in shown.stdout
