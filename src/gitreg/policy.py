"""The load policy (``policy:`` of models.yaml): the one rule set that decides whether a version
may be loaded and served. Pure: callers pass what they know of a version (from its tag, or from
its downloaded files) and, for signatures, a function that verifies the tag.

``gitreg check`` (from tags alone), ``gitreg validate`` and ``gitreg register`` call it; the
deploy agent should (``refusals`` is the entry point). A refusal is a :class:`Refusal` with the
rule's name and its inputs, and a message in the words ``gitreg check`` prints.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Literal

from gitreg.manifest import LoadPolicy

BundleFormat = Literal["safetensors", "torchscript", "state_dict", "unknown"]
Rule = Literal["torchscript", "maybe-torchscript", "no-architecture", "architecture", "size", "signature"]
SAFETENSORS_FILE = "policy.safetensors"


@dataclass(frozen=True)
class Refusal:
    """Why the policy forbids loading a version: ``rule`` names the rule, the rest its inputs."""

    rule: Rule
    message: str
    architecture: str | None = None
    total_bytes: int | None = None
    limit: int | None = None
    reason: str | None = None  # the signature check's words


@dataclass(frozen=True)
class LoadFacts:
    """What is known of a version before its bytes are read: its files (name, size), framework,
    the architecture its metadata names, and the format its validation record saw (if any)."""

    files: tuple[tuple[str, int], ...]
    framework: str = ""
    architecture: str | None = None
    recorded_format: str | None = None
    format: BundleFormat = field(init=False)

    def __post_init__(self) -> None:
        names = [name for name, _ in self.files]
        object.__setattr__(self, "format", bundle_format(names, self.framework, self.recorded_format))

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)


def bundle_format(names: Iterable[str], framework: str, recorded: str | None) -> BundleFormat:
    """What a version's policy file is, as far as its tag and validation record tell (nothing is
    downloaded): ``safetensors`` (a policy.safetensors file), ``torchscript`` (framework
    'torchscript', or the validation loaded it as TorchScript), ``state_dict`` (the validation
    read it as a weights-only state dict) or ``unknown``."""
    if SAFETENSORS_FILE in set(names):
        return "safetensors"
    if framework.strip().lower() == "torchscript" or recorded == "torchscript":
        return "torchscript"
    return "state_dict" if recorded == "state_dict" else "unknown"


def effective(
    policy: LoadPolicy, *, require_signed: bool = False, architectures: Collection[str] = ()
) -> LoadPolicy:
    """``policy`` with a caller's stricter flag (``--require-signed``) and extra allowed
    architectures (``--allow-architecture``) folded in."""
    update: dict[str, object] = {}
    if require_signed and not policy.require_signed:
        update["require_signed"] = True
    extra = [a for a in architectures if a not in policy.architectures]
    if extra:
        update["architectures"] = [*policy.architectures, *extra]
    return policy.model_copy(update=update) if update else policy


def size_refusal(policy: LoadPolicy, total_bytes: int) -> Refusal | None:
    limit = policy.max_bundle_bytes
    if limit is None or total_bytes <= limit:
        return None
    return Refusal(
        "size",
        f"is {total_bytes} bytes, over the policy's max_bundle_bytes {limit}",
        total_bytes=total_bytes,
        limit=limit,
    )


def signature_refusal(policy: LoadPolicy, verify: Callable[[], tuple[bool, str]]) -> Refusal | None:
    """When the policy requires signed tags: ``verify()`` -> (verified, why)."""
    if not policy.require_signed:
        return None
    signed, why = verify()
    if signed:
        return None
    return Refusal(
        "signature", f"has a tag whose signature does not verify ({why}; policy require_signed)", reason=why
    )


def format_refusal(
    policy: LoadPolicy, fmt: BundleFormat, framework: str, architecture: str | None
) -> Refusal | None:
    """TorchScript where the policy forbids it; a state dict that names no allowed architecture."""
    if not policy.allow_torchscript and fmt == "torchscript":
        return Refusal(
            "torchscript", "is TorchScript, which the policy does not allow (allow_torchscript: false)"
        )
    if not policy.allow_torchscript and fmt == "unknown":
        return Refusal(
            "maybe-torchscript",
            "has a policy.pt that may be TorchScript (framework "
            f"{framework!r}, no validation record says otherwise), which the policy does not "
            "allow (allow_torchscript: false); validate it, or export policy.safetensors",
        )
    if fmt in ("safetensors", "state_dict"):
        if not architecture:
            return Refusal(
                "no-architecture", "is a state dict with no architecture in its metadata: it cannot be served"
            )
        if architecture not in policy.architectures:
            return Refusal(
                "architecture",
                f"names architecture {architecture!r}, which is not in the policy's architectures",
                architecture=architecture,
            )
    return None


def refusals(
    policy: LoadPolicy, facts: LoadFacts, verify: Callable[[], tuple[bool, str]] | None = None
) -> list[Refusal]:
    """Every rule of ``policy`` that forbids loading the version ``facts`` describe (empty: it
    may be loaded). ``verify`` checks the tag's signature; without it a policy that requires
    signatures refuses (nothing vouches for the tag)."""
    found = [
        format_refusal(policy, facts.format, facts.framework, facts.architecture),
        size_refusal(policy, facts.total_bytes),
        signature_refusal(policy, verify or (lambda: (False, "not checked"))),
    ]
    return [r for r in found if r is not None]
