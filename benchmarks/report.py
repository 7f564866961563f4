"""docs/benchmarks.md from one run's results: every number beside its baseline."""

from __future__ import annotations

import math
from typing import Any

# Other processes using more than this many cores on average make a phase "busy".
BUSY_CORES = 0.25
# The issues' goals: a 1M-row x 20-column drift window, and each dashboard page.
DRIFT_GOAL_S = 15.0
DASHBOARD_GOAL_S = 2.0


def _s(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _ms(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f} %"


def _mib(value: float) -> str:
    return f"{value / 1024:.2f} GiB" if value >= 1024 else f"{value:.0f} MiB"


def _verdict(met: bool) -> str:
    return "**goal met**" if met else "**goal not met**"


def render(r: dict[str, Any]) -> str:
    parts = [
        _header(r),
        _machine(r),
        _demo(r.get("demo")),
        _serving(r),
        _rollouts(r.get("serving_rollouts")),
        _pit(r),
        _drift(r.get("drift")),
        _dashboard(r.get("dashboard")),
        _verdicts(r.get("verdicts")),
        _method(r),
    ]
    return "\n".join(p for p in parts if p).rstrip() + "\n"


def _header(r: dict[str, Any]) -> str:
    quick = (
        "\n> **Quick run (`--quick`, small sizes): for development only, not representative.**\n"
        if r["quick"]
        else ""
    )
    return (
        "# Benchmarks\n\n"
        "What the platform costs on one machine: a cold `loopline demo`, serving latency and "
        "throughput, serving under the rollout policies, point-in-time feature retrieval, drift "
        "detection and dashboard page renders. Every number below comes from one run "
        "of `make bench` (`benchmarks/run.py`), next to its baseline from the same run; the file "
        "is generated, so edit `benchmarks/report.py` instead.\n\n"
        f"Reproduce: `make bench` (this run took {r['bench_seconds'] / 60:.1f} min; it works on "
        "a temporary copy of the project with its own state folder and leaves nothing behind).\n"
        + quick
        + _goals(r)
    )


def _goals(r: dict[str, Any]) -> str:
    """One line per step that has a goal: the measured value, the goal, met or not."""
    lines = []
    rollouts = r.get("serving_rollouts")
    if rollouts:
        goal = rollouts["goal"]
        worst = max(
            ratio[str(level)]["p50"]
            for ratio in rollouts["ratios"].values()
            for level in rollouts["config"]["concurrency"]
        )
        lowest = min(ratio["max_rps"] for ratio in rollouts["ratios"].values())
        met = [key for key, ratio in rollouts["ratios"].items() if ratio["meets_goal"]]
        lines.append(
            f"- Serving under rollout policies (§3): Loopline / bare FastAPI p50 up to "
            f"{worst:.2f}× (goal ≤ {goal['p50_ratio_max']:g}×), peak throughput down to "
            f"{lowest:.2f}× (goal ≥ {goal['rps_ratio_min']:.2f}×); goal met by {len(met)} of "
            f"{len(rollouts['ratios'])} policies" + (f" ({', '.join(met)})." if met else ".")
        )
    drift = r.get("drift")
    if drift:
        big = drift["large_window"]
        nulls = [row for row in drift["rates"] if row["truth"] == "none"]
        t = big["seconds"]["sampled_50k_with_report"]
        goal = _drift_goal_applies(big)
        lines.append(
            f"- Drift (§5): a {big['rows']:,}-row × {big['columns']}-column window in "
            f"{t:.1f} s as the monitor runs it (goal ≤ {DRIFT_GOAL_S:g} s for 1,000,000 rows"
            + (f", {'met' if t <= DRIFT_GOAL_S else 'not met'})" if goal else ", not assessed)")
            + "; events on no-drift windows (false alarms): "
            + ", ".join(f"{row['scenario']} {_pct(row['event'])}" for row in nulls)
            + "."
        )
    dash = r.get("dashboard")
    if dash:
        slowest, page = _slowest_page(dash)
        lines.append(
            f"- Dashboard (§6): slowest page *{page}* at {slowest:.2f} s cold "
            f"(goal < {DASHBOARD_GOAL_S:g} s per page, "
            f"{'met' if slowest < DASHBOARD_GOAL_S else 'not met'})."
        )
    verdicts = r.get("verdicts")
    if verdicts:
        rows = verdicts["rows"]
        worse = max(row["promoted"] for row in rows if "worse" in row["scenario"])
        better = max(row["rolled_back"] for row in rows if row["scenario"] == "better")
        lines.append(
            f"- Rollout verdicts (§7): a worse challenger promoted in up to {worse:.1%} of "
            f"rollouts (goal ≤ 1 %, {'met' if worse <= 0.01 else 'not met'}), a better one "
            f"rolled back in up to {better:.1%} (goal ≤ 5 %, "
            f"{'met' if better <= 0.05 else 'not met'})."
        )
    if not lines:
        return ""
    return "\nGoals, as measured in this run:\n\n" + "\n".join(lines) + "\n"


def _machine(r: dict[str, Any]) -> str:
    m = r["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    cgroup = f"; cgroup cpu.max `{m['cgroup_cpu_max']}`" if m.get("cgroup_cpu_max") else ""
    lines = [
        "## Machine\n",
        "| | |",
        "|---|---|",
        f"| Date | {m['date']} |",
        f"| CPU | {m['cpu_model']} |",
        f"| Cores | {m['logical_cpus']} logical, {m['usable_cpus']} usable{cgroup} |",
        f"| Memory | {m['memory_gib']} GiB |",
        f"| OS | {m['os']} |",
        f"| Python | {m['python']} |",
        f"| Packages | {packages} |",
        "",
    ]
    phases = r["load"]["phases"]
    wall = sum(p["seconds"] for p in phases) or 1.0
    other = sum(p["other_cores"] * p["seconds"] for p in phases) / wall
    busy = [p for p in phases if p["other_cores"] > BUSY_CORES]
    top = ", ".join(f"`{name}` {sec:.0f} CPU-s" for name, sec in r["load"]["top_others"] if sec)
    if busy:
        verdict = (
            f"**The machine was busy.** Processes outside this benchmark used {other:.2f} of "
            f"{m['usable_cpus']} cores on average over the run, more than {BUSY_CORES} cores in "
            f"{len(busy)} of {len(phases)} phases (heaviest: {top or 'n/a'}). Absolute times are "
            "therefore upper bounds; ratios measured within one phase are the more robust numbers."
        )
    else:
        verdict = (
            f"The machine was quiet: processes outside this benchmark used {other:.2f} cores on "
            f"average over the run (heaviest: {top or 'none'})."
        )
    lines += [
        verdict,
        "",
        "| Phase | Wall s | Machine busy (cores) | Other processes (cores) | Max 1-min load |",
        "|---|---:|---:|---:|---:|",
    ]
    for p in phases:
        lines.append(
            f"| {p['name']} | {p['seconds']:.0f} | {p['machine_busy_cores']:.2f} | "
            f"{p['other_cores']:.2f} | {p['max_load1']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def _demo(d: dict[str, Any] | None) -> str:
    if d is None:
        return "## 1. Cold `loopline demo`\n\nNot measured in this run (`--reuse-demo`).\n"
    total = d["total_seconds"]
    lines = [
        "## 1. Cold `loopline demo`\n",
        f"**{total:.1f} s** wall time for `loopline demo` as a subprocess on a fresh project copy "
        "with an empty state folder: no dataset, DVC repo, Prefect database, Feast registry or "
        "model yet (Python files were already in the OS page cache). The stages add up to the "
        "total; indented rows split the row above them.\n",
        "| Stage | Seconds | Share | What it covers |",
        "|---|---:|---:|---|",
    ]
    for row in d["stages"]:
        name = row["stage"] if row["level"] == 0 else f"&nbsp;&nbsp;↳ {row['stage']}"
        strong = "**" if row["level"] == 0 else ""
        lines.append(
            f"| {strong}{name}{strong} | {_s(row['seconds'])} | "
            f"{_pct(row['share'])} | {row['what']} |"
        )
    top = [r for r in d["stages"] if r["level"] == 0 and r["seconds"] is not None]
    top.sort(key=lambda r: -r["seconds"])
    prefect = sum(r["seconds"] for r in top if r["stage"].startswith("Prefect"))
    lines += [
        "",
        f"The largest stages are {', '.join(r['stage'] for r in top[:3])}. Prefect's own cost "
        f"(temporary server start plus orchestration) is {prefect:.1f} s, "
        f"{prefect / total * 100:.0f} % of the demo.",
    ]
    if d.get("candidates"):
        lines += [
            "",
            "Training fits every candidate of `params.yaml` (fit times as recorded in "
            "`artifacts/candidates.json`):\n",
            "| Candidate | Fit s | Holdout ROC AUC |",
            "|---|---:|---:|",
        ]
        for c in d["candidates"]:
            fit = _s(c.get("fit_seconds"), 2)
            lines.append(f"| {c['candidate']} | {fit} | {c.get('roc_auc')} |")
    summary = d.get("summary", {})
    if summary:
        lines += ["", "The demo's own summary from this run:", "", "```"]
        lines += [f"{k:<14} {v}" for k, v in summary.items()]
        lines.append("```")
    return "\n".join(lines) + "\n"


def _calls(stats: dict[str, Any]) -> str:
    n, planned = stats.get("n", 0), stats.get("planned")
    # A loop that hit its time budget says so next to its count.
    return f"{n:,} of {planned:,} ⏱" if planned and n < planned else f"{n:,}"


def _row(label: str, stats: dict[str, Any], note: str, strong: bool = False) -> str:
    b = "**" if strong else ""
    return (
        f"| {b}{label}{b} | {_calls(stats)} | {b}{_ms(stats.get('p50_ms'))}{b} | "
        f"{b}{_ms(stats.get('p99_ms'))}{b} | {note} |"
    )


def _serving(r: dict[str, Any]) -> str:
    s = r["serving"]
    http, omp1 = s["http"], s["http_omp1"]
    seq, conc = http["sequential"], http["concurrent"]
    lookup, predict = s["lookup"], s["predict"]
    base = lookup["p50_ms"] + predict["p50_ms"]
    ratio = seq["p50_ms"] / base if base else math.nan
    lines = [
        "## 2. Serving\n",
        f"`bentoml serve bentos.service:ChurnService` (one worker, as configured) with model "
        f"`{s['model']}` ({s.get('estimator', 'n/a')}), started by `platform.start_serving` "
        "after the demo; ready in "
        f"{http['ready_seconds']:.1f} s. Requests are single-customer `POST /predict` for random "
        f"known customers ({s['customers']:,}), over one keep-alive connection, after "
        f"{r['knobs']['warmup']} warm-up calls. The in-process rows time the feature lookup and "
        "the model alone, in one Python process, on the same customers; whatever else the "
        "service does per request (in this version: API-key check, registry routing, "
        "prediction log, metrics) shows only in the HTTP rows. ⏱ marks a loop that hit its "
        "time budget before its planned call count.\n",
        "| Measure | Calls | p50 ms | p99 ms | Note |",
        "|---|---:|---:|---:|---|",
        _row("HTTP `POST /predict`, sequential", seq, f"{seq['errors']} errors", strong=True),
        _row(
            "BentoML server-side time of those calls",
            http["server_side"],
            "from its access log; the rest is client and socket",
        ),
        _row(
            "HTTP `POST /model` (no Feast, no model)",
            http["floor"],
            "BentoML + HTTP floor for a trivial sync endpoint",
        ),
        _row(
            "In-process: lookup → DataFrame → predict",
            s["in_process"],
            "the service's per-request work, without HTTP and BentoML",
        ),
        _row(
            "In-process: Feast online lookup, feature service `churn_v1`",
            lookup,
            "FeatureService object reused, as `bentos/service.py` does",
            strong=True,
        ),
        _row(
            "In-process: `model.predict_proba`, one row",
            predict,
            "sklearn pipeline from the BentoML model store, main thread",
            strong=True,
        ),
        _row(
            "&nbsp;&nbsp;↳ same, called on a worker thread",
            s["predict_worker_thread"],
            "how BentoML calls a sync API",
        ),
        _row(
            "&nbsp;&nbsp;↳ same, worker thread with OpenMP at 1 thread",
            s["predict_worker_thread_omp1"],
            "`threadpoolctl.threadpool_limits(1)` on that thread",
        ),
        _row(
            "In-process: `loopline.features.online_features`",
            s["lookup_helper"],
            "the platform helper: fetches the feature service from the registry every call",
        ),
        "",
        f"**Serving overhead: HTTP p50 / (lookup p50 + predict p50) = {_ms(seq['p50_ms'])} / "
        f"({_ms(lookup['p50_ms'])} + {_ms(predict['p50_ms'])}) = {ratio:.2f}×.** The client "
        f"spent {http['client_cpu_ms_per_call']:.2f} ms of CPU per sequential call (httpx), on "
        "the same two cores as the server."
        + (
            " The ratio is below 1: in this run the in-process `predict_proba` was slower than "
            "a whole request. The model predicts with OpenMP threads on both cores, which makes "
            "it sensitive to other processes holding a core (see the machine load above)."
            if ratio < 1
            else ""
        ),
        "",
        f"**Throughput: {conc['rps']:.0f} requests/s** with {conc['clients']} concurrent clients "
        f"({_calls({'n': conc['requests'], 'planned': conc.get('planned')})} requests in "
        f"{conc['seconds']:.1f} s, {conc['errors']} errors); "
        f"latency under that load p50 {_ms(conc['p50_ms'])} ms, p99 {_ms(conc['p99_ms'])} ms. "
        f"One client back to back reaches {1000 / seq['mean_ms']:.0f} requests/s "
        f"(1 / mean latency). The load-generating threads themselves used "
        f"{conc['client_cpu_cores']:.2f} cores.",
        "",
        _openmp_note(s.get("openmp_threads")),
        "",
        "Experiment, same run: a second server with `OMP_NUM_THREADS=1` in its environment, "
        "which holds OpenMP to one thread on every thread of the worker, ran beside the first "
        "(half the sequential calls, a quarter of the load; the two were called in alternating "
        "blocks so that load from other "
        "processes fell on both alike).\n",
        "| Server | Sequential calls | p50 ms | p99 ms | Server-side p50 ms | Concurrent "
        "req/s | p50 / p99 under load ms |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for label, h in (("as configured", http), ("`OMP_NUM_THREADS=1`", omp1)):
        c, q = h["concurrent"], h["sequential"]
        lines.append(
            f"| {label} | {_calls(q)} | {_ms(q['p50_ms'])} | {_ms(q['p99_ms'])} | "
            f"{_ms(h['server_side'].get('p50_ms'))} | {c['rps']:.0f} | "
            f"{_ms(c['p50_ms'])} / {_ms(c['p99_ms'])} |"
        )
    return "\n".join(lines) + "\n"


def _openmp_note(threads: dict[str, int] | None) -> str:
    if not threads:
        return ""
    note = (
        f"OpenMP threads scikit-learn uses for a predict: {threads['default']} by default; "
        f"after `threadpool_limits(1)` on the main thread, {threads['main_after_limit']} there "
        f"but {threads['worker_after_main_limit']} on a worker thread."
    )
    if threads["worker_after_main_limit"] > threads["main_after_limit"]:
        note += (
            " A limit set while the service is built (main thread) therefore does not reach "
            "the threads BentoML runs sync API calls on."
        )
    return note


def _rollouts(ro: dict[str, Any] | None) -> str:
    title = "## 3. Serving under rollout policies, beside a bare FastAPI app\n"
    if ro is None:
        return title + "\nNot measured in this run.\n"
    # Imported here: the orchestrator needs these modules only when it renders.
    from serving_rollouts import render as rollouts_table

    c, goal = ro["config"], ro["goal"]
    levels = c["concurrency"]
    named = [
        f"`{key}`" + (f" (challenger share {p['share']:g})" if p["share"] else "")
        for key, p in c["policies"].items()
    ]
    policies = ", ".join(named[:-1]) + f" and {named[-1]}" if len(named) > 1 else named[0]
    lines = [
        title,
        "Loopline's `bentoml serve bentos.service:ChurnService` on the demo's copy, serving "
        f"from a private registry with a champion and a challenger, under {policies}; `shadow` "
        "also scores every request with the challenger, off the response path. The baseline is "
        "a bare FastAPI app on uvicorn (one worker) doing the same per-request work, started "
        "beside it: the Feast online lookup through the same feature service, a DataFrame and "
        "`predict_proba` of the same pipeline with OpenMP at one thread; no keys, routing, "
        "prediction log or metrics. Closed loop: at each concurrency the clients share "
        f"{c['requests_per_point']:,} single-customer `POST /predict` requests, one keep-alive "
        f"connection each, after {c['warmup']} warm-up requests; latency is client-side, "
        "throughput is requests / wall time, server CPU is the server process and its workers "
        "per request. Ratios are Loopline / bare at the same concurrency.\n",
        f"**Goal: Loopline's p50 within {goal['p50_ratio_max']:g}× the bare app's at every "
        f"concurrency, and its peak throughput at least 1/{goal['p50_ratio_max']:g} = "
        f"{goal['rps_ratio_min']:.2f}× the bare app's.**\n",
        "| Policy | "
        + " | ".join(f"p50 ratio, {level} client{'s' if level != 1 else ''}" for level in levels)
        + " | Peak req/s ratio | Verdict |",
        "|---|" + "---:|" * len(levels) + "---:|---|",
    ]
    for key, ratio in ro["ratios"].items():
        cells = []
        for level in levels:
            value = ratio[str(level)]["p50"]
            over = value > goal["p50_ratio_max"]
            cells.append(f"**{value:.2f}×**" if over else f"{value:.2f}×")
        peak = ratio["max_rps"]
        peak_cell = f"**{peak:.2f}×**" if peak < goal["rps_ratio_min"] else f"{peak:.2f}×"
        lines.append(
            f"| {key} | {' | '.join(cells)} | {peak_cell} | {_verdict(ratio['meets_goal'])} |"
        )
    bare_peak = ro["bare"]["max_rps"]
    peaks = ", ".join(f"{key} {v['max_rps']:.0f}" for key, v in ro["loopline"].items())
    spans = {key: [r[str(x)]["cpu"] for x in levels] for key, r in ro["ratios"].items()}
    cpu = "; ".join(f"{key} {min(v):.2f}–{max(v):.2f}×" for key, v in spans.items())
    ready = ro.get("ready_seconds", {}).get("loopline")
    load = (c.get("loadavg_before") or [math.nan])[0], (c.get("loadavg_after") or [math.nan])[0]
    lines += [
        "",
        "Bold ratios miss the goal. Peak throughput is the best of the concurrency levels: "
        f"bare app {bare_peak:.0f} requests/s, Loopline {peaks}. Server CPU per request, "
        f"Loopline / bare, which depends far less on other load than latency does: {cpu} "
        "(`shadow` scores every request twice). "
        f"{ro['errors']} errors in all. Loopline's server was ready {_s(ready)} s after its "
        f"start; 1-min load average {_s(load[0])} before the step and {_s(load[1])} after, on "
        f"{c.get('cpus', 'n/a')} cores.\n",
        rollouts_table(ro),
    ]
    return "\n".join(lines) + "\n"


def _drift_goal_applies(big: dict[str, Any]) -> bool:
    """The 15 s goal is for 1M rows; a quick run's smaller window says nothing about it."""
    return bool(big["rows"] >= 1_000_000)


def _drift(d: dict[str, Any] | None) -> str:
    title = "## 5. Drift detection"
    if d is None:
        return title + "\n\nNot measured in this run.\n"
    from drift_quality import markdown as drift_markdown

    big = d["large_window"]
    t = big["seconds"]
    nulls = [row for row in d["rates"] if row["truth"] == "none"]
    drifted = [row for row in d["rates"] if row["truth"] != "none"]
    caught = [row["scenario"] for row in drifted if row["event"] >= 0.5]
    applies = _drift_goal_applies(big)

    def against_goal(seconds: float) -> str:
        if not applies:
            return f"{seconds:.1f} s"
        met = "met" if seconds <= DRIFT_GOAL_S else "**not met**"
        return f"{seconds:.1f} s ({seconds / DRIFT_GOAL_S:.2f}× the goal, {met})"

    full_ratio = t["full"] / t["sampled_50k"] if t["sampled_50k"] else math.nan
    goal = (
        f"**Goal: a 1,000,000-row × 20-column window within {DRIFT_GOAL_S:g} s.** "
        + (
            ""
            if applies
            else f"This run's window has {big['rows']:,} rows (`--quick`), so the goal is not "
            "assessed. "
        )
        + f"On {big['rows']:,} rows × {big['columns']} columns in a warm process: "
        f"{against_goal(t['sampled_50k'])} sampled to 50,000 rows per side (the default); "
        f"{against_goal(t['sampled_50k_with_report'])} with the HTML + JSON report as well, "
        f"as the monitor runs it; {against_goal(t['full'])} on all rows. **All rows take "
        f"{full_ratio:.1f}× the default sampled time**; what sampling changes in the scores "
        "is in the subsection below.\n\n"
        "Detection, in short: false alarms (any event on a no-drift window) "
        + ", ".join(
            f"{_pct(row['event'])} of {row['windows']} for *{row['scenario']}*" for row in nulls
        )
        + f"; {len(caught)} of {len(drifted)} drift scenarios raised one in at least half "
        "their windows.\n"
    )
    body = drift_markdown(d)
    # The module's own heading carries no section number; the rest of its text is kept.
    first, _, rest = body.partition("\n")
    if first.startswith("## "):
        body = rest.lstrip("\n")
    return f"{title}\n\n{goal}\n{body}"


def _pit(r: dict[str, Any]) -> str:
    p = r["pit"]
    m = p["manifest"]
    joins = {(j["engine"], j["rows"]): j for j in p["joins"]}
    verdicts = {v["rows"]: v for v in p["verify"]}
    features = sum(len(s["features"]) for s in m["sources"])
    lines = [
        "## 4. Point-in-time retrieval\n",
        f"Feature sources: {m['source_rows']:,} rows per feature view ({m['customers']:,} "
        f"customers × up to {m['days']} daily snapshots, from the built-in generator), "
        f"{len(m['sources'])} views with {features} features plus the on-demand view, all "
        f"behind feature service `{m['service']}`. Entity frames of exactly the sizes below are "
        "sampled from the source rows, each timestamp moved up to 3 days later so every row "
        "needs the latest value at or before it rather than an exact match.\n",
        "- **Feast**: `loopline.features.historical_features` → `get_historical_features` on "
        "the feature service, duckdb offline store, `.to_df()`, back in entity-frame order.",
        "- **DuckDB**: one `ASOF LEFT JOIN` per source parquet on `customer_id` and "
        "`event_timestamp <=` the entity's, the views' TTL applied, the two on-demand ratios "
        "computed in SQL, ordered by row (`asof_sql` in `benchmarks/pit.py`).",
        "",
        "Each join runs in its own process after a 1,000-row warm-up call; wall time covers the "
        "call only. Peak RSS is the process's high-water mark during the join (reset after the "
        "warm-up), with the RSS before it in brackets.\n",
        "| Entity rows | Feast s | DuckDB s | Feast / DuckDB | Feast peak RSS | DuckDB peak RSS "
        "| Same values |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for size in r["sizes"]:
        f, d = joins.get(("feast", size)), joins.get(("duckdb", size))
        if not f or not d:
            continue
        v = verdicts.get(size, {})
        same = (
            f"yes, all {size:,} rows × {len(v['features'])} features"
            if v.get("agree")
            else f"**no**: {v.get('mismatched_rows')} rows differ {v.get('mismatches_by_column')}"
        )
        lines.append(
            f"| {size:,} | {f['seconds']:.2f} | {d['seconds']:.2f} | "
            f"**{f['seconds'] / d['seconds']:.1f}×** | {_mib(f['peak_rss_mib'])} "
            f"({_mib(f['rss_before_mib'])}) | {_mib(d['peak_rss_mib'])} "
            f"({_mib(d['rss_before_mib'])}) | {same} |"
        )
    warm = [
        f"{j['warmup_seconds']:.1f} s (before the {j['rows']:,}-row join)"
        for j in p["joins"]
        if j["engine"] == "feast"
    ]
    lines += [
        "",
        "Verification compares every row of both outputs, in entity-frame order: strings "
        "exactly, numbers to a relative 1e-9. "
        + (
            "Both joins returned the same values for every row and feature."
            if all(v.get("agree") for v in p["verify"])
            else "**They disagreed**; see the table."
        ),
        "",
        f"Feast's 1,000-row warm-up call, the first retrieval in its process, took "
        f"{' and '.join(warm)}: it imports the offline-store stack and scans the sources.",
        "",
        "Why the gap grows with size: Feast's duckdb offline store (via ibis) joins each entity "
        "row to every earlier source row of its key within the TTL and keeps the latest with a "
        "window function, so the intermediate result is entity rows × snapshots per customer; "
        "an ASOF join finds the one matching row per entity row directly.",
    ]
    return "\n".join(lines) + "\n"


def _slowest_page(dash: dict[str, Any]) -> tuple[float, str]:
    page, times = max(dash["pages"].items(), key=lambda item: item[1]["cold_s"])
    return times["cold_s"], page


def _dashboard(dash: dict[str, Any] | None) -> str:
    title = "## 6. Dashboard page renders"
    if dash is None:
        return title + "\n\nNot measured in this run.\n"
    sizes = dash["sizes"]
    repeats = dash.get("repeats")
    over = [
        page
        for page, t in dash["pages"].items()
        if max(t["cold_s"], t["warm_max_s"]) >= DASHBOARD_GOAL_S
    ]
    slowest, slowest_page = _slowest_page(dash)
    seeded = (
        f"seeded in {dash['seed_s']:.0f} s before measuring"
        if dash.get("seed_s")
        else "seeded before this run"
    )
    lines = [
        f"{title}\n",
        "Every page of the Streamlit dashboard rendered through Streamlit's `AppTest` (the page "
        "script as the server runs it, minus the browser) on a seeded state of "
        f"{sizes['runs']:,} training runs, {sizes['versions']:,} model versions and "
        f"{sizes['windows']:,} drift windows, written through the real stores ({seeded}). "
        "Imports are "
        "paid before measuring, as a running server pays them once. *Cold* is the best of two "
        "renders right after `st.cache_data.clear()` (every loader reads its source); *warm* "
        f"is the median of {repeats if repeats else 'several'} reruns with the caches filled, "
        "with the slowest of them beside it. The service and Prefect are left out (the "
        'overview shows its "not reachable" notes).\n',
        f"**Goal: each page under {DASHBOARD_GOAL_S:g} s.** "
        + (
            f"**Goal met**: the slowest page, *{slowest_page}*, took "
            f"{slowest:.2f} s cold, {slowest / DASHBOARD_GOAL_S:.2f}× the goal."
            if not over
            else f"**Goal not met** for {', '.join(over)} "
            f"(slowest: *{slowest_page}*, {slowest:.2f} s cold, "
            f"{slowest / DASHBOARD_GOAL_S:.2f}× the goal)."
        )
        + "\n",
        "| Page | Cold s | Warm s | Warm max s | Cold / goal |",
        "|---|---:|---:|---:|---:|",
    ]
    for page, t in dash["pages"].items():
        ratio = t["cold_s"] / DASHBOARD_GOAL_S
        cell = f"**{ratio:.2f}×**" if ratio >= 1 else f"{ratio:.2f}×"
        lines.append(
            f"| {page} | {t['cold_s']:.2f} | {t['warm_s']:.2f} | {t['warm_max_s']:.2f} | {cell} |"
        )
    lines += [
        "",
        "The drift page normally shows the last 7 days; *drift (all windows)* is the same page "
        f"over all {sizes['windows']:,} windows.",
    ]
    return "\n".join(lines) + "\n"


def _verdicts(v: dict[str, Any] | None) -> str:
    title = "## 7. Rollout verdicts"
    if v is None:
        return title + "\n\nNot measured in this run.\n"
    from rollout_verdicts import markdown as verdicts_markdown

    return f"{title}\n\n{verdicts_markdown(v)}\n"


def _method(r: dict[str, Any]) -> str:
    k = r["knobs"]
    return (
        "## How it is measured\n\n"
        "- `benchmarks/run.py` copies `params.yaml`, `dvc.yaml`, `feature_repo/`, `bentos/`, "
        "`flows/` and `src/` into a temporary git repo with its own `LOOPLINE_HOME` and puts "
        "that copy's code first on `PYTHONPATH`; the repository's `.loopline/` is never used.\n"
        "- Demo stages: each line the demo prints, and each line of the serving log, is "
        "timestamped on arrival (`PYTHONUNBUFFERED=1`). Prefect logs every task and flow run "
        "as it finishes, which bounds ingest, features, train, evaluate and package; the "
        "generator's start and end are seen on disk (`data/incoming/` appears, the parquet's "
        "mtime); serving-ready ends at BentoML's `Service … initialized` line. Orchestration is "
        "the lifecycle flow's span minus its tasks.\n"
        f"- Serving: {k['calls']:,} timed calls per in-process and sequential HTTP measurement "
        f"after {k['warmup']} warm-up calls; {k['load']:,} requests split over {k['clients']} "
        "threads with one httpx client each for throughput. Percentiles are nearest-rank. "
        "The worker-thread rows and the `OMP_NUM_THREADS=1` server use 30 % and 50 % of those "
        "call counts.\n"
        "- Rollout policies: `benchmarks/serving_rollouts.py` on the demo's copy; its server "
        "reads a temporary registry holding copies of two of the copy's version records, so "
        "the copy's registry is left as it was. Percentiles are nearest-rank.\n"
        "- Drift: `benchmarks/drift_quality.py` in its own process and project copy; windows "
        "and the 1M-row frames come from the built-in generator with fixed seeds.\n"
        "- Rollout verdicts: `benchmarks/rollout_verdicts.py` in its own process; models "
        "trained on generator data, rollouts replayed from a scored pool with one seed each, "
        "decided by `loopline.monitoring.verdict.decide` with the rule from `params.yaml`.\n"
        "- Dashboard: `benchmarks/dashboard.py` seeds a fresh project copy through the real "
        "stores (`tests/dashboard/seeding.py`), then renders the repository's "
        "`dashboard/` pages against it.\n"
        "- Load: a sampler reads `/proc` every second and splits CPU time between this "
        "benchmark's process tree and everything else.\n"
        "- Everything listens on and talks to 127.0.0.1 only.\n"
    )
