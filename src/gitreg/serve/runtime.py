"""A request's inputs, checked before they reach a policy (:mod:`gitreg.runtime` runs it).

Inputs are untrusted JSON: they are checked to be a batch of nested lists of finite numbers
with the model's input shape before a tensor is built, so a bad request is a 422, never a 500.
"""

from __future__ import annotations

import math
from itertools import chain
from typing import Any

FLOAT32_MAX = 3.4028234663852886e38


class BadInput(ValueError):
    """The request's inputs do not fit the model (HTTP 422)."""


def check_inputs(inputs: Any, input_shape: list[int] | None, max_batch: int) -> int:
    """Validate ``inputs`` (a batch) against ``input_shape``; return the batch size.

    A well-formed batch is accepted by a few C-level passes over it (``_fits``); anything that
    fails them takes the item-by-item walk, which names the first offending item."""
    if not isinstance(inputs, list) or not inputs:
        raise BadInput("inputs must be a non-empty list (a batch of observations)")
    if len(inputs) > max_batch:
        raise BadInput(f"batch of {len(inputs)} is larger than the limit of {max_batch}")
    # without metadata: every row must at least agree with the first
    expected = list(input_shape) if input_shape else _shape(inputs[0], "inputs[0]")
    if _fits(inputs, expected):
        return len(inputs)
    for i, row in enumerate(inputs):
        shape = _shape(row, f"inputs[{i}]")
        if shape != expected:
            raise BadInput(f"inputs[{i}] has shape {shape}, the model takes {expected}")
    return len(inputs)


def as_batch(inputs: Any, input_shape: list[int] | None) -> tuple[Any, bool]:
    """``inputs`` as a batch, and whether the request sent one observation on its own.

    The rule: ``inputs`` is a batch, except when the model's input shape is known and ``inputs``
    is nested exactly as deep as one observation (``[0.1, 0.2, 0.3, 0.4]`` for a model taking
    ``[4]``): then it is a batch of one, and the answer's ``outputs`` is that one output. With
    no known shape nothing is guessed (a flat list stays a batch of scalars)."""
    if not input_shape or not isinstance(inputs, list) or not inputs:
        return inputs, False
    depth, node = 0, inputs
    while isinstance(node, list) and node and depth <= len(input_shape):
        depth, node = depth + 1, node[0]
    return ([inputs], True) if depth == len(input_shape) else (inputs, False)


_NUMBER_TYPES = frozenset({int, float})  # exactly: bool (an int) and subclasses go the long way
_LIST_TYPE = {list}
_MAX_DEPTH = 8
_isfinite = math.isfinite


def _fits(inputs: list[Any], shape: list[int]) -> bool:
    """True if ``inputs`` is a batch of exactly ``shape``-shaped nested lists of finite numbers
    (plain int/float, no bool) within the float32 range. False means "look closer" (``_shape``),
    not necessarily bad."""
    if len(shape) > _MAX_DEPTH or 0 in shape:
        return False
    level: list[Any] = inputs
    for dim in shape:
        if set(map(type, level)) != _LIST_TYPE or set(map(len, level)) != {dim}:
            return False
        level = list(chain.from_iterable(level))
    if not _NUMBER_TYPES.issuperset(map(type, level)):
        return False
    try:
        if not all(map(_isfinite, level)):
            return False
    except OverflowError:  # an int no float holds
        return False
    return max(map(abs, level)) <= FLOAT32_MAX


def _shape(node: Any, where: str, depth: int = 0) -> list[int]:
    if depth > _MAX_DEPTH:
        raise BadInput(f"{where} is nested too deeply")
    if isinstance(node, bool) or not isinstance(node, list | int | float):
        raise BadInput(f"{where} is {type(node).__name__}, not a number or a list of numbers")
    if not isinstance(node, list):
        try:
            value = float(node)
        except OverflowError:  # an integer of hundreds of digits (JSON allows it)
            raise BadInput(f"{where} is out of the float32 range") from None
        if not math.isfinite(value):
            raise BadInput(f"{where} is not a finite number")
        if abs(value) > FLOAT32_MAX:  # the policy runs in float32: it would become inf
            raise BadInput(f"{where} is out of the float32 range")
        return []
    if not node:
        raise BadInput(f"{where} is an empty list")
    first = _shape(node[0], f"{where}[0]", depth + 1)
    for j, child in enumerate(node[1:], 1):
        if _shape(child, f"{where}[{j}]", depth + 1) != first:
            raise BadInput(f"{where} is ragged: its items differ in shape")
    return [len(node), *first]
