"""The human form of each command's result, written through the output sink.

A view takes the sink and one typed result and writes pieces (text or ``(text, style)``), tables
and trees. It never builds markup and never writes to a stream: :mod:`gitreg.cli.output`
escapes every string, so any metadata, tag message, author or agent answer prints as plain text.
The JSON form needs no view: ``Output.emit`` serializes the result itself.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from gitreg.cli.output import Output, Piece, Table, Tree, join_pieces, visible
from gitreg.metrics import best_value

if TYPE_CHECKING:
    from gitreg.cli._types import (
        ChangeResult,
        CheckReport,
        CheckResult,
        CleanupResult,
        Comparison,
        DoctorReport,
        Health,
        InitResult,
        LineageNode,
        ModelStatus,
        PullResult,
        RegisterResult,
        Report,
        Resolution,
        StageChange,
        ValidationRecord,
        VersionInfo,
    )

STATUS_STYLE = {"validated": "green", "failed": "red", "registered": "yellow"}
SEVERITY_STYLE = {"error": "red", "warning": "yellow", "info": "dim"}
ACTION_STYLE = {"keep": "green", "archive": "yellow", "purge": "yellow", "delete": "red"}
STAGE_STYLE = {"production": "green", "staging": "yellow", "canary": "magenta", "archived": "dim"}


# -- formatting helpers (pure) --------------------------------------------------------------------
def when(d: datetime) -> str:
    return d.strftime("%Y-%m-%d %H:%M")


def num(x: float | None) -> str:
    if x is None:
        return "—"
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.4g}"


def any_num(x: object) -> str:
    """A number from an untrusted source (an agent's JSON): formatted if it is one, else shown."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return "—" if x is None else str(x)
    try:
        return num(float(x))
    except (OverflowError, ValueError):  # inf, nan
        return str(x)


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def person(author: str) -> str:
    """``Name <email>`` -> ``Name``."""
    return author.split(" <", maxsplit=1)[0]


_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 24) -> str:
    """The last ``width`` values as block characters, low to high."""
    values = values[-width:]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if hi == lo:
        return _SPARK[3] * len(values)
    return "".join(_SPARK[round((v - lo) / (hi - lo) * (len(_SPARK) - 1))] for v in values)


def _status(status: str, default: str = "") -> Piece:
    return (status, STATUS_STYLE.get(status, default))


def _checks(out: Output, checks: list[CheckResult]) -> None:
    for check in checks:
        mark = ("✓", "green") if check.ok else ("✗", "red")
        out.line("  ", mark, f" {check.name}: {check.detail}")


# -- registry ---------------------------------------------------------------------------------------
def init_result(out: Output, r: InitResult) -> None:
    if not r.changed:
        out.line(f"{r.root} is already a gitreg registry; nothing changed.")
        out.line(f"DVC remote: {r.remote_url}")
        return
    fresh = " (new Git repository)" if r.created_git else ""
    out.line(f"Initialized a gitreg registry in {r.root}{fresh}")
    out.line(f"DVC remote: {r.remote_url}")
    out.line(f"Committed {r.commit[:10] if r.commit else ''}: {', '.join(r.written)}")
    out.line("Next: gitreg register BUNDLE_DIR --model NAME")


def register_result(out: Output, r: RegisterResult) -> None:
    total = sum(f.size for f in r.files)
    out.line(r.version)
    out.note(
        f"registered {r.model} {r.version}: {len(r.files)} files, {size(total)}, "
        f"commit {r.commit[:10]}"
        + (f", pushed to {r.remote}" if r.pushed else "")
        + (
            f" (another machine pushed first: re-based and named {r.version} after {r.retries} retries)"
            if r.retries
            else ""
        )
    )


def _metrics_summary(metrics: Mapping[str, float], n: int, *, more: bool = True) -> str:
    text = "  ".join(f"{k}={num(v)}" for k, v in list(metrics.items())[:n])
    if more and len(metrics) > n:
        text += f"  (+{len(metrics) - n})"
    return text


def version_list(out: Output, rows: list[VersionInfo]) -> None:
    if not rows:
        out.line("No versions. Register one with: gitreg register BUNDLE_DIR --model NAME")
        return
    cols = ("VERSION", "MODEL", "ALGORITHM", "STATUS", "STAGES", "CREATED", "METRICS")
    t = Table(*((c, {"no_wrap": c != "METRICS"}) for c in cols), pad_edge=False)
    for r in rows:
        t.row(
            r.version,
            r.model,
            r.algorithm,
            _status(r.status),
            ", ".join(r.stages) or "—",
            when(r.created_at),
            _metrics_summary(r.metrics, 3) or "—",
        )
    out.table(t)


def version_detail(out: Output, v: VersionInfo) -> None:
    out.line(
        (f"{v.model} {v.version}", "bold"),
        "  ",
        _status(v.status),
        f"  stages: {', '.join(v.stages)}" if v.stages else "",
    )
    kv = Table(("", {"style": "dim"}), "", grid=True)
    kv.row("algorithm", v.algorithm)
    kv.row("framework", v.framework)
    kv.row("created", v.created_at.isoformat())
    kv.row("registered", f"{v.registered_at.isoformat()} by {v.registered_by}")
    kv.row("commit", v.commit)
    sig = v.signature
    if sig is not None:
        if sig.verified:
            kv.row("signed", f"yes, by {sig.signer or '?'} ({sig.format}): verified")
        elif sig.signed:
            kv.row("signed", f"yes ({sig.format or '?'}), but it does not verify: {sig.reason}")
        else:
            kv.row("signed", "no")
    if v.description:
        kv.row("description", v.description)
    if v.env_id:
        kv.row("env_id", v.env_id)
    if v.input_shape:
        kv.row("input_shape", str(v.input_shape))
    for key in ("data_version", "code_commit", "parent"):
        val = getattr(v.lineage, key)
        if val:
            kv.row(key, val)
    if v.message:
        kv.row("message", v.message)
    out.table(kv)
    if v.metrics:
        t = Table("name", ("value", {"justify": "right"}), title="metrics")
        for k, x in v.metrics.items():
            t.row(k, num(x))
        out.table(t)
    if v.parameters:
        t = Table("name", "value", title="parameters")
        for k, p in v.parameters.items():
            t.row(k, p if isinstance(p, str) else jsonlib.dumps(p, ensure_ascii=False))
        out.table(t)
    t = Table("path", ("size", {"justify": "right"}), "md5", title="files")
    for f in v.files:
        t.row(f.path, size(f.size), f.md5)
    out.table(t)
    if v.validation is None:
        out.line((f"validation: none recorded (run: gitreg validate {v.version} --record)", "dim"))
        return
    rec = v.validation
    verdict = ("passed", "green") if rec.passed else ("failed", "red")
    out.line("validation: ", verdict, f" at {rec.checked_at.isoformat()} by {rec.checked_by or '?'}")
    if rec.input_shape:
        out.line(f"input shape: {rec.input_shape} (one observation, as validated)")
    _checks(out, rec.checks)


def _param(value: object) -> str:
    return "—" if value is None else jsonlib.dumps(value, ensure_ascii=False)


def comparison(out: Output, cmp: Comparison) -> None:
    t = Table("METRIC", *((v, {"justify": "right"}) for v in cmp.versions), "BETTER")
    for row in cmp.metrics:
        cells: list[Piece] = []
        for v in cmp.versions:
            shown = num(row.values.get(v))
            cells.append((f"{shown} ★", "bold green") if row.winner == v else shown)
        better = {"higher": "higher ↑", "lower": "lower ↓"}.get(row.direction or "", "?")
        t.row(row.name, *cells, better)
    if cmp.metrics:
        out.table(t)
    else:
        out.line("No metrics recorded for these versions.")
    wins: dict[str, int] = {}
    for row in cmp.metrics:
        if row.winner:
            wins[row.winner] = wins.get(row.winner, 0) + 1
    if wins:
        summary = ", ".join(f"{v} wins {n}" for v, n in sorted(wins.items(), key=lambda kv: -kv[1]))
        out.line((f"{summary} of {len(cmp.metrics)} metrics", "dim"))
    differing = [p for p in cmp.parameters if p.differs]
    if differing:
        p = Table("PARAMETER", *cmp.versions, title="parameters that differ")
        for prow in differing:
            p.row(prow.name, *(_param(prow.values.get(v)) for v in cmp.versions))
        out.table(p)
    elif cmp.parameters:
        out.line(("parameters: identical", "dim"))


def resolution(out: Output, r: Resolution) -> None:
    where = f"{r.model}@{r.stage}" if r.stage else r.model
    share = f" ({r.traffic:g}% of traffic)" if r.traffic is not None else ""
    out.line((r.version, "bold"), f"  {where}{share}  ", (r.status, STATUS_STYLE.get(r.status, "")))
    out.line(f"  commit {r.commit}  tag {r.tag_object}")
    for f in r.files:
        out.line(f"  {f.path}  {f.md5}  {size(f.size)}")
    if r.stage and r.stage != "latest":
        at = f" at {r.manifest_ref}" if r.manifest_ref else ""
        set_by = f"set by {r.set_by[:12]}" if r.set_by else "not committed yet"
        out.line(f"  models.yaml{at}: {set_by}")


def pull_result(out: Output, r: PullResult) -> None:
    total = sum(f.size for f in r.files)
    out.line(r.out)
    out.note(f"pulled {r.model} {r.version}: {len(r.files)} files, {size(total)}, md5 verified")


def validation(out: Output, rec: ValidationRecord, *, recorded: bool = False) -> None:
    verdict = ("PASSED", "bold green") if rec.passed else ("FAILED", "bold red")
    out.line(f"{rec.version}: validation ", verdict)
    _checks(out, rec.checks)
    if rec.load_seconds is not None:
        extra = (
            f", forward pass {rec.forward_seconds * 1000:.1f} ms" if rec.forward_seconds is not None else ""
        )
        out.line(f"  load {rec.load_seconds * 1000:.0f} ms{extra}")
    if recorded:
        out.line("  recorded on the tag (refs/notes/gitreg)")


# -- lifecycle ----------------------------------------------------------------------------------------
def change_result(out: Output, r: ChangeResult) -> None:
    what = f"{r.model} {r.stage}"
    if not r.changed:
        out.line(f"{what} is already {r.version}; nothing changed.")
        return
    target = r.version or "(cleared)"
    verb = "rolled back" if r.action == "rollback" else "set"
    commit = (r.commit or "")[:10]
    how = ""
    if r.kind == "revert":
        how = f" (git revert of {(r.reverted or '')[:10]})"
    elif r.kind == "restore":
        how = f" (restored as before {(r.reverted or '')[:10]})"
    if r.mode == "direct":
        out.line(f"{verb} {what} to {target} in {commit} on {r.branch}{how}")
        if r.pushed:
            out.line(f"pushed {r.branch} to {r.remote}")
        return
    out.line(f"{what}: {r.previous or 'none'} -> {target}{how}")
    out.line(f"branch {r.branch} ({commit}) from {r.base}")
    if not r.pushed:
        out.line(
            "this repository has no Git remote: push the branch and open a pull request, or use --direct"
        )
    elif r.pr_tool:
        out.line(f"pull request opened with {r.pr_tool}: {r.pr_url or '(see above)'}")
    elif r.pr_url:
        out.line(f"pushed; open the pull request: {r.pr_url}")
    else:
        out.line(f"pushed to {r.remote}; open a pull request from {r.branch} into {r.base}")


def check_report(out: Output, r: CheckReport) -> None:
    if r.ok:
        out.line(f"{r.file}: ok ({r.models} models" + (f", compared with {r.base})" if r.base else ")"))
    for p in r.problems:
        where = f"{r.file}:{p.line}" if p.line else r.file
        out.note(f"{where}: error: {p.message}")
    if not r.ok:
        out.note(f"{len(r.problems)} problem(s) in {r.file}")


def _gh_data(s: str) -> str:
    """GitHub workflow-command escaping of a message (what `core.error` does), then the sink's."""
    return visible(s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def _gh_property(s: str) -> str:
    return _gh_data(s).replace(":", "%3A").replace(",", "%2C")


def github_annotations(out: Output, r: CheckReport) -> None:
    """One ``::error`` workflow command per problem, in either output mode (GitHub reads stdout)."""
    for p in r.problems:
        loc = f"file={_gh_property(r.file)}" + (f",line={p.line}" if p.line else "")
        out.raw(f"::error {loc}::{_gh_data(p.message)}")


def history(out: Output, changes: list[StageChange]) -> None:
    if not changes:
        out.line("No stage changes yet. Promote a version with: gitreg promote VERSION staging")
        return
    cols = ("WHEN", "MODEL", "STAGE", "FROM", "TO", "WHO", "COMMIT", "PR")
    t = Table(*((c, {"no_wrap": True}) for c in cols))
    for c in changes:
        to = c.version or "—"
        if c.traffic is not None:
            to += f" ({num(c.traffic)}%)"
        pr = f"#{c.pull_request}" if c.pull_request else (c.merge[:10] if c.merge else "")
        t.row(when(c.date), c.model, c.stage, c.previous or "—", to, person(c.author), c.commit[:10], pr)
    out.table(t)


def status(out: Output, models: list[ModelStatus]) -> None:
    if not models:
        out.line("No models yet. Register one with: gitreg register BUNDLE_DIR --model NAME")
        return
    for m in models:
        out.line(
            (m.model, "bold"),
            f"  {m.versions} versions, {m.archived} archived" + (f", latest {m.latest}" if m.latest else ""),
        )
        if not m.stages:
            out.line("  ", ("no stage set", "dim"))
        for s in m.stages:
            share = f" {num(s.traffic)}%" if s.traffic is not None else ""
            age = f"{s.age_days:.1f} days old" if s.age_days is not None else "no such tag"
            label = visible(s.stage + share).ljust(16)
            out.line(f"  {label} {s.version}  ", _status(s.status, "red"), f"  {age}")
        if m.last_change:
            lc = m.last_change
            out.line(
                (
                    f"  last change: {lc.stage} {lc.previous or '—'} -> {lc.version or '—'} "
                    f"{when(lc.date)} by {person(lc.author)} ({lc.commit[:10]})",
                    "dim",
                )
            )


def server_status(out: Output, h: Health) -> None:
    """A running server's /health: every value the agent returned is data, shown as text."""
    out.line(
        (h.status, "green" if h.ok else "yellow"),
        f"  {h.repo} @ {h.branch} {(h.commit or '')[:10]}  last sync {h.last_sync or 'never'}",
    )
    if h.last_error:
        out.line("  ", ("sync error:", "red"), f" {h.last_error}")
    t = Table("MODEL", "SERVED", "WANTED (models.yaml)", "CANARY", "PREVIOUS", "LAST ERROR")
    for name, m in h.models.items():
        mark: list[Piece] = [] if m.served == m.wanted else [" ", ("≠", "yellow")]
        can = m.canary
        canary = f"{can.served or '—'} ({any_num(can.traffic)}%)" if can.wanted else "—"
        t.row(name, [m.served or "—", *mark], m.wanted or "—", canary, m.previous or "—", m.last_error or "")
    out.table(t)


# -- maintenance ----------------------------------------------------------------------------------
def doctor_report(out: Output, r: DoctorReport) -> None:
    for f in r.findings:
        if f.fixed:
            out.line(("fixed", "green"), f"   {f.check}: {f.message}")
            continue
        out.line((f"{f.severity:<7}", SEVERITY_STYLE.get(f.severity, "")), f" {f.check}: {f.message}")
        if f.hint:
            out.line("        ", (f.hint, "dim"))
    problems = r.problems
    fixed = sum(1 for f in r.findings if f.fixed)
    summary = f"{r.versions} versions checked"
    if r.bytes_checked:
        summary += f", the bytes of {r.bytes_checked} {'' if r.remote_check else 'staged '}on the DVC remote"
    if fixed:
        summary += f", {fixed} repaired"
    if problems:
        fixable = sum(1 for f in problems if f.fixable)
        summary += f"; {len(problems)} problem(s) remain"
        if fixable and not r.fix:
            summary += f" ({fixable} fixable: gitreg doctor --fix)"
        out.note(summary)
    else:
        out.line(f"ok: {summary}")


def cleanup_result(out: Output, r: CleanupResult) -> None:
    plan = r.plan
    if not plan.policies:
        out.line("No model has a retention policy: nothing to clean.")
        out.line("Set one in models.yaml, e.g. `retention: {keep_last: 20, max_age_days: 90}` under a model.")
        return
    cols = ("MODEL", "VERSION", "AGE", "ACTION", "REASON", "FREES")
    t = Table(
        *(
            (c, {"no_wrap": c != "REASON", "justify": "right" if c in ("AGE", "FREES") else "left"})
            for c in cols
        )
    )
    for row in plan.rows:
        t.row(
            row.model,
            row.version,
            f"{row.age_days:.1f} d",
            (row.action, ACTION_STYLE.get(row.action, "")),
            row.reason,
            size(row.bytes_freed) if row.bytes_freed else "—",
        )
    out.table(t)
    policies = "; ".join(
        f"{p.model}: "
        + ", ".join(
            f"{k} {v}"
            for k, v in (("keep_last", p.keep_last), ("max_age_days", p.max_age_days))
            if v is not None
        )
        for p in plan.policies
    )
    out.line((f"retention: {policies}", "dim"))
    if plan.unmanaged:
        out.line((f"no retention (not cleaned): {', '.join(plan.unmanaged)}", "dim"))
    if plan.already_clean:
        out.line((f"{plan.already_clean} archived versions already cleaned", "dim"))
    verb = "delete" if plan.delete_tags else "archive"
    n, objs = plan.versions_cleaned, len(plan.objects)
    if r.dry_run:
        out.line(
            f"dry run: would {verb} {plural(n, 'version')} and remove {plural(objs, 'object')} "
            f"({size(plan.bytes_freed)}) from the DVC remote; {plan.versions_kept} kept. Nothing changed."
        )
        return
    if not n:
        out.line(f"Nothing to clean: {plan.versions_kept} versions kept.")
        return
    done = "deleted" if plan.delete_tags else "archived"
    where = f" in {r.commit[:10]} on {r.branch}" if r.commit else ""
    out.line(
        f"{done} {plural(n, 'version')}{where}; removed {plural(r.objects_removed, 'object')} "
        f"({size(r.bytes_freed)}) from the DVC remote "
        f"and {r.cache_objects_removed} from the local cache; {plan.versions_kept} kept."
    )
    if r.tags_deleted:
        also = f" (and on {r.remote})" if r.remote_tags_deleted else ""
        out.line(f"deleted {len(r.tags_deleted)} tags{also}")
    if r.pushed:
        out.line(f"pushed {r.branch} to {r.remote}")


# -- report and lineage -----------------------------------------------------------------------------
def _counts(counts: dict[str, int], styles: dict[str, str] | None = None) -> list[Piece]:
    parts: list[Piece] = []
    for key, n in counts.items():
        style = (styles or {}).get(key, "")
        parts.append((f"{key} {n}", style) if n else (f"{key} 0", "dim"))
    return join_pieces(parts, " · ") or ["—"]


def report(out: Output, r: Report, *, recent: int = 10) -> None:
    scope = f"model {r.model}" if r.model else "all models"
    out.line(
        (r.registry, "bold"),
        f"  {scope} · {r.totals.versions} versions of {r.totals.models} models · "
        f"generated {when(r.generated_at)} UTC",
    )
    out.line("  status      ", *_counts(r.by_status, STATUS_STYLE))
    out.line("  stage       ", *_counts(r.by_stage, STAGE_STYLE))
    out.line("  algorithm   ", *_counts(r.by_algorithm))
    if not r.totals.versions:
        out.line("No versions. Register one with: gitreg register BUNDLE_DIR --model NAME")
        return

    prod = {p.model: p for p in r.production}
    cols = ("MODEL", "VERSION", "ALGORITHM", "STATUS", "SINCE", "METRICS")
    t = Table(*((c, {"no_wrap": c != "METRICS"}) for c in cols), title="production", pad_edge=False)
    for m in r.models:
        p = prod.get(m.model)
        if p is None:
            t.row(m.model, ("none", "dim"), "", "", "", "")
            continue
        t.row(
            m.model,
            p.version,
            p.algorithm or "—",
            _status(p.status, "red"),
            when(p.since) if p.since else "—",
            _metrics_summary(p.metrics, 4, more=False) or "—",
        )
    out.table(t)

    if r.metrics:
        numeric = ("N", "FIRST", "LATEST", "BEST")
        cols = ("MODEL", "METRIC", *numeric, "TREND (oldest → newest)")
        t = Table(
            *((c, {"justify": "right" if c in numeric else "left"}) for c in cols),
            title="metrics over versions",
            pad_edge=False,
        )
        for s in r.metrics:
            values = [p.value for p in s.points]
            best = "—"
            if s.direction is not None:
                best = num(best_value(values, s.direction)) + {"higher": " ↑", "lower": " ↓"}[s.direction]
            t.row(
                s.model,
                s.metric,
                str(len(values)),
                num(values[0]),
                num(values[-1]),
                best,
                (sparkline(values), "cyan"),
            )
        out.table(t)

    if not r.history:
        out.line(("no stage changes yet", "dim"))
        return
    t = Table(
        *((c, {"no_wrap": True}) for c in ("WHEN", "MODEL", "STAGE", "FROM", "TO", "WHO", "COMMIT")),
        title=f"promotions (latest {min(recent, len(r.history))} of {len(r.history)})",
        pad_edge=False,
    )
    for ch in r.history[:recent]:
        to = ch.version or "—"
        if ch.traffic is not None:
            to += f" ({num(ch.traffic)}%)"
        t.row(when(ch.date), ch.model, ch.stage, ch.previous or "—", to, person(ch.author), ch.commit[:10])
    out.table(t)


def html_written(out: Output, path: str, r: Report) -> None:
    out.line(path)
    out.note(f"wrote the report ({r.totals.versions} versions, {len(r.metrics)} metric charts) to {path}")


def _lineage_label(n: LineageNode) -> list[list[Piece]]:
    head: list[Piece] = [(n.version, "bold"), f" ({n.model})"]
    if n.algorithm:
        head.append(f"  {n.algorithm}")
    if n.status:
        head += ["  ", (n.status, STATUS_STYLE.get(n.status, ""))]
    facts: list[Piece] = [("│", "dim"), " data_version: ", n.data_version or ("—", "dim")]
    facts += ["  code_commit: ", n.code_commit or ("—", "dim")]
    if n.registered_at:
        facts.append(f"  registered {when(n.registered_at)}")
    return [head, facts]


def lineage(out: Output, node: LineageNode) -> None:
    tree = Tree(_lineage_label(node))
    branch, n = tree, node
    while True:
        if n.missing_parent:
            branch.add([[(f"parent {n.missing_parent}: not a version tag in this repository", "red")]])
        if n.cycle_at:
            branch.add([[(f"parent {n.cycle_at}: already above (a cycle); stopped", "yellow")]])
        if n.continues_at:
            branch.add([[(f"… parent {n.continues_at} and older (raise --depth to see them)", "dim")]])
        if n.parent is None:
            break
        n = n.parent
        branch = branch.add(_lineage_label(n))
    out.tree(tree)
