"""Which task runner the environment asks for, and the errors for values that mean nothing."""

from __future__ import annotations

import socket

import pytest

from flows.runner import RunnerConfigError, SchedulerUnreachable, check_scheduler, chosen


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ("threads", None)),
        ({"LOOPLINE_TASK_RUNNER": "processes", "LOOPLINE_TASK_WORKERS": "3"}, ("processes", 3)),
        ({"LOOPLINE_TASK_RUNNER": " dask "}, ("dask", None)),
        ({"LOOPLINE_TASK_RUNNER": "tcp://10.0.0.5:8786"}, ("tcp://10.0.0.5:8786", None)),
    ],
)
def test_the_environment_names_the_runner(env: dict[str, str], expected: tuple) -> None:
    assert chosen(env) == expected


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LOOPLINE_TASK_RUNNER": "ray"}, "LOOPLINE_TASK_RUNNER='ray'"),
        ({"LOOPLINE_TASK_RUNNER": "http://x:1"}, "LOOPLINE_TASK_RUNNER='http://x:1'"),
        ({"LOOPLINE_TASK_WORKERS": "0"}, "LOOPLINE_TASK_WORKERS='0'"),
        ({"LOOPLINE_TASK_WORKERS": "two"}, "LOOPLINE_TASK_WORKERS='two'"),
    ],
)
def test_a_wrong_value_is_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(RunnerConfigError) as error:
        chosen(env)
    assert named in str(error.value)


def test_a_scheduler_address_without_a_port_is_refused() -> None:
    with pytest.raises(RunnerConfigError, match="needs a host and a port"):
        check_scheduler("tcp://127.0.0.1")


def test_nothing_listening_is_reported_with_the_address() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The port is free again: nothing answers there.
    with pytest.raises(SchedulerUnreachable, match=f"tcp://127.0.0.1:{port} does not answer"):
        check_scheduler(f"tcp://127.0.0.1:{port}")
