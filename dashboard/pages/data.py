"""Data: dataset versions (DVC hashes), row counts over time, schema, validation, rejections."""

from __future__ import annotations

import altair as alt
import streamlit as st

import loaders as data


def data_page() -> None:
    st.title("Data")
    where = data.paths()
    current = data.current_data(str(where.raw_batch))
    if current is None:
        data.empty("No accepted data batch yet", "run `loopline ingest` (or `make up`)")
    else:
        cols = st.columns(3)
        cols[0].metric("Current data version", (current["data_hash"] or "not tracked")[:12])
        cols[1].metric("Rows", f"{current['rows']:,}")
        cols[2].metric("Columns", current["columns"])
        st.caption(f"{where.raw_batch.relative_to(where.project)} · DVC md5 {current['data_hash']}")

    st.subheader("Data versions")
    versions = data.data_versions(where.registry_url, str(where.raw_batch), str(where.dvc_cache))
    if versions.empty:
        data.empty("No data versions recorded yet", "run `loopline ingest` or `loopline run`")
    else:
        st.dataframe(versions, hide_index=True)
        sized = versions.dropna(subset=["rows"])
        if not sized.empty:
            st.altair_chart(
                alt.Chart(sized)
                .mark_line(point=True)
                .encode(
                    x=alt.X("first_seen:T", title="first used"),
                    y=alt.Y("rows:Q", title="rows"),
                    tooltip=[
                        alt.Tooltip(f) for f in ("data_hash:N", "rows:Q", "runs:Q", "models:Q")
                    ],
                )
                .properties(height=220, title="Rows per data version over time"),
                width="stretch",
            )
        else:
            st.caption("Row counts come from DVC's cache; none of these versions is in it.")

    st.subheader("Schema")
    schema = data.schema(str(where.raw_batch), str(where.params_file))
    if schema.empty:
        data.empty("No batch to read a schema from", "run `loopline ingest`")
    else:
        st.dataframe(schema, hide_index=True)

    st.subheader("Validation of the current batch")
    summary = data.validation(str(where.artifacts))
    if summary is None:
        data.empty("No validation summary yet", "run `loopline run` (or `dvc repro validate`)")
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
    rejected = data.rejected_batches(str(where.rejected))
    if rejected.empty:
        st.success("No batch has been rejected.")
    else:
        st.dataframe(rejected, hide_index=True)


data_page()
