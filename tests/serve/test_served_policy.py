"""End-to-end: the real `gitreg serve` under models.yaml's `policy:`. A safetensors bundle whose
architecture is allow-listed registers, validates and serves /predict; a TorchScript bundle under
`allow_torchscript: false`, an architecture that is not allow-listed (its module is never even
imported) and pickle bombs (their payload never runs) are never served while the good version
keeps serving; an architecture allowed by `--allow-architecture` is served."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gitreg.testing.bundles import (
    outputs,
    safetensors_bytes,
    torch_save_bytes,
    write_folder,
    write_policy,
)
from gitreg.testing.bundles import state_dict_metadata as meta
from gitreg.testing.cli import run_cli
from gitreg.testing.payloads import EVIL, TINY, WIDE, bomb, install_architectures, trained
from gitreg.testing.repos import git
from gitreg.testing.server import ServeProcess as Server
from gitreg.testing.server import start_serve, wait_for

pytestmark = pytest.mark.slow

V1 = "v2025-07-01--10h00"  # safetensors + TinyNet(hidden=16), allow-listed in models.yaml
V2 = "v2025-07-02--10h00"  # TorchScript, under allow_torchscript: false
V3 = "v2025-07-03--10h00"  # safetensors naming an architecture nobody allow-listed
V4 = "v2025-07-04--10h00"  # pickle bomb as policy.pt (allow-listed architecture)
V5 = "v2025-07-05--10h00"  # pickle bomb named policy.safetensors
V6 = "v2025-07-06--10h00"  # a WideNet state dict, allowed by `gitreg serve --allow-architecture`


def wait_until(server: Server, check: Callable[[], Any], what: str, deadline_s: float = 180.0) -> Any:
    return wait_for(check, what, deadline_s, server)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(remote: Path, *args: str) -> Server:
        server = start_serve(
            remote, "--threads", "1", "--graceful", "5", "--max-p99-ms", "600000", "--max-error-rate", "1.0",
            *args, cache=tmp_path / "cache", log=tmp_path / "serve.log", ready=False,
        )  # fmt: skip
        started.append(server)
        return server

    try:
        yield start
    finally:
        for s in started:
            s.kill()


def promote(registry: Any, version: str) -> None:
    registry.promote(version, "production", direct=True, push=True, force=True)


def test_only_policy_compliant_versions_are_served(
    registry, repo_dir, bare_remote, tmp_path, monkeypatch, serve
):
    evil_imported = tmp_path / "EVIL-IMPORTED"
    arch = install_architectures(tmp_path / "archlib", monkeypatch, evil_imported)
    tiny = trained(arch, 1, hidden=16)
    wide = trained(arch, 2, "WideNet")
    bundles = tmp_path / "bundles"
    bomb_markers = {V4: tmp_path / "PWNED-pt", V5: tmp_path / "PWNED-safetensors"}
    ts = bundles / "ts.pt"
    ts.parent.mkdir(parents=True)
    write_policy(ts, seed=3)
    v1_meta = meta(architecture=TINY, architecture_kwargs={"hidden": 16})
    versions = {
        V1: ({"policy.safetensors": safetensors_bytes(tiny.state_dict())}, v1_meta),
        V2: ({"policy.pt": ts.read_bytes()}, meta(framework="torchscript")),
        V3: ({"policy.safetensors": safetensors_bytes(tiny.state_dict())}, meta(architecture=EVIL)),
        V4: (dict([bomb("torch.save", bomb_markers[V4])]), meta(architecture=TINY)),
        V5: (dict([bomb("pickle-as-safetensors", bomb_markers[V5])]), meta(architecture=TINY)),
        V6: ({"policy.pt": torch_save_bytes(wide.state_dict())}, meta(architecture=WIDE)),
    }
    for version, (files, metadata) in versions.items():
        bundle = write_folder(bundles / version, files, metadata)
        registry.register(bundle, "policy", version=version, push=True)
    manifest = repo_dir / "models.yaml"
    manifest.write_text(
        manifest.read_text() + f"policy:\n  allow_torchscript: false\n  architectures: [{TINY}]\n"
    )
    git(repo_dir, "commit", "-q", "-m", "load policy", "--", "models.yaml")
    git(repo_dir, "push", "-q", "origin", "HEAD:main")

    # V1 registers, validates (the policy's allow-list is enough) and is promoted without --force
    proc = run_cli("validate", V1, "--record", "--push", cwd=repo_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{TINY} with 4 tensors (safetensors); forward pass on [1, 4] -> [1, 2]" in proc.stdout
    registry.promote(V1, "production", direct=True, push=True)

    server = serve(bare_remote, "--poll", "0.5", "--allow-architecture", WIDE)
    wait_until(server, lambda: httpx.get(server.url + "/ready", timeout=30).status_code == 200, "/ready")
    r = server.predict()
    assert r.status_code == 200 and r.json()["version"] == V1
    assert r.json()["outputs"][0] == pytest.approx(outputs(tiny)[0], abs=1e-5)

    reasons = {
        V2: "policy.pt is TorchScript, which the policy does not allow (allow_torchscript: false)",
        V3: f"architecture {EVIL!r} is not allow-listed",
        V4: "Unsupported global: GLOBAL io.open",
        V5: "not a valid safetensors file",
    }
    for bad, why in reasons.items():
        promote(registry, bad)
        m = wait_until(
            server, lambda bad=bad: (m := server.model())["wanted"] == bad and bad in m["rejected"] and m, bad
        )
        assert why in m["rejected"][bad], m
        assert m["served"] == V1 and m["last_error"] and bad in m["last_error"]
        r = server.predict()
        assert r.status_code == 200 and r.json()["version"] == V1
    assert not evil_imported.exists()  # a name that is not allow-listed is never imported
    assert not any(p.exists() for p in bomb_markers.values())  # no payload ever ran

    # an architecture the operator allowed on the command line
    promote(registry, V6)
    wait_until(server, lambda: server.model()["served"] == V6, V6)
    r = server.predict()
    assert r.status_code == 200 and r.json()["version"] == V6
    assert r.json()["outputs"][0] == pytest.approx(outputs(wide)[0], abs=1e-5)
    assert not any(p.exists() for p in bomb_markers.values())
