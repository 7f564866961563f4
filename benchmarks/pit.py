"""Point-in-time retrieval: Feast's feature service against the same join written in DuckDB.

Subcommands, each run by ``run.py`` in its own process so peak memory is per join:

``prepare``  generate big feature sources, register the definitions, sample entity frames
``join``     one timed join (``--engine feast|duckdb``) of one entity frame; saves its output
``verify``   compare the two engines' outputs row by row

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
    say(f"{len(frame)} source rows in {time.perf_counter() - started:.1f}s")

    views = features.batch_views(paths)
    manifest: dict[str, Any] = {
        "entity": dataset.entity,
        "timestamp": dataset.timestamp,
        "service": params.features.service,
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


def join(work: Path, engine: str, size: int) -> dict[str, Any]:
    manifest = json.loads((work / "manifest.json").read_text())
    if engine == "feast":
        from loopline.settings import activate

        paths = activate()
        import pandas as pd

        from loopline import features
        from loopline.config import load_params

        dataset = load_params(paths.params_file).dataset

        def run(frame: pd.DataFrame) -> pd.DataFrame:
            return features.historical_features(paths, manifest["service"], frame, dataset)

    else:
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
    t = time.perf_counter()
    out = run(entities)
    seconds = time.perf_counter() - t
    peak = peak_rss_mib()
    if len(out) != size:
        raise RuntimeError(f"{engine} returned {len(out)} rows for {size} entity rows")
    out.to_parquet(work / f"out_{engine}_{size}.parquet", index=False)
    return {
        "engine": engine,
        "rows": size,
        "seconds": seconds,
        "warmup_seconds": first_call,
        "rss_before_mib": before,
        "peak_rss_mib": peak,
        "peak_is_join_only": exact_peak,
        "columns": [c for c in out.columns],
    }


def verify(work: Path, size: int) -> dict[str, Any]:
    """Every row and feature of both outputs, in entity-frame order, must agree."""
    import numpy as np
    import pandas as pd

    manifest = json.loads((work / "manifest.json").read_text())
    feast = pd.read_parquet(work / f"out_feast_{size}.parquet")
    duck = pd.read_parquet(work / f"out_duckdb_{size}.parquet")
    keys = [manifest["entity"]]
    names = [c for c in feast.columns if c not in (manifest["entity"], manifest["timestamp"])]
    result: dict[str, Any] = {
        "rows": size,
        "features": names,
        "missing_in_duckdb": [c for c in names if c not in duck.columns],
        "extra_in_duckdb": [
            c for c in duck.columns if c not in feast.columns and c != manifest["timestamp"]
        ],
    }
    same_keys = bool((feast[keys].to_numpy() == duck[keys].to_numpy()).all())
    bad = np.zeros(len(feast), dtype=bool)
    per_column: dict[str, int] = {}
    for name in names:
        if name not in duck.columns:
            continue
        a, b = feast[name], duck[name]
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
        "null_values": int(feast[names].isna().sum().sum()),
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
    parser.add_argument("--engine", choices=("feast", "duckdb"))
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.command == "prepare":
        result = prepare(args.work, args.customers, args.days, args.sizes, args.seed)
    elif args.command == "join":
        result = join(args.work, args.engine, args.size)
    else:
        result = verify(args.work, args.size)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
