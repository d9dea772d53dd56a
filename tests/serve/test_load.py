"""`gitreg.load("policy@production", repo=URL)`: a model loaded into your own Python process by
reference, with no clone, through the deploy agent's own checks; and `gitreg.resolve`. Real git
(a bare remote, read through the cached mirror), real DVC (a folder remote), real TorchScript,
a real agent over loopback to compare answers with, and fresh Python processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gitreg.testing.bundles import ROW, close
from gitreg.testing.repos import promote_pushed, register_pushed

pytestmark = pytest.mark.slow

V1 = "v2025-07-01--10h00"
V2 = "v2025-07-02--10h00"
BATCH = [ROW[0], [0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, -4.0]]


def python(code: str, cwd: Path) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter in ``cwd``; the JSON it prints last."""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


LOAD = """
import json, gitreg
p = gitreg.load("policy@production", repo={url!r})
print(json.dumps({{"outputs": p(json.loads({batch!r})), "version": p.version, "model": p.model,
    "commit": p.commit, "files": sorted(f.path for f in p.files), "algo": p.metadata.get("algo"),
    "stage": p.stage, "input_shape": p.input_shape, "module": type(p.module).__name__}}))
"""


@pytest.fixture
def published(registry: Any, make_bundle: Any, bare_remote: Path, tmp_path: Path, monkeypatch) -> str:
    """V1 in production and V2 registered, all pushed; caches in a temp folder."""
    register_pushed(registry, make_bundle(1), V1)
    promote_pushed(registry, V1)
    register_pushed(registry, make_bundle(2), V2)
    monkeypatch.setenv("GITREG_CACHE_DIR", str(tmp_path / "cache"))
    return f"file://{bare_remote}"


def test_a_fresh_process_with_no_clone_predicts_what_the_agent_serves(
    published: str, bare_remote: Path, serve: Any, tmp_path: Path
) -> None:
    agent = serve(bare_remote)
    served = agent.predict(BATCH).json()
    assert served["version"] == V1
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()  # not a repository: nothing local is read
    got = python(LOAD.format(url=published, batch=json.dumps(BATCH)), elsewhere)
    assert (got["version"], got["model"], got["stage"]) == (V1, "policy", "production")
    assert close(got["outputs"], served["outputs"]), (got["outputs"], served["outputs"])
    assert got["files"] == ["metadata.json", "policy.pt"] and got["input_shape"] == [4]
    assert len(got["commit"]) == 40 and got["module"] == "RecursiveScriptModule"
    assert got["algo"] == "DQN"


def test_a_second_load_reuses_the_verified_bundle_and_its_smoke_load(published: str, tmp_path: Path) -> None:
    first = python(LOAD.format(url=published, batch=json.dumps(BATCH)), tmp_path)
    assert len(list((tmp_path / "cache" / "bundles.passed").iterdir())) == 1
    # a fresh process: the sandbox must not run again (it would raise), the pull must not either
    again = """
import json, gitreg, gitreg.sandbox, gitreg.pull
def refuse(*a, **k): raise AssertionError("ran again")
gitreg.sandbox.check_policy = refuse
gitreg.pull.pull = refuse
p = gitreg.load("policy@production", repo={url!r})
q = gitreg.load("policy@production", repo={url!r})
print(json.dumps({{"outputs": p(json.loads({batch!r})), "same": q.module is p.module}}))
"""
    got = python(again.format(url=published, batch=json.dumps(BATCH)), tmp_path)
    assert got["outputs"] == first["outputs"] and got["same"] is True


def test_a_tensor_batch_gives_a_tensor_and_references_of_every_form_load(
    published: str, registry: Any, tmp_path: Path
) -> None:
    import torch

    import gitreg

    p = gitreg.load("policy@production", repo=published)
    y = p(torch.tensor(BATCH))
    assert isinstance(y, torch.Tensor) and close(y.tolist(), p(BATCH))
    latest = gitreg.load("policy@latest", repo=published)
    assert latest.version == V2 and not close(latest(BATCH), p(BATCH))
    assert gitreg.load(f"policy@{V1}", repo=published).version == V1
    local = gitreg.load("policy@production", path=registry.root)  # a clone, by path
    assert local.version == V1 and close(local(BATCH), p(BATCH))
    assert repr(p) == f"<LoadedPolicy policy {V1}>"
    with pytest.raises(TypeError, match="a list or a tensor"):
        p("not a batch")


def test_resolve_answers_without_loading(published: str) -> None:
    import gitreg

    r = gitreg.resolve("policy@production", repo=published)
    assert (r.version, r.stage, r.status) == (V1, "production", "registered") and r.set_by


def test_what_the_agent_refuses_gitreg_load_refuses(published: str, registry: Any, tmp_path: Path) -> None:
    import gitreg
    from gitreg.errors import EmptyStage, ModelNotFound, Rejected

    with pytest.raises(ModelNotFound):
        gitreg.load("nosuch@production", repo=published)
    with pytest.raises(EmptyStage):
        gitreg.load("policy@staging", repo=published)
    # the clone's models.yaml forbids TorchScript now: the checked-out policy rules a path load
    text = registry.manifest_path.read_text() + "policy:\n  allow_torchscript: false\n"
    registry.manifest_path.write_text(text)
    with pytest.raises(Rejected, match="TorchScript"):
        gitreg.load("policy@production", path=registry.root)
