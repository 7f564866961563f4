from loopline.serving.router import Arm, RoutingTable, bucket, choose_arm, shadowed


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
