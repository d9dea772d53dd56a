"""The load path is safe by design: bundle formats (TorchScript policy.pt, a state dict as
policy.pt or policy.safetensors with an allow-listed architecture), the sandboxed child (a
pickle bomb in every format path never runs; a loader that hangs, crashes or blows up memory is
a failed validation with its reason), and models.yaml's `policy:` (parsed strictly, enforced by
register, validate and check)."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from gitreg.testing.bundles import (
    ROW,
    outputs,
    safetensors_bytes,
    torch_save_bytes,
    write_folder,
    write_policy,
)
from gitreg.testing.bundles import state_dict_metadata as meta
from gitreg.testing.cli import run_cli
from gitreg.testing.payloads import (
    BOMBS,
    EVIL,
    TINY,
    WIDE,
    bomb,
    install_architectures,
    loader_crash_torchscript,
    loader_hang_torchscript,
    loader_memory_hog_torchscript,
    trained,
    unpickle_every_pickle,
)
from gitreg.testing.repos import git


@pytest.fixture
def arch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The architecture modules, importable by every child process (PYTHONPATH)."""
    return install_architectures(tmp_path / "archlib", monkeypatch, tmp_path / "EVIL-IMPORTED")


def folder(tmp_path: Path, name: str, files: dict[str, bytes], metadata: dict[str, Any]) -> Path:
    return write_folder(tmp_path / "bundles" / name, files, metadata)


def register(registry: Any, bundle: Path) -> str:
    return str(registry.register(bundle, "policy").version)


def commit_policy(repo: Path, policy: str) -> None:
    """Append a `policy:` block to models.yaml and commit it (register needs a clean manifest)."""
    path = repo / "models.yaml"
    path.write_text(path.read_text() + policy)
    git(repo, "commit", "-q", "-m", "policy", "--", "models.yaml")


def add_policy(repo: Path, policy: str) -> None:
    """Append a `policy:` block to the working tree's models.yaml (validate and check read it)."""
    path = repo / "models.yaml"
    path.write_text(path.read_text() + policy)


def check_named(record: Any, name: str) -> Any:
    return next(c for c in record.checks if c.name == name)


def ts_bytes(seed: int = 1) -> bytes:
    path = Path(f"/tmp/gitreg-lp-{seed}-{time.monotonic_ns()}.pt")
    try:
        write_policy(path, seed)
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


# == models.yaml `policy:` ============================================================================
def test_the_policy_section_parses_with_its_defaults():
    from gitreg import manifest as mf

    assert mf.loads("version: 1\nmodels: {}\n").model.policy == mf.LoadPolicy()
    defaults = mf.loads("version: 1\nmodels: {}\npolicy:\n").model.policy
    assert defaults.allow_torchscript is True and defaults.require_signed is False
    assert defaults.max_bundle_bytes is None
    assert defaults.architectures == [] and defaults.require_staging_before_production is False
    text = (
        "version: 1\nmodels: {}\npolicy:\n  allow_torchscript: false\n  require_signed: true\n"
        "  max_bundle_bytes: 1000000\n  architectures: [pkg.nets:PolicyNet, a_b.c.d:E9]\n"
        "  require_staging_before_production: true\n"
    )
    p = mf.loads(text).model.policy
    assert (p.allow_torchscript, p.require_signed, p.max_bundle_bytes) == (False, True, 1_000_000)
    assert p.architectures == ["pkg.nets:PolicyNet", "a_b.c.d:E9"]
    assert p.require_staging_before_production is True


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("  allow_torchscript: false\n  allow_pickle: true\n", 5, "unknown key 'allow_pickle' (known:"),
        ("  architectures:\n    - pkg.nets:Net\n    - os.system\n", 6, "not an architecture"),
        ("  architectures: ['pkg:Net; import os']\n", 4, "not an architecture"),
        ("  architectures: ['../evil:Net']\n", 4, "not an architecture"),
        ("  max_bundle_bytes: 0\n", 4, "max_bundle_bytes"),
        ("  require_signed: sometimes\n", 4, "require_signed"),
    ],
    ids=["unknown-key", "no-class", "code", "path", "zero-size", "not-bool"],
)
def test_a_bad_policy_is_refused_on_its_line(body: str, line: int, words: str):
    from gitreg import manifest as mf
    from gitreg.errors import ManifestError

    with pytest.raises(ManifestError) as e:
        mf.loads("version: 1\nmodels: {}\npolicy:\n" + body)
    assert e.value.line == line
    assert words in str(e.value)


# == bundle formats ===================================================================================
def test_the_format_is_told_from_the_name_and_the_zip_directory(tmp_path: Path):
    from gitreg.sandbox import policy_format

    cases = {
        "policy.pt": (ts_bytes(), "torchscript"),
        "sd/policy.pt": (torch_save_bytes({"w": __import__("torch").zeros(2)}), "state_dict"),
        "garbage/policy.pt": (b"\x00" * 64, "state_dict"),  # weights-only torch.load says no
        "policy.safetensors": (safetensors_bytes({"w": __import__("torch").zeros(2)}), "safetensors"),
        "zip/policy.safetensors": (ts_bytes(), "safetensors"),  # by its name: never torch.jit.load
    }
    for rel, (data, kind) in cases.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        assert policy_format(path) == kind, rel


def test_a_bundle_has_exactly_one_policy_file(tmp_path: Path):
    from gitreg.errors import BundleError
    from gitreg.store import scan_bundle

    data = safetensors_bytes({"w": __import__("torch").zeros(2)})
    only = folder(tmp_path, "only", {"policy.safetensors": data}, meta())
    assert scan_bundle(only) == ["metadata.json", "policy.safetensors"]
    both = folder(tmp_path, "both", {"policy.safetensors": data, "policy.pt": ts_bytes()}, meta())
    with pytest.raises(BundleError, match=r"both policy\.pt and policy\.safetensors"):
        scan_bundle(both)
    none = folder(tmp_path, "none", {"weights.bin": data}, meta())
    with pytest.raises(BundleError, match=r"no policy\.pt or policy\.safetensors"):
        scan_bundle(none)


# == register / validate refusals that need no child process ==========================================
def test_register_refuses_a_bundle_over_max_bundle_bytes(registry, repo_dir: Path, tmp_path: Path):
    from gitreg.errors import BundleError

    commit_policy(repo_dir, "policy:\n  max_bundle_bytes: 5000\n")
    head = git(repo_dir, "rev-parse", "HEAD")
    big = folder(tmp_path, "big", {"policy.safetensors": b"\x00" * 6000}, meta())
    with pytest.raises(BundleError, match=r"over the 5000 of models\.yaml's policy max_bundle_bytes"):
        registry.register(big, "policy")
    assert git(repo_dir, "tag", "--list") == "" and git(repo_dir, "rev-parse", "HEAD") == head
    assert not (repo_dir / "models" / "policy").exists()
    proc = run_cli("register", str(big), "--model", "policy", cwd=repo_dir)
    assert proc.returncode == 1 and "max_bundle_bytes" in proc.stderr and "Traceback" not in proc.stderr
    small = folder(tmp_path, "small", {"policy.safetensors": b"\x00" * 1000}, meta())
    assert registry.register(small, "policy").version


def test_validate_refuses_an_unsigned_tag_when_signatures_are_required(registry, repo_dir, make_bundle):
    version = register(registry, make_bundle(1))

    record = registry.validate(version, require_signed=True)
    assert record.passed is False
    assert [(c.name, c.ok) for c in record.checks] == [("signature", False)]  # nothing fetched or loaded
    assert "no signature found" in (record.error or "")

    proc = run_cli("validate", version, "--require-signed", "--record", "--json", cwd=repo_dir)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "signature" in json.loads(proc.stdout)["error"]
    assert registry.get(version).status == "failed"

    add_policy(repo_dir, "policy:\n  require_signed: true\n")
    record = registry.validate(version)  # the working tree's models.yaml says so
    assert record.passed is False and record.checks[0].name == "signature"


def test_validate_refuses_a_bundle_over_max_bundle_bytes(registry, repo_dir, make_bundle):
    version = register(registry, make_bundle(1))
    total = sum(f.size for f in registry.get(version).files)
    add_policy(repo_dir, f"policy:\n  max_bundle_bytes: {total - 1}\n")
    record = registry.validate(version)
    assert record.passed is False
    assert [(c.name, c.ok) for c in record.checks] == [("size", False)]
    assert f"{total} bytes over the policy's max_bundle_bytes {total - 1}" in (record.error or "")


def test_validate_refuses_torchscript_unread_when_the_policy_forbids_it(registry, repo_dir, make_bundle):
    version = register(registry, make_bundle(1))
    add_policy(repo_dir, "policy:\n  allow_torchscript: false\n")
    start = time.monotonic()
    proc = run_cli("validate", version, "--record", "--json", cwd=repo_dir)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    record = json.loads(proc.stdout)
    assert "policy.pt is TorchScript, which the policy does not allow" in record["error"]
    assert record["policy_format"] == "torchscript"
    assert record["torch_version"] is None  # refused before any loader started
    assert time.monotonic() - start < 60


def test_validate_refuses_an_architecture_that_is_not_allow_listed(registry, repo_dir, arch, tmp_path):
    net = trained(arch, 1)
    files = {"policy.safetensors": safetensors_bytes(net.state_dict())}
    version = register(registry, folder(tmp_path, "evil", files, meta(architecture=EVIL)))
    marker = tmp_path / "EVIL-IMPORTED"

    record = registry.validate(version, allow_architectures=[TINY])
    assert record.passed is False
    assert f"architecture {EVIL!r} is not allow-listed" in (record.error or "")
    assert not marker.exists()

    proc = run_cli("validate", version, "--allow-architecture", "os:system; rm", cwd=repo_dir)
    assert proc.returncode == 1 and "pkg.module:ClassName" in proc.stderr
    assert "Traceback" not in proc.stderr


# == gitreg check enforces the policy on production and canary =========================================
MANIFEST = """\
version: 1
models:
  policy:
    path: models/policy
    stages:
      production: {prod}
    canary:
      version: {canary}
      traffic: 10
"""
L_PROD, L_CANARY = 6, 8


def policy_problems(registry: Any, repo_dir: Path, prod: str, canary: str, policy: str) -> list[tuple]:
    (repo_dir / "models.yaml").write_text(MANIFEST.format(prod=prod, canary=canary) + policy)
    report = registry.check()
    return sorted(
        (p.line, p.message) for p in report.problems if "no passing validation record" not in p.message
    )


def sf_bundle(tmp_path: Path, name: str, state: dict[str, Any], **kw: Any) -> Path:
    return folder(tmp_path, name, {"policy.safetensors": safetensors_bytes(state)}, meta(**kw))


NO_TS = "which the policy does not allow (allow_torchscript: false)"
NOT_LISTED = "which is not in the policy's architectures"


def test_check_enforces_the_load_policy(registry, repo_dir, make_bundle, arch, tmp_path):
    state = trained(arch, 1).state_dict()
    ts = register(registry, make_bundle(1))  # framework "torchscript"
    tiny = register(registry, sf_bundle(tmp_path, "t", state, architecture=TINY))
    other = register(registry, sf_bundle(tmp_path, "o", state, architecture=EVIL))
    maybe_ts = register(registry, make_bundle(2, metadata=meta(framework="pytorch")))  # unvalidated
    bare_sd = register(registry, sf_bundle(tmp_path, "b", state))
    strict = f"policy:\n  allow_torchscript: false\n  architectures: [{TINY}]\n"

    assert policy_problems(registry, repo_dir, ts, ts, "") == []  # TorchScript is allowed by default
    assert policy_problems(registry, repo_dir, ts, tiny, "") == [  # but no architecture is
        (L_CANARY, f"policy canary: {tiny} names architecture {TINY!r}, {NOT_LISTED}")
    ]
    assert policy_problems(registry, repo_dir, ts, other, strict) == [
        (L_PROD, f"policy production: {ts} is TorchScript, {NO_TS}"),
        (L_CANARY, f"policy canary: {other} names architecture {EVIL!r}, {NOT_LISTED}"),
    ]
    found = policy_problems(registry, repo_dir, tiny, maybe_ts, strict)
    assert len(found) == 1 and found[0][0] == L_CANARY
    assert f"policy canary: {maybe_ts} has a policy.pt that may be TorchScript" in found[0][1]
    assert NO_TS in found[0][1]
    no_arch = "is a state dict with no architecture in its metadata: it cannot be served"
    assert policy_problems(registry, repo_dir, tiny, bare_sd, strict) == [
        (L_CANARY, f"policy canary: {bare_sd} {no_arch}")
    ]

    size = sum(f.size for f in registry.get(tiny).files)
    limit = f"policy:\n  architectures: [{TINY}]\n  max_bundle_bytes: {size - 1}\n"
    over = f"is {size} bytes, over the policy's max_bundle_bytes {size - 1}"
    assert policy_problems(registry, repo_dir, tiny, tiny, limit) == [
        (L_PROD, f"policy production: {tiny} {over}"),
        (L_CANARY, f"policy canary: {tiny} {over}"),
    ]
    found = policy_problems(registry, repo_dir, ts, ts, "policy:\n  require_signed: true\n")
    assert [ln for ln, _ in found] == [L_PROD, L_CANARY]
    assert all("signature does not verify" in m and "no signature found" in m for _, m in found)

    # the CLI: exit 1, each problem on its line
    (repo_dir / "models.yaml").write_text(MANIFEST.format(prod=ts, canary=other) + strict)
    proc = run_cli("check", "--json", cwd=repo_dir)
    assert proc.returncode == 1
    lines = {(p["line"], p["message"].split(":")[0]) for p in json.loads(proc.stdout)["problems"]}
    assert {(L_PROD, "policy production"), (L_CANARY, "policy canary")} <= lines


def test_the_agent_refuses_what_the_policy_forbids_before_loading(registry, make_bundle, arch, tmp_path):
    from gitreg.manifest import LoadPolicy
    from gitreg.serve.agent import Agent, AgentConfig, Rejected

    state = trained(arch, 1).state_dict()
    ts = register(registry, make_bundle(1))
    evil = register(registry, sf_bundle(tmp_path, "e", state, architecture=EVIL))
    no_arch = register(registry, sf_bundle(tmp_path, "n", state))

    def never(path: Path, metadata: Any) -> Any:
        raise AssertionError(f"{path} was loaded")

    agent = Agent(
        AgentConfig(repo="unused", cache=tmp_path / "cache", allow_architectures=[WIDE]), loader=never
    )
    cases = [
        (LoadPolicy(require_signed=True), ts, "the tag's signature does not verify (no signature found)"),
        (LoadPolicy(max_bundle_bytes=10), ts, "over the policy's max_bundle_bytes 10"),
        (
            LoadPolicy(allow_torchscript=False),
            ts,
            "policy.pt is TorchScript, which the policy does not allow",
        ),
        (LoadPolicy(architectures=[TINY]), evil, f"architecture {EVIL!r} is not allow-listed"),
        (LoadPolicy(), no_arch, "metadata.json names no architecture"),
    ]
    for policy, version, words in cases:
        agent._policy = policy
        with pytest.raises(Rejected, match=re.escape(words)):
            agent._load(registry, "policy", version)
    assert not (tmp_path / "EVIL-IMPORTED").exists()


# == the sandboxed child (slow: each starts torch) ======================================================
@pytest.mark.slow
@pytest.mark.parametrize("kind", BOMBS)
def test_a_pickle_bomb_in_every_format_path_never_runs(registry, arch, tmp_path, kind):
    control = tmp_path / "control-marker"  # the payload is live: an unsafe load runs it
    unpickle_every_pickle(*bomb(kind, control))
    assert control.exists()

    marker = tmp_path / "PWNED"
    name, data = bomb(kind, marker)
    version = register(registry, folder(tmp_path, kind, {name: data}, meta(architecture=TINY)))

    record = registry.validate(version, record=True, allow_architectures=[TINY])

    assert record.passed is False
    assert check_named(record, "digests").ok and not check_named(record, "load").ok
    reason = record.error or ""
    expected = {
        "torch.save": "Unsupported global: GLOBAL io.open",
        "torchscript-data.pkl": "io.open",
        "pickle-as-safetensors": "not a valid safetensors file",
        "state-dict-with-object": "Unsupported global: GLOBAL io.open",
    }[kind]
    assert expected in reason, reason
    assert not marker.exists()
    assert registry.get(version).status == "failed"


@pytest.mark.slow
def test_a_loader_that_never_returns_is_stopped_at_the_timeout(registry, repo_dir, make_bundle):
    version = register(registry, make_bundle(1, policy=loader_hang_torchscript()))

    start = time.monotonic()
    proc = run_cli("validate", version, "--timeout", "8", "--json", cwd=repo_dir)
    elapsed = time.monotonic() - start

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    record = json.loads(proc.stdout)
    assert record["passed"] is False
    assert record["error"] == "load and forward pass did not finish within 8 s"
    assert elapsed < 90


@pytest.mark.slow
def test_a_loader_that_crashes_is_a_failed_validation(registry, repo_dir, make_bundle):
    version = register(registry, make_bundle(1, policy=loader_crash_torchscript()))

    start = time.monotonic()
    proc = run_cli("validate", version, "--timeout", "60", "--record", "--json", cwd=repo_dir)
    elapsed = time.monotonic() - start

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    record = json.loads(proc.stdout)
    assert record["error"] == "the loader crashed (SIGSEGV)"
    assert elapsed < 60
    assert registry.get(version).status == "failed"


@pytest.mark.slow
def test_a_loader_that_blows_up_memory_is_a_failed_validation(registry, repo_dir, make_bundle):
    version = register(registry, make_bundle(1, policy=loader_memory_hog_torchscript(16)))

    proc = run_cli("validate", version, "--memory-mb", "2048", "--json", cwd=repo_dir)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error.startswith("the loader ran out of memory (limit 2048 MiB)"), error


@pytest.mark.slow
def test_a_safetensors_bundle_with_an_allow_listed_architecture_validates(
    registry, repo_dir, arch, tmp_path, monkeypatch
):
    monkeypatch.syspath_prepend(str(arch))  # for the in-process runtime below

    net = trained(arch, 7, hidden=16)
    bundle = folder(
        tmp_path,
        "sf",
        {"policy.safetensors": safetensors_bytes(net.state_dict())},
        meta(architecture=TINY, architecture_kwargs={"hidden": 16}),
    )
    version = register(registry, bundle)
    assert {f.path for f in registry.get(version).files} == {"policy.safetensors", "metadata.json"}
    add_policy(repo_dir, f"policy:\n  allow_torchscript: false\n  architectures: [{TINY}]\n")

    proc = run_cli("validate", version, "--record", cwd=repo_dir)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{TINY} with 4 tensors (safetensors); forward pass on [1, 4] -> [1, 2]" in proc.stdout
    info = registry.get(version)
    assert info.status == "validated" and info.architecture == TINY
    assert info.validation.policy_format == "safetensors" and info.validation.output_shape == [1, 2]
    # what the runtime serves is what was validated
    from gitreg.runtime import StateDictPolicy

    pulled = Path(registry.pull(version, tmp_path / "pulled").out)
    served = StateDictPolicy(pulled / "policy.safetensors", TINY, {"hidden": 16}, [4], [TINY])
    served.warm_up()
    assert served.predict(ROW)[0] == pytest.approx(outputs(net)[0], abs=1e-6)
    with pytest.raises(Exception, match="not allow-listed"):
        StateDictPolicy(pulled / "policy.safetensors", TINY, {"hidden": 16}, [4], [WIDE])


@pytest.mark.slow
def test_a_weights_only_state_dict_runs_through_an_architecture_from_the_flag(
    registry, repo_dir, arch, tmp_path
):
    weights = {"policy.pt": torch_save_bytes(trained(arch, 3, "WideNet").state_dict())}
    good = register(registry, folder(tmp_path, "w", weights, meta(architecture=WIDE)))
    unfit = register(registry, folder(tmp_path, "u", weights, meta(architecture=TINY)))

    proc = run_cli("validate", good, "--allow-architecture", WIDE, "--json", cwd=repo_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads(proc.stdout)
    assert record["policy_format"] == "state_dict" and record["output_shape"] == [1, 2]

    proc = run_cli("validate", unfit, "--allow-architecture", TINY, "--json", cwd=repo_dir)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"the weights do not fit {TINY}" in json.loads(proc.stdout)["error"]


@pytest.mark.slow
def test_an_architecture_module_shipped_in_the_bundle_is_never_imported(registry, repo_dir, arch, tmp_path):
    marker = tmp_path / "BUNDLE-CODE-RAN"
    net = trained(arch, 1)
    source = f"open({str(marker)!r}, 'w').close()\nfrom gitreg_lp_arch import TinyNet as Net\n"
    bundle = folder(
        tmp_path,
        "shipped",
        {"policy.safetensors": safetensors_bytes(net.state_dict()), "bundled_arch.py": source.encode()},
        meta(architecture="bundled_arch:Net"),
    )
    version = register(registry, bundle)

    proc = run_cli("validate", version, "--allow-architecture", "bundled_arch:Net", "--json", cwd=repo_dir)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cannot import bundled_arch" in json.loads(proc.stdout)["error"]
    assert not marker.exists()


def test_the_child_reports_its_exit_honestly():
    from gitreg.sandbox import child_report as _report

    assert _report(-11, "", "", 100).detail == "the loader crashed (SIGSEGV)"
    assert _report(-6, "", "terminate called after throwing an instance of 'std::bad_alloc'", 100).detail == (
        "the loader ran out of memory (limit 100 MiB; SIGABRT)"
    )
    assert "SIGXFSZ" in _report(-25, "", "", 100).detail
    oom = _report(1, "", "Traceback\nMemoryError\n", 100)
    assert oom.detail == "the loader ran out of memory (limit 100 MiB)"
    ok = io.StringIO()
    ok.write('noise\n{"ok": true, "kind": "safetensors", "detail": "fine"}\n')
    assert _report(0, ok.getvalue(), "", 100).kind == "safetensors"
