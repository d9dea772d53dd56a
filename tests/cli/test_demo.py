"""`gitreg demo` end to end, through the real CLI, as `make demo` runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from gitreg.testing.cli import run_cli

VERSION = re.compile(r"v\d{4}-\d{2}-\d{2}--\d{2}h\d{2}(?:-\d+)?")


@pytest.mark.slow
def test_demo_runs_and_keeps_a_registry_with_pushed_tags_and_uploaded_bytes(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    # no global Git config at all: the demo must bring its own identity
    no_config = {"GIT_CONFIG_GLOBAL": str(tmp_path / "no-gitconfig")}
    proc = run_cli("demo", "--workdir", str(workdir), "--keep", cwd=tmp_path, env=no_config)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    out = proc.stdout
    versions = sorted(set(VERSION.findall(out)))
    assert len(versions) == 2, versions
    for v in versions:
        assert f"{v}: validation PASSED" in out
    # the final listing shows both versions as validated
    final_list = out.split("List again", 1)[1]
    for v in versions:
        assert re.search(rf"^{re.escape(v)}\s+policy\s+\w+\s+validated\b", final_list, re.MULTILINE), v
    assert "Traceback" not in proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr

    remote = workdir / "remote.git"
    tags = subprocess.run(
        ["git", "ls-remote", "--tags", str(remote)], check=True, capture_output=True, text=True
    ).stdout
    for v in versions:
        assert f"refs/tags/{v}" in tags.split()
    notes = subprocess.run(
        ["git", "ls-remote", str(remote), "refs/notes/gitreg"], check=True, capture_output=True, text=True
    ).stdout
    assert "refs/notes/gitreg" in notes

    objects = [p for p in (workdir / "dvc-remote").rglob("*") if p.is_file()]
    assert len(objects) >= 2  # one policy.pt per version

    pulled = workdir / "pulled" / versions[0]
    assert (pulled / "policy.pt").is_file() and (pulled / "metadata.json").is_file()
    assert (workdir / "registry" / "models.yaml").is_file()
    readme_python_example_runs(workdir, tmp_path)


def readme_python_example_runs(workdir: Path, tmp_path: Path) -> None:
    """The README's Python API example, as printed, on the registry the demo kept."""
    import sys

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Python API", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert "/tmp/gitreg-tour" in code
    code = code.replace("/tmp/gitreg-tour", str(workdir))
    env = {**os.environ, "GITREG_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, outputs, latest = proc.stdout.strip().splitlines()
    assert VERSION.match(first.split()[0]) and VERSION.fullmatch(latest)
    assert outputs.startswith("[[") and len(json.loads(outputs)[0]) == 2  # CartPole: two actions
