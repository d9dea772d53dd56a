"""`gitreg validate`: fetch, verify digests, check metadata, load safely in a sandboxed child and
run a forward pass, under the load policy of models.yaml; optionally record it as a Git note."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from gitreg import catalog
from gitreg import policy as load_policy
from gitreg.context import Context
from gitreg.errors import BadArchitectureName, GitregError
from gitreg.journal import checkpoint
from gitreg.metadata import CheckResult, ValidationRecord, parse_metadata
from gitreg.pull import pull
from gitreg.versions import is_architecture


def validate(
    ctx: Context,
    version: str,
    *,
    record: bool = False,
    push: bool = False,
    timeout_s: float | None = None,
    memory_mb: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    allow_architectures: Sequence[str] = (),
    require_signed: bool = False,
) -> ValidationRecord:
    """Fetch, verify digests, check metadata, load safely, run a forward pass — under the
    ``policy:`` of models.yaml: a signed tag (``require_signed``, or this call's flag), the
    size limit, TorchScript allowed or not, and the architectures a state dict may name
    (the policy's plus ``allow_architectures``)."""
    from gitreg import sandbox
    from gitreg.store import METADATA_FILE, policy_file
    from gitreg.version import __version__

    sandbox.require_torch("gitreg validate")  # before any byte is fetched
    for spec in allow_architectures:
        if not is_architecture(spec):
            raise BadArchitectureName(spec)
    info = catalog.get(ctx, version)
    policy = ctx.load_policy()
    checks: list[CheckResult] = []
    load = None
    error = None
    rules = load_policy.effective(policy, require_signed=require_signed)
    if rules.require_signed:
        unsigned = load_policy.signature_refusal(rules, lambda: ctx.git.verify_tag(version))
        detail = (
            "the tag's signature verifies"
            if unsigned is None
            else f"the tag's signature fails: {unsigned.reason}"
        )
        checks.append(CheckResult(name="signature", ok=unsigned is None, detail=detail))
        error = None if unsigned is None else detail
    limit = policy.max_bundle_bytes
    if error is None and limit is not None:
        total = sum(f.size for f in info.files)
        too_big = load_policy.size_refusal(policy, total)
        detail = (
            f"{total} bytes {'within' if too_big is None else 'over'} the policy's max_bundle_bytes {limit}"
        )
        checks.append(CheckResult(name="size", ok=too_big is None, detail=detail))
        error = None if too_big is None else detail
    with tempfile.TemporaryDirectory(prefix="gitreg-validate-") as tmpdir:
        bundle = Path(tmpdir) / version
        if error is None:
            try:
                pulled = pull(ctx, version, bundle, progress=progress)
                checks.append(
                    CheckResult(
                        name="digests", ok=True, detail=f"{len(pulled.files)} files match their pointers"
                    )
                )
            except GitregError as e:
                checks.append(CheckResult(name="digests", ok=False, detail=e.message))
                error = e.message
        if error is None:
            try:
                meta = parse_metadata((bundle / METADATA_FILE).read_bytes())
                checks.append(CheckResult(name="metadata", ok=True, detail=f"{meta.algo} / {meta.framework}"))
            except (GitregError, OSError) as e:
                checks.append(CheckResult(name="metadata", ok=False, detail=str(e)))
                error = str(e)
        name = policy_file(f.path for f in pulled.files) if error is None else None
        if error is None and name is None:
            error = "the bundle has no policy.pt or policy.safetensors"
            checks.append(CheckResult(name="load", ok=False, detail=error))
        if error is None and name is not None:
            load = sandbox.check_policy(
                bundle / name,
                info.input_shape,
                timeout_s=timeout_s or sandbox.DEFAULT_TIMEOUT_S,
                memory_mb=memory_mb or sandbox.DEFAULT_MEMORY_MB,
                allow_torchscript=policy.allow_torchscript,
                architecture=meta.architecture,
                architecture_kwargs=meta.architecture_kwargs,
                architectures=[*policy.architectures, *allow_architectures],
            )
            checks.append(CheckResult(name="load", ok=load.ok, detail=load.detail))
            for note in load.notes:
                checks.append(CheckResult(name="note", ok=True, detail=note))
            if not load.ok:
                error = load.detail
    result = ValidationRecord(
        version=version,
        passed=error is None,
        checked_at=ctx.clock(),
        checked_by=ctx.git.ident(),
        gitreg_version=__version__,
        torch_version=load.torch_version if load else None,
        checks=checks,
        files=info.files,
        load_seconds=load.load_seconds if load else None,
        forward_seconds=load.forward_seconds if load else None,
        output_shape=load.output_shape if load else None,
        input_shape=load.input_shape if load else None,
        error=error,
        policy_format=(load.kind or None) if load else None,
    )
    if record:
        checkpoint("validate-checked")
        ctx.git.add_note(info.tag_object, result.to_note())  # one ref update: old or new
        checkpoint("validate-recorded")
        if push:
            remote = ctx.remote()
            ctx.git.push_notes(remote)
    return result
