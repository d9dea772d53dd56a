"""Hostile and unusual bundles for the load-policy tests: an allow-listable architecture module
(and one whose import leaves a marker), pickle bombs for every format path, and TorchScript
archives that hang, crash or blow up the loader. torch is imported inside the functions."""

from __future__ import annotations

import importlib.util
import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

from gitreg.testing.bundles import torch_save_bytes
from gitreg.testing.env import SetsEnv

ARCH_MODULE = "gitreg_lp_arch"
TINY = f"{ARCH_MODULE}:TinyNet"
WIDE = f"{ARCH_MODULE}:WideNet"
EVIL_MODULE = "gitreg_lp_evil_arch"  # importing it creates a marker: proof that it was imported
EVIL = f"{EVIL_MODULE}:EvilNet"


ARCH_SOURCE = """\
import torch


class TinyNet(torch.nn.Module):
    def __init__(self, in_dim=4, hidden=8, out_dim=2):
        super().__init__()
        self.l1 = torch.nn.Linear(in_dim, hidden)
        self.l2 = torch.nn.Linear(hidden, out_dim)

    def forward(self, x):
        return self.l2(torch.relu(self.l1(x)))


class WideNet(TinyNet):
    def __init__(self):
        super().__init__(hidden=32)


class NotAModule:
    pass
"""

EVIL_SOURCE = """\
import torch

open({marker!r}, "w").close()


class EvilNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.l1(x)
"""


def install_architectures(folder: Path, monkeypatch: SetsEnv, evil_marker: Path) -> Path:
    """Write the architecture modules to ``folder`` and put it on PYTHONPATH (for every child:
    the validation sandbox, `gitreg` commands, `gitreg serve`), not on this process's sys.path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{ARCH_MODULE}.py").write_text(ARCH_SOURCE)
    (folder / f"{EVIL_MODULE}.py").write_text(EVIL_SOURCE.format(marker=str(evil_marker)))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    )
    return folder


def arch_class(folder: Path, name: str = "TinyNet") -> Any:
    """A class of the architecture module, loaded from its file under a private name."""
    spec = importlib.util.spec_from_file_location(f"_lp_arch_{id(folder)}", folder / f"{ARCH_MODULE}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def trained(folder: Path, seed: int, name: str = "TinyNet", **kwargs: Any) -> Any:
    import torch

    torch.manual_seed(seed)
    return arch_class(folder, name)(**kwargs).eval()


# -- pickle bombs -----------------------------------------------------------------------------------
class RunsCode:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> Any:
        return (open, (self.marker, "w"))


BOMBS = ("torch.save", "torchscript-data.pkl", "pickle-as-safetensors", "state-dict-with-object")


def bomb(kind: str, marker: Path) -> tuple[str, bytes]:
    """(policy file name, bytes) of a bundle whose unpickling would create ``marker``."""
    import torch

    if kind == "torch.save":
        return "policy.pt", torch_save_bytes(RunsCode(marker))
    if kind == "torchscript-data.pkl":  # a real TorchScript archive whose data.pkl is the payload

        def payload(name: str, data: bytes) -> bytes:
            return pickle.dumps(RunsCode(marker), protocol=2) if name.endswith("/data.pkl") else data

        return "policy.pt", _replace_in_archive(_scripted_linear(), payload)
    if kind == "pickle-as-safetensors":
        return "policy.safetensors", pickle.dumps(RunsCode(marker))
    if kind == "state-dict-with-object":  # real, fitting weights plus one object
        net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        layer = {"0": "l1", "2": "l2"}  # TinyNet's names
        state = {f"{layer[k[0]]}{k[1:]}": v for k, v in net.state_dict().items()}
        return "policy.pt", torch_save_bytes({**state, "extra": RunsCode(marker)})
    raise ValueError(kind)


def unpickle_every_pickle(name: str, data: bytes) -> None:
    """The unsafe way (the control): a full unpickle of the payload in ``data``."""
    import torch

    if name.endswith(".safetensors"):
        pickle.loads(data)
        return
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        if any("/code/" in n for n in z.namelist()):
            pickle.loads(z.read(next(n for n in z.namelist() if n.endswith("/data.pkl"))))
            return
    torch.load(io.BytesIO(data), weights_only=False)


# -- TorchScript that attacks the loader --------------------------------------------------------------
def _scripted_linear() -> bytes:
    import torch

    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 2))), buf)
    return buf.getvalue()


def _replace_in_archive(archive: bytes, change: Any) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(archive))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            z.writestr(info, change(info.filename, src.read(info.filename)))
    return out.getvalue()


def loader_crash_torchscript(depth: int = 100_000) -> bytes:
    """A TorchScript archive whose code is one expression nested ``depth`` parentheses deep:
    torch.jit.load's recursive-descent parser overflows the C stack (SIGSEGV) compiling it."""
    import torch

    class Plain(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(Plain()), buf)

    def deepen(name: str, data: bytes) -> bytes:
        if "/code/" in name and name.endswith(".py"):
            assert b"return x" in data
            return data.replace(b"return x", b"return " + b"(" * depth + b"x" + b")" * depth)
        return data

    return _replace_in_archive(buf.getvalue(), deepen)


def loader_hang_torchscript() -> bytes:
    """A TorchScript module whose scripted ``__setstate__`` loops forever: torch.jit.load runs it."""
    import torch

    class Forever(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.n = 1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

        @torch.jit.export
        def __getstate__(self) -> tuple[int, bool]:
            return (self.n, self.training)

        @torch.jit.export
        def __setstate__(self, state: tuple[int, bool]) -> None:
            self.n = state[0]
            self.training = state[1]
            while self.n > 0:
                self.n = self.n + 1 - 1

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(Forever()), buf)
    return buf.getvalue()


def loader_memory_hog_torchscript(gigabytes: int = 16) -> bytes:
    """A TorchScript module whose ``__setstate__`` allocates ``gigabytes`` while it is loaded."""
    import torch

    class Hog(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.n = gigabytes

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

        @torch.jit.export
        def __getstate__(self) -> tuple[int, bool]:
            return (self.n, self.training)

        @torch.jit.export
        def __setstate__(self, state: tuple[int, bool]) -> None:
            self.n = state[0]
            self.training = state[1]
            big = torch.ones([self.n * 268435456])  # float32: n GiB
            self.n = self.n + int(big.sum().item())

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(Hog()), buf)
    return buf.getvalue()
