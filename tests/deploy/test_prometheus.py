"""Prometheus's own checker on deploy/prometheus: the configs, the rules, a test per alert.

``promtool`` comes with Debian's ``prometheus`` package (``scripts/ensure_promtool.sh``,
which ``make test`` runs). A broken rule is refused with a message that names the file,
the rule and what is wrong in it.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from loopline import prometheus_local
from loopline.settings import Paths

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="no promtool: run `bash scripts/ensure_promtool.sh` as root"
)


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    command = [PROMTOOL, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def alerts() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


@needs_promtool
def test_config_is_valid() -> None:
    checked = promtool("check", "config", PROMETHEUS / "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout


@needs_promtool
def test_kubernetes_config_is_valid(tmp_path: Path) -> None:
    """Debian builds Prometheus without Kubernetes discovery, so where this promtool lacks
    it the discovery block alone is swapped for a static target and checked by hand;
    everything else (relabelling, rules, intervals) goes through promtool."""
    source = PROMETHEUS / "kubernetes.yml"
    checked = promtool("check", "config", source)
    missing = "field kubernetes_sd_configs not found"
    if checked.returncode != 0 and missing in checked.stdout + checked.stderr:
        config = yaml.safe_load(source.read_text())
        (job,) = config["scrape_configs"]
        (discovery,) = job.pop("kubernetes_sd_configs")
        assert discovery == {"role": "pod", "namespaces": {"names": ["loopline"]}}
        job["static_configs"] = [{"targets": ["10.0.0.1:3000"]}]
        shutil.copy2(PROMETHEUS / "rules.yml", tmp_path / "rules.yml")
        (tmp_path / "kubernetes.yml").write_text(yaml.safe_dump(config))
        checked = promtool("check", "config", tmp_path / "kubernetes.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_both_configs_scrape_the_same_job_with_the_same_rules() -> None:
    for name in ("prometheus.yml", "kubernetes.yml"):
        config = yaml.safe_load((PROMETHEUS / name).read_text())
        assert config["rule_files"] == ["rules.yml"], name
        jobs = [job["job_name"] for job in config["scrape_configs"]]
        assert prometheus_local.JOB in jobs, name


@needs_promtool
def test_rules_are_valid() -> None:
    checked = promtool("check", "rules", PROMETHEUS / "rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in checked.stdout


@needs_promtool
def test_rule_tests_pass() -> None:
    tested = promtool("test", "rules", PROMETHEUS / "rules_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_rule_test_that_fires_it() -> None:
    tests = yaml.safe_load((PROMETHEUS / "rules_test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    fired = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert fired == set(alerts())
    assert quiet == set(alerts())  # and each one is seen staying quiet too
    assert {"severity"} <= {k for a in alerts().values() for k in a["labels"]}
    assert all(a["annotations"].get("summary") for a in alerts().values())


def test_thresholds_are_the_ones_params_yaml_sets() -> None:
    """The rules repeat three numbers from params.yaml: the promotion gate, the labels the
    monitor needs before it judges live ROC AUC, and the monitor's interval."""
    repo = yaml.safe_load((REPO / "params.yaml").read_text())
    auc = alerts()["LooplineLiveRocAucBelowGate"]["expr"]
    gate = re.search(r"loopline_live_roc_auc\s*<\s*([\d.]+)", auc)
    labels = re.search(r"loopline_monitor_window_labels\s*>=\s*(\d+)", auc)
    assert gate and float(gate[1]) == repo["promotion"]["floors"]["roc_auc"]
    assert labels and int(labels[1]) == repo["monitoring"]["min_labels"]
    stale = alerts()["LooplineMonitorStale"]["expr"]
    interval = re.search(r">\s*3\s*\*\s*(\d+)", stale)
    assert interval and int(interval[1]) == 60 * repo["monitoring"]["interval_minutes"]


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = (PROMETHEUS / "rules.yml").read_text()
    assert text.count(old) == 1, old
    broken = tmp_path / "rules.yml"
    broken.write_text(text.replace(old, new))
    return broken


@needs_promtool
@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        # A PromQL syntax error: the file, its line, the group, the rule and the parse error.
        (
            'http_response_code=~"5.."}[5m]',
            'http_response_code=~"5.."[5m]',
            [
                'group "loopline-serving", rule 2, "LooplineHighErrorRate"',
                "could not parse expression",
            ],
        ),
        # A misspelt field: the file, the line and the field.
        ("        for: 2m\n", "        forr: 2m\n", ["line 11", "field forr not found"]),
        # A broken template: the rule and the annotation.
        (
            "humanizePercentage }}",
            "humanizePercentage }",
            ['"LooplineHighErrorRate": annotation "summary"', "template"],
        ),
    ],
    ids=["promql", "field", "template"],
)
def test_a_broken_rule_is_refused_naming_file_rule_and_field(
    tmp_path: Path, old: str, new: str, named: list[str]
) -> None:
    broken = _broken(tmp_path, old, new)
    checked = promtool("check", "rules", broken)
    assert checked.returncode != 0
    message = checked.stdout + checked.stderr
    assert str(broken) in message, message
    for part in named:
        assert part in message, message


@needs_promtool
def test_a_config_whose_rules_are_broken_is_refused(tmp_path: Path) -> None:
    _broken(tmp_path, "> 0.05", "> > 0.05")
    shutil.copy2(PROMETHEUS / "prometheus.yml", tmp_path / "prometheus.yml")
    checked = promtool("check", "config", tmp_path / "prometheus.yml")
    assert checked.returncode != 0
    assert str(tmp_path / "rules.yml") in checked.stdout + checked.stderr
    assert "LooplineHighErrorRate" in checked.stdout + checked.stderr


@needs_promtool
def test_the_config_make_up_writes_is_valid(tmp_path: Path) -> None:
    """The generated copy: the real target and scheme, the rules by absolute path."""
    paths = Paths(project=tmp_path, state=tmp_path / "state")
    written = prometheus_local.write_config(
        paths,
        "http://127.0.0.1:3123",
        source=PROMETHEUS / "prometheus.yml",
        interval="1s",
        extra_rules=[PROMETHEUS / "rules.yml"],
    )
    assert written.is_relative_to(paths.state)
    config = yaml.safe_load(written.read_text())
    (job,) = config["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:3123"]}]
    assert config["global"]["scrape_interval"] == "1s"
    assert config["rule_files"][0] == str(PROMETHEUS / "rules.yml")
    checked = promtool("check", "config", written)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_source_without_the_serving_job_is_refused_naming_it(tmp_path: Path) -> None:
    source = tmp_path / "prometheus.yml"
    source.write_text("scrape_configs:\n  - job_name: other\n")
    paths = Paths(project=tmp_path, state=tmp_path / "state")
    with pytest.raises(ValueError, match=rf"{source}.*'loopline-serving'"):
        prometheus_local.write_config(paths, "http://127.0.0.1:3000", source=source)


def test_up_goes_on_without_prometheus_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopline.platform import Service

    paths = Paths(project=tmp_path, state=tmp_path / "state")
    serving = Service("serving", None, "http://127.0.0.1:3000", tmp_path / "log")
    said: list[str] = []
    monkeypatch.setattr(prometheus_local, "binary", lambda: None)
    assert prometheus_local.start_if_present(paths, serving, said.append) is None
    monkeypatch.setattr(prometheus_local, "binary", lambda: "/usr/bin/prometheus")
    assert prometheus_local.start_if_present(paths, serving, said.append) is None
    (tmp_path / prometheus_local.SOURCE).parent.mkdir(parents=True)
    shutil.copy2(PROMETHEUS / "prometheus.yml", tmp_path / prometheus_local.SOURCE)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        assert prometheus_local.start_if_present(paths, serving, said.append, port) is None
    assert said[0].startswith("Prometheus off: no prometheus binary")
    assert "scripts/ensure_promtool.sh" in said[0]
    assert said[1] == "Prometheus off: this project has no deploy/prometheus/prometheus.yml"
    assert said[2] == f"Prometheus off: 127.0.0.1:{port} is taken (another Prometheus?)"
