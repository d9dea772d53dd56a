"""Signed versions with real throwaway SSH keys: register --sign, show, --require-signed."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gitreg.metadata import ValidationRecord
from gitreg.testing.cli import run_cli
from gitreg.testing.repos import git

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")


def keypair(folder: Path, name: str) -> Path:
    key = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@example.com", "-f", str(key)],
        check=True,
    )
    return key


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "keys"
    folder.mkdir()
    good, other = keypair(folder, "alice"), keypair(folder, "mallory")
    allowed = folder / "allowed_signers"
    allowed.write_text(f"alice@example.com {(folder / 'alice.pub').read_text().strip()}\n")
    return {"good": good, "other": other, "allowed": allowed}


def use_key(root: Path, key: Path) -> None:
    git(root, "config", "gpg.format", "ssh")
    git(root, "config", "user.signingkey", str(key) + ".pub")


def passed(registry: Any, version: str) -> None:
    """A passing validation record, as CI would attach it (production needs one)."""
    record = ValidationRecord(version=version, passed=True, checked_at=datetime.now(UTC))
    registry.git.add_note(registry.get(version).tag_object, record.to_note())


def tiny(make_bundle: Callable[..., Path], n: int) -> Path:
    return make_bundle(n, policy=f"weights-{n}".encode())


def test_register_sign_and_show_signer(
    registry: Any, make_bundle: Callable[..., Path], keys: dict[str, Path]
) -> None:
    use_key(registry.root, keys["good"])
    signed = registry.register(tiny(make_bundle, 1), "policy", sign=True)
    plain = registry.register(tiny(make_bundle, 2), "policy")
    raw = git(registry.root, "cat-file", "tag", signed.version)
    assert "-----BEGIN SSH SIGNATURE-----" in raw
    # The signature does not disturb reading the tag's block.
    assert registry.get(signed.version).files == registry.get(signed.version).files
    assert {v.version for v in registry.versions()} == {signed.version, plain.version}

    sig = registry.signature(signed.version, keys["allowed"])
    assert sig.signed and sig.verified and sig.format == "ssh"
    assert sig.signer is not None and sig.signer.startswith("alice@example.com")
    unknown = registry.signature(signed.version)  # no trusted keys configured
    assert unknown.signed and not unknown.verified and "allowedSignersFile" in unknown.reason
    assert not registry.signature(plain.version).signed

    shown = run_cli(
        "-C", str(registry.root), "show", signed.version, "--allowed-signers", str(keys["allowed"])
    )
    assert shown.returncode == 0, shown.stderr
    assert "alice@example.com" in shown.stdout and "verified" in shown.stdout
    data = json.loads(run_cli("-C", str(registry.root), "show", plain.version, "--json").stdout)
    assert data["signature"]["signed"] is False


def test_sign_without_a_key_fails_and_leaves_nothing(
    registry: Any, make_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    use_key(registry.root, tmp_path / "no-such-key")
    head = git(registry.root, "rev-parse", "HEAD")
    proc = run_cli("-C", str(registry.root), "register", str(tiny(make_bundle, 1)), "-m", "policy", "--sign")
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1
    assert git(registry.root, "rev-parse", "HEAD") == head
    assert git(registry.root, "tag", "--list") == ""
    assert git(registry.root, "status", "--porcelain") == ""


def test_check_require_signed(registry: Any, make_bundle: Callable[..., Path], keys: dict[str, Path]) -> None:
    root = registry.root
    use_key(root, keys["other"])  # signed, but by a key the allowed-signers file does not trust
    untrusted = registry.register(tiny(make_bundle, 1), "policy", sign=True)
    use_key(root, keys["good"])
    good = registry.register(tiny(make_bundle, 2), "policy", sign=True)
    unsigned = registry.register(tiny(make_bundle, 3), "policy")
    signers = ["--allowed-signers", str(keys["allowed"])]
    for version, ok in ((good.version, True), (untrusted.version, False), (unsigned.version, False)):
        passed(registry, version)
        registry.promote(version, "production", direct=True)
        proc = run_cli("-C", str(root), "check", "--require-signed", *signers)
        assert (proc.returncode == 0) is ok, (version, proc.stderr)
        if not ok:
            assert "signature does not verify" in proc.stderr
        # without the flag the signature is not asked for
        assert run_cli("-C", str(root), "check").returncode == 0 or not ok


def test_validate_require_signed_refuses_before_loading(
    registry: Any, make_bundle: Callable[..., Path], keys: dict[str, Path]
) -> None:
    unsigned = registry.register(tiny(make_bundle, 1), "policy")
    proc = run_cli(
        "-C", str(registry.root), "validate", unsigned.version, "--require-signed", "--json",
        "--allowed-signers", str(keys["allowed"]),
    )  # fmt: skip
    assert proc.returncode == 1
    record = json.loads(proc.stdout)
    assert record["passed"] is False
    assert record["checks"][0]["name"] == "signature" and not record["checks"][0]["ok"]


@pytest.mark.slow
def test_agent_require_signed_keeps_the_last_good_version(
    registry: Any,
    make_bundle: Callable[..., Path],
    keys: dict[str, Path],
    bare_remote: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`gitreg serve --require-signed --allowed-signers FILE`, at the agent: an unsigned version
    is refused, the signed one keeps serving, and /health says why."""
    from gitreg.serve.agent import Agent, AgentConfig
    from gitreg.serve.app import ServeOptions, health_report

    use_key(registry.root, keys["good"])
    good = registry.register(make_bundle(1), "policy", sign=True, push=True)
    bad = registry.register(make_bundle(2), "policy", push=True)
    registry.promote(good.version, "production", direct=True, push=True, force=True)
    # what the CLI's --allowed-signers does for every git call of the process
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "gpg.ssh.allowedSignersFile")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", str(keys["allowed"]))
    agent = Agent(AgentConfig(repo=str(bare_remote), cache=tmp_path / "cache", require_signed=True))
    agent.sync_once()
    slot = agent.slots["policy"]
    assert slot.production is not None and slot.production.version == good.version
    registry.promote(bad.version, "production", direct=True, push=True, force=True)
    agent.sync_once()
    assert slot.production.version == good.version and slot.wanted_production == bad.version
    assert slot.last_error and "signature does not verify" in slot.last_error
    health = health_report(agent, ServeOptions())
    assert health["status"] == "degraded"
    assert "signature" in json.dumps(health)


@pytest.mark.slow
def test_serve_process_require_signed_keeps_serving_the_signed_version(
    registry: Any,
    make_bundle: Callable[..., Path],
    keys: dict[str, Path],
    bare_remote: Path,
    tmp_path: Path,
) -> None:
    """The real `gitreg serve --require-signed --allowed-signers FILE` process over loopback:
    the signed production version serves; after an unsigned one is promoted the signed one
    keeps answering and /health says why; a missing signers file is a one-line error."""
    import httpx

    from gitreg.testing.server import start_serve, wait_for

    use_key(registry.root, keys["good"])
    good = registry.register(make_bundle(1), "policy", sign=True, push=True).version
    bad = registry.register(make_bundle(2), "policy", push=True).version
    registry.promote(good, "production", direct=True, push=True, force=True)

    missing = run_cli(
        "serve", "--repo", str(bare_remote), "--require-signed", "--allowed-signers", str(tmp_path / "nope")
    )  # fmt: skip
    assert missing.returncode == 1 and "--allowed-signers" in missing.stderr
    assert "Traceback" not in missing.stderr

    server = start_serve(
        bare_remote, "--poll", "1", "--require-signed", "--allowed-signers", str(keys["allowed"]),
        cache=tmp_path / "cache", log=tmp_path / "serve.log", ready=False,
    )  # fmt: skip
    url = server.url

    def poll(check: Callable[[], Any], what: str, deadline_s: float = 120.0) -> Any:
        return wait_for(check, what, deadline_s, server)

    def predict() -> httpx.Response:
        return httpx.post(f"{url}/predict", json={"inputs": [[0.5, -1.0, 2.0, 0.25]]}, timeout=30)

    try:
        poll(lambda: httpx.get(f"{url}/ready", timeout=5).status_code == 200, "/ready")
        assert predict().json()["version"] == good
        registry.promote(bad, "production", direct=True, push=True, force=True)
        model = poll(
            lambda: (
                (m := httpx.get(f"{url}/health", timeout=5).json()["models"]["policy"])["wanted"] == bad
                and m["last_error"]
                and m
            ),
            "the agent to refuse the unsigned version",
        )
        assert "signature" in model["last_error"], model
        assert model["served"] == good
        answer = predict()
        assert answer.status_code == 200 and answer.json()["version"] == good
    finally:
        server.kill()


@pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")
def test_register_sign_with_a_gpg_key(
    registry: Any, make_bundle: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gpg.format openpgp: a real throwaway GPG key signs the tag; show and check verify it."""
    home = tmp_path / "gpg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))
    gpg = ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    try:
        subprocess.run(
            [*gpg, "--quick-gen-key", "Bob <bob@example.com>", "ed25519", "sign", "never"],
            check=True,
            capture_output=True,
        )
        listing = subprocess.run(
            ["gpg", "--list-secret-keys", "--with-colons"], check=True, capture_output=True, text=True
        ).stdout
        fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
        git(registry.root, "config", "gpg.format", "openpgp")
        git(registry.root, "config", "user.signingkey", fpr)

        signed = registry.register(tiny(make_bundle, 1), "policy", sign=True)
        plain = registry.register(tiny(make_bundle, 2), "policy")
        assert "-----BEGIN PGP SIGNATURE-----" in git(registry.root, "cat-file", "tag", signed.version)
        sig = registry.signature(signed.version)
        assert sig.signed and sig.verified and sig.format == "openpgp", sig
        assert sig.signer is not None and "bob@example.com" in sig.signer

        shown = json.loads(run_cli("-C", str(registry.root), "show", signed.version, "--json").stdout)
        assert shown["signature"]["verified"] is True
        for version, ok in ((signed.version, True), (plain.version, False)):
            passed(registry, version)
            registry.promote(version, "production", direct=True)
            check = run_cli("-C", str(registry.root), "check", "--require-signed")
            assert (check.returncode == 0) is ok, check.stdout + check.stderr
            assert ok or "sign" in check.stdout + check.stderr
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], check=False, capture_output=True)
