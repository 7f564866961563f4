"""OnlineReader against Feast's own online read of the feature service, in process, one thread.

Run against a project whose state is built (``LOOPLINE_PROJECT``/``LOOPLINE_HOME`` point at
it); the store is only read. Both reads get the same random customers, timed in
alternating blocks so load from other processes falls on both alike; every 1,000-customer
result is also checked to be identical (keys, order, values, types) to Feast's.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchutil import latency_summary, percentile, say, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--calls", type=int, default=1000, help="timed one-customer calls")
    parser.add_argument("--batch-calls", type=int, default=60, help="timed 1,000-customer calls")
    args = parser.parse_args()

    from loopline.settings import activate  # before Feast is imported: it reads the env

    result = measure(activate(), calls=args.calls, batch_calls=args.batch_calls)
    write_result(args.out, result)
    say(f"wrote {args.out}")
    print(render(result))


def measure(
    paths: Any, *, calls: int = 1000, batch_calls: int = 60, batch: int = 1000, seed: int = 11
) -> dict[str, Any]:
    """p50 (and p10/p95) of one- and ``batch``-customer reads: OnlineReader vs Feast's call."""
    import numpy as np
    import pandas as pd

    from loopline import features
    from loopline.config import load_params
    from loopline.online import OnlineReader

    params = load_params(paths.params_file)
    entity = params.dataset.entity
    store = features.feature_store(paths)
    service = store.get_feature_service(params.features.service)
    reader = OnlineReader(store, service)

    def feast(ids: list[int]) -> dict[str, list[Any]]:
        rows = [{entity: i} for i in ids]
        out: dict[str, list[Any]] = store.get_online_features(
            features=service, entity_rows=rows
        ).to_dict()
        return out

    known = sorted(
        int(i) for i in pd.read_parquet(paths.ingested, columns=[entity])[entity].unique()
    )
    rng = np.random.default_rng(seed)
    size = min(batch, len(known))
    singles = [[int(i)] for i in rng.choice(known, size=calls)]
    batches = [
        [int(i) for i in rng.choice(known, size=size, replace=False)] for _ in range(batch_calls)
    ]
    reads = {"feast": feast, "reader": reader.read}
    identical = all(_same(feast(ids), reader.read(ids)) for ids in batches[:5] + singles[:20])
    say(f"timing {calls} one-customer and {batch_calls} {size}-customer calls per read")
    single = _interleaved(reads, singles)
    many = _interleaved(reads, batches)
    return {
        "service": service.name,
        "customers": len(known),
        "batch": size,
        "fast": reader.fast,
        "reason": reader.reason,
        "identical": identical,
        "load_avg": os.getloadavg(),
        "cpus": os.cpu_count(),
        "single": single,
        "many": many,
        "speedup_p50": {
            "single": single["feast"]["p50_ms"] / single["reader"]["p50_ms"],
            "many": many["feast"]["p50_ms"] / many["reader"]["p50_ms"],
        },
    }


def _same(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> bool:
    if list(a) != list(b):
        return False
    return all(
        [type(v) for v in a[k]] == [type(v) for v in b[k]]
        and all(x == y or (x != x and y != y) for x, y in zip(a[k], b[k], strict=True))
        for k in a
    )


def _interleaved(
    reads: dict[str, Callable[[list[int]], Any]], args: list[list[int]], rounds: int = 10
) -> dict[str, dict[str, float]]:
    seconds: dict[str, list[float]] = {name: [] for name in reads}
    for read in reads.values():
        read(args[0])  # warm
    for r in range(rounds):
        block = args[r * len(args) // rounds : (r + 1) * len(args) // rounds]
        for name, read in reads.items():
            for ids in block:
                started = time.perf_counter()
                read(ids)
                seconds[name].append(time.perf_counter() - started)
    out = {}
    for name, values in seconds.items():
        ms = [v * 1000 for v in values]
        out[name] = latency_summary(values) | {
            "p10_ms": percentile(ms, 10),
            "p95_ms": percentile(ms, 95),
        }
    return out


def render(result: dict[str, Any]) -> str:
    """The measurement as a markdown section."""
    single, many, batch = result["single"], result["many"], result["batch"]
    load = ", ".join(f"{x:.2f}" for x in result["load_avg"])
    lines = [
        f"### Online read of `{result['service']}`: OnlineReader vs Feast",
        "",
        f"In process, one thread, {result['customers']} customers in the store, load average "
        f"{load} on {result['cpus']} cores. Latency in ms, p50 / p95 (p10). OnlineReader fast "
        f"path: {result['fast']} ({result['reason'] or 'SQLite'}); identical to Feast: "
        f"{result['identical']}.",
        "",
        f"| read | 1 customer | {batch} customers |",
        "|---|---|---|",
    ]
    for name in ("feast", "reader"):
        s, m = single[name], many[name]
        lines.append(
            f"| {name} | {s['p50_ms']:.2f} / {s['p95_ms']:.2f} ({s['p10_ms']:.2f}) "
            f"| {m['p50_ms']:.2f} / {m['p95_ms']:.2f} ({m['p10_ms']:.2f}) |"
        )
    up = result["speedup_p50"]
    lines += ["", f"p50 speed-up: {up['single']:.1f}x (1), {up['many']:.1f}x ({batch}).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
