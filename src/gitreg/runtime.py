"""Running a loaded policy in this process: the deploy agent's and ``gitreg.load``'s.

The only module besides :mod:`gitreg.sandbox` (the child that smoke-loads first) that imports
torch, and only when a policy is built. Inputs reach :meth:`TorchPolicy.predict` already checked
(the agent: :mod:`gitreg.serve.runtime`), or as the caller's own tensor (``gitreg.load``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection
from itertools import chain
from pathlib import Path
from typing import Any

_isfinite = math.isfinite


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

    def forward(self, x: Any) -> Any:
        """The model on a batch tensor (or array: taken as float32): its output tensor (a
        tuple's first)."""
        torch = self._torch
        with torch.inference_mode():
            y = self.module(torch.as_tensor(x, dtype=torch.float32))
        if isinstance(y, tuple | list):
            y = y[0]
        if not isinstance(y, torch.Tensor):
            raise RuntimeError(f"the model returned {type(y).__name__}, not a tensor")
        return y

    def predict(self, inputs: Any) -> list[Any]:
        """The model on a batch of nested lists (checked by the caller): nested lists."""
        y = self.forward(self._torch.tensor(inputs, dtype=self._torch.float32))
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
