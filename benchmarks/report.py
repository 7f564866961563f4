"""docs/benchmarks.md from one run's results: every number beside its baseline."""

from __future__ import annotations

import math
from typing import Any

from means_report import means_section
from scale_report import candidates_section, scale_section
from serving_report import goals_line, method_lines, rollouts_section, serving_section

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


def render(r: dict[str, Any]) -> str:
    parts = [
        _header(r),
        _machine(r),
        _demo(r.get("demo")),
        serving_section(r),
        rollouts_section(r.get("serving_rollouts")),
        means_section(r),
        _pit(r) if r.get("pit") else "## 4. Point-in-time retrieval\n\nNot measured in this run.\n",
        _drift(r.get("drift")),
        _dashboard(r.get("dashboard")),
        _verdicts(r.get("verdicts")),
        scale_section(r),
        candidates_section(r),
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
    serving = goals_line(r)
    if serving:
        lines.append(serving)
    pit = _pit_goal(r)
    if pit:
        lines.append(pit)
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


# The goal for Loopline's offline store: within this factor of the hand-written join.
PIT_GOAL_RATIO = 1.5


def render_pit(r: dict[str, Any]) -> str:
    """The report of ``run.py --only pit``: the machine and the point-in-time section."""
    header = (
        "# Benchmarks: point-in-time retrieval only\n\n"
        "Measured alone by `python benchmarks/run.py --only pit` "
        f"({r['bench_seconds'] / 60:.1f} min); `docs/benchmarks.md` keeps the full run's numbers.\n"
    )
    goal = _pit_goal(r)
    return "\n".join([header + (f"\n{goal}\n" if goal else ""), _machine(r), _pit(r)])


def _pit_runs(r: dict[str, Any]) -> tuple[dict[Any, Any], dict[Any, Any]]:
    p = r["pit"]
    joins = {(j["engine"], j["rows"]): j for j in p["joins"]}
    # Results from before the Loopline store verified Feast's output only, without "engine".
    verdicts = {(v.get("engine", "feast"), v["rows"]): v for v in p["verify"]}
    return joins, verdicts


def _pit_goal(r: dict[str, Any]) -> str:
    if not r.get("pit"):
        return ""
    joins, _ = _pit_runs(r)

    def ratios(engine: str) -> list[tuple[int, float]]:
        return [
            (size, joins[(engine, size)]["seconds"] / joins[("duckdb", size)]["seconds"])
            for size in r["sizes"]
            if (engine, size) in joins and ("duckdb", size) in joins and size >= 1_000_000
        ]

    parts = []
    for engine, what in (("loopline", "the whole service"), ("loopline_views", "views only")):
        found = ratios(engine)
        if found:
            met = "met" if max(x for _, x in found) <= PIT_GOAL_RATIO else "not met"
            at = ", ".join(f"{x:.2f}× at {size:,} rows" for size, x in found)
            parts.append(f"{what} {at} ({met})")
    if not parts:
        return ""
    return (
        "- Point-in-time (§4): Loopline's offline store through Feast's API against the "
        f"hand-written ASOF join (goal ≤ {PIT_GOAL_RATIO:g}×): " + "; ".join(parts) + "."
    )


def _same(v: dict[str, Any] | None, size: int) -> str:
    if v is None:
        return "not verified"
    if v.get("agree"):
        return f"yes, all {size:,} rows × {len(v['features'])} features"
    return f"**no**: {v.get('mismatched_rows')} rows differ {v.get('mismatches_by_column')}"


def _pit(r: dict[str, Any]) -> str:
    p = r["pit"]
    m = p["manifest"]
    joins, verdicts = _pit_runs(r)
    features = sum(len(s["features"]) for s in m["sources"])
    feast_max = p.get("feast_max_rows")
    on_demand_max = p.get("on_demand_max_rows")
    lines = [
        "## 4. Point-in-time retrieval\n",
        f"Feature sources: {m['source_rows']:,} rows per feature view ({m['customers']:,} "
        f"customers × up to {m['days']} daily snapshots, from the built-in generator), "
        f"{len(m['sources'])} views with {features} features plus the on-demand view, all "
        f"behind feature service `{m['service']}`. Entity frames of exactly the sizes below are "
        "sampled from the source rows (with repeats when larger than the sources), each "
        "timestamp moved up to 3 days later so every row needs the latest value at or before "
        "it rather than an exact match.\n",
        "- **Hand-written** (the baseline): one `ASOF LEFT JOIN` per source parquet on "
        "`customer_id` and `event_timestamp <=` the entity's, the views' TTL applied, the two "
        "on-demand ratios computed in SQL, ordered by row (`asof_sql` in `benchmarks/pit.py`).",
        "- **Loopline**: `loopline.features.historical_features` → Feast's "
        f"`get_historical_features` on `{m['service']}` with the project's offline store, "
        "`loopline.feast_store.LooplineOfflineStore` (Feast's duckdb store with one ASOF join "
        "per feature view, TTL and created-time ties as Feast), `.to_df()` (Feast's retrieval "
        "job, so Feast runs the on-demand view), back in entity-frame order.",
        "- **Loopline, views only**: the same call on a service of the two batch views without "
        "the on-demand view: the offline store without Feast's python-mode transform.",
        "- **Feast**: Loopline's call with Feast's own `duckdb` offline store in its place.",
        "",
        "Each join runs in its own process after a 1,000-row warm-up call; wall time covers the "
        "call only. Peak RSS is the process's high-water mark during the join (reset after the "
        "warm-up), with the RSS before it in brackets. Ratios are to the hand-written join of "
        "the same size; the last column compares each output with the hand-written one.\n",
        "| Entity rows | Engine | Seconds | × hand-written | Peak RSS | Same values |",
        "|---:|---|---:|---:|---:|---|",
    ]
    names = {
        "duckdb": "Hand-written ASOF join",
        "loopline": "Loopline",
        "loopline_views": "Loopline, views only",
        "feast": "Feast (duckdb store)",
    }
    for size in r["sizes"]:
        base = joins.get(("duckdb", size))
        if not base:
            continue
        for engine, name in names.items():
            j = joins.get((engine, size))
            if j is None:
                reason = {"feast": feast_max, "loopline": on_demand_max}.get(engine)
                if reason is not None and size > reason:
                    lines.append(f"| {size:,} | {name} | not run (see below) | | | |")
                continue
            same = "(baseline)" if engine == "duckdb" else _same(verdicts.get((engine, size)), size)
            lines.append(
                f"| {size:,} | {name} | {j['seconds']:.2f} | "
                f"**{j['seconds'] / base['seconds']:.2f}×** | "
                f"{_mib(j['peak_rss_mib'])} ({_mib(j['rss_before_mib'])}) | {same} |"
            )

    if feast_max is not None and any(size > feast_max for size in r["sizes"]):
        lines += [
            "",
            f"Feast's own store is not run above {feast_max:,} entity rows: its join keeps every "
            "earlier source row of each entity row before choosing the latest, so memory grows "
            "with entity rows × snapshots per customer (about 10 GiB at 1M rows here); 10M rows "
            "would not fit in this machine's memory.",
        ]
    if on_demand_max is not None and any(size > on_demand_max for size in r["sizes"]):
        lines += [
            "",
            f"The whole service is not retrieved above {on_demand_max:,} rows: Feast runs a "
            "python-mode on-demand view by turning every column of the joined result into "
            "Python lists (`pa_table.to_pydict()`), whatever the offline store; at 10M rows "
            "that process passed 14 GiB and was stopped. The views-only rows measure the store "
            "at that size.",
        ]

    parts = [j for j in p["joins"] if j.get("parts_seconds")]
    if parts:
        lines += [
            "",
            "Where the time of the two Feast paths goes: the offline store's query into Arrow "
            "(`RetrievalJob._to_arrow_internal`), then Feast's python-mode on-demand view "
            "(`transform_arrow`, which turns every column of the result into Python lists), "
            "then the rest (Arrow to pandas, restoring entity-frame order). The last column is "
            "the query alone against the whole hand-written join, ratios included.\n",
            "| Engine | Entity rows | Total s | Store query s | On-demand view s | Rest s "
            "| Query / hand-written |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for j in sorted(parts, key=lambda j: (j["rows"], j["engine"])):
            q, odfv = j["parts_seconds"]["query"], j["parts_seconds"]["on_demand"]
            base = joins.get(("duckdb", j["rows"]))
            ratio = f"{q / base['seconds']:.2f}×" if base else "n/a"
            lines.append(
                f"| {names.get(j['engine'], j['engine'])} | {j['rows']:,} | {j['seconds']:.2f} | "
                f"{q:.2f} | {odfv:.2f} | "
                f"{j['seconds'] - q - odfv:.2f} | {ratio} |"
            )

    lines += [
        "",
        "Same values: every row of each output compared with the hand-written join's, in "
        "entity-frame order: strings exactly, numbers to a relative 1e-9.",
    ]

    warm = [
        f"{j['engine']} {j['warmup_seconds']:.1f} s (before the {j['rows']:,}-row join)"
        for j in p["joins"]
        if j["engine"] != "duckdb"
    ]
    lines += [
        "",
        f"The 1,000-row warm-up calls, the first retrieval in their process: {', '.join(warm)}; "
        "they import the offline-store stack and scan the sources.",
        "",
        "Why the gap grows with size: Feast's duckdb offline store (via ibis) joins each entity "
        "row to every earlier source row of its key within the TTL and keeps the latest with a "
        "window function over string row ids, so the intermediate result is entity rows × "
        "snapshots per customer; an ASOF join finds the one matching row per entity row directly.",
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
        + method_lines(r)
        + "- Drift: `benchmarks/drift_quality.py` in its own process and project copy; windows "
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
