"""The one exception tree of gitreg.

Every error carries a ``message`` (what is wrong) and a ``hint`` (how to fix it), and keeps
its inputs as attributes so that callers and tests can inspect them without parsing strings.
Only the CLI turns them into text.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Iterator
from contextlib import contextmanager


class GitregError(Exception):
    """Root of every error gitreg raises on purpose."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


#: errno -> (what happened, how to fix it); ``{where}`` is the path(s) concerned. The CLI's last
#: resort for a bare OSError (cli/error_table.py) words it the same way.
OS_FIXES: dict[int, tuple[str, str]] = {
    _errno.ENOSPC: ("no space left on device writing {where}", "free space or move the repository"),
    _errno.EDQUOT: ("disk quota exceeded writing {where}", "free space or raise the quota"),
    _errno.EACCES: ("permission denied: {where}", "check the owner and mode of the path (ls -ld)"),
    _errno.EPERM: ("operation not permitted: {where}", "check the owner and mode of the path (ls -ld)"),
    _errno.EROFS: ("read-only file system: {where}", "run it on a writable copy of the repository"),
    _errno.ENOENT: ("no such file or directory: {where}", "check the path"),
    _errno.ENOTDIR: ("not a directory: {where}", "check the path"),
    _errno.EISDIR: ("is a directory: {where}", "name a file"),
    _errno.EEXIST: ("already exists: {where}", "remove it or pick another name"),
    _errno.ENOTEMPTY: ("directory not empty: {where}", "remove its contents or pick another folder"),
    _errno.EMFILE: ("too many open files at {where}", "raise the limit (ulimit -n)"),
    _errno.EIO: ("input/output error at {where}", "the disk or network file system failed: check it"),
    _errno.ENAMETOOLONG: ("file name too long: {where}", "use a shorter path"),
}


def describe_os_error(errno: int | None, strerror: str | None, where: str) -> tuple[str, str]:
    """(message, hint) for an OSError of ``errno`` at ``where``."""
    what, fix = OS_FIXES.get(errno or -1, ("", ""))
    if what:
        return what.format(where=where), fix
    return f"{strerror or 'OS error'}: {where}", "check the path, its permissions and the disk"


class DiskError(GitregError):
    """Writing (or moving) ``path`` failed in the file system: ``errno`` says why (ENOSPC: the
    disk is full, EROFS, EACCES …). Raised where gitreg writes files, naming the file."""

    def __init__(self, path: str, errno: int | None, strerror: str | None = None) -> None:
        super().__init__(*describe_os_error(errno, strerror, path))
        self.path = path
        self.errno = errno
        self.strerror = strerror


class StorageFull(DiskError):
    """The disk (or the quota) is full: ENOSPC or EDQUOT."""


def disk_error(e: OSError, path: str) -> DiskError:
    """``e`` as a DiskError naming ``path`` (StorageFull for a full disk or quota)."""
    cls = StorageFull if e.errno in (_errno.ENOSPC, _errno.EDQUOT) else DiskError
    return cls(path, e.errno, e.strerror)


@contextmanager
def writing(path: str) -> Iterator[None]:
    """Turn an OSError raised in the block into a one-line :class:`DiskError` naming ``path``."""
    try:
        yield
    except OSError as e:
        raise disk_error(e, path) from None


class InvalidVersionName(GitregError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name!r} is not a version name",
            "versions look like v2025-07-06--18h51 (UTC), optionally with -2, -3, …",
        )
        self.name = name


class InvalidModelName(GitregError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name!r} is not a valid model name",
            "use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
        self.name = name


class InvalidReference(GitregError):
    """``text`` is no version reference; ``problem`` says which part."""

    def __init__(self, text: str, problem: str) -> None:
        shown = text if len(text) <= 80 else text[:77] + "..."
        super().__init__(
            f"{shown!r} is no version reference: {problem}",
            "name a version (v2025-07-06--18h51) or MODEL@STAGE: policy@production, policy@staging, "
            "policy@canary, policy@latest, policy@v2025-07-06--18h51",
        )
        self.text = text
        self.problem = problem


class EmptyStage(GitregError):
    """models.yaml (at ``where``) names no version of ``model`` for ``stage``."""

    def __init__(self, model: str, stage: str, where: str) -> None:
        super().__init__(
            f"{model} has no {stage} version in models.yaml ({where})",
            f"promote one: gitreg promote VERSION {stage}"
            if stage != "canary"
            else "start one: gitreg deploy VERSION --canary PCT",
        )
        self.model = model
        self.stage = stage
        self.where = where


class VersionNotFound(GitregError):
    def __init__(self, version: str, model: str | None = None) -> None:
        what = f"model {model!r} has no version {version!r}" if model else f"no version {version!r}"
        super().__init__(f"{what} in this registry", "run `gitreg list` to see the versions")
        self.version = version
        self.model = model


class NotAVersion(VersionNotFound):
    """A tag with a version's name that is not a whole gitreg version (foreign or broken)."""

    def __init__(self, version: str, reason: str) -> None:
        GitregError.__init__(
            self,
            f"tag {version} is not a gitreg version: {reason}",
            "`gitreg doctor` lists such tags; run `gitreg list` to see the versions",
        )
        self.version = version
        self.model: str | None = None
        self.reason = reason


class VersionExists(GitregError):
    def __init__(self, version: str) -> None:
        super().__init__(
            f"version {version} already exists",
            "versions are immutable: omit --version to get the next free name",
        )
        self.version = version


class ModelNotFound(GitregError):
    def __init__(self, model: str) -> None:
        super().__init__(f"no model {model!r} in this registry", "run `gitreg list` to see the models")
        self.model = model


class BundleError(GitregError):
    """A bundle folder that cannot be registered as it is."""

    def __init__(self, path: str, problem: str, hint: str) -> None:
        super().__init__(f"bundle {path}: {problem}", hint)
        self.path = path
        self.problem = problem


class MetadataError(GitregError):
    def __init__(self, source: str, problem: str) -> None:
        super().__init__(
            f"{source}: {problem}",
            "metadata.json needs at least algo (or algorithm), framework and created_at",
        )
        self.source = source
        self.problem = problem


class ManifestError(GitregError):
    def __init__(self, path: str, problem: str, hint: str = "", line: int | None = None) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {problem}", hint or "fix models.yaml (see `gitreg check`)")
        self.path = path
        self.problem = problem
        self.line = line


class MissingExtra(GitregError):
    """``what`` needs ``package``, an optional dependency that is not installed."""

    def __init__(self, package: str, what: str) -> None:
        from gitreg.version import DIST_NAME

        super().__init__(
            f"{what} needs {package}, which is not installed",
            f"pip install '{DIST_NAME}[{package}]' --extra-index-url https://download.pytorch.org/whl/cpu"
            if package == "torch"
            else f"pip install '{DIST_NAME}[{package}]'",
        )
        self.package = package
        self.what = what


class NotARegistry(GitregError):
    def __init__(self, path: str, problem: str = "is not a gitreg registry") -> None:
        super().__init__(f"{path} {problem}", "run `gitreg init` there, or pass -C PATH")
        self.path = path


class GitError(GitregError):
    """A git command that failed; ``command`` and ``stderr`` are kept."""

    def __init__(self, command: str, stderr: str, hint: str = "") -> None:
        lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
        said = [line for line in lines if line.startswith(("fatal:", "error:"))]
        first = (said or lines or ["failed"])[0]
        super().__init__(f"git {command}: {first}", hint or "see the git message above")
        self.command = command
        self.stderr = stderr


class DirtyWorkingTree(GitregError):
    def __init__(self, paths: list[str]) -> None:
        shown = ", ".join(paths[:3]) + (" …" if len(paths) > 3 else "")
        super().__init__(
            f"uncommitted changes in {shown}",
            "commit or stash them first (`git status` shows them)",
        )
        self.paths = paths


class RegistryLocked(GitregError):
    def __init__(self, lock_path: str, holder: str) -> None:
        super().__init__(
            f"another gitreg command holds the registry lock ({holder})",
            f"wait for it to finish; if no gitreg runs, remove {lock_path}",
        )
        self.lock_path = lock_path
        self.holder = holder


class StorageError(GitregError):
    """The DVC cache or remote could not store or return a bundle's bytes."""

    def __init__(self, problem: str, hint: str = "") -> None:
        super().__init__(problem, hint or "check the DVC remote (`dvc remote list`) and its credentials")
        self.problem = problem


class DigestMismatch(GitregError):
    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(
            f"{path}: md5 {actual} does not match its pointer ({expected})",
            "the stored bytes are corrupt or were replaced; nothing was written",
        )
        self.path = path
        self.expected = expected
        self.actual = actual


class OutputExists(GitregError):
    def __init__(self, path: str) -> None:
        super().__init__(f"{path} already exists and is not empty", "pass another --out, or remove it first")
        self.path = path


# -- refusals of the stage lifecycle -----------------------------------------------------------------
class UnknownStage(GitregError):
    """``stage`` is not one that ``action`` (promote, rollback) can move."""

    def __init__(self, stage: str, action: str = "promote") -> None:
        if action == "rollback":
            super().__init__(f"cannot roll back stage {stage!r}", "use production, staging or canary")
        else:
            super().__init__(
                f"unknown stage {stage!r}", "use staging, production or archived (or --canary PCT)"
            )
        self.stage = stage
        self.action = action


class StageRequired(GitregError):
    def __init__(self, version: str) -> None:
        super().__init__(
            "which stage?", f"gitreg promote {version} staging|production|archived, or --canary PCT"
        )
        self.version = version


class CanaryStageConflict(GitregError):
    def __init__(self, version: str, stage: str) -> None:
        super().__init__(
            "--canary goes with production (or no stage)", f"gitreg promote {version} --canary PCT"
        )
        self.version = version
        self.stage = stage


class BadTraffic(GitregError):
    def __init__(self, traffic: float) -> None:
        super().__init__(f"canary traffic {traffic:g} is not a percentage", "use 0 to 100")
        self.traffic = traffic


class VersionArchived(GitregError):
    """``version`` is archived: it can hold no stage (nor be rolled back to)."""

    def __init__(self, version: str, hint: str = "pick a version that is not archived") -> None:
        super().__init__(f"{version} is archived", hint)
        self.version = version


class NotValidated(GitregError):
    """``version`` has no passing validation record (``status``), which ``stage`` requires."""

    def __init__(self, version: str, status: str, stage: str = "production") -> None:
        super().__init__(
            f"{version} has no passing validation record ({status}), here or in the Git remote's notes",
            f"CI records one on tag push (refs/notes/gitreg, fetched by gitreg); "
            f"run `gitreg validate {version} --record`, or pass --force",
        )
        self.version = version
        self.status = status
        self.stage = stage


class ProductionVersion(GitregError):
    """Archiving ``version`` would leave ``model`` without its production version."""

    def __init__(self, version: str, model: str) -> None:
        super().__init__(
            f"{version} is the production version of {model}", "promote another version to production first"
        )
        self.version = version
        self.model = model


class WrongModel(GitregError):
    def __init__(self, version: str, model: str, expected: str) -> None:
        super().__init__(f"{version} is a version of {model}, not {expected}", "pick a version of this model")
        self.version = version
        self.model = model
        self.expected = expected


class AlreadyAtVersion(GitregError):
    def __init__(self, model: str, stage: str, version: str) -> None:
        super().__init__(f"{model} {stage} is already {version}", "nothing to roll back")
        self.model = model
        self.stage = stage
        self.version = version


class NoStageHistory(GitregError):
    """No commit ever changed ``stage`` of ``model``: nothing to roll back."""

    def __init__(self, model: str, stage: str) -> None:
        super().__init__(
            f"no commit ever changed the {stage} stage of {model}",
            f"set one explicitly: gitreg rollback {model} --stage {stage} --to VERSION",
        )
        self.model = model
        self.stage = stage


class ArchivedRollbackTarget(VersionArchived):
    """The version a rollback would restore (``stage`` before ``commit``) is archived."""

    def __init__(self, version: str, model: str, stage: str, commit: str) -> None:
        GitregError.__init__(
            self,
            f"{version}, the {stage} version before {commit[:12]}, is archived",
            f"pick another version: gitreg rollback {model} --stage {stage} --to VERSION",
        )
        self.version = version
        self.model = model
        self.stage = stage
        self.commit = commit


class PushRefused(GitregError):
    """The remote refused a direct models.yaml commit (it moved on); the commit was taken back."""

    def __init__(self, remote: str | None, branch: str, reason: str) -> None:
        super().__init__(
            f"push to {remote} refused, nothing changed ({reason})",
            f"another change reached {branch} first: git pull --rebase, then re-run",
        )
        self.remote = remote
        self.branch = branch
        self.reason = reason


class UnknownRevision(GitregError):
    def __init__(self, rev: str, flag: str = "--base") -> None:
        super().__init__(f"{flag} {rev}: no such revision", "fetch it first: git fetch origin")
        self.rev = rev
        self.flag = flag


# -- other refusals ----------------------------------------------------------------------------------
class NeedsWorkingTree(GitregError):
    def __init__(self, command: str) -> None:
        super().__init__(f"gitreg {command} needs a working tree", "run it in a clone of the registry")
        self.command = command


class ShallowClone(GitregError):
    """A shallow clone holds part of the history and tags: versions and stage changes would be
    answered wrongly (missing, or credited to the shallow boundary), so history readers refuse."""

    def __init__(self, path: str, command: str) -> None:
        super().__init__(
            f"{path} is a shallow clone: gitreg {command} needs the whole history and every tag",
            "run `git fetch --unshallow --tags` there first",
        )
        self.path = path
        self.command = command


class LineageDepthOutOfRange(GitregError):
    def __init__(self, depth: int, limit: int) -> None:
        super().__init__(f"lineage depth {depth} is out of range", f"use 1 to {limit} (--depth)")
        self.depth = depth
        self.limit = limit


class PartialPush(GitregError):
    """``done`` happened here, but pushing it to ``remote`` failed (``reason``)."""

    def __init__(self, done: str, remote: str, reason: str, hint: str) -> None:
        super().__init__(f"{done}, but the push to {remote} failed: {reason}", hint)
        self.done = done
        self.remote = remote
        self.reason = reason


class RemoteTagsNotDeleted(GitregError):
    def __init__(self, deleted: int, remote: str, reason: str) -> None:
        super().__init__(
            f"deleted {deleted} tags locally, but not on {remote}: {reason}",
            f"delete them there: git push {remote} --delete TAG …",
        )
        self.deleted = deleted
        self.remote = remote
        self.reason = reason


class ForgeError(GitregError):
    """``tool`` (gh, glab) could not open the pull request for ``branch`` (which is pushed)."""

    def __init__(self, tool: str, reason: str, branch: str, url: str | None) -> None:
        super().__init__(
            f"{tool} could not open the pull request: {reason}",
            f"the branch {branch} is pushed; open it by hand" + (f": {url}" if url else ""),
        )
        self.tool = tool
        self.reason = reason
        self.branch = branch
        self.url = url


class ArchitectureError(GitregError):
    """The architecture a state dict names cannot be used: malformed, not allow-listed, not
    importable, not a torch module, or the weights do not fit it (``spec``: the name, if any)."""

    def __init__(self, problem: str, spec: str | None = None) -> None:
        super().__init__(
            problem, "name an installed torch.nn.Module class that models.yaml policy.architectures allows"
        )
        self.problem = problem
        self.spec = spec


class NoGitRemote(GitregError):
    """A command asked to push (``flag``) in a repository without a Git remote."""

    def __init__(self, flag: str = "--push") -> None:
        super().__init__(f"{flag}: this repository has no Git remote", "add one: git remote add origin URL")
        self.flag = flag


class UnknownStatus(GitregError):
    def __init__(self, status: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"unknown status {status!r}", f"use one of: {', '.join(allowed)}")
        self.status = status
        self.allowed = allowed


class DetachedHead(GitregError):
    def __init__(self) -> None:
        super().__init__(
            "HEAD is detached", "check out the branch models.yaml lives on (e.g. git switch main)"
        )


class NoCommits(GitregError):
    def __init__(self) -> None:
        super().__init__("this repository has no commits yet", "run `gitreg init` first")


class UnknownCISystem(GitregError):
    def __init__(self, ci: str, choices: tuple[str, ...] = ("github", "gitlab", "none")) -> None:
        *first, last = choices
        super().__init__(f"unknown CI system {ci!r}", f"use --ci {', '.join(first)} or {last}")
        self.ci = ci
        self.choices = choices


class UnsupportedRemote(GitregError):
    def __init__(self, remote: str) -> None:
        super().__init__(f"unsupported remote {remote!r}", "use a folder path or s3://bucket/prefix")
        self.remote = remote


class RemoteInsideRepository(GitregError):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"remote {path} is inside the repository", "put the DVC remote folder outside the working tree"
        )
        self.path = path


class PushFailed(GitregError):
    """Registered locally, but the push of ``refspecs`` to ``remote`` failed."""

    def __init__(self, model: str, version: str, remote: str, refspecs: list[str], reason: str) -> None:
        super().__init__(
            f"registered {model} {version} locally, but the push failed: {reason}",
            f"push it when the remote is reachable: git push {remote} {' '.join(refspecs)}",
        )
        self.model = model
        self.version = version
        self.remote = remote
        self.refspecs = refspecs
        self.reason = reason


class TooFewVersions(GitregError):
    def __init__(self, count: int) -> None:
        super().__init__("compare needs at least two versions", "gitreg compare V1 V2 [V…]")
        self.count = count


class VersionNamedTwice(GitregError):
    def __init__(self, version: str) -> None:
        super().__init__("a version is named twice", "name each version once")
        self.version = version


class BadArchitectureName(GitregError):
    def __init__(self, spec: str, flag: str = "--allow-architecture") -> None:
        super().__init__(
            f"{flag} {spec!r} is not of the form pkg.module:ClassName",
            f"name a class, e.g. {flag} mypkg.nets:PolicyNet",
        )
        self.spec = spec
        self.flag = flag


class Rejected(GitregError):
    """The deploy agent will not load a version as it is (bad bytes, metadata, model, or the
    load policy): not retried until the manifest changes."""


class CacheFull(GitregError):
    """The bundle would push the agent's cache past --cache-max-bytes (or its disk) even after
    evicting every bundle not being served: retried on each sync."""
