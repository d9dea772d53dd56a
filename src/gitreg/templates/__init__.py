"""Files that `gitreg init` writes into a registry repository (package data)."""

from __future__ import annotations

from importlib import resources

_BY_CI: dict[str, list[tuple[str, str]]] = {
    "github": [(".github/workflows/gitreg.yml", "github-workflow.yml")],
    "gitlab": [(".gitlab-ci.yml", "gitlab-ci.yml")],
    "none": [],
}
_ALWAYS = [("CODEOWNERS", "CODEOWNERS")]


def read(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text()


def files_for(ci: str) -> list[tuple[str, str]]:
    """(path in the registry repo, text) for a CI system: github, gitlab or none."""
    return [(dest, read(src)) for dest, src in [*_BY_CI[ci], *_ALWAYS]]
