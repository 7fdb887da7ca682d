"""Action-value actor-critic: a SARSA critic Q_w(s, a) and an actor updated at every step (post: Actor-Critic).

The post's "simple action-value actor-critic algorithm" (Sutton & Barto, 2018, ch. 13.5; Konda & Tsitsiklis, 2000).

Equations (post notation) and the functions that compute them, for N parallel envs stepped together:
  (1) a' ~ π_θ(a'|s'): the next action, sampled before the update and then taken (a ← a', s ← s')
  (2) θ ← θ + α_θ Q_w(s, a) ∇_θ ln π_θ(a|s)                 core.losses.policy_gradient_loss
  (3) δ_t = r_t + γ Q_w(s', a') - Q_w(s, a)   (the SARSA TD error)
  (4) w ← w + α_w δ_t ∇_w Q_w(s, a)   (semi-gradient of δ², target held fixed)   core.losses.value_loss
Two learning rates α_θ (``lr_pi``) and α_w (``lr_q``), one update per vector-env step on its N transitions.

Beyond the post:
- N envs per step, so each update averages N samples instead of one;
- Adam instead of plain SGD, an optional entropy bonus, gradient clipping per network;
- α_θ = α_w / 10 by default (two timescales, Konda & Tsitsiklis): with α_θ = α_w, Adam's normalised steps let
  the untrained critic's early preference for one action make π deterministic within a few thousand steps
  (measured on CartPole with the baseline: α_θ = α_w = 1e-3 collapsed 3 runs of 6 to a return of 9, α_θ = 5e-4
  with an entropy bonus 3 of 3 within 10k steps; α_θ = 1e-4 reached 500 on 3 of 3 by 90k steps, one run
  still collapsing after 150k: the best evaluated policy is what train() returns);
- ``baseline``: Ψ = Q_w(s, a) - V(s) with V(s) = Σ_a π(a|s) Q_w(s, a) (Discrete) or Q_w(s, mean of π) (Box)
  instead of Ψ = Q_w(s, a): same expected gradient, lower variance (off by default: the post's form);
- time limits: at a truncation, Q_w of the true final observation and an action sampled there are
  bootstrapped; at a termination nothing is;
- Box actions: Q_w(s, a) is an MLP on [s, a] and π a Gaussian; no benchmark row, Discrete is the tested case;
- image observations: π and Q_w each read the frames through their own encoder (the CNN of ``--net``; Q_w(s, a)
  encodes s before the action joins it), so δ² never moves the actor's features; vectors keep two plain MLPs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pgrad.config import BaseConfig
from pgrad.core.encoders import make_encoder
from pgrad.core.losses import entropy_loss, policy_gradient_loss, value_loss
from pgrad.core.nets import (
    ActionBounds,
    Activation,
    DiscreteQNet,
    Encoded,
    QNet,
    clip_grad_norm,
    encoded,
    in_width,
    policy_net,
)
from pgrad.envs import EnvSpec

SPACES = ("discrete", "box")


@dataclass
class Config(BaseConfig):
    num_envs: int = 8
    """Parallel environments N; every vector-env step is one update on its N transitions."""
    lr_pi: float = 1e-4
    """Actor learning rate α_θ (Adam); smaller than α_w, so the critic tracks the policy (two timescales)."""
    lr_q: float = 1e-3
    """Critic learning rate α_w (Adam)."""
    gamma: float = 0.99
    """Discount γ."""
    baseline: bool = False
    """Use Ψ = Q_w(s, a) - V(s), V(s) = E_π[Q_w(s, ·)], instead of the post's Ψ = Q_w(s, a)."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    max_grad_norm: float = 1.0
    """Clip each network's gradient norm to this value."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and the Q network (separate networks; on images, after each one's own
    encoder)."""
    activation: Activation = "tanh"
    """Hidden activation."""
    log_std_init: float = 0.0
    """Initial log σ of the Gaussian policy (Box actions)."""

    RANGES = {
        "lr_pi": "(0, inf)", "lr_q": "(0, inf)", "gamma": "(0, 1]", "ent_coef": "[0, inf)",
        "max_grad_norm": "(0, inf)", "hidden": "[1, 100000]", "log_std_init": "[-20, 2]",
    }


def build(cfg: Config, spec: EnvSpec) -> tuple[nn.ModuleDict, dict[str, torch.optim.Optimizer]]:
    enc_pi, enc_q = make_encoder(spec, cfg.net), make_encoder(spec, cfg.net)  # one each; None for vectors
    d_pi, d_q = in_width(spec, enc_pi), in_width(spec, enc_q)
    if spec.action_kind == "discrete":
        q: nn.Module = DiscreteQNet(d_q, spec.n_actions, cfg.hidden, cfg.activation)
    else:
        q = QNet(d_q, spec.n_actions, cfg.hidden, cfg.activation)
    nets = nn.ModuleDict({
        "pi": encoded(enc_pi, policy_net(spec, cfg.hidden, cfg.activation, cfg.log_std_init, in_dim=d_pi)),
        "q": encoded(enc_q, q),
        "bounds": ActionBounds(spec),
    }).to(cfg.device)
    opts = {"pi": torch.optim.Adam(nets["pi"].parameters(), lr=cfg.lr_pi),
            "q": torch.optim.Adam(nets["q"].parameters(), lr=cfg.lr_q)}
    return nets, opts


def act(nets: nn.ModuleDict, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
    dist = nets["pi"](obs)
    a = dist.mode() if deterministic else dist.sample()
    if a.dtype.is_floating_point:
        a = nets["bounds"].clip(a)
    return a.cpu().numpy()


def is_discrete(q: nn.Module) -> bool:
    """Whether Q_w outputs Q_w(s, ·) over all actions (Discrete), its own encoder in front or not."""
    return isinstance(q.head if isinstance(q, Encoded) else q, DiscreteQNet)


def q_value(q: nn.Module, obs: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Q_w(s, a) for a batch: a gather over Q_w(s, ·) (Discrete) or the MLP on [s, a] (Box)."""
    if is_discrete(q):
        return q(obs).gather(-1, a.long().unsqueeze(-1)).squeeze(-1)
    return q(obs, a)


def update(nets: nn.ModuleDict, opts: dict[str, torch.optim.Optimizer], b: dict[str, torch.Tensor],
           cfg: Config) -> dict[str, torch.Tensor]:
    """One step on θ and w from N transitions (s, a, r, s', a')."""
    dist = nets["pi"](b["obs"])
    logp = dist.log_prob(b["actions"])
    discrete = is_discrete(nets["q"])
    q_all = nets["q"](b["obs"]) if discrete else None
    q_sa = q_all.gather(-1, b["actions"].long().unsqueeze(-1)).squeeze(-1) if discrete \
        else nets["q"](b["obs"], b["actions"])
    with torch.no_grad():
        q_next = q_value(nets["q"], b["next_obs"], b["next_actions"])
        target = b["rewards"] + cfg.gamma * (~b["terminated"]).float() * q_next  # (3): δ = target - Q_w(s, a)
        psi = q_sa
        if cfg.baseline:
            v = (dist.probs * q_all).sum(-1) if discrete else nets["q"](b["obs"], dist.mode())
            psi = q_sa - v
    pi_loss = policy_gradient_loss(logp, psi)  # (2)
    q_loss = value_loss(q_sa, target)  # (4)
    ent = dist.entropy()
    loss = pi_loss + cfg.ent_coef * entropy_loss(ent) + q_loss  # separate networks: the sum splits exactly
    for opt in opts.values():
        opt.zero_grad(set_to_none=True)
    loss.backward()
    gn_pi = clip_grad_norm(nets["pi"].parameters(), cfg.max_grad_norm)
    gn_q = clip_grad_norm(nets["q"].parameters(), cfg.max_grad_norm)
    opts["pi"].step()
    opts["q"].step()
    return {"loss/policy": pi_loss.detach(), "loss/q": q_loss.detach(), "q": q_sa.mean().detach(),
            "entropy": ent.mean().detach(), "grad_norm/pi": gn_pi.detach(), "grad_norm/q": gn_q.detach()}


class NextAction:
    """The action a' already sampled for the current observations (carried between steps, saved for resume)."""

    def __init__(self) -> None:
        self.a: torch.Tensor | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"a": self.a}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.a = d["a"]


def train(cfg: Config, run: Any) -> nn.ModuleDict:
    envs = run.make_envs()
    nets, opts = build(cfg, run.spec)
    carry = NextAction()
    run.track(nets=nets, opt_pi=opts["pi"], opt_q=opts["q"], next_action=carry)
    pi, bounds = nets["pi"], nets["bounds"]
    boxed = run.spec.action_kind == "box"
    step_fn = torch.compile(update) if cfg.compile else update

    @torch.no_grad()
    def sample(obs: torch.Tensor) -> torch.Tensor:
        return pi(obs).sample()

    if carry.a is None:
        carry.a = sample(envs.obs)
    while run.step < cfg.steps:
        obs, a = envs.obs, carry.a
        step = envs.step((bounds.clip(a) if boxed else a).cpu().numpy())
        a_next = sample(step.obs)  # (1)
        a_boot = a_next
        if step.next_obs is not step.obs:  # an episode ended: a' at the true final state, for truncations
            a_boot = sample(step.next_obs)
        metrics = step_fn(nets, opts, {"obs": obs, "actions": a, "rewards": step.reward, "next_obs": step.next_obs,
                                       "next_actions": a_boot, "terminated": step.terminated}, cfg)
        carry.a = a_next
        if not run.advance(cfg.num_envs, metrics):
            break
    return nets
