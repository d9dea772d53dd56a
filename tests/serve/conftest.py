"""Fixtures of the serving tests (the shared ones are in ../conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def remote(registry: Any, bare_remote: Path) -> Path:
    """The registry's bare Git remote, once the registry exists (what `gitreg serve` follows)."""
    return bare_remote
