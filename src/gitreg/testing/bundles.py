"""Trainer-shaped bundles: a real TorchScript ``policy.pt`` (``torch.jit.script``) or a state dict
(torch.save or safetensors written by hand), plus ``metadata.json``. torch is imported inside
the functions that need it."""

from __future__ import annotations

import functools
import io
import json
import os
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

ROW = [[0.5, -1.0, 2.0, 0.25]]  # one observation for the policies below (input_shape [4])


def write_policy(path: Path, seed: int = 0, in_dim: int = 4, out_dim: int = 2) -> None:
    """A scripted MLP (in_dim -> 16 -> out_dim), seeded, saved as TorchScript at ``path``."""
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(in_dim, 16), torch.nn.ReLU(), torch.nn.Linear(16, out_dim))
    torch.jit.script(net).save(str(path))


def policy_bytes(seed: int = 0, in_dim: int = 4, out_dim: int = 2) -> bytes:
    """The bytes ``write_policy`` would write."""
    fd, name = tempfile.mkstemp(suffix=".pt", prefix="gitreg-policy-")
    os.close(fd)
    path = Path(name)
    try:
        write_policy(path, seed, in_dim, out_dim)
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def bundle_metadata(seed: int = 0) -> dict[str, Any]:
    """The metadata.json of ``write_bundle``'s bundles: metrics and hyper-parameters vary with ``seed``."""
    return {
        "algo": "DQN",
        "framework": "torchscript",
        "created_at": "2025-07-06T18:51:23+00:00",
        "metrics": {"reward": 100.0 + seed, "loss": 0.5 - seed / 100, "sharpe": 1.0 + seed / 10},
        "hyperparameters": {"lr": 0.001 * (seed + 1), "gamma": 0.99, "layers": [16]},
        "input_shape": [4],
    }


def write_bundle(
    folder: Path,
    seed: int = 0,
    *,
    metadata: dict[str, Any] | None = None,
    extra_files: dict[str, bytes] | None = None,
    policy: bytes | None = None,
) -> Path:
    """A trainer-shaped bundle: TorchScript policy.pt (or ``policy``) + metadata.json (+ extra files)."""
    folder.mkdir(parents=True, exist_ok=True)
    if policy is None:
        write_policy(folder / "policy.pt", seed)
    else:
        (folder / "policy.pt").write_bytes(policy)
    meta = bundle_metadata(seed) if metadata is None else metadata
    (folder / "metadata.json").write_text(json.dumps(meta))
    for rel, data in (extra_files or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


def write_folder(folder: Path, files: dict[str, bytes], metadata: dict[str, Any]) -> Path:
    """A bundle of exactly ``files`` plus ``metadata`` as metadata.json."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


def state_dict_metadata(**kw: Any) -> dict[str, Any]:
    """metadata.json for a state-dict bundle (``pytorch``); a keyword set to None removes the key."""
    base = {
        "algo": "PPO",
        "framework": "pytorch",
        "created_at": "2025-07-06T18:51:23+00:00",
        "metrics": {"reward": 10.0},
        "input_shape": [4],
    }
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def safetensors_bytes(state: dict[str, Any]) -> bytes:
    """The safetensors format by hand (8-byte header length, JSON header, raw float32 data)."""
    import torch

    header: dict[str, Any] = {}
    data = b""
    for name, tensor in state.items():
        t = tensor.detach().to(torch.float32).contiguous().clone()
        raw = bytes(t.untyped_storage())[: t.numel() * 4]
        header[name] = {
            "dtype": "F32",
            "shape": list(t.shape),
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def torch_save_bytes(obj: Any) -> bytes:
    """``torch.save(obj)`` into bytes."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def outputs(net: Any, inputs: Any = ROW) -> list[Any]:
    """``net(inputs)`` as nested lists, in inference mode."""
    import torch

    with torch.inference_mode():
        return list(net(torch.tensor(inputs, dtype=torch.float32)).tolist())


def expected_outputs(bundle: Path, inputs: Any = ROW) -> list[Any]:
    """What the bundle's TorchScript policy.pt answers to ``inputs``, computed here."""
    import torch

    module = torch.jit.load(str(bundle / "policy.pt"))
    with torch.inference_mode():
        return list(module(torch.tensor(inputs, dtype=torch.float32)).tolist())


def close(a: Any, b: Any, tol: float = 1e-4) -> bool:
    """Nested lists of numbers equal within ``tol``."""
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(close(x, y, tol) for x, y in zip(a, b, strict=True))
        )
    return abs(float(a) - float(b)) <= tol


# -- a policy whose forward pass takes as long as its input asks ----------------------------------
def slow_policy_bytes() -> bytes:
    """TorchScript: ``x[0, 3]`` rounds of a 256x256 matmul, then a linear layer. A zero input
    (the smoke test and warm-up) is instant; a request picks its own latency."""
    import torch

    class SlowPolicy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(5)
            self.lin = torch.nn.Linear(4, 2)
            self.w = torch.nn.Parameter(torch.randn(256, 256) / 16.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            rounds = int(x[0, 3].item())
            z = torch.ones(256, 256)
            for _ in range(rounds):
                z = torch.tanh(z @ self.w)
            return self.lin(x) + 0.0 * z.mean()

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(SlowPolicy()), buf)
    return buf.getvalue()


@functools.cache
def seconds_per_round() -> float:
    """One round of the slow policy on one thread, measured here (the server runs --threads 1);
    the fastest of three tries, so that a busy machine makes requests slower, never faster."""
    import torch

    module = torch.jit.load(io.BytesIO(slow_policy_bytes()))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        module(torch.tensor([[0.0, 0.0, 0.0, 5.0]]))
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            module(torch.tensor([[0.0, 0.0, 0.0, 20.0]]))
            times.append((time.perf_counter() - t0) / 20)
        return max(min(times), 1e-4)
    finally:
        torch.set_num_threads(threads)


def slow_row(seconds: float) -> list[list[float]]:
    return [[0.0, 0.0, 0.0, float(max(1, round(seconds / seconds_per_round())))]]
