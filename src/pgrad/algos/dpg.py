"""DPG: deterministic policy gradient actor-critic (post: DPG; Silver et al., 2014, "Deterministic Policy Gradient
Algorithms").

The policy is a deterministic decision a = μ_θ(s); its gradient is the deterministic policy gradient theorem.
Online updates from each step of N parallel envs (one step on the mean over the N transitions), in the post's
two forms:

  form = on_policy (the post's on-policy deterministic actor-critic, SARSA critic):
  (1) δ_t = R_t + γ Q_w(s_{t+1}, a_{t+1}) - Q_w(s_t, a_t)                        (TD error in SARSA)
  form = off_policy (the post's off-policy DPG; Silver et al.'s OPDAC/COPDAC-Q): samples come from a stochastic
  behaviour policy β(a|s) = μ_θ(s) + N(0, σ²) and the critic learns Q^μ by Q-learning,
  (1') δ_t = R_t + γ Q_w(s_{t+1}, μ_θ(s_{t+1})) - Q_w(s_t, a_t)
  and, because the gradient has no integral over actions, no importance sampling is needed.
  In both:
  (2) w_{t+1} = w_t + α_w δ_t ∇_w Q_w(s_t, a_t)                  core.losses.q_regression_loss (semi-gradient)
  (3) θ_{t+1} = θ_t + α_θ ∇_a Q_w(s_t, a_t) ∇_θ μ_θ(s_t) |_{a=μ_θ(s)}     core.losses.dpg_actor_loss
  (4) J(θ) = ∫ ρ^μ(s) Q(s, μ_θ(s)) ds, ∇_θ J = E_{s~ρ^μ}[∇_a Q^μ(s, a) ∇_θ μ_θ(s) |_{a=μ_θ(s)}]  (the theorem)

Compatible function approximation (``critic = compatible``, Silver et al. Theorem 3):
  (5) Q^w(s, a) = (a - μ_θ(s))ᵀ ∇_θ μ_θ(s)ᵀ w + V^v(s), features φ(s, a) = ∇_θ μ_θ(s) (a - μ_θ(s))
      (per-sample Jacobians by torch.func), V^v linear in quadratic features of s. Then ∇_a Q^w = ∇_θ μ_θ(s)ᵀ w,
      so (3) is unbiased when w minimises the squared error of ∇_a Q, and the natural gradient is w itself:
  (6) natural = true: θ_{t+1} = θ_t + α_θ w_t (COPDAC-Q with the natural policy gradient, Silver et al. section 4:
      the plain step by default; ``optimizer = adam`` feeds -w to Adam instead).

Beyond the post:
- ``policy = linear`` (μ_θ(s) = θ s, actions clipped to the env's bounds; the right class for an LQR) or ``mlp``
  (tanh output scaled to the bounds); ``critic = mlp`` uses an MLP Q_w(s, a) instead of (5);
- the actor takes plain stochastic steps as in the post and the paper (default), or Adam (``optimizer``); the
  critic's w and v take Adam steps by default (``critic_optimizer``; plain SGD diverges on unscaled quadratic
  features such as Pendulum's), or plain ones; exploration noise σ in env action units for both forms (the on-policy form with σ = 0 is the post's purely
  deterministic version: it learns only what the env's own noise reveals);
- time limits: the targets bootstrap through truncation (the true final s_{t+1}), never through termination;
- flat vector observations only: θ s, the quadratic features of s and the per-sample Jacobians are the linear
  maths of the paper, and image observations are refused (``IMAGES = False``); DDPG, TD3, D4PG and SAC read
  frames through an encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from pgrad.config import BaseConfig
from pgrad.core.losses import dpg_actor_loss, q_regression_loss
from pgrad.core.nets import ActionBounds, Activation, QNet, mlp
from pgrad.envs import EnvSpec

SPACES = ("box",)
IMAGES = False  # api.prepare refuses image observations: DPG's linear maths reads flat vectors


@dataclass
class Config(BaseConfig):
    form: Literal["off_policy", "on_policy"] = "off_policy"
    """off_policy: Gaussian behaviour policy β and a Q-learning critic (1'); on_policy: the SARSA critic (1)."""
    critic: Literal["compatible", "mlp"] = "compatible"
    """Q_w: linear in the compatible features (5) plus a quadratic baseline V^v(s), or an MLP on [s, a]."""
    policy: Literal["linear", "mlp"] = "linear"
    """μ_θ: linear μ(s) = θ s (no bias), or an MLP with a tanh output scaled to the action bounds."""
    natural: bool = True
    """With the compatible critic, step θ along w (6), the natural gradient, instead of (3)."""
    optimizer: Literal["sgd", "adam"] = "sgd"
    """Optimiser of θ: plain steps (the post's and the paper's updates (3), (6): θ ← θ + α_θ w) or Adam (an
    option; it rescales each coordinate, so that (6) is then no longer the natural gradient's step)."""
    critic_optimizer: Literal["sgd", "adam"] = "adam"
    """Optimiser of w and v: Adam (robust to unscaled quadratic features of s, e.g. Pendulum's angular velocity²)
    or plain steps (the post's update (2))."""
    lr: float = 2e-3
    """Actor step size α_θ (2e-3 for the plain natural step on the LQR: cost within 1.2% of the optimum on seeds
    0-2, where 1e-3 and 5e-4 leave 4-8%)."""
    anneal_lr: bool = True
    """Decay α_θ linearly to 0 over the run (the critic's step size stays): the actor settles instead of
    jittering around the optimum with the critic's noise."""
    critic_lr: float = 1e-2
    """Critic step size α_w (and α_v of the baseline)."""
    gamma: float = 0.99
    """Discount γ."""
    noise_sigma: float = 0.3
    """σ of the Gaussian exploration / behaviour noise, in env action units."""
    num_envs: int = 8
    """Parallel environments N; each update uses the mean over their N transitions."""
    learning_starts: int = 0
    """Env steps of critic-only learning before the actor starts to move."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the MLP policy and the MLP critic (when used)."""
    activation: Activation = "tanh"
    """Hidden activation of the MLPs."""

    RANGES = {"lr": "(0, inf)", "critic_lr": "(0, inf)", "gamma": "(0, 1]", "noise_sigma": "[0, inf)",
              "learning_starts": "[0, inf)", "hidden": "[1, 100000]"}


class LinearPolicy(nn.Module):
    """μ_θ(s) = θ s, θ: [A, D], starting at 0."""

    def __init__(self, obs_dim: int, act_dim: int):
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(act_dim, obs_dim))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs @ self.theta.T


class MLPPolicy(nn.Module):
    """μ_θ(s) = c + h tanh(f_θ(s)) for bounds [c - h, c + h]."""

    def __init__(self, obs_dim: int, spec: EnvSpec, hidden: tuple[int, ...], activation: str):
        super().__init__()
        self.f = mlp(obs_dim, hidden, spec.act_dim, activation, out_gain=0.01)
        self.bounds = ActionBounds(spec)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.bounds.scale(torch.tanh(self.f(obs)))


def quadratic_features(obs: torch.Tensor) -> torch.Tensor:
    """[s_i s_j for i <= j, s, 1]: V^v(s) = v · these is any quadratic function of s (exact for an LQR)."""
    i, j = torch.triu_indices(obs.shape[-1], obs.shape[-1])
    return torch.cat([obs[:, i] * obs[:, j], obs, torch.ones_like(obs[:, :1])], -1)


class CompatibleQ(nn.Module):
    """Q^w(s, a) = φ(s, a) · w + V^v(s), φ(s, a) = ∇_θ μ_θ(s) (a - μ_θ(s)) (5); the Jacobian is μ's at its current
    (detached) parameters, so gradients reach w, v and the action a only."""

    def __init__(self, policy: nn.Module, obs_dim: int):
        super().__init__()
        self._policy = [policy]  # not a submodule: the critic's parameters are w and v only
        n_theta = sum(p.numel() for p in policy.parameters())
        self.w = nn.Parameter(torch.zeros(n_theta))
        self.v = nn.Parameter(torch.zeros(quadratic_features(torch.zeros(1, obs_dim)).shape[-1]))

    def jacobian(self, obs: torch.Tensor) -> torch.Tensor:
        """∇_θ μ_θ(s) for each s: [B, A, P] (P parameters of μ)."""
        mu = self._policy[0]
        params = {k: p.detach() for k, p in mu.named_parameters()}
        buffers = dict(mu.named_buffers())

        def f(p: dict[str, torch.Tensor], s: torch.Tensor) -> torch.Tensor:
            return functional_call(mu, (p, buffers), (s.unsqueeze(0),)).squeeze(0)

        jac = vmap(jacrev(f), in_dims=(None, 0))(params, obs)
        B = obs.shape[0]
        return torch.cat([jac[k].reshape(B, -1, params[k].numel()) for k in params], -1)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            jac = self.jacobian(obs)
            mu = self._policy[0](obs)
        phi = torch.einsum("bap,ba->bp", jac, act - mu)
        return phi @ self.w + quadratic_features(obs) @ self.v  # (5)


def build(cfg: Config, spec: EnvSpec) -> tuple[nn.ModuleDict, dict[str, torch.optim.Optimizer]]:
    if cfg.policy == "linear":
        mu: nn.Module = LinearPolicy(spec.obs_dim, spec.act_dim)
    else:
        mu = MLPPolicy(spec.obs_dim, spec, cfg.hidden, cfg.activation)
    q = CompatibleQ(mu, spec.obs_dim) if cfg.critic == "compatible" else QNet(spec.obs_dim, spec.act_dim,
                                                                               cfg.hidden, cfg.activation)
    nets = nn.ModuleDict({"mu": mu, "q": q, "bounds": ActionBounds(spec)}).to(cfg.device)
    def make(kind: str, params: Any, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=lr) if kind == "adam" else torch.optim.SGD(params, lr=lr)

    return nets, {"mu": make(cfg.optimizer, nets["mu"].parameters(), cfg.lr),
                  "q": make(cfg.critic_optimizer, nets["q"].parameters(), cfg.critic_lr)}


def act(nets: nn.ModuleDict, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
    """μ_θ(s), clipped to the env's bounds."""
    return nets["bounds"].clip(nets["mu"](obs)).cpu().numpy()


def update(nets: nn.ModuleDict, opt: dict[str, torch.optim.Optimizer], b: dict[str, torch.Tensor], cfg: Config,
           update_actor: bool = True) -> dict[str, torch.Tensor]:
    """One critic step (1)/(1'), (2) on the N transitions ``b``, then one actor step (3) or (6)."""
    mu, q = nets["mu"], nets["q"]
    with torch.no_grad():
        q_next = q(b["next_obs"], b["next_actions"])  # SARSA: a_{t+1} taken; Q-learning: μ_θ(s_{t+1})
        y = b["rewards"] + b["discount"] * q_next  # (1) / (1')
    q_sa = q(b["obs"], b["actions"])
    q_loss = 0.5 * q_regression_loss(q_sa, y)  # (2): its gradient is -δ ∇_w Q_w(s, a)
    opt["q"].zero_grad(set_to_none=True)
    q_loss.backward()
    opt["q"].step()
    out = {"loss/critic": q_loss.detach(), "q": q_sa.detach().mean()}
    if update_actor:
        opt["mu"].zero_grad(set_to_none=True)
        if cfg.critic == "compatible" and cfg.natural:  # (6): θ ← θ + α_θ w
            w = q.w.detach()
            i = 0
            for p in mu.parameters():
                p.grad = -w[i:i + p.numel()].view_as(p).clone()
                i += p.numel()
            out["loss/actor"] = -q(b["obs"], mu(b["obs"])).detach().mean()
        else:
            pi_loss = dpg_actor_loss(q(b["obs"], mu(b["obs"])))  # (3)
            params = list(mu.parameters())
            for p, g in zip(params, torch.autograd.grad(pi_loss, params)):
                p.grad = g
            out["loss/actor"] = pi_loss.detach()
        opt["mu"].step()
    return out


def train(cfg: Config, run: Any) -> nn.ModuleDict:
    envs = run.make_envs()
    nets, opt = build(cfg, run.spec)
    pending = PendingAction()
    run.track(nets=nets, opt_mu=opt["mu"], opt_q=opt["q"], pending=pending)
    mu, bounds = nets["mu"], nets["bounds"]
    N = cfg.num_envs

    def behaviour(obs: torch.Tensor) -> torch.Tensor:
        a = mu(obs)
        return bounds.clip(a + cfg.noise_sigma * torch.randn_like(a)) if cfg.noise_sigma > 0 else bounds.clip(a)

    if pending.a is None:
        with torch.no_grad():
            pending.a = behaviour(envs.obs)
    metrics: dict[str, torch.Tensor] | None = None
    while run.step < cfg.steps:
        if cfg.anneal_lr:
            for g in opt["mu"].param_groups:
                g["lr"] = cfg.lr * (1.0 - run.step / cfg.steps)
        obs, a = envs.obs, pending.a
        step = envs.step(a.cpu().numpy())
        with torch.no_grad():
            a_next = behaviour(step.obs)  # the action taken next (SARSA's a_{t+1}, where no episode ended)
            if cfg.form == "on_policy":
                ended = (step.terminated | step.truncated).unsqueeze(-1)
                # at an episode end s_{t+1} is the final state: act there as the policy would have
                target_a = torch.where(ended, behaviour(step.next_obs), a_next)
            else:
                target_a = bounds.clip(mu(step.next_obs))
        b = {"obs": obs, "actions": a, "rewards": step.reward, "next_obs": step.next_obs, "next_actions": target_a,
             "discount": cfg.gamma * (~step.terminated).float()}
        metrics = update(nets, opt, b, cfg, update_actor=run.step >= cfg.learning_starts)
        pending.a = a_next
        log_now = run.step + N >= run.next_log
        if not run.advance(N, metrics if log_now else None):
            break
    return nets


class PendingAction:
    """The action already drawn for the current observations (SARSA needs a_{t+1} before the env steps);
    checkpointed so that a resumed run continues exactly."""

    def __init__(self) -> None:
        self.a: torch.Tensor | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"a": self.a}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.a = d["a"]
