"""DDPG: deep deterministic policy gradient (post: DDPG; Lillicrap et al., 2016, "Continuous control with deep RL").

DPG's off-policy actor-critic with DQN's two stabilisers: experience replay and slowly tracking target networks.

Equations (post notation) and the functions that compute them:
  (1) μ'(s) = μ_θ(s) + 𝒩, 𝒩 Gaussian or Ornstein-Uhlenbeck        core.distributions.GaussianNoise, OUNoise
  (2) y = r + γ Q_w'(s', μ_θ'(s'))  (0 future at termination)       core.losses.clipped_double_q_target (K = 1)
  (3) L(w) = E[(Q_w(s, a) - y)^2] over replayed transitions          core.losses.q_regression_loss
  (4) ∇_θ J = E[∇_a Q_w(s, a) ∇_θ μ_θ(s) |_{a=μ_θ(s)}]               core.losses.dpg_actor_loss
  (5) θ' ← τ θ + (1 - τ) θ',  w' ← τ w + (1 - τ) w'                 core.targets.polyak_update (one foreach lerp)
  (6) optional batch normalisation of the low-dimensional inputs    core.nets.DeterministicActor(batch_norm=True)
      (with action_layer=2, the paper's critic: a joins Q at the second hidden layer, BN on all layers before it)

Beyond the post:
- actions live in [-1, 1] (μ = tanh(·)); noise is added there and clipped, then rescaled to the env's bounds;
- uniform random actions for the first ``learning_starts`` steps, before any update (as SB3 and the TD3 code);
- optional n-step returns y = Σ_j γ^j r_{t+j} + γ^n Q_w'(s_{t+n}, μ_θ'(s_{t+n})) from the replay buffer;
- time limits: the target bootstraps through truncation (the true final s') and never through termination;
- the actor step takes gradients with respect to θ only (the critic's weight gradients are never computed);
- image observations: μ and Q each own an encoder (the CNN of ``--net``) in front of their MLP, as the paper's
  separate convnets; the targets copy theirs; the actor step reads the critic's features without a graph.
  Batch normalisation (6) is for low-dimensional inputs and is refused on images.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from pgrad.config import BaseConfig
from pgrad.core import optim
from pgrad.core.distributions import GaussianNoise, OUNoise
from pgrad.core.encoders import make_encoder
from pgrad.core.losses import clipped_double_q_target, dpg_actor_loss, q_regression_loss
from pgrad.core.nets import (
    ACTIVATIONS,
    ActionBounds,
    Activation,
    DeterministicActor,
    Encoded,
    QNet,
    encoded,
    in_width,
    init_linear,
)
from pgrad.core.targets import frozen_copy, polyak_update
from pgrad.data.replay import ReplayBuffer
from pgrad.envs import EnvSpec, obs_torch_dtype
from pgrad.errors import ConfigError

SPACES = ("box",)


@dataclass
class Config(BaseConfig):
    lr: float = 1e-3
    """Adam learning rate of the actor μ_θ."""
    critic_lr: float | None = None
    """Adam learning rate of the critic Q_w (None: the same as lr)."""
    critic_weight_decay: float = 0.0
    """L2 weight decay of the critic (the paper used 1e-2)."""
    gamma: float = 0.99
    """Discount γ."""
    tau: float = 0.005
    """Soft target update rate τ (the paper used 0.001)."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions."""
    batch_size: int = 256
    """Minibatch size of each update."""
    learning_starts: int = 100
    """Env steps of uniform random actions before the first update."""
    train_freq: int = 1
    """Update every this many vector-env steps."""
    gradient_steps: int = 1
    """Gradient steps per update round."""
    n_step: int = 1
    """n of the n-step return in the critic target (1: the post's one-step target)."""
    noise: Literal["gaussian", "ou"] = "gaussian"
    """Exploration noise 𝒩: independent Gaussian or Ornstein-Uhlenbeck (the paper's choice)."""
    noise_sigma: float = 0.1
    """Noise scale σ, in units of half the action range."""
    ou_theta: float = 0.15
    """Mean reversion θ of the Ornstein-Uhlenbeck process."""
    batch_norm: bool = False
    """Batch-normalise the observation inputs of μ and Q (the paper's fix for features in different units;
    vectors only); with action_layer=2 also Q's first hidden layer, all of Q before the action, as the paper."""
    action_layer: Literal[1, 2] = 1
    """Where a enters Q_w: 1, concatenated with s at the input (as SB3 and the TD3 code); 2, concatenated with the
    first hidden layer's output, the paper's critic (Lillicrap et al., Sec. 7: "actions were not included until
    the 2nd hidden layer of Q")."""
    hidden: tuple[int, ...] = (400, 300)
    """Hidden layer sizes of μ_θ and Q_w (on images, after each one's encoder)."""
    activation: Activation = "relu"
    """Hidden activation."""
    bf16: bool = False
    """Run the updates' matmuls in bfloat16 (torch.autocast; weights, optimiser state and targets stay float32):
    about 2x faster on CPUs with AVX512-BF16 or AMX, at bfloat16's 3 significant digits. Off: exact float32."""

    RANGES = {
        "lr": "(0, inf)", "critic_lr": "(0, inf)", "critic_weight_decay": "[0, inf)", "gamma": "(0, 1]",
        "tau": "(0, 1]", "buffer_size": "[1, inf)", "batch_size": "[1, inf)", "learning_starts": "[0, inf)",
        "train_freq": "[1, inf)", "gradient_steps": "[1, inf)", "n_step": "[1, inf)", "noise_sigma": "[0, inf)",
        "ou_theta": "[0, inf)", "hidden": "[1, 100000]",
    }


class Critic(nn.Module):
    """Q_w(s, a) -> [B], on batch-normalised observations when asked (6)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], activation: str, batch_norm: bool):
        super().__init__()
        self.norm = nn.BatchNorm1d(obs_dim) if batch_norm else nn.Identity()  # (6)
        self.q = QNet(obs_dim, act_dim, hidden, activation)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.q(self.norm(obs), act)


class PaperCritic(nn.Module):
    """The paper's Q_w(s, a) -> [B]: s through the first hidden layer alone, a joining its output,
    h = φ(W_1 BN(s)), Q = MLP([BN(h), a]); batch normalisation (6) on every layer before the action."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], activation: str, batch_norm: bool):
        super().__init__()
        if len(hidden) < 2:
            raise ConfigError("action_layer=2 needs at least two hidden layers (the action joins the second)")
        self.norm = nn.BatchNorm1d(obs_dim) if batch_norm else nn.Identity()  # (6)
        self.first = nn.Sequential(init_linear(nn.Linear(obs_dim, hidden[0]), math.sqrt(2)),
                                   ACTIVATIONS[activation]())
        self.norm_h = nn.BatchNorm1d(hidden[0]) if batch_norm else nn.Identity()  # (6)
        self.q = QNet(hidden[0], act_dim, hidden[1:], activation)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.q(self.norm_h(self.first(self.norm(obs))), act)


def build(cfg: Config, spec: EnvSpec) -> tuple[nn.ModuleDict, dict[str, torch.optim.Optimizer]]:
    enc_mu, enc_q = make_encoder(spec, cfg.net), make_encoder(spec, cfg.net)  # None for vectors
    mu = encoded(enc_mu, DeterministicActor(in_width(spec, enc_mu), spec.act_dim, cfg.hidden, cfg.activation,
                                            cfg.batch_norm))
    critic = PaperCritic if cfg.action_layer == 2 else Critic
    q = encoded(enc_q, critic(in_width(spec, enc_q), spec.act_dim, cfg.hidden, cfg.activation, cfg.batch_norm))
    nets = nn.ModuleDict({"mu": mu, "q": q, "mu_targ": frozen_copy(mu), "q_targ": frozen_copy(q),
                          "bounds": ActionBounds(spec)}).to(cfg.device)
    nets["mu_targ"].eval()
    nets["q_targ"].eval()
    fused = torch.device(cfg.device).type == "cpu"
    opt = {"mu": optim.Adam(nets["mu"].parameters(), lr=cfg.lr, fused=fused),
           "q": optim.Adam(nets["q"].parameters(), lr=cfg.critic_lr or cfg.lr,
                                 weight_decay=cfg.critic_weight_decay, fused=fused)}
    return nets, opt


def act(nets: nn.ModuleDict, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
    """μ_θ(s) rescaled to the env's bounds (exploration noise is added in train, not here)."""
    mu = nets["mu"]
    was_training = mu.training
    mu.eval()
    a = nets["bounds"].scale(mu(obs))
    mu.train(was_training)
    return a.cpu().numpy()


def critic_target(nets: nn.ModuleDict, b: dict[str, torch.Tensor]) -> torch.Tensor:
    """y of (2) for a replayed batch, [B]."""
    with torch.no_grad():
        q_next = nets["q_targ"](b["next_obs"], nets["mu_targ"](b["next_obs"]))
        return clipped_double_q_target(b["rewards"], b["discount"], q_next)  # (2)


def update(nets: nn.ModuleDict, opt: dict[str, torch.optim.Optimizer], b: dict[str, torch.Tensor],
           cfg: Config) -> dict[str, torch.Tensor]:
    """One gradient step of the critic, then of the actor, then the soft target updates."""
    mu, q = nets["mu"], nets["q"]
    y = critic_target(nets, b)
    q_sa = q(b["obs"], b["actions"])
    q_loss = q_regression_loss(q_sa, y)  # (3)
    opt["q"].zero_grad(set_to_none=True)
    q_loss.backward()
    opt["q"].step()

    pi_loss = dpg_actor_loss(q_of_actor(q, b["obs"], mu(b["obs"])))  # (4)
    params = list(mu.parameters())
    for p, g in zip(params, torch.autograd.grad(pi_loss, params)):  # θ only: no critic weight gradients
        p.grad = g
    opt["mu"].step()

    polyak_update(nets["mu_targ"], mu, cfg.tau)  # (5)
    polyak_update(nets["q_targ"], q, cfg.tau)
    return {"loss/critic": q_loss.detach(), "loss/actor": pi_loss.detach(), "q": q_sa.detach().mean()}


def q_of_actor(q: nn.Module, obs: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Q_w(s, a) for the actor step, whose gradient is taken for θ only: an encoder's features carry no graph."""
    if isinstance(q, Encoded):
        with torch.no_grad():
            h = q.encoder(obs)
        return q.head(h, a)
    return q(obs, a)


def make_noise(cfg: Config, shape: tuple[int, ...]) -> GaussianNoise | OUNoise:
    if cfg.noise == "ou":
        return OUNoise(shape, sigma=cfg.noise_sigma, theta=cfg.ou_theta)
    return GaussianNoise(shape, cfg.noise_sigma)


def train(cfg: Config, run: Any) -> nn.ModuleDict:
    envs = run.make_envs()
    spec, N = run.spec, cfg.num_envs
    nets, opt = build(cfg, spec)
    replay = ReplayBuffer(cfg.buffer_size, N, spec.obs_shape, (spec.act_dim,), n_step=cfg.n_step,
                          gamma=cfg.gamma, device=cfg.device, obs_dtype=obs_torch_dtype(spec))
    noise = make_noise(cfg, (N, spec.act_dim))  # (1)
    run.track(nets=nets, opt_mu=opt["mu"], opt_q=opt["q"], replay=replay, noise=noise)
    mu, bounds = nets["mu"], nets["bounds"]
    step_fn = torch.compile(update) if cfg.compile else update
    amp = torch.autocast(torch.device(cfg.device).type, dtype=torch.bfloat16) if cfg.bf16 \
        else contextlib.nullcontext()
    if cfg.batch_norm:
        mu.eval()  # acting on N observations uses the running statistics; updates switch to batch statistics
    metrics: dict[str, torch.Tensor] | None = None
    while run.step < cfg.steps:
        obs = envs.obs
        with torch.no_grad():
            if run.step < cfg.learning_starts:
                a = torch.rand(N, spec.act_dim, device=cfg.device) * 2 - 1
            else:
                a = (mu(obs) + noise().to(cfg.device)).clamp(-1.0, 1.0)  # (1)
        step = envs.step(bounds.scale(a).cpu().numpy())
        replay.add(obs, a, step.reward, step.terminated, step.truncated, step.next_obs)
        done = step.terminated | step.truncated
        if bool(done.any()):
            noise.reset(done.cpu())
        k = 0
        if run.step + N >= cfg.learning_starts and (run.step // N) % cfg.train_freq == 0 and len(replay) > 0:
            if cfg.batch_norm:
                nets["mu"].train(), nets["q"].train()
            for _ in range(cfg.gradient_steps):
                with amp:
                    metrics = step_fn(nets, opt, replay.sample(cfg.batch_size), cfg)
                k += 1
            if cfg.batch_norm:
                nets["mu"].eval(), nets["q"].eval()
        log_now = metrics is not None and run.step + N >= run.next_log
        if not run.advance(N, metrics if log_now else None, updates=k):
            break
    return nets
