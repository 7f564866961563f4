"""Dashboard page render times on a seeded state (1,000 runs, 200 versions, 10,000 windows).

Each page is rendered with Streamlit's AppTest, which runs the page script exactly as the
server does, minus the browser. Imports are paid once before measuring (a running server
pays them once too); then every page is timed twice over:

- ``cold``: right after ``st.cache_data.clear()``, so every loader reads its source (the
  best of two such renders);
- ``warm``: the median of ``repeats`` reruns with the caches filled (a user clicking
  around within the TTLs).

The service and Prefect are left out on purpose (the overview then shows its "not
reachable" notes after one refused connection): their cost is a network round trip, not
the dashboard's. Run ``python benchmarks/dashboard.py --out results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SIZES = {"runs": 1000, "versions": 200, "windows": 10_000}
COLD_REPEATS = 2


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure_pages(
    project: Path | None = None, *, repeats: int = 5, user: str = "olivia"
) -> dict[str, Any]:
    """Seconds to render each page (cold and warm caches) on a seeded state.

    ``project`` is seeded first unless it already holds a seeded state (a registry
    database); by default a temporary folder is used. Returns
    ``{"sizes": {...}, "pages": {page: {"cold_s", "warm_s", "warm_max_s"}}, "seed_s"}``.
    Sets ``LOOPLINE_PROJECT``/``LOOPLINE_HOME`` in this process: run it in its own process.
    """
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    project = (project or Path(tempfile.mkdtemp(prefix="loopline-dash-bench-")) / "p").resolve()
    os.environ["LOOPLINE_PROJECT"] = str(project)
    os.environ["LOOPLINE_HOME"] = str(project / ".loopline")
    os.environ.pop("PREFECT_API_URL", None)
    os.environ["LOOPLINE_SERVING_URL"] = f"http://127.0.0.1:{_closed_port()}"
    from loopline.settings import Paths, tool_environment

    for key, value in tool_environment(Paths(project, project / ".loopline")).items():
        os.environ[key] = value

    from tests.dashboard.seeding import seed

    seed_s = 0.0
    if not (project / ".loopline" / "registry.db").exists():
        started = time.perf_counter()
        seed(project, **SIZES)
        seed_s = time.perf_counter() - started

    from streamlit.testing.v1 import AppTest

    sys.path.insert(0, str(REPO / "dashboard"))  # the pages' data layer lives beside them
    from loaders.common import page_scripts

    pages = page_scripts()
    app = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=120)
    app.run()
    app.session_state["loopline_user"] = user
    app.run()
    for page in pages.values():  # pay every import once, as a long-running server does
        app.switch_page(page).run()
        _check(app, page)

    results: dict[str, Any] = {}
    for name, page in pages.items():
        app.switch_page(page)
        results[name] = _time(app, page, repeats)
    # The drift page over its whole history: all 10,000 windows instead of the last 7 days.
    app.switch_page(pages["drift"]).run()
    app.button_group(key="drift_period").set_value("all")
    results["drift (all windows)"] = _time(app, pages["drift"], repeats)
    return {"sizes": SIZES, "seed_s": round(seed_s, 1), "pages": results}


def _time(app: Any, page: str, repeats: int) -> dict[str, float]:
    import streamlit as st

    colds = []
    for _ in range(COLD_REPEATS):
        st.cache_data.clear()
        started = time.perf_counter()
        app.run()
        colds.append(time.perf_counter() - started)
        _check(app, page)
    cold = min(colds)  # the best of a few: other processes on the machine only add time
    warm = []
    for _ in range(repeats):
        started = time.perf_counter()
        app.run()
        warm.append(time.perf_counter() - started)
    return {
        "cold_s": round(cold, 3),
        "warm_s": round(statistics.median(warm), 3),
        "warm_max_s": round(max(warm), 3),
    }


def _check(app: Any, page: str) -> None:
    if app.exception:
        raise RuntimeError(f"{page} raised: {app.exception[0].value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="seed (or reuse) this project folder")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    results = measure_pages(args.project, repeats=args.repeats)
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
