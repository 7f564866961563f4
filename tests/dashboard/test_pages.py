"""Every page on a seeded state (1,000 runs, 200 versions, 10,000 windows): the right numbers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit import dataframe_util

from loopline.registry import RegistryView
from tests.dashboard.conftest import PAGES, charts, metrics, texts
from tests.dashboard.seeding import FEATURES, PASSWORDS, Seeded, seed


def chart_data(spec: dict[str, Any]) -> Any:
    dataset = next(iter(spec["_datasets"].values()))
    return dataframe_util.convert_arrow_bytes_to_pandas_df(dataset.data.data)


def test_login_is_required_and_checks_the_password(on_seeded: Seeded, dashboard: Any) -> None:
    app = dashboard(user=None)
    assert app.title[0].value == "Loopline"
    assert not app.metric  # no page content before logging in
    app.text_input[0].input("olivia")
    app.text_input[1].input("wrong password")
    app.button[0].click().run()
    assert "Wrong user name or password." in texts(app, "error")
    app.text_input[1].input(PASSWORDS["olivia"])
    app.button[0].click().run()
    assert app.session_state["loopline_user"] == "olivia"
    assert any("Signed in as **olivia** (operator)" in c for c in texts(app.sidebar, "caption"))
    assert app.title[0].value == "Overview"


def test_overview_says_what_serves_where(on_seeded: Seeded, dashboard: Any) -> None:
    app = dashboard(page="overview")
    shown = metrics(app)
    assert shown["Production"] == on_seeded.production
    assert shown["Challenger"] == on_seeded.challenger
    assert shown["Traffic policy"] == "canary · 20% to challenger"
    assert shown["Drift share"] == f"{on_seeded.last_drift_share:.0%}"
    assert shown["Drift status"] == "DRIFT"
    live = app.dataframe[0].value.set_index("model_version")
    for version, accuracy in on_seeded.live_accuracy.items():
        assert live.loc[version, "accuracy"] == pytest.approx(accuracy)
    notes = " ".join(texts(app, "info"))
    assert "not reachable" in notes and "make up" in notes  # service down, said plainly
    assert "No Prefect server" in notes


def test_runs_filter_sort_and_compare(on_seeded: Seeded, dashboard: Any) -> None:
    app = dashboard(page="runs")
    assert f"{on_seeded.runs} of {on_seeded.runs} runs" in texts(app, "caption")[1]
    table = app.dataframe[0].value
    assert len(table) == on_seeded.runs
    assert {"param.estimator", "roc_auc", "data_hash", "feature_service"} <= set(table.columns)

    app.multiselect[1].select("random_forest").run()
    by_estimator = app.dataframe[0].value
    assert set(by_estimator["param.estimator"]) == {"random_forest"}
    assert len(by_estimator) == Counter(table["param.estimator"])["random_forest"]

    app.selectbox(key="runs_sort").select("roc_auc").run()
    ordered = app.dataframe[0].value
    assert ordered["roc_auc"].iloc[0] == ordered["roc_auc"].max()

    # By default the candidates of the runs behind the champion and the challenger, and of
    # the latest run, are compared; the champion and challenger are marked.
    app = dashboard(page="runs")
    assert app.multiselect(key="runs_compare").value[:2] == [
        on_seeded.champion_run,
        on_seeded.challenger_run,
    ]
    candidates = app.dataframe[1].value.set_index("candidate")
    assert candidates.loc[f"{on_seeded.champion_run}/random_forest-0", "role"] == "champion"
    assert candidates.loc[f"{on_seeded.challenger_run}/random_forest-0", "role"] == "challenger"
    assert candidates["ROC AUC"].str.fullmatch(r"0\.\d{4} \[0\.\d{4}, 0\.\d{4}\]").all()


def test_models_by_stage_with_gates_and_history(on_seeded: Seeded, dashboard: Any) -> None:
    app = dashboard(page="models")
    stages = Counter(r.stage.value for r in RegistryView(on_seeded.registry_url).list_versions())
    shown = metrics(app)
    for stage in ("candidate", "staging", "production", "archived"):
        assert shown[stage.capitalize()] == str(stages[stage])
    assert sum(stages.values()) == on_seeded.versions
    gates = app.dataframe[2].value
    assert set(gates["status"]) == {"PASS", "SKIP"}
    assert "floor:roc_auc" in set(gates["check"])
    history = app.dataframe[3].value
    assert set(history["version"]) == {on_seeded.production}
    assert history.iloc[0]["to_stage"] == "production"
    pending = app.dataframe[1].value
    assert (
        pending.iloc[0]["version"] == on_seeded.pending and pending.iloc[0]["approver"] == "alice"
    )


def test_drift_history_heatmap_accuracy_and_report(on_seeded: Seeded, dashboard: Any) -> None:
    app = dashboard(page="drift")
    app.button_group(key="drift_period").set_value("all").run()
    assert f"{on_seeded.windows} windows in this period" in texts(app, "caption")[0]
    share, heatmap, accuracy, confidence = charts(app)
    assert len(chart_data(share)) <= 120  # 10,000 windows binned for the browser
    cells = chart_data(heatmap)
    assert set(cells["feature"]) == set(FEATURES)
    assert cells["drifted"].between(0, 1).all()
    assert cells[cells["bin"] == cells["bin"].max()]["drifted"].mean() > 0.5  # drifting lately
    assert "promotion" in str(share)  # promotions and retrains are marked on the chart
    versions = set(
        chart_data(accuracy["vconcat"][0] | {"_datasets": accuracy["_datasets"]})["model_version"]
    )
    assert versions == set(on_seeded.live_accuracy)
    report = app.get("iframe")[0].proto
    assert "Evidently report" in report.srcdoc


def test_lineage_both_ways(on_seeded: Seeded, dashboard: Any) -> None:
    app = dashboard(page="lineage")
    dot = app.get("graphviz_chart")[0].proto.spec
    record = RegistryView(on_seeded.registry_url).get(on_seeded.production)
    for piece in (record.version, record.lineage["data_hash"], record.lineage["bento"], "churn_v1"):
        assert piece in dot
    assert f"{on_seeded.predictions[on_seeded.production]:,} as champion" in dot
    app.selectbox(key="lineage_data").select(on_seeded.data_hashes[0]).run()
    trained = RegistryView(on_seeded.registry_url).versions_trained_on(on_seeded.data_hashes[0])
    caption = texts(app, "caption")[-1]
    assert f"and {len(trained)} model versions used {on_seeded.data_hashes[0]}" in caption
    reverse = app.get("graphviz_chart")[1].proto.spec
    assert on_seeded.data_hashes[0] in reverse


def test_data_versions_schema_validation_and_rejections(on_seeded: Seeded, dashboard: Any) -> None:
    app = dashboard(page="data")
    shown = metrics(app)
    assert shown["Current data version"] == on_seeded.data_hashes[-1][:12]
    assert shown["Rows"] == f"{on_seeded.data_rows[-1]:,}"
    versions = app.dataframe[0].value.set_index("data_hash")
    for data_hash, rows in zip(on_seeded.data_hashes, on_seeded.data_rows, strict=True):
        assert versions.loc[data_hash, "rows"] == rows  # read from DVC's cache
    assert versions["current"].sum() == 1
    schema = app.dataframe[1].value.set_index("column")
    assert schema.loc["customer_id", "role"] == "entity (pseudonym)"
    assert schema.loc["plan", "role"] == "feature (categorical)"
    rejected = app.dataframe[-1].value
    assert len(rejected) == on_seeded.rejected
    assert "missing column 'plan'" in " ".join(rejected["reasons"])


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_for_a_viewer_too(on_seeded: Seeded, dashboard: Any, page: str) -> None:
    app = dashboard(user="victor", page=page)
    assert app.title[0].value
    assert not texts(app, "error")


def _axes(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every x and y encoding of a spec, through its layers and concatenations."""
    found = [spec["encoding"][c] for c in ("x", "y") if c in spec.get("encoding", {})]
    if "spec" in spec:  # a faceted chart
        found += _axes(spec["spec"])
    for key in ("layer", "vconcat", "hconcat"):
        for part in spec.get(key, []):
            found += _axes(part)
    return found


def test_every_chart_axis_is_titled_in_the_domains_words(on_seeded: Seeded, dashboard: Any) -> None:
    runs = dashboard(page="runs")
    drift = dashboard(page="drift")
    drift.button_group(key="drift_period").set_value("all").run()
    pages = [runs, drift, dashboard(page="data"), dashboard(page="compare")]
    specs = [spec for page in pages for spec in charts(page)]
    # runs: over time, scatter, parallel, ROC, PR, calibration, confusion, importance,
    # segments; drift: share, heatmap, accuracy, confidence; data: one; compare: curves
    assert len(charts(runs)) == 9 and len(charts(drift)) == 4 and len(specs) >= 17
    for spec in specs:
        for axis in _axes(spec):
            title = axis.get("title")
            assert title and "_" not in title and "." not in title, (spec.get("title"), axis)
    started = charts(runs)[0]["encoding"]
    assert started["x"]["title"] == "run started (UTC)" and started["x"]["scale"]["type"] == "utc"
    assert started["y"]["title"] == "ROC AUC on the holdout"
    assert {a["title"] for a in _axes(charts(drift)[0])} >= {"window start (UTC)"}


def test_lineage_details_are_tables_with_links(
    on_seeded: Seeded, dashboard: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.test/api")
    app = dashboard(page="lineage")
    record = RegistryView(on_seeded.registry_url).get(on_seeded.production)
    shown = "\n".join(m.value for m in app.markdown)
    assert "| field | value |" in shown
    run = record.lineage["flow_run_id"]
    assert f"[`{run}`](http://prefect.test/runs/flow-run/{run})" in shown
    assert f"| DVC md5 | `{record.lineage['data_hash']}` |" in shown
    assert f"| tag | `{record.lineage['bento']}` |" in shown
    assert "| when (UTC) | change | by | why |" in shown  # the deployment history
    assert "{'" not in shown and '{"' not in shown  # no raw dicts
    links = {link.proto.label: link.proto.query_string for link in app.get("page_link")}
    data_link = links["This data version on the Data page"]
    assert data_link == f"data_version={record.lineage['data_hash']}"
    assert links[f"Gates and history of {record.version}"].startswith("version=")


def test_a_data_version_linked_from_lineage_is_described(on_seeded: Seeded, dashboard: Any) -> None:
    app = dashboard(page="data")
    app.query_params["data_version"] = on_seeded.data_hashes[0]
    app.run()
    note = next(t for t in texts(app, "info") if on_seeded.data_hashes[0] in t)
    assert f"{on_seeded.data_rows[0]:,} rows" in note and "training runs" in note


def test_one_run_reads_as_a_date_not_milliseconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dashboard: Any
) -> None:
    import streamlit as st

    small = seed(tmp_path / "one", runs=1, versions=30, windows=30, data_versions=1)
    monkeypatch.setenv("LOOPLINE_PROJECT", str(small.project))
    monkeypatch.setenv("LOOPLINE_HOME", str(small.state))
    st.cache_data.clear()
    x = charts(dashboard(page="runs"))[0]["encoding"]["x"]
    low, high = (pd.Timestamp(end) for end in x["scale"]["domain"])
    assert high - low == pd.Timedelta(hours=1)  # an hour around the run, ticked in minutes
    assert x["axis"]["format"] == "%b %d %H:%M" and x["title"] == "run started (UTC)"
