"""SAC: soft actor-critic, off-policy maximum-entropy actor-critic (post: Soft Actor-Critic).

Papers: Haarnoja et al., 2018a, "Soft Actor-Critic: Off-Policy Maximum Entropy Deep Reinforcement Learning with a
Stochastic Actor" (arXiv:1801.01290; the post's version, ``version="2018"``); Haarnoja et al., 2018b, "Soft
Actor-Critic Algorithms and Applications" (arXiv:1812.05905; twin target critics and a learned temperature,
``version="auto"``, the default). Objective: J(θ) = Σ_t E[r(s_t, a_t) + α H(π_θ(·|s_t))].

Equations (post notation) and the functions that compute them; ã = tanh(μ_θ(s) + σ_θ(s) ε), ε ~ N(0, I), is a
fresh reparameterised action, (s, a, r, s') a replay batch D:
  version "2018": policy π_θ, twin soft Q_w1, Q_w2, soft value V_ψ and its target V_ψ̄
  (1) V(s) = E_{ã~π}[min_k Q_wk(s, ã) - α log π_θ(ã|s)]               core.losses.soft_v_target
  (2) J_V(ψ) = E_D[½ (V_ψ(s) - (1))^2]                                  core.losses.soft_v_loss
  (3) y = r + γ (1 - terminated) V_ψ̄(s')                               core.losses.soft_q_target
  (4) J_Q(w) = Σ_k E_D[½ (Q_wk(s, a) - y)^2]                            core.losses.soft_q_loss
  (5) J_π(θ) = E_D[α log π_θ(ã|s) - min_k Q_wk(s, ã)]  (the post's KL, times α, less log Z)
                                                                        core.losses.sac_policy_loss
  (6) ψ̄ ← τ ψ + (1 - τ) ψ̄                                             core.targets.polyak_update
  version "auto": no V network; twin target critics Q_w̄k; α learned
  (7) y = r + γ (1 - terminated) (min_k Q_w̄k(s', ã') - α log π_θ(ã'|s')), ã' ~ π_θ(·|s')
                                                      core.losses.soft_v_target, core.losses.soft_q_target
  (4), (5) as above
  (8) J(α) = E_D[-α log π_θ(ã|s) - α H̄], H̄ = -|A|                     core.losses.temperature_loss
  (9) w̄k ← τ wk + (1 - τ) w̄k                                          core.targets.polyak_update
  both: the squashed Gaussian ã = tanh(u) in (-1, 1)^|A|, mapped to the env's bounds afterwards (a_env = c + s ã):
  (10) log π(ã|s) = log N(u; μ, σ²) - Σ_i log(1 - tanh²(u_i))        core.distributions.TanhGaussian

Beyond the post:
- the post (and the 2018 paper) fold the temperature into the reward scale (α = 1 / reward scale); α is explicit
  here: fixed in version 2018 (0.2, the paper's reward scale 5), learned in log space in version auto;
- twin critics in version 2018 too, as the paper's practice (its Sec. 5: the minimum of two Q for (1) and (5));
- all losses of a step come from one batch and the same parameters: they are summed and back-propagated once and
  one Adam step (one parameter group per network) follows, as the original implementation ran its training ops
  together; the critics inside (5) take detached parameters, so J_π moves θ only and J_Q moves w only;
- the first ``learning_starts`` steps take uniform random actions; log σ is clamped to [-20, 2];
- log π in (1), (5), (7), (8) and H̄ = -|A| are those of the squashed action ã in (-1, 1), as the 2018b paper and
  its code define them; the affine map to the env's bounds comes after, so the entropy term and α's tuning do not
  depend on the env's action units (the density in the env's units, lower by Σ_i log s_i, would shift H̄ by a
  constant: a Pendulum (±2) or Humanoid (±0.4) run would tune α to another entropy than a MuJoCo [-1, 1] one);
- time limits: Q targets bootstrap at truncation (with the true final observation), never at termination;
- image observations: π, the twin critics and V each own an encoder (the CNN of ``--net``); the two critics share
  one in front of their StackedQ, computed once per batch for J_Q and (detached) for the critics inside (5);
  the target critics (or V_ψ̄) copy theirs. α, H̄ and the log-densities (10) are the vector case's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from pgrad.config import BaseConfig
from pgrad.core import optim
from pgrad.core.encoders import make_encoder
from pgrad.core.losses import (
    sac_policy_loss,
    soft_q_loss,
    soft_q_target,
    soft_v_loss,
    soft_v_target,
    temperature_loss,
)
from pgrad.core.nets import (
    ActionBounds,
    Activation,
    Encoded,
    StackedQ,
    TanhGaussianPolicy,
    ValueNet,
    encoded,
    in_width,
    policy_function,
)
from pgrad.core.targets import frozen_copy, polyak_update
from pgrad.data.replay import ReplayBuffer
from pgrad.envs import EnvSpec, obs_torch_dtype

SPACES = ("box",)


@dataclass
class Config(BaseConfig):
    version: Literal["auto", "2018"] = "auto"
    """'2018': the post's SAC (soft V_ψ with target V_ψ̄, fixed α); 'auto': twin target critics, learned α."""
    lr: float = 3e-4
    """Adam learning rate of θ, w (and ψ)."""
    alpha_lr: float | None = None
    """Adam learning rate of log α (None: lr)."""
    gamma: float = 0.99
    """Discount γ."""
    tau: float = 0.005
    """Polyak rate τ of the target network (V_ψ̄ in 2018, Q_w̄ in auto)."""
    batch_size: int = 256
    """Minibatch size drawn from the replay buffer D."""
    buffer_size: int = 1_000_000
    """Replay buffer capacity (transitions)."""
    learning_starts: int = 1000
    """Env steps of uniform random actions before the first update."""
    train_freq: int = 1
    """Steps per env between update rounds."""
    gradient_steps: int = 1
    """Gradient steps per update round."""
    alpha: float = 0.2
    """Temperature α when fixed (version 2018): the weight of the entropy H, 1 / the paper's reward scale."""
    alpha_init: float = 1.0
    """Initial temperature α when it is learned (version auto)."""
    target_entropy: float | None = None
    """Target entropy H̄ of the learned α (None: -|A|, the action dimension)."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of π_θ, Q_w (and V_ψ); on images, after each one's encoder."""
    activation: Activation = "relu"
    """Hidden activation."""
    log_std_min: float = -20.0
    """Lower clamp of the policy's log σ."""
    log_std_max: float = 2.0
    """Upper clamp of the policy's log σ."""

    RANGES = {
        "lr": "(0, inf)", "alpha_lr": "(0, inf)", "gamma": "(0, 1]", "tau": "(0, 1]", "batch_size": "[1, inf)",
        "buffer_size": "[1, inf)", "learning_starts": "[0, inf)", "train_freq": "[1, inf)",
        "gradient_steps": "[1, inf)", "alpha": "[0, inf)", "alpha_init": "(0, inf)", "hidden": "[1, 100000]",
        "log_std_min": "[-100, 100]", "log_std_max": "[-100, 100]", "target_entropy": "(-inf, inf)",
    }


class Temperature(nn.Module):
    """The learned temperature, stored as log α (keeps α > 0 and makes its steps relative)."""

    def __init__(self, alpha: float):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(alpha)))


def build(cfg: Config, spec: EnvSpec) -> tuple[nn.ModuleDict, torch.optim.Optimizer]:
    act_dim = spec.act_dim
    enc_pi, enc_q = make_encoder(spec, cfg.net), make_encoder(spec, cfg.net)  # None for vectors
    nets = nn.ModuleDict({
        "pi": encoded(enc_pi, TanhGaussianPolicy(in_width(spec, enc_pi), act_dim, cfg.hidden, cfg.activation,
                                                 cfg.log_std_min, cfg.log_std_max)),
        "q": encoded(enc_q, StackedQ(2, in_width(spec, enc_q), act_dim, cfg.hidden, cfg.activation)),
        "bounds": ActionBounds(spec),
    })
    groups = [{"params": list(nets["pi"].parameters())}, {"params": list(nets["q"].parameters())}]
    if cfg.version == "2018":
        enc_v = make_encoder(spec, cfg.net)
        nets["v"] = encoded(enc_v, ValueNet(in_width(spec, enc_v), cfg.hidden, cfg.activation))
        nets["v_targ"] = frozen_copy(nets["v"])
        groups.append({"params": list(nets["v"].parameters())})
    else:
        nets["q_targ"] = frozen_copy(nets["q"])
        nets["temperature"] = Temperature(cfg.alpha_init)
        groups.append({"params": [nets["temperature"].log_alpha], "lr": cfg.alpha_lr or cfg.lr})
    nets = nets.to(cfg.device)
    opt = optim.Adam(groups, lr=cfg.lr, fused=True)
    return nets, opt


def act(nets: nn.ModuleDict, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
    dist = nets["pi"](obs)
    a = dist.mode() if deterministic else dist.sample()
    return nets["bounds"].scale(a).cpu().numpy()


def _policy_sample(nets: nn.ModuleDict, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ã = tanh(u) in (-1, 1) by reparameterisation, and log π(ã|s) of the squashed action (10)."""
    return nets["pi"](obs).rsample_with_log_prob()


def _critic_parts(q: nn.Module) -> tuple[Any, nn.Module]:
    """(encoder, StackedQ) of the critics: their shared encoder and head, or nothing in front for vectors."""
    if isinstance(q, Encoded):
        return q.encoder, q.head
    return (lambda obs: obs), q


def _critics_frozen(q: nn.Module, h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Q_wk(s, ã) [K, B] from the critics' detached features h with w treated as constants: the gradient reaches
    ã (hence θ) but never w, and the backward pass skips the critics' weight gradients."""
    params = list(q.parameters())
    for p in params:
        p.requires_grad_(False)
    try:
        return q(h.detach(), a)
    finally:
        for p in params:
            p.requires_grad_(True)


def update(nets: nn.ModuleDict, opt: torch.optim.Optimizer, b: dict[str, torch.Tensor], cfg: Config,
           target_entropy: float) -> dict[str, torch.Tensor]:
    """One gradient step on every network from the replay batch ``b``."""
    if cfg.version == "2018":
        return update_2018(nets, opt, b, cfg)
    return update_auto(nets, opt, b, cfg, target_entropy)


def update_2018(nets: nn.ModuleDict, opt: torch.optim.Optimizer, b: dict[str, torch.Tensor],
                cfg: Config) -> dict[str, torch.Tensor]:
    """The post's SAC (Fig. 6): J_V(ψ), J_Q(w) with V_ψ̄, J_π(θ), then ψ̄ ← τψ + (1 - τ)ψ̄."""
    alpha = cfg.alpha
    enc_q, q_head = _critic_parts(nets["q"])
    h = enc_q(b["obs"])  # the critics' features, once for (1) and (4)
    a_pi, logp = _policy_sample(nets, b["obs"])  # (10)
    q_pi = _critics_frozen(q_head, h, a_pi)
    v_loss = soft_v_loss(nets["v"](b["obs"]), soft_v_target(q_pi, logp, alpha))  # (1), (2)
    with torch.no_grad():
        y = soft_q_target(b["rewards"], b["discount"], nets["v_targ"](b["next_obs"]))  # (3)
    q = q_head(h, b["actions"])
    q_loss = soft_q_loss(q, y)  # (4)
    pi_loss = sac_policy_loss(logp, q_pi, alpha)  # (5)
    opt.zero_grad(set_to_none=True)
    (v_loss + q_loss + pi_loss).backward()
    opt.step()
    polyak_update(nets["v_targ"], nets["v"], cfg.tau)  # (6)
    return {"loss/q": q_loss.detach(), "loss/v": v_loss.detach(), "loss/policy": pi_loss.detach(),
            "entropy": -logp.detach().mean(), "q": q.detach().mean()}


def update_auto(nets: nn.ModuleDict, opt: torch.optim.Optimizer, b: dict[str, torch.Tensor], cfg: Config,
                target_entropy: float) -> dict[str, torch.Tensor]:
    """Twin target critics and a learned α: J_Q(w) with (7), J_π(θ), J(α), then w̄ ← τw + (1 - τ)w̄."""
    log_alpha = nets["temperature"].log_alpha
    alpha = log_alpha.detach().exp()
    with torch.no_grad():
        a_next, logp_next = _policy_sample(nets, b["next_obs"])  # (10)
        v_next = soft_v_target(nets["q_targ"](b["next_obs"], a_next), logp_next, alpha)
        y = soft_q_target(b["rewards"], b["discount"], v_next)  # (7)
    enc_q, q_head = _critic_parts(nets["q"])
    h = enc_q(b["obs"])  # the critics' features, once for (4) and (5)
    q = q_head(h, b["actions"])
    q_loss = soft_q_loss(q, y)  # (4)
    a_pi, logp = _policy_sample(nets, b["obs"])  # (10)
    pi_loss = sac_policy_loss(logp, _critics_frozen(q_head, h, a_pi), alpha)  # (5)
    alpha_loss = temperature_loss(log_alpha, logp, target_entropy)  # (8)
    opt.zero_grad(set_to_none=True)
    (q_loss + pi_loss + alpha_loss).backward()
    opt.step()
    polyak_update(nets["q_targ"], nets["q"], cfg.tau)  # (9)
    return {"loss/q": q_loss.detach(), "loss/policy": pi_loss.detach(), "loss/alpha": alpha_loss.detach(),
            "alpha": alpha, "entropy": -logp.detach().mean(), "q": q.detach().mean()}


def train(cfg: Config, run: Any) -> nn.ModuleDict:
    envs = run.make_envs()
    spec = run.spec
    nets, opt = build(cfg, spec)
    N, A = cfg.num_envs, spec.act_dim
    replay = ReplayBuffer(cfg.buffer_size, N, spec.obs_shape, (A,), gamma=cfg.gamma, device=cfg.device,
                          obs_dtype=obs_torch_dtype(spec))
    run.track(nets=nets, opt=opt, replay=replay)
    target_entropy = float(-A) if cfg.target_entropy is None else cfg.target_entropy
    pi, bounds = policy_function(nets["pi"]), nets["bounds"]  # acting without nn.Module overhead
    step_fn = torch.compile(update) if cfg.compile else update
    while run.step < cfg.steps:
        obs = envs.obs
        with torch.no_grad():
            if run.step < cfg.learning_starts:
                a = torch.rand(N, A, device=obs.device) * 2.0 - 1.0
            else:
                a = pi(obs).sample()
            step = envs.step(bounds.scale(a).cpu().numpy())
        replay.add(obs, a, step.reward, step.terminated, step.truncated, step.next_obs)
        metrics, k = None, 0
        if run.step + N >= cfg.learning_starts and (run.step // N) % cfg.train_freq == 0:
            for _ in range(cfg.gradient_steps):
                metrics = step_fn(nets, opt, replay.sample(cfg.batch_size), cfg, target_entropy)
                k += 1
        if not run.advance(N, metrics, updates=k):
            break
    return nets
