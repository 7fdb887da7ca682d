"""TD3: twin delayed deep deterministic policy gradient (post: TD3; Fujimoto, van Hoof and Meger, 2018,
"Addressing Function Approximation Error in Actor-Critic Methods").

DDPG with three fixes for the overestimation of Q that a deterministic policy exploits.

Equations (post notation, paper numbers in brackets) and the functions that compute them:
  (1) μ'(s) = μ_θ(s) + 𝒩(0, σ²) for exploration                         core.distributions.GaussianNoise
  (2) target policy smoothing ã = clip(μ_θ'(s') + clip(ε, -c, c)) [15]  core.losses.smoothed_target_action
  (3) clipped double Q: y = r + γ min_{k=1,2} Q_w'k(s', ã) [10]          core.losses.clipped_double_q_target
  (4) L(w_k) = E[(Q_wk(s, a) - y)^2] for both critics                    core.losses.q_regression_loss
  (5) delayed policy updates: every d critic steps,
      ∇_θ J = E[∇_a Q_w1(s, a) ∇_θ μ_θ(s) |_{a=μ_θ(s)}] (DPG on the first critic)  core.losses.dpg_actor_loss
  (6) θ' ← τ θ + (1 - τ) θ', w'_k ← τ w_k + (1 - τ) w'_k, also every d steps   core.targets.polyak_update

Beyond the post:
- the K critics are one StackedQ: one batched matmul per layer for both (core.nets.StackedQ), and the actor's
  step runs the first critic alone (core.nets.stacked_members) with gradients taken for θ only;
- actions live in [-1, 1] (μ = tanh(·)), σ and c are in those units; uniform random actions for the first
  ``learning_starts`` steps; optional n-step returns; bootstrapping through truncation, never termination.
- with σ_target = 0, d = 1 and one critic, the critic target is exactly DDPG's (tests/equivalence);
- image observations: μ owns an encoder (the CNN of ``--net``) and the K critics share one in front of their
  StackedQ (one CNN pass for all K); the targets copy theirs; the actor step reads the critic's features
  without a graph.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pgrad.config import BaseConfig
from pgrad.core import optim
from pgrad.core.distributions import GaussianNoise
from pgrad.core.encoders import make_encoder
from pgrad.core.losses import (
    clipped_double_q_target,
    dpg_actor_loss,
    q_regression_loss,
    smoothed_target_action,
)
from pgrad.core.nets import (
    ActionBounds,
    Activation,
    DeterministicActor,
    Encoded,
    StackedQ,
    encoded,
    in_width,
    stacked_members,
)
from pgrad.core.targets import frozen_copy, polyak_update
from pgrad.data.replay import ReplayBuffer
from pgrad.envs import EnvSpec, obs_torch_dtype

SPACES = ("box",)


@dataclass
class Config(BaseConfig):
    lr: float = 1e-3
    """Adam learning rate of the actor μ_θ."""
    critic_lr: float | None = None
    """Adam learning rate of the critics Q_wk (None: the same as lr)."""
    gamma: float = 0.99
    """Discount γ."""
    tau: float = 0.005
    """Soft target update rate τ."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions."""
    batch_size: int = 256
    """Minibatch size of each update."""
    learning_starts: int = 100
    """Env steps of uniform random actions before the first update."""
    train_freq: int = 1
    """Update every this many vector-env steps."""
    gradient_steps: int = 1
    """Critic gradient steps per update round."""
    n_step: int = 1
    """n of the n-step return in the critic target (1: one-step, as in the paper)."""
    n_critics: int = 2
    """Critics K in the clipped double-Q minimum (2 in the paper; 1 gives DDPG's target)."""
    policy_delay: int = 2
    """d: update the actor and the targets once every d critic steps."""
    target_noise: float = 0.2
    """σ of the target policy smoothing noise ε (0: no smoothing)."""
    target_noise_clip: float = 0.5
    """c: ε is clipped to [-c, c]."""
    noise_sigma: float = 0.1
    """σ of the Gaussian exploration noise, in units of half the action range."""
    hidden: tuple[int, ...] = (400, 300)
    """Hidden layer sizes of μ_θ and each Q_wk (on images, after the encoders)."""
    activation: Activation = "relu"
    """Hidden activation."""
    bf16: bool = False
    """Run the updates' matmuls in bfloat16 (torch.autocast; weights, optimiser state and targets stay float32):
    about 2x faster on CPUs with AVX512-BF16 or AMX, at bfloat16's 3 significant digits. Off: exact float32."""

    RANGES = {
        "lr": "(0, inf)", "critic_lr": "(0, inf)", "gamma": "(0, 1]", "tau": "(0, 1]", "buffer_size": "[1, inf)",
        "batch_size": "[1, inf)", "learning_starts": "[0, inf)", "train_freq": "[1, inf)",
        "gradient_steps": "[1, inf)", "n_step": "[1, inf)", "n_critics": "[1, 100]", "policy_delay": "[1, inf)",
        "target_noise": "[0, inf)", "target_noise_clip": "[0, inf)", "noise_sigma": "[0, inf)",
        "hidden": "[1, 100000]",
    }


def build(cfg: Config, spec: EnvSpec) -> tuple[nn.ModuleDict, dict[str, torch.optim.Optimizer]]:
    enc_mu, enc_q = make_encoder(spec, cfg.net), make_encoder(spec, cfg.net)  # None for vectors
    mu = encoded(enc_mu, DeterministicActor(in_width(spec, enc_mu), spec.act_dim, cfg.hidden, cfg.activation))
    q = encoded(enc_q, StackedQ(cfg.n_critics, in_width(spec, enc_q), spec.act_dim, cfg.hidden, cfg.activation))
    nets = nn.ModuleDict({"mu": mu, "q": q, "mu_targ": frozen_copy(mu), "q_targ": frozen_copy(q),
                          "bounds": ActionBounds(spec)}).to(cfg.device)
    fused = torch.device(cfg.device).type == "cpu"
    opt = {"mu": optim.Adam(nets["mu"].parameters(), lr=cfg.lr, fused=fused),
           "q": optim.Adam(nets["q"].parameters(), lr=cfg.critic_lr or cfg.lr, fused=fused)}
    return nets, opt


def act(nets: nn.ModuleDict, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
    """μ_θ(s) rescaled to the env's bounds (exploration noise is added in train, not here)."""
    return nets["bounds"].scale(nets["mu"](obs)).cpu().numpy()


def critic_target(nets: nn.ModuleDict, b: dict[str, torch.Tensor], cfg: Config) -> torch.Tensor:
    """y of (3) for a replayed batch, [B]."""
    with torch.no_grad():
        a_next = smoothed_target_action(nets["mu_targ"](b["next_obs"]), cfg.target_noise,
                                        cfg.target_noise_clip)  # (2)
        return clipped_double_q_target(b["rewards"], b["discount"], nets["q_targ"](b["next_obs"], a_next))  # (3)


def update(nets: nn.ModuleDict, opt: dict[str, torch.optim.Optimizer], b: dict[str, torch.Tensor], cfg: Config,
           update_actor: bool = True) -> dict[str, torch.Tensor]:
    """One critic step; with ``update_actor`` (every d-th call) also the actor step and the target updates."""
    mu, q = nets["mu"], nets["q"]
    y = critic_target(nets, b, cfg)
    q_sa = q(b["obs"], b["actions"])  # [K, B]
    q_loss = q_regression_loss(q_sa, y)  # (4)
    opt["q"].zero_grad(set_to_none=True)
    q_loss.backward()
    opt["q"].step()
    out = {"loss/critic": q_loss.detach(), "q": q_sa.detach().mean()}
    if update_actor:  # (5)
        q1 = first_critic(q, b["obs"], mu(b["obs"]))
        pi_loss = dpg_actor_loss(q1)
        params = list(mu.parameters())
        for p, g in zip(params, torch.autograd.grad(pi_loss, params)):  # θ only: no critic weight gradients
            p.grad = g
        opt["mu"].step()
        polyak_update(nets["mu_targ"], mu, cfg.tau)  # (6)
        polyak_update(nets["q_targ"], q, cfg.tau)
        out["loss/actor"] = pi_loss.detach()
    return out


def first_critic(q: nn.Module, obs: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Q_w1(s, a) [B] alone, for the actor step (gradients for θ only: an encoder's features carry no graph)."""
    if isinstance(q, Encoded):
        with torch.no_grad():
            obs = q.encoder(obs)
        q = q.head
    return stacked_members(q.net, torch.cat([obs, a], -1), 1)[0, :, 0]


def train(cfg: Config, run: Any) -> nn.ModuleDict:
    envs = run.make_envs()
    spec, N = run.spec, cfg.num_envs
    nets, opt = build(cfg, spec)
    replay = ReplayBuffer(cfg.buffer_size, N, spec.obs_shape, (spec.act_dim,), n_step=cfg.n_step,
                          gamma=cfg.gamma, device=cfg.device, obs_dtype=obs_torch_dtype(spec))
    noise = GaussianNoise((N, spec.act_dim), cfg.noise_sigma)  # (1)
    counter = UpdateCounter()
    run.track(nets=nets, opt_mu=opt["mu"], opt_q=opt["q"], replay=replay, counter=counter)
    mu, bounds = nets["mu"], nets["bounds"]
    step_fn = torch.compile(update) if cfg.compile else update
    amp = torch.autocast(torch.device(cfg.device).type, dtype=torch.bfloat16) if cfg.bf16 \
        else contextlib.nullcontext()
    metrics: dict[str, torch.Tensor] = {}
    while run.step < cfg.steps:
        obs = envs.obs
        with torch.no_grad():
            if run.step < cfg.learning_starts:
                a = torch.rand(N, spec.act_dim, device=cfg.device) * 2 - 1
            else:
                a = (mu(obs) + noise().to(cfg.device)).clamp(-1.0, 1.0)  # (1)
        step = envs.step(bounds.scale(a).cpu().numpy())
        replay.add(obs, a, step.reward, step.terminated, step.truncated, step.next_obs)
        k = 0
        if run.step + N >= cfg.learning_starts and (run.step // N) % cfg.train_freq == 0 and len(replay) > 0:
            for _ in range(cfg.gradient_steps):
                counter.n += 1
                with amp:
                    metrics.update(step_fn(nets, opt, replay.sample(cfg.batch_size), cfg,
                                           counter.n % cfg.policy_delay == 0))
                k += 1
        log_now = "loss/actor" in metrics and run.step + N >= run.next_log
        if not run.advance(N, metrics if log_now else None, updates=k):
            break
    return nets


class UpdateCounter:
    """Critic steps taken, for the policy delay d (checkpointed so a resumed run keeps the phase)."""

    def __init__(self) -> None:
        self.n = 0

    def state_dict(self) -> dict[str, int]:
        return {"n": self.n}

    def load_state_dict(self, d: dict[str, int]) -> None:
        self.n = int(d["n"])
