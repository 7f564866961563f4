"""What the dashboard reads and starts, behind Streamlit's caches.

Each loader reads from the tool that owns the data: the registry and its history, the
training runs and drift windows beside it, the prediction log, the service's Prometheus
``/metrics``, Prefect's API and DVC's cache. Loaders take plain strings (URLs, folders)
so the caches are keyed by where they read; pages hold the layout. Actions never write
to the registry: they start the matching Prefect deployment run and record who and why.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from loopline.settings import PROJECT_ENV, STATE_ENV, Paths
from loopline.users import User

try:  # Prefect's own JSON parser: three times faster on 10,000 windows of feature scores
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads  # type: ignore[assignment]

if TYPE_CHECKING:
    import httpx
    import pandas as pd

    from loopline.config import Params
    from loopline.registry import Registry
    from loopline.tracking import Store

SERVING_URL_ENV = "LOOPLINE_SERVING_URL"
DEFAULT_SERVING_URL = "http://127.0.0.1:3000"
# How far back the live request rate, latency and error rate look.
LIVE_WINDOW_S = 60.0
MAX_SAMPLES = 240
MAX_CHART_BINS = 120
MAX_REJECTED = 200
MAX_ACTIONS_SHOWN = 50
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
# The dashboard's pages: script (relative to dashboard/), title, icon. app.py builds its
# navigation from this; tests and the benchmark visit every page through it.
PAGES = [
    ("pages/overview.py", "Overview", ":material/dashboard:"),
    ("pages/runs.py", "Runs", ":material/science:"),
    ("pages/models.py", "Models and promotions", ":material/rocket_launch:"),
    ("pages/drift.py", "Drift and quality", ":material/monitoring:"),
    ("pages/lineage.py", "Lineage", ":material/account_tree:"),
    ("pages/data.py", "Data", ":material/database:"),
]


def page_scripts() -> dict[str, str]:
    """Each page's script by short name (``overview`` → ``pages/overview.py``)."""
    return {Path(script).stem: script for script, _, _ in PAGES}


# Prefect deployment that carries out each dashboard action (see flows/deployments.py).
DEPLOYMENTS = {
    "promote": "promote/loopline",
    "approve": "approve/loopline",
    "traffic": "traffic/loopline",
    "rollback": "rollback/loopline",
    "retrain": "retrain/loopline",
}


# --- where to read -----------------------------------------------------------------------


def paths() -> Paths:
    """The project and state folders (activated once per distinct environment)."""
    return _activate(os.environ.get(PROJECT_ENV, ""), os.environ.get(STATE_ENV, ""))


@st.cache_resource(show_spinner=False)
def _activate(project: str, state: str) -> Paths:
    from loopline.settings import activate

    return activate(Path(project) if project else None)


WARM_IMPORTS = (
    "pandas",
    "pyarrow.parquet",
    "altair",
    "duckdb",
    "sqlalchemy",
    "alembic.command",
    "sklearn.metrics",
    "prometheus_client.parser",
    "loopline.registry",
    "loopline.lineage",
    "loopline.serving.predlog_read",
)
PREFECT_IMPORTS = ("prefect.client.orchestration", "prefect.client.schemas.filters")


@st.cache_resource(show_spinner=False)
def warm_up(registry_url: str, prefect: bool) -> threading.Thread:
    """Pay the slow imports and the registry migration in the background, once per server.

    Cold imports of pandas, Altair, SQLAlchemy, scikit-learn (and Prefect's client, when
    a Prefect API is set) cost seconds; paid while the first user is still typing a
    password, no page has to pay them.
    """
    import importlib

    modules = WARM_IMPORTS + (PREFECT_IMPORTS if prefect else ())

    def imports() -> None:
        for module in modules:
            try:
                importlib.import_module(module)
            except Exception:  # a page importing it will report the real error
                continue
        try:
            from loopline.registry import Registry

            with Registry(registry_url) as warmed:  # the migration, if one is due
                warmed.upgrade()
        except Exception:  # the pages report an unreachable registry themselves
            return

    thread = threading.Thread(target=imports, name="dashboard-warm-up", daemon=True)
    thread.start()
    return thread


@st.cache_data(ttl=60, show_spinner=False)
def params(params_file: str) -> Params:
    from loopline.config import load_params

    return load_params(Path(params_file))


def serving_url() -> str:
    return os.environ.get(SERVING_URL_ENV, DEFAULT_SERVING_URL).rstrip("/")


def prefect_api() -> str | None:
    """The Prefect API the dashboard reads runs from and starts actions on, if configured."""
    return os.environ.get("PREFECT_API_URL") or None


@st.cache_resource(show_spinner=False)
def http() -> httpx.Client:
    """One HTTP client for the service and Prefect probes (a new one costs ~0.1 s of TLS setup)."""
    import httpx

    return httpx.Client(timeout=1.5)


@st.cache_resource(show_spinner=False)
def registry(url: str) -> Registry:
    """One registry connection pool per URL, migrated once (it creates nothing else)."""
    from loopline.registry import Registry

    opened = Registry(url)
    opened.upgrade()
    return opened


@st.cache_resource(show_spinner=False)
def store(url: str) -> Store:
    from loopline.tracking import Store

    return Store(url).migrate()


# --- registry ----------------------------------------------------------------------------


@st.cache_data(ttl=5, show_spinner=False)
def versions(url: str) -> pd.DataFrame:
    """Every registered version, newest first, with its lineage keys and metrics as columns."""
    import pandas as pd

    rows = []
    for record in registry(url).list_versions():
        lineage = record.lineage
        rows.append(
            {
                "version": record.version,
                "model_name": record.model_name,
                "stage": record.stage.value,
                "created_at": record.created_at,
                "aliases": ", ".join(record.aliases),
                "pending_approver": record.pending_approver,
                "data_hash": lineage.get("data_hash"),
                "feature_service": lineage.get("feature_service"),
                "estimator": lineage.get("estimator"),
                "bento": lineage.get("bento"),
                **{name: value for name, value in sorted(record.metrics.items())},
            }
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values("created_at", ascending=False, ignore_index=True) if rows else frame


@st.cache_data(ttl=5, show_spinner=False)
def serving_state(url: str, model_name: str) -> dict[str, Any]:
    """What serves ``model_name`` now: champion, challenger, policy, and since when."""
    view = registry(url)
    champion = view.production(model_name)
    challenger = view.challenger(model_name)
    policy = view.policy(model_name)
    promoted_at = None
    if champion is not None:
        moves = [e.at for e in view.history(version=champion.version) if e.to_stage == "production"]
        promoted_at = moves[-1] if moves else champion.created_at
    return {
        "production": champion.version if champion else None,
        "production_metrics": champion.metrics if champion else {},
        "promoted_at": promoted_at,
        "challenger": challenger.version if challenger else None,
        "policy": policy.kind.value,
        "challenger_share": policy.challenger_share,
        "policy_updated_by": policy.updated_by,
        "policy_updated_at": policy.updated_at,
    }


@st.cache_data(ttl=5, show_spinner=False)
def history(url: str, model_name: str | None = None, version: str | None = None) -> pd.DataFrame:
    """Registry history entries, newest first, with the gate verdict when one was recorded."""
    import pandas as pd

    rows = []
    for entry in registry(url).history(model_name=model_name, version=version):
        gates = entry.details.get("gate_results")
        rows.append(
            {
                "seq": entry.seq,
                "at": entry.at,
                "actor": entry.actor,
                "action": entry.action.value,
                "version": entry.version,
                "from_stage": entry.from_stage.value if entry.from_stage else None,
                "to_stage": entry.to_stage.value if entry.to_stage else None,
                "reason": entry.reason,
                "gates": _gate_verdict(gates) if gates else None,
            }
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values("seq", ascending=False, ignore_index=True) if rows else frame


def _gate_verdict(gates: list[dict[str, Any]]) -> str:
    ran = [g for g in gates if not g.get("skipped")]
    passed = sum(1 for g in ran if g.get("passed"))
    return f"{passed}/{len(ran)} passed" + (f", {len(gates) - len(ran)} skipped" if ran else "")


@st.cache_data(ttl=5, show_spinner=False)
def gate_results(url: str, version: str) -> pd.DataFrame:
    """The gate checks last recorded for ``version`` (a promotion or a pending approval)."""
    import pandas as pd

    view = registry(url)
    gates: list[dict[str, Any]] = []
    for approval in view.pending_approvals():
        if approval.version == version:
            gates = list(approval.gate_results)
    if not gates:
        for entry in reversed(view.history(version=version)):
            if entry.details.get("gate_results"):
                gates = list(entry.details["gate_results"])
                break
    rows = [
        {
            "check": g.get("name"),
            "status": "SKIP" if g.get("skipped") else ("PASS" if g.get("passed") else "FAIL"),
            "value": g.get("value"),
            "threshold": g.get("threshold"),
            "detail": g.get("detail"),
        }
        for g in gates
    ]
    return pd.DataFrame(rows, columns=["check", "status", "value", "threshold", "detail"])


@st.cache_data(ttl=5, show_spinner=False)
def pending_approvals(url: str) -> list[dict[str, Any]]:
    return [
        {
            "version": a.version,
            "approver": a.approver,
            "requested_by": a.requested_by,
            "requested_at": a.requested_at,
            "reason": a.reason,
        }
        for a in registry(url).pending_approvals()
    ]


@st.cache_data(ttl=30, show_spinner=False)
def lineage_graph(url: str, version: str) -> dict[str, Any]:
    from loopline.lineage import build_graph, to_json

    return to_json(build_graph(registry(url), version))


@st.cache_data(ttl=30, show_spinner=False)
def versions_for_data(url: str, data_hash: str) -> list[str]:
    from loopline.lineage import versions_for_data as trained_on

    return [record.version for record in trained_on(registry(url), data_hash)]


def markers(url: str, model_name: str) -> pd.DataFrame:
    """Retrains (a version registered) and promotions (a version to production), over time."""
    import pandas as pd

    frame = history(url, model_name)
    if frame.empty:
        return pd.DataFrame(columns=["at", "event", "version", "actor"])
    retrain = frame["action"] == "register"
    promote = frame["to_stage"] == "production"
    chosen = frame[retrain | promote].assign(
        event=lambda f: f["action"].map(lambda a: "retrain" if a == "register" else "promotion")
    )
    return chosen[["at", "event", "version", "actor"]].sort_values("at", ignore_index=True)


# --- training runs -----------------------------------------------------------------------


@st.cache_data(ttl=30, show_spinner=False)
def runs(url: str) -> pd.DataFrame:
    """Every training run, newest first; parameters as ``param.*`` and metrics as columns."""
    import pandas as pd

    rows = []
    for run in store(url).runs():
        rows.append(
            {
                "run_id": run["run_id"],
                "started_at": run["started_at"],
                "model_name": run["model_name"],
                "selected": run["selected"],
                "metric": run["metric"],
                "data_hash": run["data_hash"],
                "feature_service": run["feature_service"],
                "flow_run_id": run["flow_run_id"],
                "candidates": len(run["candidates"] or []),
                **{f"param.{k}": _scalar(v) for k, v in sorted(run["params"].items())},
                **{k: v for k, v in sorted(run["metrics"].items())},
            }
        )
    return pd.DataFrame(rows)


def _scalar(value: Any) -> Any:
    return value if value is None or isinstance(value, int | float | str | bool) else str(value)


@st.cache_data(ttl=30, show_spinner=False)
def run_candidates(url: str, run_ids: tuple[str, ...]) -> pd.DataFrame:
    """Every candidate each of ``run_ids`` tried, one row per candidate."""
    import pandas as pd

    wanted = set(run_ids)
    rows = []
    for run in store(url).runs():
        if run["run_id"] in wanted:
            for candidate in run["candidates"] or []:
                rows.append({"run_id": run["run_id"], **candidate})
    return pd.DataFrame(rows)


# --- drift and live quality --------------------------------------------------------------

WINDOW_COLUMNS = [
    "id",
    "computed_at",
    "model_version",
    "window_start",
    "window_end",
    "rows",
    "drift_share",
    "drifted_features",
    "prediction_drift",
    "n_labels",
    "accuracy",
    "roc_auc",
    "report_html",
    "events",
]


WINDOW_TIMES = ("computed_at", "window_start", "window_end")


@st.cache_data(ttl=30, show_spinner=False)
def windows(url: str, model_name: str, period: str = "all") -> pd.DataFrame:
    """Monitored windows of ``model_name`` in ``period``, oldest first (no feature scores)."""
    frame = _window_frame(url, model_name, WINDOW_COLUMNS, since=window_start(period))
    frame["events"] = [
        ", ".join(_json(e) or []) if e not in ("[]", None) else "" for e in frame["events"]
    ]
    return frame


@st.cache_data(ttl=30, show_spinner=False)
def latest_window(url: str, model_name: str) -> dict[str, Any] | None:
    """The newest monitored window of ``model_name``, if any."""
    frame = _window_frame(url, model_name, WINDOW_COLUMNS, latest=True)
    return None if frame.empty else dict(frame.iloc[0])


def _window_frame(
    url: str,
    model_name: str,
    columns: list[str],
    *,
    since: datetime | None = None,
    latest: bool = False,
) -> pd.DataFrame:
    # The same rows as Store.windows(), read in one query with only the columns needed and
    # converted column-wise by pandas: per-row ORM objects and type conversions took
    # over a second for 10,000 windows. The filters still bind through the table's types.
    import pandas as pd
    from sqlalchemy import column, select

    from loopline.registry.schema import DriftWindowRow

    table = DriftWindowRow.__table__
    query: Any = select(*(column(c) for c in columns)).select_from(table)
    query = query.where(table.c.model_name == model_name)
    if since is not None:
        query = query.where(table.c.window_start >= since)
    order = table.c.window_start
    query = query.order_by(order.desc()).limit(1) if latest else query.order_by(order)
    with registry(url).engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(query).all(), columns=columns)
    for name in WINDOW_TIMES:
        if name in frame:
            frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
    return frame


def _json(value: Any) -> Any:
    # SQLite hands JSON columns back as text here; PostgreSQL's driver decodes them.
    return _loads(value) if isinstance(value, str | bytes) else value


@st.cache_data(ttl=30, show_spinner=False)
def feature_drift(url: str, model_name: str, period: str, max_bins: int = 60) -> pd.DataFrame:
    """Per feature and time bin: the share of windows where it drifted, and its mean score.

    The monitor records each feature as ``{score, method, threshold, drifted}``. The
    drifted share reads the same whatever the test (a p-value and a distance point in
    opposite directions); ``drifted`` is NaN where only bare scores were recorded.
    """
    import pandas as pd

    rows = _window_frame(
        url, model_name, ["window_start", "feature_scores"], since=window_start(period)
    )
    columns = ["bin", "feature", "drifted", "score"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    scores, flags = [], []
    for recorded in rows["feature_scores"]:
        score: dict[str, Any] = {}
        flag: dict[str, Any] = {}
        for feature, value in (_json(recorded) or {}).items():
            if isinstance(value, dict):
                score[feature], flag[feature] = value.get("score"), value.get("drifted")
            else:
                score[feature] = value
        scores.append(score)
        flags.append(flag)
    bins = rows["window_start"].dt.floor(bin_width(rows["window_start"], max_bins)).values
    long = [
        pd.DataFrame(values, dtype=float)
        .groupby(bins)
        .mean()
        .rename_axis("bin")
        .reset_index()
        .melt(id_vars="bin", var_name="feature", value_name=name)
        for values, name in ((flags, "drifted"), (scores, "score"))
    ]
    return long[1].merge(long[0], on=["bin", "feature"], how="left")[columns]


@st.cache_data(ttl=30, show_spinner=False)
def accuracy_over_time(folder: str, period: str, max_bins: int = 60) -> pd.DataFrame:
    """Live accuracy and label counts per model version per time bin, from the log."""
    import pandas as pd

    from loopline.serving.predlog_read import labelled_predictions

    frame = labelled_predictions(Path(folder), since=window_start(period), include_shadow=True)
    columns = ["bin", "model_version", "labels", "accuracy"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame["bin"] = frame["at"].dt.floor(bin_width(frame["at"], max_bins))
    frame["correct"] = frame["label"] == frame["actual"]
    grouped = frame.groupby(["bin", "model_version"], as_index=False)
    return grouped.agg(labels=("correct", "size"), accuracy=("correct", "mean"))[columns]


BIN_WIDTHS = ("1min", "5min", "15min", "1h", "3h", "6h", "12h", "1D", "7D", "30D")


def bin_width(times: pd.Series, max_bins: int) -> str:
    """The narrowest round width that puts ``times`` into at most ``max_bins`` bins."""
    import pandas as pd

    span = times.max() - times.min() if len(times) else pd.Timedelta(0)
    for width in BIN_WIDTHS:
        if span / pd.Timedelta(width) + 1 <= max_bins:  # flooring adds one bin at most
            return width
    return BIN_WIDTHS[-1]


@st.cache_data(ttl=30, show_spinner=False)
def live_accuracy(folder: str, since: datetime | None) -> pd.DataFrame:
    """Accuracy of labelled predictions per model version and arm since ``since``."""
    from loopline.serving.predlog_read import live_accuracy as measure

    return measure(Path(folder), since=since, by=("model_version", "arm"))


@st.cache_data(ttl=60, show_spinner=False)
def prediction_counts(folder: str) -> pd.DataFrame:
    """Predictions logged per model version and arm (shadow apart), with first and last."""
    import duckdb
    import pandas as pd

    from loopline.serving.predlog_read import partition_files

    files = [
        str(path)
        for partition in sorted((Path(folder) / "predictions").glob("date=*"))
        for path in partition_files(partition)
    ]
    columns = ["model_version", "arm", "shadow", "predictions", "first_at", "last_at"]
    if not files:
        return pd.DataFrame(columns=columns)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        relation = con.read_parquet(files, union_by_name=True, hive_partitioning=False)
        relation.create_view("predictions")
        return con.execute(
            'SELECT model_version, arm, shadow, count(*) AS predictions, min("at") AS first_at,'
            ' max("at") AS last_at FROM predictions GROUP BY ALL ORDER BY last_at DESC'
        ).df()


# --- the service's Prometheus metrics ----------------------------------------------------


@dataclass(frozen=True)
class MetricsSample:
    """One scrape of ``/metrics``: counter totals and the latency histogram's buckets."""

    at: float
    predictions: dict[str, float]  # "version|arm" -> total
    errors: dict[str, float]
    latency_buckets: dict[float, float]  # upper bound -> cumulative count, all arms
    latency_count: float
    latency_sum: float


@dataclass(frozen=True)
class LiveService:
    """The service as the dashboard sees it: up or not, and its recent traffic."""

    url: str
    error: str | None = None
    by_arm: list[dict[str, Any]] = field(default_factory=list)
    request_rate: float | None = None
    error_rate: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    window_s: float = 0.0
    total_predictions: float = 0.0
    total_errors: float = 0.0


@st.cache_data(ttl=2, show_spinner=False)
def _scrape(url: str) -> MetricsSample | str:
    import httpx

    try:
        response = http().get(f"{url}/metrics")
        response.raise_for_status()
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return parse_metrics(response.text, time.time())


def parse_metrics(text: str, at: float) -> MetricsSample:
    """The Loopline series of a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    predictions: dict[str, float] = {}
    errors: dict[str, float] = {}
    buckets: dict[float, float] = {}
    count = total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "loopline_predictions_total":
                key = f"{labels.get('model_version', '?')}|{labels.get('arm', '?')}"
                predictions[key] = predictions.get(key, 0.0) + sample.value
            elif sample.name == "loopline_errors_total":
                reason = labels.get("reason", "?")
                errors[reason] = errors.get(reason, 0.0) + sample.value
            elif sample.name == "loopline_prediction_latency_seconds_bucket":
                bound = float(labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name == "loopline_prediction_latency_seconds_count":
                count += sample.value
            elif sample.name == "loopline_prediction_latency_seconds_sum":
                total += sample.value
    return MetricsSample(at, predictions, errors, buckets, count, total)


@st.cache_resource(show_spinner=False)
def _samples(url: str) -> tuple[deque[MetricsSample], threading.Lock]:
    # Shared by every session: the rate is a difference between scrapes over time.
    return deque(maxlen=MAX_SAMPLES), threading.Lock()


def live_service(url: str) -> LiveService:
    """Scrape ``/metrics`` (at most every 2 s) and derive rates over the last minute."""
    sample = _scrape(url)
    if isinstance(sample, str):
        return LiveService(url=url, error=sample)
    kept, lock = _samples(url)
    with lock:
        if not kept or kept[-1].at != sample.at:
            if kept and sum(sample.predictions.values()) < sum(kept[-1].predictions.values()):
                kept.clear()  # the service restarted: its counters began again
            kept.append(sample)
        recent = [s for s in kept if s.at >= sample.at - LIVE_WINDOW_S]
    return summarize(url, recent)


def summarize(url: str, samples: list[MetricsSample]) -> LiveService:
    """Rates between the oldest and newest sample; latency from the histogram's deltas."""
    newest, oldest = samples[-1], samples[0]
    span = newest.at - oldest.at
    by_arm = []
    for key, total in sorted(newest.predictions.items()):
        version, arm = key.split("|", 1)
        before = oldest.predictions.get(key, 0.0)
        per_s = (total - before) / span if span > 0 else None
        by_arm.append({"model_version": version, "arm": arm, "predictions": total, "per_s": per_s})
    served = sum(newest.predictions.values())
    failed = sum(newest.errors.values())
    rate: float | None = None
    if span > 0:
        served_delta = served - sum(oldest.predictions.values())
        failed_delta = failed - sum(oldest.errors.values())
        buckets = {
            b: c - oldest.latency_buckets.get(b, 0.0) for b, c in newest.latency_buckets.items()
        }
        rate = served_delta / span
        error_rate = (
            failed_delta / (served_delta + failed_delta) if served_delta + failed_delta else None
        )
    else:  # one scrape so far: totals since the service started
        buckets = dict(newest.latency_buckets)
        error_rate = failed / (served + failed) if served + failed else None
    return LiveService(
        url=url,
        by_arm=by_arm,
        request_rate=rate,
        error_rate=error_rate,
        latency_p50_ms=_ms(histogram_quantile(0.5, buckets)),
        latency_p95_ms=_ms(histogram_quantile(0.95, buckets)),
        window_s=span,
        total_predictions=served,
        total_errors=failed,
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus's ``histogram_quantile``: linear within the bucket the rank falls in."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is all we know
            inside = count - lower_count
            return lower_bound + (bound - lower_bound) * (
                (rank - lower_count) / inside if inside else 0
            )
        lower_bound, lower_count = bound, count
    return lower_bound


# --- Prefect -----------------------------------------------------------------------------


@st.cache_data(ttl=10, show_spinner=False)
def prefect_up(api: str) -> str | None:
    """None when Prefect answers at ``api``; else why not."""
    import httpx

    try:
        http().get(f"{api.rstrip('/')}/health").raise_for_status()
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@st.cache_data(ttl=10, show_spinner=False)
def flow_runs(api: str, per_flow: int = 3) -> pd.DataFrame:
    """The last ``per_flow`` runs of each flow that has started (scheduled ones left out)."""
    import pandas as pd
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    started = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=[StateType.SCHEDULED]))
    )
    with _prefect_client(api) as client:
        found = client.read_flow_runs(
            flow_run_filter=started, sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=200
        )
        ids = list({run.flow_id for run in found})
        flows = client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(any_=ids))) if ids else []
    names = {flow.id: flow.name for flow in flows}
    rows = [
        {
            "flow": names.get(run.flow_id, str(run.flow_id)),
            "run": run.name,
            "state": run.state_name or (run.state.name if run.state else None),
            "started": run.start_time or run.expected_start_time,
            "duration_s": run.total_run_time.total_seconds() if run.total_run_time else None,
            "link": _ui_link(api, str(run.id)),
        }
        for run in found
    ]
    frame = pd.DataFrame(rows, columns=["flow", "run", "state", "started", "duration_s", "link"])
    return frame.groupby("flow", sort=True).head(per_flow).reset_index(drop=True)


def _ui_link(api: str, flow_run_id: str) -> str:
    ui = os.environ.get("PREFECT_UI_URL") or api.rstrip("/").removesuffix("/api")
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}"


def _prefect_client(api: str) -> Any:
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(
        api,
        api_key=os.environ.get("PREFECT_API_KEY"),
        auth_string=os.environ.get("PREFECT_API_AUTH_STRING"),
    )


# --- actions -----------------------------------------------------------------------------


class ActionUnavailable(RuntimeError):
    """The action cannot start here (no Prefect server, or its deployment is not served)."""


@dataclass(frozen=True)
class StartedAction:
    """A deployment run the dashboard started, and who started it why."""

    action: str
    deployment: str
    flow_run_id: str
    parameters: dict[str, Any]
    actor: str
    reason: str
    at: datetime
    link: str


def start_action(user: User, action: str, reason: str, **parameters: Any) -> StartedAction:
    """Start the Prefect deployment run behind ``action`` on behalf of ``user``.

    Only operators may act; a reason is required. The registry change itself happens in
    the flow (gates, audit trail); this records who asked, why, and which run does it.
    """
    if not user.can_act:
        raise PermissionError(f"{user.name} is a {user.role}: only operators can act")
    reason = reason.strip()
    if len(reason) < 3:
        raise ValueError("say why: a reason of at least 3 characters is required")
    if action not in DEPLOYMENTS:
        raise ValueError(f"unknown action {action!r}")
    api = prefect_api()
    if api is None:
        raise ActionUnavailable(
            "actions run as Prefect deployments: start the platform with `make up` "
            "(or set PREFECT_API_URL and run `loopline deployments`)"
        )
    down = prefect_up(api)
    if down is not None:
        raise ActionUnavailable(f"Prefect is not answering at {api}: {down}")
    parameters = {**parameters, "actor": user.name, "reason": reason}
    deployment = DEPLOYMENTS[action]
    run = _run_deployment(api, deployment, parameters, tags=["dashboard", f"actor:{user.name}"])
    started = StartedAction(
        action=action,
        deployment=deployment,
        flow_run_id=str(run),
        parameters=parameters,
        actor=user.name,
        reason=reason,
        at=datetime.now(UTC),
        link=_ui_link(api, str(run)),
    )
    record_action(paths(), started)
    return started


def _run_deployment(api: str, name: str, parameters: dict[str, Any], tags: list[str]) -> str:
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    try:
        with temporary_settings(updates={PREFECT_API_URL: api}):
            run = run_deployment(
                name=name, parameters=parameters, timeout=0, tags=tags, as_subflow=False
            )
    except ObjectNotFound as exc:
        raise ActionUnavailable(
            f"deployment {name} is not served: run `loopline deployments` (started by `make up`)"
        ) from exc
    return str(getattr(run, "id", run))  # sync here: Prefect's dispatch returns the run


@dataclass(frozen=True)
class RunState:
    """Where a started run is: Prefect's state type and name, and its message."""

    type: str
    name: str
    message: str | None

    @property
    def final(self) -> bool:
        return self.type in FINAL_STATES


def run_state(api: str, flow_run_id: str) -> RunState:
    """The current state of a flow run (not cached: progress is polled)."""
    from uuid import UUID

    with _prefect_client(api) as client:
        run = client.read_flow_run(UUID(flow_run_id))
    state = run.state
    if state is None:
        return RunState("PENDING", "Pending", None)
    return RunState(str(state.type.value), state.name, state.message)


def actions_file(where: Paths) -> Path:
    return where.state / "dashboard" / "actions.jsonl"


def record_action(where: Paths, started: StartedAction) -> None:
    """Append who started which run and why (one JSON line; appends do not interleave)."""
    target = actions_file(where)
    target.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(
        {
            "at": started.at.isoformat(),
            "actor": started.actor,
            "action": started.action,
            "reason": started.reason,
            "deployment": started.deployment,
            "flow_run_id": started.flow_run_id,
            "parameters": started.parameters,
        },
        default=str,
    )
    with open(target, "a") as out:
        out.write(line + "\n")


def recent_actions(where: Paths, limit: int = MAX_ACTIONS_SHOWN) -> pd.DataFrame:
    """The latest actions started from the dashboard, newest first."""
    import pandas as pd

    target = actions_file(where)
    columns = ["at", "actor", "action", "reason", "deployment", "flow_run_id"]
    if not target.is_file():
        return pd.DataFrame(columns=columns)
    lines = deque(target.open(), maxlen=limit)
    rows = [json.loads(line) for line in lines if line.strip()]
    frame = pd.DataFrame(rows, columns=columns)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame.iloc[::-1].reset_index(drop=True)


# --- data versions -----------------------------------------------------------------------


@st.cache_data(ttl=60, show_spinner=False)
def current_data(raw_batch: str) -> dict[str, Any] | None:
    """The accepted batch training uses now: its DVC hash, rows and columns."""
    import pyarrow.parquet as pq

    from loopline.data.versioning import tracked_hash

    batch = Path(raw_batch)
    if not batch.is_file():
        return None
    try:
        data_hash = tracked_hash(batch)
    except FileNotFoundError:
        data_hash = None
    meta = pq.ParquetFile(batch).metadata
    return {"data_hash": data_hash, "rows": meta.num_rows, "columns": meta.num_columns}


@st.cache_data(ttl=60, show_spinner=False)
def data_versions(url: str, raw_batch: str, dvc_cache: str) -> pd.DataFrame:
    """Every data version a run or model used, with row counts read from DVC's cache."""
    import pandas as pd

    used = [
        frame[["data_hash", when]].rename(columns={when: "at"}).assign(kind=kind)
        for frame, when, kind in (
            (runs(url), "started_at", "runs"),
            (versions(url), "created_at", "models"),
        )
        if not frame.empty
    ]
    columns = ["data_hash", "current", "rows", "first_seen", "last_seen", "runs", "models"]
    current = current_data(raw_batch)
    if current and current["data_hash"]:  # accepted, perhaps not trained on yet
        now = pd.Timestamp.now(tz="UTC")
        used.append(pd.DataFrame([{"data_hash": current["data_hash"], "at": now, "kind": "-"}]))
    if not used:
        return pd.DataFrame(columns=columns)
    events = pd.concat(used, ignore_index=True).dropna(subset=["data_hash"])
    frame = events.groupby("data_hash").agg(first_seen=("at", "min"), last_seen=("at", "max"))
    counts = pd.crosstab(events["data_hash"], events["kind"])
    frame = frame.join(counts.reindex(columns=["runs", "models"], fill_value=0)).reset_index()
    frame["current"] = frame["data_hash"] == (current or {}).get("data_hash")
    frame["rows"] = [cached_rows(Path(dvc_cache), h) for h in frame["data_hash"]]
    return frame[columns].sort_values("first_seen", ascending=False, ignore_index=True)


def cached_rows(dvc_cache: Path, data_hash: str) -> int | None:
    """Rows of a data version kept in DVC's cache (the Parquet footer only), if present."""
    import pyarrow.parquet as pq

    if len(data_hash) < 3:
        return None
    path = dvc_cache / "files" / "md5" / data_hash[:2] / data_hash[2:]
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (OSError, ValueError):
        return None


@st.cache_data(ttl=60, show_spinner=False)
def schema(raw_batch: str, params_file: str) -> pd.DataFrame:
    """Columns of the current batch with their Arrow type and role in the data contract."""
    import pandas as pd
    import pyarrow.parquet as pq

    batch = Path(raw_batch)
    if not batch.is_file():
        return pd.DataFrame(columns=["column", "type", "role"])
    dataset = params(params_file).dataset
    roles = {dataset.entity: "entity", dataset.timestamp: "timestamp", dataset.label: "label"}
    roles |= {name: f"feature ({spec.kind})" for name, spec in dataset.features.items()}
    shown = {
        "drop": "personal data (dropped at ingestion)",
        "keep": "personal data (sealed per subject)",
        "identifier": "personal data (pseudonym)",
    }
    roles |= {name: shown[how] for name, how in dataset.pii.items()}
    roles[dataset.entity] = "entity (pseudonym)"
    arrow = pq.read_schema(batch)
    rows = [{"column": f.name, "type": str(f.type), "role": roles.get(f.name, "")} for f in arrow]
    return pd.DataFrame(rows)


@st.cache_data(ttl=60, show_spinner=False)
def validation(artifacts: str) -> dict[str, Any] | None:
    target = Path(artifacts) / "validation.json"
    if not target.is_file():
        return None
    loaded: dict[str, Any] = json.loads(target.read_text())
    return loaded


@st.cache_data(ttl=30, show_spinner=False)
def rejected_batches(rejected: str) -> pd.DataFrame:
    """Batches the contract refused, newest first, with every problem it found."""
    import pandas as pd

    folders = sorted((p for p in Path(rejected).glob("*") if p.is_dir()), reverse=True)
    rows = []
    for folder in folders[:MAX_REJECTED]:
        try:
            reason = json.loads((folder / "reason.json").read_text())
        except (OSError, ValueError):
            continue
        problems = [str(p) for p in reason.get("problems", [])]
        rows.append(
            {
                "at": _stamp(str(reason.get("at", folder.name))),
                "source": reason.get("source"),
                "problems": len(problems),
                "reasons": "; ".join(problems),
                "kept_in": str(folder),
            }
        )
    return pd.DataFrame(rows, columns=["at", "source", "problems", "reasons", "kept_in"])


def _stamp(text: str) -> datetime | str:
    for layout in ("%Y%m%dT%H%M%S%fZ", "%Y%m%dT%H%M%SZ"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    return text


# --- small helpers pages share -----------------------------------------------------------


def report_path(reports: Path, stored: str | None) -> Path | None:
    """A window's Evidently HTML report, only if it is a file inside the reports folder."""
    if not stored:
        return None
    path = Path(stored)
    path = path if path.is_absolute() else reports / path
    try:
        resolved = path.resolve()
        resolved.relative_to(reports.resolve())
    except (OSError, ValueError):
        return None
    return resolved if resolved.is_file() else None


def since_label(moment: datetime | None, now: datetime | None = None) -> str:
    """``3 h ago`` style text for a timestamp."""
    if moment is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def window_start(choice: str, now: datetime | None = None) -> datetime | None:
    """The start of a named period (``24 h``, ``7 d``, ``30 d``, ``all``)."""
    spans = {"24 h": timedelta(days=1), "7 d": timedelta(days=7), "30 d": timedelta(days=30)}
    return None if choice not in spans else (now or datetime.now(UTC)) - spans[choice]


# --- who is logged in --------------------------------------------------------------------

USER_KEY = "loopline_user"


def current_user() -> User | None:
    """The logged-in user as the user file says now (a removed user is logged out)."""
    from loopline.users import user_store

    name = st.session_state.get(USER_KEY)
    if not name:
        return None
    user = user_store(paths()).lookup(str(name))
    if user is None:
        st.session_state.pop(USER_KEY, None)
    return user


def empty(what: str, command: str) -> None:
    """The plain 'nothing yet' message every page shows, naming the command that fills it."""
    st.info(f"{what}: {command}", icon=":material/info:")
