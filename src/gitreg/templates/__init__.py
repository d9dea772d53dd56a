"""Files that `gitreg init` writes into a registry repository (package data).

The CI templates install exactly the gitreg that renders them: ``@GITREG_PIP_SPEC@`` (and its
quoted forms) becomes :func:`gitreg.version.install_spec`, ``@TORCH_VERSION@`` the torch this
gitreg runs with (its CPU build from torch's wheel index), so a registry's CI never installs
whatever a package index calls "gitreg" today."""

from __future__ import annotations

import json
from importlib import resources

_BY_CI: dict[str, list[tuple[str, str]]] = {
    "github": [(".github/workflows/gitreg.yml", "github-workflow.yml")],
    "gitlab": [(".gitlab-ci.yml", "gitlab-ci.yml")],
    "none": [],
}
_ALWAYS = [("CODEOWNERS", "CODEOWNERS")]
# When this gitreg runs without torch: the release constraints.txt pins.
DEFAULT_TORCH = "2.13.0"


def read(name: str, pip_spec: str | None = None, torch_version: str | None = None) -> str:
    """The template ``name`` as `gitreg init` writes it (``pip_spec``: this gitreg's own)."""
    from gitreg.version import install_spec

    text = resources.files(__name__).joinpath(name).read_text()
    spec = pip_spec or install_spec()
    return (
        text.replace("@GITREG_PIP_SPEC_EXPR@", spec.replace("'", "''"))  # a GitHub expression literal
        .replace("@GITREG_PIP_SPEC_YAML@", json.dumps(spec))  # a YAML double-quoted scalar
        .replace("@GITREG_PIP_SPEC@", spec)
        .replace("@TORCH_VERSION@", torch_version or torch_release())
    )


def torch_release() -> str:
    """The torch release installed here (without a local label such as ``+cpu``)."""
    from importlib import metadata

    try:
        return metadata.version("torch").split("+", 1)[0]
    except metadata.PackageNotFoundError:
        return DEFAULT_TORCH


def files_for(ci: str, pip_spec: str | None = None) -> list[tuple[str, str]]:
    """(path in the registry repo, text) for a CI system: github, gitlab or none."""
    return [(dest, read(src, pip_spec)) for dest, src in [*_BY_CI[ci], *_ALWAYS]]
