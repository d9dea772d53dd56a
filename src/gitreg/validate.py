"""Load a bundle's policy safely and run one forward pass — in a child process.

``torch.jit.load`` has no safe mode (TorchScript is code) and a malformed file may crash the
loader, so the load and the forward pass run in a separate Python process with a wall-time and
an address-space limit. A crash, hang or memory blow-up there is a failed check with a reason,
never a crash of gitreg. State dicts are read with ``torch.load(weights_only=True)``: never a
full unpickle. torch is imported only inside the child's functions.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MEMORY_MB = 8192


@dataclass
class LoadReport:
    ok: bool
    kind: str = ""  # torchscript | state_dict
    load_seconds: float | None = None
    forward_seconds: float | None = None
    output_shape: list[int] | None = None
    torch_version: str | None = None
    detail: str = ""
    notes: list[str] = field(default_factory=list)


def is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with a ``code/`` folder; torch.save zips have none."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.split("/")[1:2] == ["code"] for n in z.namelist())
    except (zipfile.BadZipFile, OSError, IndexError):
        return False


def check_policy(
    path: Path,
    input_shape: list[int] | None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> LoadReport:
    """Load ``path`` and run a forward pass on zeros of ``(1, *input_shape)`` in a child."""
    request = json.dumps({"path": str(path), "input_shape": input_shape})

    def limits() -> None:  # runs in the child before exec
        limit = memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.setsid()

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "gitreg.validate"],
            input=request.encode(),
            capture_output=True,
            timeout=timeout_s,
            preexec_fn=limits,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return LoadReport(ok=False, detail=f"load and forward pass did not finish within {timeout_s:g} s")
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        return LoadReport(ok=False, detail=f"the loader crashed ({sig})")
    lines = proc.stdout.decode(errors="replace").strip().splitlines()
    try:
        data = json.loads(lines[-1])
    except (IndexError, ValueError):
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        if any("MemoryError" in e or "std::bad_alloc" in e for e in err):
            return LoadReport(ok=False, detail=f"the loader ran out of memory (limit {memory_mb} MiB)")
        tail = err[-1] if err else f"exit code {proc.returncode}"
        return LoadReport(ok=False, detail=f"the loader failed: {tail[:300]}")
    return LoadReport(**data)


def _child(request: dict[str, Any]) -> LoadReport:
    import time

    import torch

    torch.set_num_threads(1)
    path = Path(request["path"])
    shape = request.get("input_shape")
    report = LoadReport(ok=False, torch_version=torch.__version__)
    t0 = time.perf_counter()
    if is_torchscript(path):
        report.kind = "torchscript"
        model = torch.jit.load(str(path), map_location="cpu")
        model.eval()
    else:
        report.kind = "state_dict"
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:
            report.detail = f"neither TorchScript nor loadable with weights_only=True: {_reason(e)}"
            return report
        report.load_seconds = time.perf_counter() - t0
        tensors = _tensors(obj)
        if not tensors:
            report.detail = "policy.pt is neither TorchScript nor a state dict of tensors"
            return report
        report.ok = True
        report.detail = f"state dict with {len(tensors)} tensors"
        report.notes.append("forward pass skipped: a state dict needs an architecture to run")
        return report
    report.load_seconds = time.perf_counter() - t0
    if shape:
        x = torch.zeros((1, *shape))
        t1 = time.perf_counter()
        try:
            with torch.inference_mode():
                y = model(x)
        except Exception as e:  # keep the load timing: the load itself worked
            report.detail = f"forward pass on {list(x.shape)} failed: {_reason(e)}"
            return report
        report.forward_seconds = time.perf_counter() - t1
        outs = _tensors(y)
        if not outs:
            report.detail = f"forward pass returned {type(y).__name__}, not tensors"
            return report
        if not all(bool(torch.isfinite(t).all()) for t in outs if t.is_floating_point()):
            report.detail = "forward pass produced NaN or infinite values"
            return report
        report.output_shape = list(outs[0].shape)
        report.detail = f"TorchScript; forward pass on {list(x.shape)} -> {report.output_shape}"
    else:
        report.detail = "TorchScript loaded"
        report.notes.append("forward pass skipped: metadata has no input_shape")
    report.ok = True
    return report


def _tensors(obj: Any) -> list[Any]:
    import torch

    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, list | tuple):
        return [t for v in obj for t in _tensors(v)]
    return []


_BOILERPLATE = (
    "Weights only load failed",
    "Please file an issue",
    "Check the documentation",
    "The following operation failed",
    "(1)",
    "(2)",
)


def _reason(e: BaseException) -> str:
    """The informative line of a torch error. Its first line is often boilerplate (and the
    weights-only one advises an unsafe retry); the cause follows "WeightsUnpickler error:" or,
    for a TorchScript error, ends the message."""
    text = str(e)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    marker = "WeightsUnpickler error:"
    if marker in text:
        i = next(i for i, ln in enumerate(lines) if marker in ln)
        after = lines[i].split(marker, 1)[1].strip() or next(iter(lines[i + 1 :]), "")
        useful = after.split(". Please use", 1)[0]
    elif "Traceback of TorchScript" in text and lines:
        useful = lines[-1]
    else:
        useful = next((ln for ln in lines if not ln.startswith(_BOILERPLATE)), lines[0] if lines else "")
    if not useful.startswith(type(e).__name__):
        useful = f"{type(e).__name__}: {useful}" if useful else type(e).__name__
    return useful[:300]


def _main() -> None:
    request = json.loads(sys.stdin.read())
    try:
        report = _child(request)
    except Exception as e:  # the bundle is untrusted: any failure is a finding, not a crash
        report = LoadReport(ok=False, detail=_reason(e))
    sys.stdout.write("\n" + json.dumps(asdict(report)) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    _main()
