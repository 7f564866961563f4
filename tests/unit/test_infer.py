"""`loopline init`'s pure half: a bounded sample of the user's table and the proposed schema."""

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.data.infer import (
    CATEGORICAL_MAX_INTEGERS,
    ColumnGuess,
    Proposal,
    propose,
)
from loopline.data.sample import Sample, TableError, read_sample
from loopline.data.schema_table import render_table
from loopline.errors import LooplineError
from tests.own_data import public_style_table

FAST = settings(max_examples=40, deadline=None)
# The file is rewritten on every example, so sharing tmp_path between examples is safe.
FAST_FILES = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# The spellings of the brief, written out here so the test does not read the module's own.
POSITIVE = ["yes", "y", "true", "t", "1", "1.0", "churned", "churn", "left", "lost"]
POSITIVE += ["cancelled", "canceled", "positive", "pos"]
NEGATIVE = ["no", "n", "false", "f", "0", "0.0", "active", "retained", "stayed", "negative"]
NEGATIVE += ["neg"]


def column(proposal: Proposal, name: str) -> ColumnGuess:
    return next(c for c in proposal.columns if c.name == name)


def text_sample(**columns: list[str]) -> Sample:
    """A sample as read from a csv: every cell text, missing cells NaN."""
    frame = pd.DataFrame(columns, dtype=object)
    return Sample(Path("t.csv"), frame, len(frame), False)


def labelled(rows: int, **columns: list[str]) -> Sample:
    ids = [str(i) for i in range(rows)]
    return text_sample(id=ids, churned=["Yes", "No"] * (rows // 2) + ["No"] * (rows % 2), **columns)


def error(sample: Sample, **chosen: str) -> str:
    with pytest.raises(TableError) as info:
        propose(sample, **{"entity": "id", "label": "churned", **chosen})
    assert str(info.value).startswith(f"{sample.source}: ")
    return info.value.problem


# --- the public-style table -----------------------------------------------------------


def test_every_column_gets_its_role(proposal: Proposal) -> None:
    roles = {c.name: (c.role, c.kind) for c in proposal.columns}
    assert roles == {
        "customer_id": ("entity", "identifier"),
        "signup_date": ("timestamp", "timestamp"),
        "contact": ("pii", "text"),
        "email": ("pii", "text"),
        "account_code": ("ignore", "identifier"),
        "source_system": ("ignore", "categorical"),
        "gender": ("feature", "categorical"),
        "senior_citizen": ("feature", "categorical"),
        "partner": ("feature", "boolean"),
        "tenure": ("feature", "numeric"),
        "contract": ("feature", "categorical"),
        "payment_method": ("feature", "categorical"),
        "internet_service": ("feature", "categorical"),
        "monthly_charges": ("feature", "numeric"),
        "total_charges": ("feature", "numeric"),
        "notes": ("ignore", "categorical"),
        "churned": ("label", "boolean"),
    }
    assert column(proposal, "contact").reason == "looks like person names"
    assert column(proposal, "account_code").reason == "unique per row: likely an identifier"
    assert column(proposal, "source_system").reason == "constant: every row is 'crm'"
    assert column(proposal, "notes").reason == "mostly missing (90%)"
    assert column(proposal, "senior_citizen").reason == "2 distinct integers: categorical"


def test_blank_totals_are_imputed_with_the_median(proposal: Proposal, table: pd.DataFrame) -> None:
    totals = column(proposal, "total_charges")
    assert totals.missing == (table["total_charges"] == " ").sum() == 11
    assert (totals.missing_policy, totals.strategy) == ("impute", "median")
    tenure = column(proposal, "tenure")
    assert (tenure.missing_policy, tenure.strategy) == ("reject", None)
    assert column(proposal, "notes").missing_policy is None


def test_label_segment_features_and_pii(proposal: Proposal, table: pd.DataFrame) -> None:
    assert proposal.label_mapping is not None
    assert proposal.label_mapping.values() == {"Yes": 1, "No": 0}
    assert proposal.positives == (table["churned"] == "Yes").sum()
    assert proposal.labelled == proposal.rows == len(table) and not proposal.truncated
    assert proposal.segment_column in {"contract", "payment_method", "internet_service", "gender"}
    assert proposal.pii == ["contact", "email"]
    assert proposal.features == {
        "gender": "categorical",
        "senior_citizen": "categorical",
        "partner": "categorical",
        "tenure": "numeric",
        "contract": "categorical",
        "payment_method": "categorical",
        "internet_service": "categorical",
        "monthly_charges": "numeric",
        "total_charges": "numeric",
    }


def test_table_shows_every_column_and_masks_personal_data(
    proposal: Proposal, table: pd.DataFrame
) -> None:
    text = render_table(proposal)
    header, rule, *rows = text.splitlines()[: len(proposal.columns) + 2]
    assert header.split() == ["column", "role", "kind", "missing", "distinct", "examples", "reason"]
    assert set(rule) == {"-", " "}
    assert [r.split()[0] for r in rows] == [c.name for c in proposal.columns]
    positives = f"{proposal.positives:,}"
    assert f"label 'churned': 'Yes' -> 1, 'No' -> 0 ({positives} of 3,000 rows are 1)" in text
    assert "timestamp 'signup_date'" in text and "segment column" in text
    assert "sampled the first" not in text
    assert not any(email in text for email in table["email"])
    assert not any(name in text for name in table["contact"])


def test_without_a_timestamp_files_are_stamped_on_arrival(own_csv: Path) -> None:
    proposal = propose(read_sample(own_csv, rows=500), "customer_id", "churned")
    assert proposal.timestamp is None and proposal.truncated and proposal.rows == 500
    assert column(proposal, "signup_date").role == "ignore"
    text = render_table(proposal)
    assert "no timestamp column: each ingested file is stamped with its arrival time" in text
    assert "sampled the first 500 rows of a larger file" in text


def test_the_table_is_deterministic_and_learnable(table: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(table, public_style_table())
    assert not table.equals(public_style_table(seed=1))
    assert table["customer_id"].is_unique and table["account_code"].is_unique
    assert 0.2 < (table["churned"] == "Yes").mean() < 0.3
    x = pd.get_dummies(table[["contract", "tenure", "monthly_charges"]], dtype=float)
    x = ((x - x.mean()) / x.std()).assign(intercept=1.0).to_numpy()
    y = (table["churned"] == "Yes").to_numpy(dtype=float)
    weights = logistic_fit(x[:2000], y[:2000])
    assert 0.75 < roc_auc(y[2000:], x[2000:] @ weights) < 0.9


def logistic_fit(x: np.ndarray, y: np.ndarray, steps: int = 25) -> np.ndarray:
    # Newton's method with a little ridge (the dummies are collinear with the intercept);
    # scikit-learn would do, but importing it costs seconds here.
    weights = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ weights))
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + 1e-3 * np.eye(x.shape[1])
        weights -= np.linalg.solve(hessian, x.T @ (p - y) + 1e-3 * weights)
    return weights


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    ranks = pd.Series(score).rank().to_numpy()
    positives = int(y.sum())
    negatives = len(y) - positives
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


# --- rules as properties --------------------------------------------------------------


def spread(levels: list[int], rows: int, rng: random.Random) -> list[str]:
    values = [str(levels[i % len(levels)]) for i in range(rows)]
    rng.shuffle(values)
    return values


@FAST
@given(
    levels=st.sets(st.integers(-(10**6), 10**6), min_size=2, max_size=CATEGORICAL_MAX_INTEGERS),
    rng=st.randoms(use_true_random=False),
)
def test_integers_with_few_values_are_categorical(levels: set[int], rng: random.Random) -> None:
    proposal = propose(labelled(200, code=spread(sorted(levels), 200, rng)), "id", "churned")
    assert (column(proposal, "code").role, column(proposal, "code").kind) == (
        "feature",
        "categorical",
    )


@FAST
@given(
    levels=st.sets(
        st.integers(-(10**6), 10**6), min_size=CATEGORICAL_MAX_INTEGERS + 1, max_size=80
    ),
    rng=st.randoms(use_true_random=False),
)
def test_integers_with_many_values_are_numeric(levels: set[int], rng: random.Random) -> None:
    proposal = propose(labelled(200, amount=spread(sorted(levels), 200, rng)), "id", "churned")
    assert proposal.features["amount"] == "numeric"


@settings(max_examples=25, deadline=None)  # generating e-mail addresses is the slow part
@given(
    name=st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,15}", fullmatch=True).filter(
        lambda n: n not in ("id", "churned")
    ),
    emails=st.lists(st.emails(), min_size=1, max_size=60),
)
def test_email_addresses_are_personal_data_whatever_the_column_name(
    name: str, emails: list[str]
) -> None:
    cells = [emails[i % len(emails)] for i in range(60)]
    proposal = propose(labelled(60, **{name: cells}), "id", "churned")
    assert column(proposal, name).role == "pii"
    assert name in proposal.pii and name not in proposal.features


@FAST
@given(
    positive=st.sampled_from(POSITIVE),
    negative=st.sampled_from(NEGATIVE),
    cases=st.tuples(*[st.sampled_from([str.lower, str.upper, str.title])] * 2),
    pad=st.sampled_from(["", " "]),
    counts=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    rng=st.randoms(use_true_random=False),
)
def test_the_positive_spelling_becomes_one(
    positive: str,
    negative: str,
    cases: tuple,
    pad: str,
    counts: tuple[int, int],
    rng: random.Random,
) -> None:
    yes, no = pad + cases[0](positive), cases[1](negative) + pad
    labels = [yes] * counts[0] + [no] * counts[1]
    rng.shuffle(labels)
    sample = text_sample(id=[str(i) for i in range(len(labels))], churned=labels)
    proposal = propose(sample, "id", "churned")
    assert proposal.positives == counts[0] and proposal.labelled == len(labels)
    if (yes, no) == ("1", "0"):
        assert proposal.label_mapping is None  # already 0/1 integers
    else:  # spelled as the contract compares them: stripped
        assert proposal.label_mapping is not None
        assert proposal.label_mapping.values() == {yes.strip(): 1, no.strip(): 0}


NA_MARKERS = ("NA", "null", "-")
CELLS = st.one_of(
    st.sampled_from(["a", "b", "7", " x", "NaN?", "n/a"]),
    st.text(alphabet=" \t", max_size=3),
    st.sampled_from([*NA_MARKERS, " NA ", "\tnull"]),
)


@FAST_FILES
@given(cells=st.lists(CELLS, min_size=2, max_size=40))
def test_markers_and_blank_cells_count_as_missing(cells: list[str], tmp_path: Path) -> None:
    path = tmp_path / "cells.csv"
    rows = len(cells)
    ids = [str(i) for i in range(rows)]
    pd.DataFrame({"id": ids, "churned": ["Yes", "No"] * (rows // 2) + ["No"] * (rows % 2)}).assign(
        value=cells
    ).to_csv(path, index=False)
    sample = read_sample(path, na_values=NA_MARKERS)
    blank = [c.strip() in {"", *NA_MARKERS} for c in cells]
    assert sample.frame["value"].isna().tolist() == blank
    assert sample.frame["value"].dropna().tolist() == [
        c for c, b in zip(cells, blank, strict=True) if not b
    ]
    assert column(propose(sample, "id", "churned"), "value").missing == sum(blank)


# --- columns judged one at a time ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "pii"),
    [
        ("customer_email", True),
        ("fullName", True),
        ("e_mail", True),
        ("IPAddress", True),
        ("date_of_birth", True),
        ("customer_name", True),
        ("username_length", False),
        ("email_verified", False),
        ("plan_name", False),
        ("tip", False),
    ],
)
def test_personal_data_by_column_name(name: str, pii: bool) -> None:
    proposal = propose(labelled(100, **{name: ["3", "4"] * 50}), "id", "churned")
    assert (column(proposal, name).role == "pii") is pii


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        (["+44 20 7946 0958", "(555) 010-4477", "+1-202-555-0143", "030 1234567"], "phone"),
        (["10.0.0.1", "192.168.1.20", "172.16.4.4", "8.8.8.8"], "IP"),
    ],
)
def test_personal_data_by_content(cells: list[str], reason: str) -> None:
    proposal = propose(labelled(40, reached=cells * 10), "id", "churned")
    assert (
        column(proposal, "reached").role == "pii" and reason in column(proposal, "reached").reason
    )


def test_capitalised_categories_are_not_person_names() -> None:
    cells = ["Fiber Optic", "Bank Transfer", "New York"] * 30
    proposal = propose(labelled(90, kind=cells), "id", "churned")
    assert column(proposal, "kind").role == "feature"


def test_numbers_with_stray_markers_are_not_features() -> None:
    proposal = propose(
        labelled(100, charges=[f"{i}.5" for i in range(99)] + ["n/a"]), "id", "churned"
    )
    charges = column(proposal, "charges")
    assert (charges.role, charges.kind) == ("ignore", "numeric") and "'n/a'" in charges.reason


def test_integer_labels_need_no_mapping_and_missing_labels_are_unlabelled() -> None:
    proposal = propose(text_sample(id=["1", "2", "3", "4"], y=["1", "0", None, "1"]), "id", "y")
    assert proposal.label_mapping is None
    assert (proposal.positives, proposal.labelled, proposal.rows) == (2, 3, 4)
    assert "(2 of 3 rows are 1; 1 rows unlabelled)" in render_table(proposal)


def test_positive_names_the_class_when_spellings_are_unknown() -> None:
    sample = labelled(4, outcome=["Gold", "Silver", "Gold", "Silver"])
    proposal = propose(sample, "id", "outcome", positive="silver")
    assert proposal.label_mapping is not None
    assert proposal.label_mapping.values() == {"Silver": 1, "Gold": 0}


def test_no_segment_column_without_well_filled_categories() -> None:
    proposal = propose(labelled(60, plan=["a", "b", "c"] * 20), "id", "churned")
    assert proposal.segment_column is None
    assert "no segment column" in render_table(proposal)


# --- errors that name the file and the column -------------------------------------------


def test_missing_column_is_named_with_a_suggestion() -> None:
    problem = error(labelled(4), label="Churned")
    assert "no label column 'Churned' (did you mean 'churned'?)" in problem
    assert "the file's columns are: id, churned" in problem


def test_label_with_three_values() -> None:
    sample = text_sample(id=["1", "2", "3"], churned=["Yes", "No", "Maybe"])
    assert "label column 'churned' has 3 distinct values" in error(sample)
    assert "'Maybe'" in error(sample)


def test_label_with_one_value() -> None:
    assert "only one value ('No')" in error(text_sample(id=["1", "2"], churned=["No", "No"]))


def test_unrecognised_label_spellings_ask_for_positive() -> None:
    sample = labelled(4, outcome=["Gold", "Silver", "Gold", "Silver"])
    assert "pass --positive VALUE" in error(sample, label="outcome")
    assert "pass --positive VALUE" in error(labelled(4, coded=["1", "2", "1", "2"]), label="coded")
    assert "--positive 'Bronze' is not a value" in error(sample, label="outcome", positive="Bronze")


def test_unparseable_timestamp() -> None:
    sample = labelled(4, at=["2024-01-01", "2024-01-02", "yesterday", "2024-01-04"])
    problem = error(sample, timestamp="at")
    assert "timestamp column 'at': 1 of 4 sampled values" in problem and "'yesterday'" in problem
    assert "holds numbers" in error(labelled(4, at=["17", "18", "19", "20"]), timestamp="at")


def test_text_entity_is_refused_with_an_example() -> None:
    sample = text_sample(customerID=["7590-VHVEG", "5575-GNVDE"], churned=["Yes", "No"])
    problem = error(sample, entity="customerID")
    assert "entity column 'customerID' holds text" in problem
    assert "'7590-VHVEG'" in problem and "int64" in problem


def test_entity_with_missing_values() -> None:
    sample = text_sample(id=["1", None, "1"], churned=["Yes", "No", "No"])
    assert "entity column 'id' has 1 missing values" in error(sample)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.csv", b"", "file is empty (0 bytes)"),
        ("header.csv", b"id,churned\n", "file has a header but no rows"),
        ("twice.csv", b"id,churned,id\n1,Yes,1\n", "duplicate column names: 'id'"),
        ("shifted.csv", b"id,churned\n1,2,Yes\n", "rows have more fields than the header"),
        ("table.xlsx", b"PK\x03\x04", "unsupported file type '.xlsx'"),
        ("latin.csv", b"id,name\n1,Jos\xe9\n", "is not UTF-8 text"),
        ("broken.parquet", b"not parquet at all", "cannot be read"),
    ],
)
def test_files_that_cannot_become_a_dataset(
    tmp_path: Path, name: str, content: bytes, problem: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(TableError) as info:
        read_sample(path)
    assert info.value.source == path and problem in info.value.problem
    assert str(info.value).startswith(f"{path}: ")


def test_file_not_found_is_a_users_error(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="file not found") as info:
        read_sample(tmp_path / "absent.csv")
    assert isinstance(info.value, LooplineError) and isinstance(info.value, ValueError)


def test_duplicate_parquet_column_names(tmp_path: Path) -> None:
    path = tmp_path / "twice.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["x", "x"]), path)
    with pytest.raises(TableError, match="duplicate column names: 'x'"):
        read_sample(path)


# --- reading a bounded sample ----------------------------------------------------------


def test_big_csv_is_sampled_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    lines = (f"{i},{i % 72},{'Yes' if i % 4 == 0 else 'No'}" for i in range(300_000))
    path.write_text("customer_id,tenure,churned\n" + "\n".join(lines) + "\n")
    # A tail that is neither UTF-8 nor closed csv: reading the whole file must fail on it.
    with path.open("ab") as handle:
        handle.write(b'\xff\xfe,"never closed\n')
    with pytest.raises((UnicodeDecodeError, pd.errors.ParserError)):
        pd.read_csv(path, dtype=str)
    sample = read_sample(path, rows=1000)
    assert len(sample.frame) == 1000 and sample.truncated and sample.total_rows is None
    assert sample.frame["customer_id"].iloc[-1] == "999"


def test_a_file_that_fits_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "small.csv.gz"
    pd.DataFrame({"id": range(1000), "churned": ["Yes", "No"] * 500}).to_csv(path, index=False)
    sample = read_sample(path, rows=1000)
    assert (len(sample.frame), sample.total_rows, sample.truncated) == (1000, 1000, False)
    assert sample.frame["id"].dtype == object and sample.frame["id"].iloc[0] == "0"


def test_parquet_keeps_its_dtypes_and_counts_rows_from_metadata(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    frame = pd.DataFrame(
        {
            "id": np.arange(25),
            "charges": np.where(np.arange(25) % 5 == 0, np.nan, np.arange(25) * 1.5),
            "plan": ["basic", " ", "NA", "pro", "basic"] * 5,
            "active": [True, False] * 12 + [True],
            "at": pd.date_range("2024-01-01", periods=25, freq="D"),
        }
    )
    pq.write_table(pa.Table.from_pandas(frame), path, row_group_size=7)
    sample = read_sample(path, rows=10, na_values=("NA",))
    assert (len(sample.frame), sample.total_rows, sample.truncated) == (10, 25, True)
    dtypes = sample.frame.dtypes.astype(str).to_dict()
    assert dtypes == {
        "id": "int64",
        "charges": "float64",
        "plan": "object",
        "active": "bool",
        "at": "datetime64[ns]",
    }
    assert sample.frame["plan"].isna().sum() == 4
    proposal = propose(sample, "id", "active", timestamp="at")
    assert proposal.label_mapping is not None and proposal.label_mapping.values() == {
        "True": 1,
        "False": 0,
    }
    assert column(proposal, "charges").strategy == "median"
