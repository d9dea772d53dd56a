"""`gitreg demo`: a guided tour on a throwaway registry.

Everything happens inside one folder (a new temp folder, or ``--workdir``)::

    remote.git/    a bare Git remote (what GitHub or GitLab would be)
    dvc-remote/    the DVC remote folder (what S3 would be)
    registry/      the registry repository, with `origin` = remote.git
    bundles/       two policies exported as a trainer would (policy.pt + metadata.json)
    teammate/      a fresh clone of remote.git, to pull a version the way a colleague would
    pulled/        the pulled bundle

The demo sets its own Git identity in the demo repositories' local config, so it runs on a
machine where Git has never been configured. torch is imported inside the functions that train
(train.py); the server, the waiting and the load come from gitreg.testing (serving.py).
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import tempfile
import time
from pathlib import Path

from rich.markup import escape

from gitreg import __version__
from gitreg.cli import render
from gitreg.cli.demo.narration import DEMO_EMAIL, DEMO_NAME, Narrator, configure, git
from gitreg.cli.demo.serving import lifecycle_and_serving
from gitreg.cli.demo.train import EPISODE_LEN, N_ACTIONS, OBS_DIM, export_bundle, train_dqn, train_ppo
from gitreg.errors import GitregError
from gitreg.versions import parse_version

MODEL = "policy"


def _prepare(workdir: Path | None) -> tuple[Path, bool]:
    """The demo folder and whether the demo created it."""
    if workdir is None:
        return Path(tempfile.mkdtemp(prefix="gitreg-demo-")).resolve(), True
    root = workdir.expanduser().absolute()
    if root.exists():
        if not root.is_dir() or any(root.iterdir()):
            raise GitregError(
                f"{root} is not an empty folder", "pass a new or empty folder to --workdir, or omit it"
            )
        return root.resolve(), False
    root.mkdir(parents=True)
    return root.resolve(), True


def _remove(root: Path, created: bool) -> None:
    if created:
        shutil.rmtree(root, ignore_errors=True)
        return
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB"


# -- the tour --------------------------------------------------------------------------------------
def run_demo(workdir: Path | None, *, keep: bool) -> None:
    """Run the guided demo; raise on any failed step (the CLI turns it into exit code 1)."""
    t0 = time.perf_counter()
    root, created = _prepare(workdir)
    n = Narrator()
    n.c.print(f"[bold]gitreg {__version__} demo[/]: a model registry that lives in a Git repository.")
    n.say(f"Everything happens in {escape(str(root))}; nothing outside it is touched.")
    try:
        versions = _tour(n, root)
    except BaseException:
        n.c.print()
        n.c.print(f"[bold red]The demo stopped.[/] Its folder is kept for inspection: {escape(str(root))}")
        raise
    elapsed = time.perf_counter() - t0
    _summary(n, root, versions, keep=keep, elapsed=elapsed)
    if not keep:
        _remove(root, created)


def _tour(n: Narrator, root: Path) -> list[str]:
    from gitreg.registry import Registry

    remote_git = root / "remote.git"
    dvc_remote = root / "dvc-remote"
    repo = root / "registry"

    # 1. set-up ------------------------------------------------------------------------------
    n.heading("Set up: a Git remote, a DVC remote and an empty registry")
    n.say("Stand-ins for GitHub and S3: a bare Git repository and a plain folder.")
    n.cmd(f"cd {shlex.quote(str(root))}")
    n.cmd("git init --bare remote.git && mkdir dvc-remote")
    git(root, "init", "-q", "--bare", "-b", "main", str(remote_git))
    dvc_remote.mkdir()
    n.cmd("git init registry && cd registry && git remote add origin ../remote.git")
    git(root, "init", "-q", "-b", "main", str(repo))
    configure(repo)
    git(repo, "remote", "add", "origin", str(remote_git))
    n.say(f'(the demo repositories get their own identity, "{DEMO_NAME} <{DEMO_EMAIL}>", in local config)')
    n.cmd("gitreg init --remote ../dvc-remote")
    init = Registry.init(repo, remote=str(dvc_remote), ci="github")
    n.line(f"Initialized a gitreg registry in {escape(init.root)}")
    n.line(f"DVC remote: {escape(init.remote_url)}")
    n.line(f"Committed {(init.commit or '')[:10]}: {', '.join(init.written)}")

    # 2. training ----------------------------------------------------------------------------
    n.heading("Train two small policies and export them as a trainer would")
    n.say(
        f"A toy contextual bandit on synthetic data: {OBS_DIM} observations, {N_ACTIONS} actions, "
        f"+1 per step with the right action, {EPISODE_LEN} steps per episode."
    )
    bundles: dict[str, Path] = {}
    for trainer in (train_dqn, train_ppo):
        t = trainer()
        bundles[t.key] = export_bundle(t, root / "bundles" / t.key)
        metrics = "  ".join(f"{k}={v:g}" for k, v in t.metrics.items())
        n.line(
            f"{t.algo}: {t.hyperparameters['train_steps']} gradient steps in {t.seconds:.1f} s  {metrics}"
            f"  -> bundles/{t.key}/ (policy.pt TorchScript + metadata.json)"
        )

    # 3. register ----------------------------------------------------------------------------
    n.heading("Register both bundles as versions of the model 'policy'")
    n.say(
        "Bytes go to the DVC remote, the pointer and metadata.json are committed, "
        "an annotated tag names the version; --push sends commit and tag to origin."
    )
    reg = Registry(repo)
    versions: list[str] = []
    for key in ("dqn", "ppo"):
        n.cmd(f"gitreg register ../bundles/{key} --model {MODEL} --push")
        r = reg.register(bundles[key], MODEL, push=True)
        if not r.pushed:
            raise GitregError(f"{r.version} was registered but not pushed", "check the demo's Git remote")
        policy = next(f for f in r.files if f.path == "policy.pt")
        n.line(
            f"[bold]{r.version}[/]  policy.pt ({_size(policy.size)}, md5 {policy.md5[:12]}…) "
            f"uploaded to the DVC remote, commit {r.commit[:10]}, tag pushed to {r.remote}"
        )
        versions.append(r.version)
    first, second = versions
    if first == second:
        raise GitregError(f"both registrations got the name {first}", "this is a bug in gitreg")
    v1, v2 = parse_version(first), parse_version(second)
    if v1.minute == v2.minute:
        n.say(
            "Version names come from the UTC clock, to the minute. Both were registered in the same "
            f"minute, so the second got the suffix -{v2.seq}: names stay unique and sort in time order."
        )
    else:
        n.say("Version names come from the UTC clock, to the minute, so they sort in time order.")

    # 4. list ---------------------------------------------------------------------------------
    n.heading("List the versions")
    n.say("Read from the tags (and their notes) in a couple of git calls: no checkout, no DVC.")
    n.cmd("gitreg list")
    render.version_list(reg.versions(), False)

    # 5. compare ------------------------------------------------------------------------------
    n.heading("Compare them")
    n.cmd(f"gitreg compare {first} {second}")
    render.comparison(reg.compare([first, second]), False)

    # 6. pull ---------------------------------------------------------------------------------
    n.heading(f"A teammate clones the registry and pulls {first}")
    teammate = root / "teammate"
    out = root / "pulled" / first
    n.cmd("git clone ../remote.git ../teammate && cd ../teammate")
    git(root, "clone", "-q", str(remote_git), str(teammate))
    n.cmd(f"gitreg pull {first} --out ../pulled/{first}")
    pulled = Registry(teammate).pull(first, out)
    for f in pulled.files:
        actual = hashlib.md5((out / f.path).read_bytes(), usedforsecurity=False).hexdigest()
        if actual != f.md5:
            raise GitregError(f"pulled {f.path}: md5 {actual}, expected {f.md5}", "this is a bug in gitreg")
        n.line(f"  [green]✓[/] {f.path:<14} {_size(f.size):>9}  md5 {f.md5}")
    n.say(
        f"{len(pulled.files)} files in pulled/{first}/, each md5-checked against the pointer committed "
        "in Git; the clone had no DVC cache, so policy.pt came from the DVC remote."
    )

    # 7. validate -----------------------------------------------------------------------------
    n.heading("Validate both versions and record the result on their tags")
    n.say(
        "What CI runs on every tag push: fetch, verify digests, check metadata, load policy.pt in a "
        "sandboxed child process and run a forward pass on a dummy observation."
    )
    failed: list[str] = []
    for v in versions:
        n.cmd(f"gitreg validate {v} --record --push")
        rec = reg.validate(v, record=True, push=True)
        render.validation(rec, False, recorded=True)
        if not rec.passed:
            failed.append(v)
    if failed:
        raise GitregError(f"validation failed for {', '.join(failed)}", "see the checks above")

    # 8. list again ------------------------------------------------------------------------------
    n.heading("List again: both versions are now validated")
    n.cmd("gitreg list")
    rows = reg.versions()
    render.version_list(rows, False)
    not_validated = [r.version for r in rows if r.version in versions and r.status != "validated"]
    if not_validated or len({r.version for r in rows} & set(versions)) != 2:
        raise GitregError(f"expected both versions validated, got {not_validated}", "this is a bug in gitreg")
    lifecycle_and_serving(n, root, reg, versions)
    return versions


def _summary(n: Narrator, root: Path, versions: list[str], *, keep: bool, elapsed: float) -> None:
    first, second = versions
    n.c.print()
    n.c.print(
        f"[bold green]Done[/] in {elapsed:.1f} s: two versions registered, compared, pulled, validated, "
        "promoted by pull request, served, hot-swapped under load and rolled back."
    )
    if keep:
        n.line(f"The demo folder is kept: {escape(str(root))}")
        n.line("  registry/    the registry repository (origin = ../remote.git)")
        n.line("  remote.git/  the bare Git remote: branch main, the version tags, refs/notes/gitreg")
        n.line("  dvc-remote/  the DVC remote holding the policy.pt bytes")
        n.line(f"  bundles/, teammate/, pulled/{first}/")
        n.c.print()
        n.c.print("[bold]Next[/], in the kept folder:")
        steps = [
            (f"cd {shlex.quote(str(root / 'registry'))}", ""),
            (f"gitreg show {second}", "everything about one version"),
            ("gitreg list --status validated --json", "the same list, for scripts"),
            (f"git show --no-patch {first}", "the tag message is the version record"),
            (f"git notes --ref=gitreg show {first}", "the validation record on the tag"),
            ("git ls-remote ../remote.git", "what a teammate or CI sees"),
            (f"rm -rf {shlex.quote(str(root))}", "when you are done"),
        ]
    else:
        n.line(f"The demo folder {escape(str(root))} was removed.")
        n.c.print()
        n.c.print("[bold]Next[/]:")
        steps = [
            ("gitreg demo --keep --workdir gitreg-demo", "run it again and keep the folder to explore"),
            ("gitreg init", "in your own repository, then:"),
            ("gitreg register BUNDLE_DIR --model NAME --push", "policy.pt + metadata.json from your trainer"),
        ]
    width = max(len(cmd) for cmd, _ in steps) + 2
    for cmd, what in steps:
        n.line(f"  [cyan]{escape(cmd)}[/]" + (f"{' ' * (width - len(cmd))}[dim]# {what}[/]" if what else ""))
    if keep:
        n.say("serve.log holds the deploy agent's log; serve-cache/ its bare mirror and verified bundles.")
