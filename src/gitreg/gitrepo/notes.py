"""Validation notes from the remote: a plain ``git clone`` fetches no notes.

gitreg takes them in itself: ``refs/notes/gitreg`` is fast-forwarded to (or, when both moved,
merged with, local notes winning) the remote's copy in ``refs/notes/remotes/REMOTE/gitreg``.
The first time, the remote's fetch refspec is configured to bring that copy with every
``git fetch`` / ``git pull`` — as a pattern, so that a remote without notes yet matches nothing
instead of failing the fetch (an exact source must exist) — and it is fetched once. Nothing
here raises: a read command must not fail because the remote is away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitreg.gitrepo.process import run_git

if TYPE_CHECKING:
    from gitreg.gitrepo import GitRepo

NOTES_REF = "refs/notes/gitreg"


def notes_in_step(repo: GitRepo, refs: dict[str, str] | None = None) -> None:
    """Take in the notes the remote sent. ``refs``: the notes refs and their ids when the
    caller has read them (:meth:`GitRepo.version_tag_ids`), so that nothing changed costs no
    git call."""
    refs = notes_refs(repo) if refs is None else refs
    local = refs.get(NOTES_REF)
    tracking = {name: oid for name, oid in refs.items() if _is_tracking(name)}
    if not tracking:
        remote, specs = _remote_fetch_refspecs(repo)
        if remote is None or _fetch_glob(remote) in specs:
            return  # no remote, or configured already (it has no notes yet)
        run_git(["config", "--add", f"remote.{remote}.fetch", _fetch_glob(remote)], repo.root)
        fetch_notes(repo, remote)
        return
    for name, oid in sorted(tracking.items()):
        local = _take(repo, local, name, oid)


def fetch_notes(repo: GitRepo, remote: str) -> bool:
    """Fetch the remote's notes into their tracking ref now (``check`` and ``promote`` do when a
    version they need validated is not, here) and take them in; True when the local notes moved
    (False: the remote is away, has no notes, or none that are new here)."""
    tracking = f"refs/notes/remotes/{remote}/gitreg"
    # A plain git process, not GitPython: `gitreg list` on a fresh clone pays no import.
    fetched = run_git(["fetch", "-q", remote, f"+{NOTES_REF}:{tracking}"], repo.root, check=False)
    if fetched.returncode != 0:
        return False
    refs = notes_refs(repo)
    theirs = refs.get(tracking)
    if theirs is None:
        return False
    local = refs.get(NOTES_REF)
    return _take(repo, local, tracking, theirs) != local


def notes_refs(repo: GitRepo) -> dict[str, str]:
    """ref -> id of every ref under ``refs/notes/``: one git call."""
    fmt = "--format=%(refname) %(objectname)"
    proc = run_git(["for-each-ref", fmt, "refs/notes/"], repo.root, check=False)
    words = proc.stdout.decode(errors="replace").split()
    return dict(zip(words[::2], words[1::2], strict=True)) if proc.returncode == 0 else {}


def _fetch_glob(remote: str) -> str:
    return f"+{NOTES_REF}*:refs/notes/remotes/{remote}/gitreg*"


def _is_tracking(ref: str) -> bool:
    """``refs/notes/remotes/REMOTE/gitreg``: a remote's copy of the validation notes."""
    parts = ref.split("/")
    return len(parts) == 5 and parts[:3] == ["refs", "notes", "remotes"] and parts[4] == "gitreg"


def _remote_fetch_refspecs(repo: GitRepo) -> tuple[str | None, list[str]]:
    """The remote :meth:`GitRepo.remote_name` picks and its fetch refspecs: one git call."""
    from gitreg.gitrepo import pick_remote

    proc = run_git(["config", "--get-regexp", r"^remote\..*\.(url|fetch)$"], repo.root, check=False)
    specs: dict[str, list[str]] = {}
    for line in proc.stdout.decode(errors="replace").splitlines():
        key, _, value = line.partition(" ")
        name, _, kind = key.removeprefix("remote.").rpartition(".")
        specs.setdefault(name, [])
        if kind == "fetch":
            specs[name].append(value.strip())
    remote = pick_remote(list(specs))
    return remote, specs.get(remote, []) if remote else []


def _take(repo: GitRepo, local: str | None, ref: str, theirs: str) -> str | None:
    """Bring ``NOTES_REF`` (at ``local``) up to ``theirs``; the new local id."""
    if local == theirs or (local is not None and _is_ancestor(repo, theirs, local)):
        return local
    if local is None or _is_ancestor(repo, local, theirs):  # compare-and-swap: a racing writer wins
        moved = run_git(["update-ref", NOTES_REF, theirs, local or ""], repo.root, check=False)
        return theirs if moved.returncode == 0 else local
    # Both moved (a record made here, others there): merge, keeping ours where both annotate.
    run_git(["notes", f"--ref={NOTES_REF}", "merge", "-q", "-s", "ours", ref], repo.root, check=False)
    return repo.rev_parse(NOTES_REF)


def _is_ancestor(repo: GitRepo, a: str, b: str) -> bool:
    return run_git(["merge-base", "--is-ancestor", a, b], repo.root, check=False).returncode == 0
