"""`gitreg demo`: a guided tour on a throwaway registry.

Everything happens inside one folder (a new temp folder, or ``--workdir``)::

    remote.git/    a bare Git remote (what GitHub or GitLab would be)
    dvc-remote/    the DVC remote folder (what S3 would be)
    registry/      the registry repository, with `origin` = remote.git
    bundles/       two policies exported as a trainer would (policy.pt + metadata.json)
    teammate/      a fresh clone of remote.git, to pull a version the way a colleague would
    pulled/        the pulled bundle

The demo sets its own Git identity in the demo repositories' local config, so it runs on a
machine where Git has never been configured. torch is imported inside the functions that train.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.markup import escape

from gitreg import __version__
from gitreg.cli import render
from gitreg.errors import GitregError
from gitreg.gitrepo import run_git
from gitreg.versions import parse_version

MODEL = "policy"
OBS_DIM = 4
N_ACTIONS = 2
EPISODE_LEN = 200
EVAL_EPISODES = 20
TASK_SEED = 1234
DEMO_NAME = "gitreg demo"
DEMO_EMAIL = "demo@gitreg.invalid"
# Local config for the demo repositories: an identity, and no signing a global config may ask for.
LOCAL_GIT_CONFIG = {
    "user.name": DEMO_NAME,
    "user.email": DEMO_EMAIL,
    "commit.gpgsign": "false",
    "tag.gpgsign": "false",
    "push.gpgsign": "false",
}


# -- toy training --------------------------------------------------------------------------------
@dataclass
class Trained:
    """A trained policy as its trainer would export it."""

    key: str
    algo: str
    module: Any  # a scripted torch module: obs [N, OBS_DIM] -> scores [N, N_ACTIONS]
    metrics: dict[str, float]
    hyperparameters: dict[str, Any]
    seconds: float
    description: str = ""


def _torch() -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*NumPy.*")
        import torch

    torch.set_num_threads(1)  # tiny nets: threads cost more than they give
    return torch


class Adam:
    """Adam, by hand: torch.optim pulls in torch._dynamo and sympy, seconds of import for a
    demo whose training takes a fraction of that."""

    def __init__(
        self, torch: Any, params: list[Any], lr: float, betas: tuple[float, float] = (0.9, 0.999)
    ) -> None:
        self.torch = torch
        self.params = params
        self.lr = lr
        self.b1, self.b2 = betas
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    def step(self) -> None:
        """Apply the gradients and clear them."""
        self.t += 1
        c1, c2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        with self.torch.no_grad():
            for p, m, v in zip(self.params, self.m, self.v, strict=True):
                if p.grad is None:
                    continue
                m.mul_(self.b1).add_(p.grad, alpha=1 - self.b1)
                v.mul_(self.b2).addcmul_(p.grad, p.grad, value=1 - self.b2)
                p.sub_(self.lr * (m / c1) / ((v / c2).sqrt() + 1e-8))
                p.grad = None


def _task(torch: Any) -> Callable[[Any], Any]:
    """A contextual bandit: the right action for an observation is a fixed non-linear rule."""
    gen = torch.Generator().manual_seed(TASK_SEED)
    w = torch.randn(OBS_DIM, generator=gen)

    def best_action(obs: Any) -> Any:
        score = obs @ w + 0.75 * obs[..., 0] * obs[..., 1]
        return (score > 0).long()

    return best_action


def _evaluate(torch: Any, net: Any, best_action: Callable[[Any], Any]) -> float:
    """Mean episode reward of the greedy policy: +1 per step with the right action."""
    gen = torch.Generator().manual_seed(TASK_SEED + 1)
    obs = torch.randn(EVAL_EPISODES, EPISODE_LEN, OBS_DIM, generator=gen)
    with torch.no_grad():
        actions = net(obs.reshape(-1, OBS_DIM)).argmax(-1).reshape(EVAL_EPISODES, EPISODE_LEN)
    return float((actions == best_action(obs)).sum(-1).float().mean())


def train_dqn(seed: int = 0, steps: int = 300) -> Trained:
    """One-step DQN on the bandit: fit Q(s, a) to the observed reward, epsilon-greedy."""
    torch = _torch()
    t0 = time.perf_counter()
    best_action = _task(torch)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    nn = torch.nn
    q = nn.Sequential(
        nn.Linear(OBS_DIM, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, N_ACTIONS)
    )
    lr, batch, eps0, eps1 = 1e-3, 64, 1.0, 0.05
    opt = Adam(torch, list(q.parameters()), lr=lr)
    losses: list[float] = []
    for step in range(steps):
        eps = eps0 + (eps1 - eps0) * min(1.0, step / (0.6 * steps))
        obs = torch.randn(batch, OBS_DIM, generator=gen)
        with torch.no_grad():
            greedy = q(obs).argmax(-1)
        explore = torch.rand(batch, generator=gen) < eps
        action = torch.where(explore, torch.randint(0, N_ACTIONS, (batch,), generator=gen), greedy)
        reward = (action == best_action(obs)).float()
        q_sa = q(obs).gather(1, action[:, None]).squeeze(1)
        loss = torch.nn.functional.mse_loss(q_sa, reward)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    q.eval()
    metrics = {
        "reward": round(_evaluate(torch, q, best_action), 2),
        "loss": round(sum(losses[-20:]) / 20, 4),
    }
    params = {
        "learning_rate": lr,
        "batch_size": batch,
        "train_steps": steps,
        "hidden_sizes": [32, 32],
        "exploration_final_eps": eps1,
        "seed": seed,
    }
    return Trained(
        key="dqn",
        algo="DQN",
        module=torch.jit.script(q),
        metrics=metrics,
        hyperparameters=params,
        seconds=time.perf_counter() - t0,
        description="Q-network for the demo bandit (one-step DQN, epsilon-greedy)",
    )


def train_ppo(seed: int = 1, iterations: int = 75, epochs: int = 4) -> Trained:
    """PPO on the bandit: clipped surrogate with a learned baseline; exports the actor."""
    torch = _torch()
    t0 = time.perf_counter()
    best_action = _task(torch)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    nn = torch.nn
    actor = nn.Sequential(nn.Linear(OBS_DIM, 32), nn.Tanh(), nn.Linear(32, N_ACTIONS))
    critic = nn.Sequential(nn.Linear(OBS_DIM, 32), nn.Tanh(), nn.Linear(32, 1))
    lr, batch, clip, ent_coef, vf_coef = 3e-3, 256, 0.2, 0.01, 0.5
    opt = Adam(torch, [*actor.parameters(), *critic.parameters()], lr=lr)
    log_softmax = torch.nn.functional.log_softmax
    losses: list[float] = []
    for _ in range(iterations):
        obs = torch.randn(batch, OBS_DIM, generator=gen)
        with torch.no_grad():
            logp_all = log_softmax(actor(obs), -1)
            u = torch.rand(batch, generator=gen)
            action = (u < logp_all[:, 1].exp()).long()  # sample with our generator: reproducible
            logp_old = logp_all.gather(1, action[:, None]).squeeze(1)
            reward = (action == best_action(obs)).float()
            adv = reward - critic(obs).squeeze(1)
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        for _ in range(epochs):
            logp_all = log_softmax(actor(obs), -1)
            ratio = torch.exp(logp_all.gather(1, action[:, None]).squeeze(1) - logp_old)
            entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
            policy_loss = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()
            value_loss = torch.nn.functional.mse_loss(critic(obs).squeeze(1), reward)
            loss = policy_loss + vf_coef * value_loss - ent_coef * entropy
            loss.backward()
            opt.step()
            losses.append(loss.item())
    actor.eval()
    metrics = {
        "reward": round(_evaluate(torch, actor, best_action), 2),
        "loss": round(sum(losses[-20:]) / 20, 4),
    }
    params = {
        "learning_rate": lr,
        "batch_size": batch,
        "train_steps": iterations * epochs,
        "hidden_sizes": [32],
        "clip_range": clip,
        "n_epochs": epochs,
        "seed": seed,
    }
    return Trained(
        key="ppo",
        algo="PPO",
        module=torch.jit.script(actor),
        metrics=metrics,
        hyperparameters=params,
        seconds=time.perf_counter() - t0,
        description="policy network for the demo bandit (PPO actor, logits)",
    )


def export_bundle(trained: Trained, folder: Path) -> Path:
    """Write the bundle a trainer hands over: TorchScript policy.pt + metadata.json."""
    folder.mkdir(parents=True, exist_ok=True)
    trained.module.save(str(folder / "policy.pt"))
    meta = {
        "algo": trained.algo,
        "framework": "torchscript",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": trained.metrics,
        "hyperparameters": trained.hyperparameters,
        "input_shape": [OBS_DIM],
        "data_version": f"synthetic-bandit-v1 (task seed {TASK_SEED})",
        "code_commit": f"gitreg {__version__} (gitreg/cli/demo.py)",
        "env_id": "gitreg-demo/ContextualBandit-v1",
        "description": trained.description,
    }
    (folder / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder


# -- narration -----------------------------------------------------------------------------------
class Narrator:
    def __init__(self) -> None:
        self.c = render.console()
        self.step = 0

    def heading(self, text: str) -> None:
        self.step += 1
        self.c.print()
        self.c.print(f"[bold magenta]{self.step}. {text}[/]")

    def cmd(self, text: str) -> None:
        self.c.print(f"[bold cyan]$ {escape(text)}[/]", soft_wrap=True)

    def say(self, text: str) -> None:
        self.c.print(f"[dim]{text}[/]", soft_wrap=True)

    def line(self, text: str = "") -> None:
        self.c.print(text, soft_wrap=True)


def _git(cwd: Path, *args: str) -> str:
    return run_git(args, cwd).stdout.decode().strip()


def _configure(repo: Path) -> None:
    for key, value in LOCAL_GIT_CONFIG.items():
        _git(repo, "config", "--local", key, value)


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
    _git(root, "init", "-q", "--bare", "-b", "main", str(remote_git))
    dvc_remote.mkdir()
    n.cmd("git init registry && cd registry && git remote add origin ../remote.git")
    _git(root, "init", "-q", "-b", "main", str(repo))
    _configure(repo)
    _git(repo, "remote", "add", "origin", str(remote_git))
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
    _git(root, "clone", "-q", str(remote_git), str(teammate))
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
    _lifecycle_and_serving(n, root, reg, versions)
    return versions


# -- promote, serve, hot-swap, roll back ----------------------------------------------------------
def _http(url: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (urllib.error.URLError, OSError):
        return 0, None


def _wait_for(what: str, check: Callable[[], bool], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise GitregError(f"the demo server did not {what} within {deadline_s:.0f} s", "see the server log above")


class _Load:
    """A small load generator: clients calling /predict until stopped, counting who answered."""

    def __init__(self, url: str, obs: list[float], clients: int = 4) -> None:
        import threading

        self.url, self.obs = url, obs
        self.by_version: dict[str, int] = {}
        self.failed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def __enter__(self) -> _Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)

    def _run(self) -> None:
        while not self._stop.is_set():
            status, body = _http(self.url, {"inputs": [self.obs]})
            with self._lock:
                if status == 200 and body:
                    self.by_version[body["version"]] = self.by_version.get(body["version"], 0) + 1
                else:
                    self.failed += 1


def _lifecycle_and_serving(n: Narrator, root: Path, reg: Any, versions: list[str]) -> None:
    import signal
    import subprocess
    import sys

    first, second = versions
    repo = reg.root

    n.heading(f"Promote {first} to production by pull request")
    n.say(
        "The stage lives in models.yaml; gitreg commits the change on a new branch and pushes it. With gh or "
        "glab on PATH it opens the pull request; here the remote is a folder, so a reviewer merges by hand."
    )
    n.cmd(f"gitreg promote {first} production")
    change = reg.promote(first, "production")
    render.change_result(change, False)
    n.cmd(f"git merge --no-ff {change.branch} -m 'Merge pull request #1 from {change.branch}' && git push")
    _git(repo, "merge", "-q", "--no-ff", change.branch, "-m", f"Merge pull request #1 from {change.branch}")
    _git(repo, "push", "-q", "origin", "main")

    n.heading("Serve it: the deploy agent follows models.yaml on the remote")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    n.cmd(f"gitreg serve --repo ../remote.git --port {port} --poll 1")
    log_path = root / "serve.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed after the server stops
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gitreg",
            "serve",
            "--repo",
            str(root / "remote.git"),
            "--port",
            str(port),
            "--poll",
            "1",
            "--cache",
            str(root / "serve-cache"),
            "--seed",
            "7",
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for("become ready", lambda: _http(f"{url}/ready", timeout=2)[0] == 200, 180)
        obs = [0.5, -0.2, 0.1, 0.9]
        n.cmd(f"curl -s {url}/predict -d '{{\"inputs\": [{obs}]}}'")
        status, body = _http(f"{url}/predict", {"inputs": [obs]})
        n.line(json.dumps(body))
        if status != 200 or body["version"] != first:
            raise GitregError(f"expected {first} to answer, got {status} {body}", "see serve.log")

        n.heading(f"Hot-swap to {second} while clients keep calling")
        n.say(
            "Four clients call /predict in a loop; the new version is pulled, verified, loaded and warmed up "
            "beside the old one, then swapped in by reference: requests in flight finish on the old one."
        )
        with _Load(f"{url}/predict", obs) as load:
            n.cmd(f"gitreg deploy {second} --direct --push")
            render.change_result(reg.deploy(second, direct=True, push=True), False)
            _wait_for(f"serve {second}", lambda: load.by_version.get(second, 0) > 20, 180)
        counts = ", ".join(f"{v}: {c}" for v, c in sorted(load.by_version.items()))
        n.line(f"requests answered — {counts}; failed: {load.failed}")
        if load.failed:
            raise GitregError(f"{load.failed} requests failed during the swap", "see serve.log")

        n.heading("Roll back: git revert of the commit that moved production")
        n.cmd("gitreg rollback policy --direct --push")
        render.change_result(reg.rollback("policy", direct=True, push=True), False)
        _wait_for(
            f"serve {first} again",
            lambda: (_http(f"{url}/predict", {"inputs": [obs]})[1] or {}).get("version") == first,
            120,
        )
        n.line(f"{first} answers again (it was still loaded: the swap back is instant)")
        n.cmd(f"gitreg status --server {url}")
        render.server_status(_http(f"{url}/health")[1], False)
        n.cmd("gitreg history policy")
        render.history(reg.history("policy"), False)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
