"""One batch of requests: one read, one model call per arm, bad requests failing alone."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from loopline.serving.answers import Answer, UnknownEntity, answer_batch
from loopline.serving.router import Arm, RoutingTable

STORE = {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4}  # customer -> its only feature


class Scorer:
    inputs = ["x"]

    def __init__(self, offset: float) -> None:
        self.offset, self.calls = offset, 0

    def positive_proba(self, columns: Mapping[str, Sequence[Any]]) -> np.ndarray:
        self.calls += 1
        return np.asarray(columns["x"], dtype=float) + self.offset


def read(reads: list[list[int]]) -> Any:
    def reader(ids: list[int]) -> dict[str, list[Any]]:
        reads.append(list(ids))
        return {"customer_id": ids, "x": [STORE.get(i) for i in ids]}

    return reader


def test_one_read_and_one_call_answer_every_request_in_order() -> None:
    reads: list[list[int]] = []
    scorer = Scorer(0.0)
    table = RoutingTable(Arm("m:1", scorer))
    answers = answer_batch(table, read(reads), frozenset({"x"}), [[1], [3, 2], [4]], lambda: 0.5)
    assert reads == [[1, 3, 2, 4]] and scorer.calls == 1
    assert all(isinstance(a, Answer) for a in answers)
    assert [(a.ids, a.scores) for a in answers if isinstance(a, Answer)] == [
        ([1], [0.1]),
        ([3, 2], [0.3, 0.2]),
        ([4], [0.4]),
    ]
    second = answers[1]
    assert isinstance(second, Answer) and second.features == {
        "customer_id": [3, 2],
        "x": [0.3, 0.2],
    }


def test_a_request_naming_an_unknown_customer_fails_alone() -> None:
    table = RoutingTable(Arm("m:1", Scorer(0.0)))
    answers = answer_batch(table, read([]), frozenset({"x"}), [[1], [2, 99], [3]], lambda: 0.5)
    first, bad, last = answers
    assert isinstance(bad, UnknownEntity) and bad.ids == [99]
    assert isinstance(first, Answer) and first.scores == [0.1]
    assert isinstance(last, Answer) and last.scores == [0.3]


def test_a_canary_scores_each_arm_once_with_its_own_rows() -> None:
    champion, challenger = Scorer(0.0), Scorer(10.0)
    table = RoutingTable(Arm("m:1", champion), Arm("m:2", challenger), "canary", 0.5)
    draws = iter([0.9, 0.1, 0.9, 0.1])  # champion, challenger, champion, challenger
    answers = answer_batch(table, read([]), frozenset({"x"}), [[1, 2], [3, 4]], lambda: next(draws))
    assert champion.calls == challenger.calls == 1
    assert [(a.arms, a.versions, a.scores) for a in answers if isinstance(a, Answer)] == [
        (["champion", "challenger"], ["m:1", "m:2"], [0.1, 10.2]),
        (["champion", "challenger"], ["m:1", "m:2"], [0.3, 10.4]),
    ]
