"""Feast: the feature sources, the store, and the one feature service training and serving share."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopline.config import DatasetParams
from loopline.settings import Paths

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore, FeatureView

DEFINITIONS = "definitions.py"
ENTITY_TIME = "event_timestamp"  # Feast's name for the time of an entity frame's row


def load_definitions(paths: Paths) -> ModuleType:
    """Import ``feature_repo/definitions.py`` of this project (not whatever is on sys.path)."""
    file = paths.feature_repo / DEFINITIONS
    # Keyed by content too: definitions rewritten from params.yaml are read afresh.
    key = str(file).encode() + file.read_bytes() if file.is_file() else str(file).encode()
    name = f"loopline_feature_repo_{hashlib.sha1(key, usedforsecurity=False).hexdigest()[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"cannot load Feast definitions from {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def feast_objects(paths: Paths) -> list[Any]:
    """Every Feast object the definitions declare, in the order Feast applies them.

    In a run's workspace the file sources point at the run's own copies of the source files.
    """
    from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView

    kinds = (Entity, FeatureView, OnDemandFeatureView, FeatureService)
    module = load_definitions(paths)
    objects = [obj for obj in vars(module).values() if isinstance(obj, kinds)]
    if paths.workspace is None:
        return objects
    return [_in_workspace(obj, paths) if type(obj) is FeatureView else obj for obj in objects]


def _in_workspace(view: FeatureView, paths: Paths) -> FeatureView:
    import copy

    from feast import FileSource

    source = view.batch_source
    if not isinstance(source, FileSource):
        return view  # a warehouse source is read in place; runs cannot write to it
    moved = copy.copy(view)
    moved.batch_source = FileSource(
        name=source.name,
        path=str(paths.feature_sources / Path(source.path).name),
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column,
        field_mapping=source.field_mapping,
    )
    return moved


def batch_views(paths: Paths) -> list[FeatureView]:
    from feast import FeatureView

    return [obj for obj in feast_objects(paths) if type(obj) is FeatureView]


def feature_store(paths: Paths) -> FeatureStore:
    """The project's FeatureStore; LOOPLINE_HOME must be set (``settings.activate``).

    A run's workspace gets a store of its own (registry and online store in the workspace,
    the project's offline store settings): training there reads only the run's sources.
    A shared profile (``features.store``) is checked to answer first (``feast_profiles``).
    """
    from feast import FeatureStore

    from loopline import feast_profiles

    profile = feast_profiles.selected(paths)
    if paths.workspace is not None:
        base = _run_config(paths)
    else:
        paths.feast_dir.mkdir(parents=True, exist_ok=True)
        base = paths.feature_repo / "feature_store.yaml"
    if profile.shared:
        config = feast_profiles.repo_config(profile, base, paths)
        return FeatureStore(repo_path=str(paths.feature_repo), config=config)
    return FeatureStore(repo_path=str(paths.feature_repo), fs_yaml_file=base)


def _run_config(paths: Paths) -> Path:
    import os

    import yaml

    assert paths.workspace is not None
    folder = paths.workspace / "feast"
    target = folder / "feature_store.yaml"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(
        os.path.expandvars((paths.feature_repo / "feature_store.yaml").read_text())
    )
    config["registry"] = str(folder / "registry.db")
    config["online_store"] = {"type": "sqlite", "path": str(folder / "online_store.db")}
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def write_sources(
    frame: pd.DataFrame | Path, dataset: DatasetParams, paths: Paths
) -> dict[str, int]:
    """Split an ingested batch into one parquet per feature view, as its source declares.

    ``frame`` is the batch, or the Parquet file holding it: then each view's columns are
    copied a row group at a time, never the whole batch at once.
    """
    import pyarrow.parquet as pq

    from loopline import feast_profiles

    # A shared store that does not answer fails the step before any source is rewritten.
    feast_profiles.check(feast_profiles.selected(paths))
    written: dict[str, int] = {}
    keys = [dataset.entity, dataset.timestamp]
    names = list(frame.columns) if isinstance(frame, pd.DataFrame) else pq.read_schema(frame).names
    for view in batch_views(paths):
        columns = keys + [f.name for f in view.features]
        missing = [c for c in columns if c not in names]
        if missing:
            raise ValueError(
                f"feature view {view.name!r} needs columns the dataset lacks: {missing}; "
                "params.yaml and feature_repo/definitions.py disagree"
            )
        target = Path(getattr(view.batch_source, "path", ""))
        if not target.suffix:
            raise ValueError(f"feature view {view.name!r} has no file source to write")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(frame, pd.DataFrame):
            frame[columns].to_parquet(target, index=False)
            written[view.name] = len(frame)
        else:
            written[view.name] = _copy_columns(frame, columns, target)
    return written


def _copy_columns(source: Path, columns: list[str], target: Path) -> int:
    """``columns`` of a Parquet file into another, row group by row group: the file that
    ``read_parquet(source)[columns].to_parquet(target, index=False)`` would write."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = pq.ParquetFile(source)
    # pandas' description of the file, narrowed to these columns: they read back as they were.
    described = dict(file.schema_arrow.metadata or {})
    if b"pandas" in described:
        pandas_meta = json.loads(described[b"pandas"])
        pandas_meta["columns"] = [c for c in pandas_meta["columns"] if c["name"] in columns]
        described[b"pandas"] = json.dumps(pandas_meta).encode()
    partial = target.with_name(f".{target.name}.partial")
    rows = 0
    schema = pa.schema([file.schema_arrow.field(c) for c in columns], metadata=described)
    with pq.ParquetWriter(partial, schema) as writer:
        for group in range(file.num_row_groups):
            table = file.read_row_group(group, columns=columns)
            writer.write_table(table.replace_schema_metadata(described))
            rows += table.num_rows
    partial.replace(target)
    return rows


def label_events(frame: pd.DataFrame, dataset: DatasetParams) -> pd.DataFrame:
    """Known labels at their own timestamps: the entity frame for point-in-time joins.

    ``dataset.label_sampling`` decides which labelled rows are kept: all of them, or one every
    N days per entity (counted from the batch's first day, offset by the entity id so that
    not every entity is sampled on the same days).
    """
    known = frame[frame[dataset.label].notna()]
    sampling = dataset.label_sampling
    if sampling != "all":
        day = (known[dataset.timestamp] - known[dataset.timestamp].min()).dt.days
        known = known[(day + known[dataset.entity]) % sampling.every_days == 0]
    events = known[[dataset.entity, dataset.timestamp, dataset.label]].copy()
    events[dataset.label] = events[dataset.label].astype("int64")
    return events.reset_index(drop=True)


def apply(paths: Paths) -> list[str]:
    """Register the definitions with the Feast registry; returns the names applied.

    With the PostgreSQL profile the file sources are first loaded into tables and the views
    registered with those (``feast_pg_sources``): its offline store reads nothing else.
    """
    from loopline import feast_profiles

    objects = feast_objects(paths)
    store = feature_store(paths)
    profile = feast_profiles.selected(paths)
    if profile.postgres is not None:
        from loopline.feast_pg_sources import in_postgres

        objects = in_postgres(objects, profile.postgres, profile.namespace)
    store.apply(objects)
    return [obj.name for obj in objects]


def materialize(paths: Paths, start: datetime, end: datetime) -> None:
    """Load feature values between two instants into the online store."""
    from loopline import console

    store = feature_store(paths)
    # Feast prints a banner and a bar per view: the step's own line replaces them.
    with console.step("materializing features into the online store"):
        store.materialize(start_date=start, end_date=end)


def stored_feature_names(store: FeatureStore) -> set[str]:
    """Features the online store holds (not on-demand ones, which compute even for strangers).

    A customer the store has never seen comes back with all of these null: that is how
    serving and batch scoring tell an unknown entity from a known one.
    """
    return {f.name for view in store.list_feature_views() for f in view.features}


def service(store: FeatureStore, name: str) -> FeatureService:
    # Feast re-reads its registry on every call unless told to cache (0.6 ms vs 14 ms).
    return store.get_feature_service(name, allow_cache=True)


def historical_features(
    paths: Paths, service_name: str, entity_frame: pd.DataFrame, dataset: DatasetParams
) -> pd.DataFrame:
    """Point-in-time correct features for each (entity, timestamp) row, in the input's order."""
    store = feature_store(paths)
    # Feast finds the entity frame's time by this name (otherwise it guesses, and says so).
    when = {dataset.timestamp: ENTITY_TIME}
    rows = entity_frame.reset_index(drop=True).assign(_row=lambda f: range(len(f)))
    joined = store.get_historical_features(
        entity_df=rows.rename(columns=when), features=service(store, service_name)
    ).to_df()
    joined = joined.rename(columns={v: k for k, v in when.items()})
    # Feast's stores need not keep entity_df order (Loopline's does: then nothing is sorted,
    # which at 10M rows saves 8 s): restore it through the row id.
    if len(joined) != len(rows) or not joined["_row"].is_monotonic_increasing:
        joined = joined.sort_values("_row").reset_index(drop=True)
        rows = rows.iloc[joined["_row"].to_numpy()].reset_index(drop=True)
    # Nor the entity columns' types (PostgreSQL's store hands times back naive, in µs, and
    # merges with the labels then fail): they are the caller's, taken back by row id too.
    for column in entity_frame.columns:
        joined[column] = rows[column]
    return joined.drop(columns="_row")


def online_features(
    store: FeatureStore, service_name: str, entity: str, ids: list[int]
) -> dict[str, list[Any]]:
    """Latest feature values for entities, through the feature service."""
    response = store.get_online_features(
        features=service(store, service_name), entity_rows=[{entity: i} for i in ids]
    )
    return response.to_dict()


def definition_hash(paths: Paths, service_name: str) -> str:
    """A stable hash of what the feature service computes, for lineage.

    It covers each view's name, entities, fields, ttl and (for on-demand views) the
    transformation's source, but not where the source files live: the same definitions
    in another checkout hash the same.
    """
    store = feature_store(paths)
    svc = service(store, service_name)
    parts: list[str] = [svc.name]
    for projection in sorted(svc.feature_view_projections, key=lambda p: p.name):
        parts.append(projection.name + ":" + ",".join(sorted(f.name for f in projection.features)))
        try:
            view: Any = store.get_feature_view(projection.name)
            parts += [",".join(sorted(view.entities)), str(view.ttl)]
        except Exception:  # on-demand views live in their own namespace
            view = store.get_on_demand_feature_view(projection.name)
            parts.append(view.feature_transformation.udf_string or "")
        parts += sorted(f"{f.name}={f.dtype}" for f in view.features)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
