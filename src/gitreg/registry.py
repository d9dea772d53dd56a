"""Registry: the public Python API. Composes versions, manifest, metadata, Git and DVC.

Returns pydantic models, never prints. Every mutating call is ordered so that a failure leaves
the repository as it was: bytes are uploaded before anything is committed or tagged, the
working tree is restored on any error, and a tag exists only once its bytes are on the remote.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import operator
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from gitreg import manifest as mf
from gitreg.errors import (
    BundleError,
    DirtyWorkingTree,
    GitError,
    GitregError,
    MetadataError,
    ModelNotFound,
    NotARegistry,
    OutputExists,
    RegistryLocked,
    StorageError,
    VersionExists,
    VersionNotFound,
)
from gitreg.gitrepo import GitRepo, TagRecord, find_root
from gitreg.metadata import (
    MAX_METADATA_BYTES,
    CheckResult,
    FileDigest,
    TagSummary,
    ValidationRecord,
    format_tag_message,
    parse_metadata,
    parse_tag_message,
    parse_validation_note,
    summary_from,
)
from gitreg.versions import check_model_name, is_version, next_free, parse_version

if TYPE_CHECKING:  # imported where used: `gitreg list` needs none of them
    from gitreg import lifecycle, retention
    from gitreg import report as reporting
    from gitreg.gitrepo import ObjectReader

Clock = Callable[[], datetime]
Status = Literal["registered", "validated", "failed"]
STATUSES: tuple[str, ...] = ("registered", "validated", "failed")
CI_CHOICES = ("github", "gitlab", "none")
PULL_GLOB = "/v[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]--*/"


def _utcnow() -> datetime:
    return datetime.now(UTC)


CRASH_POINTS = ("locked", "stashed", "copied", "tracked", "uploaded", "committed", "tagged", "done")


def _checkpoint(point: str) -> None:
    """Crash-test hook: ``GITREG_TEST_CRASH_AT=<point>`` SIGKILLs this process at ``point``
    (one of CRASH_POINTS), so tests can check that `gitreg doctor` repairs every state."""
    if os.environ.get("GITREG_TEST_CRASH_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


# -- results -----------------------------------------------------------------------------------
class Lineage(BaseModel):
    data_version: str | None = None
    code_commit: str | None = None
    parent: str | None = None


class SignatureInfo(BaseModel):
    signed: bool
    verified: bool
    signer: str | None = None
    format: str | None = None
    reason: str = ""


class VersionInfo(BaseModel):
    version: str
    model: str
    algorithm: str
    framework: str
    created_at: datetime
    registered_at: datetime
    registered_by: str
    status: Status
    stages: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    files: list[FileDigest] = Field(default_factory=list)
    message: str = ""
    commit: str = ""
    tag_object: str = ""
    lineage: Lineage = Field(default_factory=Lineage)
    description: str | None = None
    env_id: str | None = None
    input_shape: list[int] | None = None
    architecture: str | None = None
    validation: ValidationRecord | None = None
    signature: SignatureInfo | None = None  # filled by Registry.signature (gitreg show), not listing


class InitResult(BaseModel):
    root: str
    changed: bool
    created_git: bool
    remote_url: str
    written: list[str] = Field(default_factory=list)
    commit: str | None = None


class RegisterResult(BaseModel):
    version: str
    model: str
    commit: str
    files: list[FileDigest]
    uploaded: int
    pushed: bool
    remote: str | None = None


class MetricRow(BaseModel):
    name: str
    values: dict[str, float | None]
    direction: Literal["higher", "lower"] | None
    winner: str | None


class ParameterRow(BaseModel):
    name: str
    values: dict[str, Any]
    differs: bool


class Comparison(BaseModel):
    versions: list[str]
    models: dict[str, str]
    metrics: list[MetricRow]
    parameters: list[ParameterRow]


class PullResult(BaseModel):
    version: str
    model: str
    out: str
    files: list[FileDigest]


# -- the registry --------------------------------------------------------------------------------
class Registry:
    """A gitreg registry: a Git repository with DVC and a models.yaml."""

    def __init__(self, path: Path | str = ".", *, clock: Clock | None = None) -> None:
        self.git = GitRepo(path)
        self.root = self.git.root
        self.clock: Clock = clock or _utcnow
        self._manifest: mf.Manifest | None = None
        # A bare repository (the deploy agent's mirror) has no working tree: root is the git dir.
        self.bare = not (self.root / ".git").exists()

    # -- init ------------------------------------------------------------------------------------
    @classmethod
    def init(
        cls,
        path: Path | str = ".",
        *,
        remote: str | None = None,
        endpoint_url: str | None = None,
        ci: str = "github",
    ) -> InitResult:
        from gitreg import templates
        from gitreg.bundles import DvcStore

        if ci not in CI_CHOICES:
            raise GitregError(f"unknown CI system {ci!r}", "use --ci github, gitlab or none")
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
            mf.atomic_write(manifest_path, mf.new_manifest_text().encode())
            written.append(mf.MANIFEST_FILE)
        else:
            mf.load(manifest_path)  # refuse to build on a broken manifest
        if _ensure_lines(root / ".gitignore", [PULL_GLOB, "/.gitreg/"]):
            written.append(".gitignore")
        for rel, text in templates.files_for(ci):
            dest = root / rel
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                mf.atomic_write(dest, text.encode())
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

    # -- manifest --------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / mf.MANIFEST_FILE

    def manifest(self) -> mf.Manifest:
        if self._manifest is None:
            self._manifest = mf.load(self.manifest_path)
        return self._manifest

    def _require_registry(self) -> None:
        if not (self.root / ".dvc").is_dir() or not self.manifest_path.exists():
            raise NotARegistry(str(self.root))

    # -- reading ---------------------------------------------------------------------------------
    def _info(self, tag: TagRecord, summary: TagSummary, human: str, note: str | None) -> VersionInfo:
        record = parse_validation_note(note) if note else None
        status: Status = "registered"
        if record is not None:
            status = "validated" if record.passed else "failed"
        # Every part was validated when the tag block and the note were parsed: construct
        # without validating again (it is the per-row cost of listing 10,000 versions).
        return VersionInfo.model_construct(
            version=tag.name,
            model=summary.model,
            algorithm=summary.algorithm,
            framework=summary.framework,
            created_at=summary.created_at,
            registered_at=summary.registered_at,
            registered_by=summary.registered_by,
            status=status,
            stages=self.manifest().stages_of(summary.model, tag.name),
            metrics=summary.metrics,
            parameters=summary.parameters,
            files=summary.files,
            message=human,
            commit=tag.commit,
            tag_object=tag.object,
            lineage=Lineage.model_construct(
                data_version=summary.data_version,
                code_commit=summary.code_commit,
                parent=summary.parent,
            ),
            description=summary.description,
            env_id=summary.env_id,
            input_shape=summary.input_shape,
            architecture=summary.architecture,
            validation=record,
        )

    def versions(
        self,
        model: str | None = None,
        status: str | None = None,
        stage: str | None = None,
        limit: int | None = None,
    ) -> list[VersionInfo]:
        """Every version, newest first; a constant number of git calls whatever the count."""
        if status is not None and status not in STATUSES:
            raise GitregError(f"unknown status {status!r}", f"use one of: {', '.join(STATUSES)}")
        if not self.bare and not self.manifest_path.exists() and not (self.root / ".dvc").is_dir():
            raise NotARegistry(str(self.root))
        tags = [t for t in self.git.version_tags() if t.annotated and is_version(t.name)]
        tags.sort(key=lambda t: parse_version(t.name), reverse=True)
        notes = self.git.notes() if tags else {}
        result: list[VersionInfo] = []
        for tag in tags:
            summary, human = parse_tag_message(tag.message)
            if summary is None or summary.version != tag.name:
                continue  # a tag that only looks like a version: ignored, never an error
            if model is not None and summary.model != model:
                continue
            info = self._info(tag, summary, human, notes.get(tag.object))
            if status is not None and info.status != status:
                continue
            if stage is not None and stage not in info.stages:
                continue
            result.append(info)
            if limit and len(result) >= limit:
                break
        return result

    def versions_json(
        self,
        model: str | None = None,
        status: str | None = None,
        stage: str | None = None,
        limit: int | None = None,
    ) -> bytes:
        """:meth:`versions` as the JSON text `gitreg list --json` prints: the same rows, order,
        fields and values, byte for byte what pydantic would write for them.

        Rows come from the list cache (``.git/gitreg/list-cache``), keyed by tag object ids and
        note blob ids, which name immutable contents: a warm listing is one ``for-each-ref`` of
        names and ids, one ``notes list`` and a lookup per tag. Tags and notes the cache lacks
        are read through one ``git cat-file --batch`` (only the newest ones ``limit`` needs)
        and added. The cache is never needed: unreadable, corrupt or stale, it is ignored and
        rebuilt; when it cannot be written (a read-only .git) listing works all the same;
        ``GITREG_LIST_CACHE=0`` turns it off (neither read nor written)."""
        if status is not None and status not in STATUSES:
            raise GitregError(f"unknown status {status!r}", f"use one of: {', '.join(STATUSES)}")
        if not self.bare and not self.manifest_path.exists() and not (self.root / ".dvc").is_dir():
            raise NotARegistry(str(self.root))
        limit = max(limit, 1) if limit else None  # as versions(): a negative limit keeps one row
        return self._versions_json(_ListCache.load(self._list_cache_path()), model, status, stage, limit)

    def _versions_json(
        self, cache: _ListCache, model: str | None, status: str | None, stage: str | None, limit: int | None
    ) -> bytes:
        live = self.git.version_tag_ids()
        tags = cache.tags
        # Unknown yet: a version name is read, others ignored; known: its version must match the
        # tag's name (version "" is an object that is no version).
        candidates = [
            (name, oid)
            for name, oid in live
            if (is_version(name) if (entry := tags.get(oid)) is None else entry[0] == name)
        ]
        # Newest first. As text, version names sort as versions unless a minute has ten or more
        # (the "-10" suffix): those need the numeric order of the suffix.
        candidates.sort(reverse=True)
        if any(len(name) > 20 for name, _ in candidates):
            candidates.sort(key=lambda c: _order(c[0]), reverse=True)
        note_ids = self.git.note_ids() if candidates else {}
        held = self._held_stages() if candidates else {}
        held_names = {version for _, version in held}
        stage_texts: dict[tuple[str, ...], bytes] = {}
        out: list[bytes | memoryview] = []
        count = 0
        with self.git.object_reader() as reader:
            start = size = 0
            while start < len(candidates) and not (limit and count >= limit):
                # With a limit, the newest tags it needs (then twice as many per round, when
                # filters or ignored tags leave it short); else all at once.
                size = max(limit - count, 2 * size) if limit else len(candidates)
                window = candidates[start : start + size]
                start += len(window)
                self._fill_list_cache(cache, reader, [oid for _, oid in window], note_ids)
                cache.merge()
                buf, bounds, notes = cache.buf, cache.bounds, cache.notes
                for name, oid in window:
                    entry = tags.get(oid)
                    if entry is None or entry[0] != name:
                        continue  # a tag that only looks like a version: ignored, never an error
                    _, tag_model, k = entry
                    if model is not None and tag_model != model:
                        continue
                    blob = note_ids.get(oid)
                    note = notes.get(blob) if blob is not None else None
                    row_status = note[0] if note is not None else "registered"
                    if status is not None and row_status != status:
                        continue
                    stages = held.get((tag_model, name), ()) if name in held_names else ()
                    if stage is not None and stage not in stages:
                        continue
                    stages_text = stage_texts.get(stages)
                    if stages_text is None:
                        stages_text = stage_texts[stages] = _stages_json(stages)
                    validation = buf[note[1] : note[2]] if note is not None else _NO_VALIDATION
                    b0, b1, b2, b3, b4 = bounds[k * 5 : k * 5 + 5]  # the row's 4 pieces
                    a, b, c = _IN_SLOT_ORDER((_STATUS_JSON[row_status], stages_text, validation))
                    out += (b",\n", buf[b0:b1], a, buf[b1:b2], b, buf[b2:b3], c, buf[b3:b4])
                    count += 1
                    if limit and count >= limit:
                        break
        cache.save({oid for _, oid in live}, set(note_ids.values()))
        if not out:
            return b"[]\n"
        out[0] = b"[\n"
        out.append(b"\n]\n")
        return b"".join(out)

    def _fill_list_cache(
        self, cache: _ListCache, reader: ObjectReader, oids: list[str], note_ids: dict[str, str]
    ) -> None:
        """Read and add the tags (and their notes) the cache lacks: one round trip to git."""
        tags = [oid for oid in oids if oid not in cache.tags]
        blobs = [b for oid in oids if (b := note_ids.get(oid)) is not None and b not in cache.notes]
        if not tags and not blobs:
            return
        objects = reader.read(tags + blobs)
        for oid in tags:
            if oid in objects:  # gone since for-each-ref (deleted meanwhile): no row, nothing cached
                cache.add_tag(oid, *self._list_row(oid, *objects[oid]))
        for blob in blobs:
            kind, raw = objects.get(blob, ("", b""))
            if kind == "blob":
                record = parse_validation_note(raw.decode(errors="replace")) if raw else None
                cache.add_note(blob, *_note_json(record))

    def _list_row(self, oid: str, kind: str, raw: bytes) -> tuple[str, str, list[bytes]]:
        """(its version, its model, its row's JSON cut around the slots) for a tag object;
        ("", "", []) for an object that is no version (a lightweight tag's commit, a foreign
        tag, a broken summary block)."""
        head, _, body = raw.partition(b"\n\n")
        target = head.split(b"\n", 1)[0]
        if kind != "tag" or not target.startswith(b"object "):
            return "", "", []
        message = body.decode(errors="replace")
        summary, human = parse_tag_message(message)
        if summary is None or not is_version(summary.version):
            return "", "", []
        tag = TagRecord(
            name=summary.version,
            object=oid,
            commit=target[len(b"object ") :].decode(),
            annotated=True,
            tagger_name="",
            tagger_email="",
            tagger_date=None,
            message=message,
        )
        return summary.version, summary.model, _row_parts(self._info(tag, summary, human, None))

    def _held_stages(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """(model, version) -> the stages it holds, for every version models.yaml names."""
        manifest = self.manifest()
        held: dict[tuple[str, str], tuple[str, ...]] = {}
        for name, entry in manifest.model.models.items():
            named = {*entry.stages.values(), *entry.archived}
            if entry.canary is not None:
                named.add(entry.canary.version)
            for version in named:
                held[(name, version)] = tuple(manifest.stages_of(name, version))
        return held

    def _list_cache_path(self) -> Path | None:
        if os.environ.get("GITREG_LIST_CACHE", "1").lower() in ("0", "no", "off", "false"):
            return None
        dot = self.root / ".git"
        if dot.is_dir():
            git_dir = dot
        elif self.bare:
            git_dir = self.root
        else:  # a linked worktree or a submodule: .git is a file naming the git dir
            try:
                git_dir = self.git.git_dir
            except GitError:
                return None
        return git_dir / "gitreg" / LIST_CACHE_FILE

    def get(self, version: str) -> VersionInfo:
        parse_version(version)
        tag = self.git.tag(version)
        if tag is None or not tag.annotated:
            raise VersionNotFound(version)
        summary, human = parse_tag_message(tag.message)
        if summary is None or summary.version != version:
            raise VersionNotFound(version)
        return self._info(tag, summary, human, self.git.note_for(tag.object))

    def signature(self, version: str, allowed_signers: Path | str | None = None) -> SignatureInfo:
        """Whether the version's tag is signed, by whom, and whether git verifies it (trusted SSH
        keys from ``allowed_signers`` or git's ``gpg.ssh.allowedSignersFile``)."""
        if self.git.tag(version) is None:
            raise VersionNotFound(version)
        signers = Path(allowed_signers).resolve() if allowed_signers is not None else None
        check = self.git.tag_signature(version, signers)
        return SignatureInfo(
            signed=check.signed,
            verified=check.verified,
            signer=check.signer,
            format=check.format,
            reason=check.reason,
        )

    def models(self) -> list[str]:
        names = set(self.manifest().model.models)
        names.update(v.model for v in self.versions())
        return sorted(names)

    # -- register --------------------------------------------------------------------------------
    def register(
        self,
        bundle_dir: Path | str,
        model: str,
        *,
        version: str | None = None,
        message: str | None = None,
        push: bool = False,
        progress: Callable[[str, int, int], None] | None = None,
        sign: bool = False,
    ) -> RegisterResult:
        """Copy a bundle into ``models/<model>/``, upload its bytes, commit, tag (a signed tag
        with ``sign``: git's own signing, SSH or GPG as ``gpg.format`` and ``user.signingkey`` say).

        A journal under ``.git/gitreg/journal/`` names the registration while it runs: if the
        process dies, `gitreg doctor --fix` finishes or undoes it (see doctor.py)."""
        from gitreg.bundles import METADATA_FILE, DvcStore, copy_bundle, parse_pointer, scan_bundle

        check_model_name(model)
        if version is not None:
            parse_version(version)
        bundle = Path(bundle_dir)
        files = scan_bundle(bundle)
        meta_path = bundle / METADATA_FILE
        if meta_path.stat().st_size > MAX_METADATA_BYTES:  # refuse before reading a huge file
            raise MetadataError(
                f"{bundle}/{METADATA_FILE}",
                f"is {meta_path.stat().st_size} bytes; the limit is {MAX_METADATA_BYTES}",
            )
        meta = parse_metadata(meta_path.read_bytes(), f"{bundle}/{METADATA_FILE}")
        self._require_registry()
        ident = self.git.ident()
        remote = self.git.remote_name() if push else None
        if push and remote is None:
            raise GitregError(
                "--push: this repository has no Git remote", "add one: git remote add origin URL"
            )

        with self.lock():
            _checkpoint("locked")
            self._manifest = None
            manifest = self.manifest()
            limit = manifest.model.policy.max_bundle_bytes
            if limit is not None:
                total = sum((bundle / f).stat().st_size for f in files)
                if total > limit:
                    raise BundleError(
                        str(bundle),
                        f"is {total} bytes, over the {limit} of models.yaml's policy max_bundle_bytes",
                        "make the bundle smaller, or raise max_bundle_bytes in a reviewed models.yaml change",
                    )
            entry = manifest.model.models.get(model)
            model_path = entry.path if entry else f"models/{model}"
            dirty = self.git.changed_paths([model_path, mf.MANIFEST_FILE])
            if dirty:
                raise DirtyWorkingTree(dirty)
            existing = {t.name for t in self.git.version_tags()}
            if version is not None and version in existing:
                raise VersionExists(version)
            name = version or next_free(self.clock(), existing)

            model_dir = self.root / model_path
            stash = self._stash_dir() / f"{model}-{os.getpid()}"
            manifest_before = self.manifest_path.read_bytes() if self.manifest_path.exists() else None
            moved = False
            journal = self._write_journal(model, model_path, name, stash, model_dir.exists())
            try:
                if model_dir.exists():
                    shutil.rmtree(stash, ignore_errors=True)
                    stash.parent.mkdir(parents=True, exist_ok=True)
                    os.rename(model_dir, stash)
                    moved = True
                    _checkpoint("stashed")
                copied = copy_bundle(bundle, files, model_dir, progress)
                if manifest.ensure_model(model, model_path):
                    manifest.save(self.manifest_path)
                _checkpoint("copied")
                store = DvcStore(self.root)
                data_files = [f"{model_path}/{f.path}" for f in copied if f.path != METADATA_FILE]
                with store.session():  # one DVC repo for both steps
                    # gitreg hashed each file while copying it: DVC takes those md5s (no re-read)
                    store.track(data_files, hashed={f"{model_path}/{f.path}": f for f in copied})
                    _checkpoint("tracked")
                    uploaded = store.upload(data_files)
                _checkpoint("uploaded")
                digests = []
                for f in copied:
                    if f.path == METADATA_FILE:
                        continue
                    ptr_path = model_dir / (f.path + ".dvc")
                    ptr = parse_pointer(ptr_path.read_bytes(), f"{model_path}/{f.path}.dvc")
                    if ptr.md5 != f.md5:
                        raise StorageError(
                            f"{f.path}: DVC recorded {ptr.md5}, gitreg hashed {f.md5}",
                            "the file changed while it was being registered; retry",
                        )
                    digests.append(FileDigest(path=f.path, md5=f.md5, size=f.size))
                meta_file = next(f for f in copied if f.path == METADATA_FILE)
                digests.append(FileDigest(path=METADATA_FILE, md5=meta_file.md5, size=meta_file.size))
                now = self.clock()
                summary = summary_from(
                    meta, model=model, version=name, files=digests, registered_at=now, registered_by=ident
                )
                commit_msg = (
                    f"register {model} {name}\n\n{message.strip()}\n"
                    if message
                    else f"register {model} {name}\n"
                )
                commit = self.git.commit_paths([model_path, mf.MANIFEST_FILE], commit_msg, allow_empty=True)
                _checkpoint("committed")
            except BaseException:
                self._undo(
                    model_dir, stash if moved else None, manifest_before, [model_path, mf.MANIFEST_FILE]
                )
                journal.unlink(missing_ok=True)
                raise
            try:
                self.git.create_tag(name, commit, format_tag_message(summary, message), sign=sign)
            except BaseException:
                self.git.reset_last_commit(commit)
                self._undo(
                    model_dir, stash if moved else None, manifest_before, [model_path, mf.MANIFEST_FILE]
                )
                journal.unlink(missing_ok=True)
                raise
            _checkpoint("tagged")
            if moved:
                shutil.rmtree(stash, ignore_errors=True)
            journal.unlink(missing_ok=True)
            _checkpoint("done")
            self._manifest = None

        pushed = False
        if push and remote:
            branch = self.git.current_branch()
            refspecs = [f"refs/tags/{name}"]
            if branch:
                refspecs.insert(0, f"HEAD:refs/heads/{branch}")
            try:
                self.git.push(remote, refspecs)
            except GitError as e:
                raise GitregError(
                    f"registered {model} {name} locally, but the push failed: {e.message}",
                    f"push it when the remote is reachable: git push {remote} {' '.join(refspecs)}",
                ) from None
            pushed = True
        return RegisterResult(
            version=name,
            model=model,
            commit=commit,
            files=digests,
            uploaded=uploaded,
            pushed=pushed,
            remote=remote,
        )

    def _undo(
        self, model_dir: Path, stash: Path | None, manifest_before: bytes | None, paths: list[str]
    ) -> None:
        """Put the working tree back as it was before a failed registration."""
        self.git.unstage(paths)
        if model_dir.exists():
            shutil.rmtree(model_dir)
        if stash is not None and stash.exists():
            model_dir.parent.mkdir(parents=True, exist_ok=True)
            os.rename(stash, model_dir)
        if manifest_before is not None:
            mf.atomic_write(self.manifest_path, manifest_before)
        with contextlib.suppress(OSError):
            parent = model_dir.parent
            while parent != self.root and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        self._manifest = None

    def _stash_dir(self) -> Path:
        return self.git.git_dir / "gitreg" / "stash"

    def _journal_dir(self) -> Path:
        return self.git.git_dir / "gitreg" / "journal"

    def _write_journal(self, model: str, model_path: str, version: str, stash: Path, moved: bool) -> Path:
        """Record a registration in progress (atomically), for `gitreg doctor` to finish or undo."""
        import json

        path = self._journal_dir() / f"{model}-{os.getpid()}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "model": model,
            "model_path": model_path,
            "version": version,
            "stash": str(stash),
            "moved": moved,
            "pid": os.getpid(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        mf.atomic_write(path, json.dumps(entry).encode())
        return path

    def doctor(self, *, fix: bool = False, remote_check: bool = False, push: bool = False) -> Any:
        """Check the registry repository (tags, pointers, models.yaml, notes, locks, interrupted
        registrations, unpushed tags) and with ``fix`` repair what can be repaired (see doctor.py)."""
        from gitreg import doctor

        try:
            return doctor.run(self, fix=fix, remote_check=remote_check, push=push)
        finally:
            self._manifest = None

    @contextlib.contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        """Serialize mutating commands in one repository (a flock: released if we die)."""
        if timeout is None:
            timeout = float(os.environ.get("GITREG_LOCK_TIMEOUT", "600"))
        path = self.git.git_dir / "gitreg.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        held = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                        raise RegistryLocked(str(path), holder) from None
                    time.sleep(0.05)
            os.ftruncate(fd, 0)
            os.pwrite(
                fd, f"pid {os.getpid()} since {datetime.now(UTC).isoformat(timespec='seconds')}".encode(), 0
            )
            held = True
            yield
        finally:
            if held:  # a note left behind means its holder died (gitreg doctor reports it)
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the flock

    # -- compare ---------------------------------------------------------------------------------
    def compare(self, versions: Sequence[str]) -> Comparison:
        if len(versions) < 2:
            raise GitregError("compare needs at least two versions", "gitreg compare V1 V2 [V…]")
        if len(set(versions)) != len(versions):
            raise GitregError("a version is named twice", "name each version once")
        infos = [self.get(v) for v in versions]
        higher, lower = self.manifest().directions()
        metric_names = sorted({m for i in infos for m in i.metrics})
        metrics = []
        for name in metric_names:
            values = {i.version: i.metrics.get(name) for i in infos}
            key = name.lower()
            direction: Literal["higher", "lower"] | None = (
                "higher"
                if key in higher or _stem(key) in higher
                else "lower"
                if key in lower or _stem(key) in lower
                else None
            )
            present = {v: x for v, x in values.items() if x is not None}
            winner = None
            if direction and len(present) >= 2:
                best = max(present.values()) if direction == "higher" else min(present.values())
                winners = [v for v, x in present.items() if x == best]
                winner = winners[0] if len(winners) == 1 else None
            metrics.append(MetricRow(name=name, values=values, direction=direction, winner=winner))
        param_names = sorted({p for i in infos for p in i.parameters})
        parameters = []
        for name in param_names:
            values = {i.version: i.parameters.get(name) for i in infos}
            distinct = {repr(v) for v in values.values()}
            parameters.append(ParameterRow(name=name, values=values, differs=len(distinct) > 1))
        return Comparison(
            versions=[i.version for i in infos],
            models={i.version: i.model for i in infos},
            metrics=metrics,
            parameters=parameters,
        )

    # -- pull ------------------------------------------------------------------------------------
    def _model_path_at(self, commit: str, model: str) -> str:
        raw = self.git.read_file(commit, mf.MANIFEST_FILE)
        if raw is not None:
            with contextlib.suppress(GitregError, UnicodeDecodeError):
                entry = mf.loads(raw.decode()).model.models.get(model)
                if entry is not None:
                    return entry.path
        return f"models/{model}"

    def pull(
        self,
        version: str,
        out: Path | str | None = None,
        *,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> PullResult:
        """Materialize a version's bundle into ``out`` (default ``./VERSION``), every file's md5
        verified against its pointer; on any failure nothing is left at ``out``."""
        from gitreg.bundles import POINTER_SUFFIX, DvcStore, Pointer, parse_pointer

        info = self.get(version)
        dest = Path(out).expanduser() if out is not None else Path.cwd() / version
        dest = dest.resolve()
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise OutputExists(str(dest))
        model_path = self._model_path_at(info.commit, info.model)
        entries = self.git.list_tree(info.commit, model_path)
        if not entries:
            raise StorageError(
                f"{version}: commit {info.commit[:12]} has no {model_path}/",
                "the tag points at an unrelated commit; see `gitreg show`",
            )
        expected = {f.path: f for f in info.files}
        pointers: list[tuple[str, Pointer]] = []
        plain: list[tuple[str, str]] = []
        prefix = model_path.rstrip("/") + "/"
        raw = self.git.read_objects(e.sha for e in entries)
        for e in entries:
            rel = e.path[len(prefix) :] if e.path.startswith(prefix) else e.path
            if PurePosixPath(rel).name == ".gitignore" or e.type != "blob":
                continue
            if rel.endswith(POINTER_SUFFIX):
                ptr = parse_pointer(raw[e.sha], e.path)
                file_rel = rel[: -len(POINTER_SUFFIX)]
                if PurePosixPath(file_rel).name != ptr.path:
                    raise StorageError(
                        f"{e.path}: points at {ptr.path!r}, not its own file", "the pointer was tampered with"
                    )
                rec = expected.get(file_rel)
                if rec is not None and rec.md5 != ptr.md5:
                    raise StorageError(
                        f"{e.path}: pointer md5 {ptr.md5} differs from the tag's record {rec.md5}",
                        "the commit was altered after registration; do not use this version",
                    )
                pointers.append((file_rel, Pointer(path=file_rel, md5=ptr.md5, size=ptr.size)))
            else:
                plain.append((rel, e.sha))
        created = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
        try:
            for rel, sha in plain:
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                data = raw[sha]
                rec = expected.get(rel)
                if rec is not None and hashlib.md5(data, usedforsecurity=False).hexdigest() != rec.md5:
                    raise StorageError(f"{rel}: differs from the tag's record", "the commit was altered")
                target.write_bytes(data)
            DvcStore(self.root).fetch_verified(
                info.commit,
                [(f"{model_path}/{rel}", ptr, tmp / rel) for rel, ptr in pointers],
                progress,
            )
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)
            if dest.exists():
                dest.rmdir()
            os.rename(tmp, dest)
        except StorageError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if "archived" not in info.stages:
                raise
            raise StorageError(
                f"{version} is archived and `gitreg cleanup` may have removed its bytes: {e.problem}",
                "pull a version that is not archived (gitreg list), or register the bundle again",
            ) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            for folder in created:  # nothing left behind: not even the parents we made
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
        files = [FileDigest(path=r, md5=p.md5, size=p.size or 0) for r, p in pointers]
        files += [f for f in info.files if f.path in {r for r, _ in plain}]
        return PullResult(
            version=version, model=info.model, out=str(dest), files=sorted(files, key=lambda f: f.path)
        )

    # -- validate --------------------------------------------------------------------------------
    def validate(
        self,
        version: str,
        *,
        record: bool = False,
        push: bool = False,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        allow_architectures: Sequence[str] = (),
        require_signed: bool = False,
    ) -> ValidationRecord:
        """Fetch, verify digests, check metadata, load safely, run a forward pass — under the
        ``policy:`` of models.yaml: a signed tag (``require_signed``, or this call's flag), the
        size limit, TorchScript allowed or not, and the architectures a state dict may name
        (the policy's plus ``allow_architectures``)."""
        from gitreg import __version__, validate
        from gitreg.bundles import METADATA_FILE, policy_file

        for spec in allow_architectures:
            if not validate.is_architecture(spec):
                raise GitregError(
                    f"--allow-architecture {spec!r} is not of the form pkg.module:ClassName",
                    "name a class, e.g. --allow-architecture mypkg.nets:PolicyNet",
                )
        info = self.get(version)
        policy = self.load_policy()
        checks: list[CheckResult] = []
        load = None
        error = None
        if require_signed or policy.require_signed:
            signed, why = self.git.verify_tag(version)
            detail = "the tag's signature verifies" if signed else f"the tag's signature fails: {why}"
            checks.append(CheckResult(name="signature", ok=signed, detail=detail))
            error = None if signed else detail
        limit = policy.max_bundle_bytes
        if error is None and limit is not None:
            total = sum(f.size for f in info.files)
            fits = total <= limit
            detail = f"{total} bytes {'within' if fits else 'over'} the policy's max_bundle_bytes {limit}"
            checks.append(CheckResult(name="size", ok=fits, detail=detail))
            error = None if fits else detail
        with tempfile.TemporaryDirectory(prefix="gitreg-validate-") as tmpdir:
            bundle = Path(tmpdir) / version
            if error is None:
                try:
                    pulled = self.pull(version, bundle, progress=progress)
                    checks.append(
                        CheckResult(
                            name="digests", ok=True, detail=f"{len(pulled.files)} files match their pointers"
                        )
                    )
                except GitregError as e:
                    checks.append(CheckResult(name="digests", ok=False, detail=e.message))
                    error = e.message
            if error is None:
                try:
                    meta = parse_metadata((bundle / METADATA_FILE).read_bytes())
                    checks.append(
                        CheckResult(name="metadata", ok=True, detail=f"{meta.algo} / {meta.framework}")
                    )
                except (GitregError, OSError) as e:
                    checks.append(CheckResult(name="metadata", ok=False, detail=str(e)))
                    error = str(e)
            name = policy_file(f.path for f in pulled.files) if error is None else None
            if error is None and name is None:
                error = "the bundle has no policy.pt or policy.safetensors"
                checks.append(CheckResult(name="load", ok=False, detail=error))
            if error is None and name is not None:
                load = validate.check_policy(
                    bundle / name,
                    info.input_shape,
                    timeout_s=timeout_s or validate.DEFAULT_TIMEOUT_S,
                    memory_mb=memory_mb or validate.DEFAULT_MEMORY_MB,
                    allow_torchscript=policy.allow_torchscript,
                    architecture=meta.architecture,
                    architecture_kwargs=meta.architecture_kwargs,
                    architectures=[*policy.architectures, *allow_architectures],
                )
                checks.append(CheckResult(name="load", ok=load.ok, detail=load.detail))
                for note in load.notes:
                    checks.append(CheckResult(name="note", ok=True, detail=note))
                if not load.ok:
                    error = load.detail
        result = ValidationRecord(
            version=version,
            passed=error is None,
            checked_at=self.clock(),
            checked_by=self.git.ident(),
            gitreg_version=__version__,
            torch_version=load.torch_version if load else None,
            checks=checks,
            files=info.files,
            load_seconds=load.load_seconds if load else None,
            forward_seconds=load.forward_seconds if load else None,
            output_shape=load.output_shape if load else None,
            error=error,
            policy_format=(load.kind or None) if load else None,
        )
        if record:
            _checkpoint("validate-checked")
            self.git.add_note(info.tag_object, result.to_note())  # one ref update: old or new
            _checkpoint("validate-recorded")
            if push:
                remote = self.git.remote_name()
                if remote is None:
                    raise GitregError(
                        "--push: this repository has no Git remote", "add one: git remote add origin URL"
                    )
                self.git.push_notes(remote)
        return result

    def load_policy(self) -> mf.LoadPolicy:
        """The ``policy:`` of models.yaml: the working tree's (HEAD's in a bare repository)."""
        if not self.bare:
            return mf.load(self.manifest_path).model.policy  # as it is now, not as cached
        raw = self.git.read_file("HEAD", mf.MANIFEST_FILE)
        return mf.loads(raw.decode(errors="replace")).model.policy if raw is not None else mf.LoadPolicy()

    def require_model(self, model: str) -> None:
        if model not in self.models():
            raise ModelNotFound(model)

    # -- lifecycle (stages in models.yaml; see lifecycle.py) -------------------------------------
    def promote(
        self,
        version: str,
        stage: str | None,
        *,
        canary: float | None = None,
        direct: bool = False,
        push: bool = False,
        force: bool = False,
    ) -> lifecycle.ChangeResult:
        """Move a version to staging / production / archived (or make it the canary), through
        a pull request by default or a direct commit."""
        from gitreg import lifecycle

        try:
            return lifecycle.promote(
                self, version, stage, canary=canary, direct=direct, push=push, force=force
            )
        finally:
            self._manifest = None  # models.yaml may have changed under us

    def deploy(
        self,
        version: str,
        *,
        canary: float | None = None,
        direct: bool = False,
        push: bool = False,
        force: bool = False,
    ) -> lifecycle.ChangeResult:
        """Promote a version to production (or canary): the operators' word for it."""
        return self.promote(version, "production", canary=canary, direct=direct, push=push, force=force)

    def rollback(
        self,
        model: str,
        *,
        stage: str = "production",
        to: str | None = None,
        direct: bool = False,
        push: bool = False,
    ) -> lifecycle.ChangeResult:
        """Revert the commit that last moved the stage (or set ``to``)."""
        from gitreg import lifecycle

        try:
            return lifecycle.rollback(self, model, stage=stage, to=to, direct=direct, push=push)
        finally:
            self._manifest = None

    def history(self, model: str | None = None, rev: str = "HEAD") -> list[lifecycle.StageChange]:
        """Every stage change from `git log -- models.yaml`, newest first."""
        from gitreg import lifecycle

        if model is not None:
            self.require_model(model)
        return lifecycle.history(self, model, rev)

    def status(self) -> list[lifecycle.ModelStatus]:
        """Per model: what each stage holds, its status and age, and the last change."""
        from gitreg import lifecycle

        return lifecycle.status(self, self.clock())

    def check(self, base: str | None = None, *, require_signed: bool = False) -> lifecycle.CheckReport:
        """Validate models.yaml as a pull request must leave it (schema, tags, validation, policy;
        ``require_signed``: the production and canary tags' signatures must verify)."""
        from gitreg import lifecycle

        return lifecycle.check(self, base, require_signed=require_signed)

    # -- report and lineage (see report.py) ------------------------------------------------------
    def report(self, model: str | None = None) -> reporting.Report:
        """Totals by status, stage and algorithm, current production, promotion history and
        every metric over versions: one listing of tags, one of the stage history."""
        from gitreg import report as reporting

        return reporting.build_report(self, model)

    def lineage(self, version: str, max_depth: int | None = None) -> reporting.LineageNode:
        """A version and its ancestors through ``parent``, with data_version and code_commit."""
        from gitreg import report as reporting

        return reporting.build_lineage(self, version, max_depth or reporting.MAX_LINEAGE_DEPTH)

    # -- retention (see retention.py) -------------------------------------------------------------
    def cleanup(
        self, *, dry_run: bool = False, delete_tags: bool = False, push: bool = False
    ) -> retention.CleanupResult:
        """Apply each model's ``retention``: archive the versions outside it that hold no stage
        (one commit on the current branch), remove their bytes from the DVC remote and cache
        unless a kept version shares them, and with ``delete_tags`` delete their tags.
        ``dry_run`` returns the plan and changes nothing."""
        from gitreg import retention

        self._require_registry()
        try:
            return retention.cleanup(self, dry_run=dry_run, delete_tags=delete_tags, push=push)
        finally:
            self._manifest = None


def _stem(metric: str) -> str:
    """'val_accuracy' -> 'accuracy', 'test/rmse' -> 'rmse': the word that decides direction."""
    for sep in ("/", "."):
        metric = metric.rsplit(sep, 1)[-1]
    for prefix in ("val_", "test_", "train_", "eval_", "mean_", "avg_", "best_", "final_"):
        if metric.startswith(prefix):
            return _stem(metric[len(prefix) :])
    return metric


def default_local_remote(root: Path) -> Path:
    """A DVC remote folder outside the working tree, so one machine needs no set-up."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    digest = hashlib.sha1(str(root).encode(), usedforsecurity=False).hexdigest()[:8]
    return base / "gitreg" / "remotes" / f"{root.name}-{digest}"


def _remote_url(remote: str, root: Path) -> str:
    if "://" in remote:
        if not remote.startswith(("s3://", "gs://", "azure://", "http://", "https://", "ssh://")):
            raise GitregError(f"unsupported remote {remote!r}", "use a folder path or s3://bucket/prefix")
        return remote
    p = Path(remote).expanduser()
    p = p if p.is_absolute() else (Path.cwd() / p)
    p = p.resolve()
    if p.is_relative_to(root):
        raise GitregError(
            f"remote {p} is inside the repository", "put the DVC remote folder outside the working tree"
        )
    return str(p)


def _ensure_lines(path: Path, lines: list[str]) -> bool:
    text = path.read_text() if path.exists() else ""
    present = set(text.splitlines())
    missing = [line for line in lines if line not in present]
    if not missing:
        return False
    if text and not text.endswith("\n"):
        text += "\n"
    mf.atomic_write(path, (text + "\n".join(missing) + "\n").encode())
    return True


# -- the list cache --------------------------------------------------------------------------------
# `gitreg list --json` rows, kept in .git/gitreg/list-cache so that a listing parses no tag: each
# tag object id maps to its row as JSON text (what pydantic writes for the VersionInfo, indented
# for its place in the list) with the fields that do not come from the tag object cut out (the
# slots: status and validation come from the note, stages from models.yaml), and each note blob
# id to its status and validation JSON. Ids name immutable contents, so an entry is never stale:
# a re-created tag or a new note has a new id. The file is untrusted input: a checksum covers it,
# its shape is checked, and any fault means it is ignored and rebuilt. Not pickle, not marshal.
LIST_CACHE_FILE = "list-cache"
_CACHE_MAGIC = b"GITREG-LIST-CACHE"
_CACHE_FORMAT = 1  # bump when the row rendering below changes
_SLOTS: tuple[str, ...] = tuple(
    k for k in VersionInfo.model_fields if k in ("status", "stages", "validation")
)
# (status, stages, validation) -> the same three in the order VersionInfo has them
_IN_SLOT_ORDER = operator.itemgetter(*(("status", "stages", "validation").index(s) for s in _SLOTS))
_PARTS = len(_SLOTS) + 1  # pieces of a cached row, around and between the slots: 4
_STATUS_JSON = {s: f',\n    "status": "{s}"'.encode() for s in STATUSES}
_NO_VALIDATION = b',\n    "validation": null'


def _layout() -> str:
    """What the cached rows depend on: the code that renders them (this module and the schemas
    in metadata.py, by content) and the serializer. Another one reads as no cache."""
    import pydantic_core

    from gitreg import __version__, metadata

    digest = hashlib.sha1(usedforsecurity=False)
    try:
        for source in (__file__, metadata.__file__):
            digest.update(Path(source).read_bytes())
    except (OSError, TypeError):  # no source files (a frozen build): the fields, at least
        models = (VersionInfo, Lineage, ValidationRecord, CheckResult, FileDigest, TagSummary)
        digest.update("|".join(",".join(m.model_fields) for m in models).encode())
    return f"{_CACHE_FORMAT}/{__version__}/{pydantic_core.__version__}/{digest.hexdigest()}"


def _order(name: str) -> tuple[str, int]:
    """The order of :func:`parse_version` for a valid version name, without parsing a date:
    the fixed-width minute sorts as text, then the same-minute sequence as a number."""
    seq = name[19:]
    return name[:18], (int(seq) if seq.isdecimal() else 0) if seq else 1


def _json_value(text: str, depth: int) -> bytes:
    """JSON text written at ``depth`` levels of two-space indentation (strings hold no raw
    newline, so every newline is the serializer's)."""
    return text.replace("\n", "\n" + "  " * depth).encode()


def _row_parts(info: VersionInfo) -> list[bytes]:
    """The row's JSON as the list holds it, cut around the slots (each slot's text, filled in
    later, starts with its ",\n")."""
    text = info.model_dump_json(by_alias=True, indent=2)
    parts: list[bytes] = []
    pos = 0
    for key in _SLOTS:
        # Top-level keys are the only lines with exactly two spaces of indentation.
        start = text.index(f',\n  "{key}": ', pos)
        end = text.find(',\n  "', start + 1)
        parts.append(_json_value(text[pos:start], 1))
        pos = end if end >= 0 else len(text) - 2  # the last field ends at the closing "\n}"
    parts.append(_json_value(text[pos:], 1))
    parts[0] = b"  " + parts[0]
    return parts


def _stages_json(stages: tuple[str, ...]) -> bytes:
    import pydantic_core

    value = pydantic_core.to_json(list(stages), indent=2).decode() if stages else "[]"
    return b',\n    "stages": ' + _json_value(value, 2)


def _note_json(record: ValidationRecord | None) -> tuple[str, bytes]:
    if record is None:
        return "registered", _NO_VALIDATION
    text = record.model_dump_json(by_alias=True, indent=2)
    return ("validated" if record.passed else "failed"), b',\n    "validation": ' + _json_value(text, 2)


class _ListCache:
    """The list cache and its file: ``GITREG-LIST-CACHE <crc32> <header length>\n``, a JSON
    header, then the payload the header's offsets point into. For each tag object id the header
    has its version, its model and the 5 offsets around and between the row's 4 pieces (version
    "": the object is no version); for each note blob id its status and the 2 offsets of its
    validation piece. The crc32 covers header and payload; a file with another layout, a bad
    checksum or a bad shape is ignored (and rewritten)."""

    def __init__(self, path: Path | None, *, changed: bool = False) -> None:
        self.path = path
        self.layout = _layout()
        self.buf: bytes | memoryview = b""  # the file's payload
        self.extra = bytearray()  # pieces added since: at offsets len(buf) and beyond
        self.tags: dict[str, tuple[str, str, int]] = {}  # id -> (version, model, row number)
        self.bounds: list[int] = []  # _PARTS + 1 offsets per row number
        self.notes: dict[str, tuple[str, int, int]] = {}  # blob id -> (status, start, end)
        self.changed = changed

    @classmethod
    def load(cls, path: Path | None) -> _ListCache:
        cache = cls(path)
        if path is None:
            return cache
        try:
            data = path.read_bytes()
        except OSError:  # none yet, or unreadable: rebuilt
            return cache
        try:
            cache._parse(data)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
            cache = cls(path, changed=True)
        return cache

    def _parse(self, data: bytes) -> None:
        import json

        nl = data.index(b"\n", 0, 100)
        magic, crc, size = data[:nl].split(b" ")
        body = memoryview(data)[nl + 1 :]
        if magic != _CACHE_MAGIC or _crc32(body) != int(crc):
            raise ValueError("not a list cache, or a damaged one")
        h = json.loads(bytes(body[: int(size)]))
        if not isinstance(h, dict) or h.get("layout") != self.layout:
            raise ValueError("another layout")
        buf = body[int(size) :]
        ids, versions, models, bounds = h["tags"], h["versions"], h["models"], h["bounds"]
        note_ids, statuses, note_bounds = h["notes"], h["statuses"], h["note_bounds"]
        lists = (ids, versions, models, bounds, note_ids, statuses, note_bounds)
        if not all(type(x) is list for x in lists):
            raise ValueError("bad shape")
        n, m = len(ids), len(note_ids)
        if not (len(versions) == len(models) == n and len(bounds) == n * (_PARTS + 1)):
            raise ValueError("bad shape")
        if not (len(statuses) == m and len(note_bounds) == 2 * m):
            raise ValueError("bad shape")
        if not set(map(type, ids + versions + models + note_ids)) <= {str}:
            raise TypeError("bad entry")
        if not set(statuses) <= set(_STATUS_JSON):
            raise ValueError("bad entry")
        offsets = bounds + note_bounds
        if offsets and (not set(map(type, offsets)) <= {int} or min(offsets) < 0 or max(offsets) > len(buf)):
            raise ValueError("bad entry")
        self.buf, self.bounds = buf, bounds
        self.tags = dict(zip(ids, zip(versions, models, range(n), strict=True), strict=True))
        it = iter(note_bounds)
        self.notes = dict(zip(note_ids, zip(statuses, it, it, strict=True), strict=True))

    def _piece(self, start: int, end: int) -> bytes | memoryview:
        n = len(self.buf)
        return self.buf[start:end] if start < n else bytes(self.extra[start - n : end - n])

    def merge(self) -> None:
        """Make the pieces added since loading part of ``buf``, so that every offset is into
        it (one copy, on a listing that read tags)."""
        if self.extra:
            self.buf = memoryview(bytes(self.buf) + bytes(self.extra))
            self.extra = bytearray()

    def add_tag(self, oid: str, version: str, model: str, parts: list[bytes]) -> None:
        pos = len(self.buf) + len(self.extra)
        self.tags[oid] = (version, model, len(self.bounds) // (_PARTS + 1))
        self.bounds.append(pos)
        for piece in parts or [b""] * _PARTS:  # an object that is no version: empty pieces
            pos += len(piece)
            self.bounds.append(pos)
            self.extra += piece
        self.changed = True

    def add_note(self, blob: str, status: str, validation: bytes) -> None:
        start = len(self.buf) + len(self.extra)
        self.notes[blob] = (status, start, start + len(validation))
        self.extra += validation
        self.changed = True

    def save(self, live_tags: set[str], live_notes: set[str]) -> None:
        """Write the entries of the tags and notes that exist now (others are dropped), when
        anything changed: atomically (a temp file renamed over the old one), so concurrent
        listings each leave a whole, valid file. Failing to write is not an error."""
        stale = any(k not in live_tags for k in self.tags) or any(k not in live_notes for k in self.notes)
        if self.path is None or not (self.changed or stale):
            return
        import json

        chunks: list[bytes | memoryview] = []
        pos = 0
        h: dict[str, Any] = {"layout": self.layout, "tags": [], "versions": [], "models": [], "bounds": []}
        width = _PARTS + 1
        for oid, (version, model, k) in self.tags.items():
            if oid in live_tags:
                b = self.bounds[k * width : (k + 1) * width]
                h["tags"].append(oid)
                h["versions"].append(version)
                h["models"].append(model)
                h["bounds"] += [pos + x - b[0] for x in b]
                chunks.append(self._piece(b[0], b[-1]))
                pos += b[-1] - b[0]
        h.update(notes=[], statuses=[], note_bounds=[])
        for blob, (status, start, end) in self.notes.items():
            if blob in live_notes:
                h["notes"].append(blob)
                h["statuses"].append(status)
                h["note_bounds"] += [pos, pos + end - start]
                chunks.append(self._piece(start, end))
                pos += end - start
        head = json.dumps(h, separators=(",", ":")).encode()
        body = b"".join([head, *chunks])
        data = b"%s %d %d\n%s" % (_CACHE_MAGIC, _crc32(body), len(head), body)
        tmp: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}-", suffix=".tmp", dir=self.path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.path)
            tmp = None
        except OSError:
            pass  # a read-only .git, a full disk: the next listing reads the tags again
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


def _crc32(data: bytes | memoryview) -> int:
    import zlib

    return zlib.crc32(data)
