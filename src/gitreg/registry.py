"""Registry: the public Python API, a thin facade. Each method is one call into an operation
module that takes the core :class:`~gitreg.context.Context`; nothing below imports this module.

Returns pydantic models, never prints. The result types the front ends use are importable from
here (``from gitreg.registry import VersionInfo, CheckReport, …``); those of operations that
`gitreg list` does not need are imported on first use, so listing stays lean.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitreg import catalog, listing
from gitreg import manifest as mf
from gitreg.catalog import STATUSES, Lineage, SignatureInfo, Status, VersionInfo
from gitreg.context import Clock, Context
from gitreg.init import CI_CHOICES, PULL_GLOB, InitResult, default_local_remote
from gitreg.journal import CRASH_POINTS
from gitreg.metadata import ValidationRecord

if TYPE_CHECKING:
    from gitreg.compare import Comparison, MetricRow, ParameterRow
    from gitreg.doctor import DoctorReport, Finding
    from gitreg.gitrepo import GitRepo
    from gitreg.lifecycle import ChangeResult, CheckReport, ModelStatus, Problem, StageChange, StageState
    from gitreg.loading import LoadedPolicy
    from gitreg.pull import PullResult
    from gitreg.refs import Resolution
    from gitreg.register import RegisterResult
    from gitreg.report import LineageNode, MetricSeries, Report
    from gitreg.retention import CleanupPlan, CleanupResult, PlanRow

Progress = Callable[[str, int, int], None]

# Result types re-exported lazily: name -> the module that defines it.
_LAZY = {
    **dict.fromkeys(("RegisterResult",), "gitreg.register"),
    **dict.fromkeys(("PullResult",), "gitreg.pull"),
    **dict.fromkeys(("Resolution",), "gitreg.refs"),
    **dict.fromkeys(("Comparison", "MetricRow", "ParameterRow"), "gitreg.compare"),
    **dict.fromkeys(
        ("ChangeResult", "StageChange", "StageState", "ModelStatus", "CheckReport", "Problem"),
        "gitreg.lifecycle",
    ),
    **dict.fromkeys(("DoctorReport", "Finding"), "gitreg.doctor"),
    **dict.fromkeys(("CleanupPlan", "CleanupResult", "PlanRow"), "gitreg.retention"),
    **dict.fromkeys(("Report", "LineageNode", "MetricSeries"), "gitreg.report"),
}

__all__ = ["CI_CHOICES", "CRASH_POINTS", "PULL_GLOB", "STATUSES", "ChangeResult", "CheckReport"]
__all__ += ["CleanupPlan", "CleanupResult", "Comparison", "DoctorReport", "Finding", "InitResult"]
__all__ += ["Lineage", "LineageNode", "MetricRow", "MetricSeries", "ModelStatus", "ParameterRow", "PlanRow"]
__all__ += ["Problem", "PullResult", "RegisterResult", "Registry", "Report", "Resolution", "SignatureInfo"]
__all__ += ["StageChange"]
__all__ += ["StageState", "Status", "ValidationRecord", "VersionInfo", "default_local_remote"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


class Registry:
    """A gitreg registry: a Git repository with DVC and a models.yaml."""

    def __init__(
        self, path: Path | str = ".", *, clock: Clock | None = None, branch: str | None = None
    ) -> None:
        self.ctx = Context(path, clock=clock, branch=branch)

    @classmethod
    def from_remote(
        cls,
        url: str,
        *,
        branch: str | None = None,
        clock: Clock | None = None,
        progress: Callable[[Any], None] | None = None,
    ) -> Registry:
        """The registry at the Git remote ``url`` (a URL or a path), read through a cached bare
        mirror (see mirrors.py), with no clone of yours: models.yaml from ``branch`` (default:
        the remote's default branch)."""
        from gitreg.mirrors import open_mirror

        return cls(open_mirror(url, progress=progress), clock=clock, branch=branch)

    # -- the context, as attributes ----------------------------------------------------------------
    @property
    def git(self) -> GitRepo:
        return self.ctx.git

    @property
    def root(self) -> Path:
        return self.ctx.root

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def bare(self) -> bool:
        return self.ctx.bare

    @property
    def manifest_path(self) -> Path:
        return self.ctx.manifest_path

    def manifest(self) -> mf.Manifest:
        return self.ctx.manifest()

    def lock(self, timeout: float | None = None) -> AbstractContextManager[None]:
        """Serialize mutating commands in one repository (a flock: released if we die)."""
        return self.ctx.lock(timeout)

    def load_policy(self) -> mf.LoadPolicy:
        """The ``policy:`` of models.yaml: the working tree's (HEAD's in a bare repository)."""
        return self.ctx.load_policy()

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
        from gitreg.init import init

        return init(path, remote=remote, endpoint_url=endpoint_url, ci=ci)

    # -- reading ---------------------------------------------------------------------------------
    def require_full_history(self, command: str) -> None:
        """Refuse (:class:`~gitreg.errors.ShallowClone`) in a shallow clone: `list`, `show` and
        `history` would answer from part of the history and tags."""
        self.ctx.require_full_history(command)

    def versions(
        self,
        model: str | None = None,
        status: str | None = None,
        stage: str | None = None,
        limit: int | None = None,
    ) -> list[VersionInfo]:
        """Every version, newest first; a constant number of git calls whatever the count."""
        return catalog.versions(self.ctx, model, status, stage, limit)

    def versions_json(
        self,
        model: str | None = None,
        status: str | None = None,
        stage: str | None = None,
        limit: int | None = None,
    ) -> bytes:
        """:meth:`versions` as the JSON text `gitreg list --json` prints, from the list cache."""
        return listing.versions_json(self.ctx, model, status, stage, limit)

    # Every method that takes a version takes a reference too: ``policy@production``,
    # ``policy@staging``, ``policy@canary``, ``policy@latest``, ``policy@v2025-07-06--18h51``.
    def resolve(self, reference: str, at: str | None = None) -> Resolution:
        """What ``reference`` names, against the checked-out models.yaml or the one at ``at``."""
        from gitreg.refs import resolve

        return resolve(self.ctx, reference, at)

    def version_of(self, reference: str, at: str | None = None) -> str:
        """The version ``reference`` names (a version name comes back as it is)."""
        from gitreg.refs import version_of

        return version_of(self.ctx, reference, at)

    def load(
        self,
        reference: str,
        *,
        at: str | None = None,
        cache_dir: Path | str | None = None,
        require_signed: bool = False,
        allow_architectures: Sequence[str] = (),
        smoke_test: bool = True,
        threads: int | None = None,
    ) -> LoadedPolicy:
        """``reference`` loaded into this process as the deploy agent loads it (see loading.py):
        under models.yaml's ``policy:``, verified, smoke-loaded in a sandboxed child, cached by
        content under ``cache_dir`` (default: gitreg's user cache, ``bundles/``)."""
        from gitreg.fs import user_cache_dir
        from gitreg.loading import LoadOptions, load_reference
        from gitreg.store.cache import BundleCache

        cache = BundleCache(Path(cache_dir) if cache_dir is not None else user_cache_dir() / "bundles")
        options = LoadOptions(
            require_signed=require_signed, allow_architectures=tuple(allow_architectures),
            smoke_test=smoke_test, threads=threads, reuse_smoke=True,
        )  # fmt: skip
        return load_reference(self.ctx, reference, cache, options, at)

    def get(self, version: str) -> VersionInfo:
        return catalog.get(self.ctx, self.version_of(version))

    def signature(self, version: str, allowed_signers: Path | str | None = None) -> SignatureInfo:
        """Whether the version's tag is signed, by whom, and whether git verifies it."""
        return catalog.signature(self.ctx, self.version_of(version), allowed_signers)

    def models(self) -> list[str]:
        return catalog.models(self.ctx)

    def require_model(self, model: str) -> None:
        catalog.require_model(self.ctx, model)

    # -- register, pull, validate, compare -------------------------------------------------------------
    def register(
        self,
        bundle_dir: Path | str,
        model: str,
        *,
        version: str | None = None,
        message: str | None = None,
        push: bool = False,
        progress: Progress | None = None,
        sign: bool = False,
    ) -> RegisterResult:
        """Copy a bundle into ``models/<model>/``, upload its bytes, commit, tag (see register.py)."""
        from gitreg.register import register

        kw = {"version": version, "message": message, "push": push, "progress": progress, "sign": sign}
        return register(self.ctx, bundle_dir, model, **kw)

    def pull(
        self, version: str, out: Path | str | None = None, *, progress: Progress | None = None
    ) -> PullResult:
        """Materialize a version's bundle into ``out`` (default ``./VERSION``), every md5 verified."""
        from gitreg.pull import pull

        return pull(self.ctx, self.version_of(version), out, progress=progress)

    def validate(
        self,
        version: str,
        *,
        record: bool = False,
        push: bool = False,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        progress: Progress | None = None,
        allow_architectures: Sequence[str] = (),
        require_signed: bool = False,
    ) -> ValidationRecord:
        """Fetch, verify, check metadata, load safely, forward pass, under the load policy."""
        from gitreg.validation import validate

        limits = {"timeout_s": timeout_s, "memory_mb": memory_mb, "progress": progress}
        signed = {"allow_architectures": allow_architectures, "require_signed": require_signed}
        return validate(self.ctx, self.version_of(version), record=record, push=push, **limits, **signed)

    def compare(self, versions: Sequence[str]) -> Comparison:
        from gitreg.compare import compare

        return compare(self.ctx, [self.version_of(v) for v in versions])

    # -- lifecycle (stages in models.yaml; see lifecycle/) -----------------------------------------------
    def promote(
        self,
        version: str,
        stage: str | None,
        *,
        canary: float | None = None,
        direct: bool = False,
        push: bool = False,
        force: bool = False,
    ) -> ChangeResult:
        """Move a version to a stage (or make it the canary), through a pull request or directly."""
        from gitreg.lifecycle import promote

        with self._invalidating():
            source = self.version_of(version)
            return promote(self.ctx, source, stage, canary=canary, direct=direct, push=push, force=force)

    def deploy(
        self,
        version: str,
        *,
        canary: float | None = None,
        direct: bool = False,
        push: bool = False,
        force: bool = False,
    ) -> ChangeResult:
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
    ) -> ChangeResult:
        """Revert the commit that last moved the stage (or set ``to``)."""
        from gitreg.lifecycle import rollback

        with self._invalidating():
            return rollback(self.ctx, model, stage=stage, to=to, direct=direct, push=push)

    def history(self, model: str | None = None, rev: str | None = None) -> list[StageChange]:
        """Every stage change from `git log -- models.yaml`, newest first."""
        from gitreg.lifecycle import history

        if model is not None:
            self.require_model(model)
        return history(self.ctx, model, rev)

    def status(self) -> list[ModelStatus]:
        """Per model: what each stage holds, its status and age, and the last change."""
        from gitreg.lifecycle import status

        return status(self.ctx, self.ctx.clock())

    def check(self, base: str | None = None, *, require_signed: bool = False) -> CheckReport:
        """Validate models.yaml as a pull request must leave it (schema, tags, validation, policy)."""
        from gitreg.lifecycle import check

        return check(self.ctx, base, require_signed=require_signed)

    # -- report, lineage, retention, doctor ------------------------------------------------------------
    def report(self, model: str | None = None) -> Report:
        """Totals by status, stage and algorithm, production, promotion history, metric series."""
        from gitreg.report import build_report

        return build_report(self.ctx, model)

    def lineage(self, version: str, max_depth: int | None = None) -> LineageNode:
        """A version and its ancestors through ``parent``, with data_version and code_commit."""
        from gitreg.report import MAX_LINEAGE_DEPTH, build_lineage

        return build_lineage(self.ctx, self.version_of(version), max_depth or MAX_LINEAGE_DEPTH)

    def cleanup(
        self, *, dry_run: bool = False, delete_tags: bool = False, push: bool = False
    ) -> CleanupResult:
        """Apply each model's ``retention`` (see retention.py); ``dry_run`` only plans."""
        from gitreg.retention import cleanup

        self.ctx.require_registry()
        with self._invalidating():
            return cleanup(self.ctx, dry_run=dry_run, delete_tags=delete_tags, push=push)

    def doctor(
        self, *, fix: bool = False, remote_check: bool = False, push: bool = False, offline: bool = False
    ) -> DoctorReport:
        """Check the registry repository and with ``fix`` repair what can be repaired (doctor.py).
        The staged versions' bytes are looked for on the DVC remote unless ``offline``; with
        ``remote_check`` every version's."""
        from gitreg.doctor import run

        with self._invalidating():
            return run(self.ctx, fix=fix, remote_check=remote_check, push=push, offline=offline)

    @contextlib.contextmanager
    def _invalidating(self) -> Iterator[None]:
        """models.yaml may change under an operation: forget the cached copy afterwards."""
        try:
            yield
        finally:
            self.ctx.invalidate()
