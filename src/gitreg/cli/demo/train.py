"""The demo's trainers: a toy contextual bandit and two small torch policies trained on it
(one-step DQN and PPO), exported as a trainer would hand them over (TorchScript policy.pt +
metadata.json). torch is imported inside the functions that train, never at import time."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitreg import __version__

OBS_DIM = 4
N_ACTIONS = 2
EPISODE_LEN = 200
EVAL_EPISODES = 20
TASK_SEED = 1234


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
        "code_commit": f"gitreg {__version__} (gitreg/cli/demo/train.py)",
        "env_id": "gitreg-demo/ContextualBandit-v1",
        "description": trained.description,
    }
    (folder / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder
