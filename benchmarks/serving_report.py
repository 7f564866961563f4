"""The serving parts of docs/benchmarks.md: goals with verdicts, then every number's baseline.

``r["serving"]`` comes from ``serving.py`` (in-process lookup and model), ``r["serving_rollouts"]``
from ``serving_rollouts.py`` (HTTP under wrk, and the 1,000-customer request).
"""

from __future__ import annotations

import math
from typing import Any

# The goals for serving at production speed.
ONE_CLIENT_P50_MS = 5.0
ONE_CLIENT_P99_MS = 15.0
LOAD_LEVEL = 32
LOAD_RPS = 300.0
LOAD_P99_MS = 150.0
LOAD_VS_TRIVIAL = 0.5
BATCH_P50_MS = 50.0
POLICY_RATIO = 1.3


def _ms(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _verdict(met: bool | None) -> str:
    return "not measured" if met is None else "**met**" if met else "**not met**"


def _point(ro: dict[str, Any], key: str, level: int) -> dict[str, Any] | None:
    found: dict[str, Any] | None = ro["points"].get(key, {}).get(str(level))
    return found


def policy_ratios(ro: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Canary and shadow over single at each level: p50, p99, req/s and server CPU per request."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for key in ("canary", "shadow"):
        out[key] = {}
        for level in ro["config"]["concurrency"]:
            p, s = _point(ro, key, level), _point(ro, "single", level)
            if p and s:
                out[key][str(level)] = {
                    m: p[m] / s[m] if s[m] else math.nan
                    for m in ("p50_ms", "p99_ms", "rps", "server_cpu_ms_per_request")
                }
    return out


def goals(r: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(goal, Loopline's value, the baselines' values, met) per goal; None: not measured."""
    ro, s = r.get("serving_rollouts"), r.get("serving") or {}
    if not ro:
        return []
    rows: list[tuple[str, str, str, bool | None]] = []

    def base(level: int, show: Any) -> str:
        parts = []
        for key, label in (("trivial", "trivial BentoML"), ("bare", "bare FastAPI")):
            p = _point(ro, key, level)
            if p:
                parts.append(f"{label} {show(p)}")
        return "; ".join(parts)

    one = _point(ro, "single", 1)
    in_process = s.get("in_process", {}).get("p50_ms")
    rows.append(
        (
            f"1 client: p50 ≤ {ONE_CLIENT_P50_MS:g} ms and p99 ≤ {ONE_CLIENT_P99_MS:g} ms",
            f"p50 {_ms(one['p50_ms'])} ms, p99 {_ms(one['p99_ms'])} ms" if one else "n/a",
            base(1, lambda p: f"{_ms(p['p50_ms'])} / {_ms(p['p99_ms'])} ms")
            + (f"; in-process lookup + scorer p50 {_ms(in_process)} ms" if in_process else ""),
            None
            if not one
            else one["p50_ms"] <= ONE_CLIENT_P50_MS and one["p99_ms"] <= ONE_CLIENT_P99_MS,
        )
    )
    load, trivial = _point(ro, "single", LOAD_LEVEL), _point(ro, "trivial", LOAD_LEVEL)
    rows.append(
        (
            f"{LOAD_LEVEL} clients: ≥ {LOAD_RPS:g} req/s, p99 ≤ {LOAD_P99_MS:g} ms, 0 errors",
            f"{load['rps']:.0f} req/s, p99 {_ms(load['p99_ms'])} ms, {load['errors']} errors"
            if load
            else "n/a",
            base(LOAD_LEVEL, lambda p: f"{p['rps']:.0f} req/s, p99 {_ms(p['p99_ms'])} ms"),
            None
            if not load
            else load["rps"] >= LOAD_RPS and load["p99_ms"] <= LOAD_P99_MS and not load["errors"],
        )
    )
    share = load["rps"] / trivial["rps"] if load and trivial and trivial["rps"] else None
    rows.append(
        (
            f"{LOAD_LEVEL} clients: ≥ {LOAD_VS_TRIVIAL:g}× the trivial endpoint's req/s",
            f"{share:.2f}×" if share is not None else "n/a",
            f"trivial BentoML {trivial['rps']:.0f} req/s" if trivial else "n/a",
            None if share is None else share >= LOAD_VS_TRIVIAL,
        )
    )
    batch = ro.get("batch", {})
    single = batch.get("single")
    inner = [s.get(k, {}).get("p50_ms") for k in ("lookup_1000", "scorer_1000")]
    rows.append(
        (
            f"1,000 customers in one request: p50 ≤ {BATCH_P50_MS:g} ms",
            f"p50 {_ms(single['p50_ms'])} ms, p99 {_ms(single['p99_ms'])} ms" if single else "n/a",
            "; ".join(
                f"{label} p50 {_ms(batch[key]['p50_ms'])} ms"
                for key, label in (("trivial", "trivial BentoML"), ("bare", "bare FastAPI"))
                if key in batch
            )
            + (
                f"; in-process lookup {_ms(inner[0])} + scorer {_ms(inner[1])} ms"
                if None not in inner
                else ""
            ),
            None if not single else single["p50_ms"] <= BATCH_P50_MS and not single["errors"],
        )
    )
    for key, levels in policy_ratios(ro).items():
        worst_p50 = max((v["p50_ms"] for v in levels.values()), default=math.nan)
        worst_rps = min((v["rps"] for v in levels.values()), default=math.nan)
        rows.append(
            (
                f"{key} within {POLICY_RATIO:g}× of single (p50 and req/s) at every concurrency",
                f"p50 up to {worst_p50:.2f}×, req/s down to {worst_rps:.2f}×",
                "single, same run (§3)",
                None if not levels else worst_p50 <= POLICY_RATIO and worst_rps >= 1 / POLICY_RATIO,
            )
        )
    return rows


def goals_line(r: dict[str, Any]) -> str:
    """The serving line of the report's summary at the top."""
    rows = goals(r)
    if not rows:
        return ""
    met = [row for row in rows if row[3]]
    missed = [row[0] for row in rows if row[3] is False]
    return f"- Serving (§2, §3): {len(met)} of {len(rows)} goals met" + (
        f"; not met: {'; '.join(missed)}." if missed else "."
    )


def serving_section(r: dict[str, Any]) -> str:
    from serving_rollouts import render as points_table

    ro, s = r.get("serving_rollouts"), r["serving"]
    lines = ["## 2. Serving\n"]
    if ro:
        c, w = ro["config"], ro["config"]["wrk"]
        workers = ro.get("workers", {}).get("loopline", {}).get("expected", "n/a")
        threads = ro.get("settings", {}).get("loopline", {}).get("threads", "n/a")
        lines += [
            f"`bentoml serve bentos.service:ChurnService` with model `{s['model']}` "
            f"({s.get('estimator', 'n/a')}), {workers} worker processes × {threads} threads, "
            f"on {c['usable_cpus']} usable of {c['cpus']} cores; the load generator shares "
            f"them. Load comes from `{w['version']}`, a separate compiled process with "
            f"{w['threads']} thread (`-t{w['threads']}`) holding every connection, closed loop "
            f"(each connection sends its next request when the answer arrives), "
            f"{c['seconds']} s per point after {c['warmup_seconds']} s of warm-up; its Lua script "
            "(`benchmarks/wrk/predict.lua`) sends `POST /predict` with one random known "
            f"customer ({c['known_customers']:,}) and the client API key, and reports through "
            f"a JSON summary. Errors are socket errors plus non-2xx answers (wrk timeout "
            f"{w['timeout_s']} s, the service's own). Every row has its baselines from the same "
            "run, all servers up together and measured in turns.\n",
            _settings_note(ro),
            "| Goal | Loopline (`single`) | Baselines, same run | Verdict |",
            "|---|---|---|---|",
            *(f"| {g} | {m} | {b} | {_verdict(ok)} |" for g, m, b, ok in goals(r)),
            "",
            "Baselines: **trivial BentoML** is `benchmarks/trivial_service.py`, a sync endpoint "
            "that parses the same body and returns a constant, on the service's `workers`, "
            "`threads`, traffic timeout and per-worker environment (`bentoml serve`, same "
            "variables): what BentoML itself allows here. **Bare FastAPI** is uvicorn with as "
            f"many worker processes as the service, doing the same Feast lookup and scorer "
            f"(`{s.get('scorer_name', 'n/a')}`) with {threads} threads per worker, and nothing "
            "else: no keys, routing, prediction log or metrics.\n",
            points_table(ro),
            "",
            _wrk_note(ro),
            _batch_note(ro),
            _server_side_note(ro),
        ]
    else:
        lines.append("HTTP serving was not measured in this run.\n")
    lines += _in_process(s)
    return "\n".join(lines) + "\n"


def _settings_note(ro: dict[str, Any]) -> str:
    settings = ro.get("settings", {})
    if "error" in settings:
        return f"(Could not compare the two services' settings: {settings['error']}.)\n"
    if settings.get("differs"):
        keys = ", ".join(f"`{k}`" for k in settings["differs"])
        return (
            f"**The trivial service's settings differ from the service's in {keys}:** its "
            "numbers are not the same-settings baseline in this run.\n"
        )
    return "The trivial service's server settings were checked equal to the service's.\n"


def _wrk_note(ro: dict[str, Any]) -> str:
    cores = [p.get("wrk_cpu_cores", 0.0) for by in ro["points"].values() for p in by.values()]
    if not cores:
        return ""
    return (
        f"wrk itself used {min(cores):.2f}–{max(cores):.2f} of a core per point (user + "
        "system time over the point's duration).\n"
    )


def _batch_note(ro: dict[str, Any]) -> str:
    batch, c = ro.get("batch"), ro["config"]
    if not batch:
        return ""
    lines = [
        f"One request of {c['batch_size']:,} customers (`customer_ids`, random known ones), "
        f"{c['batch_calls']} sequential calls per target from one Python (httpx) client, the "
        "targets taking turns: the latency of one request, not throughput.\n",
        "| Target | Calls | p50 ms | p99 ms | Errors |",
        "|---|---:|---:|---:|---:|",
    ]
    labels = {"trivial": "BentoML trivial endpoint", "bare": "bare FastAPI, same work"}
    for key, b in batch.items():
        label = labels.get(key, f"**Loopline {key}**")
        lines.append(
            f"| {label} | {b['n']} | {_ms(b['p50_ms'])} | {_ms(b['p99_ms'])} | {b['errors']} |"
        )
    return "\n".join(lines) + "\n"


def _server_side_note(ro: dict[str, Any]) -> str:
    side, one = ro.get("server_side"), _point(ro, "single", 1)
    if not side or not side.get("n") or not one:
        return ""
    return (
        f"BentoML's own handling time of Loopline's requests at 1 connection (its access log, "
        f"{side['n']:,} requests): p50 {_ms(side['p50_ms'])} ms, p99 {_ms(side['p99_ms'])} ms, "
        f"against {_ms(one['p50_ms'])} / {_ms(one['p99_ms'])} ms seen by wrk; the difference "
        "is the socket, HTTP parsing outside the handler and wrk.\n"
    )


def _calls(stats: dict[str, Any]) -> str:
    n, planned = stats.get("n", 0), stats.get("planned")
    return f"{n:,} of {planned:,} ⏱" if planned and n < planned else f"{n:,}"


def _row(label: str, stats: dict[str, Any] | None, note: str, strong: bool = False) -> str:
    b = "**" if strong else ""
    stats = stats or {}
    return (
        f"| {b}{label}{b} | {_calls(stats)} | {b}{_ms(stats.get('p50_ms'))}{b} | "
        f"{b}{_ms(stats.get('p99_ms'))}{b} | {note} |"
    )


def _in_process(s: dict[str, Any]) -> list[str]:
    scorer = s.get("scorer_name", "the scorer")
    lines = [
        "In-process, in one Python process on the same customers: the feature lookup and the "
        "model alone, without HTTP, BentoML or Loopline's own work (keys, routing, prediction "
        "log, metrics). ⏱ marks a loop that hit its time budget before its planned count.\n",
        "| Measure | Calls | p50 ms | p99 ms | Note |",
        "|---|---:|---:|---:|---|",
        _row(
            "Lookup → scorer, one customer",
            s.get("in_process"),
            "the service's per-request work, without HTTP",
            strong=True,
        ),
        _row(
            "Feast online lookup, one customer",
            s["lookup"],
            "FeatureService object reused, as `bentos/service.py` does",
            strong=True,
        ),
        _row("Feast online lookup, 1,000 customers", s.get("lookup_1000"), "one call"),
        _row("Scorer, one row", s.get("scorer"), f"`{scorer}`", strong=True),
        _row("Scorer, 1,000 rows", s.get("scorer_1000"), f"`{scorer}`, one call", strong=True),
        _row(
            "`pipeline.predict_proba`, one row",
            s["predict"],
            "sklearn pipeline from the BentoML model store, main thread",
        ),
        _row("`pipeline.predict_proba`, 1,000 rows", s.get("predict_1000"), "one call"),
        _row(
            "&nbsp;&nbsp;↳ one row, on a worker thread",
            s["predict_worker_thread"],
            "how BentoML calls a sync API",
        ),
        _row(
            "&nbsp;&nbsp;↳ one row, worker thread with OpenMP at 1 thread",
            s["predict_worker_thread_omp1"],
            "`threadpool_limits(1)` on that thread",
        ),
        _row(
            "`loopline.features.online_features`",
            s["lookup_helper"],
            "the platform helper: fetches the feature service from the registry every call",
        ),
    ]
    lines += _inference_note(s.get("inference"))
    threads = s.get("openmp_threads")
    if threads:
        lines += [
            "",
            f"OpenMP threads scikit-learn uses for a predict: {threads['default']} by default; "
            f"after `threadpool_limits(1)` on the main thread, {threads['main_after_limit']} "
            f"there but {threads['worker_after_main_limit']} on a worker thread.",
        ]
    return lines


def _inference_note(found: dict[str, Any] | None) -> list[str]:
    """``benchmarks/inference.py``'s ``measure``: both engines, one row and 1,000 rows."""
    engines = [e for e in ("sklearn", "numpy") if isinstance((found or {}).get(e), dict)]
    if not found or not engines:
        return []
    chosen = found.get("inference", {})
    parts = [
        f"{engine} one row p50 {_ms(found[engine].get('single_p50_ms'))} ms "
        f"(p95 {_ms(found[engine].get('single_p95_ms'))}), 1,000 rows "
        f"{_ms(found[engine].get('batch_ms'))} ms (median)"
        for engine in engines
    ]
    return [
        "",
        "The model alone, from `benchmarks/inference.py` (`measure`, OpenMP and BLAS at one "
        f"thread; the engine serving picks: `{chosen.get('engine', 'n/a')}`): "
        + "; ".join(parts)
        + ".",
    ]


def rollouts_section(ro: dict[str, Any] | None) -> str:
    title = "## 3. Serving under rollout policies\n"
    if not ro:
        return title + "\nNot measured in this run.\n"
    levels = ro["config"]["concurrency"]
    named = [
        f"`{key}`" + (f" (challenger share {p['share']:g})" if p["share"] else "")
        for key, p in ro["config"]["policies"].items()
    ]
    lines = [
        title,
        f"The same server and load as §2 under {', '.join(named)}, from a private registry "
        "holding a champion and a challenger; `shadow` also scores every request with the "
        "challenger, off the response path. Ratios are the policy over `single` at the same "
        f"number of connections (goal: p50 ≤ {POLICY_RATIO:g}× and req/s ≥ "
        f"1/{POLICY_RATIO:g} = {1 / POLICY_RATIO:.2f}× at every level). Server CPU per "
        "request depends far less on other load than latency does. Bold misses the goal.\n",
        "| Policy | Connections | p50 ratio | p99 ratio | req/s ratio | server CPU ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, by_level in policy_ratios(ro).items():
        for level in levels:
            v = by_level.get(str(level))
            if not v:
                continue
            p50 = f"{v['p50_ms']:.2f}×"
            rps = f"{v['rps']:.2f}×"
            lines.append(
                f"| {key} | {level} | {f'**{p50}**' if v['p50_ms'] > POLICY_RATIO else p50} "
                f"| {v['p99_ms']:.2f}× | {f'**{rps}**' if v['rps'] < 1 / POLICY_RATIO else rps} "
                f"| {v['server_cpu_ms_per_request']:.2f}× |"
            )
    ready = ro.get("ready_seconds", {})
    load = ro["config"].get("loadavg_before", [math.nan])[0]
    after = ro["config"].get("loadavg_after", [math.nan])[0]
    lines += [
        "",
        f"{ro['errors']} errors over every point. Ready after start: Loopline "
        f"{ready.get('loopline', math.nan):.1f} s, bare app {ready.get('bare', math.nan):.1f} s. "
        f"1-min load average {load:.1f} before the step and {after:.1f} after.",
    ]
    return "\n".join(lines) + "\n"


def method_lines(r: dict[str, Any]) -> str:
    k = r["knobs"]
    return (
        f"- Serving in-process (`benchmarks/serving.py`): {k['calls']:,} timed calls per "
        f"measurement after {k['warmup']} warm-up calls ({k['batch_calls']} for 1,000 rows); "
        "the worker-thread rows use 30 % of the calls. Percentiles are nearest-rank.\n"
        "- Serving over HTTP (`benchmarks/serving_rollouts.py`, `wrk.py`, `baselines.py`): "
        f"`wrk -t1 -c<n> -d{k['serving_seconds']}s` per point after a "
        f"{k['serving_warmup_seconds']} s warm-up run, all targets up at once and measured "
        "level by level in turns; wrk's percentiles come from its own histogram "
        "(`latency:percentile`). Loopline serves from a temporary registry holding copies of "
        "two of the copy's version records, so the copy's registry is left as it was.\n"
    )
