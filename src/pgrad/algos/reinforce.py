"""REINFORCE: Monte-Carlo policy gradient, with an optional learned state-value baseline (post: REINFORCE; Williams, 1992).

Equations (post notation) and the functions that compute them:
  (1) G_t = Σ_k γ^k R_{t+k+1}, from complete episodes                   core.returns.discounted_returns
  (2) θ ← θ + α γ^t G_t ∇_θ ln π_θ(A_t|S_t)                             core.losses.policy_gradient_loss
  (3) with baseline="value": Ψ_t = G_t - V_w(S_t), and w ← w - α_w ∇_w (G_t - V_w(S_t))^2
                                                                        core.losses.value_loss

The γ^t factor: the post's update carries it, which makes the estimate the exact gradient of the discounted
return from the start state (pgrad.theory checks this). ``gamma_t=False`` (the default) drops it, as most
implementations do: late steps of long episodes then keep their weight. Both are documented in docs/theory.md.

Beyond the post:
- each update uses one complete episode from each of N envs (reset together; the first episode of each env
  only, which keeps the batch an unbiased sample of trajectories) and Adam instead of plain SGD;
- with a value baseline, an episode cut by a time limit (the env's, or max_episode_len) bootstraps G from V_w of
  its final observation; without a critic, G stops at the cut;
- image observations: π and V_w each read the frames through their own encoder (the CNN of ``--net``), so the
  baseline's regression never moves the policy's features; vectors keep two plain MLPs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from pgrad.config import BaseConfig
from pgrad.core.encoders import make_encoder
from pgrad.core.losses import entropy_loss, policy_gradient_loss, value_loss
from pgrad.core.nets import ActionBounds, Activation, ValueNet, clip_grad_norm, encoded, in_width, policy_net
from pgrad.core.returns import discounted_returns
from pgrad.data.collect import PolicySampler, collect_episodes
from pgrad.data.rollout import flat
from pgrad.envs import EnvSpec

SPACES = ("discrete", "box", "multidiscrete", "multibinary")


@dataclass
class Config(BaseConfig):
    num_envs: int = 8
    """Episodes per update (one from each of N parallel envs)."""
    lr: float = 1e-3
    """Policy learning rate α (Adam)."""
    baseline: Literal["none", "value"] = "none"
    """Baseline subtracted from G_t: none, or a learned V_w(s)."""
    vf_lr: float = 1e-2
    """Value learning rate α_w (Adam), with baseline='value'."""
    vf_iters: int = 10
    """Gradient steps on the value network per update, with baseline='value'."""
    gamma: float = 0.99
    """Discount γ."""
    gamma_t: bool = False
    """Multiply the update at step t by γ^t, as in the post's pseudocode."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    max_grad_norm: float | None = None
    """Clip the policy gradient norm to this value (None: no clipping)."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy (and value) network; on images, after each one's own encoder."""
    activation: Activation = "tanh"
    """Hidden activation."""
    log_std_init: float = 0.0
    """Initial log σ of the Gaussian policy (Box actions)."""
    max_episode_len: int = 100_000
    """Cut an episode after this many steps (for envs without a time limit); the cut is a truncation."""

    RANGES = {
        "lr": "(0, inf)", "vf_lr": "(0, inf)", "vf_iters": "[1, inf)", "gamma": "(0, 1]",
        "ent_coef": "[0, inf)", "max_grad_norm": "(0, inf)", "hidden": "[1, 100000]",
        "max_episode_len": "[1, inf)", "log_std_init": "[-20, 2]",
    }


def build(cfg: Config, spec: EnvSpec) -> tuple[nn.ModuleDict, dict[str, torch.optim.Optimizer]]:
    enc_pi = make_encoder(spec, cfg.net)  # None for flat vectors: the heads read observations directly
    nets = nn.ModuleDict({
        "pi": encoded(enc_pi, policy_net(spec, cfg.hidden, cfg.activation, cfg.log_std_init,
                                         in_dim=in_width(spec, enc_pi))),
        "bounds": ActionBounds(spec),
    })
    if cfg.baseline == "value":
        enc_v = make_encoder(spec, cfg.net)  # V_w's own encoder
        nets["v"] = encoded(enc_v, ValueNet(in_width(spec, enc_v), cfg.hidden, cfg.activation))
    nets = nets.to(cfg.device)
    opts = {"pi": torch.optim.Adam(nets["pi"].parameters(), lr=cfg.lr)}
    if cfg.baseline == "value":
        opts["v"] = torch.optim.Adam(nets["v"].parameters(), lr=cfg.vf_lr)
    return nets, opts


def act(nets: nn.ModuleDict, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
    dist = nets["pi"](obs)
    a = dist.mode() if deterministic else dist.sample()
    if a.dtype.is_floating_point:
        a = nets["bounds"].clip(a)
    return a.cpu().numpy()


def update(nets: nn.ModuleDict, opts: dict[str, torch.optim.Optimizer], b: dict[str, torch.Tensor],
           cfg: Config) -> dict[str, torch.Tensor]:
    """One policy gradient step (2) on the valid steps of a batch of episodes, and the baseline's steps (3)."""
    out: dict[str, torch.Tensor] = {}
    psi = b["G"] * b["discount"]
    if cfg.baseline == "value":
        with torch.no_grad():
            psi = psi - b["discount"] * nets["v"](b["obs"])  # (3) Ψ = γ^t (G_t - V_w(S_t))
        for _ in range(cfg.vf_iters):
            v_loss = value_loss(nets["v"](b["obs"]), b["G"])
            opts["v"].zero_grad(set_to_none=True)
            v_loss.backward()
            opts["v"].step()
        out["loss/value"] = v_loss.detach()
    dist = nets["pi"](b["obs"])
    pg_loss = policy_gradient_loss(dist.log_prob(b["actions"]), psi)  # (2)
    ent = dist.entropy()
    loss = pg_loss + cfg.ent_coef * entropy_loss(ent)
    opts["pi"].zero_grad(set_to_none=True)
    loss.backward()
    if cfg.max_grad_norm is not None:
        out["grad_norm"] = clip_grad_norm(nets["pi"].parameters(), cfg.max_grad_norm).detach()
    opts["pi"].step()
    out.update({"loss/policy": pg_loss.detach(), "entropy": ent.mean().detach()})
    return out


def train(cfg: Config, run: Any) -> nn.ModuleDict:
    envs = run.make_envs()
    nets, opts = build(cfg, run.spec)
    run.track(nets=nets, **{f"opt_{k}": o for k, o in opts.items()})
    sample = PolicySampler(nets["pi"], nets["bounds"], run.spec.action_kind == "box")

    while run.step < cfg.steps:
        ro, mask = collect_episodes(envs, sample, cfg.max_episode_len)
        last = None
        with torch.no_grad():
            # G_t (1); with a critic, an episode cut by a time limit continues with V_w(final observation).
            boot = torch.zeros_like(ro.rewards)
            if cfg.baseline == "value":
                boot = torch.where(ro.truncated, nets["v"](ro.next_obs), boot)
            # (1)
            G = discounted_returns(ro.rewards + cfg.gamma * boot, ro.terminated | ro.truncated, cfg.gamma, last)
        t_idx = torch.arange(ro.T, dtype=torch.float32, device=ro.rewards.device).unsqueeze(1).expand(ro.T, ro.N)
        discount = cfg.gamma ** t_idx if cfg.gamma_t else torch.ones_like(t_idx)
        m = mask.reshape(-1)
        b = {"obs": flat(ro.obs)[m], "actions": flat(ro.actions)[m], "G": flat(G)[m], "discount": flat(discount)[m]}
        metrics = update(nets, opts, b, cfg)
        metrics["episode_len"] = mask.sum(0).float().mean()
        if not run.advance(ro.T * ro.N, metrics):
            break
    return nets
