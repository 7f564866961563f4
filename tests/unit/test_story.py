"""The drift story's preconditions (the story itself runs in tests/e2e/test_closed_loop.py)."""

from pathlib import Path

import pytest

from loopline import story
from loopline.config import load_params
from loopline.settings import Paths

REPO = Path(__file__).resolve().parents[2]


def test_the_drift_stretch_outlasts_label_delay_and_holdout() -> None:
    params = load_params(REPO / "params.yaml")
    days = story.drift_days(params)
    # The newest batch must hold labelled post-drift rows older than the training holdout.
    assert days > params.dataset.label_delay_days + params.training.holdout_days


@pytest.mark.parametrize("drift_day", [None, 120, 60])
def test_a_story_needs_a_drift_day_after_the_generated_days(
    drift_day: int | None, tmp_path: Path
) -> None:
    params = load_params(REPO / "params.yaml")
    generator = params.built_in().model_copy(update={"drift_day": drift_day})
    params = params.model_copy(update={"generator": generator})
    with pytest.raises(ValueError, match="drift_day must fall after the generated 120 days"):
        story.tell(
            params,
            Paths(tmp_path, tmp_path / ".loopline"),
            serving_url="http://127.0.0.1:9",
            client_key="unused",
            api_url="http://127.0.0.1:9/api",
        )
    assert not (tmp_path / ".loopline").exists()  # refused before touching anything
