"""Lineage of the model the real flows made, and the OpenLineage events those flows sent."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
import typer
from typer.testing import CliRunner

from loopline import lineage
from loopline.lineage import openlineage
from loopline.registry import RegistryView


@pytest.fixture(scope="module")
def view(built: dict[str, Any], paths: Any) -> RegistryView:
    return RegistryView(paths.registry_url)


def flow_name(run_id: str) -> str:
    """The name of the Prefect flow a flow-run id belongs to."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
        return client.read_flow(run.flow_id).name


def test_lineage_of_the_packaged_model_is_complete(
    built: dict[str, Any], view: RegistryView, params: Any
) -> None:
    package = built["package"]
    graph = lineage.build_graph(view, package["model"])
    assert graph.missing == []
    (data,) = graph.of_kind("data")
    assert data.attributes["data_hash"] == built["data"]["version"]["data_hash"]
    assert data.attributes["data_path"] == "data/raw/dataset.parquet"
    (features,) = graph.of_kind("features")
    assert features.attributes["feature_service"] == params.features.service
    assert len(features.attributes["feature_definition_hash"]) == 16
    (run,) = graph.of_kind("run")
    # The run that made the model is the one that trained it (its runs row and its metrics).
    assert flow_name(run.attributes["flow_run_id"]) == "train"
    (model,) = graph.of_kind("model")
    assert model.attributes["tag"] == package["model"]
    assert model.attributes["metrics"] == package["metrics"]
    assert model.attributes["estimator"] in params.training.candidates
    (bento,) = graph.of_kind("bento")
    assert bento.label == package["bento"]
    assert [e.relation for e in graph.edges][:4] == ["feeds", "feeds", "produced", "packaged as"]
    text = lineage.render_text(graph)
    assert data.attributes["data_hash"] in text and package["bento"] in text


def test_the_bento_carries_an_sbom_of_its_environment(
    built: dict[str, Any], view: RegistryView
) -> None:
    import hashlib
    import importlib.metadata

    from loopline import packaging

    package = built["package"]
    (bento,) = lineage.build_graph(view, package["model"]).of_kind("bento")
    file = packaging.bento_path(package["bento"]) / bento.attributes["sbom"]
    assert hashlib.sha256(file.read_bytes()).hexdigest() == bento.attributes["sbom_sha256"]
    sbom = json.loads(file.read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.6"
    versions = {c["name"].lower(): c["version"] for c in sbom["components"]}
    assert len(versions) == bento.attributes["sbom_components"]
    for name in ("scikit-learn", "bentoml", "feast", "pandas"):
        assert versions[name] == importlib.metadata.version(name)
    purls = {c["purl"] for c in sbom["components"]}
    assert f"pkg:pypi/scikit-learn@{versions['scikit-learn']}" in purls


def test_reverse_query_finds_the_model_by_its_data_version(
    built: dict[str, Any], view: RegistryView
) -> None:
    trained = lineage.versions_for_data(view, built["data"]["version"]["data_hash"])
    assert built["package"]["model"] in [record.version for record in trained]


def runs_of(paths: Any, job: str) -> dict[str, list[dict[str, Any]]]:
    """The job's events in the OpenLineage file, grouped by run id."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for event in openlineage.read_events(paths):
        if event["job"] == {**event["job"], "namespace": "loopline", "name": job}:
            runs.setdefault(event["run"]["runId"], []).append(event)
    return runs


def versions(datasets: list[dict[str, Any]]) -> dict[str, str | None]:
    return {d["name"]: d["facets"].get("version", {}).get("datasetVersion") for d in datasets}


def test_ingest_run_events_name_the_batch_and_its_data_version(
    built: dict[str, Any], paths: Any, params: Any
) -> None:
    data_hash = built["data"]["version"]["data_hash"]
    completed = [
        events
        for events in runs_of(paths, "ingest").values()
        if versions(events[-1]["outputs"]).get("data/raw/dataset.parquet") == data_hash
    ]
    assert completed, "no ingest run wrote the data version the model was trained on"
    start, complete = completed[0]
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert flow_name(start["run"]["runId"]) == "ingest"
    assert [d["name"] for d in complete["inputs"]] == [params.dataset.source]
    assert complete["outputs"][0]["namespace"] == f"file://{paths.project.as_posix()}"


def test_train_run_events_name_features_labels_and_model(built: dict[str, Any], paths: Any) -> None:
    data_hash = built["data"]["version"]["data_hash"]
    completed = [
        events
        for events in runs_of(paths, "train").values()
        if versions(events[-1]["inputs"]).get("data/raw/dataset.parquet") == data_hash
    ]
    assert completed, "no train run read the data version the model was trained on"
    start, complete = completed[0]
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert flow_name(complete["run"]["runId"]) == "train"
    read = versions(complete["inputs"])
    assert {
        "data/features/labels.parquet",
        "data/features/customer_profile.parquet",
        "data/features/customer_activity.parquet",
    } <= set(read)
    assert [d["name"] for d in complete["outputs"]] == ["artifacts/model.joblib"]


def test_command_traces_the_packaged_model(built: dict[str, Any], paths: Any) -> None:
    from loopline.cli.lineage import lineage as lineage_command

    app = typer.Typer()
    app.command()(lineage_command)
    result = CliRunner().invoke(app, [built["package"]["model"], "--json"])
    assert result.exit_code == 0, result.stderr
    kinds = [node["kind"] for node in json.loads(result.stdout)["nodes"]]
    assert kinds[:5] == ["data", "features", "run", "model", "bento"]
    by_data = CliRunner().invoke(app, ["--data", built["data"]["version"]["data_hash"]])
    assert built["package"]["model"] in by_data.stdout
