"""The load policy's one rule set (gitreg.policy): pure, so every rule is checked here directly."""

from __future__ import annotations

import pytest

from gitreg import policy
from gitreg.manifest import LoadPolicy

ARCH = "nets.policies:PolicyNet"


def facts(
    *files: tuple[str, int], framework: str = "pytorch", arch: str | None = None, recorded: str | None = None
):
    return policy.LoadFacts(files=files, framework=framework, architecture=arch, recorded_format=recorded)


@pytest.mark.parametrize(
    ("names", "framework", "recorded", "expected"),
    [
        (["policy.safetensors", "metadata.json"], "torchscript", "torchscript", "safetensors"),
        (["policy.pt"], "TorchScript ", None, "torchscript"),
        (["policy.pt"], "pytorch", "torchscript", "torchscript"),
        (["policy.pt"], "pytorch", "state_dict", "state_dict"),
        (["policy.pt"], "pytorch", None, "unknown"),
    ],
)
def test_bundle_format(names: list[str], framework: str, recorded: str | None, expected: str) -> None:
    assert policy.bundle_format(names, framework, recorded) == expected
    assert facts(*((n, 1) for n in names), framework=framework, recorded=recorded).format == expected


def test_the_default_policy_allows_everything_it_can_serve() -> None:
    assert policy.refusals(LoadPolicy(), facts(("policy.pt", 10), framework="torchscript")) == []
    assert policy.refusals(LoadPolicy(), facts(("policy.pt", 10))) == []  # unknown: allowed


def test_torchscript_refused_when_not_allowed() -> None:
    rules = LoadPolicy(allow_torchscript=False)
    [r] = policy.refusals(rules, facts(("policy.pt", 10), framework="torchscript"))
    assert r.rule == "torchscript" and "allow_torchscript: false" in r.message
    [r] = policy.refusals(rules, facts(("policy.pt", 10), framework="pytorch"))
    assert r.rule == "maybe-torchscript" and "'pytorch'" in r.message


def test_state_dicts_need_an_allowed_architecture() -> None:
    rules = LoadPolicy(architectures=[ARCH])
    [r] = policy.refusals(rules, facts(("policy.safetensors", 10)))
    assert r.rule == "no-architecture"
    [r] = policy.refusals(rules, facts(("policy.safetensors", 10), arch="other.mod:Net"))
    assert (r.rule, r.architecture) == ("architecture", "other.mod:Net")
    assert policy.refusals(rules, facts(("policy.safetensors", 10), arch=ARCH)) == []
    assert policy.refusals(rules, facts(("policy.pt", 10), arch=ARCH, recorded="state_dict")) == []


def test_size_limit_counts_every_file() -> None:
    rules = LoadPolicy(max_bundle_bytes=100)
    assert (
        policy.refusals(rules, facts(("policy.pt", 60), ("metadata.json", 40), framework="torchscript")) == []
    )
    [r] = policy.refusals(rules, facts(("policy.pt", 60), ("metadata.json", 41), framework="torchscript"))
    assert (r.rule, r.total_bytes, r.limit) == ("size", 101, 100)
    assert policy.size_refusal(LoadPolicy(), 10**12) is None


def test_signatures_are_verified_only_when_required() -> None:
    calls: list[int] = []

    def verify() -> tuple[bool, str]:
        calls.append(1)
        return False, "no signature"

    assert policy.refusals(LoadPolicy(), facts(("policy.pt", 1), framework="torchscript"), verify) == []
    assert calls == []
    rules = LoadPolicy(require_signed=True)
    [r] = policy.refusals(rules, facts(("policy.pt", 1), framework="torchscript"), verify)
    assert (r.rule, r.reason) == ("signature", "no signature") and calls == [1]
    assert policy.refusals(rules, facts(("policy.pt", 1), framework="torchscript"), lambda: (True, "")) == []
    [r] = policy.refusals(rules, facts(("policy.pt", 1), framework="torchscript"))  # nothing vouches
    assert r.rule == "signature"


def test_refusals_come_in_a_fixed_order() -> None:
    rules = LoadPolicy(allow_torchscript=False, max_bundle_bytes=1, require_signed=True)
    found = policy.refusals(rules, facts(("policy.pt", 5), framework="torchscript"), lambda: (False, "bad"))
    assert [r.rule for r in found] == ["torchscript", "size", "signature"]


def test_effective_folds_in_the_callers_flags() -> None:
    base = LoadPolicy(architectures=[ARCH])
    assert policy.effective(base) is base
    stricter = policy.effective(base, require_signed=True, architectures=[ARCH, "b.c:D"])
    assert stricter.require_signed and stricter.architectures == [ARCH, "b.c:D"]
    assert not base.require_signed and base.architectures == [ARCH]
