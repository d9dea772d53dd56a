"""Loading a version into this process: one path for the deploy agent and ``gitreg.load``.

In order, each step refusing with :class:`~gitreg.errors.Rejected` (the agent does not retry it
until models.yaml changes): the load policy's size and signature rules; the tag's commit agrees
with the tag's record (what `gitreg pull` checks); the bytes, pulled into the content-addressed
:class:`~gitreg.store.cache.BundleCache` with every md5 verified (a cached folder is re-verified
each time: the cache is only disk); the format rule (TorchScript allowed? the state dict's
architecture allow-listed?); a smoke load in a sandboxed child; then the load and a warm-up
forward pass here. A warm cache and a cold one refuse the same versions.
"""

from __future__ import annotations

import errno
import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from gitreg import catalog
from gitreg import manifest as mf
from gitreg import policy as load_policy
from gitreg.catalog import VersionInfo
from gitreg.context import Context, exclusive_lock
from gitreg.errors import CacheFull, GitregError, Rejected
from gitreg.fs import atomic_write
from gitreg.store.cache import BundleCache

if TYPE_CHECKING:
    from gitreg.refs import Resolution

# A runner in place of torch (the agent's tests): (policy file, parsed metadata) -> .predict
Runner = Callable[[Path, Any], Any]


@dataclass(frozen=True)
class LoadOptions:
    """What the caller adds to models.yaml's ``policy:`` (never loosening it) and how to load."""

    require_signed: bool = False  # refuse unsigned tags even if the policy does not
    allow_architectures: Sequence[str] = ()  # state-dict classes allowed beside policy.architectures
    smoke_test: bool = True  # load in a sandboxed child first
    timeout_s: float = 120.0  # the child's limits
    memory_mb: int = 8192
    threads: int | None = None  # torch's intra-op threads (None: torch's default)
    # a smoke load these verified bytes passed under the same rules is not run again (gitreg.load;
    # the agent runs it on every load)
    reuse_smoke: bool = False


@dataclass
class Loaded:
    """A version loaded and warmed up in this process."""

    info: VersionInfo
    folder: Path  # its verified bytes in the cache
    platform: str  # pytorch_torchscript | pytorch
    metadata: dict[str, Any]  # metadata.json as the bundle holds it
    input_shape: list[int] | None  # one observation's
    runner: Any  # .predict(nested lists) -> nested lists (and .forward, .module with torch)
    load_seconds: float


def load(
    ctx: Context,
    version: str,
    cache: BundleCache,
    policy: mf.LoadPolicy,
    options: LoadOptions,
    *,
    model: str | None = None,
    make_room: Callable[[int], None] | None = None,
    runner: Runner | None = None,
) -> Loaded:
    """Load ``version`` (which must be ``model``'s, when given) under ``policy`` (models.yaml's,
    where the version is followed) and ``options``. ``make_room(bytes)`` runs before a pull into
    the cache (the agent's eviction)."""
    from gitreg import sandbox
    from gitreg.metadata import parse_metadata
    from gitreg.pull import pull
    from gitreg.store import policy_file

    info = catalog.get(ctx, version)
    if model is not None and info.model != model:
        raise Rejected(f"{version} is a version of {info.model}, not {model}")
    rules = load_policy.effective(
        policy, require_signed=options.require_signed, architectures=options.allow_architectures
    )
    total = sum(f.size for f in info.files)
    refused = load_policy.size_refusal(rules, total) or load_policy.signature_refusal(
        rules, lambda: ctx.git.verify_tag(version)
    )
    if refused is not None:
        by = "the policy requires" if policy.require_signed else "--require-signed requires"
        raise Rejected(refusal_text(refused, "the bundle", by))
    name = policy_file(f.path for f in info.files)
    if name is None:
        raise Rejected("the bundle has no policy.pt or policy.safetensors")
    check_commit(ctx, info)  # before the cache is trusted: every time
    target = cache.folder_for(info.files)
    cache.root.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(cache.lock_file):  # processes sharing a cache pull a bundle once
        if not cache.holds(target, info.files):
            if make_room is not None:
                make_room(total)
            try:
                cache.fill(target, lambda dest: pull(ctx, version, dest))
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                raise CacheFull(
                    f"no space left on the disk of {cache.root} for {version} ({total} bytes)",
                    "free disk space there or set --cache-max-bytes below what the disk holds",
                ) from None
        cache.touch(target)
    raw_meta = (target / "metadata.json").read_bytes()
    meta = parse_metadata(raw_meta)
    path = target / name
    kind = sandbox.policy_format(path)  # from the zip directory: nothing is unpickled
    fmt: load_policy.BundleFormat = "torchscript" if kind == "torchscript" else "state_dict"
    refused = load_policy.format_refusal(rules, fmt, info.framework, meta.architecture)
    if refused is not None:
        raise Rejected(refusal_text(refused, name, ""))
    # one observation's shape: the metadata's, else the validation record's (learned by
    # `gitreg validate` from the model and recorded for these very files), else a probe here
    input_shape = meta.input_shape or validated_shape(info)
    passed = _smoke_marker(cache, target, rules, input_shape, options)
    if options.smoke_test and options.reuse_smoke and passed.is_file():
        input_shape = input_shape or _marked_shape(passed)
    elif options.smoke_test:  # the same verified bytes, in a sandboxed child first
        report = sandbox.check_policy(
            path, input_shape,
            timeout_s=options.timeout_s, memory_mb=options.memory_mb,
            allow_torchscript=rules.allow_torchscript, architecture=meta.architecture,
            architecture_kwargs=meta.architecture_kwargs, architectures=rules.architectures,
        )  # fmt: skip
        if not report.ok:
            raise Rejected(f"sandboxed load failed: {report.detail}")
        if report.kind != kind:
            raise Rejected(f"the sandboxed load read {name} as {report.kind}, not {kind}")
        input_shape = input_shape or report.input_shape  # the child probed as validate does
        if options.reuse_smoke:
            passed.parent.mkdir(exist_ok=True)
            atomic_write(passed, json.dumps({"input_shape": input_shape}).encode())
    t0 = time.perf_counter()
    if runner is not None:
        loaded = runner(path, meta)
    else:
        from gitreg.runtime import StateDictPolicy, TorchPolicy

        try:
            if kind == "torchscript":
                loaded = TorchPolicy(path, input_shape, options.threads)
            else:
                loaded = StateDictPolicy(
                    path, str(meta.architecture), meta.architecture_kwargs,
                    input_shape, rules.architectures, options.threads,
                )  # fmt: skip
            input_shape = loaded.learn_input_shape()  # the known shape, else the model's own
            loaded.warm_up()
        except Exception as e:
            raise Rejected(f"load or warm-up failed: {one_line(e)}") from None
    return Loaded(
        info=info,
        folder=target,
        platform="pytorch_torchscript" if kind == "torchscript" else "pytorch",
        metadata=json.loads(raw_meta),
        input_shape=input_shape,
        runner=loaded,
        load_seconds=time.perf_counter() - t0,
    )


def _smoke_marker(
    cache: BundleCache,
    target: Path,
    rules: mf.LoadPolicy,
    input_shape: list[int] | None,
    options: LoadOptions,
) -> Path:
    """Where a passed smoke load of ``target``'s bytes under these rules is noted: beside the
    bundle folders, never inside one (a bundle's own files could hold anything)."""
    facts = [rules.model_dump(mode="json"), input_shape, options.timeout_s, options.memory_mb]
    key = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
    return cache.notes_dir / f"{target.name}-{key}"


def _marked_shape(marker: Path) -> list[int] | None:
    try:
        shape = json.loads(marker.read_bytes()).get("input_shape")
    except (OSError, ValueError, AttributeError):
        return None
    ok = isinstance(shape, list) and all(isinstance(d, int) and 0 < d < 1 << 31 for d in shape)
    return shape if ok and len(shape) <= 8 else None


def validated_shape(info: VersionInfo) -> list[int] | None:
    """The input shape a passed validation record holds, if that record was made for exactly
    these files (a note left from other bytes says nothing about them). Warm-up runs a forward
    pass on it before the version serves, so a wrong shape is a rejected load, not a 422 flood."""
    rec = info.validation
    if rec is None or not rec.passed or not rec.input_shape:
        return None
    same = {(f.path, f.md5) for f in rec.files} == {(f.path, f.md5) for f in info.files}
    return list(rec.input_shape) if same else None


def check_commit(ctx: Context, info: VersionInfo) -> None:
    """The tag's commit holds the model's folder, and its files agree with the tag's record:
    every pointer parses and names its own file, every recorded file is in the commit (as a
    pointer or as plain bytes) with the recorded md5, and no recorded path leaves the bundle."""
    from gitreg.store import POINTER_SUFFIX, parse_pointer

    for f in info.files:
        parts = PurePosixPath(f.path).parts
        if not parts or PurePosixPath(f.path).is_absolute() or ".." in parts or "\\" in f.path:
            raise Rejected(f"the tag records a file outside the bundle: {f.path!r}")
    git = ctx.git
    raw_manifest = git.read_file(info.commit, mf.MANIFEST_FILE)
    model_path = f"models/{info.model}"
    if raw_manifest is not None:
        try:
            entry = mf.loads_bytes(raw_manifest).model.models.get(info.model)
        except GitregError:
            entry = None
        if entry is not None:
            model_path = entry.path
    entries = [e for e in git.list_tree(info.commit, model_path) if e.type == "blob"]
    if not entries:
        raise Rejected(f"the tag's commit {info.commit[:12]} has no {model_path}/")
    prefix = model_path.rstrip("/") + "/"
    raw = git.read_objects(e.sha for e in entries)
    found: dict[str, str] = {}  # file -> md5, from the commit
    for e in entries:
        rel = e.path[len(prefix) :] if e.path.startswith(prefix) else e.path
        if rel.endswith(POINTER_SUFFIX):
            try:
                ptr = parse_pointer(raw[e.sha], e.path)
            except (GitregError, KeyError) as err:
                raise Rejected(f"{e.path} does not parse as a pointer: {one_line(err)}") from None
            file_rel = rel[: -len(POINTER_SUFFIX)]
            if PurePosixPath(file_rel).name != ptr.path:
                raise Rejected(f"{e.path} points at {ptr.path!r}, not its own file")
            found[file_rel] = ptr.md5
        elif e.sha in raw:
            found.setdefault(rel, hashlib.md5(raw[e.sha], usedforsecurity=False).hexdigest())
    for f in info.files:
        if found.get(f.path) != f.md5:
            why = (
                "is not in it" if f.path not in found else f"has md5 {found[f.path]}, the tag records {f.md5}"
            )
            raise Rejected(f"{f.path} in the tag's commit {info.commit[:12]} {why}")


def one_line(e: BaseException) -> str:
    """One line for /health, logs and errors; URLs lose their credentials (git echoes them)."""
    import re

    text = str(e).strip() or type(e).__name__
    return re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", text.splitlines()[0][:300])


def refusal_text(refused: load_policy.Refusal, subject: str, by: str) -> str:
    """The words of a load-policy refusal at load time (`/health`'s rejected, gitreg.load's error)."""
    if refused.rule == "signature":
        return f"the tag's signature does not verify ({refused.reason}); {by} signed tags"
    if refused.rule == "no-architecture":
        return f"{subject} is a state dict: metadata.json names no architecture to load it into"
    if refused.rule == "architecture":
        return (
            f"architecture {refused.architecture!r} is not allow-listed "
            "(models.yaml policy.architectures, or gitreg serve --allow-architecture)"
        )
    return f"{subject} {refused.message}"


class LoadedPolicy:
    """A version loaded for use in your own code (what ``gitreg.load`` returns): call it on a
    batch. A tensor (or a NumPy array) gives the output tensor; nested lists give nested lists.

    ``.version``, ``.model`` (the model's name), ``.commit``, ``.files`` (path, md5, size),
    ``.metadata`` (metadata.json), ``.stage`` (of the reference, if it named one), ``.resolution``
    (what :func:`gitreg.resolve` answers), ``.folder`` (the verified bytes), ``.module`` (the
    ``torch.nn.Module``) and ``.input_shape`` (one observation's)."""

    def __init__(self, loaded: Loaded, resolution: Resolution) -> None:
        self._loaded = loaded
        self.resolution = resolution
        self.version = resolution.version
        self.model = resolution.model
        self.stage = resolution.stage
        self.commit = resolution.commit
        self.files = list(resolution.files)
        self.metadata = loaded.metadata
        self.folder = loaded.folder
        self.input_shape = loaded.input_shape
        self.module = getattr(loaded.runner, "module", None)

    def __call__(self, batch: Any) -> Any:
        runner = self._loaded.runner
        if isinstance(batch, list | tuple):
            return runner.predict(list(batch))
        forward = getattr(runner, "forward", None)
        if forward is None or not hasattr(batch, "__array__"):  # torch tensors and NumPy arrays
            raise TypeError(f"a batch is a list or a tensor, not {type(batch).__name__}")
        return forward(batch)

    predict = __call__  # the MLflow habit: model.predict(batch)

    def __repr__(self) -> str:
        return f"<LoadedPolicy {self.model} {self.version}>"


_loaded: dict[tuple[str, ...], Loaded] = {}  # this process's loads, by bytes and rules
_loaded_lock = threading.Lock()


def load_reference(
    ctx: Context, reference: str, cache: BundleCache, options: LoadOptions, at: str | None = None
) -> LoadedPolicy:
    """``reference`` resolved against models.yaml (the checked-out one, the branch's, or at
    ``at``) and loaded under the branch's ``policy:`` and ``options``. Loading the same bytes
    again in this process returns the policy already loaded (it was verified into memory)."""
    from gitreg.refs import resolve

    resolution = resolve(ctx, reference, at)
    policy = ctx.load_policy()
    key = (
        str(cache.folder_for(resolution.files)),
        resolution.tag_object,
        policy.model_dump_json(),
        repr(options),
    )
    with _loaded_lock:
        loaded = _loaded.get(key)
        if loaded is None:
            loaded = load(ctx, resolution.version, cache, policy, options)
            _loaded[key] = loaded
    return LoadedPolicy(loaded, resolution)
