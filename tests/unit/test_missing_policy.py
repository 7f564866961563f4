"""The per-feature missing policy: what the batch contract accepts, and what the model fills.

reject | impute | allow decide whether a blank cell rejects a batch; imputation happens
inside the model's pipeline, fitted on training rows only, and the compiled serving path
must fill exactly as scikit-learn does.
"""

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from loopline.config import DatasetParams, FeatureSpec, MissingPolicy
from loopline.data.contract import BatchRejected, check_batch, read_batch
from loopline.inference import serving_scorer
from loopline.training.candidates import Candidate, build_pipeline
from loopline.training.train import time_split

HEADER = "id,ts,churned,amount,plan\n"


def dataset(
    amount: MissingPolicy = "reject",
    plan: MissingPolicy = "reject",
    *,
    label_values: dict[str, Any] | None = None,
    na_values: list[str] | None = None,
) -> DatasetParams:
    """A two-feature dataset: a number and a category, with these policies."""
    return DatasetParams(
        name="t",
        source="batch.csv",
        entity="id",
        timestamp="ts",
        label="churned",
        label_values=label_values if label_values is not None else {"Yes": 1, "No": 0},
        features={
            "amount": FeatureSpec(kind="numeric", missing=amount),
            "plan": FeatureSpec(kind="categorical", missing=plan),
        },
        na_values=na_values if na_values is not None else [""],
    )


def csv(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "batch.csv"
    path.write_text(HEADER + "".join(f"{r}\n" for r in rows))
    return path


def checked(path: Path, params: DatasetParams) -> pd.DataFrame:
    return check_batch(read_batch(path, params), params, path)


def problems(path: Path, params: DatasetParams) -> list[str]:
    with pytest.raises(BatchRejected) as info:
        checked(path, params)
    return info.value.problems


BLANK_AMOUNTS = (
    "1,2026-01-01,Yes,1.5,basic",
    "2,2026-01-02,No, ,basic",  # whitespace only
    "3,2026-01-03,No,,pro",  # empty
    "4,2026-01-04,Yes,  ,pro",
    "5,2026-01-05,No,2.5,pro",
)


# --- the contract --------------------------------------------------------------------


def test_blank_numbers_reject_the_batch_under_reject(tmp_path: Path) -> None:
    [problem] = problems(csv(tmp_path, *BLANK_AMOUNTS), dataset())
    assert problem.startswith("column 'amount': missing values (3 rows; at rows [1, 2, 3])")
    assert "missing: impute" in problem


def test_blank_numbers_are_missing_under_impute_and_allow(tmp_path: Path) -> None:
    path = csv(tmp_path, *BLANK_AMOUNTS)
    for policy in ("impute", "allow"):
        frame = checked(path, dataset(amount=policy))
        assert frame["amount"].dtype == "float64"
        assert frame["amount"].isna().tolist() == [False, True, True, True, False]
        assert frame["amount"].sum() == 4.0


def test_blank_cells_are_reported_next_to_an_unreadable_value(tmp_path: Path) -> None:
    path = csv(
        tmp_path,
        "1,2026-01-01,Yes,1.5,basic",
        "2,2026-01-02,No, ,basic",
        "3,2026-01-03,No,,pro",
        "4,2026-01-04,Yes,?,pro",
    )
    found = problems(path, dataset())
    assert any("'?'" in p for p in found)
    assert any(p.startswith("column 'amount': missing values (2 rows") for p in found)


def test_custom_na_values_are_missing(tmp_path: Path) -> None:
    path = csv(
        tmp_path,
        "1,2026-01-01,Yes,?,?",
        "2,2026-01-02,No, ? ,basic",
        "3,2026-01-03,No,3,NA",
    )
    with pytest.raises(BatchRejected, match=r"'\?'"):
        checked(path, dataset("allow", "allow"))  # "?" is a value by default
    frame = checked(path, dataset("allow", "allow", na_values=["", "?"]))
    assert frame["amount"].isna().tolist() == [True, True, False]
    # Only the listed markers: "NA" may well be North America.
    assert frame["plan"].tolist() == [None, "basic", "NA"]


def test_missing_categories_stay_none(tmp_path: Path) -> None:
    path = csv(
        tmp_path,
        "1,2026-01-01,Yes,1,basic",
        "2,2026-01-02,No,2,",
        "3,2026-01-03,No,3, ",
        "4,2026-01-04,Yes,4,01",
    )
    for policy in ("impute", "allow"):
        plan = checked(path, dataset(plan=policy))["plan"]
        assert plan.tolist() == ["basic", None, None, "01"]
        assert not plan.isin(["None", "nan", "NaN", ""]).any()


def test_missing_categories_reject_under_reject(tmp_path: Path) -> None:
    path = csv(tmp_path, "1,2026-01-01,Yes,1,basic", "2,2026-01-02,No,2,")
    [problem] = problems(path, dataset())
    assert problem.startswith("column 'plan': missing values (1 rows; at rows [1])")


def test_parquet_categories_read_as_text_with_missing_as_none(tmp_path: Path) -> None:
    path = tmp_path / "batch.parquet"
    pd.DataFrame(
        {
            "id": [1, 2, 3],
            "ts": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"], utc=True),
            "churned": ["Yes", "No", "No"],
            "amount": [1.0, np.nan, 3.0],
            "plan": [1.0, np.nan, 2.0],  # codes as floats, as parquet exports often hold them
        }
    ).to_parquet(path)
    frame = checked(path, dataset("allow", "allow"))
    assert frame["plan"].tolist() == ["1", None, "2"]


def test_label_spellings_become_zero_and_one(tmp_path: Path) -> None:
    path = csv(
        tmp_path,
        "1,2026-01-01,Yes,1,basic",
        "2,2026-01-02, No ,2,basic",
        "3,2026-01-03,,3,basic",  # unlabelled
    )
    label = checked(path, dataset())["churned"]
    assert str(label.dtype) == "Int64"
    assert label.tolist()[:2] == [1, 0] and label.isna().tolist() == [False, False, True]


def test_numeric_label_spellings(tmp_path: Path) -> None:
    path = csv(tmp_path, "1,2026-01-01,2,1,basic", "2,2026-01-02,1,2,basic")
    label = checked(path, dataset(label_values={"2": 1, "1": 0}))["churned"]
    assert label.tolist() == [1, 0]


def test_an_unknown_label_spelling_is_rejected_with_examples(tmp_path: Path) -> None:
    path = csv(
        tmp_path,
        "1,2026-01-01,Yes,1,basic",
        "2,2026-01-02,No,2,basic",
        "3,2026-01-03,yes,3,basic",
        "4,2026-01-04,Maybe,4,basic",
    )
    found = problems(path, dataset())
    label = [p for p in found if "label_values" in p]
    assert len(label) == 1
    assert label[0].startswith("column 'churned': values not in dataset.label_values")
    assert "'Maybe'" in label[0] and "'yes'" in label[0] and "2 rows" in label[0]
    assert "[2, 3]" in label[0]


def test_an_unknown_label_spelling_is_the_only_label_problem(tmp_path: Path) -> None:
    path = csv(
        tmp_path,
        "1,2026-01-01,Yes,1,basic",
        "2,2026-01-02,No,2,basic",
        "3,2026-01-03,yes,3,basic",
        "4,2026-01-04,Maybe,4,basic",
    )
    found = problems(path, dataset())
    assert [p for p in found if "'churned'" in p] == [p for p in found if "label_values" in p]


def test_an_accepted_batch_passes_again(tmp_path: Path) -> None:
    # Ingest's prepare re-checks the accepted batch, whose labels are 0/1 by then.
    params = dataset("impute", "allow")
    first = checked(csv(tmp_path, *BLANK_AMOUNTS, "6,2026-01-06,,3,"), params)
    stored = tmp_path / "accepted.parquet"
    first.to_parquet(stored, index=False)
    again = check_batch(pd.read_parquet(stored), params, stored)
    pd.testing.assert_frame_equal(again, first)
    assert check_batch(first, params, stored)["churned"].tolist()[:5] == [1, 0, 0, 1, 0]


# --- the settings --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"kind": "categorical", "missing": "impute", "strategy": "median"},
            "categorical feature cannot be imputed with the median",
        ),
        (
            {"kind": "numeric", "missing": "impute", "strategy": "constant"},
            "strategy: constant needs a fill_value",
        ),
        (
            {"kind": "numeric", "missing": "impute", "strategy": "constant", "fill_value": "x"},
            "fill_value of a numeric feature must be a number",
        ),
        (
            {"kind": "numeric", "strategy": "median"},
            "strategy and fill_value apply only with missing: impute",
        ),
        (
            {"kind": "categorical", "missing": "allow", "fill_value": "none"},
            "strategy and fill_value apply only with missing: impute",
        ),
        (
            {"kind": "numeric", "missing": "impute", "fill_value": 0},
            "fill_value applies only with strategy: constant",
        ),
        ({"kind": "numeric", "missing": "sometimes"}, "missing"),
    ],
)
def test_settings_that_cannot_work_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FeatureSpec.model_validate(spec)


def test_default_imputation_by_kind() -> None:
    assert FeatureSpec(kind="numeric", missing="impute").imputation == "median"
    assert FeatureSpec(kind="categorical", missing="impute").imputation == "most_frequent"
    assert FeatureSpec(kind="numeric", missing="allow").imputation is None
    assert FeatureSpec(kind="numeric").imputation is None


def test_label_values_must_name_both_classes() -> None:
    with pytest.raises(ValidationError, match="both 0 and 1"):
        dataset(label_values={"Yes": 1, "Y": 1})


# --- the pipeline --------------------------------------------------------------------


SPECS = {
    "allowed": FeatureSpec(kind="numeric", missing="allow"),
    "constant": FeatureSpec(kind="numeric", missing="impute", strategy="constant", fill_value=-1.0),
    "median": FeatureSpec(kind="numeric", missing="impute"),
    "rejected": FeatureSpec(kind="numeric"),
    "frequent": FeatureSpec(kind="categorical", missing="impute"),
    "category_allowed": FeatureSpec(kind="categorical", missing="allow"),
    "category_constant": FeatureSpec(
        kind="categorical", missing="impute", strategy="constant", fill_value="unknown"
    ),
    "category_rejected": FeatureSpec(kind="categorical"),
}
# A derived number with no setting of its own, as feature views may add.
NUMERIC = ["allowed", "constant", "median", "rejected", "derived"]
CATEGORICAL = ["frequent", "category_allowed", "category_constant", "category_rejected"]
ESTIMATORS = [
    ("logistic_regression", {}),
    ("hist_gradient_boosting", {"max_depth": 3}),
    ("random_forest", {"n_estimators": 20, "max_depth": 6}),
]


def frame_with_gaps(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.normal(size=rows) for c in NUMERIC})
    for column in CATEGORICAL:
        frame[column] = rng.choice(["a", "b", "c"], rows).astype(object)
    for column in ["allowed", "constant", "median"]:
        frame.loc[rng.random(rows) < 0.15, column] = np.nan
    for column in ["frequent", "category_allowed", "category_constant"]:
        frame.loc[rng.random(rows) < 0.15, column] = None
    return frame


def serving_rows() -> pd.DataFrame:
    """Rows training never saw: gaps where training had none, new categories, all missing."""
    rows = frame_with_gaps(60, seed=2)
    rows.loc[0:9, "rejected"] = np.nan
    rows.loc[5:14, "derived"] = np.nan
    rows.loc[10:19, "category_rejected"] = None
    rows.loc[20:24, CATEGORICAL] = "never seen"
    rows.loc[30, NUMERIC] = np.nan
    rows.loc[30, CATEGORICAL] = None
    return rows


def outcome(frame: pd.DataFrame) -> np.ndarray:
    signal = frame["median"].fillna(0) + (frame["frequent"] == "a") - frame["allowed"].isna()
    return (signal + np.random.default_rng(1).normal(0, 0.5, len(frame)) > 0.3).astype(int)


@pytest.fixture(scope="module")
def training_rows() -> pd.DataFrame:
    return frame_with_gaps(400, seed=0)


@pytest.mark.parametrize(("estimator", "grid"), ESTIMATORS, ids=[e for e, _ in ESTIMATORS])
def test_the_compiled_scorer_fills_exactly_as_sklearn(
    estimator: str, grid: dict[str, Any], training_rows: pd.DataFrame
) -> None:
    pipeline = build_pipeline(Candidate(estimator, grid), NUMERIC, CATEGORICAL, 0, specs=SPECS)
    pipeline.fit(training_rows, outcome(training_rows))
    groups = {name for name, _, _ in pipeline.named_steps["prep"].transformers_}
    assert groups >= {
        "numeric",
        "numeric_median_flagged",
        "numeric_constant_-1.0",
        "categorical",
        "categorical_most_frequent",
        "categorical_constant_unknown",
    }
    scorer, info = serving_scorer(pipeline, training_rows)
    assert info["engine"] == "numpy", info
    for rows in (training_rows, serving_rows()):
        got = scorer.positive_proba({c: rows[c].tolist() for c in rows})
        want = pipeline.predict_proba(rows)[:, 1]
        assert np.array_equal(got, want), np.abs(got - want).max()


def test_imputers_learn_from_the_training_rows_only() -> None:
    frame = frame_with_gaps(200, seed=3)
    frame["id"] = np.arange(len(frame))
    frame["ts"] = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(
        np.arange(len(frame)) // 10, unit="D"
    )
    frame["churned"] = outcome(frame)
    # The last days hold far larger numbers and another favourite category.
    late = frame["ts"] > frame["ts"].max() - pd.Timedelta(days=5)
    frame.loc[late, "median"] = frame.loc[late, "median"].abs() + 100
    frame.loc[late, "frequent"] = "z"
    params = DatasetParams(
        name="t",
        source="t.csv",
        entity="id",
        timestamp="ts",
        label="churned",
        features={c: SPECS.get(c, FeatureSpec(kind="numeric")) for c in NUMERIC + CATEGORICAL},
    )
    split = time_split(frame, params, holdout_days=5)
    assert len(split.holdout) == late.sum() > 0
    pipeline = build_pipeline(
        Candidate("logistic_regression", {}), NUMERIC, CATEGORICAL, 0, specs=params.features
    )
    pipeline.fit(split.train[NUMERIC + CATEGORICAL], split.train["churned"])
    prep = pipeline.named_steps["prep"]
    imputer = prep.named_transformers_["numeric"][0]
    learned = imputer.statistics_[list(imputer.feature_names_in_).index("median")]
    assert learned == split.train["median"].median()
    assert learned != frame["median"].median()
    [favourite] = prep.named_transformers_["categorical_most_frequent"][0].statistics_
    assert favourite == split.train["frequent"].mode()[0] != "z"
    assert frame["frequent"].value_counts().index[0] == "z"
