"""Load a bundle's policy safely and run one forward pass — in a child process.

``torch.jit.load`` has no safe mode (TorchScript is code) and a malformed file may crash the
loader, so the load and the forward pass run in a separate Python process with a wall-time, an
address-space and a file-size limit. A crash, hang or memory blow-up there is a failed check
with a reason, never a crash of gitreg. Weights are never unpickled in full: a ``policy.pt``
state dict is read with ``torch.load(weights_only=True)``, a ``policy.safetensors`` with
safetensors (tensors only, no pickle). A state dict runs through its ``architecture``
(``"pkg.module:Class"`` in metadata.json), which is imported only when that exact string is
allow-listed by the operator (models.yaml ``policy.architectures`` or ``--allow-architecture``)
and only from the installed environment, never from the bundle. torch and safetensors are
imported only inside functions.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gitreg.errors import ArchitectureError, MissingExtra
from gitreg.versions import is_architecture

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MEMORY_MB = 8192
MAX_WRITE_BYTES = 1 << 20  # RLIMIT_FSIZE of the child: a loader has no business writing files
MAX_STACK_BYTES = 8 << 20  # the usual default, enforced: a parser recursing without end hits it
MAX_OUTPUT_BYTES = 64 << 10  # what the parent reads back of the child's stdout / stderr
SAFETENSORS_SUFFIX = ".safetensors"
# "pkg.module:ClassName": Python identifiers only, so the string can name nothing but a class
_IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OUT_OF_MEMORY = ("MemoryError", "bad_alloc", "can't allocate memory", "not enough memory")


@dataclass
class LoadReport:
    ok: bool
    kind: str = ""  # torchscript | state_dict | safetensors
    architecture: str | None = None  # the class a state dict was loaded into
    load_seconds: float | None = None
    forward_seconds: float | None = None
    output_shape: list[int] | None = None
    input_shape: list[int] | None = None  # one observation: the metadata's, else learned (probe_input_shape)
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


def policy_format(path: Path) -> str:
    """How a policy file is loaded, from its name and its zip directory (torch not needed):
    ``safetensors`` (by name, whatever the bytes), ``torchscript`` or ``state_dict``."""
    if path.name.endswith(SAFETENSORS_SUFFIX):
        return "safetensors"
    return "torchscript" if is_torchscript(path) else "state_dict"


def refusal(
    path: Path,
    kind: str,
    *,
    allow_torchscript: bool,
    architecture: str | None,
    architectures: Collection[str],
) -> str | None:
    """Why the policy forbids loading this file at all (None: it may be loaded) — decided from
    its name, zip directory and metadata before any byte of it is deserialized. The rules are
    :mod:`gitreg.policy`'s; a state dict that names no architecture is left to the child, which
    reads its tensors without building a module."""
    if architecture and kind != "torchscript" and not is_architecture(architecture):
        return f"architecture {architecture!r} is not of the form 'pkg.module:ClassName'"
    if kind != "torchscript" and not architecture:
        return None
    from gitreg import policy as load_policy
    from gitreg.manifest import LoadPolicy

    rules = LoadPolicy.model_construct(allow_torchscript=allow_torchscript, architectures=list(architectures))
    fmt: load_policy.BundleFormat = "torchscript" if kind == "torchscript" else "state_dict"
    refused = load_policy.format_refusal(rules, fmt, "", architecture)
    if refused is None:
        return None
    if refused.rule == "architecture":
        return (
            f"architecture {refused.architecture!r} is not allow-listed "
            "(models.yaml policy.architectures, or --allow-architecture)"
        )
    return (
        f"{path.name} {refused.message}; export a state dict (policy.safetensors) and name its architecture"
    )


def require_torch(what: str) -> None:
    """Raise :class:`MissingExtra` unless torch can be imported (found, not imported: cheap)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise MissingExtra("torch", what)


def check_policy(
    path: Path,
    input_shape: list[int] | None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    allow_torchscript: bool = True,
    architecture: str | None = None,
    architecture_kwargs: dict[str, Any] | None = None,
    architectures: Collection[str] = (),
) -> LoadReport:
    """Load ``path`` and run a forward pass on zeros of ``(1, *input_shape)`` in a child.

    The child is a fresh interpreter with ``-P`` (no script or working folder on ``sys.path``),
    run from an empty temporary folder, in its own session; it limits its own address space
    (``memory_mb``), file writes and core dumps before it reads the policy, and it is killed
    (with anything it started) after ``timeout_s``. ``architectures`` is the allow-list for a
    state dict's ``architecture``; ``allow_torchscript=False`` refuses TorchScript unread."""
    require_torch("loading a policy")
    kind = policy_format(Path(path))
    refused = refusal(
        Path(path),
        kind,
        allow_torchscript=allow_torchscript,
        architecture=architecture,
        architectures=architectures,
    )
    if refused:  # no need for a child: nothing will be read
        return LoadReport(ok=False, kind=kind, detail=refused)
    request = json.dumps(
        {
            "path": str(Path(path).resolve()),
            "input_shape": input_shape,
            "memory_mb": memory_mb,
            "allow_torchscript": allow_torchscript,
            "architecture": architecture,
            "architecture_kwargs": architecture_kwargs,
            "architectures": sorted(set(architectures)),
        }
    ).encode()
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONSAFEPATH="1",
    )
    with tempfile.TemporaryDirectory(prefix="gitreg-load-") as work:
        out_path, err_path = Path(work) / "stdout", Path(work) / "stderr"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "gitreg.sandbox"],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                cwd=work,
                env=env,
                start_new_session=True,  # its own process group: a timeout kills all of it
            )
            try:
                proc.communicate(request, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # not reaped yet: the group is still ours
                proc.wait()
                return LoadReport(
                    ok=False, detail=f"load and forward pass did not finish within {timeout_s:g} s"
                )
        stdout = _tail(out_path).decode(errors="replace")
        stderr = _tail(err_path).decode(errors="replace")
    return child_report(proc.returncode, stdout, stderr, memory_mb)


def _tail(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - MAX_OUTPUT_BYTES))
        return f.read()


def child_report(returncode: int, stdout: str, stderr: str, memory_mb: int) -> LoadReport:
    """The child's exit, as a report: its JSON line, or why there is none."""
    err = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    out_of_memory = any(m in stderr for m in _OUT_OF_MEMORY)
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode).name
        except ValueError:
            sig = f"signal {-returncode}"
        if out_of_memory:
            return LoadReport(ok=False, detail=f"the loader ran out of memory (limit {memory_mb} MiB; {sig})")
        if sig == "SIGXFSZ":
            return LoadReport(
                ok=False,
                detail=f"the loader crashed (SIGXFSZ): it wrote more than {MAX_WRITE_BYTES >> 20} MiB",
            )
        if sig == "SIGKILL":
            return LoadReport(ok=False, detail="the loader was killed (SIGKILL; out of memory?)")
        return LoadReport(ok=False, detail=f"the loader crashed ({sig})")
    lines = stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1])
        report = LoadReport(**data)
    except (IndexError, ValueError, TypeError):
        if out_of_memory:
            return LoadReport(ok=False, detail=f"the loader ran out of memory (limit {memory_mb} MiB)")
        tail = err[-1].strip() if err else f"exit code {returncode}"
        return LoadReport(ok=False, detail=f"the loader failed: {tail[:300]}")
    if not report.ok and any(m in report.detail for m in _OUT_OF_MEMORY):
        report.detail = f"the loader ran out of memory (limit {memory_mb} MiB): {report.detail}"
    return report


def _limit_self(memory_mb: int) -> None:
    """The child's own limits, set before it reads the policy (no preexec_fn: the serving
    process that starts it has threads)."""

    def cap(which: int, value: int) -> None:  # only ever lower a limit
        soft, hard = resource.getrlimit(which)
        value = min([value, *(x for x in (soft, hard) if x != resource.RLIM_INFINITY)])
        resource.setrlimit(which, (value, value))

    cap(resource.RLIMIT_AS, memory_mb << 20)
    cap(resource.RLIMIT_FSIZE, MAX_WRITE_BYTES)
    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_STACK, MAX_STACK_BYTES)  # runaway native recursion ends, even if unlimited
    # No RLIMIT_NPROC: it counts every process and thread of the user, not this child's.


def _isolate(bundle_dir: Path) -> None:
    """Nothing is importable from the bundle's folder (nor the working folder)."""
    bundle = bundle_dir.resolve()
    sys.path[:] = [p for p in sys.path if p and not Path(p).resolve().is_relative_to(bundle)]


def load_weights(path: Path, kind: str) -> dict[str, Any]:
    """A state dict (names -> tensors) from a safetensors file or a weights-only ``torch.load``;
    never a full unpickle. Raises ValueError when the file holds anything else."""
    import torch

    if kind == "safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path), device="cpu")
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not (
        isinstance(state, Mapping)
        and state
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise ValueError(
            f"{path.name} is neither TorchScript nor a state dict (a mapping of names to tensors)"
        )
    return dict(state)


def resolve_architecture(spec: str, allowed: Collection[str], bundle_dir: Path | None = None) -> Any:
    """The ``torch.nn.Module`` subclass ``"pkg.module:Class"`` names, imported only when that exact
    string is allow-listed, and only from outside ``bundle_dir``."""
    import importlib

    import torch

    if not is_architecture(spec):
        raise ArchitectureError(f"architecture {spec!r} is not of the form 'pkg.module:ClassName'", spec)
    if spec not in set(allowed):
        raise ArchitectureError(
            f"architecture {spec!r} is not allow-listed "
            "(models.yaml policy.architectures, or --allow-architecture)",
            spec,
        )
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise ArchitectureError(
            f"architecture {spec!r}: cannot import {module_name}: {_reason(e)}", spec
        ) from None
    origin = getattr(module, "__file__", None)
    if bundle_dir is not None and origin and Path(origin).resolve().is_relative_to(bundle_dir.resolve()):
        raise ArchitectureError(f"architecture {spec!r}: {module_name} comes from the bundle itself", spec)
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ArchitectureError(f"architecture {spec!r}: {class_name} is not a torch.nn.Module class", spec)
    return cls


def build_module(
    spec: str,
    kwargs: dict[str, Any] | None,
    state: dict[str, Any],
    allowed: Collection[str],
    bundle_dir: Path | None = None,
) -> Any:
    """Instantiate the allow-listed architecture with ``kwargs`` and load ``state`` strictly."""
    cls = resolve_architecture(spec, allowed, bundle_dir)
    kwargs = kwargs or {}
    if not isinstance(kwargs, dict) or not all(
        isinstance(k, str) and _IDENTIFIER_RE.fullmatch(k) for k in kwargs
    ):
        raise ArchitectureError("architecture_kwargs must be an object of keyword arguments")
    try:
        module = cls(**kwargs)
    except Exception as e:
        raise ArchitectureError(f"{spec}(**architecture_kwargs) failed: {_reason(e)}", spec) from None
    try:
        module.load_state_dict(state, strict=True)
    except Exception as e:
        raise ArchitectureError(f"the weights do not fit {spec}: {_reason(e)}", spec) from None
    module.eval()
    return module


PROBE_WIDTHS = 4096  # the widest input a probe tries (a Linear layer's width is tried first)
PROBE_SECONDS = 5.0  # and for no longer than this


def probe_input_shape(module: Any) -> list[int] | None:
    """The shape of one observation, learned from a loaded ``torch.nn.Module`` (or TorchScript
    module) when the metadata does not say it: the input width of the first weight matrix (a
    Linear layer's ``in_features``), else the narrowest width a forward pass on zeros of
    ``(1, width)`` accepts (width 1 last). A width is taken only if the model also refuses the
    next one: a model that takes any width gives None (rows then only have to agree). Used by
    the validation child (recorded in the validation record) and by the serving process."""
    import time

    import torch

    def accepts(width: int) -> bool:
        try:
            with torch.inference_mode():
                module(torch.zeros((1, width)))
        except Exception:
            return False
        return True

    candidates: list[int] = []
    for p in module.parameters():
        if p.dim() == 2:
            candidates.append(int(p.shape[1]))
            break
    # width 1 last: a one-wide row broadcasts against most element-wise weights
    candidates += [w for w in (*range(2, PROBE_WIDTHS + 1), 1) if w not in candidates]
    deadline = time.perf_counter() + PROBE_SECONDS
    for width in candidates:
        if time.perf_counter() > deadline:
            break
        if accepts(width):
            return None if accepts(width + 1) else [width]
    return None


def _child(request: dict[str, Any]) -> LoadReport:
    import time

    import torch

    torch.set_num_threads(1)
    path = Path(request["path"])
    shape = request.get("input_shape")
    report = LoadReport(ok=False, torch_version=torch.__version__)
    report.kind = kind = policy_format(path)
    refused = refusal(
        path,
        kind,
        allow_torchscript=request.get("allow_torchscript", True),
        architecture=request.get("architecture"),
        architectures=request.get("architectures") or [],
    )
    if refused:
        report.detail = refused
        return report
    t0 = time.perf_counter()
    if kind == "torchscript":
        model = torch.jit.load(str(path), map_location="cpu")
        model.eval()
        what = "TorchScript"
    else:
        try:
            state = load_weights(path, kind)
        except Exception as e:
            if kind == "safetensors":
                report.detail = f"{path.name} is not a valid safetensors file: {_reason(e)}"
            elif isinstance(e, ValueError) and str(e).startswith(path.name):
                report.detail = str(e)
            else:
                report.detail = f"neither TorchScript nor loadable with weights_only=True: {_reason(e)}"
            return report
        spec = request.get("architecture")
        if not spec:
            report.load_seconds = time.perf_counter() - t0
            report.ok = True
            report.detail = f"state dict with {len(state)} tensors"
            report.notes.append(
                "forward pass skipped: a state dict needs an architecture to run "
                "(metadata.json architecture: 'pkg.module:ClassName')"
            )
            return report
        try:
            model = build_module(
                spec,
                request.get("architecture_kwargs"),
                state,
                request.get("architectures") or [],
                path.parent,
            )
        except ArchitectureError as e:
            report.detail = e.message
            return report
        report.architecture = spec
        what = f"{spec} with {len(state)} tensors ({kind})"
    report.load_seconds = time.perf_counter() - t0
    if not shape:
        shape = probe_input_shape(model)
        if shape:
            report.notes.append(f"input shape {shape} learned from the model (metadata has no input_shape)")
    report.input_shape = list(shape) if shape else None
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
        report.detail = f"{what}; forward pass on {list(x.shape)} -> {report.output_shape}"
    else:
        report.detail = f"{what} loaded"
        report.notes.append(
            "forward pass skipped: metadata has no input_shape and the model takes rows of any width"
        )
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
    _limit_self(int(request.get("memory_mb") or DEFAULT_MEMORY_MB))
    _isolate(Path(request["path"]).parent)
    try:
        report = _child(request)
    except Exception as e:  # the bundle is untrusted: any failure is a finding, not a crash
        report = LoadReport(ok=False, kind=policy_format(Path(request["path"])), detail=_reason(e))
    sys.stdout.write("\n" + json.dumps(asdict(report)) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    _main()
