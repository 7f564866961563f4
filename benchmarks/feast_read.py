"""Feast online reads of the feature service: the serving worker's call beside Feast's faster paths.

Run against a project whose demo built its state (``LOOPLINE_PROJECT``/``LOOPLINE_HOME``
point at it, as ``run.py`` sets them). Each variant of the definitions gets a private
registry and online store in a temporary folder inside the state dir, loaded from the
project's own feature sources; the project's store is never written. Measured, in process
and on one thread:

* variants: on-demand views transformed at read time, written to the online store at
  materialization (``write_to_online_store=True``), and that plus ``precompute_online=True``
  on the feature service;
* call forms on the definitions as declared: ``entity_rows`` vs the columnar form, and
  ``to_dict`` vs ``to_df``/``to_arrow``, and full feature names;
* whether every variant and form returns the same values for every entity of the store and
  for unknown ones, whether point-in-time training frames are identical, whether online
  values are what training reads at each customer's latest snapshot, and what each
  variant's materialization writes;
* the same value checks on a copy of the sources with missing measurements (NaN, which the
  data contract allows): a transformation run at materialization sees NaN where the
  read-time and training ones see ``None``.

Calls are timed in alternating blocks, so load from other processes falls on every variant
alike; every loop has a time budget and reports the calls it made (``n``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchutil import latency_summary, percentile, say, write_result

# Definition variants: (on-demand views written at materialization, precomputed service vectors).
VARIANTS: dict[str, tuple[bool, bool]] = {
    "read_time": (False, False),
    "written": (True, False),
    "written_precompute": (True, True),
}
# Call forms, measured on the definitions as declared. "rows_frame" is the serving worker's
# whole step (entity_rows -> to_dict -> DataFrame); "columns_df" produces the same frame.
FORMS = (
    "rows_dict",
    "columns_dict",
    "columns_arrow",
    "columns_dict_full",
    "rows_frame",
    "columns_df",
)
UNKNOWN = 5  # ids past the largest known one, read in every value check
HISTORICAL_ROWS = 20_000
SINGLE_BUDGET = 60.0
BATCH_BUDGET = 150.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--calls", type=int, default=1000, help="timed one-customer calls per cell")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1000, help="customers per batch call")
    parser.add_argument("--batch-calls", type=int, default=60, help="timed batch calls per cell")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    # activate() before Feast is imported: it reads its environment at import time.
    from loopline.settings import activate

    paths = activate()
    result = measure(
        paths,
        calls=args.calls,
        warmup=args.warmup,
        batch=args.batch,
        batch_calls=args.batch_calls,
        seed=args.seed,
    )
    write_result(args.out, result)
    say(f"wrote {args.out}")
    print(render(result))


def measure(
    paths: Any,
    *,
    calls: int = 1000,
    warmup: int = 100,
    batch: int = 1000,
    batch_calls: int = 60,
    seed: int = 11,
) -> dict[str, Any]:
    """Time and compare Feast's online read paths for the project's feature service."""
    import numpy as np
    import pandas as pd

    from loopline import features
    from loopline.config import load_params

    params = load_params(paths.params_file)
    entity, service_name = params.dataset.entity, params.features.service
    known = sorted(
        int(i) for i in pd.read_parquet(paths.ingested, columns=[entity])[entity].unique()
    )
    unknown = [known[-1] + n for n in range(1, UNKNOWN + 1)]
    declared = _declared_variant(features.feast_objects(paths), service_name)
    work = Path(tempfile.mkdtemp(prefix="feast_read-", dir=paths.state))
    result: dict[str, Any] = {
        "service": service_name,
        "customers": len(known),
        "declared": declared,
        "batch": batch,
        "variants": {},
    }
    try:
        stores = {}
        for name, (written, precompute) in VARIANTS.items():
            say(f"variant {name}: apply + materialize")
            stores[name], result["variants"][name] = _build(
                paths, paths, work / name, service_name, written, precompute
            )
        say("values: online for every customer, training frames, online against training")
        labels = pd.read_parquet(paths.labels)
        if len(labels) > HISTORICAL_ROWS:
            labels = labels.sample(HISTORICAL_ROWS, random_state=seed)
        checks = _value_checks(stores, paths, service_name, entity, known, unknown, labels)
        for name, check in checks.items():
            result["variants"][name] |= check

        say("call forms on the declared definitions")
        forms = _forms(stores[declared], service_name, entity)
        reference = _read(stores[declared], service_name, entity, known + unknown)
        result["forms"] = {
            name: _compare(reference, _as_dict(form(known + unknown)), entity, unknown, loose=True)
            for name, form in forms.items()
        }

        rng = np.random.default_rng(seed)
        singles = [[int(i)] for i in rng.choice(known, size=calls + warmup)]
        size = min(batch, len(known))
        batches = [
            [int(i) for i in rng.choice(known, size=size, replace=False)]
            for _ in range(batch_calls + 2)
        ]
        reads = {
            f"variant:{n}": _forms(s, service_name, entity)["rows_dict"] for n, s in stores.items()
        }
        reads |= {f"form:{n}": form for n, form in forms.items() if n != "rows_dict"}
        say(f"timing {len(reads)} cells x {calls} one-customer calls")
        result["single"] = _interleaved(reads, singles[:warmup], singles[warmup:], SINGLE_BUDGET)
        say(f"timing {len(reads)} cells x {batch_calls} calls of {size} customers")
        result["many"] = _interleaved(reads, batches[:2], batches[2:], BATCH_BUDGET)

        say("the same value checks with missing measurements in the sources")
        result["missing_inputs"] = _missing_inputs(
            paths, work / "missing", service_name, entity, known, unknown
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _declared_variant(objects: list[Any], service_name: str) -> str:
    from feast import FeatureService, OnDemandFeatureView

    written = any(o.write_to_online_store for o in objects if isinstance(o, OnDemandFeatureView))
    precompute = any(
        o.precompute_online
        for o in objects
        if isinstance(o, FeatureService) and o.name == service_name
    )
    return next(name for name, flags in VARIANTS.items() if flags == (written, precompute))


def _variant_objects(objects: list[Any], written: bool, precompute: bool) -> list[Any]:
    """Copies of the declared objects with on-demand views and services switched to a variant."""
    from feast import FeatureService, FeatureView, OnDemandFeatureView

    views = {o.name: o for o in objects if isinstance(o, FeatureView)}
    out: list[Any] = []
    replaced: dict[str, Any] = {}
    for obj in objects:
        if isinstance(obj, OnDemandFeatureView):
            view = copy.copy(obj)
            view.write_to_online_store = written
            if written:
                # Written views are keyed like their sources: by the sources' entities.
                sources = [
                    views[p.name]
                    for p in obj.source_feature_view_projections.values()
                    if p.name in views
                ]
                view.entities = sorted({e for source in sources for e in source.entities})
            replaced[obj.name] = view
            out.append(view)
        elif isinstance(obj, FeatureService):
            service = copy.copy(obj)
            service.precompute_online = precompute
            service.feature_view_projections = [copy.copy(p) for p in obj.feature_view_projections]
            service._features = [replaced.get(f.name, f) for f in obj._features]
            out.append(service)
        else:
            out.append(copy.copy(obj))
    return out


def _store_at(paths: Any, folder: Path) -> Any:
    """A FeatureStore with its own registry and online store in ``folder``."""
    import yaml
    from feast import FeatureStore

    folder.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(
        os.path.expandvars((paths.feature_repo / "feature_store.yaml").read_text())
    )
    config["registry"] = str(folder / "registry.db")
    config["online_store"] = {"type": "sqlite", "path": str(folder / "online_store.db")}
    target = folder / "feature_store.yaml"
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return FeatureStore(repo_path=str(paths.feature_repo), fs_yaml_file=target)


def _build(
    paths: Any, source_paths: Any, folder: Path, service_name: str, written: bool, precompute: bool
) -> tuple[Any, dict[str, Any]]:
    """Apply a variant and materialize the sources' whole history, as ``load_online`` does."""
    import pandas as pd

    from loopline import features

    store = _store_at(paths, folder)
    objects = _variant_objects(features.feast_objects(source_paths), written, precompute)
    started = time.perf_counter()
    store.apply(objects)
    applied = time.perf_counter() - started
    first = min(
        pd.read_parquet(v.batch_source.path, columns=[v.batch_source.timestamp_field])
        .iloc[:, 0]
        .min()
        for v in features.batch_views(source_paths)
    )
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # Feast prints progress bars
        store.materialize(first.to_pydatetime() - timedelta(seconds=1), datetime.now(UTC))
    info = {
        "apply_s": applied,
        "materialize_s": time.perf_counter() - started,
        "online_rows": _online_rows(folder / "online_store.db"),
    }
    return store, info


def _online_rows(database: Path) -> dict[str, int]:
    """Entities per online table (``..._precomputed__<service>``: precomputed vectors)."""
    with contextlib.closing(sqlite3.connect(database)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            t: conn.execute(f'SELECT COUNT(DISTINCT entity_key) FROM "{t}"').fetchone()[0]
            for t in sorted(tables)
        }


def _forms(store: Any, service_name: str, entity: str) -> dict[str, Callable[[list[int]], Any]]:
    """The ways to call the read; ``rows_dict`` is the serving worker's call."""
    import pandas as pd

    # Fetched once and reused, as bentos/service.py does.
    service = store.get_feature_service(service_name)

    def rows(ids: list[int], **kw: Any) -> Any:
        entity_rows = [{entity: i} for i in ids]
        return store.get_online_features(features=service, entity_rows=entity_rows, **kw)

    def columns(ids: list[int], **kw: Any) -> Any:
        return store.get_online_features(features=service, entity_rows={entity: ids}, **kw)

    forms: dict[str, Callable[[list[int]], Any]] = {
        "rows_dict": lambda ids: rows(ids).to_dict(),
        "columns_dict": lambda ids: columns(ids).to_dict(),
        "columns_arrow": lambda ids: columns(ids).to_arrow(),
        "columns_dict_full": lambda ids: columns(ids, full_feature_names=True).to_dict(),
        "rows_frame": lambda ids: pd.DataFrame(rows(ids).to_dict()),
        "columns_df": lambda ids: columns(ids).to_df(),
    }
    assert tuple(forms) == FORMS
    return forms


def _read(store: Any, service_name: str, entity: str, ids: list[int]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = _forms(store, service_name, entity)["rows_dict"](ids)
    return out


def _as_dict(output: Any) -> dict[str, list[Any]]:
    """Any form's output as {feature: values}, with view prefixes of full names dropped."""
    if hasattr(output, "to_pydict"):  # pyarrow.Table
        output = output.to_pydict()
    elif hasattr(output, "columns"):  # DataFrame
        output = output.to_dict("list")
    return {key.split("__", 1)[-1]: list(values) for key, values in output.items()}


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _compare(
    reference: dict[str, list[Any]],
    other: dict[str, list[Any]],
    entity: str,
    unknown: Sequence[int] = (),
    *,
    loose: bool = False,
) -> dict[str, Any]:
    """Values that differ from ``reference``, per feature, counted for known and unknown entities.

    ``loose`` treats None and NaN alike: a DataFrame or an Arrow table has its own null.
    """
    if sorted(reference) != sorted(other):
        return {
            "identical": False,
            "missing": sorted(set(reference) - set(other)),
            "extra": sorted(set(other) - set(reference)),
        }
    ids = list(reference[entity])
    if list(other[entity]) != ids:
        return {"identical": False, "order": "entities come back in another order"}
    strangers = set(unknown)
    diffs: dict[str, dict[str, Any]] = {}
    for name in sorted(reference):
        counts = {"known": 0, "unknown": 0}
        examples = []
        for i, a, b in zip(ids, reference[name], other[name], strict=True):
            if a == b or (_is_null(a) and _is_null(b) and (loose or type(a) is type(b))):
                continue
            counts["unknown" if i in strangers else "known"] += 1
            if len(examples) < 3:
                examples.append([i, a, b])
        if examples:
            diffs[name] = counts | {"examples": examples}
    return {"identical": not diffs, "entities": len(ids), "differences": diffs}


def _historical(store: Any, service_name: str, entity_frame: Any) -> Any:
    """The training read (``features.historical_features``) against a variant's store."""
    rows = entity_frame.reset_index(drop=True).assign(_row=lambda f: range(len(f)))
    service = store.get_feature_service(service_name)
    joined = store.get_historical_features(entity_df=rows, features=service).to_df()
    return joined.sort_values("_row").drop(columns="_row").reset_index(drop=True)


def _frames_equal(reference: Any, other: Any) -> dict[str, Any]:
    import pandas as pd

    try:
        pd.testing.assert_frame_equal(
            reference[sorted(reference.columns)], other[sorted(other.columns)]
        )
    except AssertionError as error:
        return {"identical": False, "rows": len(reference), "detail": str(error).splitlines()[:6]}
    return {"identical": True, "rows": len(reference)}


def _latest_snapshots(source_paths: Any, entity: str) -> Any:
    """Each entity at its latest source timestamp: where training and online must agree."""
    import pandas as pd

    from loopline import features

    parts = []
    for view in features.batch_views(source_paths):
        ts = view.batch_source.timestamp_field
        frame = pd.read_parquet(view.batch_source.path, columns=[entity, ts])
        parts.append(frame.groupby(entity)[ts].max().rename("event_timestamp"))
    latest = pd.concat(parts, axis=1).max(axis=1).rename("event_timestamp")
    return latest.sort_index().reset_index()


def _value_checks(
    stores: dict[str, Any],
    source_paths: Any,
    service_name: str,
    entity: str,
    known: list[int],
    unknown: list[int],
    labels: Any | None,
) -> dict[str, dict[str, Any]]:
    """Per variant: online values and training frames against ``read_time``'s, and whether the
    online values are what training reads at each customer's latest snapshot."""
    latest = _latest_snapshots(source_paths, entity)
    ids = [int(i) for i in latest[entity]]
    online = {n: _read(s, service_name, entity, known + unknown) for n, s in stores.items()}
    frames = (
        {n: _historical(s, service_name, labels) for n, s in stores.items()}
        if labels is not None
        else {}
    )
    checks: dict[str, dict[str, Any]] = {}
    for name, store in stores.items():
        served = _read(store, service_name, entity, ids)
        trained = _historical(store, service_name, latest)
        check = {
            "online": _compare(online["read_time"], online[name], entity, unknown),
            "serves_training": _compare(
                _as_dict(trained[list(served)]), served, entity, loose=True
            ),
        }
        if frames:
            check["training"] = _frames_equal(frames["read_time"], frames[name])
        checks[name] = check
    return checks


def _missing_inputs(
    paths: Any, folder: Path, service_name: str, entity: str, known: list[int], unknown: list[int]
) -> dict[str, Any]:
    """The value checks on a copy of the sources where some measurements are missing (NaN).

    For one customer in 50, one numeric feature of its latest row is NaN (the feature's
    position in its view is the customer id modulo 50).
    """
    import pandas as pd

    from loopline import features
    from loopline.settings import Paths

    copy_paths = Paths(paths.project, paths.state, folder)
    copy_paths.feature_sources.mkdir(parents=True, exist_ok=True)
    blanked = 0
    for view in features.batch_views(paths):
        source = Path(view.batch_source.path)
        frame = pd.read_parquet(source)
        numeric = [f.name for f in view.features if pd.api.types.is_float_dtype(frame[f.name])]
        ts = view.batch_source.timestamp_field
        latest = frame[ts] == frame.groupby(entity)[ts].transform("max")
        for n, column in enumerate(numeric):
            rows = latest & (frame[entity] % 50 == n)
            frame.loc[rows, column] = float("nan")
            blanked += int(rows.sum())
        frame.to_parquet(copy_paths.feature_sources / source.name, index=False)
    stores = {
        name: _build(paths, copy_paths, folder / name, service_name, *VARIANTS[name])[0]
        for name in ("read_time", "written")
    }
    checks = _value_checks(stores, copy_paths, service_name, entity, known, unknown, None)
    return {"blanked_values": blanked, "variants": checks}


def _interleaved(
    reads: dict[str, Callable[[Any], Any]],
    warm: Sequence[Any],
    timed: Sequence[Any],
    budget: float,
    rounds: int = 10,
) -> dict[str, dict[str, float]]:
    """Time every read on the same arguments in ``rounds`` alternating blocks; one time budget."""
    seconds: dict[str, list[float]] = {name: [] for name in reads}
    for read in reads.values():
        for arg in warm:
            read(arg)
    deadline = time.perf_counter() + budget
    rounds = min(rounds, len(timed))
    for r in range(rounds):
        block = timed[r * len(timed) // rounds : (r + 1) * len(timed) // rounds]
        for name, read in reads.items():
            # Feast caches a request's resolution in one cache per process, keyed by service
            # name and cleared when another registry answers: re-warm it after a switch.
            read(block[0])
            for arg in block:
                t = time.perf_counter()
                read(arg)
                seconds[name].append(time.perf_counter() - t)
        if time.perf_counter() > deadline:
            break
    out = {}
    for name, values in seconds.items():
        ms = [v * 1000 for v in values]
        out[name] = latency_summary(values) | {
            "p10_ms": percentile(ms, 10),
            "p95_ms": percentile(ms, 95),
            "planned": len(timed),
        }
    return out


def _cell(summary: dict[str, float]) -> str:
    return f"{summary['p50_ms']:.2f} / {summary['p95_ms']:.2f} ({summary['p10_ms']:.2f})"


def _verdict(check: dict[str, Any]) -> str:
    if check.get("identical"):
        return "identical"
    if "differences" not in check:
        detail = check.get("order") or check.get("detail") or f"missing {check.get('missing')}"
        return f"differs: {detail}"
    parts = [
        f"{name} ({d['known']} known, {d['unknown']} unknown)"
        for name, d in check["differences"].items()
    ]
    return "differs: " + ", ".join(parts)


def render(result: dict[str, Any]) -> str:
    """The measurement as a markdown section."""
    single, many, batch = result["single"], result["many"], result["batch"]
    lines = [
        f"### Feast online read: feature service `{result['service']}`",
        "",
        f"In process, one thread, {result['customers']} customers in the store. Latency in ms: "
        f"p50 / p95 (p10), for one customer and for {batch} customers per call; p10 moves least "
        "with load from other processes. Values are compared with `read_time`'s for every "
        f'customer in the store and {UNKNOWN} unknown ids; "serves training" compares each '
        "customer's online values with the training read at its latest snapshot.",
        "",
        f"| variant | 1 customer | {batch} customers | online values | training frame "
        "| serves training | materialize (s) | precomputed vectors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, info in result["variants"].items():
        mark = " (declared)" if name == result["declared"] else ""
        cell = f"variant:{name}"
        vectors = sum(n for t, n in info["online_rows"].items() if "__precomputed__" in t)
        lines.append(
            f"| `{name}`{mark} | {_cell(single[cell])} | {_cell(many[cell])} "
            f"| {_verdict(info['online'])} | {_verdict(info['training'])} "
            f"| {_verdict(info['serves_training'])} | {info['materialize_s']:.1f} | {vectors} |"
        )
    declared = f"variant:{result['declared']}"
    lines += [
        "",
        f"Call forms on the declared definitions (`{result['declared']}`); values against "
        "`rows_dict`, the serving worker's call:",
        "",
        f"| form | 1 customer | {batch} customers | values |",
        "|---|---|---|---|",
    ]
    for name, check in result["forms"].items():
        cell = declared if name == "rows_dict" else f"form:{name}"
        lines.append(
            f"| `{name}` | {_cell(single[cell])} | {_cell(many[cell])} | {_verdict(check)} |"
        )
    missing = result["missing_inputs"]
    lines += [
        "",
        f"With missing measurements ({missing['blanked_values']} NaN values in a copy of the "
        "sources):",
        "",
        "| variant | online values | serves training |",
        "|---|---|---|",
    ]
    for name, info in missing["variants"].items():
        lines.append(
            f"| `{name}` | {_verdict(info['online'])} | {_verdict(info['serves_training'])} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
