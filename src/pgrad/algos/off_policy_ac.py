"""Off-policy actor-critic: a known behaviour policy β collects the data, the target policy π_θ learns from it
(post: Off-Policy Policy Gradient; Degris, White & Sutton, 2012, "Off-Policy Actor-Critic").

Equations (post notation) and the functions that compute them:
  (1) a ~ β(a|s), a known behaviour policy: uniform, or the ε-mixture β = ε/|A| + (1 - ε) π_θ(a|s) (π at acting
      time); log β(a|s) is stored with the transition
  (2) ∇_θ J(θ) ≈ E_β[π_θ(a|s)/β(a|s) Q^π(s, a) ∇_θ ln π_θ(a|s)]  (the gradient of Q^π ignored, as the post
      justifies by Degris et al.)                                       core.losses.off_policy_pg_loss
  (3) Q^π learned off-policy by the one-step expected-SARSA target
      y = r + γ Σ_a' π_θ(a'|s') Q_w(s', a'), minimising (y - Q_w(s, a))²    core.losses.value_loss
Two learning rates α_θ (``lr_pi``) and α_w (``lr_q``).

Which critic: the paper learns a linear V with GTD(λ) and eligibility traces. Here Q_w is a network trained
with the expected-SARSA target (3): it takes the expectation over the *target* policy at s', so a one-step
target needs no importance weight at all (tree backup with λ = 0), and it stays correct on replayed data.
Importance weights appear only in the actor (2), unclipped as Degris et al. define them, ρ = π(a|s)/β(a|s);
``rho_max`` truncates them as an option (Wawrzyński, 2009; ACER's c). The default ε-mixture behaviour bounds
them anyway, ρ <= 1 / (1 - ε) = 1.25.

Beyond the post:
- ``baseline``: Ψ = Q_w(s, a) - Σ_a π(a|s) Q_w(s, a) (an advantage; same expected gradient, lower variance);
- optional experience replay (``replay``): uniform, storing log β(a|s) with each transition;
- a target critic Q_w̄ for y, updated by Polyak averaging with ``tau`` (1.0: no target network);
- N envs per step, Adam, gradient clipping; bootstrap through truncation with the true final observation,
  never through termination. Discrete actions (the sum over a' in (3) is exact);
- image observations: π and Q_w each read the frames through their own encoder (the CNN of ``--net``; the target
  critic copies Q_w's), and replay stores frames in the env's dtype (uint8 or bool), never as floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from pgrad.config import BaseConfig
from pgrad.core.distributions import Categorical
from pgrad.core.encoders import make_encoder
from pgrad.core.losses import entropy_loss, off_policy_pg_loss, value_loss
from pgrad.core.nets import Activation, DiscreteQNet, clip_grad_norm, encoded, in_width, policy_net
from pgrad.core.targets import frozen_copy, polyak_update
from pgrad.data.replay import ReplayBuffer
from pgrad.envs import EnvSpec, obs_torch_dtype
from pgrad.envs.atari import stacked_frames

SPACES = ("discrete",)


@dataclass
class Config(BaseConfig):
    num_envs: int = 8
    """Parallel environments N (behaviour-policy actors)."""
    behaviour: Literal["mixture", "uniform"] = "mixture"
    """Behaviour policy β: 'uniform' over actions, or the ε-mixture ε·uniform + (1 - ε)·π_θ."""
    beta_eps: float = 0.2
    """ε of the mixture behaviour policy."""
    lr_pi: float = 1e-3
    """Actor learning rate α_θ (Adam)."""
    lr_q: float = 1e-3
    """Critic learning rate α_w (Adam)."""
    gamma: float = 0.99
    """Discount γ."""
    rho_max: float | None = None
    """Truncate the importance weight ρ = π/β at this value; None (the default): untruncated, as in Degris et al."""
    baseline: bool = True
    """Ψ = Q_w(s, a) - E_π[Q_w(s, ·)] instead of Ψ = Q_w(s, a)."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    replay: bool = False
    """Learn from a replay buffer of past behaviour data instead of the N newest transitions."""
    buffer_size: int = 50_000
    """Replay capacity (transitions)."""
    batch_size: int = 128
    """Replay minibatch size."""
    learning_starts: int = 1000
    """Env steps before the first replay update."""
    tau: float = 1.0
    """Polyak rate of the target critic (1.0: the target is the critic itself)."""
    max_grad_norm: float = 1.0
    """Clip each network's gradient norm to this value."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and the Q network (separate networks; on images, after each one's own
    encoder)."""
    activation: Activation = "tanh"
    """Hidden activation."""

    RANGES = {
        "beta_eps": "[0, 1]", "lr_pi": "(0, inf)", "lr_q": "(0, inf)", "gamma": "(0, 1]", "rho_max": "(0, inf)",
        "ent_coef": "[0, inf)", "buffer_size": "[1, inf)", "batch_size": "[1, inf)", "learning_starts": "[0, inf)",
        "tau": "(0, 1]", "max_grad_norm": "(0, inf)", "hidden": "[1, 100000]",
    }


def build(cfg: Config, spec: EnvSpec) -> tuple[nn.ModuleDict, dict[str, torch.optim.Optimizer]]:
    enc_pi, enc_q = make_encoder(spec, cfg.net), make_encoder(spec, cfg.net)  # one each; None for vectors
    nets = nn.ModuleDict({
        "pi": encoded(enc_pi, policy_net(spec, cfg.hidden, cfg.activation, in_dim=in_width(spec, enc_pi))),
        "q": encoded(enc_q, DiscreteQNet(in_width(spec, enc_q), spec.n_actions, cfg.hidden, cfg.activation)),
    }).to(cfg.device)
    nets["q_target"] = frozen_copy(nets["q"])  # Q_w̄: its encoder included
    opts = {"pi": torch.optim.Adam(nets["pi"].parameters(), lr=cfg.lr_pi),
            "q": torch.optim.Adam(nets["q"].parameters(), lr=cfg.lr_q)}
    return nets, opts


def act(nets: nn.ModuleDict, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
    dist = nets["pi"](obs)
    return (dist.mode() if deterministic else dist.sample()).cpu().numpy()


def behaviour(pi: Categorical, cfg: Config) -> Categorical:
    """β(·|s) (1): uniform, or ε/|A| + (1 - ε) π(·|s)."""
    n = pi.logits.shape[-1]
    if cfg.behaviour == "uniform":
        return Categorical(torch.zeros_like(pi.logits))
    mix = cfg.beta_eps / n + (1.0 - cfg.beta_eps) * pi.probs
    return Categorical(mix.clamp_min(1e-12).log())


def update(nets: nn.ModuleDict, opts: dict[str, torch.optim.Optimizer], b: dict[str, torch.Tensor],
           cfg: Config) -> dict[str, torch.Tensor]:
    """One step on θ and w from behaviour transitions (s, a, log β(a|s), r, s')."""
    dist = nets["pi"](b["obs"])
    logp = dist.log_prob(b["actions"])
    q_all = nets["q"](b["obs"])
    q_sa = q_all.gather(-1, b["actions"].long().unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        pi_next = nets["pi"](b["next_obs"]).probs
        q_tgt = nets["q_target"] if cfg.tau < 1.0 else nets["q"]
        v_next = (pi_next * q_tgt(b["next_obs"])).sum(-1)
        y = b["rewards"] + b["discount"] * v_next  # (3)
        psi = q_sa - (dist.probs * q_all).sum(-1) if cfg.baseline else q_sa
        rho = (logp - b["beta_logp"]).exp()
    pi_loss = off_policy_pg_loss(logp, b["beta_logp"], psi, cfg.rho_max)  # (2)
    q_loss = value_loss(q_sa, y)  # (3)
    ent = dist.entropy()
    loss = pi_loss + cfg.ent_coef * entropy_loss(ent) + q_loss
    for opt in opts.values():
        opt.zero_grad(set_to_none=True)
    loss.backward()
    gn_pi = clip_grad_norm(nets["pi"].parameters(), cfg.max_grad_norm)
    gn_q = clip_grad_norm(nets["q"].parameters(), cfg.max_grad_norm)
    opts["pi"].step()
    opts["q"].step()
    if cfg.tau < 1.0:
        polyak_update(nets["q_target"], nets["q"], cfg.tau)
    return {"loss/policy": pi_loss.detach(), "loss/q": q_loss.detach(), "q": q_sa.mean().detach(),
            "rho": rho.mean().detach(), "entropy": ent.mean().detach(), "grad_norm/pi": gn_pi.detach(),
            "grad_norm/q": gn_q.detach()}


def train(cfg: Config, run: Any) -> nn.ModuleDict:
    envs = run.make_envs()
    nets, opts = build(cfg, run.spec)
    N = cfg.num_envs
    buf = None
    tracked: dict[str, Any] = {"opt_pi": opts["pi"], "opt_q": opts["q"]}
    if cfg.replay:
        buf = ReplayBuffer(max(cfg.buffer_size, 2 * N), N, run.spec.obs_shape, (), torch.long, gamma=cfg.gamma,
                           device=cfg.device, extra={"beta_logp": ((), torch.float32)},
                           obs_dtype=obs_torch_dtype(run.spec), frame_stack=stacked_frames(run.spec, run.factory))
        tracked["replay"] = buf
    run.track(nets=nets, **tracked)
    step_fn = torch.compile(update) if cfg.compile else update
    metrics: dict[str, torch.Tensor] = {}
    while run.step < cfg.steps:
        obs = envs.obs
        with torch.no_grad():
            beta = behaviour(nets["pi"](obs), cfg)  # (1)
            a = beta.sample()
            beta_logp = beta.log_prob(a)
        step = envs.step(a.cpu().numpy())
        if buf is None:
            batch = {"obs": obs, "actions": a, "beta_logp": beta_logp, "rewards": step.reward,
                     "next_obs": step.next_obs, "discount": cfg.gamma * (~step.terminated).float()}
            metrics = step_fn(nets, opts, batch, cfg)
        else:
            buf.add(obs, a, step.reward, step.terminated, step.truncated, step.next_obs, beta_logp=beta_logp)
            if run.step + N > cfg.learning_starts:
                metrics = step_fn(nets, opts, buf.sample(cfg.batch_size), cfg)
        if not run.advance(N, metrics, updates=int(bool(metrics))):
            break
    return nets

