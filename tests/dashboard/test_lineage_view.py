"""The lineage picture, its key–value details, and the charts' time axes and titles."""

from __future__ import annotations

from typing import Any

import pandas as pd

import charts
import lineage_view as view

RUN_ID = "0b5c6a1e-5d2c-4f4e-9f53-2f0f5b9b7c11"
PREFECT = f"http://prefect.test/runs/flow-run/{RUN_ID}"


def graph() -> dict[str, Any]:
    nodes = [
        {
            "id": "data:abc",
            "kind": "data",
            "label": "data/raw/dataset.parquet",
            "link": None,
            "attributes": {
                "data_hash": "abc123def4567890",
                "data_path": "data/raw/dataset.parquet",
            },
        },
        {
            "id": f"run:{RUN_ID}",
            "kind": "run",
            "label": f"Prefect flow run {RUN_ID}",
            "link": PREFECT,
            "attributes": {"flow_run_id": RUN_ID},
        },
        {
            "id": "model:m:1",
            "kind": "model",
            "label": 'm "1"',
            "link": None,
            "attributes": {
                "tag": "m:1",
                "stage": "production",
                "aliases": ["champion"],
                "params": {"C": 1.0, "penalty": "l2"},
                "metrics": {"roc_auc": 0.912345},
                "created_at": "2026-01-05T10:11:12.345+00:00",
                "model_sha256": "ab" * 32,
                "training": {"candidates": {"lr": {"C": [0.1, 1.0]}, "rf": {"depth": [6]}}},
            },
        },
        {
            "id": "bento:b:1",
            "kind": "bento",
            "label": "b:1",
            "link": None,
            "attributes": {"tag": "b:1"},
        },
    ]
    deployments = [
        {
            "id": f"deployment:{i}",
            "kind": "deployment",
            "label": label,
            "link": None,
            "attributes": {"at": f"2026-01-0{i}T09:00:00", "actor": "olivia", "reason": "why"},
        }
        for i, label in ((6, "candidate → production"), (7, "policy canary | 20%"))
    ]
    edges = [
        {"source": "data:abc", "target": f"run:{RUN_ID}", "relation": "feeds"},
        {"source": f"run:{RUN_ID}", "target": "model:m:1", "relation": "produced"},
        {"source": "model:m:1", "target": "bento:b:1", "relation": "packaged as"},
        *({"source": "bento:b:1", "target": d["id"], "relation": "deployed"} for d in deployments),
    ]
    return {"version": "m:1", "nodes": [*nodes, *deployments], "edges": edges, "missing": []}


def test_the_graph_runs_top_down_and_ends_in_what_it_served() -> None:
    served = [
        {"arm": "champion", "shadow": False, "predictions": 1200},
        {"arm": "challenger", "shadow": True, "predictions": 30},
    ]
    dot = view.lineage_dot(graph(), served)
    assert "rankdir=TB" in dot and "fontsize=15" in dot
    assert "m &quot;1&quot;" in dot  # HTML-escaped inside the label
    assert 'tooltip="m \\"1\\""' in dot  # quoted in a plain attribute
    assert f'URL="{PREFECT}"' in dot
    # Every deployment change goes into one node, so the graph stays one column wide.
    assert dot.count("deployment:") == 0
    assert "2 changes, latest:" in dot and "policy canary | 20%" in dot
    assert '"bento:b:1" -> "deployments"' in dot
    assert '"deployments" -> "predictions"' in dot
    assert "1,200 as champion" in dot and "30 as shadow" in dot


def test_details_are_key_value_rows_with_a_link_to_the_prefect_run() -> None:
    nodes = {n["kind"]: n for n in graph()["nodes"]}
    run = dict(view.detail_rows(nodes["run"]))
    assert run["flow run"] == f"[`{RUN_ID}`]({PREFECT}) (Prefect UI)"
    model = dict(view.detail_rows(nodes["model"]))
    assert model["params.C"] == "1.0000" and model["params.penalty"] == "l2"
    assert model["metrics.roc_auc"] == "0.9123"
    assert model["aliases"] == "champion"
    assert model["created (UTC)"] == "2026-01-05 10:11:12"
    assert model["model SHA-256"] == f"`{'ab' * 8}…`"  # shortened: the table fits the column
    assert model["training.candidates"] == "lr: C=[0.1, 1.0]; rf: depth=[6]"
    assert not any("{" in value for value in model.values())  # no raw dicts
    markdown = view.table(view.detail_rows(nodes["data"]))
    assert markdown.splitlines()[:2] == ["| field | value |", "|---|---|"]
    assert "| DVC md5 | `abc123def4567890` |" in markdown


def test_deployment_rows_are_newest_first_and_escape_pipes() -> None:
    rows = view.deployment_rows(graph())
    assert [r[0] for r in rows] == ["2026-01-07 09:00", "2026-01-06 09:00"]
    assert rows[0][1] == "policy canary \\| 20%"


def test_a_lone_point_gets_an_hour_of_utc_time_axis() -> None:
    one = pd.Series([pd.Timestamp("2026-01-05 10:11:12.190", tz="UTC")])
    x = charts.time_x("started_at", "run started (UTC)", one).to_dict()
    assert x["title"] == "run started (UTC)"
    assert x["scale"]["type"] == "utc"
    low, high = (pd.Timestamp(end) for end in x["scale"]["domain"])  # ISO: Streamlit needs them
    assert high - low == pd.Timedelta(hours=1) and low < one[0] < high
    assert x["axis"]["format"] == "%b %d %H:%M"  # minutes, never ".190"
    months = pd.Series(pd.date_range("2026-01-01", periods=60, freq="D", tz="UTC"))
    wide = charts.time_x("bin", "window start (UTC)", months).to_dict()
    assert "domain" not in wide["scale"] and wide["axis"]["format"] == "%Y-%m-%d"


def test_metric_names_read_as_words() -> None:
    assert charts.metric_label("roc_auc") == "ROC AUC"
    assert charts.metric_label("log_loss") == "log loss"
    assert charts.metric_label("fit_seconds") == "fit seconds"
