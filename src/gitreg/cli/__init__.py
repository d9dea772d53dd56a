"""The gitreg command line: thin commands -> Registry -> render (rich or --json).

The only package that prints. Every command goes through :func:`command`, the error funnel:
a GitregError becomes one line on stderr and exit code 1; ``--traceback`` or GITREG_DEBUG=1
shows the traceback instead.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from gitreg import __version__
from gitreg.cli import render
from gitreg.errors import GitregError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="gitreg",
    help="A Git-native model registry: versions are Git tags, bytes live in DVC, "
    "stages change by pull request.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class State:
    path: Path = Path(".")
    traceback: bool = False


state = State()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _debug() -> bool:
    return state.traceback or os.environ.get("GITREG_DEBUG", "") not in ("", "0")


def command(fn: F) -> F:
    """The error funnel: GitregError -> one line on stderr, exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GitregError as e:
            if _debug():
                raise
            render.error(e)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            render.error_text("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _version_callback(value: bool) -> None:
    if value:
        render.out(f"gitreg {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main_options(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Option("-C", help="Run as if gitreg was started in PATH (the registry repo).")
    ] = Path("."),
    traceback: Annotated[
        bool, typer.Option("--traceback", help="Show the full traceback on errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    state.path = path
    state.traceback = traceback
    if ctx.invoked_subcommand is None:  # bare `gitreg`: the help
        typer.echo(ctx.get_help())
        raise typer.Exit()


def _registry() -> Any:
    from gitreg.registry import Registry

    return Registry(state.path)


AllowedSignersOpt = Annotated[
    Path | None,
    typer.Option(
        "--allowed-signers",
        help="SSH allowed-signers file trusted to verify tag signatures (git's gpg.ssh.allowedSignersFile).",
    ),
]


def _trust_signers(path: Path | None) -> None:
    """Make every git call of this process verify SSH signatures against ``path`` (through
    GIT_CONFIG_COUNT, which git reads like ``-c``; the user's git config is not changed)."""
    if path is None:
        return
    if not path.is_file():
        raise GitregError(f"--allowed-signers {path}: no such file", "one line per key: EMAIL KEYTYPE KEY")
    n = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
    os.environ[f"GIT_CONFIG_KEY_{n}"] = "gpg.ssh.allowedSignersFile"
    os.environ[f"GIT_CONFIG_VALUE_{n}"] = str(path.resolve())
    os.environ["GIT_CONFIG_COUNT"] = str(n + 1)


def _bundle_progress() -> render.TransferProgress:
    return render.TransferProgress()


# -- init ----------------------------------------------------------------------------------------
@app.command()
@command
def init(
    remote: Annotated[
        str | None,
        typer.Option(
            help="DVC remote: a folder path or s3://bucket/prefix. Default: a local folder outside the repo."
        ),
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="S3-compatible endpoint (MinIO, moto, …) for an s3:// remote.")
    ] = None,
    ci: Annotated[str, typer.Option(help="CI templates to write: github, gitlab or none.")] = "github",
    json: JsonOpt = False,
) -> None:
    """Make this folder a registry: Git, DVC and its remote, models.yaml, CI templates; one commit."""
    from gitreg.registry import Registry

    result = Registry.init(state.path, remote=remote, endpoint_url=endpoint_url, ci=ci)
    render.init_result(result, json)


# -- register ------------------------------------------------------------------------------------
@app.command()
@command
def register(
    bundle_dir: Annotated[
        Path, typer.Argument(help="Bundle folder: policy.pt + metadata.json (+ more files).")
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name, e.g. policy.")],
    version: Annotated[
        str | None, typer.Option(help="Explicit version name (default: now, UTC: v2025-07-06--18h51).")
    ] = None,
    message: Annotated[str | None, typer.Option("--message", help="A note kept in the tag message.")] = None,
    push: Annotated[bool, typer.Option(help="Push the commit and tag to the Git remote.")] = False,
    sign: Annotated[
        bool,
        typer.Option(
            "--sign", help="Sign the tag (git tag -s: SSH or GPG as gpg.format and user.signingkey say)."
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Register a bundle as a new version: upload its bytes with DVC, commit the pointers, tag."""
    reg = _registry()
    with _bundle_progress() as progress:
        result = reg.register(
            bundle_dir, model, version=version, message=message, push=push, progress=progress, sign=sign
        )
    render.register_result(result, json)


# -- list ----------------------------------------------------------------------------------------
@app.command("list")
@command
def list_(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    stage: Annotated[str | None, typer.Option(help="Only versions holding this stage.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only versions with this status: registered, validated, failed.")
    ] = None,
    limit: Annotated[int, typer.Option(min=0, help="At most N versions, newest first; 0 for all.")] = 50,
    json: JsonOpt = False,
) -> None:
    """List versions, newest first (reads tags, notes and models.yaml in a few git calls)."""
    reg = _registry()
    if json:  # the rows as JSON text, from the list cache: no model per row
        render.emit_json_bytes(reg.versions_json(model, status, stage, limit or None))
        return
    render.version_list(reg.versions(model, status, stage, limit or None), json)


# -- show ----------------------------------------------------------------------------------------
@app.command()
@command
def show(
    version: Annotated[str, typer.Argument(help="A version, e.g. v2025-07-06--18h51.")],
    allowed_signers: Annotated[
        Path | None,
        typer.Option(help="SSH allowed-signers file to verify the tag's signature with."),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Everything about one version: metadata, metrics, files, stages, validation, lineage, signer."""
    reg = _registry()
    info = reg.get(version)
    info.signature = reg.signature(version, allowed_signers)
    render.version_detail(info, json)


# -- compare -------------------------------------------------------------------------------------
@app.command()
@command
def compare(
    versions: Annotated[list[str], typer.Argument(help="Two or more versions.")],
    json: JsonOpt = False,
) -> None:
    """Metrics side by side with the winner per metric, and the parameters that differ."""
    render.comparison(_registry().compare(versions), json)


# -- pull ----------------------------------------------------------------------------------------
@app.command()
@command
def pull(
    version: Annotated[str, typer.Argument(help="A version, e.g. v2025-07-06--18h51.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Target folder (default ./VERSION).")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Materialize a version's bundle into a folder, every file's md5 verified; no checkout."""
    reg = _registry()
    with _bundle_progress() as progress:
        result = reg.pull(version, out, progress=progress)
    render.pull_result(result, json)


# -- validate ------------------------------------------------------------------------------------
AllowArchitectureOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-architecture",
        metavar="PKG.MODULE:CLASS",
        help="Allow a state dict to be loaded into this class, pkg.module:ClassName (repeatable; "
        "adds to models.yaml's policy.architectures).",
    ),
]


def _architectures(specs: list[str] | None) -> list[str]:
    from gitreg.sandbox import is_architecture

    for spec in specs or []:
        if not is_architecture(spec):
            raise GitregError(
                f"--allow-architecture {spec!r} is not of the form pkg.module:ClassName",
                "name a class, e.g. --allow-architecture mypkg.nets:PolicyNet",
            )
    return list(specs or [])


@app.command()
@command
def validate(
    version: Annotated[str, typer.Argument(help="A version, e.g. v2025-07-06--18h51.")],
    record: Annotated[
        bool, typer.Option(help="Store the result on the tag (git notes, refs/notes/gitreg).")
    ] = False,
    push: Annotated[bool, typer.Option(help="Push the notes to the Git remote (with --record).")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds allowed for loading and the forward pass.")] = 120.0,
    memory_mb: Annotated[int, typer.Option(help="Memory limit (MiB) of the loading process.")] = 8192,
    allow_architecture: AllowArchitectureOpt = None,
    require_signed: Annotated[
        bool, typer.Option(help="Refuse a version whose tag signature does not verify (git verify-tag).")
    ] = False,
    allowed_signers: AllowedSignersOpt = None,
    json: JsonOpt = False,
) -> None:
    """Check a version: digests, metadata, safe load in a sandbox, a forward pass. Exit 1 on failure."""
    if push and not record:
        raise GitregError("--push needs --record", "gitreg validate VERSION --record --push")
    _trust_signers(allowed_signers)
    reg = _registry()
    with _bundle_progress() as progress:
        result = reg.validate(
            version,
            record=record,
            push=push,
            timeout_s=timeout,
            memory_mb=memory_mb,
            progress=progress,
            allow_architectures=_architectures(allow_architecture),
            require_signed=require_signed,
        )
    render.validation(result, json, recorded=record)
    if not result.passed:
        raise typer.Exit(1)


# -- lifecycle -----------------------------------------------------------------------------------
DirectOpt = Annotated[
    bool, typer.Option("--direct", help="Commit on the current branch instead of opening a pull request.")
]
PushOpt = Annotated[bool, typer.Option("--push", help="With --direct: push the branch to the Git remote.")]


@app.command()
@command
def promote(
    version: Annotated[str, typer.Argument(help="The version to move, e.g. v2025-07-06--18h51.")],
    stage: Annotated[
        str | None, typer.Argument(help="staging, production or archived (omit with --canary).")
    ] = None,
    canary: Annotated[
        float | None, typer.Option(help="Make VERSION the model's canary with this share of traffic (%).")
    ] = None,
    direct: DirectOpt = False,
    push: PushOpt = False,
    force: Annotated[
        bool, typer.Option(help="Allow production/canary without a passing validation record.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Change a version's stage in models.yaml: a branch + pull request (gh/glab), or --direct."""
    result = _registry().promote(version, stage, canary=canary, direct=direct, push=push, force=force)
    render.change_result(result, json)


@app.command()
@command
def deploy(
    version: Annotated[str, typer.Argument(help="The version to put in production.")],
    canary: Annotated[
        float | None, typer.Option(help="Deploy as a canary with this share of traffic (%) instead.")
    ] = None,
    direct: DirectOpt = False,
    push: PushOpt = False,
    force: Annotated[bool, typer.Option(help="Allow a version without a passing validation record.")] = False,
    json: JsonOpt = False,
) -> None:
    """Promote VERSION to production (or --canary PCT): a pull request, or --direct."""
    result = _registry().deploy(version, canary=canary, direct=direct, push=push, force=force)
    render.change_result(result, json)


@app.command()
@command
def rollback(
    model: Annotated[str, typer.Argument(help="The model, e.g. policy.")],
    stage: Annotated[
        str, typer.Option(help="The stage to roll back: production, staging or canary.")
    ] = "production",
    to: Annotated[str | None, typer.Option(help="Set this older version explicitly instead.")] = None,
    direct: DirectOpt = False,
    push: PushOpt = False,
    json: JsonOpt = False,
) -> None:
    """Undo the last change of a stage: `git revert` of the commit that made it (PR or --direct)."""
    result = _registry().rollback(model, stage=stage, to=to, direct=direct, push=push)
    render.change_result(result, json)


@app.command()
@command
def check(
    base: Annotated[
        str | None, typer.Option(help="The pull request's target (e.g. origin/main) to compare against.")
    ] = None,
    require_signed: Annotated[
        bool, typer.Option(help="Production and canary tags must carry a signature that verifies.")
    ] = False,
    allowed_signers: AllowedSignersOpt = None,
    json: JsonOpt = False,
) -> None:
    """Check models.yaml as a pull request leaves it; exit 1 on any problem (GitHub annotations in CI)."""
    _trust_signers(allowed_signers)
    report = _registry().check(base, require_signed=require_signed)
    render.check_report(report, json, github=os.environ.get("GITHUB_ACTIONS") == "true")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
@command
def history(
    model: Annotated[str | None, typer.Argument(help="Only this model (default: all).")] = None,
    json: JsonOpt = False,
) -> None:
    """Every stage change from `git log -- models.yaml`: when, who, from -> to, commit, PR."""
    render.history(_registry().history(model), json)


@app.command()
@command
def status(
    server: Annotated[
        str | None, typer.Option(help="A running `gitreg serve` (URL): what it serves next to what it wants.")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Per model: what each stage holds, its status and age, and the last change (or a server's view)."""
    if server is not None:
        render.server_status(_fetch_health(server), json)
        return
    render.status(_registry().status(), json)


def _fetch_health(url: str) -> dict[str, Any]:
    import json as jsonlib
    import urllib.error
    import urllib.request

    target = url.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(target, timeout=10) as resp:
            return dict(jsonlib.loads(resp.read()))
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise GitregError(f"cannot read {target}: {reason}", "is `gitreg serve` running there?") from None


# -- serve ---------------------------------------------------------------------------------------
@app.command()
@command
def serve(
    repo: Annotated[
        str, typer.Option(help="The registry's Git remote: URL or path (a bare mirror is kept).")
    ],
    branch: Annotated[str, typer.Option(help="The branch whose models.yaml is followed.")] = "main",
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Follow this model (repeatable; default: all).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    poll: Annotated[float, typer.Option(help="Seconds between fetches of the Git remote.")] = 30.0,
    cache: Annotated[
        Path | None,
        typer.Option(help="Folder for the mirror and verified bundles (default: ~/.cache/gitreg/serve)."),
    ] = None,
    cache_max_bytes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Keep the bundle cache under N bytes: evict unserved bundles (least recently used first); "
            "refuse a pull that still does not fit (the served version keeps serving; /health says why).",
        ),
    ] = None,
    webhook_secret_env: Annotated[
        str | None, typer.Option(help="Env var holding the webhook secret (GitHub HMAC or GitLab token).")
    ] = None,
    token_env: Annotated[
        str | None, typer.Option(help="Env var holding a bearer token that /predict requires.")
    ] = None,
    max_error_rate: Annotated[
        float, typer.Option(help="Fall back when a new version's error rate exceeds this.")
    ] = 0.05,
    max_p99_ms: Annotated[
        float, typer.Option(help="Fall back when a new version's p99 latency exceeds this.")
    ] = 1000.0,
    min_requests: Annotated[int, typer.Option(help="Requests before a new version is judged.")] = 50,
    window: Annotated[int, typer.Option(help="Sliding window (requests) for error rate and latency.")] = 500,
    max_batch: Annotated[int, typer.Option(help="Largest batch /predict accepts.")] = 1024,
    seed: Annotated[int | None, typer.Option(help="Seed for canary routing (reproducible splits).")] = None,
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads (default: torch's).")] = None,
    allow_architecture: AllowArchitectureOpt = None,
    graceful: Annotated[
        float, typer.Option(help="Seconds to let in-flight requests finish on SIGTERM.")
    ] = 30.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    require_signed: Annotated[
        bool,
        typer.Option(
            help="Refuse versions whose tag signature does not verify (the last good one keeps serving)."
        ),
    ] = False,
    allowed_signers: AllowedSignersOpt = None,
    json: Annotated[bool, typer.Option("--json", help="Log JSON lines (for log collectors).")] = False,
) -> None:
    """Serve the production (and canary) version of each model; follow models.yaml and hot-swap."""
    _trust_signers(allowed_signers)
    from gitreg.serve import AgentConfig, ServeOptions, ServerConfig, run_server
    from gitreg.serve.slots import Thresholds

    def secret(name: str | None, what: str) -> str | None:
        if name is None:
            return None
        value = os.environ.get(name)
        if not value:
            raise GitregError(f"{what}: environment variable {name} is empty or unset", f"export {name}=…")
        return value

    repo_url = repo if "://" in repo or ":" in repo.split("/")[0] else str(Path(repo).resolve())
    cache_dir = cache or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gitreg" / "serve"
    agent = AgentConfig(
        repo=repo_url,
        cache=cache_dir.resolve() / hashlib.sha1(repo_url.encode(), usedforsecurity=False).hexdigest()[:12],
        branch=branch,
        models=list(model or []),
        poll=poll,
        thresholds=Thresholds(max_error_rate, max_p99_ms, min_requests, window),
        seed=seed,
        threads=threads,
        allow_architectures=_architectures(allow_architecture),
        cache_max_bytes=cache_max_bytes,
        require_signed=require_signed,
    )
    options = ServeOptions(
        token=secret(token_env, "--token-env"),
        webhook_secret=secret(webhook_secret_env, "--webhook-secret-env"),
        max_batch=max_batch,
        stale_after=max(poll * 4, 120.0),
    )
    if log_level not in ("debug", "info", "warning", "error"):
        raise GitregError(f"unknown --log-level {log_level!r}", "use debug, info, warning or error")
    run_server(
        ServerConfig(
            agent=agent,
            options=options,
            host=host,
            port=port,
            graceful_seconds=graceful,
            log_level=log_level,
            json_logs=json,
        )
    )


# -- cleanup -------------------------------------------------------------------------------------
@app.command()
@command
def cleanup(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")] = False,
    delete_tags: Annotated[
        bool,
        typer.Option(
            "--delete-tags",
            help="Also delete the cleaned versions' tags (and take them out of models.yaml); "
            "by default tags stay: the history is immutable.",
        ),
    ] = False,
    push: Annotated[
        bool,
        typer.Option(
            "--push", help="Push the models.yaml commit (before any bytes are removed) and tag deletions."
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Apply each model's retention (keep_last, max_age_days): archive old versions holding no
    stage, remove their bytes from the DVC remote unless a kept version shares them."""
    result = _registry().cleanup(dry_run=dry_run, delete_tags=delete_tags, push=push)
    render.cleanup_result(result, json)


# -- doctor --------------------------------------------------------------------------------------
@app.command()
@command
def doctor(
    fix: Annotated[bool, typer.Option("--fix", help="Repair what can be repaired.")] = False,
    remote_check: Annotated[
        bool,
        typer.Option("--remote-check", help="Also check that every pointed object is on the DVC remote."),
    ] = False,
    push: Annotated[
        bool, typer.Option("--push", help="With --fix: push version tags the Git remote lacks.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Check the registry repo (tags, pointers, models.yaml, notes, locks, interrupted
    registrations and stage changes, unpushed tags); --fix repairs. Exit 1 when problems remain."""
    if push and not fix:
        raise GitregError("--push needs --fix", "gitreg doctor --fix --push")
    result = _registry().doctor(fix=fix, remote_check=remote_check, push=push)
    render.doctor_report(result, json)
    if not result.ok:
        raise typer.Exit(1)


# -- report and lineage --------------------------------------------------------------------------
@app.command()
@command
def report(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    json: JsonOpt = False,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Write one self-contained HTML file (charts as inline SVG) to FILE."),
    ] = None,
) -> None:
    """Totals by status, stage and algorithm, current production, promotion history, metrics over versions."""
    if json and html is not None:
        raise GitregError("--json and --html are exclusive", "pick one: gitreg report --json, or --html FILE")
    if html is not None and html.is_dir():
        raise GitregError(f"--html {html} is a folder", "name a file, e.g. --html report.html")
    result = _registry().report(model)
    if html is None:
        render.report(result, json)
        return
    from gitreg.cli.html_report import render_html
    from gitreg.manifest import atomic_write

    target = html.absolute()
    if not target.parent.is_dir():
        raise GitregError(f"--html: folder {target.parent} does not exist", "create it first")
    atomic_write(target, render_html(result).encode())
    render.html_written(str(target), result)


@app.command()
@command
def lineage(
    version: Annotated[str, typer.Argument(help="A version, e.g. v2025-07-06--18h51.")],
    depth: Annotated[int, typer.Option(help="Show at most N versions of the parent chain (1-200).")] = 100,
    json: JsonOpt = False,
) -> None:
    """A version's ancestry through `parent`: each with data_version and code_commit, as a tree."""
    render.lineage(_registry().lineage(version, max_depth=depth), json)


# -- demo ----------------------------------------------------------------------------------------
@app.command()
@command
def demo(
    workdir: Annotated[
        Path | None, typer.Option(help="Folder for the throwaway registry (default: a new temp folder).")
    ] = None,
    keep: Annotated[bool, typer.Option(help="Keep the demo folder afterwards.")] = False,
) -> None:
    """Run the guided demo on a throwaway registry (local bare Git remote, local DVC remote)."""
    from gitreg.cli.demo import run_demo

    run_demo(workdir, keep=keep)


def main() -> None:
    """Console-script entry point. Errors of the command line itself (a missing argument, an
    unknown option, a value of the wrong type) are one line and exit 1, like every refusal."""
    try:
        rc = app(standalone_mode=False)
    except GitregError as e:  # raised outside a command (e.g. by a callback)
        if _debug():
            raise
        render.error(e)
        sys.exit(1)
    except typer.Abort:
        sys.stderr.write("aborted\n")
        sys.exit(130)
    except typer.TyperException as e:  # the parser's usage errors
        if _debug():
            raise
        where = getattr(getattr(e, "ctx", None), "command_path", None) or "gitreg"
        fmt = getattr(e, "format_message", None)  # names the parameter ("Invalid value for '--limit'")
        render.error(GitregError(fmt() if callable(fmt) else str(e), f"see {where} --help"))
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)
