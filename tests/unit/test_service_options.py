"""The service's BentoML settings as the server's environment sets them."""

from __future__ import annotations

import pytest

from loopline.serving.workers import WORKERS_ENV, service_options


def test_defaults_are_one_worker_per_cpu_four_threads_logs_and_metrics_on() -> None:
    options = service_options({})
    assert options["workers"] == "cpu_count"
    assert options["threads"] == 4
    assert options["logging"] == {"access": {"enabled": True}}
    assert options["metrics"] == {"enabled": True}
    assert {"name": "OMP_NUM_THREADS", "value": "1"} in options["envs"]


def test_environment_sets_workers_threads_and_turns_logs_and_metrics_off() -> None:
    options = service_options(
        {
            WORKERS_ENV: "3",
            "LOOPLINE_SERVING_THREADS": "8",
            "LOOPLINE_SERVING_ACCESS_LOG": "0",
            "LOOPLINE_SERVING_BENTOML_METRICS": "0",
        }
    )
    assert (options["workers"], options["threads"]) == (3, 8)
    assert options["logging"]["access"]["enabled"] is False
    assert options["metrics"]["enabled"] is False


def test_a_bad_worker_count_names_the_variable() -> None:
    with pytest.raises(ValueError, match=WORKERS_ENV):
        service_options({WORKERS_ENV: "many"})
