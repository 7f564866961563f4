from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from loopline.serving.answers import Answer, NotServing, answer_batch
from loopline.serving.router import (
    PROMOTE_COMMAND,
    Arm,
    RoutingTable,
    bucket,
    choose_arm,
    no_production,
    shadowed,
)
from loopline.serving.watcher import ModelCache, RegistryWatcher, read_table


class Model:
    inputs = ["a"]


CHAMPION, CHALLENGER = Arm("m:1", Model()), Arm("m:2", Model())


def table(kind: str, share: float, challenger: bool = True) -> RoutingTable:
    return RoutingTable(CHAMPION, CHALLENGER if challenger else None, kind, share)


def test_no_challenger_always_champion() -> None:
    for kind in ("single", "canary", "ab", "shadow", "blue-green"):
        assert choose_arm(table(kind, 1.0, challenger=False), 7, 0.0) == "champion"


def test_canary_share_follows_the_draw() -> None:
    t = table("canary", 0.2)
    arms = [choose_arm(t, 1, draw / 1000) for draw in range(1000)]
    assert arms.count("challenger") == 200


def test_ab_is_sticky_per_entity_and_near_the_share() -> None:
    t = table("ab", 0.3)
    first = [choose_arm(t, i, 0.0) for i in range(5000)]
    again = [choose_arm(t, i, 0.99) for i in range(5000)]
    assert first == again
    assert 0.27 < first.count("challenger") / 5000 < 0.33


def test_bucket_is_uniform_and_stable() -> None:
    values = [bucket(i) for i in range(10000)]
    assert all(0 <= v < 1 for v in values)
    assert 0.48 < sum(values) / len(values) < 0.52
    assert bucket(42) == bucket(42)


def test_blue_green_switches_all_traffic() -> None:
    assert {choose_arm(table("blue-green", 0.0), i, 0.1) for i in range(50)} == {"champion"}
    assert {choose_arm(table("blue-green", 1.0), i, 0.9) for i in range(50)} == {"challenger"}


def test_shadow_answers_with_champion_and_samples_the_challenger() -> None:
    t = table("shadow", 0.25)
    assert {choose_arm(t, i, 0.0) for i in range(50)} == {"champion"}
    assert sum(shadowed(t, d / 100) for d in range(100)) == 25
    assert all(shadowed(table("shadow", 0.0), d / 100) for d in range(100))
    assert not shadowed(table("canary", 0.5), 0.0)


# --- nothing in production: refuse, or answer as "unpromoted" -------------------------

CANDIDATE = Arm("m:bento", Model())
POLICIES = ("single", "canary", "ab", "shadow", "blue-green")


def test_without_production_nothing_answers_by_default() -> None:
    refusing = RoutingTable(None)
    assert refusing.default_arm is None
    with pytest.raises(LookupError):
        choose_arm(refusing, 7, 0.0)
    assert not shadowed(refusing, 0.0)
    assert refusing.describe()["champion"] is None


def test_an_allowed_unpromoted_model_answers_as_unpromoted_never_champion() -> None:
    for kind in POLICIES:
        t = RoutingTable(None, None, kind, 1.0, unpromoted=CANDIDATE)
        assert {choose_arm(t, i, i / 50) for i in range(50)} == {"unpromoted"}
        assert t.arm("unpromoted") is CANDIDATE
        assert not shadowed(t, 0.0)
    assert t.describe()["unpromoted"] == "m:bento"


def test_the_refusal_names_the_model_and_the_real_promote_command() -> None:
    from typer.testing import CliRunner

    from loopline.cli import app

    message = no_production("churn")
    assert "'churn'" in message
    assert f"`{PROMOTE_COMMAND}`" in message
    words = PROMOTE_COMMAND.split()
    assert words[:3] == ["loopline", "models", "promote"]
    shown = CliRunner().invoke(app, [*words[1:3], "--help"])
    assert shown.exit_code == 0, shown.output
    # The placeholder and the option are what the command takes.
    assert "VERSION" in shown.output and "--reason" in shown.output
    assert CliRunner().invoke(app, ["models", "list", "--help"]).exit_code == 0


@dataclass
class Registry:
    """What the watcher reads from the registry, set by the test."""

    production_version: str | None = None
    challenger_version: str | None = None
    counter: int = 1

    def change_counter(self, model_name: str) -> int:
        return self.counter

    def production(self, model_name: str) -> Any:
        return SimpleNamespace(version=self.production_version) if self.production_version else None

    def challenger(self, model_name: str) -> Any:
        version = self.challenger_version
        return SimpleNamespace(version=version) if version else None

    def policy(self, model_name: str) -> Any:
        return SimpleNamespace(kind="canary", challenger_share=0.5)


def loader(loaded: list[str]) -> Any:
    def load(version: str) -> Model:
        loaded.append(version)
        return Model()

    return load


def test_read_table_without_production_loads_nothing_unless_allowed() -> None:
    loaded: list[str] = []
    registry = Registry(challenger_version="m:2")
    table = read_table(registry, "m", ModelCache(loader(loaded)))
    assert (table.champion, table.challenger, table.unpromoted) == (None, None, None)
    assert loaded == []  # not the Bento's model, nor a challenger with nothing to challenge

    allowed = read_table(registry, "m", ModelCache(loader(loaded)), "m:bento")
    assert allowed.default_arm == "unpromoted" and allowed.challenger is None
    assert allowed.arm("unpromoted").version == "m:bento"
    assert loaded == ["m:bento"]


def test_read_table_with_production_serves_it_as_champion_even_when_allowed() -> None:
    registry = Registry(production_version="m:1", challenger_version="m:2")
    table = read_table(registry, "m", ModelCache(loader([])), "m:bento")
    assert table.default_arm == "champion" and table.unpromoted is None
    assert (table.arm("champion").version, table.arm("challenger").version) == ("m:1", "m:2")


def test_a_promotion_is_picked_up_and_answers_as_champion() -> None:
    registry = Registry()
    published: list[RoutingTable] = []
    cache = ModelCache(loader([]))
    watcher = RegistryWatcher(registry, "m", cache, "m:bento", published.append)
    assert watcher.refresh(force=True)
    assert choose_arm(published[-1], 1, 0.0) == "unpromoted"
    assert not watcher.refresh()  # no registry change, no new table
    registry.production_version, registry.counter = "m:bento", 2
    assert watcher.refresh()
    after = published[-1]
    assert choose_arm(after, 1, 0.0) == "champion" and after.unpromoted is None
    assert after.arm("champion").version == "m:bento"


def test_a_batch_without_a_model_is_refused_without_reading_features() -> None:
    def read(ids: list[int]) -> dict[str, list[Any]]:
        raise AssertionError("nothing may answer: no feature read either")

    answers = answer_batch(RoutingTable(None), read, frozenset({"a"}), [[1], [2, 3]], lambda: 0.0)
    assert len(answers) == 2 and all(isinstance(a, NotServing) for a in answers)


def test_unpromoted_answers_name_their_arm_and_version() -> None:
    class Scorer(Model):
        def positive_proba(self, columns: dict[str, list[Any]]) -> list[float]:
            return [0.5 for _ in columns["a"]]

    table = RoutingTable(None, unpromoted=Arm("m:bento", Scorer()))

    def read(ids: list[int]) -> dict[str, list[Any]]:
        return {"id": ids, "a": [1.0 for _ in ids]}

    (answer,) = answer_batch(table, read, frozenset({"a"}), [[1, 2]], lambda: 0.0)
    assert isinstance(answer, Answer)
    assert answer.arms == ["unpromoted", "unpromoted"]
    assert answer.versions == ["m:bento", "m:bento"]
