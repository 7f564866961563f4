"""The "10M rows" section of docs/benchmarks.md: every stage's time and peak memory by size."""

from __future__ import annotations

import math
from typing import Any


def _s(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _mem(mib: float | None) -> str:
    if mib is None:
        return "n/a"
    return f"{mib / 1024:.2f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"


def _by_stage(size: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["stage"]: row for row in size["stages"]}


def slope(small: dict[str, Any], big: dict[str, Any], rows: tuple[int, int]) -> tuple[float, float]:
    """Seconds per million rows between two sizes, and the exponent of time in rows."""
    t1, t2 = small["seconds"], big["seconds"]
    per_million = (t2 - t1) / ((rows[1] - rows[0]) / 1e6)
    exponent = math.log(t2 / t1) / math.log(rows[1] / rows[0]) if t1 > 0 and t2 > 0 else math.nan
    return per_million, exponent


def scale_section(r: dict[str, Any]) -> str:
    s = r.get("scale")
    title = "## 8. 10M rows: every stage by dataset size"
    if not s:
        return f"{title}\n\nNot measured in this run (`python benchmarks/run.py --only scale`).\n"
    sizes = s["sizes"]
    budget = s["budget_mib"]
    names = [row["stage"] for row in sizes[0]["stages"]]
    for size in sizes[1:]:
        names += [n for n in _by_stage(size) if n not in names]
    heads = [f"{z['size']} ({z.get('rows', 0):,} rows)" for z in sizes]
    lines = [
        title,
        "",
        "Each stage runs in a child process of its own, in pipeline order, on a project copy "
        "whose `generator.customers` x `generator.days` give the rows shown (the built-in "
        "dataset; `default` is params.yaml's own). Peak RSS is the highest sum of resident "
        f"memory over the child and all its descendants ({s['sampler']}); the budget is "
        f"{_mem(budget)} per stage. `run` is the whole `loopline run` (Prefect flows, the contract "
        "checked once, publishing) on a fresh copy given the same batch. Reproduce with "
        "`python benchmarks/run.py --only scale`.",
        "",
        "| Stage | " + " | ".join(f"{h} s / peak" for h in heads) + " | s per 1M rows | exponent |",
        "|---|" + "---:|" * len(heads) + "---:|---:|",
    ]
    over: list[str] = []
    for name in names:
        cells = []
        rows = [_by_stage(z).get(name) for z in sizes]
        for z, row in zip(sizes, rows, strict=True):
            if row is None:
                cells.append("n/a")
                continue
            failed = "" if row["returncode"] == 0 else " (failed)"
            peak = row["peak_rss_mib"]
            flag = " **over**" if peak > budget else ""
            if peak > budget:
                over.append(f"{name} at {z['size']} ({_mem(peak)})")
            cells.append(f"{_s(row['seconds'])} s / {_mem(peak)}{flag}{failed}")
        per, exp = math.nan, math.nan
        known = [(z, row) for z, row in zip(sizes, rows, strict=True) if row and z.get("rows")]
        big = [(z, row) for z, row in known if z["size"] != "default"]
        if len(big) >= 2:
            (z1, r1), (z2, r2) = big[0], big[-1]
            per, exp = slope(r1, r2, (z1["rows"], z2["rows"]))
        exp_text = "n/a" if math.isnan(exp) else f"{exp:.2f}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_s(per)} | {exp_text} |")
    lines += ["", _verdict(s, sizes, over)]
    what = {row["stage"]: row.get("what", "") for z in sizes for row in z["stages"]}
    lines += ["", "What each stage covers:", ""]
    lines += [f"- `{name}`: {what.get(name, '')}" for name in names]
    return "\n".join(lines) + "\n"


def _verdict(s: dict[str, Any], sizes: list[dict[str, Any]], over: list[str]) -> str:
    memory = (
        "Every stage stayed within the memory budget at every size."
        if not over
        else "Over the memory budget: " + ", ".join(over) + "."
    )
    biggest = sizes[-1]
    run = _by_stage(biggest).get("run")
    if run is None:
        return memory
    goal = s["run_goal_seconds"]
    met = "met" if run["seconds"] <= goal and run["returncode"] == 0 else "**not met**"
    return (
        f"{memory} The whole `loopline run` at {biggest['size']} took {_s(run['seconds'])} s "
        f"(goal {goal:.0f} s: {met}) with a peak of {_mem(run['peak_rss_mib'])}."
    )


def candidates_section(r: dict[str, Any]) -> str:
    c = r.get("candidates")
    if not c:
        return ""
    customers, days = c["shape"]
    runs = c["runs"]
    base = runs[0]
    lines = [
        "### The candidates step by task runner",
        "",
        f"One project of {customers:,} customers x {days} days ({runs[0]['train_rows']:,} "
        f"training rows, {runs[0]['candidates']} candidates of params.yaml, same seed), its "
        "train flow run once per task runner, each in a process of its own. *Fit wall* is "
        "the mapped fits from the first submission to the last result; *sum of fits* the sum of "
        "the candidates' own fit times. Reproduce with `python benchmarks/run.py --only scale`.",
        "",
        "| Runner | fit wall s | × one at a time | sum of fits s | flow s | processes "
        "| flow peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run['label']} | {_s(run['fit_wall_seconds'])} | "
            f"{base['fit_wall_seconds'] / run['fit_wall_seconds']:.2f}× | "
            f"{_s(run['fit_cpu_seconds'])} | {_s(run['flow_seconds'])} | {run['processes']} | "
            f"{_mem(run.get('peak_rss_mib'))} |"
        )
    same = (
        "the same selected model and the same metrics for every candidate on every runner"
        if c["same_outcome"]
        else "**the outcomes differ between runners**"
    )
    lines += ["", f"Outcome: {same}.", ""]
    return "\n".join(lines)


def render_scale(r: dict[str, Any]) -> str:
    """The report of ``run.py --only scale``: the machine and the scale section."""
    from report import _machine

    header = (
        "# Benchmarks: every stage at 10M rows only\n\n"
        "Measured alone by `python benchmarks/run.py --only scale` "
        f"({r['bench_seconds'] / 60:.1f} min); `docs/benchmarks.md` keeps the full run's numbers.\n"
    )
    return "\n".join([header, _machine(r), scale_section(r), candidates_section(r)])
