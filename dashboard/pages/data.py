"""Data: dataset versions (DVC hashes), row counts over time, schema, validation, rejections."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

import charts
from loaders import common, datasets


def data_page() -> None:
    st.title("Data")
    where = common.paths()
    current = datasets.current_data(str(where.raw_batch))
    if current is None:
        common.empty("No accepted data batch yet", "run `loopline ingest` (or `make up`)")
    else:
        cols = st.columns(3)
        cols[0].metric("Current data version", (current["data_hash"] or "not tracked")[:12])
        cols[1].metric("Rows", f"{current['rows']:,}")
        cols[2].metric("Columns", current["columns"])
        st.caption(f"{where.raw_batch.relative_to(where.project)} · DVC md5 {current['data_hash']}")

    st.subheader("Data versions")
    versions = datasets.data_versions(
        where.registry_url, str(where.raw_batch), str(where.dvc_cache)
    )
    if versions.empty:
        common.empty("No data versions recorded yet", "run `loopline ingest` or `loopline run`")
    else:
        linked(versions, st.query_params.get("data_version"))
        st.dataframe(versions, hide_index=True)
        sized = versions.dropna(subset=["rows"])
        if not sized.empty:
            st.altair_chart(
                alt.Chart(sized)
                .mark_line(point=True)
                .encode(
                    x=charts.time_x("first_seen", "first used (UTC)", sized["first_seen"]),
                    y=alt.Y("rows:Q", title="rows in the batch"),
                    tooltip=[
                        alt.Tooltip("data_hash:N", title="data version (DVC md5)"),
                        alt.Tooltip("rows:Q"),
                        alt.Tooltip("runs:Q", title="training runs"),
                        alt.Tooltip("models:Q", title="model versions"),
                    ],
                )
                .properties(height=220, title="Rows per data version over time"),
                width="stretch",
            )
        else:
            st.caption("Row counts come from DVC's cache; none of these versions is in it.")

    st.subheader("Schema")
    schema = datasets.schema(str(where.raw_batch), str(where.params_file))
    if schema.empty:
        common.empty("No batch to read a schema from", "run `loopline ingest`")
    else:
        st.dataframe(schema, hide_index=True)

    st.subheader("Validation of the current batch")
    summary = datasets.validation(str(where.artifacts))
    if summary is None:
        common.empty("No validation summary yet", "run `loopline run` (or `dvc repro validate`)")
    else:
        cols = st.columns(4)
        cols[0].metric("Rows checked", f"{summary.get('rows', 0):,}")
        cols[1].metric("Entities", f"{summary.get('entities', 0):,}")
        cols[2].metric("Label rate", f"{summary.get('label_rate', 0):.2%}")
        missing = summary.get("missing_values") or {}
        cols[3].metric("Columns with missing values", len(missing))
        st.caption(f"From {summary.get('start')} to {summary.get('end')}")
        if missing:
            st.dataframe([{"column": k, "missing": v} for k, v in missing.items()], hide_index=True)

    st.subheader("Rejected batches")
    rejected = datasets.rejected_batches(str(where.rejected))
    if rejected.empty:
        st.success("No batch has been rejected.")
    else:
        st.dataframe(rejected, hide_index=True)


def linked(versions: pd.DataFrame, data_hash: str | None) -> None:
    """What the Lineage page linked to: one data version, in a sentence."""
    chosen = versions[versions["data_hash"] == data_hash]
    if data_hash and chosen.empty:
        st.warning(f"Data version {data_hash} is not among those any run or model used.")
    elif data_hash:
        row = chosen.iloc[0]
        rows = (
            "rows unknown (not in DVC's cache)"
            if pd.isna(row["rows"])
            else f"{int(row['rows']):,} rows"
        )
        st.info(
            f"Data version `{data_hash}`: {rows}, first used {row['first_seen']:%Y-%m-%d %H:%M} "
            f"UTC, by {row['runs']} training runs and {row['models']} model versions.",
            icon=":material/link:",
        )


data_page()
