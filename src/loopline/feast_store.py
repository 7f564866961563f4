"""Loopline's Feast offline store: Feast's DuckDB store with a point-in-time join that scales.

Named in ``feature_repo/feature_store.yaml`` as
``offline_store: {type: loopline.feast_store.LooplineOfflineStore}``.

Feast's DuckDB store (``feast.infra.offline_stores.ibis.point_in_time_join``) joins every
entity row to every earlier source row of its key, then keeps the latest with a
``row_number()`` window over a string row id built from the entity columns: the
intermediate result is entity rows x snapshots per key, which at 1M entity rows took
minutes and ~10 GiB. Here each feature view is one DuckDB ``ASOF LEFT JOIN``, which finds
the one latest row per entity row directly, with Feast's semantics kept:

- a value whose event timestamp is before ``entity_ts - ttl`` is null (Feast filters
  ``source_ts + ttl >= entity_ts`` before choosing the latest, which selects the same row);
- of two source rows with the same key and event timestamp, the later created one wins;
- only event timestamps decide what is "at or before" (a row created after the entity
  time but stamped before it is used, as Feast does);
- entity rows with no history get nulls, and duplicate entity rows are all kept.

The join is built with the same ibis objects Feast's store uses (its source reader, its
UTC casts, its ``IbisRetrievalJob``), so ``.to_df()``/``.to_arrow()`` convert types the way
Feast's own job does and on-demand feature views run in Feast's ``RetrievalJob``.
Everything else (materialization, pulls, writes, monitoring) is inherited unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from feast.feature_view import FeatureView
from feast.infra.offline_stores import duckdb as feast_duckdb
from feast.infra.offline_stores import offline_utils
from feast.infra.offline_stores.ibis import IbisRetrievalJob, deduplicate
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from ibis.expr import datatypes as dt
from ibis.expr.types import Table
from pydantic import StrictStr

STORE_TYPE = "loopline.feast_store.LooplineOfflineStore"
ROW = "__loopline_row"  # each entity row's place, so the result comes back in that order


class LooplineOfflineStoreConfig(feast_duckdb.DuckDBOfflineStoreConfig):
    """Same settings as Feast's DuckDB store (its monitoring methods check for that class)."""

    type: StrictStr = STORE_TYPE


class LooplineOfflineStore(feast_duckdb.DuckDBOfflineStore):
    """Feast's DuckDB offline store with an ASOF-join ``get_historical_features``."""

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
        **unsupported: Any,
    ) -> RetrievalJob:
        if unsupported or entity_df is None:
            # Feast passes start_date/end_date for retrieval without an entity_df; its own
            # DuckDB store does not take them either, only with a less clear error.
            raise TypeError(
                f"{STORE_TYPE} needs an entity_df; retrieval by "
                f"{', '.join(sorted(unsupported)) or 'time range'} is not supported"
            )
        if filter_by_created_timestamp and any(
            fv.batch_source is not None and fv.batch_source.created_timestamp_column
            for fv in feature_views
        ):
            # A second inequality (created <= entity time) is beyond one ASOF join: let
            # Feast's own join answer rather than answer differently.
            return feast_duckdb.DuckDBOfflineStore.get_historical_features(
                config,
                feature_views,
                feature_refs,
                entity_df,
                registry,
                project,
                full_feature_names=full_feature_names,
                filter_by_created_timestamp=True,
            )
        feast_duckdb._validate_lance_feature_views(feature_views)
        entities, when, keys, span = _entity_table(entity_df)
        joined = _asof_join(config, entities, when, feature_views, feature_refs, full_feature_names)
        # In the entity rows' order, which Feast's own store does not keep: sorting 10M rows
        # here costs a fraction of what sorting the pandas result by a row id would.
        joined = joined.order_by(ROW).drop(ROW)

        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        for odfv in odfvs:
            if odfv.mode == "substrait":  # the only kind Feast applies inside the query
                joined = odfv.transform_ibis(joined, full_feature_names)
        store = config.offline_store
        join_keys = {
            fv.projection.join_key_map.get(c.name, c.name)
            for fv in feature_views
            for c in fv.entity_columns
        }
        return IbisRetrievalJob(
            joined,
            [_Narrowed(odfv, join_keys) for odfv in odfvs if odfv.mode != "substrait"],
            full_feature_names,
            metadata=RetrievalMetadata(
                features=feature_refs,
                keys=keys,
                min_event_timestamp=span[0],
                max_event_timestamp=span[1],
            ),
            data_source_writer=feast_duckdb._write_data_source,
            staging_location=store.staging_location,
            staging_location_endpoint_override=store.staging_location_endpoint_override,
            repo_path=str(config.repo_path),
        )


def _entity_table(
    entity_df: pd.DataFrame | str,
) -> tuple[Table, str, list[str], tuple[datetime | None, datetime | None]]:
    """The entity rows as an ibis table, their time column, other columns, and time range."""
    if isinstance(entity_df, pd.DataFrame):
        when = offline_utils.infer_event_timestamp_from_entity_df(dict(entity_df.dtypes.items()))
        times = entity_df[when].infer_objects()
        if pd.api.types.is_string_dtype(times) or pd.api.types.is_object_dtype(times):
            # Feast parses text times as UTC; a shallow copy keeps the caller's frame as it was.
            times = pd.to_datetime(times, utc=True)
            entity_df = entity_df.copy(deep=False)
            entity_df[when] = times
        span = (_as_datetime(times.min()), _as_datetime(times.max()))
        keys = [c for c in entity_df.columns if c != when]
        numbered = entity_df.assign(**{ROW: np.arange(len(entity_df), dtype="int64")})
        return ibis.memtable(numbered), when, keys, span
    if isinstance(entity_df, str):
        # Feast's DuckDB store takes only DataFrames. A query is cheap to add: DuckDB runs it
        # on the connection Feast's source reader uses, into Arrow (never pandas).
        rows = ibis.get_backend().con.sql(entity_df).to_arrow_table()
        when = _sql_time_column(rows.schema)
        keys = list(rows.column_names)
        table = ibis.memtable(rows.append_column(ROW, pa.array(np.arange(rows.num_rows))))
        if not pa.types.is_timestamp(rows.schema.field(when).type):
            table = table.mutate(**{when: table[when].cast(dt.Timestamp(timezone="UTC"))})
        bounds = pc.min_max(table.select(when).to_pyarrow()[when])
        span = (_as_datetime(bounds["min"].as_py()), _as_datetime(bounds["max"].as_py()))
        return table, when, [c for c in keys if c != when], span
    raise TypeError(
        f"{STORE_TYPE} needs entity_df as a pandas DataFrame or an SQL query, "
        f"not {type(entity_df).__name__}"
    )


def _sql_time_column(schema: pa.Schema) -> str:
    """Feast's rule for DataFrames: ``event_timestamp``, else the one timestamp column."""
    default = offline_utils.DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL
    if default in schema.names:
        return default
    stamps = [f.name for f in schema if pa.types.is_timestamp(f.type)]
    if len(stamps) != 1:
        raise ValueError(
            f"the entity query needs a column named {default!r} or exactly one timestamp "
            f"column; it has {stamps or 'none'}"
        )
    return stamps[0]


def _as_datetime(value: Any) -> datetime | None:
    return None if pd.isna(value) else pd.Timestamp(value).to_pydatetime()


def _asof_join(
    config: RepoConfig,
    entities: Table,
    when: str,
    feature_views: list[FeatureView],
    feature_refs: list[str],
    full_feature_names: bool,
) -> Table:
    """Entity columns, then each view's requested features, as Feast's join orders them."""
    joined = entities
    outputs: dict[str, Any] = {}
    for n, view in enumerate(feature_views):
        join_keys = view.projection.join_key_map or {e.name: e.name for e in view.entity_columns}
        source, timestamp = _view_rows(config, view, list(join_keys))
        prefix = view.projection.name_to_use()
        features = [r.split(":", 1)[1] for r in feature_refs if r.startswith(f"{prefix}:")]
        # Internal names per view, so no view's columns collide with another's or the entity's.
        ts_col = f"__loopline_ts_{n}"
        renamed = {ts_col: timestamp}
        renamed |= {f"__loopline_k{n}_{i}": k for i, k in enumerate(join_keys)}
        renamed |= {f"__loopline_f{n}_{i}": f for i, f in enumerate(features)}
        right = source.select(**{new: source[old] for new, old in renamed.items()})
        predicates = [
            joined[entity_col] == right[f"__loopline_k{n}_{i}"]
            for i, entity_col in enumerate(join_keys.values())
        ]
        joined = joined.asof_join(right, on=joined[when] >= right[ts_col], predicates=predicates)
        # Feast's full names use the view's name without a version suffix.
        base = view.projection.name_alias or view.name
        for i, feature in enumerate(features):
            value = joined[f"__loopline_f{n}_{i}"]
            if view.ttl:
                alive = joined[ts_col] + ibis.literal(view.ttl) >= joined[when]
                value = alive.ifelse(value, ibis.null(value.type()))
            outputs[f"{base}__{feature}" if full_feature_names else feature] = value
    return joined.select(*entities.columns, **outputs)


def _view_rows(config: RepoConfig, view: FeatureView, join_keys: list[str]) -> tuple[Table, str]:
    """A view's source as Feast reads it: field mapping applied, timestamps cast to UTC,
    and one row per (key, event timestamp), the last created, so the ASOF join's choice
    among rows of equal timestamp is the one Feast's ``ORDER BY ts DESC, created DESC`` makes.
    """
    source = view.batch_source
    if source is None:
        raise ValueError(f"feature view {view.name!r} has no batch_source and cannot be queried")
    table = feast_duckdb._read_data_source(source, str(config.repo_path))
    # field_mapping is source name -> feature name, as Feast applies it.
    table = table.rename(
        {new: old for old, new in source.field_mapping.items() if old in table.columns}
    )
    stamps = [source.timestamp_field]
    if source.created_timestamp_column:
        stamps.append(source.created_timestamp_column)
    utc = dt.Timestamp(timezone="UTC")
    table = table.mutate(**{c: table[c].cast(utc) for c in stamps})
    if source.created_timestamp_column:
        table = deduplicate(
            table=table,
            group_by_cols=[*join_keys, source.timestamp_field],
            event_timestamp_col=source.timestamp_field,
            created_timestamp_col=source.created_timestamp_column,
        )
    return table, source.timestamp_field


def _odfv_inputs(odfv: OnDemandFeatureView) -> set[str]:
    """The columns an on-demand view reads, under short and full names."""
    names: set[str] = set()
    for projection in odfv.source_feature_view_projections.values():
        for feature in projection.features:
            names |= {feature.name, f"{projection.name_to_use()}__{feature.name}"}
    for request in odfv.source_request_sources.values():
        names |= {field.name for field in request.schema}
    return names


class _Narrowed:
    """An on-demand view whose transformation sees only the columns it reads.

    Feast hands a python-mode view the whole joined result as Python lists
    (``to_pydict()``): every view's features, the entity rows' own columns and their
    timestamps, which alone cost 6 s per million rows to become ``datetime`` objects. A
    transformation is given what Feast's online path gives it, its declared inputs and the
    entity keys, and nothing else; what it returns is what it returned.
    """

    def __init__(self, odfv: OnDemandFeatureView, join_keys: set[str]) -> None:
        self._odfv = odfv
        self._keep = _odfv_inputs(odfv) | join_keys

    def transform_arrow(self, table: pa.Table, full_feature_names: bool = False) -> pa.Table:
        keep = [c for c in table.column_names if c in self._keep]
        return self._odfv.transform_arrow(table.select(keep), full_feature_names)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._odfv, name)
