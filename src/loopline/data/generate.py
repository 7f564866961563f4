"""The built-in subscription-churn dataset: deterministic, seeded, and scalable.

Each customer has daily snapshots until they churn. The label of a snapshot is
whether the customer churns within ``label_delay_days`` after it, so it is
known only that many days later. A hidden engagement process drives both the
observable behaviour and the churn hazard, which makes the relation learnable
but noisy. On ``drift_day`` a price change raises charges for paid plans and
makes churn far more price sensitive: covariate and concept drift at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

PLANS = np.array(["basic", "standard", "premium"])
PLAN_PRICE = np.array([19.0, 39.0, 69.0])
COUNTRIES = np.array(["US", "GB", "DE", "FR", "IN", "BR"])
PAYMENT_METHODS = np.array(["card", "bank_transfer", "paypal"])
CONTRACTS = np.array(["monthly", "annual"])
FIRST_NAMES = np.array(
    ["Ada", "Ben", "Chen", "Dana", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jo"]
)
LAST_NAMES = np.array(["Smith", "Garcia", "Müller", "Dubois", "Patel", "Silva", "Kim", "Novak"])
# Rows per Parquet row group of a written dataset: what readers then take at a time.
ROWS_PER_GROUP = 1_000_000


@dataclass(frozen=True)
class Scenario:
    """What to generate; mirrors the ``generator`` section of params.yaml."""

    customers: int
    days: int
    seed: int
    start_date: date
    label_delay_days: int = 30
    drift_day: int | None = None
    price_increase: float = 0.25
    price_sensitivity_after_drift: float = 3.0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def generate(scenario: Scenario) -> pd.DataFrame:
    """Daily snapshots with PII, features and the delayed churn label (nullable until known)."""
    return pd.concat(list(snapshots(scenario)), ignore_index=True)


def write(scenario: Scenario, target: Path, rows_per_group: int = ROWS_PER_GROUP) -> int:
    """Write :func:`generate`'s rows to ``target`` as Parquet, a row group at a time.

    The file reads back as the same frame; only days' simulated numbers are ever held in
    memory whole, never the text columns of every row. Returns the number of rows.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    partial = target.with_name(f".{target.name}.partial")
    writer: pq.ParquetWriter | None = None
    try:
        for chunk in snapshots(scenario, rows_per_group):
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(partial, table.schema)
            writer.write_table(table, row_group_size=len(chunk))
            rows += len(chunk)
    finally:
        if writer is not None:
            writer.close()
    partial.replace(target)
    return rows


def snapshots(scenario: Scenario, rows_per_chunk: int | None = None) -> Iterator[pd.DataFrame]:
    """The dataset in order of (event_timestamp, customer_id), in chunks of whole days of at
    least ``rows_per_chunk`` rows (one chunk when None)."""
    days = _simulate(scenario)
    horizon = scenario.label_delay_days
    start = pd.Timestamp(scenario.start_date, tz="UTC")
    churn_day = days.churn_day
    first = 0
    while first < len(days.columns["day"]):
        last, rows = first, 0
        while last < len(days.columns["day"]) and (rows_per_chunk is None or rows < rows_per_chunk):
            rows += days.columns["day"][last].size
            last += 1
        flat = {k: np.concatenate(v[first:last]) for k, v in days.columns.items()}
        first = last
        cust = flat.pop("customer_index")
        snapshot_day = flat.pop("day")
        churned = (churn_day[cust] > snapshot_day) & (churn_day[cust] <= snapshot_day + horizon)
        known = snapshot_day + horizon < scenario.days
        label = pd.array(np.where(known, churned.astype("int64"), 0), dtype="Int64")
        label[~known] = pd.NA
        c = days.customers
        # A day's rows come in customer order already: day by day is the file's sort order.
        yield pd.DataFrame(
            {
                "customer_id": (cust + 1).astype("int64"),
                "event_timestamp": start + pd.to_timedelta(snapshot_day, unit="D"),
                "name": np.char.add(np.char.add(FIRST_NAMES[cust % 10], " "), LAST_NAMES[cust % 8]),
                "email": np.char.add(
                    np.char.add("customer", (cust + 1).astype(str)), "@example.com"
                ),
                "plan": PLANS[c.plan[cust]],
                "country": COUNTRIES[c.country[cust]],
                "payment_method": PAYMENT_METHODS[c.payment[cust]],
                "contract": CONTRACTS[c.annual[cust].astype(int)],
                "discount_pct": c.discount[cust],
                **flat,
                "churned": label,
            }
        )


@dataclass(frozen=True)
class _Customers:
    plan: np.ndarray
    country: np.ndarray
    payment: np.ndarray
    annual: np.ndarray
    discount: np.ndarray


@dataclass(frozen=True)
class _Days:
    customers: _Customers
    churn_day: np.ndarray
    columns: dict[str, list[np.ndarray]]


def _simulate(scenario: Scenario) -> _Days:
    """Every day's numbers for the customers alive that day, and the day each one churns."""
    rng = np.random.default_rng(scenario.seed)
    n, days = scenario.customers, scenario.days

    plan = rng.choice(3, size=n, p=[0.45, 0.35, 0.20])
    country = rng.choice(len(COUNTRIES), size=n, p=[0.3, 0.15, 0.15, 0.1, 0.2, 0.1])
    payment = rng.choice(3, size=n, p=[0.6, 0.25, 0.15])
    annual = rng.random(n) < 0.35
    tenure0 = rng.gamma(2.0, 10.0, size=n)
    discount = np.where(rng.random(n) < 0.2, rng.choice([5.0, 10.0, 20.0], size=n), 0.0)
    base_usage = rng.lognormal(np.log(6.0) + 0.25 * plan, 0.3)
    fail_rate = np.choose(payment, [0.006, 0.002, 0.01]) * rng.lognormal(0, 0.8, size=n)
    base_charges = PLAN_PRICE[plan] * (1 - discount / 100) + rng.normal(0, 2.0, size=n)

    engagement = rng.normal(0, 1.0, size=n)
    churn_day = np.full(n, np.iinfo(np.int32).max, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    columns: dict[str, list[np.ndarray]] = {k: [] for k in _DAILY}
    for day in range(days):
        engagement = 0.97 * engagement + rng.normal(0, 0.12, size=n)
        drifted = scenario.drift_day is not None and day >= scenario.drift_day
        price_factor = np.where(drifted & (plan > 0), 1 + scenario.price_increase, 1.0)
        charges = base_charges * price_factor
        usage = base_usage * np.exp(0.8 * engagement) * rng.lognormal(0, 0.1, size=n)
        sessions = rng.poisson(np.clip(3 + 2.5 * engagement + 0.3 * usage, 0.1, None))
        tickets = rng.poisson(np.clip(0.4 - 0.5 * engagement, 0.05, None))
        failures = rng.poisson(fail_rate * 90)
        since_login = rng.exponential(np.clip(3 - 2 * engagement, 0.3, None))
        tenure = tenure0 + day / 30.0

        value_gap = charges / (usage + 2.0) / 4.0
        sensitivity = scenario.price_sensitivity_after_drift if drifted else 1.0
        logit = (
            -8.2
            - 1.6 * engagement
            + 1.3 * (~annual)
            + 0.6 * failures
            + 0.5 * tickets
            - 0.02 * tenure
            + 0.08 * np.minimum(since_login, 20)
            + 0.25 * sensitivity * (value_gap - 1.0)
            + rng.normal(0, 0.3, size=n)
        )
        churns_today = alive & (rng.random(n) < _sigmoid(logit))
        churn_day[churns_today] = day

        idx = np.flatnonzero(alive)
        columns["customer_index"].append(idx)
        columns["day"].append(np.full(idx.size, day))
        columns["monthly_charges"].append(np.round(charges[idx], 2))
        columns["usage_hours"].append(np.round(usage[idx], 2))
        columns["sessions_per_week"].append(sessions[idx])
        columns["support_tickets_30d"].append(tickets[idx])
        columns["payment_failures_90d"].append(failures[idx])
        columns["days_since_last_login"].append(np.round(since_login[idx], 1))
        columns["tenure_months"].append(np.round(tenure[idx], 2))
        alive &= ~churns_today
    return _Days(_Customers(plan, country, payment, annual, discount), churn_day, columns)


_DAILY = (
    "customer_index",
    "day",
    "monthly_charges",
    "usage_hours",
    "sessions_per_week",
    "support_tickets_30d",
    "payment_failures_90d",
    "days_since_last_login",
    "tenure_months",
)
