"""A churn table shaped like the well-known public telco export, for ``loopline init`` tests.

Unlike Loopline's own generator it has the awkward parts of real exports: personal
data (one column only recognisable by its content), id-like codes, a constant column,
a mostly empty notes column, 0/1 flags, and blank " " totals for brand-new customers.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

FIRST_NAMES = (
    "Maria", "James", "Aisha", "Wei", "Olga", "Pedro", "Fatima", "John", "Priya", "Lars",
    "Chen", "Sofia", "Ahmed", "Emma", "Kofi", "Yuki", "Lucas", "Amara", "Ivan", "Nora",
    "Diego", "Hana", "Omar", "Grace", "Mateo", "Leila", "Tom", "Ines", "Ravi", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Lopez", "Smith", "Khan", "Zhang", "Petrova", "Silva", "Haddad", "Brown", "Patel",
    "Nilsen", "Garcia", "Okafor", "Tanaka", "Muller", "Rossi", "Novak", "Kim", "Dubois",
    "Jensen", "Costa", "Walsh", "Yilmaz", "Moreau", "Santos", "Fischer", "Mensah", "Ali",
    "Smith-Jones", "O'Brien", "Van Dijk",
)  # fmt: skip
CONTRACTS = ("Month-to-month", "One year", "Two year")
PAYMENT_METHODS = (
    "Electronic check",
    "Mailed check",
    "Bank transfer (automatic)",
    "Credit card (automatic)",
)
INTERNET_SERVICES = ("DSL", "Fiber optic", "No")
NOTES = (
    "asked about fiber upgrade",
    "complained about billing",
    "requested paper bill",
    "moving house soon",
)
# The public table has 11 brand-new customers (tenure 0, blank total) in 7,043 rows;
# the fixture keeps about 11 at its default size so tests see a handful of blanks.
NEW_CUSTOMERS_PER_3000 = 11


def public_style_table(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """A deterministic churn table as it comes out of a warehouse csv export."""
    rng = np.random.default_rng(seed)
    first = rng.choice(FIRST_NAMES, rows)
    last = rng.choice(LAST_NAMES, rows)
    contract = rng.choice(CONTRACTS, rows, p=[0.55, 0.21, 0.24])
    internet = rng.choice(INTERNET_SERVICES, rows, p=[0.34, 0.44, 0.22])
    tenure = _tenure(rng, contract)
    monthly = _monthly_charges(rng, internet)
    churned = _churned(rng, contract, tenure, monthly)
    signup = date(2022, 1, 1)
    return pd.DataFrame(
        {
            "customer_id": rng.permutation(np.arange(1, rows + 1)),
            "signup_date": [
                (signup + timedelta(days=int(d))).isoformat() for d in rng.integers(0, 730, rows)
            ],
            "contact": [f"{f} {s}" for f, s in zip(first, last, strict=True)],
            "email": [
                f"{f.lower()}.{_email_part(s)}{n}@example.{tld}"
                for f, s, n, tld in zip(
                    first,
                    last,
                    rng.integers(1, 999, rows),
                    rng.choice(["com", "org"], rows),
                    strict=True,
                )
            ],  # fmt: skip
            "account_code": [f"AC-{n:06d}" for n in rng.choice(1_000_000, rows, replace=False)],
            "source_system": "crm",
            "gender": rng.choice(["Female", "Male"], rows),
            "senior_citizen": (rng.random(rows) < 0.16).astype(int),
            "partner": rng.choice(["Yes", "No"], rows, p=[0.48, 0.52]),
            "tenure": tenure,
            "contract": contract,
            "payment_method": rng.choice(PAYMENT_METHODS, rows, p=[0.34, 0.23, 0.22, 0.21]),
            "internet_service": internet,
            "monthly_charges": monthly,
            "total_charges": _total_charges(rng, tenure, monthly),
            "notes": np.where(rng.random(rows) < 0.10, rng.choice(NOTES, rows), None),
            "churned": np.where(churned, "Yes", "No"),
        }
    )


def _email_part(surname: str) -> str:
    return surname.lower().replace(" ", "").replace("'", "")


def _tenure(rng: np.random.Generator, contract: np.ndarray) -> np.ndarray:
    # Long contracts go with long tenure, as in the public table; tenure 0 rows are
    # placed exactly so that their blank totals are a known handful.
    scale = np.select([contract == "Month-to-month", contract == "One year"], [14.0, 35.0], 50.0)
    tenure = np.clip(rng.exponential(scale), 1, 72).round().astype(int)
    new = rng.choice(len(tenure), round(len(tenure) * NEW_CUSTOMERS_PER_3000 / 3000), replace=False)
    tenure[new] = 0
    return tenure


def _monthly_charges(rng: np.random.Generator, internet: np.ndarray) -> np.ndarray:
    base = np.select([internet == "Fiber optic", internet == "DSL"], [80.0, 55.0], 21.0)
    spread = np.where(internet == "No", 2.0, 15.0)
    return np.clip(base + rng.normal(0, 1, len(internet)) * spread, 18.25, 118.75).round(2)


def _churned(
    rng: np.random.Generator, contract: np.ndarray, tenure: np.ndarray, monthly: np.ndarray
) -> np.ndarray:
    logit = (
        -1.1
        + np.select([contract == "Month-to-month", contract == "One year"], [1.3, -0.4], -1.6)
        - 0.035 * tenure
        + 0.025 * (monthly - 65.0)
    )
    return rng.random(len(tenure)) < 1 / (1 + np.exp(-logit))


def _total_charges(rng: np.random.Generator, tenure: np.ndarray, monthly: np.ndarray) -> list[str]:
    # Exported as text: a customer in their first month has no total yet, written " ".
    totals = tenure * monthly * rng.uniform(0.95, 1.05, len(tenure))
    return [" " if t == 0 else f"{total:.2f}" for t, total in zip(tenure, totals, strict=True)]
