"""`loopline init`'s writing half: params.yaml edited as text, validated before it is written."""

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from loopline import feature_definitions, project_init
from loopline.config import load_params
from loopline.data.infer import Proposal, propose
from loopline.data.sample import read_sample

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"

TEXT = """\
# The file's own comment.

dataset:
  # about the name
  name: churn
  features:
    plan: categorical

# Leading comment of training,
# two lines.
training:
  seed: 7  # inline
  # trailing comment of training

# Leading comment of promotion.
promotion:
  segment_column: plan
  review:
    seed: 0
"""


def sections(text: str) -> dict[str, list[str]]:
    """Non-blank lines per top-level section; column-0 comments go with the section they lead."""
    out: dict[str, list[str]] = {"": []}
    current, pending = "", []
    for line in text.splitlines():
        header = re.match(r"([A-Za-z_]\w*):", line)
        if header:
            current = header.group(1)
            out[current] = pending
            pending = []
        elif line.startswith("#"):
            pending.append(line)
            continue
        else:
            out[current] += pending
            pending = []
        if line.strip():
            out[current].append(line)
    out[current] += pending
    return out


# --- text edits ----------------------------------------------------------------------


def test_replace_block_changes_only_that_section() -> None:
    new = "dataset:\n  name: other\n"
    out = project_init.replace_block(TEXT, "dataset", new)
    before, after = sections(TEXT), sections(out)
    assert after["dataset"] == ["dataset:", "  name: other"]
    assert {k: v for k, v in after.items() if k != "dataset"} == {
        k: v for k, v in before.items() if k != "dataset"
    }
    assert "\n  name: other\n\n# Leading comment of training,\n# two lines.\ntraining:\n" in out


def test_replace_block_keeps_the_next_sections_leading_comments() -> None:
    out = project_init.replace_block(TEXT, "training", "training:\n  seed: 8\n")
    assert "# Leading comment of training,\n# two lines.\ntraining:\n  seed: 8\n\n" in out
    assert "# trailing comment of training" not in out
    assert "\n# Leading comment of promotion.\npromotion:\n" in out
    assert yaml.safe_load(out)["promotion"] == yaml.safe_load(TEXT)["promotion"]


def test_replace_block_of_the_last_section_and_of_a_missing_one() -> None:
    last = project_init.replace_block(TEXT, "promotion", "promotion:\n  segment_column: null\n")
    assert sections(last)["training"] == sections(TEXT)["training"]
    assert yaml.safe_load(last)["promotion"] == {"segment_column": None}
    added = project_init.replace_block(TEXT, "serving", "serving:\n  threshold: 0.5\n")
    assert added.startswith(TEXT) and added.endswith("\n\nserving:\n  threshold: 0.5\n")


def test_remove_block() -> None:
    out = project_init.remove_block(TEXT, "training")
    assert "training" not in yaml.safe_load(out)
    assert "seed: 7" not in out and "# trailing comment of training" not in out
    assert out.endswith("\n".join(sections(TEXT)["promotion"]) + "\n")
    assert sections(out)["dataset"] == sections(TEXT)["dataset"]
    assert project_init.remove_block(TEXT, "generator") == TEXT


def test_remove_block_takes_the_sections_leading_comments_with_it() -> None:
    out = project_init.remove_block(TEXT, "training")
    assert "Leading comment of training" not in out


def test_set_key_replaces_a_key_of_the_section_only() -> None:
    out = project_init.set_key(TEXT, "training", "seed", "8")
    assert yaml.safe_load(out)["training"] == {"seed": 8}
    assert out == TEXT.replace("  seed: 7  # inline\n", "  seed: 8\n")


def test_set_key_adds_a_missing_key_after_the_header() -> None:
    # promotion.review.seed is nested: promotion itself has no seed yet.
    out = project_init.set_key(TEXT, "promotion", "seed", "3")
    assert out == TEXT.replace("promotion:\n", "promotion:\n  seed: 3\n")
    assert yaml.safe_load(out)["promotion"]["review"] == {"seed": 0}


def test_set_key_adds_a_missing_section() -> None:
    out = project_init.set_key(TEXT, "features", "service", "churn_v1")
    assert out.startswith(TEXT) and yaml.safe_load(out)["features"] == {"service": "churn_v1"}


def test_a_nested_key_of_the_same_name_is_not_set() -> None:
    # dataset.features is indented: the top-level features section is a different one.
    out = project_init.set_key(TEXT, "dataset", "plan", "numeric")
    assert yaml.safe_load(out)["dataset"]["features"] == {"plan": "categorical"}
    assert yaml.safe_load(out)["dataset"]["plan"] == "numeric"


@pytest.mark.parametrize("column", ["région", "a\\b"])
def test_set_key_writes_any_json_value_as_it_is(column: str) -> None:
    out = project_init.set_key(TEXT, "promotion", "segment_column", json.dumps(column))
    assert yaml.safe_load(out)["promotion"]["segment_column"] == column


# --- names and the holdout -----------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "name"),
    [
        ("Customers 2026.csv", "customers_2026"),
        ("churn.csv.gz", "churn"),
        ("A-B c.parquet", "a_b_c"),
        ("2026.csv", "data_2026"),
        ("---.csv", "data"),
        ("données.csv", "donn_es"),
    ],
)
def test_dataset_name(file: str, name: str) -> None:
    assert project_init.dataset_name(Path("/exports") / file) == name


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s and "\0" not in s))
def test_dataset_name_is_always_a_valid_name(stem: str) -> None:
    name = project_init.dataset_name(Path(f"{stem}.csv"))
    assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name


def test_holdout_days_hold_the_last_fifth_of_labelled_rows(proposal: Proposal) -> None:
    days = pd.date_range("2026-01-01", periods=100, freq="D").strftime("%Y-%m-%d")
    sample = pd.DataFrame({"signup_date": days, "churned": ["Yes", "No"] * 50})
    # Day 99 minus the 80th percentile (day 79.2) is 19.8 days: 20 whole days.
    assert project_init.holdout_days(sample, proposal) == 20
    unlabelled = pd.DataFrame({"signup_date": ["2026-12-31"] * 50, "churned": [None] * 50})
    assert project_init.holdout_days(pd.concat([sample, unlabelled]), proposal) == 20
    one_day = pd.DataFrame({"signup_date": ["2026-01-01"] * 10, "churned": ["Yes"] * 10})
    assert project_init.holdout_days(one_day, proposal) == 1


def test_holdout_days_on_the_public_table(proposal: Proposal, table: pd.DataFrame) -> None:
    days = project_init.holdout_days(table, proposal)
    stamps = pd.to_datetime(table["signup_date"], utc=True)
    share = (stamps > stamps.max() - pd.Timedelta(days=days)).mean()
    assert 0.18 <= share <= 0.22


# --- plan and write ------------------------------------------------------------------


@pytest.fixture()
def project(tmp_path: Path, own_csv: Path) -> Path:
    shutil.copy(REPO_PARAMS, tmp_path / "params.yaml")
    shutil.copy(own_csv, tmp_path / "customers.csv")
    return tmp_path


def planned(project: Path, timestamp: str | None = "signup_date") -> project_init.InitPlan:
    sample = read_sample(project / "customers.csv")
    proposal = propose(sample, "customer_id", "churned", timestamp)
    return project_init.plan(proposal, sample.frame, project / "params.yaml", project, "customers")


def test_plan_writes_the_proposal_into_params(project: Path) -> None:
    sample = read_sample(project / "customers.csv")
    proposal = propose(sample, "customer_id", "churned", "signup_date")
    plan = project_init.plan(proposal, sample.frame, project / "params.yaml", project, "customers")
    params, dataset = plan.params, plan.params.dataset
    assert {c: s.kind for c, s in dataset.features.items()} == proposal.features
    assert dataset.label_values == {"Yes": 1, "No": 0}
    assert dataset.features["total_charges"].missing == "impute"
    assert dataset.features["tenure"].missing == "reject"
    assert dataset.pii == dict.fromkeys(proposal.pii, "drop")
    assert proposal.pii == ["contact", "email"]
    assert (dataset.entity, dataset.timestamp, dataset.label) == (
        "customer_id",
        "signup_date",
        "churned",
    )
    assert dataset.timestamp_source == "column" and dataset.source == "customers.csv"
    assert params.promotion.segment_column == proposal.segment_column is not None
    assert params.generator is None
    assert params.features.service == "customers_v1"
    assert params.training.holdout_days == project_init.holdout_days(sample.frame, proposal)
    assert params.training.holdout_fraction is None
    assert plan.definitions == feature_definitions.render(params)


def test_plan_keeps_every_other_setting_and_comment(project: Path) -> None:
    original = (project / "params.yaml").read_text()
    plan = planned(project)
    before, after = sections(original), sections(plan.params_text)
    assert "generator" not in after
    assert after[""] == before[""]
    assert after["monitoring"] == before["monitoring"]
    assert after["serving"] == before["serving"]
    assert "# Monitoring and the closed loop: windows of the prediction log against the" in (
        plan.params_text
    )
    holdout = f"  holdout_days: {plan.params.training.holdout_days}"
    assert after["training"] == [holdout if "holdout_days" in x else x for x in before["training"]]
    segment = f"  segment_column: {json.dumps(plan.params.promotion.segment_column)}"
    assert after["promotion"] == [
        segment if "segment_column" in x else x for x in before["promotion"]
    ]
    assert after["features"] == [
        "  service: customers_v1" if "service" in x else x for x in before["features"]
    ]
    raw, planned_raw = yaml.safe_load(original), yaml.safe_load(plan.params_text)
    for section in ("monitoring", "serving"):
        assert planned_raw[section] == raw[section]


def test_plan_never_writes(project: Path) -> None:
    before = {p.name: p.read_bytes() for p in project.iterdir()}
    planned(project)
    assert {p.name: p.read_bytes() for p in project.iterdir()} == before


def test_without_a_timestamp_rows_are_stamped_on_arrival(project: Path) -> None:
    plan = planned(project, timestamp=None)
    dataset, training = plan.params.dataset, plan.params.training
    assert dataset.timestamp_source == "arrival"
    assert dataset.timestamp == project_init.ARRIVAL_COLUMN
    assert training.holdout_fraction == project_init.HOLDOUT_SHARE and training.holdout_days is None
    assert any("arrival time" in note for note in plan.notes)


def test_the_arrival_column_does_not_take_a_name_the_file_has(
    tmp_path: Path, table: pd.DataFrame
) -> None:
    shutil.copy(REPO_PARAMS, tmp_path / "params.yaml")
    table.assign(arrived_at=table["signup_date"]).to_csv(tmp_path / "customers.csv", index=False)
    assert planned(tmp_path, timestamp=None).params.dataset.timestamp == "arrived_at_1"


def test_no_segment_column_is_written_as_null(project: Path, proposal: Proposal) -> None:
    sample = read_sample(project / "customers.csv")
    none = dataclasses.replace(proposal, segment_column=None)
    plan = project_init.plan(none, sample.frame, project / "params.yaml", project, "customers")
    assert plan.params.promotion.segment_column is None


def test_a_plan_that_would_not_load_is_refused_and_writes_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {p.name: p.read_bytes() for p in project.iterdir()}
    monkeypatch.setattr(project_init, "HOLDOUT_SHARE", 1.5)
    with pytest.raises(project_init.InitError, match=r"would not load[\s\S]*holdout_fraction"):
        planned(project, timestamp=None)
    assert {p.name: p.read_bytes() for p in project.iterdir()} == before


def test_a_numeric_segment_column_is_refused(project: Path, proposal: Proposal) -> None:
    sample = read_sample(project / "customers.csv")
    numeric = dataclasses.replace(proposal, segment_column="tenure")
    with pytest.raises(project_init.InitError, match="segment_column 'tenure'"):
        project_init.plan(numeric, sample.frame, project / "params.yaml", project, "customers")


def test_write_writes_both_files(project: Path) -> None:
    plan = planned(project)
    definitions = project / "feature_repo" / "definitions.py"
    project_init.write(plan, project / "params.yaml", definitions)
    params = load_params(project / "params.yaml")
    assert params == plan.params
    text = definitions.read_text()
    assert text == plan.definitions and feature_definitions.is_generated(text)
    assert sorted(p.name for p in definitions.parent.iterdir()) == ["definitions.py"]
