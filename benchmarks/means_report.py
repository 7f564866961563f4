"""The serving section's second half: feature reads, and each means of speed alone."""

from __future__ import annotations

from typing import Any


def means_section(r: dict[str, Any]) -> str:
    """Markdown for ``feast_read``, ``online_read`` and ``serving_means`` results, if any."""
    import feast_read
    import online_read
    import serving_means

    parts = []
    if r.get("feast_read"):
        parts.append(feast_read.render(r["feast_read"]))
    if r.get("online_read"):
        parts.append(online_read.render(r["online_read"]))
    means = r.get("serving_means")
    if means:
        best, selected = means["models"]["best_metric"][0], means["models"]["selected"][0]
        parts.append(
            "### Each means of serving speed, turned on one at a time\n\n"
            f"`benchmarks/serving_means.py`: the service started once per row on the demo's "
            f"copy, `wrk -t1` for {means['seconds']} s at 1 and 32 connections, then one "
            f"1,000-customer request 10 times. Rows 1-4 serve `{best}` (the best holdout "
            f"metric: what selection picked before cost-aware selection), row 5 onwards "
            f"`{selected}` (picked by cost-aware selection). Every row reads features through "
            f"Loopline's online reader (measured alone above). {means['cpus']} cores; load "
            f"average before {means['loadavg_before'][0]:.2f}, after "
            f"{means['loadavg_after'][0]:.2f}.\n\n" + serving_means.render(means) + "\n"
        )
    if not parts:
        return ""
    return "## 3b. Feature reads, and what each means of serving speed contributed\n\n" + "\n".join(
        parts
    )
