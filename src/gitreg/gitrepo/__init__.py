"""The only package that runs git.

Reads are batched so that listing stays fast at any number of versions: one
``git for-each-ref`` for every version tag with its message, one ``git notes list`` plus one
``git cat-file --batch`` for every validation record. Local commands run through ``run_git``
(a plain subprocess: importing GitPython alone costs more than listing 10,000 tags); clone,
fetch and push go through GitPython (:mod:`gitreg.gitrepo.transport`, imported on first use)
for its progress reports and typed errors. What git prints is parsed in
:mod:`gitreg.gitrepo.parse` (pure); the notes a remote sends are taken in by
:mod:`gitreg.gitrepo.notes`. Only plain dataclasses leave here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gitreg.errors import GitError, NotARegistry
from gitreg.gitrepo.credentials import GitAuth, login_error, split_url
from gitreg.gitrepo.notes import NOTES_REF
from gitreg.gitrepo.parse import (
    LOG_FORMAT,
    TAG_FIELDS,
    TAG_FORMAT,
    CommitRecord,
    SignatureCheck,
    TagRecord,
    TransferProgress,
    TreeEntry,
    git_reason,
    parse_log,
    parse_ls_remote_tags,
    parse_ls_tree,
    parse_note_ids,
    parse_signer,
    parse_status_paths,
    parse_tag_records,
    signature_format,
)
from gitreg.gitrepo.process import ObjectReader, _env, run_git

if TYPE_CHECKING:
    from gitreg.gitrepo.transport import ProgressCallback

__all__ = [
    "NOTES_REF",
    "CommitRecord",
    "GitAuth",
    "GitRepo",
    "ObjectReader",
    "SignatureCheck",
    "TagRecord",
    "TransferProgress",
    "TreeEntry",
    "find_root",
    "run_git",
]

_TAG_GLOB = "refs/tags/v[0-9][0-9][0-9][0-9]-*"
_FIELDS = TAG_FIELDS  # the names benchmarks/list_whatif.py reads
_FORMAT = TAG_FORMAT


def pick_remote(names: Sequence[str]) -> str | None:
    """The remote gitreg talks to: ``origin``, else the first one; None without any."""
    if not names:
        return None
    return "origin" if "origin" in names else sorted(names)[0]


def find_root(path: Path) -> Path | None:
    """The working tree's top folder, or a bare repository's own folder; None outside Git."""
    return _probe(path)[0]


def _probe(path: Path) -> tuple[Path | None, bool | None]:
    """(:func:`find_root`, whether the repository is shallow — None when not asked) in one git
    call for a working tree, the usual case."""
    proc = run_git(["rev-parse", "--is-shallow-repository", "--show-toplevel"], path, check=False)
    lines = proc.stdout.decode().splitlines()
    if proc.returncode == 0 and len(lines) == 2 and lines[1].strip():
        return Path(lines[1].strip()), lines[0] == "true"
    proc = run_git(["rev-parse", "--is-bare-repository", "--absolute-git-dir"], path, check=False)
    lines = proc.stdout.decode().split()
    if proc.returncode == 0 and lines[:1] == ["true"]:
        return Path(lines[1]), None
    return None, None


def _auth_env(url: str, auth: GitAuth | None) -> dict[str, str]:
    """git's environment for a transfer from ``url``, with ``auth``'s credential helper."""
    env = _env()
    if auth is not None:
        env.update(auth.git_env(url, env))
    return env


class GitRepo:
    """A working-tree Git repository (the registry repo)."""

    def __init__(self, path: Path | str) -> None:
        p = Path(path)
        if not p.is_dir():
            raise NotARegistry(str(path), "does not exist")
        root, self._shallow = _probe(p)  # shallow: as git said when asked for the root
        if root is None:
            raise NotARegistry(str(path), "is not inside a Git repository")
        self.root = root

    @property
    def bare(self) -> bool:
        return run_git(["rev-parse", "--is-bare-repository"], self.root).stdout.strip() == b"true"

    @classmethod
    def mirror(
        cls,
        url: str,
        path: Path,
        *,
        progress: ProgressCallback | None = None,
        auth: GitAuth | None = None,
        blob_filter: bool = False,
    ) -> GitRepo:
        """A bare mirror of ``url`` at ``path`` (cloned the first time, through GitPython;
        ``progress`` gets git's progress reports while it clones). ``auth``: the token git
        answers the server with (:mod:`gitreg.gitrepo.credentials`); a password inside ``url``
        is used the same way and never written into the mirror's config. ``blob_filter``: a
        partial clone (``--filter=blob:none``): blobs come over when read (a server that does not
        allow filters sends everything, as git itself does)."""
        clean, url_auth = split_url(url)
        auth = auth or url_auth
        if not (path / "HEAD").exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".cloning")
            if tmp.exists():
                import shutil

                shutil.rmtree(tmp)
            from gitreg.gitrepo import transport

            try:
                transport.clone_mirror(clean, tmp, _auth_env(clean, auth), progress, blob_filter=blob_filter)
            except GitError as e:
                raise login_error(e, auth) from None
            tmp.rename(path)
        return cls(path)

    def fetch_mirror(self, *, progress: ProgressCallback | None = None, auth: GitAuth | None = None) -> None:
        """Bring every ref of a mirror (branches, tags, notes) in step with its origin, with
        ``auth``'s token if given. A mirror whose origin URL holds a password (cloned so by an
        older gitreg or by hand) has it taken out of its config first, and still uses it."""
        from gitreg.gitrepo import transport

        url = self.config_get("remote.origin.url") or ""
        clean, url_auth = split_url(url)
        if clean != url:
            run_git(["config", "remote.origin.url", clean], self.root)
        auth = auth or url_auth
        try:
            transport.fetch(self.root, "origin", [], _auth_env(clean, auth), progress, prune=True, force=True)
        except GitError as e:
            raise login_error(e, auth) from None

    @classmethod
    def init(cls, path: Path) -> GitRepo:
        path.mkdir(parents=True, exist_ok=True)
        run_git(["init", "-q"], path)
        return cls(path)

    @property
    def git_dir(self) -> Path:
        out = run_git(["rev-parse", "--absolute-git-dir"], self.root).stdout.decode().strip()
        return Path(out)

    def _git(self, *args: str, input: bytes | None = None) -> str:
        return run_git(args, self.root, input=input).stdout.decode()

    # -- batched reads (the list/show/compare path) ------------------------------------------
    def version_tags(self) -> list[TagRecord]:
        """Every tag whose name starts like a version, with its message: one git call."""
        out = run_git(["for-each-ref", f"--format={TAG_FORMAT}", _TAG_GLOB], self.root).stdout
        return parse_tag_records(out.decode(errors="replace"))

    def tag(self, name: str) -> TagRecord | None:
        out = run_git(["for-each-ref", f"--format={TAG_FORMAT}", f"refs/tags/{name}"], self.root).stdout
        records = parse_tag_records(out.decode(errors="replace"))
        return records[0] if records else None

    def notes(self, ref: str = NOTES_REF) -> dict[str, str]:
        """object id -> note text for every note under ``ref``: two git calls in all."""
        ids = self.note_ids(ref)
        blobs = self.read_objects(ids.values())
        return {target: blobs[note].decode(errors="replace") for target, note in ids.items() if note in blobs}

    def note_for(self, obj: str, ref: str = NOTES_REF) -> str | None:
        proc = run_git(["notes", f"--ref={ref}", "show", obj], self.root, check=False)
        return proc.stdout.decode(errors="replace") if proc.returncode == 0 else None

    def version_tag_ids(self) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """(name, object id) of every tag whose name starts like a version, and (ref, id) of
        every notes ref (what :func:`gitreg.gitrepo.notes.notes_in_step` needs): one cheap git
        call (no object is read: the ids key the list cache, which holds what the objects say)."""
        out = run_git(
            ["for-each-ref", "--format=%(refname) %(objectname)", _TAG_GLOB, "refs/notes/"], self.root
        )
        words = out.stdout.decode(errors="replace").split()  # a ref name holds no whitespace
        pairs = list(zip(words[::2], words[1::2], strict=True))
        tags = [(ref.removeprefix("refs/tags/"), oid) for ref, oid in pairs if ref.startswith("refs/tags/")]
        return tags, {ref: oid for ref, oid in pairs if ref.startswith("refs/notes/")}

    def note_ids(self, ref: str = NOTES_REF) -> dict[str, str]:
        """annotated object id -> note blob id for every note under ``ref``: one git call."""
        proc = run_git(["notes", f"--ref={ref}", "list"], self.root, check=False)
        if proc.returncode != 0:
            return {}
        return parse_note_ids(proc.stdout.decode())

    def object_reader(self) -> ObjectReader:
        """Objects read on demand, in rounds, through one ``git cat-file --batch`` process."""
        return ObjectReader(self.root)

    def read_objects(self, shas: Iterable[str]) -> dict[str, bytes]:
        """Object contents for many ids in one ``git cat-file --batch``; missing ones left out."""
        with self.object_reader() as reader:
            return {sha: data for sha, (_, data) in reader.read(list(shas)).items()}

    def warm_blobs(self, rev: str, paths: Sequence[str]) -> None:
        """Make the blobs under ``paths`` at ``rev`` local. In a partial clone (``--repo``'s
        blob-filtered mirror) git fetches missing blobs as it reads them; readers that cannot
        (DVC's pygit2 waits for ever) then find them. Elsewhere: a cheap no-op read."""
        proc = run_git(["ls-tree", "-r", "-z", rev, "--", *paths], self.root, check=False)
        entries = parse_ls_tree(proc.stdout.decode()) if proc.returncode == 0 else []
        if entries:
            self.read_objects(e.sha for e in entries)

    def read_file(self, rev: str, path: str) -> bytes | None:
        """A file's bytes at a revision, or None when it is not there."""
        out = self.read_objects([f"{rev}:{path}"])
        return out.get(f"{rev}:{path}")

    def list_tree(self, rev: str, path: str) -> list[TreeEntry]:
        proc = run_git(["ls-tree", "-r", "-z", rev, "--", path.rstrip("/") + "/"], self.root, check=False)
        return parse_ls_tree(proc.stdout.decode()) if proc.returncode == 0 else []

    def rev_parse(self, rev: str) -> str | None:
        proc = run_git(["rev-parse", "--verify", "-q", f"{rev}^{{commit}}"], self.root, check=False)
        return proc.stdout.decode().strip() or None

    def is_shallow(self) -> bool:
        """A shallow clone (``git clone --depth``): part of the history and tags is missing.
        Told by the call that found the root, once; asked of git again after that."""
        shallow, self._shallow = self._shallow, None
        if shallow is not None:
            return shallow
        proc = run_git(["rev-parse", "--is-shallow-repository"], self.root, check=False)
        return proc.stdout.decode().strip() == "true"

    # -- working tree ------------------------------------------------------------------------
    def has_commits(self) -> bool:
        return self.rev_parse("HEAD") is not None

    def current_branch(self) -> str | None:
        proc = run_git(["symbolic-ref", "-q", "--short", "HEAD"], self.root, check=False)
        return proc.stdout.decode().strip() or None

    def changed_paths(self, paths: Sequence[str]) -> list[str]:
        """Paths (under ``paths``) with staged, unstaged or untracked changes."""
        out = run_git(
            ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *paths], self.root
        ).stdout.decode()
        return parse_status_paths(out)

    def restore(self, paths: Sequence[str]) -> None:
        """Put ``paths`` back as HEAD has them: undo edits, remove files HEAD lacks."""
        existing = [p for p in paths if (self.root / p).exists() or self._in_head(p)]
        if not existing:
            return
        if self.has_commits():
            run_git(["reset", "-q", "HEAD", "--", *existing], self.root, check=False)
            tracked = [p for p in existing if self._in_head(p)]
            if tracked:
                run_git(["checkout", "-q", "HEAD", "--", *tracked], self.root, check=False)
        run_git(["clean", "-q", "-f", "-d", "-x", "--", *existing], self.root, check=False)

    def staged_paths(self, paths: Sequence[str]) -> list[str]:
        """Paths (under ``paths``) whose index entry differs from HEAD's; reads only (``git
        diff --cached``), so it works on a full disk."""
        if not self.has_commits():
            proc = run_git(["ls-files", "-z", "--", *paths], self.root, check=False)
        else:
            proc = run_git(
                ["diff", "--cached", "--name-only", "-z", "HEAD", "--", *paths], self.root, check=False
            )
        return [p for p in proc.stdout.decode().split("\0") if p]

    def unstage(self, paths: Sequence[str]) -> None:
        if self.has_commits():
            run_git(["reset", "-q", "HEAD", "--", *paths], self.root, check=False)
        else:
            run_git(["rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", *paths], self.root, check=False)

    def reset_last_commit(self, commit: str) -> None:
        """Undo our own just-made commit (kept in the index), if it is still HEAD."""
        if self.rev_parse("HEAD") != commit:
            return
        if self.rev_parse(f"{commit}~1"):
            run_git(["reset", "-q", "--soft", f"{commit}~1"], self.root)
        else:
            run_git(["update-ref", "-d", "HEAD"], self.root)

    def _in_head(self, path: str) -> bool:
        if not self.has_commits():
            return False
        proc = run_git(["ls-tree", "--name-only", "HEAD", "--", path], self.root, check=False)
        return bool(proc.stdout.strip())

    def ident(self) -> str:
        proc = run_git(["var", "GIT_COMMITTER_IDENT"], self.root, check=False)
        if proc.returncode != 0:
            raise GitError(
                "var",
                proc.stderr.decode(errors="replace"),
                'set an identity: git config user.name "You" && git config user.email you@example.com',
            )
        ident = proc.stdout.decode().strip()
        return ident.rsplit(">", 1)[0] + ">"

    # -- writes ------------------------------------------------------------------------------
    def commit_paths(self, paths: Sequence[str], message: str, *, allow_empty: bool = False) -> str:
        """Stage ``paths`` (additions, edits and deletions) and commit only them."""
        run_git(["add", "-A", "--", *paths], self.root)
        args = ["commit", "-q", "--no-verify", "-F", "-"]
        if allow_empty:
            args.append("--allow-empty")
        if self.has_commits():
            args += ["--only", "--", *paths]
        run_git(args, self.root, input=message.encode())
        sha = self.rev_parse("HEAD")
        assert sha is not None
        return sha

    def create_tag(self, name: str, commit: str, message: str, *, sign: bool = False) -> None:
        args = ["tag", "-a", "--cleanup=verbatim", "-F", "-", name, commit]
        if sign:
            args.insert(1, "-s")
        proc = run_git(args, self.root, input=message.encode())
        if sign:
            # git (2.39) can exit 0 with an unsigned tag when the SSH key cannot be loaded.
            raw = run_git(["cat-file", "tag", f"refs/tags/{name}"], self.root, check=False).stdout
            if not any(f"\n-----BEGIN {kind} SIGNATURE-----".encode() in raw for kind in ("SSH", "PGP")):
                self.delete_tag(name)
                said = proc.stderr.decode(errors="replace").strip() or "no signature was made"
                raise GitError(
                    "tag -s",
                    said if said.startswith(("error:", "fatal:")) else f"error: {said}",
                    "check your signing set-up: git config gpg.format (ssh or openpgp) and user.signingkey",
                )

    def verify_tag(self, name: str) -> tuple[bool, str]:
        """(whether ``git verify-tag`` accepts the tag's signature, git's reason when it does
        not). An unsigned tag, a bad signature or an unknown key is refused; which keys are
        trusted is git's configuration (gpg keyring, ``gpg.ssh.allowedSignersFile``)."""
        proc = run_git(["verify-tag", f"refs/tags/{name}"], self.root, check=False)
        if proc.returncode == 0:
            return True, ""
        return False, git_reason(proc.stderr.decode(errors="replace"), "no valid signature")

    def tag_signature(self, name: str, allowed_signers: Path | None = None) -> SignatureCheck:
        """Who signed the tag ``name`` and whether git verifies it (``git verify-tag``; SSH keys
        are trusted through ``gpg.ssh.allowedSignersFile``, here or given as ``allowed_signers``)."""
        args = ["verify-tag", "-v", f"refs/tags/{name}"]
        if allowed_signers is not None:
            args = ["-c", f"gpg.ssh.allowedSignersFile={allowed_signers}", *args]
        proc = run_git(args, self.root, check=False)
        text = proc.stderr.decode(errors="replace") + proc.stdout.decode(errors="replace")
        raw = run_git(["cat-file", "tag", f"refs/tags/{name}"], self.root, check=False).stdout
        signer, said_fmt = parse_signer(text)
        fmt = said_fmt or signature_format(raw)
        if proc.returncode == 0:
            return SignatureCheck(signed=True, verified=True, signer=signer, format=fmt, reason="")
        reason = git_reason(proc.stderr.decode(errors="replace"), "no valid signature")
        return SignatureCheck(
            signed=fmt is not None, verified=False, signer=signer, format=fmt, reason=reason
        )

    def remote_tags(self, remote: str) -> set[str] | None:
        """Tag names on ``remote`` (one ``git ls-remote``), or None when it cannot be reached."""
        proc = run_git(["ls-remote", "--tags", "--refs", remote], self.root, check=False)
        return parse_ls_remote_tags(proc.stdout.decode()) if proc.returncode == 0 else None

    def commits_with_subject(self, prefix: str, rev: str = "HEAD") -> list[tuple[str, str]]:
        """(sha, subject) of commits on ``rev`` whose subject starts with ``prefix``: one git call."""
        proc = run_git(
            ["log", "--format=%H%x00%s", "--fixed-strings", f"--grep={prefix}", rev, "--"],
            self.root,
            check=False,
        )
        out = []
        for line in proc.stdout.decode(errors="replace").splitlines():
            sha, _, subject = line.partition("\0")
            if subject.startswith(prefix):
                out.append((sha, subject))
        return out

    def delete_tag(self, name: str) -> None:
        run_git(["tag", "-d", name], self.root, check=False)

    def delete_tags(self, names: Sequence[str]) -> list[str]:
        """Delete these local tags (a few git calls for any number); returns those deleted."""
        have = set(self._git("tag", "--list").split())
        todo = [n for n in dict.fromkeys(names) if n in have]
        for i in range(0, len(todo), 500):
            run_git(["tag", "-d", *todo[i : i + 500]], self.root)
        return todo

    def delete_remote_tags(
        self, remote: str, names: Sequence[str], *, progress: ProgressCallback | None = None
    ) -> list[str]:
        """Delete these tags on ``remote`` (those it has: deleting a missing ref fails a push);
        returns those deleted."""
        out = run_git(["ls-remote", "--tags", "--refs", remote], self.root).stdout.decode()
        have = parse_ls_remote_tags(out)
        todo = [n for n in dict.fromkeys(names) if n in have]
        for i in range(0, len(todo), 500):
            self.push(remote, [f":refs/tags/{n}" for n in todo[i : i + 500]], progress=progress)
        return todo

    def add_note(self, obj: str, text: str, ref: str = NOTES_REF) -> None:
        run_git(["notes", f"--ref={ref}", "add", "-f", "-F", "-", obj], self.root, input=text.encode())

    def remote_name(self) -> str | None:
        return pick_remote(self._git("remote").split())

    def remote_url(self, name: str) -> str | None:
        """The URL as configured (before insteadOf rewrites): what tells GitHub from GitLab."""
        return self.config_get(f"remote.{name}.url")

    def push(
        self,
        remote: str,
        refspecs: Sequence[str],
        *,
        progress: ProgressCallback | None = None,
        atomic: bool = False,
    ) -> None:
        """``git push`` (through GitPython): a refused ref or an unreachable remote raises
        GitError with git's words; ``progress`` gets git's progress reports; ``atomic``: all
        refspecs land or none does."""
        from gitreg.gitrepo import transport

        transport.push(self.root, remote, refspecs, _env(), progress, atomic=atomic)

    def remote_tag_ids(self, remote: str) -> dict[str, str] | None:
        """Tag name -> the object its ref names on ``remote`` (one ``git ls-remote``), or None
        when it cannot be reached."""
        proc = run_git(["ls-remote", "--tags", "--refs", remote], self.root, check=False)
        if proc.returncode != 0:
            return None
        out = {}
        for line in proc.stdout.decode().splitlines():
            sha, _, ref = line.partition("\t")
            if ref.startswith("refs/tags/"):
                out[ref.removeprefix("refs/tags/")] = sha
        return out

    def replant(self, base: str, source: str, folder: str, files: dict[str, bytes], message: str) -> str:
        """A commit on top of ``base`` whose tree is ``base``'s with ``folder`` replaced by
        ``source``'s and ``files`` written, built with a private index (working tree, real
        index and refs untouched); its sha."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="gitreg-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            run_git(["read-tree", base], self.root, env=env)
            run_git(
                ["rm", "-r", "-q", "-f", "--cached", "--ignore-unmatch", "--", folder], self.root, env=env
            )
            if self.list_tree(source, folder):
                run_git(["read-tree", f"--prefix={folder}/", f"{source}:{folder}"], self.root, env=env)
            for path, content in files.items():
                blob = self._git("hash-object", "-w", "--stdin", input=content).strip()
                run_git(["update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"], self.root, env=env)
            tree = run_git(["write-tree"], self.root, env=env).stdout.decode().strip()
        return self._git("commit-tree", tree, "-p", base, "-F", "-", input=message.encode()).strip()

    def move_head(self, commit: str) -> None:
        """Move the current branch (and the index and working tree, keeping local edits that
        do not collide) to ``commit``: ``git reset --keep``."""
        run_git(["reset", "-q", "--keep", commit], self.root)

    def fetch(
        self, remote: str, refspecs: Sequence[str], *, progress: ProgressCallback | None = None
    ) -> None:
        """``git fetch remote refspecs`` (through GitPython, like :meth:`push`)."""
        from gitreg.gitrepo import transport

        transport.fetch(self.root, remote, refspecs, _env(), progress)

    def push_notes(
        self, remote: str, ref: str = NOTES_REF, *, progress: ProgressCallback | None = None
    ) -> None:
        """Push the notes ref, merging the remote's notes first when someone else pushed."""
        try:
            self.push(remote, [f"{ref}:{ref}"], progress=progress)
            return
        except GitError:
            pass
        tmp = f"{ref}-remote"
        self.fetch(remote, [f"+{ref}:{tmp}"], progress=progress)
        run_git(["notes", f"--ref={ref}", "merge", "-q", "-s", "ours", tmp], self.root)
        run_git(["update-ref", "-d", tmp], self.root, check=False)
        self.push(remote, [f"{ref}:{ref}"], progress=progress)

    # -- branches and commits without touching the working tree -------------------------------
    def commit_file(
        self,
        base: str,
        path: str,
        content: bytes,
        message: str,
        *,
        branch: str,
        create: bool,
    ) -> str:
        """Commit ``content`` as ``path`` on top of ``base`` and move ``branch`` there, with a
        private index: the working tree, the real index and HEAD stay as they are.
        ``create`` refuses an existing branch; otherwise the branch must still be at ``base``
        (compare-and-swap, so a concurrent change is never overwritten)."""
        import tempfile

        blob = self._git("hash-object", "-w", "--stdin", input=content).strip()
        with tempfile.TemporaryDirectory(prefix="gitreg-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            run_git(["read-tree", base], self.root, env=env)
            run_git(["update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"], self.root, env=env)
            tree = run_git(["write-tree"], self.root, env=env).stdout.decode().strip()
        commit = self._git("commit-tree", tree, "-p", base, "-F", "-", input=message.encode()).strip()
        old = "" if create else base
        proc = run_git(["update-ref", f"refs/heads/{branch}", commit, old], self.root, check=False)
        if proc.returncode != 0:
            raise GitError(
                "update-ref",
                proc.stderr.decode(errors="replace"),
                f"branch {branch} exists already (delete it: git branch -D {branch})"
                if create
                else f"{branch} moved while gitreg worked; re-run the command",
            )
        return commit

    def _log(self, args: Sequence[str]) -> list[CommitRecord]:
        """``git log`` with ``args`` parsed into records, newest first; [] when git refuses."""
        proc = run_git(["log", f"--format={LOG_FORMAT}", *args], self.root, check=False)
        return parse_log(proc.stdout.decode(errors="replace")) if proc.returncode == 0 else []

    def log_file(self, rev: str, path: str) -> list[CommitRecord]:
        """Commits reachable from ``rev`` that touched ``path``, newest first: one git call."""
        return self._log([rev, "--", path])

    def merge_that_brought(self, commit: str, rev: str = "HEAD") -> CommitRecord | None:
        """The oldest merge on ``rev``'s first-parent line that has ``commit`` in its history."""
        merges = self._log(["--merges", "--first-parent", "--ancestry-path", f"{commit}..{rev}"])
        return merges[-1] if merges else None

    def first_parent_line(self, rev: str = "HEAD") -> set[str]:
        proc = run_git(["rev-list", "--first-parent", rev], self.root, check=False)
        return set(proc.stdout.decode().split())

    def changed_files(self, commit: str) -> list[str]:
        """Paths a (non-merge) commit changed against its first parent."""
        proc = run_git(
            ["diff-tree", "--no-commit-id", "--name-only", "-r", "-z", "--root", commit], self.root
        )
        return sorted(p for p in proc.stdout.decode().split("\0") if p)

    def commit_message(self, commit: str) -> str:
        return self._git("log", "-1", "--format=%B", commit)

    def delete_branch(self, branch: str) -> None:
        run_git(["branch", "-D", branch], self.root, check=False)

    def merge_texts(self, ours: bytes, base: bytes, theirs: bytes) -> bytes | None:
        """Three-way merge of one file's contents (``git merge-file``): the result, or None on
        a conflict. Reverting a commit C that changed only this file is
        ``merge_texts(current, C's version, C^'s version)``: what ``git revert`` computes,
        without a working tree."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="gitreg-merge-") as tmp:
            files = []
            for name, data in (("ours", ours), ("base", base), ("theirs", theirs)):
                f = Path(tmp) / name
                f.write_bytes(data)
                files.append(str(f))
            proc = run_git(["merge-file", "-p", "-q", *files], self.root, check=False)
        return proc.stdout if proc.returncode == 0 else None

    def stage(self, paths: Sequence[str]) -> None:
        """``git add`` ``paths`` into the real index (an atomic lock-and-rename in git)."""
        run_git(["add", "-A", "--", *paths], self.root)

    def index_blob(self, path: str) -> str | None:
        """The blob id the index holds for ``path``, or None."""
        out = run_git(["ls-files", "-s", "-z", "--", path], self.root, check=False).stdout.decode()
        first = out.split("\0", 1)[0]
        return first.split()[1] if first else None

    @staticmethod
    def blob_id(data: bytes) -> str:
        """The id git gives ``data`` as a blob (what ``git hash-object`` prints)."""
        import hashlib

        return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()

    def move_branch(self, branch: str, new: str, old: str) -> None:
        """Compare-and-swap ``branch`` from ``old`` to ``new``."""
        proc = run_git(["update-ref", f"refs/heads/{branch}", new, old], self.root, check=False)
        if proc.returncode != 0:
            raise GitError(
                "update-ref", proc.stderr.decode(errors="replace"), f"{branch} moved; re-run the command"
            )

    def config_get(self, key: str) -> str | None:
        proc = run_git(["config", "--get", key], self.root, check=False)
        return proc.stdout.decode().strip() or None

    def raw(self, *args: str) -> str:
        """Escape hatch for tests and diagnostics: run git here and return stdout."""
        return self._git(*args)
