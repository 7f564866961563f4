"""Lineage graphs from a registry populated by hand, OpenLineage run events, and the CLI."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from loopline import lineage
from loopline.cli.lineage import lineage as lineage_command
from loopline.lineage import openlineage
from loopline.registry import InvalidInput, Registry, UnknownVersion
from loopline.settings import Paths

MODEL = "churn"
V1, V2, BARE = "churn:v1", "churn:v2", "churn:bare"
RUN_ID = "0b5e1c1a-2f43-4c5e-9a59-7d2a4cfa1b01"


def made_from(data_hash: str, bento: str) -> dict[str, Any]:
    return {
        "data_hash": data_hash,
        "data_path": "data/raw/dataset.parquet",
        "data_git_rev": "1a2b3c4d",
        "feature_service": "churn_v1",
        "feature_definition_hash": "9f8e7d6c5b4a3210",
        "estimator": "hist_gradient_boosting",
        "params": {"learning_rate": 0.1},
        "training": {"metric": "roc_auc"},
        "code_commit": "abc123+dirty",
        "flow_run_id": RUN_ID,
        "created_at": "2025-01-01T00:00:00+00:00",
        "bento": bento,
        "model_sha256": "0" * 64,
    }


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """v1 served (challenger, then champion) until v2 replaced it; BARE has no lineage."""
    registry = Registry(f"sqlite:///{tmp_path}/r.db")
    registry.upgrade()
    metrics = {"roc_auc": 0.81}
    registry.register(MODEL, V1, metrics=metrics, lineage=made_from("h1", "svc:b1"), actor="ci")
    registry.transition(V1, "staging", actor="ana", reason="gates passed", gate_results=[])
    registry.set_policy(MODEL, "canary", 0.1, actor="ana", reason="before v1 serves")
    registry.set_challenger(MODEL, V1, actor="ana", reason="try v1 on 10%")
    registry.set_policy(MODEL, "canary", 0.2, actor="ana", reason="v1 looks fine")
    registry.transition(V1, "production", actor="bo", reason="v1 wins", gate_results=[])
    registry.register(MODEL, V2, metrics=metrics, lineage=made_from("h2", "svc:b2"), actor="ci")
    registry.transition(V2, "staging", actor="ana", reason="gates passed")
    registry.transition(V2, "production", actor="bo", reason="v2 wins")
    registry.set_policy(MODEL, "single", 0.0, actor="bo", reason="after v1 served")
    registry.register(MODEL, BARE, metrics={}, lineage={}, actor="ci")
    return registry


def test_graph_chains_data_to_bento_then_deployments(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    graph = lineage.build_graph(registry, V1)
    kinds = [node.kind for node in graph.nodes]
    assert kinds[:5] == ["data", "features", "run", "model", "bento"]
    assert graph.missing == []
    chain = [(e.source, e.target) for e in graph.edges][:4]
    assert chain == [(a.id, b.id) for a, b in zip(graph.nodes[:4], graph.nodes[1:5], strict=True)]
    bento = graph.of_kind("bento")[0]
    assert {e.source for e in graph.edges if e.target.startswith("deployment:")} == {bento.id}

    data = graph.of_kind("data")[0].attributes
    assert data == {
        "data_hash": "h1",
        "data_path": "data/raw/dataset.parquet",
        "data_git_rev": "1a2b3c4d",
    }
    assert graph.of_kind("features")[0].attributes["feature_definition_hash"] == "9f8e7d6c5b4a3210"
    run = graph.of_kind("run")[0]
    assert run.attributes["flow_run_id"] == RUN_ID
    assert run.link is None
    model = graph.of_kind("model")[0].attributes
    assert model["stage"] == "archived"
    assert model["metrics"] == {"roc_auc": 0.81}
    assert model["estimator"] == "hist_gradient_boosting"
    assert model["code_commit"] == "abc123+dirty"
    assert bento.label == "svc:b1"


def test_deployments_say_who_when_why_and_from_to(registry: Registry) -> None:
    deployments = lineage.build_graph(registry, V1).of_kind("deployment")
    seen = [
        (d.attributes["action"], d.attributes["from_stage"], d.attributes["to_stage"])
        for d in deployments
    ]
    # The policy set before v1 served and the one after it was archived are not v1's.
    assert seen == [
        ("transition", "candidate", "staging"),
        ("alias_set", None, None),
        ("policy_set", None, None),
        ("alias_cleared", None, None),
        ("transition", "staging", "production"),
        ("transition", "production", "archived"),
    ]
    assert [d.attributes["actor"] for d in deployments] == ["ana", "ana", "ana", "bo", "bo", "bo"]
    assert deployments[2].attributes["reason"] == "v1 looks fine"
    assert deployments[2].label == "policy canary (challenger share 20%)"
    assert deployments[-1].attributes["reason"] == f"replaced in production by {V2}"
    assert all(d.attributes["at"] for d in deployments)
    seqs = [d.attributes["seq"] for d in deployments]
    assert seqs == sorted(seqs)


def test_policy_changes_belong_to_the_version_serving_then(registry: Registry) -> None:
    reasons = [
        d.attributes["reason"] for d in lineage.build_graph(registry, V2).of_kind("deployment")
    ]
    assert reasons == ["gates passed", "v2 wins", "after v1 served"]


def test_run_links_to_the_prefect_ui_when_an_api_is_set(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_UI_URL", raising=False)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api/")
    run = lineage.build_graph(registry, V1).of_kind("run")[0]
    assert run.link == f"http://127.0.0.1:4200/runs/flow-run/{RUN_ID}"


def test_unknown_version_is_the_registry_error(registry: Registry) -> None:
    with pytest.raises(UnknownVersion, match="'churn:nope'.*never registered"):
        lineage.build_graph(registry, "churn:nope")


def test_missing_lineage_is_skipped_not_invented(registry: Registry) -> None:
    graph = lineage.build_graph(registry, BARE)
    assert [node.kind for node in graph.nodes] == ["model"]
    assert graph.edges == ()
    assert graph.missing == ["data", "features", "run", "bento"]
    assert "not recorded: data, features, run, bento" in lineage.render_text(graph)


def test_versions_for_data_answers_the_reverse_question(registry: Registry) -> None:
    assert [r.version for r in lineage.versions_for_data(registry, "h1")] == [V1]
    assert [r.version for r in lineage.versions_for_data(registry, " h2 ")] == [V2]
    assert lineage.versions_for_data(registry, "unknown") == []
    with pytest.raises(InvalidInput):
        lineage.versions_for_data(registry, "  ")


def test_json_round_trips_nodes_and_edges(registry: Registry) -> None:
    graph = lineage.build_graph(registry, V1)
    payload = json.loads(json.dumps(lineage.to_json(graph)))
    assert payload["version"] == V1
    assert payload["model_name"] == MODEL
    ids = [node["id"] for node in payload["nodes"]]
    assert ids[:5] == ["data:h1", "features:churn_v1:9f8e7d6c5b4a3210", f"run:{RUN_ID}"] + [
        f"model:{V1}",
        "bento:svc:b1",
    ]
    assert all(e["source"] in ids and e["target"] in ids for e in payload["edges"])
    assert payload["edges"][0]["relation"] == "feeds"
    assert payload["missing"] == []


def test_text_is_a_tree_from_data_to_deployments(registry: Registry) -> None:
    text = lineage.render_text(lineage.build_graph(registry, V1))
    lines = text.splitlines()
    assert lines[0] == f"lineage of {V1} (model {MODEL})"
    assert lines[2:4] == ["data        data/raw/dataset.parquet", "│   DVC md5 h1"]
    for expected in ("churn_v1", RUN_ID, "svc:b1", "roc_auc 0.81", "abc123+dirty", "v1 wins"):
        assert expected in text
    assert "└── features" in text
    assert "├── " in text  # several deployments hang off the bento
    assert "staging → production  by bo" in text


# --- OpenLineage run events ---


@pytest.fixture
def project_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    for key in ("OPENLINEAGE_URL", "OPENLINEAGE_NAMESPACE", "OPENLINEAGE_DISABLED"):
        monkeypatch.delenv(key, raising=False)
    return Paths(project=tmp_path / "project", state=tmp_path / "project" / ".loopline")


def tracked(paths: Paths, relative: str, md5: str) -> Path:
    """A file with a DVC pointer next to it, as ``dvc add`` leaves it."""
    file = paths.project / relative
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("x")
    pointer = file.with_name(file.name + ".dvc")
    pointer.write_text(f"outs:\n- md5: {md5}\n  path: {file.name}\n")
    return file


def test_run_emits_start_then_complete_with_versioned_datasets(project_paths: Paths) -> None:
    paths = project_paths
    source = tracked(paths, "data/raw/dataset.parquet", "aaa111")
    inputs = [openlineage.file_dataset(paths, source)]
    outputs = [openlineage.file_dataset(paths, "artifacts/model.joblib")]
    with openlineage.lineage_run(paths, "train", inputs, outputs, run_id=RUN_ID) as run:
        run.outputs.append(openlineage.model_dataset("churn:v9"))
    start, complete = openlineage.read_events(paths)
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"] == RUN_ID
    assert start["job"] == complete["job"] | {"facets": start["job"]["facets"]}
    assert complete["job"]["namespace"] == "loopline"
    assert complete["job"]["name"] == "train"
    (read,) = complete["inputs"]
    assert read["namespace"] == f"file://{paths.project.as_posix()}"
    assert read["name"] == "data/raw/dataset.parquet"
    assert read["facets"]["version"]["datasetVersion"] == "aaa111"
    written = {
        o["name"]: o["facets"].get("version", {}).get("datasetVersion") for o in complete["outputs"]
    }
    assert written == {"artifacts/model.joblib": None, "models/churn:v9": "v9"}
    assert [o["namespace"] for o in complete["outputs"]] == [read["namespace"], "bentoml"]


def test_outputs_are_versioned_only_once_written(project_paths: Paths) -> None:
    paths = project_paths
    target = tracked(paths, "data/raw/dataset.parquet", "old")
    with openlineage.lineage_run(paths, "ingest", [], [openlineage.file_dataset(paths, target)]):
        tracked(paths, "data/raw/dataset.parquet", "new")
    start, complete = openlineage.read_events(paths)
    assert "version" not in start["outputs"][0]["facets"]
    assert complete["outputs"][0]["facets"]["version"]["datasetVersion"] == "new"


def test_failing_run_emits_fail_with_the_error_and_reraises(project_paths: Paths) -> None:
    with (
        pytest.raises(ValueError, match="bad batch"),
        openlineage.lineage_run(project_paths, "ingest", [], [], run_id=RUN_ID),
    ):
        raise ValueError("bad batch")
    start, fail = openlineage.read_events(project_paths)
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    error = fail["run"]["facets"]["errorMessage"]
    assert error["message"] == "ValueError: bad batch"
    assert error["programmingLanguage"] == "python"
    assert "raise ValueError" in error["stackTrace"]


def test_events_append_one_json_line_each(project_paths: Paths) -> None:
    for _ in range(2):
        with openlineage.lineage_run(project_paths, "train", [], []):
            pass
    lines = openlineage.events_file(project_paths).read_text().splitlines()
    assert len(lines) == 4
    runs = [json.loads(line)["run"]["runId"] for line in lines]
    assert runs[0] == runs[1] != runs[2] == runs[3]
    assert all(uuid.UUID(run) for run in runs)


def test_namespace_and_run_id_fallback(
    project_paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENLINEAGE_NAMESPACE", "team-a")
    with openlineage.lineage_run(project_paths, "train", [], [], run_id="not-a-uuid"):
        pass
    event = openlineage.read_events(project_paths)[0]
    assert event["job"]["namespace"] == "team-a"
    assert uuid.UUID(event["run"]["runId"])


def test_a_broken_transport_never_fails_the_run(
    project_paths: Paths, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 9: every send fails after the client's short retries.
    monkeypatch.setenv("OPENLINEAGE_URL", "http://127.0.0.1:9")
    with (
        caplog.at_level(logging.WARNING, logger="loopline.lineage.openlineage"),
        openlineage.lineage_run(project_paths, "train", [], []) as run,
    ):
        ran = run.job_name
    assert ran == "train"
    assert not openlineage.events_file(project_paths).exists()
    ours = [r.getMessage() for r in caplog.records if r.name == "loopline.lineage.openlineage"]
    assert [message.split(" not sent")[0] for message in ours] == [
        "OpenLineage START event of train",
        "OpenLineage COMPLETE event of train",
    ]


def test_an_unwritable_lineage_folder_never_fails_the_run(
    project_paths: Paths, caplog: pytest.LogCaptureFixture
) -> None:
    project_paths.state.mkdir(parents=True)
    project_paths.lineage_dir.write_text("a file where the folder should be")
    with (
        caplog.at_level(logging.WARNING, logger="loopline.lineage.openlineage"),
        openlineage.lineage_run(project_paths, "train", [], []),
    ):
        pass
    assert "OpenLineage events are off for this run" in caplog.text


def test_files_outside_the_project_keep_their_absolute_path(project_paths: Paths) -> None:
    outside = project_paths.project.parent / "incoming" / "batch.parquet"
    dataset = openlineage.file_dataset(project_paths, outside)
    assert (dataset.namespace, dataset.name) == ("file", outside.as_posix())
    assert openlineage.bento_dataset("svc:b1").name == "bentos/svc:b1"


# --- the command ---


@pytest.fixture
def cli(registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("LOOPLINE_PROJECT", str(tmp_path))
    monkeypatch.setenv("LOOPLINE_HOME", str(tmp_path / ".loopline"))
    monkeypatch.setenv("LOOPLINE_REGISTRY_URL", registry.url)
    app = typer.Typer()
    app.command()(lineage_command)
    return app


def test_command_prints_the_tree_or_json(cli: typer.Typer) -> None:
    text = CliRunner().invoke(cli, [V1])
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith(f"lineage of {V1}")
    as_json = CliRunner().invoke(cli, [V1, "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["nodes"][0]["attributes"]["data_hash"] == "h1"


def test_command_lists_versions_trained_on_a_data_version(cli: typer.Typer) -> None:
    found = CliRunner().invoke(cli, ["--data", "h2"])
    assert found.exit_code == 0
    assert V2 in found.stdout and V1 not in found.stdout
    as_json = CliRunner().invoke(cli, ["--data", "h1", "--json"])
    assert [v["version"] for v in json.loads(as_json.stdout)["versions"]] == [V1]
    none = CliRunner().invoke(cli, ["--data", "nope"])
    assert none.exit_code == 0
    assert "no model version was trained on data version nope" in none.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["churn:nope"], "unknown model version 'churn:nope': it was never registered"),
        ([], "give a model VERSION or --data HASH"),
        ([V1, "--data", "h1"], "give a model VERSION or --data HASH"),
    ],
)
def test_command_errors_are_clear(cli: typer.Typer, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stdout == ""


def test_command_without_a_registry_says_so(
    cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLINE_REGISTRY_URL", f"sqlite:///{tmp_path}/none/r.db")
    result = CliRunner().invoke(cli, [V1])
    assert result.exit_code == 1
    assert "no registry yet" in result.stderr
    assert not (tmp_path / "none" / "r.db").exists()
