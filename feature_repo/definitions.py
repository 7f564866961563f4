"""Feast definitions for the churn dataset: a catalogue, nothing more.

Bringing your own data means editing this file and ``params.yaml`` together.
Sources are the parquet files the ``features`` step writes under ``data/features/``;
their paths are resolved from this file's location so the repo works from any folder.

``customer_ratios`` is computed when it is read, not written at materialization
(``write_to_online_store=True``): written values were no faster for 1,000 customers, come
back None rather than 0.0 for unknown customers, and for a missing measurement disagree with
what training reads. ``precompute_online`` does nothing for a service with an on-demand
view in Feast 0.67. ``benchmarks/feast_read.py`` measures both.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, String
from feast.value_type import ValueType

FEATURES = Path(__file__).resolve().parent.parent / "data" / "features"

customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)

customer_profile_source = FileSource(
    name="customer_profile_source",
    path=str(FEATURES / "customer_profile.parquet"),
    timestamp_field="event_timestamp",
)

customer_activity_source = FileSource(
    name="customer_activity_source",
    path=str(FEATURES / "customer_activity.parquet"),
    timestamp_field="event_timestamp",
)

customer_profile_fv = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(days=365),
    schema=[
        Field(name="plan", dtype=String),
        Field(name="country", dtype=String),
        Field(name="payment_method", dtype=String),
        Field(name="contract", dtype=String),
        Field(name="tenure_months", dtype=Float64),
        Field(name="monthly_charges", dtype=Float64),
        Field(name="discount_pct", dtype=Float64),
    ],
    source=customer_profile_source,
    online=True,
)

customer_activity_fv = FeatureView(
    name="customer_activity",
    entities=[customer],
    ttl=timedelta(days=365),
    schema=[
        Field(name="usage_hours", dtype=Float64),
        Field(name="sessions_per_week", dtype=Float64),
        Field(name="support_tickets_30d", dtype=Float64),
        Field(name="payment_failures_90d", dtype=Float64),
        Field(name="days_since_last_login", dtype=Float64),
    ],
    source=customer_activity_source,
    online=True,
)


@on_demand_feature_view(
    # Only the four features it reads: Feast hands a python-mode view its sources' columns as
    # Python lists, so naming whole views made a 1M-row training set convert all twelve.
    sources=[
        customer_profile_fv[["monthly_charges"]],
        customer_activity_fv[["usage_hours", "support_tickets_30d", "sessions_per_week"]],
    ],
    schema=[
        Field(name="charges_per_usage_hour", dtype=Float64),
        Field(name="tickets_per_session", dtype=Float64),
    ],
    mode="python",
)
def customer_ratios(inputs: dict[str, Any]) -> dict[str, Any]:
    # Price relative to use is what the price-change scenario acts on.
    return {
        "charges_per_usage_hour": [
            (c or 0.0) / ((u or 0.0) * 4.0 + 1.0)
            for c, u in zip(inputs["monthly_charges"], inputs["usage_hours"], strict=True)
        ],
        "tickets_per_session": [
            (t or 0.0) / ((s or 0.0) + 1.0)
            for t, s in zip(inputs["support_tickets_30d"], inputs["sessions_per_week"], strict=True)
        ],
    }


churn_v1 = FeatureService(
    name="churn_v1",
    features=[customer_profile_fv, customer_activity_fv, customer_ratios],
)
