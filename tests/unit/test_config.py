from pathlib import Path

import pytest
import yaml

from loopline.config import ConfigError, load_params

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def write(tmp_path: Path, mutate: object) -> Path:
    raw = yaml.safe_load(REPO_PARAMS.read_text())
    mutate(raw)  # type: ignore[operator]
    out = tmp_path / "params.yaml"
    out.write_text(yaml.safe_dump(raw))
    return out


def test_repo_params_are_valid() -> None:
    params = load_params(REPO_PARAMS)
    assert params.dataset.entity == "customer_id"
    assert "plan" in params.dataset.categorical
    assert "tenure_months" in params.dataset.numeric


def test_unknown_metric_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, lambda r: r["training"].update(metric="auc"))
    with pytest.raises(ConfigError, match=r"training\.metric"):
        load_params(path)


def test_missing_section_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, lambda r: r.pop("serving"))
    with pytest.raises(ConfigError, match="serving"):
        load_params(path)


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, lambda r: r["training"].update(holdout_dayz=3))
    with pytest.raises(ConfigError, match=r"training\.holdout_dayz"):
        load_params(path)


def test_feature_kind_must_be_known(tmp_path: Path) -> None:
    path = write(tmp_path, lambda r: r["dataset"]["features"].update(plan="text"))
    with pytest.raises(ConfigError, match=r"dataset\.features\.plan"):
        load_params(path)


def test_pii_cannot_be_a_feature(tmp_path: Path) -> None:
    path = write(tmp_path, lambda r: r["dataset"]["features"].update(email="categorical"))
    with pytest.raises(ConfigError, match="pii columns may not be model features"):
        load_params(path)


def test_empty_grid_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, lambda r: r["training"]["candidates"].update(random_forest={"x": []}))
    with pytest.raises(ConfigError, match="random_forest.x lists no values"):
        load_params(path)


def test_threshold_range(tmp_path: Path) -> None:
    path = write(tmp_path, lambda r: r["serving"].update(threshold=1.5))
    with pytest.raises(ConfigError, match=r"serving\.threshold"):
        load_params(path)


def test_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("dataset: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)


def test_selection_tolerance_defaults_to_the_bootstrap_se(tmp_path: Path) -> None:
    assert load_params(REPO_PARAMS).training.selection_tolerance == "bootstrap_se"
    path = write(tmp_path, lambda r: r["training"].pop("selection_tolerance", None))
    assert load_params(path).training.selection_tolerance == "bootstrap_se"


@pytest.mark.parametrize("value", [0, 0.01, 1])
def test_selection_tolerance_takes_a_number(tmp_path: Path, value: float) -> None:
    path = write(tmp_path, lambda r: r["training"].update(selection_tolerance=value))
    assert load_params(path).training.selection_tolerance == value


@pytest.mark.parametrize("value", ["fastest", -0.01, True, ".inf", None])
def test_selection_tolerance_must_be_known(tmp_path: Path, value: object) -> None:
    wrong = float("inf") if value == ".inf" else value
    path = write(tmp_path, lambda r: r["training"].update(selection_tolerance=wrong))
    with pytest.raises(ConfigError, match=r"training\.selection_tolerance: .*bootstrap_se"):
        load_params(path)
