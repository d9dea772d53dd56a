"""The shortest end-to-end path, kept as a canary for the harness itself."""

from __future__ import annotations

from gitreg.testing.cli import run_cli


def test_register_then_list_shows_the_version(repo_dir, make_bundle):
    bundle = make_bundle(1)
    reg = run_cli("register", str(bundle), "--model", "policy", cwd=repo_dir, check=True)
    version = reg.stdout.strip()
    listed = run_cli("list", "--json", cwd=repo_dir, check=True)
    assert version in listed.stdout
