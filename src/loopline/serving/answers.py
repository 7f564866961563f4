"""One batch of prediction requests: one feature read, one model call per arm.

The batcher hands this a list of requests (each a list of customer ids); it returns one
:class:`Answer` per request, or an :class:`UnknownEntity` for a request naming a customer
the online store has never seen (or :class:`NotServing` for every request when the
routing table has no model that may answer: nothing is in production). A bad request
fails alone: its rows are left out of the model calls, and every other request's scores
are what they would be served alone (scoring is row by row; only the draws of the canary
split are random).

Columns travel as Feast returns them, a dict of lists, not as DataFrames: building a
frame per request cost more than the compiled model's whole prediction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loopline.serving.router import ArmName, RoutingTable, choose_arm

Columns = dict[str, list[Any]]
# Customer ids -> feature columns, one value per id in order (Feast's to_dict()).
Reader = Callable[[list[int]], Mapping[str, Sequence[Any]]]


class UnknownEntity(LookupError):
    """Customers with no stored feature at all: never ingested, or past the online TTL."""

    def __init__(self, ids: list[int]) -> None:
        super().__init__(ids)
        self.ids = ids


class NotServing(LookupError):
    """No model may answer: nothing is in production and unpromoted serving is off."""


@dataclass(frozen=True)
class Answer:
    """The scores of one request, with what the log and the shadow need."""

    ids: list[int]
    scores: list[float]
    arms: list[ArmName]  # per id
    versions: list[str]
    features: Columns  # this request's rows of every column read
    table: RoutingTable


def answer_batch(
    table: RoutingTable,
    read: Reader,
    stored: frozenset[str],
    requests: list[list[int]],
    draw: Callable[[], float],
) -> list[Answer | UnknownEntity | NotServing]:
    """Every request's answer, reading and scoring the whole batch at once."""
    default = table.default_arm
    if default is None:  # the table changed after these requests were queued
        return [NotServing() for _ in requests]
    flat = [i for ids in requests for i in ids]
    columns = {name: list(values) for name, values in read(flat).items()}
    inputs = table.arm(default).inputs
    known = known_rows(columns, [c for c in inputs if c in stored], len(flat))
    results: list[Answer | UnknownEntity | NotServing | None] = [None] * len(requests)
    spans: list[tuple[int, int]] = []
    good: list[int] = []
    start = 0
    for k, ids in enumerate(requests):
        end = start + len(ids)
        spans.append((start, end))
        unknown = [flat[r] for r in range(start, end) if not known[r]]
        if unknown:
            results[k] = UnknownEntity(unknown)
        else:
            good.extend(range(start, end))
        start = end
    arms = {r: choose_arm(table, flat[r], draw()) for r in good}
    scores = _score(table, columns, arms)
    for k, (start, end) in enumerate(spans):
        if results[k] is not None:
            continue
        rows = range(start, end)
        chosen = [arms[r] for r in rows]
        results[k] = Answer(
            ids=flat[start:end],
            scores=[scores[r] for r in rows],
            arms=chosen,
            versions=[table.arm(a).version for a in chosen],
            features={name: values[start:end] for name, values in columns.items()},
            table=table,
        )
    return [r for r in results if r is not None]


def known_rows(columns: Mapping[str, Sequence[Any]], stored: list[str], count: int) -> list[bool]:
    """Rows with any stored feature: an entity the online store has never seen has none."""
    known = [False] * count
    for name in stored:
        for r, value in enumerate(columns[name]):
            if value is not None:
                known[r] = True
    return known


def _score(table: RoutingTable, columns: Columns, arms: dict[int, ArmName]) -> dict[int, float]:
    # Each arm scores its own rows in one call.
    scores: dict[int, float] = {}
    for name in sorted(set(arms.values())):
        arm = table.arm(name)
        rows = [r for r, a in arms.items() if a == name]
        if len(rows) == len(next(iter(columns.values()), [])):
            part = arm.model.positive_proba(columns)
        else:
            part = arm.model.positive_proba({c: [columns[c][r] for r in rows] for c in arm.inputs})
        scores.update(zip(rows, (float(s) for s in part), strict=True))
    return scores
