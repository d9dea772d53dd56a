"""The version of gitreg (pyproject.toml reads it from here: one place), its distribution's
name, and the pip requirement that installs exactly this gitreg (what `gitreg init` writes
into the CI templates)."""

from __future__ import annotations

__version__ = "0.1.0"

# The name on PyPI: "gitreg" there is an unrelated project. The import package and the
# command are `gitreg`.
DIST_NAME = "gitreg-ml"


def install_spec() -> str:
    """The requirement that installs this very gitreg: ``gitreg-ml @ git+URL@COMMIT`` when it
    was installed from a Git URL (PEP 610's ``direct_url.json``), else ``gitreg-ml==VERSION``
    (a release from the index; a local or editable install has no address CI could use)."""
    import json
    from importlib import metadata
    from urllib.parse import urlsplit, urlunsplit

    try:
        dist = metadata.distribution(DIST_NAME)
    except metadata.PackageNotFoundError:
        return f"{DIST_NAME}=={__version__}"
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        direct = {}
    vcs = direct.get("vcs_info") if isinstance(direct, dict) else None
    url = direct.get("url") if isinstance(direct, dict) else None
    if isinstance(vcs, dict) and vcs.get("vcs") == "git" and isinstance(url, str):
        commit = vcs.get("commit_id")
        parts = urlsplit(url)
        if isinstance(commit, str) and len(commit) == 40 and parts.scheme in ("https", "ssh", "http"):
            host = parts.hostname or ""
            netloc = host + (f":{parts.port}" if parts.port else "")  # never a credential
            if parts.scheme == "ssh" and parts.username == "git":
                netloc = f"git@{netloc}"
            clean = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
            return f"{DIST_NAME} @ git+{clean}@{commit}"
    return f"{DIST_NAME}=={dist.version}"
