"""Rendering: rich tables for people, JSON for machines. Nothing here talks to Git or DVC."""

from __future__ import annotations

import json as jsonlib
import os
import sys
from datetime import datetime
from types import TracebackType
from typing import Any

from pydantic import BaseModel

from gitreg.errors import GitregError

_console: Any = None
_err_console: Any = None


def console() -> Any:
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(highlight=False, soft_wrap=False)
        if not _console.is_terminal and "COLUMNS" not in os.environ:
            _console.width = 200  # pipes and logs: don't clip tables at 80 columns
    return _console


def err_console() -> Any:
    global _err_console
    if _err_console is None:
        from rich.console import Console

        _err_console = Console(stderr=True, highlight=False)
    return _err_console


def out(text: str) -> None:
    sys.stdout.write(text + "\n")


def emit_json(data: Any) -> None:
    """JSON on stdout. Models are serialized by pydantic-core (json.dumps with indent falls
    back to the pure-Python encoder: too slow for 10,000 rows)."""
    if isinstance(data, BaseModel) or (
        isinstance(data, list) and data and all(isinstance(d, BaseModel) for d in data)
    ):
        from pydantic import TypeAdapter

        kind = type(data) if isinstance(data, BaseModel) else list[type(data[0])]  # type: ignore[misc]
        raw = TypeAdapter(kind).dump_json(data, indent=2, by_alias=True)
        binary = getattr(sys.stdout, "buffer", None)
        if binary is None:  # a text-only stream (e.g. redirected to StringIO by an embedding)
            sys.stdout.write(raw.decode() + "\n")
            return
        sys.stdout.flush()
        binary.write(raw + b"\n")
        sys.stdout.flush()
        return
    sys.stdout.write(jsonlib.dumps(data, indent=2, ensure_ascii=False) + "\n")


def emit_json_bytes(raw: bytes) -> None:
    """JSON text made elsewhere (ending with a newline), written to stdout in one go."""
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:  # a text-only stream (e.g. redirected to StringIO by an embedding)
        sys.stdout.write(raw.decode())
        return
    sys.stdout.flush()
    binary.write(raw)
    sys.stdout.flush()


def error(e: GitregError) -> None:
    line = f"error: {e.message}" + (f" — {e.hint}" if e.hint else "")
    sys.stderr.write(" ".join(line.split("\n")) + "\n")


def error_text(text: str) -> None:
    sys.stderr.write(f"error: {text}\n")


def _when(d: datetime) -> str:
    return d.strftime("%Y-%m-%d %H:%M")


def _num(x: float | None) -> str:
    if x is None:
        return "—"
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.4g}"


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


_STATUS_STYLE = {"validated": "green", "failed": "red", "registered": "yellow"}


# -- progress ------------------------------------------------------------------------------------
class TransferProgress:
    """A callable progress(file, done, total) drawing rich bars on stderr when it is a terminal."""

    def __init__(self, min_bytes: int = 8 << 20) -> None:
        self.min_bytes = min_bytes
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self.enabled = sys.stderr.isatty()

    def __enter__(self) -> TransferProgress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, name: str, done: int, total: int) -> None:
        if not self.enabled or total < self.min_bytes:
            return
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=err_console(),
                transient=True,
            )
            self._progress.start()
        if name not in self._tasks:
            self._tasks[name] = self._progress.add_task(name, total=total)
        self._progress.update(self._tasks[name], completed=done)


# -- commands --------------------------------------------------------------------------------------
def init_result(r: Any, as_json: bool) -> None:
    if as_json:
        return emit_json(r)
    if not r.changed:
        out(f"{r.root} is already a gitreg registry; nothing changed.")
        out(f"DVC remote: {r.remote_url}")
        return
    out(f"Initialized a gitreg registry in {r.root}" + (" (new Git repository)" if r.created_git else ""))
    out(f"DVC remote: {r.remote_url}")
    out(f"Committed {r.commit[:10] if r.commit else ''}: {', '.join(r.written)}")
    out("Next: gitreg register BUNDLE_DIR --model NAME")


def register_result(r: Any, as_json: bool) -> None:
    if as_json:
        return emit_json(r)
    total = sum(f.size for f in r.files)
    out(r.version)
    sys.stderr.write(
        f"registered {r.model} {r.version}: {len(r.files)} files, {_size(total)}, "
        f"commit {r.commit[:10]}" + (f", pushed to {r.remote}" if r.pushed else "") + "\n"
    )


def version_list(rows: list[Any], as_json: bool) -> None:
    if as_json:
        return emit_json(rows)
    if not rows:
        out("No versions. Register one with: gitreg register BUNDLE_DIR --model NAME")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("VERSION", "MODEL", "ALGORITHM", "STATUS", "STAGES", "CREATED", "METRICS"):
        table.add_column(col, no_wrap=col != "METRICS")
    for r in rows:
        metrics = "  ".join(f"{k}={_num(v)}" for k, v in list(r.metrics.items())[:3])
        if len(r.metrics) > 3:
            metrics += f"  (+{len(r.metrics) - 3})"
        style = _STATUS_STYLE.get(r.status, "")
        table.add_row(
            r.version,
            r.model,
            r.algorithm,
            f"[{style}]{r.status}[/]",
            ", ".join(r.stages) or "—",
            _when(r.created_at),
            metrics or "—",
        )
    console().print(table)


def version_detail(v: Any, as_json: bool) -> None:
    if as_json:
        return emit_json(v)
    from rich.table import Table

    c = console()
    c.print(
        f"[bold]{v.model} {v.version}[/]  [{_STATUS_STYLE.get(v.status, '')}]{v.status}[/]"
        + (f"  stages: {', '.join(v.stages)}" if v.stages else "")
    )
    kv = Table.grid(padding=(0, 2))
    kv.add_column(style="dim")
    kv.add_column()
    kv.add_row("algorithm", v.algorithm)
    kv.add_row("framework", v.framework)
    kv.add_row("created", v.created_at.isoformat())
    kv.add_row("registered", f"{v.registered_at.isoformat()} by {v.registered_by}")
    kv.add_row("commit", v.commit)
    sig = getattr(v, "signature", None)
    if sig is not None:
        if sig.verified:
            kv.add_row("signed", f"yes, by {sig.signer or '?'} ({sig.format}): verified")
        elif sig.signed:
            kv.add_row("signed", f"yes ({sig.format or '?'}), but it does not verify: {sig.reason}")
        else:
            kv.add_row("signed", "no")
    if v.description:
        kv.add_row("description", v.description)
    if v.env_id:
        kv.add_row("env_id", v.env_id)
    if v.input_shape:
        kv.add_row("input_shape", str(v.input_shape))
    for key in ("data_version", "code_commit", "parent"):
        val = getattr(v.lineage, key)
        if val:
            kv.add_row(key, val)
    if v.message:
        kv.add_row("message", v.message)
    c.print(kv)
    if v.metrics:
        t = Table(title="metrics", title_justify="left", box=None, header_style="bold")
        t.add_column("name")
        t.add_column("value", justify="right")
        for k, x in v.metrics.items():
            t.add_row(k, _num(x))
        c.print(t)
    if v.parameters:
        t = Table(title="parameters", title_justify="left", box=None, header_style="bold")
        t.add_column("name")
        t.add_column("value")
        for k, x in v.parameters.items():
            t.add_row(k, jsonlib.dumps(x) if not isinstance(x, str) else x)
        c.print(t)
    t = Table(title="files", title_justify="left", box=None, header_style="bold")
    t.add_column("path")
    t.add_column("size", justify="right")
    t.add_column("md5")
    for f in v.files:
        t.add_row(f.path, _size(f.size), f.md5)
    c.print(t)
    if v.validation is None:
        c.print("[dim]validation: none recorded (run: gitreg validate " + v.version + " --record)[/]")
    else:
        rec = v.validation
        verdict = "[green]passed[/]" if rec.passed else "[red]failed[/]"
        c.print(f"validation: {verdict} at {rec.checked_at.isoformat()} by {rec.checked_by or '?'}")
        for check in rec.checks:
            mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
            c.print(f"  {mark} {check.name}: {check.detail}")


def comparison(cmp: Any, as_json: bool) -> None:
    if as_json:
        return emit_json(cmp)
    from rich.table import Table

    c = console()
    t = Table(box=None, header_style="bold")
    t.add_column("METRIC")
    for v in cmp.versions:
        t.add_column(v, justify="right")
    t.add_column("BETTER")
    for row in cmp.metrics:
        cells = []
        for v in cmp.versions:
            text = _num(row.values.get(v))
            cells.append(f"[bold green]{text} ★[/]" if row.winner == v else text)
        better = {"higher": "higher ↑", "lower": "lower ↓"}.get(row.direction or "", "?")
        t.add_row(row.name, *cells, better)
    if cmp.metrics:
        c.print(t)
    else:
        out("No metrics recorded for these versions.")
    wins: dict[str, int] = {}
    for row in cmp.metrics:
        if row.winner:
            wins[row.winner] = wins.get(row.winner, 0) + 1
    if wins:
        summary = ", ".join(f"{v} wins {n}" for v, n in sorted(wins.items(), key=lambda kv: -kv[1]))
        c.print(f"[dim]{summary} of {len(cmp.metrics)} metrics[/]")
    differing = [p for p in cmp.parameters if p.differs]
    if differing:
        p = Table(title="parameters that differ", title_justify="left", box=None, header_style="bold")
        p.add_column("PARAMETER")
        for v in cmp.versions:
            p.add_column(v)
        for row in differing:
            p.add_row(
                row.name,
                *(
                    "—" if row.values.get(v) is None else jsonlib.dumps(row.values.get(v))
                    for v in cmp.versions
                ),
            )
        c.print(p)
    elif cmp.parameters:
        c.print("[dim]parameters: identical[/]")


def pull_result(r: Any, as_json: bool) -> None:
    if as_json:
        return emit_json(r)
    total = sum(f.size for f in r.files)
    out(r.out)
    sys.stderr.write(f"pulled {r.model} {r.version}: {len(r.files)} files, {_size(total)}, md5 verified\n")


def validation(rec: Any, as_json: bool, recorded: bool) -> None:
    if as_json:
        return emit_json(rec)
    c = console()
    verdict = "[bold green]PASSED[/]" if rec.passed else "[bold red]FAILED[/]"
    c.print(f"{rec.version}: validation {verdict}")
    for check in rec.checks:
        mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
        c.print(f"  {mark} {check.name}: {check.detail}")
    if rec.load_seconds is not None:
        extra = (
            f", forward pass {rec.forward_seconds * 1000:.1f} ms" if rec.forward_seconds is not None else ""
        )
        c.print(f"  load {rec.load_seconds * 1000:.0f} ms{extra}")
    if recorded:
        c.print("  recorded on the tag (refs/notes/gitreg)")


# -- lifecycle ----------------------------------------------------------------------------------------
def change_result(r: Any, as_json: bool) -> None:
    if as_json:
        return emit_json(r)
    what = f"{r.model} {r.stage}"
    if not r.changed:
        out(f"{what} is already {r.version}; nothing changed.")
        return
    target = r.version or "(cleared)"
    verb = "rolled back" if r.action == "rollback" else "set"
    how = ""
    if r.kind == "revert":
        how = f" (git revert of {r.reverted[:10]})"
    elif r.kind == "restore":
        how = f" (restored as before {r.reverted[:10]})"
    if r.mode == "direct":
        out(f"{verb} {what} to {target} in {r.commit[:10]} on {r.branch}{how}")
        if r.pushed:
            out(f"pushed {r.branch} to {r.remote}")
        return
    out(f"{what}: {r.previous or 'none'} -> {target}{how}")
    out(f"branch {r.branch} ({r.commit[:10]}) from {r.base}")
    if not r.pushed:
        out("this repository has no Git remote: push the branch and open a pull request, or use --direct")
    elif r.pr_tool:
        out(f"pull request opened with {r.pr_tool}: {r.pr_url or '(see above)'}")
    elif r.pr_url:
        out(f"pushed; open the pull request: {r.pr_url}")
    else:
        out(f"pushed to {r.remote}; open a pull request from {r.branch} into {r.base}")


_SEVERITY_STYLE = {"error": "red", "warning": "yellow", "info": "dim"}


def doctor_report(r: Any, as_json: bool) -> None:
    if as_json:
        return emit_json(r.model_dump(mode="json"))
    c = console()
    for f in r.findings:
        if f.fixed:
            c.print(f"[green]fixed[/]   {f.check}: {f.message}", highlight=False)
            continue
        style = _SEVERITY_STYLE.get(f.severity, "")
        c.print(f"[{style}]{f.severity:<7}[/] {f.check}: {f.message}", highlight=False)
        if f.hint:
            c.print(f"        [dim]{f.hint}[/]", highlight=False)
    problems = [f for f in r.findings if not f.fixed and f.severity != "info"]
    fixed = sum(1 for f in r.findings if f.fixed)
    summary = f"{r.versions} versions checked" + (", DVC remote checked" if r.remote_check else "")
    if fixed:
        summary += f", {fixed} repaired"
    if problems:
        fixable = sum(1 for f in problems if f.fixable)
        summary += f"; {len(problems)} problem(s) remain"
        if fixable and not r.fix:
            summary += f" ({fixable} fixable: gitreg doctor --fix)"
        sys.stderr.write(summary + "\n")
    else:
        out(f"ok: {summary}")


def check_report(r: Any, as_json: bool, github: bool) -> None:
    if as_json:
        emit_json(r)
    elif r.ok:
        out(f"{r.file}: ok ({r.models} models" + (f", compared with {r.base})" if r.base else ")"))
    for p in r.problems:
        where = f"{r.file}:{p.line}" if p.line else r.file
        if github:
            loc = f"file={r.file}" + (f",line={p.line}" if p.line else "")
            sys.stdout.write(f"::error {loc}::{p.message}\n")
        if not as_json:
            sys.stderr.write(f"{where}: error: {p.message}\n")
    if not r.ok and not as_json:
        sys.stderr.write(f"{len(r.problems)} problem(s) in {r.file}\n")


def history(changes: list[Any], as_json: bool) -> None:
    if as_json:
        return emit_json(changes)
    if not changes:
        out("No stage changes yet. Promote a version with: gitreg promote VERSION staging")
        return
    from rich.table import Table

    t = Table(box=None, header_style="bold")
    for col in ("WHEN", "MODEL", "STAGE", "FROM", "TO", "WHO", "COMMIT", "PR"):
        t.add_column(col, no_wrap=True)
    for c in changes:
        to = c.version or "—"
        if c.traffic is not None:
            to += f" ({_num(c.traffic)}%)"
        who = c.author.split(" <")[0]
        pr = f"#{c.pull_request}" if c.pull_request else (c.merge[:10] if c.merge else "")
        t.add_row(_when(c.date), c.model, c.stage, c.previous or "—", to, who, c.commit[:10], pr)
    console().print(t)


def status(models: list[Any], as_json: bool) -> None:
    if as_json:
        return emit_json(models)
    if not models:
        out("No models yet. Register one with: gitreg register BUNDLE_DIR --model NAME")
        return
    c = console()
    for m in models:
        c.print(
            f"[bold]{m.model}[/]  {m.versions} versions, {m.archived} archived"
            + (f", latest {m.latest}" if m.latest else "")
        )
        if not m.stages:
            c.print("  [dim]no stage set[/]")
        for s in m.stages:
            style = _STATUS_STYLE.get(s.status, "red")
            share = f" {_num(s.traffic)}%" if s.traffic is not None else ""
            age = f"{s.age_days:.1f} days old" if s.age_days is not None else "no such tag"
            c.print(f"  {s.stage + share:<16} {s.version}  [{style}]{s.status}[/]  {age}")
        if m.last_change:
            lc = m.last_change
            c.print(
                f"  [dim]last change: {lc.stage} {lc.previous or '—'} -> {lc.version or '—'} "
                f"{_when(lc.date)} by {lc.author.split(' <')[0]} ({lc.commit[:10]})[/]"
            )


def server_status(h: dict[str, Any], as_json: bool) -> None:
    if as_json:
        return emit_json(h)
    c = console()
    style = "green" if h.get("status") == "ok" else "yellow"
    c.print(
        f"[{style}]{h.get('status')}[/]  {h.get('repo')} @ {h.get('branch')} {(h.get('commit') or '')[:10]}"
        f"  last sync {h.get('last_sync') or 'never'}"
    )
    if h.get("last_error"):
        c.print(f"  [red]sync error:[/] {h['last_error']}")
    from rich.table import Table

    t = Table(box=None, header_style="bold")
    for col in ("MODEL", "SERVED", "WANTED (models.yaml)", "CANARY", "PREVIOUS", "LAST ERROR"):
        t.add_column(col)
    for name, m in (h.get("models") or {}).items():
        served, wanted = m.get("served"), m.get("wanted")
        mark = "" if served == wanted else " [yellow]≠[/]"
        can = m.get("canary") or {}
        canary = f"{can.get('served') or '—'} ({_num(can.get('traffic'))}%)" if can.get("wanted") else "—"
        t.add_row(
            name,
            f"{served or '—'}{mark}",
            wanted or "—",
            canary,
            m.get("previous") or "—",
            m.get("last_error") or "",
        )
    c.print(t)


# -- retention ----------------------------------------------------------------------------------------
_ACTION_STYLE = {"keep": "green", "archive": "yellow", "purge": "yellow", "delete": "red"}


def cleanup_result(r: Any, as_json: bool) -> None:
    if as_json:
        return emit_json(r)
    plan = r.plan
    c = console()
    if not plan.policies:
        out("No model has a retention policy: nothing to clean.")
        out("Set one in models.yaml, e.g. `retention: {keep_last: 20, max_age_days: 90}` under a model.")
        return
    from rich.table import Table

    t = Table(box=None, header_style="bold")
    for col in ("MODEL", "VERSION", "AGE", "ACTION", "REASON", "FREES"):
        t.add_column(col, no_wrap=col != "REASON", justify="right" if col in ("AGE", "FREES") else "left")
    for row in plan.rows:
        style = _ACTION_STYLE.get(row.action, "")
        t.add_row(
            row.model,
            row.version,
            f"{row.age_days:.1f} d",
            f"[{style}]{row.action}[/]",
            row.reason,
            _size(row.bytes_freed) if row.bytes_freed else "—",
        )
    c.print(t)
    policies = "; ".join(
        f"{p.model}: "
        + ", ".join(
            f"{k} {v}"
            for k, v in (("keep_last", p.keep_last), ("max_age_days", p.max_age_days))
            if v is not None
        )
        for p in plan.policies
    )
    c.print(f"[dim]retention: {policies}[/]")
    if plan.unmanaged:
        c.print(f"[dim]no retention (not cleaned): {', '.join(plan.unmanaged)}[/]")
    if plan.already_clean:
        c.print(f"[dim]{plan.already_clean} archived versions already cleaned[/]")
    verb = "delete" if plan.delete_tags else "archive"
    n, objs = plan.versions_cleaned, len(plan.objects)
    if r.dry_run:
        out(
            f"dry run: would {verb} {n} version{'s' if n != 1 else ''} and remove {objs} "
            f"object{'s' if objs != 1 else ''} ({_size(plan.bytes_freed)}) from the DVC remote; "
            f"{plan.versions_kept} kept. Nothing changed."
        )
        return
    if not n:
        out(f"Nothing to clean: {plan.versions_kept} versions kept.")
        return
    done = "deleted" if plan.delete_tags else "archived"
    where = f" in {r.commit[:10]} on {r.branch}" if r.commit else ""
    out(
        f"{done} {n} version{'s' if n != 1 else ''}{where}; removed {r.objects_removed} "
        f"object{'s' if r.objects_removed != 1 else ''} ({_size(r.bytes_freed)}) from the DVC remote "
        f"and {r.cache_objects_removed} from the local cache; {plan.versions_kept} kept."
    )
    if r.tags_deleted:
        also = f" (and on {r.remote})" if r.remote_tags_deleted else ""
        out(f"deleted {len(r.tags_deleted)} tags{also}")
    if r.pushed:
        out(f"pushed {r.branch} to {r.remote}")


# -- report and lineage ----------------------------------------------------------------------------
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


def _counts(counts: dict[str, int], styles: dict[str, str] | None = None) -> str:
    from rich.markup import escape

    parts = []
    for key, n in counts.items():
        style = (styles or {}).get(key, "")
        label = f"[{style}]{escape(key)}[/]" if style else escape(key)
        parts.append(f"{label} {n}" if n else f"[dim]{escape(key)} 0[/]")
    return " · ".join(parts) or "—"


def report(r: Any, as_json: bool, recent: int = 10) -> None:
    if as_json:
        return emit_json(r)
    from rich.markup import escape
    from rich.table import Table

    c = console()
    scope = f"model {r.model}" if r.model else "all models"
    c.print(
        f"[bold]{escape(r.registry)}[/]  {escape(scope)} · {r.totals.versions} versions of "
        f"{r.totals.models} models · generated {_when(r.generated_at)} UTC"
    )
    stage_styles = {"production": "green", "staging": "yellow", "canary": "magenta", "archived": "dim"}
    c.print(f"  status      {_counts(r.by_status, _STATUS_STYLE)}")
    c.print(f"  stage       {_counts(r.by_stage, stage_styles)}")
    c.print(f"  algorithm   {_counts(r.by_algorithm)}")
    if not r.totals.versions:
        out("No versions. Register one with: gitreg register BUNDLE_DIR --model NAME")
        return

    prod = {p.model: p for p in r.production}
    t = Table(title="production", title_justify="left", box=None, header_style="bold", pad_edge=False)
    for col in ("MODEL", "VERSION", "ALGORITHM", "STATUS", "SINCE", "METRICS"):
        t.add_column(col, no_wrap=col != "METRICS")
    for m in r.models:
        p = prod.get(m.model)
        if p is None:
            t.add_row(escape(m.model), "[dim]none[/]", "", "", "", "")
            continue
        metrics = "  ".join(f"{k}={_num(v)}" for k, v in list(p.metrics.items())[:4])
        style = _STATUS_STYLE.get(p.status, "red")
        t.add_row(
            escape(m.model),
            p.version,
            escape(p.algorithm or "—"),
            f"[{style}]{p.status}[/]",
            _when(p.since) if p.since else "—",
            escape(metrics) or "—",
        )
    c.print(t)

    if r.metrics:
        t = Table(
            title="metrics over versions", title_justify="left", box=None, header_style="bold", pad_edge=False
        )
        for col in ("MODEL", "METRIC", "N", "FIRST", "LATEST", "BEST", "TREND (oldest → newest)"):
            t.add_column(col, justify="right" if col in ("N", "FIRST", "LATEST", "BEST") else "left")
        for s in r.metrics:
            values = [p.value for p in s.points]
            best = "—"
            if s.direction == "higher":
                best = _num(max(values)) + " ↑"
            elif s.direction == "lower":
                best = _num(min(values)) + " ↓"
            t.add_row(
                escape(s.model),
                escape(s.metric),
                str(len(values)),
                _num(values[0]),
                _num(values[-1]),
                best,
                f"[cyan]{sparkline(values)}[/]",
            )
        c.print(t)

    if r.history:
        t = Table(
            title=f"promotions (latest {min(recent, len(r.history))} of {len(r.history)})",
            title_justify="left",
            box=None,
            header_style="bold",
            pad_edge=False,
        )
        for col in ("WHEN", "MODEL", "STAGE", "FROM", "TO", "WHO", "COMMIT"):
            t.add_column(col, no_wrap=True)
        for ch in r.history[:recent]:
            to = ch.version or "—"
            if ch.traffic is not None:
                to += f" ({_num(ch.traffic)}%)"
            t.add_row(
                _when(ch.date),
                escape(ch.model),
                ch.stage,
                ch.previous or "—",
                to,
                escape(ch.author.split(" <")[0]),
                ch.commit[:10],
            )
        c.print(t)
    else:
        c.print("[dim]no stage changes yet[/]")


def html_written(path: str, r: Any) -> None:
    out(path)
    sys.stderr.write(
        f"wrote the report ({r.totals.versions} versions, {len(r.metrics)} metric charts) to {path}\n"
    )


def lineage(node: Any, as_json: bool) -> None:
    if as_json:
        return emit_json(node)
    from rich.markup import escape
    from rich.tree import Tree

    def label(n: Any) -> str:
        style = _STATUS_STYLE.get(n.status or "", "")
        head = f"[bold]{n.version}[/] ({escape(n.model)})"
        if n.algorithm:
            head += f"  {escape(n.algorithm)}"
        if n.status:
            head += f"  [{style}]{n.status}[/]"
        facts = [
            f"data_version: {escape(n.data_version) if n.data_version else '[dim]—[/]'}",
            f"code_commit: {escape(n.code_commit) if n.code_commit else '[dim]—[/]'}",
        ]
        if n.registered_at:
            facts.append(f"registered {_when(n.registered_at)}")
        return head + "\n[dim]│[/] " + "  ".join(facts)

    tree = Tree(label(node), guide_style="dim")
    branch, n = tree, node
    while True:
        if n.missing_parent:
            branch.add(f"[red]parent {escape(n.missing_parent)}: not a version tag in this repository[/]")
        if n.cycle_at:
            branch.add(f"[yellow]parent {escape(n.cycle_at)}: already above (a cycle); stopped[/]")
        if n.continues_at:
            branch.add(f"[dim]… parent {escape(n.continues_at)} and older (raise --depth to see them)[/]")
        if n.parent is None:
            break
        n = n.parent
        branch = branch.add(label(n))
    console().print(tree)
