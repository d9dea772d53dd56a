"""Running a policy in the serving process: the only serve module that imports torch.

Inputs are untrusted JSON: they are checked to be a batch of nested lists of finite numbers
with the model's input shape before a tensor is built, so a bad request is a 422, never a 500.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection
from itertools import chain
from pathlib import Path
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


class TorchPolicy:
    """A TorchScript policy loaded in this process, warmed up, ready to predict."""

    def __init__(self, path: Path, input_shape: list[int] | None, threads: int | None = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        t0 = time.perf_counter()
        self.module = torch.jit.load(str(path), map_location="cpu")
        self.module.eval()
        self.input_shape = input_shape
        self.load_seconds = time.perf_counter() - t0

    def warm_up(self) -> None:
        """One forward pass on zeros: fail here, before the swap, not on the first request."""
        if self.input_shape:
            out = self.predict(_zeros(self.input_shape))
            if not out:
                raise RuntimeError("warm-up forward pass returned nothing")

    def learn_input_shape(self) -> list[int] | None:
        """The metadata's (or validation record's) shape, else the model's own, learned by
        ``gitreg.sandbox.probe_input_shape`` (the same probe `gitreg validate` records). Sets
        ``input_shape``; done once, at load time."""
        if not self.input_shape:
            from gitreg.sandbox import probe_input_shape

            self.input_shape = probe_input_shape(self.module)
        return self.input_shape

    def predict(self, inputs: Any) -> list[Any]:
        torch = self._torch
        x = torch.tensor(inputs, dtype=torch.float32)
        with torch.inference_mode():
            y = self.module(x)
        if isinstance(y, tuple | list):
            y = y[0]
        if not isinstance(y, torch.Tensor):
            raise RuntimeError(f"the model returned {type(y).__name__}, not a tensor")
        result: list[Any] = y.tolist()
        if y.is_floating_point() and not _all_finite(y, result):
            # JSON would carry them as null: a broken answer counts as an error (and toward fallback)
            raise RuntimeError("the model returned NaN or infinite values")
        return result


class StateDictPolicy(TorchPolicy):
    """A state dict (``policy.safetensors``, or a weights-only ``policy.pt``) loaded into its
    allow-listed architecture in this process: no TorchScript, no unpickling of objects. The
    class is imported only when ``architecture`` is in ``allowed``, and never from the bundle."""

    def __init__(
        self,
        path: Path,
        architecture: str,
        architecture_kwargs: dict[str, Any] | None,
        input_shape: list[int] | None,
        allowed: Collection[str],
        threads: int | None = None,
    ) -> None:
        import torch

        from gitreg.sandbox import build_module, load_weights, policy_format

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        t0 = time.perf_counter()
        kind = policy_format(path)
        if kind == "torchscript":
            raise ValueError(f"{path.name} is TorchScript, not a state dict")
        state = load_weights(path, kind)
        self.module = build_module(architecture, architecture_kwargs, state, allowed, path.parent)
        self.input_shape = input_shape
        self.load_seconds = time.perf_counter() - t0


SMALL_OUTPUT = 4096  # up to this many values, checking the Python list beats two torch ops


def _all_finite(y: Any, values: Any) -> bool:
    """No NaN or infinity in the tensor ``y`` (``values`` is its ``tolist()``)."""
    if y.numel() > SMALL_OUTPUT:
        return bool(y.isfinite().all())
    if y.dim() == 0:
        return _isfinite(values)
    flat = values
    for _ in range(y.dim() - 1):
        flat = chain.from_iterable(flat)
    return all(map(_isfinite, flat))


def _zeros(shape: list[int]) -> list[Any]:
    row: Any = 0.0
    for dim in reversed(shape):
        row = [row] * dim
    return [row]
