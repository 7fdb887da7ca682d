"""PPO: proximal policy optimisation with the clipped surrogate objective (post: PPO; Schulman et al., 2017).

Equations (post notation) and the functions that compute them:
  (1) r(θ) = π_θ(a|s) / π_θold(a|s)                                   core.losses.clipped_surrogate
  (2) J^CLIP(θ) = E[min(r(θ) Â, clip(r(θ), 1-ε, 1+ε) Â)]             core.losses.clipped_surrogate
  (3) J^CLIP'(θ) = E[J^CLIP(θ) - c1 (V_θ(s) - V_target)^2 + c2 H(s, π_θ(.))]
                                                  core.losses.value_loss, core.losses.entropy_loss
  (4) Â by GAE(γ, λ), V_target = Â + V                                core.returns.gae

Beyond the post:
- advantages are normalised per minibatch; gradients clipped to a global norm;
- optional linear annealing of the learning rate and of ε, and an early stop of the epochs when the
  approximate KL E[(r - 1) - ln r] exceeds ``target_kl``;
- time limits: V of the true final observation is bootstrapped at truncation (GAE), never at termination;
- image observations: policy and value share one encoder (``nets["enc"]``, the CNN of ``--net``) as in the PPO
  paper's Atari runs, so c1 weighs the value loss's pull on the shared features; vectors keep two separate MLPs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pgrad.config import BaseConfig
from pgrad.core import optim
from pgrad.core.encoders import make_encoder
from pgrad.core.losses import clipped_surrogate, entropy_loss, value_loss
from pgrad.core.nets import (
    ActionBounds,
    Activation,
    ValueNet,
    clip_grad_norm,
    in_width,
    policy_function,
    policy_net,
)
from pgrad.core.returns import gae
from pgrad.data.collect import PolicySampler, collect_rollout
from pgrad.data.rollout import Rollout, flat, minibatches, next_values
from pgrad.envs import EnvSpec

SPACES = ("discrete", "box", "multidiscrete", "multibinary")


@dataclass
class Config(BaseConfig):
    lr: float = 3e-4
    """Adam learning rate α."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over the run."""
    gamma: float = 0.99
    """Discount γ."""
    lam: float = 0.95
    """GAE λ."""
    n_steps: int = 2048
    """Rollout length T per env; one rollout holds T·N transitions."""
    epochs: int = 10
    """Passes K over each rollout."""
    batch_size: int = 64
    """Minibatch size M."""
    clip_eps: float = 0.2
    """Clip range ε of r(θ)."""
    anneal_clip: bool = False
    """Decay ε linearly to 0 over the run."""
    vf_coef: float = 0.5
    """Value loss coefficient c1."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient c2."""
    vf_clip: float | None = None
    """Clip the value prediction to within this distance of the old one (None: no clipping)."""
    max_grad_norm: float = 0.5
    """Clip the global gradient norm to this value."""
    norm_adv: bool = True
    """Normalise Â to zero mean and unit std per minibatch."""
    target_kl: float | None = None
    """Stop the epochs of a rollout early when the approximate KL exceeds this (None: never)."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and value heads (separate MLPs; on images, after the shared encoder)."""
    activation: Activation = "tanh"
    """Hidden activation."""
    log_std_init: float = 0.0
    """Initial log σ of the Gaussian policy (Box actions)."""

    RANGES = {
        "lr": "(0, inf)", "gamma": "(0, 1]", "lam": "[0, 1]", "n_steps": "[1, inf)", "epochs": "[1, inf)",
        "batch_size": "[1, inf)", "clip_eps": "(0, inf)", "vf_coef": "[0, inf)", "ent_coef": "[0, inf)",
        "vf_clip": "(0, inf)", "max_grad_norm": "(0, inf)", "target_kl": "(0, inf)", "hidden": "[1, 100000]",
        "log_std_init": "[-20, 2]",
    }


def build(cfg: Config, spec: EnvSpec) -> tuple[nn.ModuleDict, torch.optim.Optimizer]:
    enc = make_encoder(spec, cfg.net)
    d = in_width(spec, enc)
    nets = nn.ModuleDict({
        "enc": enc or nn.Identity(),  # shared by π and V (no parameters for vectors)
        "pi": policy_net(spec, cfg.hidden, cfg.activation, cfg.log_std_init, in_dim=d),
        "v": ValueNet(d, cfg.hidden, cfg.activation),
        "bounds": ActionBounds(spec),
    }).to(cfg.device)
    params = list(nets["enc"].parameters()) + list(nets["pi"].parameters()) + list(nets["v"].parameters())
    opt = optim.Adam(params, lr=cfg.lr, eps=1e-5, fused=True)
    return nets, opt


def act(nets: nn.ModuleDict, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
    dist = nets["pi"](nets["enc"](obs))
    a = dist.mode() if deterministic else dist.sample()
    if a.dtype.is_floating_point:
        a = nets["bounds"].clip(a)
    return a.cpu().numpy()


def update(nets: nn.ModuleDict, opt: torch.optim.Optimizer, b: dict[str, torch.Tensor], clip_eps: float,
           cfg: Config) -> dict[str, torch.Tensor]:
    """One gradient step of -J^CLIP' on a minibatch ``b``."""
    h = nets["enc"](b["obs"])  # features computed once for π and V
    dist = nets["pi"](h)
    logp = dist.log_prob(b["actions"])
    adv = b["adv"]
    if cfg.norm_adv and adv.numel() > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg_loss, stats = clipped_surrogate(logp, b["logp"], adv, clip_eps)  # (1), (2)
    v = nets["v"](h)
    v_loss = value_loss(v, b["ret"], b["v"], cfg.vf_clip)  # (3) c1 term
    ent = dist.entropy()
    loss = pg_loss + cfg.vf_coef * v_loss  # (3)
    if cfg.ent_coef:  # c2 = 0 adds exact zeros: skip its backward
        loss = loss + cfg.ent_coef * entropy_loss(ent)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = clip_grad_norm(nets.parameters(), cfg.max_grad_norm)
    opt.step()
    return {"loss/policy": pg_loss.detach(), "loss/value": v_loss.detach(), "entropy": ent.mean().detach(),
            "approx_kl": stats["approx_kl"], "clip_frac": stats["clip_frac"], "grad_norm": grad_norm.detach()}


def train(cfg: Config, run: Any) -> nn.ModuleDict:
    envs = run.make_envs()
    nets, opt = build(cfg, run.spec)
    run.track(nets=nets, opt=opt)
    ro = Rollout(cfg.n_steps, cfg.num_envs, run.spec, cfg.device)
    image = run.spec.is_image  # images: V(s_t) comes with acting, from the features computed to act
    sample = PolicySampler(policy_function(nets["pi"]), nets["bounds"], run.spec.action_kind == "box",
                           nets["enc"] if image else None, nets["v"] if image else None)

    step_fn = torch.compile(update) if cfg.compile else update
    n = cfg.n_steps * cfg.num_envs
    while run.step < cfg.steps:
        frac = 1.0 - run.step / cfg.steps
        for g in opt.param_groups:
            g["lr"] = cfg.lr * frac if cfg.anneal_lr else cfg.lr
        clip_eps = cfg.clip_eps * frac if cfg.anneal_clip else cfg.clip_eps
        collect_rollout(envs, sample, ro)
        with torch.no_grad():
            if image:  # no CNN pass over the rollout: V(s_t) came with acting, V(s_{t+1}) is the next row's
                v = sample.pop_values()  # except where an episode ended and at the last step
                v_next = next_values(lambda o: nets["v"](nets["enc"](o)), ro, v)
            else:
                v, v_next = nets["v"](ro.obs), nets["v"](ro.next_obs)
            adv, ret = gae(ro.rewards, v, v_next, ro.terminated, ro.truncated, cfg.gamma, cfg.lam)  # (4)
        data = {"obs": flat(ro.obs), "actions": flat(ro.actions), "logp": flat(ro.logp), "adv": flat(adv),
                "ret": flat(ret), "v": flat(v)}
        totals: dict[str, torch.Tensor] = {}
        k = 0
        for _epoch in range(cfg.epochs):
            for idx in minibatches(n, cfg.batch_size) if cfg.batch_size < n else [None]:
                mb = data if idx is None else {key: t[idx] for key, t in data.items()}  # one batch: no shuffle
                m = step_fn(nets, opt, mb, clip_eps, cfg)
                totals = {key: totals.get(key, 0.0) + val for key, val in m.items()}
                k += 1
            if cfg.target_kl is not None and float(m["approx_kl"]) > cfg.target_kl:
                break
        metrics = {key: val / k for key, val in totals.items()}
        metrics["explained_var"] = 1.0 - (data["ret"] - data["v"]).var() / (data["ret"].var() + 1e-8)
        metrics["lr"] = torch.tensor(opt.param_groups[0]["lr"])
        if not run.advance(n, metrics, updates=k):
            break
    return nets
