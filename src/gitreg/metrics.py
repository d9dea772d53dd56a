"""Which way a metric wins, and which value is best: the one rule ``gitreg compare``, the
report and the renderers share. Pure: models.yaml's ``metrics:`` overrides come in as sets."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal, TypeVar

Direction = Literal["higher", "lower"]
_K = TypeVar("_K")
_PREFIXES = ("val_", "test_", "train_", "eval_", "mean_", "avg_", "best_", "final_")


def stem(metric: str) -> str:
    """'val_accuracy' -> 'accuracy', 'test/rmse' -> 'rmse': the word that decides direction."""
    for sep in ("/", "."):
        metric = metric.rsplit(sep, 1)[-1]
    for prefix in _PREFIXES:
        if metric.startswith(prefix):
            return stem(metric[len(prefix) :])
    return metric


def direction(name: str, higher: Collection[str], lower: Collection[str]) -> Direction | None:
    """``higher`` or ``lower`` is better for metric ``name`` (None: unknown), by its full
    lower-cased name first, then by its stem; ``higher`` wins when both name it."""
    key = name.lower()
    if key in higher or stem(key) in higher:
        return "higher"
    if key in lower or stem(key) in lower:
        return "lower"
    return None


def best_value(values: Collection[float], way: Direction) -> float:
    return max(values) if way == "higher" else min(values)


def winner(values: Mapping[_K, float | None], way: Direction | None) -> _K | None:
    """The one key whose value is best (None: no direction, fewer than two values, or a tie)."""
    present = {k: x for k, x in values.items() if x is not None}
    if way is None or len(present) < 2:
        return None
    best = best_value(present.values(), way)
    winners = [k for k, x in present.items() if x == best]
    return winners[0] if len(winners) == 1 else None
