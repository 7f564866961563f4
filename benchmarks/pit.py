"""Point-in-time retrieval: Feast's feature service against the same join written in DuckDB.

Engines:

``loopline``        the project's offline store (``loopline.feast_store.LooplineOfflineStore``,
                    ASOF joins) through ``features.historical_features``, i.e. Feast's own API
``loopline_views``  the same on a feature service of the batch views only: the store without
                    Feast's python-mode on-demand view, which turns the whole result into
                    Python lists (it needed more than 14 GiB at 10M rows)
``feast``           ``loopline``'s call with Feast's own ``duckdb`` offline store in its place
``duckdb``          the join hand-written as DuckDB ASOF joins (``asof_sql``): the baseline

Subcommands, each run by ``run.py`` in its own process so peak memory is per join:

``prepare``  generate big feature sources, register the definitions, sample entity frames
``join``     one timed join (``--engine``) of one entity frame; saves its output
``verify``   compare one engine's output with the hand-written join's, row by row

The project copy for this part is separate from the demo's, so its sources are not
overwritten while the serving benchmark reads the demo's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchutil import peak_rss_mib, reset_peak_rss, rss_mib, say, write_result

WARMUP_ROWS = 1000
# Entity timestamps fall up to this long after a sampled source row, so the join must find
# the latest row at or before them rather than an exact match.
JITTER_SECONDS = 3 * 24 * 3600
ENGINES = ("loopline", "loopline_views", "feast", "duckdb")


def prepare(work: Path, customers: int, days: int, sizes: list[int], seed: int) -> dict[str, Any]:
    from loopline.settings import activate

    paths = activate()
    import numpy as np
    import pandas as pd

    from loopline import features
    from loopline.config import load_params
    from loopline.data.generate import Scenario, generate

    params = load_params(paths.params_file)
    dataset, g = params.dataset, params.built_in()
    started = time.perf_counter()
    scenario = Scenario(
        customers=customers,
        days=days,
        seed=seed,
        start_date=g.start_date,
        label_delay_days=dataset.label_delay_days,
        drift_day=g.drift_day,
    )
    frame = generate(scenario)
    # The types ingestion gives them (the contract coerces numeric to float, categorical to str).
    frame = frame.astype(
        {c: "float64" for c in dataset.numeric} | {c: "str" for c in dataset.categorical}
    )
    features.write_sources(frame, dataset, paths)
    features.apply(paths)
    from feast import FeatureService

    # The service's batch views without its on-demand view (this copy's registry only).
    views_service = f"{params.features.service}_views"
    views_only = FeatureService(name=views_service, features=features.batch_views(paths))
    features.feature_store(paths).apply([views_only])
    say(f"{len(frame)} source rows in {time.perf_counter() - started:.1f}s")

    views = features.batch_views(paths)
    manifest: dict[str, Any] = {
        "entity": dataset.entity,
        "timestamp": dataset.timestamp,
        "service": params.features.service,
        "views_service": views_service,
        "source_rows": len(frame),
        "customers": int(frame[dataset.entity].nunique()),
        "days": days,
        "sources": [
            {
                "name": view.name,
                "path": view.batch_source.path,
                "features": [f.name for f in view.features],
                "ttl_seconds": int(view.ttl.total_seconds()) if view.ttl else None,
            }
            for view in views
        ],
        "entity_frames": {},
    }
    keys = frame[[dataset.entity, dataset.timestamp]]
    rng = np.random.default_rng(seed)
    for size in sizes:
        picked = rng.choice(len(keys), size=size, replace=size > len(keys))
        entities = keys.iloc[picked].reset_index(drop=True)
        jitter = pd.to_timedelta(rng.integers(0, JITTER_SECONDS, size=size), unit="s")
        entities[dataset.timestamp] = entities[dataset.timestamp] + jitter
        target = work / f"entities_{size}.parquet"
        entities.to_parquet(target, index=False)
        manifest["entity_frames"][str(size)] = str(target)
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def asof_sql(manifest: dict[str, Any]) -> str:
    """One ASOF LEFT JOIN per source: the latest row at or before each entity timestamp.

    Feast also drops values older than the view's TTL and computes the on-demand view
    ``customer_ratios``; both are written out here (the ratios mirror
    feature_repo/definitions.py) so the two joins return the same columns.
    """
    entity, ts = manifest["entity"], manifest["timestamp"]
    columns, joins = [], []
    for n, source in enumerate(manifest["sources"]):
        alias = f"s{n}"
        ttl = source["ttl_seconds"]
        for name in source["features"]:
            value = f"{alias}.{name}"
            if ttl:
                value = f"CASE WHEN {alias}.{ts} >= e.{ts} - INTERVAL {ttl} SECOND THEN {value} END"
            columns.append(f"{value} AS {name}")
        path = source["path"].replace("'", "''")
        joins.append(
            f"ASOF LEFT JOIN read_parquet('{path}') {alias} "
            f"ON e.{entity} = {alias}.{entity} AND e.{ts} >= {alias}.{ts}"
        )
    return (
        f"SELECT *,\n"
        f"  coalesce(monthly_charges, 0) / (coalesce(usage_hours, 0) * 4.0 + 1.0)"
        f" AS charges_per_usage_hour,\n"
        f"  coalesce(support_tickets_30d, 0) / (coalesce(sessions_per_week, 0) + 1.0)"
        f" AS tickets_per_session\n"
        f"FROM (\n  SELECT e._row, e.{entity}, e.{ts},\n    "
        + ",\n    ".join(columns)
        + "\n  FROM entity_df e\n  "
        + "\n  ".join(joins)
        + "\n) ORDER BY _row"
    )


def _feast_duckdb_store(work: Path) -> Any:
    """``features.feature_store`` with Feast's own duckdb offline store in place of the project's.

    Everything else (registry, sources, definitions) is the project's, so the two engines
    differ only in the offline store behind ``get_historical_features``.
    """
    import os

    import yaml
    from feast import FeatureStore

    def store(paths: Any) -> Any:
        config = yaml.safe_load(
            os.path.expandvars((paths.feature_repo / "feature_store.yaml").read_text())
        )
        config["offline_store"] = {"type": "duckdb"}
        target = work / "feature_store_feast_duckdb.yaml"
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        return FeatureStore(repo_path=str(paths.feature_repo), fs_yaml_file=target)

    return store


def join(work: Path, engine: str, size: int) -> dict[str, Any]:
    manifest = json.loads((work / "manifest.json").read_text())
    if engine in ("feast", "loopline", "loopline_views"):
        from loopline.settings import activate

        paths = activate()
        import pandas as pd

        from loopline import features
        from loopline.config import load_params

        dataset = load_params(paths.params_file).dataset
        if engine == "feast":
            features.feature_store = _feast_duckdb_store(work)  # type: ignore[assignment]
        offline = features.feature_store(paths).config.offline_store.type
        say(f"{engine}: offline store {offline}")

        service = manifest["views_service" if engine == "loopline_views" else "service"]

        def run(frame: pd.DataFrame) -> pd.DataFrame:
            return features.historical_features(paths, service, frame, dataset)

        parts = _time_feast_parts()
    else:
        offline = "hand-written ASOF joins"
        parts = {}
        import duckdb
        import numpy as np
        import pandas as pd

        sql = asof_sql(manifest)
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")

        def run(frame: pd.DataFrame) -> pd.DataFrame:
            con.register("entity_df", frame.assign(_row=np.arange(len(frame))))
            try:
                return con.execute(sql).df().drop(columns="_row")
            finally:
                con.unregister("entity_df")

    entities = pd.read_parquet(manifest["entity_frames"][str(size)])
    # The first call pays lazy imports and plan setup; the benchmark is about the join.
    t = time.perf_counter()
    run(entities.head(WARMUP_ROWS))
    first_call = time.perf_counter() - t
    before = rss_mib()
    exact_peak = reset_peak_rss()
    say(f"{engine} join of {size} entity rows")
    parts.update(dict.fromkeys(parts, 0.0))  # the warm-up's share is not the join's
    t = time.perf_counter()
    out = run(entities)
    seconds = time.perf_counter() - t
    peak = peak_rss_mib()
    if len(out) != size:
        raise RuntimeError(f"{engine} returned {len(out)} rows for {size} entity rows")
    out.to_parquet(work / f"out_{engine}_{size}.parquet", index=False)
    return {
        "engine": engine,
        "offline_store": offline,
        "rows": size,
        "seconds": seconds,
        "warmup_seconds": first_call,
        "rss_before_mib": before,
        "peak_rss_mib": peak,
        "peak_is_join_only": exact_peak,
        "columns": [c for c in out.columns],
        # Through Feast: the offline store's query into Arrow, then Feast's on-demand views.
        "parts_seconds": dict(parts),
    }


def _time_feast_parts() -> dict[str, float]:
    """Seconds spent in the offline store's query and in Feast's on-demand transforms.

    Both offline stores return Feast's ``IbisRetrievalJob``; ``to_df`` runs its query into
    Arrow, then each on-demand view's ``transform_arrow``. Wrapping the two (timing only)
    shows what the store costs apart from Feast's python-mode on-demand view.
    """
    from feast.infra.offline_stores.ibis import IbisRetrievalJob
    from feast.on_demand_feature_view import OnDemandFeatureView

    spent = {"query": 0.0, "on_demand": 0.0}

    def timed(cls: Any, method: str, part: str) -> None:
        original = getattr(cls, method)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[part] += time.perf_counter() - t

        setattr(cls, method, wrapper)

    timed(IbisRetrievalJob, "_to_arrow_internal", "query")
    timed(OnDemandFeatureView, "transform_arrow", "on_demand")
    return spent


def verify(work: Path, size: int, engine: str = "feast") -> dict[str, Any]:
    """Every row and feature of ``engine``'s output and the hand-written join's must agree.

    Read one column at a time, so verifying 10M rows needs about one column of each in memory.
    """
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    manifest = json.loads((work / "manifest.json").read_text())
    mine, duck = (pq.ParquetFile(work / f"out_{e}_{size}.parquet") for e in (engine, "duckdb"))
    mine_columns, duck_columns = mine.schema_arrow.names, duck.schema_arrow.names

    def column(file: pq.ParquetFile, name: str) -> Any:
        return file.read(columns=[name]).column(0).to_pandas()

    entity, ts = manifest["entity"], manifest["timestamp"]
    names = [c for c in mine_columns if c not in (entity, ts)]
    result: dict[str, Any] = {
        "engine": engine,
        "rows": size,
        "features": names,
        "missing_in_duckdb": [c for c in names if c not in duck_columns],
        "extra_in_duckdb": [c for c in duck_columns if c not in mine_columns and c != ts],
    }
    same_keys = bool((column(mine, entity).to_numpy() == column(duck, entity).to_numpy()).all())
    bad = np.zeros(mine.metadata.num_rows, dtype=bool)
    per_column: dict[str, int] = {}
    nulls = 0
    for name in names:
        if name not in duck_columns:
            continue
        a, b = column(mine, name), column(duck, name)
        nulls += int(a.isna().sum())
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            x, y = a.to_numpy(dtype="float64"), b.to_numpy(dtype="float64")
            differs = ~np.isclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True)
        else:
            differs = ~((a.astype(object) == b.astype(object)) | (a.isna() & b.isna())).to_numpy()
        per_column[name] = int(differs.sum())
        bad |= differs
    result |= {
        "same_entity_order": same_keys,
        "mismatched_rows": int(bad.sum()),
        "mismatches_by_column": {k: v for k, v in per_column.items() if v},
        "null_values": nulls,
        "agree": same_keys and not bad.any() and not result["missing_in_duckdb"],
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=("prepare", "join", "verify"))
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--customers", type=int, default=24_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--size", type=int)
    parser.add_argument("--engine", choices=ENGINES)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.command == "prepare":
        result = prepare(args.work, args.customers, args.days, args.sizes, args.seed)
    elif args.command == "join":
        result = join(args.work, args.engine, args.size)
    else:
        result = verify(args.work, args.size, args.engine or "feast")
    write_result(args.out, result)


if __name__ == "__main__":
    main()
