"""`gitreg check`: everything a pull request touching models.yaml must satisfy (schema, tags,
validation, one stage per change, and the load policy of :mod:`gitreg.policy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from gitreg import catalog
from gitreg import manifest as mf
from gitreg import policy as load_policy
from gitreg.context import Context
from gitreg.errors import ManifestError, UnknownRevision
from gitreg.lifecycle.history import _parse_manifest, _stages_of, history, stage_value

if TYPE_CHECKING:
    from gitreg.catalog import VersionInfo


class Problem(BaseModel):
    message: str
    line: int | None = None
    model: str | None = None


class CheckReport(BaseModel):
    ok: bool
    file: str = mf.MANIFEST_FILE
    base: str | None = None
    models: int = 0
    problems: list[Problem] = Field(default_factory=list)


def check(ctx: Context, base: str | None = None, *, require_signed: bool = False) -> CheckReport:
    """Everything a pull request touching models.yaml must satisfy (``require_signed``: as if
    the policy said so, every production/canary tag's signature must verify)."""
    try:
        m = ctx.read_manifest(required=True)  # a bare repository's: the branch's
        missing = mf.missing_models(m)
        if missing is not None:  # an empty file, or no `models:`: nothing a hook should pass
            raise ManifestError(mf.MANIFEST_FILE, missing)
    except ManifestError as e:
        return CheckReport(ok=False, base=base, problems=[Problem(message=e.problem, line=e.line)])
    problems: list[Problem] = []
    versions = {v.version: v for v in catalog.versions(ctx)}
    needed = {v for e in m.model.models.values() for stage, v in e.stages.items() if stage == "production"}
    needed |= {e.canary.version for e in m.model.models.values() if e.canary is not None}
    if any(v in versions and versions[v].status != "validated" for v in needed) and ctx.fetch_notes():
        versions = {v.version: v for v in catalog.versions(ctx)}  # validated on the remote since

    def add(model: str | None, ln: int | None, message: str) -> None:
        problems.append(Problem(model=model, line=ln, message=message))

    def line(*keys: Any) -> int | None:
        return m.line_of("models", *keys)

    def check_ref(model: str, where: str, version: str, ln: int | None, need_validated: bool) -> None:
        info = versions.get(version)
        if info is None:
            add(
                model,
                ln,
                f"{model} {where}: {version} is not a version tag in this repository "
                "(push the tag, or fetch tags: git fetch --tags)",
            )
        elif info.model != model:
            add(model, ln, f"{model} {where}: {version} is a version of {info.model}, not {model}")
        elif need_validated and info.status != "validated":
            add(
                model,
                ln,
                f"{model} {where}: {version} has no passing validation record ({info.status}), "
                f"here or in the Git remote's refs/notes/gitreg; run gitreg validate {version} --record",
            )

    for name, entry in m.model.models.items():
        for stage, v in entry.stages.items():
            check_ref(name, stage, v, line(name, "stages", stage), stage == "production")
            if v in entry.archived:
                add(
                    name,
                    line(name, "stages", stage),
                    f"{name} {stage}: {v} is archived; archived versions hold no stage",
                )
        if entry.canary:
            check_ref(name, "canary", entry.canary.version, line(name, "canary", "version"), True)
            if entry.canary.version in entry.archived:
                add(name, line(name, "canary"), f"{name} canary: {entry.canary.version} is archived")
        for i, v in enumerate(entry.archived):
            check_ref(name, "archived", v, line(name, "archived", i), False)

    # What the policy allows to be loaded and served (unknown policy keys fail the schema above).
    for name, entry in m.model.models.items():
        held = [("production", entry.stages.get("production"), line(name, "stages", "production"))]
        if entry.canary:
            held.append(("canary", entry.canary.version, line(name, "canary", "version")))
        for where, v, ln in held:
            info = versions.get(v) if v else None
            if info is not None and info.model == name:  # a bad reference is reported above
                policy = m.model.policy
                if require_signed and not policy.require_signed:
                    policy = policy.model_copy(update={"require_signed": True})
                for problem in policy_problems(ctx, policy, info):
                    add(name, ln, f"{name} {where}: {v} {problem}")

    base_m: mf.ManifestModel | None = None
    if base is not None:
        if ctx.git.rev_parse(base) is None:
            raise UnknownRevision(base, "--base")
        base_m = _parse_manifest(ctx.git.read_file(base, mf.MANIFEST_FILE))
        for name in m.model.models:
            changed = sorted(
                s
                for s in _stages_of(base_m, name) | _stages_of(m.model, name)
                if stage_value(base_m, name, s) != stage_value(m.model, name, s)
            )
            if _canary_graduation(base_m, m.model, name, changed):
                changed = ["production"]
            if len(changed) > 1:
                add(
                    name,
                    line(name),
                    f"{name}: {len(changed)} stages change in one pull request "
                    f"({', '.join(changed)}); change one stage per pull request",
                )

    if m.model.policy.require_staging_before_production:
        staged = _ever_staged(ctx, base_m, m.model)
        for name, entry in m.model.models.items():
            prod = entry.stages.get("production")
            old = stage_value(base_m, name, "production") if base_m else None
            if prod and (old is None or old[0] != prod) and prod not in staged.get(name, set()):
                add(
                    name,
                    line(name, "stages", "production"),
                    f"{name} production: {prod} was never in staging"
                    " (policy require_staging_before_production)",
                )
    return CheckReport(ok=not problems, base=base, models=len(m.model.models), problems=problems)


def facts(info: VersionInfo) -> load_policy.LoadFacts:
    """What the load policy needs to know of a version, from its tag and validation record."""
    return load_policy.LoadFacts(
        files=tuple((f.path, f.size) for f in info.files),
        framework=info.framework,
        architecture=info.architecture,
        recorded_format=info.validation.policy_format if info.validation else None,
    )


def bundle_format(info: VersionInfo) -> str:
    """What a version's policy file is, as far as its tag and validation record tell (see
    :func:`gitreg.policy.bundle_format`)."""
    return facts(info).format


def policy_problems(ctx: Context, policy: mf.LoadPolicy, info: VersionInfo) -> list[str]:
    """Why ``policy`` forbids loading this version (empty: it does not), from the tag alone."""
    found = load_policy.refusals(policy, facts(info), lambda: ctx.git.verify_tag(info.version))
    return [r.message for r in found]


def _canary_graduation(
    base: mf.ManifestModel | None, head: mf.ManifestModel, name: str, changed: list[str]
) -> bool:
    """production := the canary, canary cleared: one promotion, not two changes."""
    if sorted(changed) != ["canary", "production"]:
        return False
    old_canary = stage_value(base, name, "canary")
    new_prod = stage_value(head, name, "production")
    return old_canary is not None and new_prod is not None and old_canary[0] == new_prod[0]


def _ever_staged(ctx: Context, base: mf.ManifestModel | None, head: mf.ManifestModel) -> dict[str, set[str]]:
    staged: dict[str, set[str]] = {}
    for m in (base, head):
        for name, entry in m.models.items() if m else []:
            if entry.stages.get("staging"):
                staged.setdefault(name, set()).add(entry.stages["staging"])
    if ctx.git.has_commits():
        for change in history(ctx):
            if change.stage == "staging" and change.version:
                staged.setdefault(change.model, set()).add(change.version)
    return staged
