"""Metric direction and best value (gitreg.metrics): the one rule compare and the report share."""

from __future__ import annotations

import pytest

from gitreg import metrics
from gitreg.manifest import loads, new_manifest_text


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("val_accuracy", "accuracy"),
        ("test/rmse", "rmse"),
        ("eval.mean_reward", "reward"),
        ("best_final_loss", "loss"),
        ("reward", "reward"),
    ],
)
def test_stem(name: str, stem: str) -> None:
    assert metrics.stem(name) == stem


def test_direction_from_the_defaults_and_overrides() -> None:
    higher, lower = loads(new_manifest_text()).directions()
    assert metrics.direction("Val_Accuracy", higher, lower) == "higher"
    assert metrics.direction("test/loss", higher, lower) == "lower"
    assert metrics.direction("wobble", higher, lower) is None
    assert metrics.direction("wobble", {"wobble"}, set()) == "higher"
    assert metrics.direction("x_wobble", set(), {"x_wobble"}) == "lower"
    assert metrics.direction("both", {"both"}, {"both"}) == "higher"


def test_winner() -> None:
    assert metrics.winner({"a": 1.0, "b": 2.0}, "higher") == "b"
    assert metrics.winner({"a": 1.0, "b": 2.0}, "lower") == "a"
    assert metrics.winner({"a": 2.0, "b": 2.0}, "higher") is None  # a tie has no winner
    assert metrics.winner({"a": 1.0, "b": None}, "higher") is None  # one value: nothing to beat
    assert metrics.winner({"a": 1.0, "b": 2.0}, None) is None
    assert metrics.best_value([3.0, 1.0, 2.0], "higher") == 3.0
    assert metrics.best_value([3.0, 1.0, 2.0], "lower") == 1.0
