"""`gitreg init`: make (or complete) a registry: Git, DVC and its remote, models.yaml, CI."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pydantic import BaseModel, Field

from gitreg import manifest as mf
from gitreg.errors import RemoteInsideRepository, UnknownCISystem, UnsupportedRemote
from gitreg.fs import atomic_write
from gitreg.gitrepo import GitRepo, find_root

CI_CHOICES = ("github", "gitlab", "none")
PULL_GLOB = "/v[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]--*/"


class InitResult(BaseModel):
    root: str
    changed: bool
    created_git: bool
    remote_url: str
    written: list[str] = Field(default_factory=list)
    commit: str | None = None


def init(
    path: Path | str = ".",
    *,
    remote: str | None = None,
    endpoint_url: str | None = None,
    ci: str = "github",
) -> InitResult:
    """Make ``path`` a registry (or complete one); one commit of what it wrote."""
    from gitreg import templates
    from gitreg.store import DvcStore

    if ci not in CI_CHOICES:
        raise UnknownCISystem(ci, CI_CHOICES)
    target = Path(path).resolve()
    existing_root = find_root(target) if target.exists() else None
    created_git = existing_root is None
    # Refuse a bad --remote before anything is created (no stray .git or .dvc left behind).
    wanted_url = _remote_url(remote, existing_root or target) if remote else None
    git = GitRepo.init(target) if created_git else GitRepo(target)
    root = git.root
    git.ident()  # fail early, before writing anything, when git has no identity
    before = set(git.changed_paths(["."]))
    written: list[str] = []

    store = DvcStore(root)
    if not (root / ".dvc").is_dir():
        store.init(root)
        written += [".dvc/config", ".dvc/.gitignore", ".dvcignore"]
    current = store.default_remote()
    if current is None or (wanted_url and current[1] != wanted_url):
        url = wanted_url or str(default_local_remote(root))
        if not url.startswith(("s3://", "gs://", "azure://", "http")):
            Path(url).mkdir(parents=True, exist_ok=True)
        store.set_remote(url, endpoint_url=endpoint_url)
        written.append(".dvc/config")
        remote_url = url
    else:
        remote_url = current[1]

    manifest_path = root / mf.MANIFEST_FILE
    if not manifest_path.exists():
        atomic_write(manifest_path, mf.new_manifest_text().encode())
        written.append(mf.MANIFEST_FILE)
    else:
        mf.load(manifest_path)  # refuse to build on a broken manifest
    if _ensure_lines(root / ".gitignore", [PULL_GLOB, "/.gitreg/"]):
        written.append(".gitignore")
    for rel, text in templates.files_for(ci):
        dest = root / rel
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(dest, text.encode())
            written.append(rel)

    written = sorted(set(written))
    changed_now = set(git.changed_paths(["."])) - before
    commit = None
    if written or changed_now:
        paths = sorted({*written, *(p for p in changed_now if not p.startswith(".dvc/tmp"))})
        paths = [p for p in paths if (root / p).exists() or git.raw("ls-files", "--", p)]
        commit = git.commit_paths(
            paths, "gitreg init\n\nSet up a gitreg model registry (DVC, models.yaml, CI)."
        )
    return InitResult(
        root=str(root),
        changed=bool(commit),
        created_git=created_git,
        remote_url=remote_url,
        written=written,
        commit=commit,
    )


def default_local_remote(root: Path) -> Path:
    """A DVC remote folder outside the working tree, so one machine needs no set-up."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    digest = hashlib.sha1(str(root).encode(), usedforsecurity=False).hexdigest()[:8]
    return base / "gitreg" / "remotes" / f"{root.name}-{digest}"


def _remote_url(remote: str, root: Path) -> str:
    if "://" in remote:
        if not remote.startswith(("s3://", "gs://", "azure://", "http://", "https://", "ssh://")):
            raise UnsupportedRemote(remote)
        return remote
    p = Path(remote).expanduser()
    p = p if p.is_absolute() else (Path.cwd() / p)
    p = p.resolve()
    if p.is_relative_to(root):
        raise RemoteInsideRepository(str(p))
    return str(p)


def _ensure_lines(path: Path, lines: list[str]) -> bool:
    text = path.read_text() if path.exists() else ""
    present = set(text.splitlines())
    missing = [line for line in lines if line not in present]
    if not missing:
        return False
    if text and not text.endswith("\n"):
        text += "\n"
    atomic_write(path, (text + "\n".join(missing) + "\n").encode())
    return True
