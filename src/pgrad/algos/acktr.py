"""ACKTR: actor-critic using Kronecker-factored trust region (post: ACKTR; Wu et al., 2017).

Paper: "Scalable trust-region method for deep reinforcement learning using Kronecker-factored approximation".

Equations (post notation) and the functions that compute them:
  (1) R ← r_i + γ R from R = V_w(s_T) (0 if terminal), or GAE(γ, λ) targets     core.returns.bootstrapped_returns,
                                                                                core.returns.gae
  (2) the A2C objective: -E[ln π_θ(a|s) (R - V_w(s))] + c_v E[(R - V_w(s))²] - c_e H(π), c_v = 0.5: the
      critic's term is then the negative log-likelihood ½ (R - V_w(s))² of the paper's Gaussian critic
      N(V_w(s), σ² = 1) (section 3.2), the loss whose sampled Fisher is (3)
                                           core.losses.policy_gradient_loss, value_loss, entropy_loss
  (3) the sampled Fisher losses whose curvature K-FAC tracks: -ln π_θ(ã|s), ã ~ π_θ(.|s) for the actor and
      ½ (V_w(s) - ỹ)², ỹ ~ N(V_w(s), 1) for the critic                          KFAC.update_stats
  (4) natural-gradient step Δ = (A ⊗ G + λI)^{-1} ∇ per Linear layer          core.kfac.kfac_precondition
  (5) trust region (section 3.1): η_eff = min(η, sqrt(2δ / (Δᵀ F̂ Δ))), Δᵀ F̂ Δ = ∇ᵀΔ, so that the quadratic
      model of the step's KL, ½ η_eff² Δᵀ F̂ Δ, is at most δ (the KL clip)       core.kfac.KFAC.step

Beyond the post:
- the post stops at the K-FAC summary; the details follow the paper and the ACKTR code: the factors are running
  averages (decay 0.99), damped, decomposed every ``eigen_every`` updates in float64 (a non-finite refresh is
  skipped), momentum 0.9, the learning rate decays linearly (``anneal_lr``), and actor and critic are separate
  networks sharing one K-FAC optimiser and one KL clip;
- time limits: V of the true final observation is bootstrapped at truncation, never at termination;
- image observations: as in the paper, π and V share their lower layers: one encoder (``nets["enc"]``, the CNN of
  ``--net``) forwarded once per update under ``track()``, so K-FAC records each trunk layer once (its Conv2d
  layers by KFC) and the joint Fisher loss (3), actor plus critic terms, shapes the trunk's factors. Vectors keep
  two MLPs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pgrad.config import BaseConfig
from pgrad.core.encoders import make_encoder
from pgrad.core.kfac import KFAC
from pgrad.core.losses import entropy_loss, policy_gradient_loss, value_loss
from pgrad.core.nets import (
    ActionBounds,
    Activation,
    ValueNet,
    clip_grad_norm,
    in_width,
    policy_function,
    policy_net,
)
from pgrad.core.returns import bootstrapped_returns, gae
from pgrad.data.collect import PolicySampler, collect_rollout
from pgrad.data.rollout import Rollout, flat
from pgrad.envs import EnvSpec

SPACES = ("discrete", "box")


@dataclass
class Config(BaseConfig):
    num_envs: int = 8
    """Parallel environments N."""
    n_steps: int = 20
    """Steps per env between updates (one update sees N·n_steps transitions)."""
    gamma: float = 0.99
    """Discount γ."""
    lam: float = 1.0
    """GAE λ; 1 gives the n-step returns R of A2C."""
    lr: float = 0.25
    """Learning rate η of the natural-gradient step (before the KL clip)."""
    anneal_lr: bool = True
    """Decay η linearly to 0 over the run (as the ACKTR code does)."""
    momentum: float = 0.9
    """Heavy-ball momentum μ of the K-FAC step (the step is η (1 - μ) per update)."""
    kl_clip: float = 0.001
    """Trust region δ of the KL clip: the step s = η_eff Δ is scaled so that ½ sᵀ F̂ s <= δ (the paper's 2δ)."""
    damping: float = 0.01
    """Damping λ added to the Kronecker-factored Fisher: (A ⊗ G + λI)."""
    stat_decay: float = 0.99
    """Decay of the running averages of the Kronecker factors A and G."""
    stats_every: int = 1
    """Update the factors from the sampled Fisher loss every this many updates (a pixel preset may use more:
    the convolutions' A statistics can cost more than the gradient; see also ``conv_rows``)."""
    eigen_every: int = 10
    """Recompute the eigendecompositions of A and G every this many updates (pixel presets use larger values: the
    Nature CNN's 3137x3137 A factor of its 512-unit layer takes about 15 s in float64 on CPU)."""
    conv_rows: int | None = None
    """Estimate a Conv2d's A statistic from this many patch rows (sample x output position) drawn at random,
    an unbiased subsample; None uses them all. Only convolutional encoders (images) have such layers."""
    vf_coef: float = 0.5
    """Value loss coefficient c_v on E[(R - V_w(s))²] (0.5: the Gaussian critic's ½ (R - V_w(s))²)."""
    vf_fisher_coef: float = 1.0
    """Weight of the critic's sampled Fisher loss (its output noise is N(0, 1))."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient c_e."""
    max_grad_norm: float | None = None
    """Clip the global gradient norm before preconditioning (None: no clipping)."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and value heads (separate MLPs; on images, after the shared encoder)."""
    activation: Activation = "tanh"
    """Hidden activation."""
    log_std_init: float = 0.0
    """Initial log σ of the Gaussian policy (Box actions)."""

    RANGES = {
        "n_steps": "[1, inf)", "gamma": "(0, 1]", "lam": "[0, 1]", "lr": "(0, inf)", "momentum": "[0, 1)",
        "kl_clip": "(0, inf)", "damping": "(0, inf)", "stat_decay": "[0, 1)", "stats_every": "[1, inf)",
        "eigen_every": "[1, inf)", "conv_rows": "[1, inf)", "vf_coef": "[0, inf)", "vf_fisher_coef": "[0, inf)",
        "ent_coef": "[0, inf)", "max_grad_norm": "(0, inf)", "hidden": "[1, 100000]", "log_std_init": "[-20, 2]",
    }


def build(cfg: Config, spec: EnvSpec) -> tuple[nn.ModuleDict, KFAC]:
    enc = make_encoder(spec, cfg.net)
    d = in_width(spec, enc)
    nets = nn.ModuleDict({
        "enc": enc or nn.Identity(),  # shared by π and V (no parameters for vectors)
        "pi": policy_net(spec, cfg.hidden, cfg.activation, cfg.log_std_init, in_dim=d),
        "v": ValueNet(d, cfg.hidden, cfg.activation),
        "bounds": ActionBounds(spec),
    }).to(cfg.device)
    # one optimiser over every layer of nets (a module's parameters are listed once, the shared trunk's too)
    opt = KFAC(nets, lr=cfg.lr, momentum=cfg.momentum, stat_decay=cfg.stat_decay, damping=cfg.damping,
               kl_clip=cfg.kl_clip, stats_every=cfg.stats_every, eigen_every=cfg.eigen_every,
               conv_rows=cfg.conv_rows)
    return nets, opt


def act(nets: nn.ModuleDict, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
    dist = nets["pi"](nets["enc"](obs))
    a = dist.mode() if deterministic else dist.sample()
    if a.dtype.is_floating_point:
        a = nets["bounds"].clip(a)
    return a.cpu().numpy()


def update(nets: nn.ModuleDict, opt: KFAC, b: dict[str, torch.Tensor], cfg: Config) -> dict[str, torch.Tensor]:
    """One K-FAC natural-gradient step on all N·T samples."""
    with opt.track():  # the trunk runs once, so K-FAC records each of its layers once
        h = nets["enc"](b["obs"])
        dist = nets["pi"](h)
        v = nets["v"](h)
    logp = dist.log_prob(b["actions"])
    pg_loss = policy_gradient_loss(logp, b["ret"] - v.detach())  # (2)
    v_loss = value_loss(v, b["ret"])  # (2)
    ent = dist.entropy()
    loss = pg_loss + cfg.vf_coef * v_loss + cfg.ent_coef * entropy_loss(ent)
    if opt.stats_due():
        with torch.no_grad():
            a_tilde = dist.sample()
            y_tilde = v + torch.randn_like(v)
        fisher = -dist.log_prob(a_tilde).mean() + cfg.vf_fisher_coef * 0.5 * (v - y_tilde).pow(2).mean()  # (3)
        opt.update_stats(fisher)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.max_grad_norm is not None:
        clip_grad_norm(nets.parameters(), cfg.max_grad_norm)
    nu = opt.step()  # (4), (5)
    return {"loss/policy": pg_loss.detach(), "loss/value": v_loss.detach(), "entropy": ent.mean().detach(),
            "kl_clip_scale": nu}


def returns(ro: Rollout, nets: nn.ModuleDict, cfg: Config) -> torch.Tensor:
    """Value targets R for every step of the rollout (1), bootstrapped from V of the next states."""
    enc, v_net = nets["enc"], nets["v"]
    with torch.no_grad():
        v_next = v_net(enc(ro.next_obs))
        if cfg.lam == 1.0:
            return bootstrapped_returns(ro.rewards, v_next, ro.terminated, ro.truncated, cfg.gamma)
        return gae(ro.rewards, v_net(enc(ro.obs)), v_next, ro.terminated, ro.truncated, cfg.gamma, cfg.lam)[1]


def train(cfg: Config, run: Any) -> nn.ModuleDict:
    envs = run.make_envs()
    nets, opt = build(cfg, run.spec)
    run.track(nets=nets, opt=opt)
    ro = Rollout(cfg.n_steps, cfg.num_envs, run.spec, cfg.device)
    sample = PolicySampler(policy_function(nets["pi"]), nets["bounds"], run.spec.action_kind == "box",
                           nets["enc"] if run.spec.is_image else None)

    n = cfg.n_steps * cfg.num_envs
    while run.step < cfg.steps:
        if cfg.anneal_lr:
            for g in opt.param_groups:
                g["lr"] = cfg.lr * (1.0 - run.step / cfg.steps)
        collect_rollout(envs, sample, ro)
        R = returns(ro, nets, cfg)  # (1)
        metrics = update(nets, opt, {"obs": flat(ro.obs), "actions": flat(ro.actions), "ret": flat(R)}, cfg)
        if not run.advance(n, metrics):
            break
    return nets
