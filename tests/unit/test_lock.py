"""requirements/lock.txt is what `make` and CI install: every package pinned, none of CUDA's,
torch's CPU build, and every dependency pyproject.toml names present at a version its floor
allows (so a floor raised in pyproject.toml without `make lock` fails here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
while not (ROOT / "pyproject.toml").exists():  # the tests may live one folder deeper
    ROOT = ROOT.parent


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for raw in (ROOT / "requirements" / "lock.txt").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        assert m, f"not an exact pin: {line!r}"
        pins[canonicalize_name(m.group(1))] = Version(m.group(2))
    return pins


def test_the_lock_pins_everything_and_no_cuda() -> None:
    pins = _pins()
    assert len(pins) > 100
    assert pins["torch"] == Version("2.13.0")
    cuda = sorted(n for n in pins if n.startswith(("nvidia-", "cuda-")) or n == "triton")
    assert cuda == []


def test_every_declared_dependency_is_locked_within_its_floor() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    declared = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    for spec in declared:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in the lock: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"{spec} vs locked {pins[name]}"
