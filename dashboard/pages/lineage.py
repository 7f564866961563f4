"""Lineage: from a data version through features, run, model and Bento to what it served."""

from __future__ import annotations

import streamlit as st

import lineage_view as view
from loaders import common, datasets, predictions, registry, runs


def lineage() -> None:
    st.title("Lineage")
    where = common.paths()
    url = where.registry_url
    versions = registry.versions(url)
    if versions.empty:
        common.empty("No model versions yet", "run `loopline run` or `make up`")
        return
    forward, backward = st.tabs(["What a model version was made from", "What used a data version"])

    with forward:
        name = common.params(str(where.params_file)).serving.model_name
        production = registry.serving_state(url, name)["production"]
        choices = versions["version"].tolist()
        first = choices.index(production) if production in choices else 0
        version = st.selectbox("Model version", choices, index=first, key="lineage_version")
        graph = registry.lineage_graph(url, version)
        counts = predictions.prediction_counts(str(where.serving_log))
        served = counts[counts["model_version"] == version].to_dict("records")
        picture, details = st.columns([2, 3], gap="large")
        with picture:
            # At its own size rather than stretched to the column: the labels keep their size.
            st.graphviz_chart(view.lineage_dot(graph, served), width="content")
            if graph["missing"]:
                st.caption(f"Not recorded for this version: {', '.join(graph['missing'])}.")
            if not served:
                st.caption("No predictions from this version are in the log.")
        with details:
            view.show_details(graph)

    with backward:
        known = datasets.data_versions(url, str(where.raw_batch), str(where.dvc_cache))
        if known.empty:
            common.empty("No data versions recorded yet", "run `loopline ingest` or `loopline run`")
            return
        picked = st.selectbox(
            "Data version (DVC hash)", known["data_hash"].tolist(), key="lineage_data"
        )
        trained = registry.versions_for_data(url, picked)
        models = versions[versions["version"].isin(trained)][
            ["version", "stage", "created_at", "estimator"]
        ]
        every_run = runs.runs(url)
        used = every_run[every_run["data_hash"] == picked] if not every_run.empty else every_run
        st.graphviz_chart(view.reverse_dot(picked, len(used), models), width="content")
        st.caption(f"{len(used)} training runs and {len(models)} model versions used {picked}.")
        st.dataframe(models, hide_index=True)


lineage()
