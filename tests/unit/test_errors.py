"""The error vocabulary: every refusal is a GitregError subclass that keeps its inputs."""

from __future__ import annotations

import inspect

import pytest

from gitreg import errors
from gitreg.errors import GitregError

CASES = [
    (
        errors.NotAVersion("v1", "it points at a blob, not a commit"),
        {"version": "v1", "reason": "it points at a blob, not a commit"},
        "tag v1 is not a gitreg version: it points at a blob",
    ),
    (errors.NoGitRemote("--push"), {"flag": "--push"}, "no Git remote"),
    (errors.ArchitectureError("architecture 'a:B' is bad", "a:B"), {"spec": "a:B"}, "'a:B' is bad"),
    (errors.DetachedHead(), {}, "HEAD is detached"),
    (
        errors.InvalidReference("policy@", "the stage after @ is empty"),
        {"text": "policy@", "problem": "the stage after @ is empty"},
        "'policy@' is no version reference: the stage after @ is empty",
    ),
    (
        errors.EmptyStage("policy", "staging", "checked out"),
        {"model": "policy", "stage": "staging", "where": "checked out"},
        "policy has no staging version in models.yaml (checked out)",
    ),
    (
        errors.MissingExtra("torch", "gitreg validate"),
        {"package": "torch", "what": "gitreg validate"},
        "gitreg validate needs torch, which is not installed",
    ),
    (errors.NoCommits(), {}, "no commits yet"),
    (errors.UnknownStatus("bogus", ("a", "b")), {"status": "bogus", "allowed": ("a", "b")}, "'bogus'"),
    (errors.UnknownCISystem("jenkins"), {"ci": "jenkins"}, "'jenkins'"),
    (errors.UnsupportedRemote("ftp://x"), {"remote": "ftp://x"}, "unsupported remote"),
    (errors.RemoteInsideRepository("/r/x"), {"path": "/r/x"}, "inside the repository"),
    (
        errors.PushFailed("m", "v1", "origin", ["refs/tags/v1"], "down"),
        {"model": "m", "version": "v1", "remote": "origin", "refspecs": ["refs/tags/v1"], "reason": "down"},
        "push failed: down",
    ),
    (errors.TooFewVersions(1), {"count": 1}, "at least two"),
    (
        errors.DiskError("models/p/x.pt", 30, "Read-only file system"),
        {"path": "models/p/x.pt", "errno": 30, "strerror": "Read-only file system"},
        "read-only file system: models/p/x.pt",
    ),
    (
        errors.StorageFull("models/p/x.pt", 28, "No space left on device"),
        {"path": "models/p/x.pt", "errno": 28},
        "no space left on device writing models/p/x.pt",
    ),
    (errors.VersionNamedTwice("v1"), {"version": "v1"}, "named twice"),
    (errors.BadArchitectureName("x"), {"spec": "x", "flag": "--allow-architecture"}, "pkg.module:ClassName"),
    (errors.UnknownStage("qa"), {"stage": "qa", "action": "promote"}, "unknown stage 'qa'"),
    (errors.UnknownStage("qa", "rollback"), {"stage": "qa", "action": "rollback"}, "cannot roll back"),
    (errors.StageRequired("v1"), {"version": "v1"}, "which stage?"),
    (errors.CanaryStageConflict("v1", "staging"), {"version": "v1", "stage": "staging"}, "--canary"),
    (errors.BadTraffic(120.0), {"traffic": 120.0}, "120 is not a percentage"),
    (errors.VersionArchived("v1"), {"version": "v1"}, "v1 is archived"),
    (
        errors.NotValidated("v1", "failed"),
        {"version": "v1", "status": "failed", "stage": "production"},
        "(failed)",
    ),
    (errors.ProductionVersion("v1", "m"), {"version": "v1", "model": "m"}, "production version of m"),
    (
        errors.WrongModel("v1", "a", "b"),
        {"version": "v1", "model": "a", "expected": "b"},
        "version of a, not b",
    ),
    (
        errors.AlreadyAtVersion("m", "production", "v1"),
        {"model": "m", "stage": "production", "version": "v1"},
        "already",
    ),
    (errors.NoStageHistory("m", "staging"), {"model": "m", "stage": "staging"}, "no commit ever changed"),
    (
        errors.ArchivedRollbackTarget("v1", "m", "production", "a" * 40),
        {"version": "v1", "model": "m", "stage": "production", "commit": "a" * 40},
        "before aaaaaaaaaaaa, is archived",
    ),
    (
        errors.PushRefused("origin", "main", "stale"),
        {"remote": "origin", "branch": "main", "reason": "stale"},
        "refused",
    ),
    (errors.UnknownRevision("nope"), {"rev": "nope", "flag": "--base"}, "no such revision"),
    (errors.NeedsWorkingTree("doctor"), {"command": "doctor"}, "needs a working tree"),
    (
        errors.ShallowClone("/r", "list"),
        {"path": "/r", "command": "list"},
        "is a shallow clone",
    ),
    (errors.LineageDepthOutOfRange(0, 200), {"depth": 0, "limit": 200}, "out of range"),
    (
        errors.PartialPush("archived 2", "origin", "down", "push later"),
        {"done": "archived 2", "remote": "origin", "reason": "down"},
        "archived 2, but the push",
    ),
    (
        errors.RemoteTagsNotDeleted(3, "origin", "down"),
        {"deleted": 3, "remote": "origin", "reason": "down"},
        "3 tags",
    ),
    (
        errors.ForgeError("gh", "auth", "gitreg/x", "https://u"),
        {"tool": "gh", "reason": "auth", "branch": "gitreg/x", "url": "https://u"},
        "gh could not open",
    ),
]


@pytest.mark.parametrize(("error", "attributes", "said"), CASES, ids=lambda x: type(x).__name__)
def test_each_refusal_keeps_its_inputs_and_says_how_to_fix_it(error: GitregError, attributes, said) -> None:
    assert isinstance(error, GitregError)
    for name, value in attributes.items():
        assert getattr(error, name) == value, name
    assert said in error.message
    assert error.hint, "every refusal says how to fix it"
    assert str(error) == f"{error.message} ({error.hint})"


def test_an_archived_rollback_target_is_an_archived_version() -> None:
    assert isinstance(
        errors.ArchivedRollbackTarget("v1", "m", "production", "a" * 40), errors.VersionArchived
    )


def test_every_error_class_of_the_core_is_tested_here() -> None:
    """A new refusal type gets a case above (its attributes are its contract)."""
    classes = {
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, GitregError) and obj.__module__ == errors.__name__
    }
    older = {
        GitregError,
        errors.InvalidVersionName,
        errors.InvalidModelName,
        errors.VersionNotFound,
        errors.VersionExists,
        errors.ModelNotFound,
        errors.BundleError,
        errors.MetadataError,
        errors.ManifestError,
        errors.NotARegistry,
        errors.GitError,
        errors.DirtyWorkingTree,
        errors.RegistryLocked,
        errors.StorageError,
        errors.DigestMismatch,
        errors.OutputExists,
        errors.Rejected,
        errors.CacheFull,
    }
    assert classes - older == {type(e) for e, _, _ in CASES}


def test_an_oserror_written_under_writing_names_the_file_and_the_fix() -> None:
    import errno

    with pytest.raises(errors.StorageFull) as info, errors.writing("models/policy/policy.pt"):
        raise OSError(errno.ENOSPC, "No space left on device")
    e = info.value
    assert (e.path, e.errno) == ("models/policy/policy.pt", errno.ENOSPC)
    assert (
        str(e)
        == "no space left on device writing models/policy/policy.pt (free space or move the repository)"
    )
    with pytest.raises(errors.DiskError) as other, errors.writing("out/x"):
        raise OSError(errno.ENOTSUP, "Operation not supported")
    assert (
        not isinstance(other.value, errors.StorageFull)
        and other.value.message == "Operation not supported: out/x"
    )
