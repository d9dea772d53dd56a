"""End-to-end: `gitreg validate` fetches, verifies, loads safely in a sandboxed child, runs a
forward pass, and with --record/--push stores the result as a git note on the tag."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import time
import zipfile
from pathlib import Path

import pytest

from gitreg.testing.cli import run_cli
from gitreg.testing.repos import git

NOTES = "refs/notes/gitreg"


def register(registry, bundle: Path, push: bool = False) -> str:
    return registry.register(bundle, "policy", push=push).version


def status_of(repo: Path, version: str) -> str:
    rows = json.loads(run_cli("list", "--json", cwd=repo, check=True).stdout)
    return next(r["status"] for r in rows if r["version"] == version)


def shown(repo: Path, version: str) -> dict:
    return json.loads(run_cli("show", version, "--json", cwd=repo, check=True).stdout)


def check_line(stdout: str, name: str) -> str:
    """The rendered line of one check: '  ✓ load: …' or '  ✗ load: …'."""
    return next(line.strip() for line in stdout.splitlines() if line.strip()[2:].startswith(name + ":"))


# -- payloads ------------------------------------------------------------------------------------
def state_dict_bytes() -> bytes:
    import torch

    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    return buf.getvalue()


class RunsCode:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_bytes(kind: str, marker: Path) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({"weight": torch.zeros(2), "payload": RunsCode(marker)}, buf)
    if kind == "torch.save":
        return buf.getvalue()
    # "torchscript-lookalike": a torch.save zip dressed up as TorchScript, so it is routed to
    # torch.jit.load in the child instead of the weights-only unpickler
    with zipfile.ZipFile(buf, "a") as z:
        top = z.namelist()[0].split("/")[0]
        z.writestr(f"{top}/code/__torch__.py", "")
        z.writestr(f"{top}/constants.pkl", pickle.dumps((), protocol=2))
    return buf.getvalue()


def full_unpickle(data: bytes) -> None:
    import torch

    torch.load(io.BytesIO(data), weights_only=False)


def looping_torchscript() -> bytes:
    import torch

    class Forever(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            while True:
                x = x + 0.0
            return x

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(Forever()), buf)  # ScriptModule.save(buf) writes a file named str(buf)
    return buf.getvalue()


def meta(**kw) -> dict:
    base = {
        "algo": "PPO",
        "framework": "torchscript",
        "created_at": "2025-07-06T18:51:23+00:00",
        "metrics": {"reward": 10.0},
        "input_shape": [4],
    }
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


# -- tests ---------------------------------------------------------------------------------------
@pytest.mark.slow  # a torch child process
def test_a_good_bundle_passes_and_record_marks_it_validated(repo_dir, registry, make_bundle, bare_remote):
    version = register(registry, make_bundle(1))
    assert registry.get(version).status == "registered"

    proc = run_cli("validate", version, "--record", cwd=repo_dir)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSED" in proc.stdout
    assert "FAILED" not in proc.stdout
    assert check_line(proc.stdout, "digests").startswith("✓")
    assert check_line(proc.stdout, "metadata").startswith("✓")
    load = check_line(proc.stdout, "load")
    assert load.startswith("✓")
    assert "[1, 4] -> [1, 2]" in load
    assert status_of(repo_dir, version) == "validated"
    record = shown(repo_dir, version)["validation"]
    assert record["passed"] is True
    assert record["version"] == version
    checks = {c["name"]: c for c in record["checks"]}
    assert {"digests", "metadata", "load"} <= set(checks)
    assert all(c["ok"] for c in checks.values())
    assert record["load_seconds"] is not None and record["load_seconds"] >= 0
    assert record["output_shape"] == [1, 2]
    assert record["torch_version"]
    assert {f["path"] for f in record["files"]} == {"policy.pt", "metadata.json"}
    # the note hangs on the annotated tag object; nothing was pushed
    tag_object = git(repo_dir, "rev-parse", f"refs/tags/{version}")
    assert json.loads(git(repo_dir, "notes", f"--ref={NOTES}", "show", tag_object))["passed"] is True
    assert git(bare_remote, "ls-remote", str(bare_remote), NOTES) == ""


@pytest.mark.slow  # a torch child process
def test_record_push_shares_the_result_with_other_clones(
    repo_dir, registry, make_bundle, bare_remote, tmp_path
):
    version = register(registry, make_bundle(1), push=True)

    proc = run_cli("validate", version, "--record", "--push", cwd=repo_dir)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    remote_notes = git(repo_dir, "ls-remote", str(bare_remote), NOTES)
    assert remote_notes.split() == [git(repo_dir, "rev-parse", NOTES), NOTES]

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare_remote), str(clone))
    assert git(clone, "for-each-ref", "refs/notes/") == ""  # git's clone brings no notes ...
    assert status_of(clone, version) == "validated"  # ... gitreg fetches them itself
    assert shown(clone, version)["validation"]["passed"] is True


@pytest.mark.slow  # a torch child process
def test_the_input_width_is_learned_and_recorded_when_the_metadata_has_none(repo_dir, registry, make_bundle):
    bundle = make_bundle(1, metadata=meta(input_shape=None))  # a 4-input network, not said so
    version = register(registry, bundle)

    proc = run_cli("validate", version, "--record", cwd=repo_dir)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[1, 4] -> [1, 2]" in check_line(proc.stdout, "load")  # the forward pass ran on it
    assert "input shape [4] learned from the model" in proc.stdout
    info = registry.get(version)
    assert info.input_shape is None  # the metadata still says nothing ...
    assert info.validation is not None and info.validation.input_shape == [4]  # ... the record does
    assert shown(repo_dir, version)["validation"]["input_shape"] == [4]
    text = run_cli("show", version, cwd=repo_dir, check=True).stdout
    assert "input shape: [4]" in text


@pytest.mark.slow  # a torch child process
def test_a_model_of_any_width_records_no_input_shape(repo_dir, registry, make_bundle):
    import torch

    class Doubles(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2.0

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(Doubles()), buf)
    version = register(registry, make_bundle(1, metadata=meta(input_shape=None), policy=buf.getvalue()))

    proc = run_cli("validate", version, "--record", cwd=repo_dir)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "any width" in check_line(proc.stdout, "note")
    record = shown(repo_dir, version)["validation"]
    assert record["passed"] is True and record.get("input_shape") is None
    assert "input shape:" not in run_cli("show", version, cwd=repo_dir, check=True).stdout


def test_a_validation_note_written_before_input_shape_was_recorded_still_parses():
    from gitreg.metadata import parse_validation_note

    old = {"schema": 1, "version": "v1", "passed": True, "checked_at": "2025-07-06T18:51:23+00:00"}
    rec = parse_validation_note(json.dumps(old))
    assert rec is not None and rec.passed is True and rec.input_shape is None
    assert "input_shape" not in json.loads(rec.to_note())


@pytest.mark.slow  # a torch child process
def test_a_failing_forward_pass_fails_and_is_recorded_as_failed(repo_dir, registry, make_bundle):
    bundle = make_bundle(1)  # a 4-input network ...
    (bundle / "metadata.json").write_text(json.dumps(meta(input_shape=[7])))  # ... said to take 7
    version = register(registry, bundle)

    proc = run_cli("validate", version, "--record", cwd=repo_dir)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED" in proc.stdout
    assert "Traceback" not in proc.stderr
    load = check_line(proc.stdout, "load")
    assert load.startswith("✗")
    assert "forward pass" in load
    info = registry.get(version)
    assert info.status == "failed"
    assert info.validation is not None
    assert info.validation.passed is False
    assert "forward pass" in (info.validation.error or "")
    assert info.validation.load_seconds is not None  # the load worked and was timed
    assert info.validation.output_shape is None


@pytest.mark.slow  # a torch child process
def test_garbage_bytes_fail_with_a_reason(repo_dir, registry, make_bundle):
    garbage = hashlib.sha256(b"seed").digest() * 64  # 2 KiB that is no model format
    version = register(registry, make_bundle(1, policy=garbage))

    proc = run_cli("validate", version, "--json", cwd=repo_dir)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    record = json.loads(proc.stdout)
    assert record["passed"] is False
    checks = {c["name"]: c for c in record["checks"]}
    assert checks["digests"]["ok"] is True
    assert checks["load"]["ok"] is False
    assert "weights_only" in checks["load"]["detail"]
    assert "set to `False`" not in checks["load"]["detail"]  # never advise an unsafe retry
    assert record["error"] == checks["load"]["detail"]


@pytest.mark.slow  # a torch child process
def test_a_state_dict_passes_through_weights_only_without_a_forward_pass(repo_dir, registry, make_bundle):
    bundle = make_bundle(1, policy=state_dict_bytes(), metadata=meta(framework="pytorch"))
    version = register(registry, bundle)

    proc = run_cli("validate", version, cwd=repo_dir)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSED" in proc.stdout
    assert "state dict with 4 tensors" in check_line(proc.stdout, "load")
    assert "forward pass skipped" in check_line(proc.stdout, "note")
    assert git(repo_dir, "for-each-ref", NOTES) == ""  # no --record: no note
    assert registry.get(version).status == "registered"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["torch.save", "torchscript-lookalike"])
def test_a_code_running_pickle_fails_and_never_runs(repo_dir, registry, make_bundle, tmp_path, kind):
    # the payload is live: a full unpickle of the same bytes does run it
    control = tmp_path / "control-marker"
    full_unpickle(evil_bytes("torch.save", control))
    assert control.exists()

    marker = tmp_path / "PWNED"
    version = register(registry, make_bundle(1, policy=evil_bytes(kind, marker)))

    proc = run_cli("validate", version, "--record", cwd=repo_dir)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert check_line(proc.stdout, "load").startswith("✗")
    assert not marker.exists()
    info = registry.get(version)
    assert info.status == "failed"
    assert "io.open" in (info.validation.error or "")  # the reason names what was refused


@pytest.mark.slow  # a torch child process
def test_a_forward_pass_that_never_ends_is_stopped_at_the_timeout(repo_dir, registry, make_bundle):
    version = register(registry, make_bundle(1, policy=looping_torchscript(), metadata=meta()))

    start = time.monotonic()
    proc = run_cli("validate", version, "--timeout", "5", "--json", cwd=repo_dir)
    elapsed = time.monotonic() - start

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert elapsed < 60
    record = json.loads(proc.stdout)
    assert record["passed"] is False
    assert "did not finish within 5 s" in record["error"]


def test_corrupt_bytes_fail_validation_at_the_digest_check(repo_dir, registry, make_bundle, dvc_remote):
    bundle = make_bundle(1)
    version = register(registry, bundle)
    md5 = hashlib.md5((bundle / "policy.pt").read_bytes()).hexdigest()
    for store in (repo_dir / ".dvc" / "cache", dvc_remote):
        obj = store / "files" / "md5" / md5[:2] / md5[2:]
        os.chmod(obj, 0o644)
        obj.write_bytes(b"x" * obj.stat().st_size)

    proc = run_cli("validate", version, "--json", cwd=repo_dir)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    record = json.loads(proc.stdout)
    assert [(c["name"], c["ok"]) for c in record["checks"]] == [("digests", False)]
    assert "md5" in record["error"]


def test_push_without_record_is_refused(repo_dir, registry, make_bundle, bare_remote):
    version = register(registry, make_bundle(1), push=True)

    proc = run_cli("validate", version, "--push", cwd=repo_dir)

    assert proc.returncode == 1
    assert "--record" in proc.stderr
    assert "PASSED" not in proc.stdout
    assert git(repo_dir, "for-each-ref", NOTES) == ""
    assert git(repo_dir, "ls-remote", str(bare_remote), NOTES) == ""


def test_validate_of_an_unknown_version_fails(repo_dir, registry, make_bundle):
    register(registry, make_bundle(1))
    proc = run_cli("validate", "v2020-01-01--00h00", "--record", cwd=repo_dir)
    assert proc.returncode == 1
    assert "v2020-01-01--00h00" in proc.stderr
    assert git(repo_dir, "for-each-ref", NOTES) == ""
