"""TRPO: trust region policy optimisation (post: TRPO; Schulman et al., 2015, "Trust Region Policy Optimization").

Equations (post notation) and the functions that compute them:
  (1) J(θ) = E_{s ~ ρ^π_θold, a ~ π_θold}[π_θ(a|s) / π_θold(a|s) Â_θold(s, a)]    update (inline: the surrogate)
  (2) E_{s ~ ρ^π_θold}[D_KL(π_θold(.|s) || π_θ(.|s))] <= δ          core.distributions.Categorical.kl / DiagGaussian.kl
  (3) s = F^{-1} ∇_θ J, F = ∇²_θ D̄_KL (Fisher-vector products + conjugate gradient)
                                       core.natural.fisher_vector_product, core.natural.conjugate_gradient
  (4) θ ← θ_old + β s, β = sqrt(2δ / sᵀ F s), shrunk until J improves and (2) holds
                                       core.natural.natural_step_size, core.natural.backtracking_line_search
  (5) Â by GAE(γ, λ); V_w fitted separately by regression on the GAE targets   core.returns.gae,
                                                                               core.losses.value_loss

Beyond the post:
- the post states the constraint with β = π_θold on policy: the behaviour log-probabilities stored at collection
  are π_θold (one policy step per rollout);
- advantages are normalised per rollout; F is damped (F + cg_damping·I) so CG stays well conditioned, and may be
  estimated on every k-th sample of the rollout (``fvp_subsample``, as OpenAI baselines does);
- the value function takes several epochs of Adam minibatch steps per rollout (as in Stable-Baselines3);
- time limits: V of the true final observation is bootstrapped at truncation (GAE), never at termination;
- image observations: π and V_w each read the frames through their own encoder (the CNN of ``--net``), as in
  the paper's Atari runs where the policy is its own convnet: the natural step (3), (4) covers all of π's
  parameters, its convolutions included, and the value regression never moves them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pgrad.config import BaseConfig
from pgrad.core import optim
from pgrad.core.distributions import Bernoulli, Categorical, DiagGaussian, MultiCategorical
from pgrad.core.encoders import make_encoder
from pgrad.core.losses import value_loss
from pgrad.core.natural import (
    backtracking_line_search,
    conjugate_gradient,
    fisher_vector_product,
    flat_grad,
    natural_step_size,
)
from pgrad.core.nets import ActionBounds, Activation, ValueNet, encoded, in_width, policy_function, policy_net
from pgrad.core.returns import gae
from pgrad.data.collect import PolicySampler, collect_rollout
from pgrad.data.rollout import Rollout, flat, minibatches, next_values
from pgrad.envs import EnvSpec

SPACES = ("discrete", "box", "multidiscrete", "multibinary")


@dataclass
class Config(BaseConfig):
    max_kl: float = 0.01
    """Trust region δ: bound on the mean KL divergence between the old and the new policy."""
    n_steps: int = 2048
    """Rollout length T per env; one rollout of T·N transitions gives one policy step."""
    gamma: float = 0.99
    """Discount γ."""
    lam: float = 0.95
    """GAE λ."""
    cg_iters: int = 15
    """Conjugate gradient iterations (Fisher-vector products) for s = F^{-1} g."""
    fvp_subsample: int = 1
    """Estimate F on every k-th sample of the rollout only (1: all of it); the gradient g and the line search
    always use the whole rollout. A CNN's Fisher-vector products dominate a pixel update (OpenAI baselines' TRPO
    uses 5)."""
    cg_damping: float = 0.1
    """Damping added to the Fisher matrix: (F + cg_damping·I) s = g."""
    ls_shrink: float = 0.8
    """Backtracking factor of the line search: β ← ls_shrink · β."""
    ls_max_iter: int = 10
    """Line search tries before the step is abandoned (θ stays θ_old)."""
    norm_adv: bool = True
    """Normalise Â to zero mean and unit std per rollout."""
    lr: float = 1e-3
    """Adam learning rate of the value function V_w."""
    vf_epochs: int = 10
    """Passes over each rollout fitting V_w (Stable-Baselines3's n_critic_updates)."""
    batch_size: int = 128
    """Minibatch size of the value function steps."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and value networks (separate networks; on images, after each one's own
    encoder)."""
    activation: Activation = "tanh"
    """Hidden activation."""
    log_std_init: float = 0.0
    """Initial log σ of the Gaussian policy (Box actions)."""

    RANGES = {
        "max_kl": "(0, inf)", "n_steps": "[1, inf)", "gamma": "(0, 1]", "lam": "[0, 1]", "cg_iters": "[1, inf)", "fvp_subsample": "[1, inf)",
        "cg_damping": "[0, inf)", "ls_shrink": "(0, 1)", "ls_max_iter": "[1, inf)", "lr": "(0, inf)",
        "vf_epochs": "[0, inf)", "batch_size": "[1, inf)", "hidden": "[1, 100000]",
        "log_std_init": "[-20, 2]",
    }


def build(cfg: Config, spec: EnvSpec) -> tuple[nn.ModuleDict, torch.optim.Optimizer]:
    enc_pi, enc_v = make_encoder(spec, cfg.net), make_encoder(spec, cfg.net)  # one each; None for vectors
    nets = nn.ModuleDict({
        "pi": encoded(enc_pi, policy_net(spec, cfg.hidden, cfg.activation, cfg.log_std_init,
                                         in_dim=in_width(spec, enc_pi))),
        "v": encoded(enc_v, ValueNet(in_width(spec, enc_v), cfg.hidden, cfg.activation)),
        "bounds": ActionBounds(spec),
    }).to(cfg.device)
    # the policy (its encoder included) moves by (4), never by this optimiser
    opt = optim.Adam(nets["v"].parameters(), lr=cfg.lr, fused=torch.device(cfg.device).type == "cpu")
    return nets, opt


def act(nets: nn.ModuleDict, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
    dist = nets["pi"](obs)
    a = dist.mode() if deterministic else dist.sample()
    if a.dtype.is_floating_point:
        a = nets["bounds"].clip(a)
    return a.cpu().numpy()


def detached(dist: Categorical | DiagGaussian | MultiCategorical | Bernoulli) -> Any:
    """π_θold: the same distribution with its parameters cut from the graph."""
    if isinstance(dist, Categorical):
        return Categorical(dist.logits.detach())
    if isinstance(dist, (MultiCategorical, Bernoulli)):  # products of independent components: KLs add up
        return dist.detach()
    return DiagGaussian(dist.mean.detach(), dist.log_std.detach())


def update(nets: nn.ModuleDict, b: dict[str, torch.Tensor], cfg: Config) -> dict[str, torch.Tensor]:
    """One trust-region step of the policy on a whole rollout ``b`` (3), (4)."""
    pi = nets["pi"]
    params = [p for p in pi.parameters() if p.requires_grad]
    obs, actions, logp_old, adv = b["obs"], b["actions"], b["logp"], b["adv"]
    if cfg.norm_adv and adv.numel() > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    dist = pi(obs)
    old = detached(dist)
    surr = ((dist.log_prob(actions) - logp_old).exp() * adv).mean()  # (1)
    if cfg.fvp_subsample > 1:  # F is a mean over states: a subsample estimates it at a fraction of the cost
        d_f = pi(obs[::cfg.fvp_subsample])
        kl = detached(d_f).kl(d_f).mean()  # (2) on the subsample
    else:
        kl = old.kl(dist).mean()  # (2), zero at θ = θ_old; its Hessian is F
    g = flat_grad(surr, params, retain_graph=True)
    fvp = fisher_vector_product(kl, params, cfg.cg_damping)
    step_dir = conjugate_gradient(fvp, g, cfg.cg_iters)  # (3)
    beta = natural_step_size(step_dir, fvp(step_dir), cfg.max_kl)  # (4)

    def evaluate() -> tuple[torch.Tensor, torch.Tensor]:
        d = pi(obs)
        return ((d.log_prob(actions) - logp_old).exp() * adv).mean(), old.kl(d).mean()

    accepted, tries, surr_new, kl_new = backtracking_line_search(
        params, beta * step_dir, evaluate, surr.detach(), cfg.max_kl, cfg.ls_shrink, cfg.ls_max_iter)  # (4)
    return {"loss/policy": -surr_new, "kl": kl_new, "ls_accepted": torch.tensor(float(accepted)),
            "ls_tries": torch.tensor(float(tries)), "entropy": dist.entropy().mean().detach(),
            "grad_norm": g.norm().detach()}


def fit_value(nets: nn.ModuleDict, opt: torch.optim.Optimizer, obs: torch.Tensor, ret: torch.Tensor,
              cfg: Config) -> torch.Tensor:
    """Regress V_w on the GAE targets for ``vf_epochs`` passes of Adam minibatch steps (5)."""
    v_net = nets["v"]
    total, k = torch.zeros(()), 0
    for _ in range(cfg.vf_epochs):
        for idx in minibatches(obs.shape[0], cfg.batch_size):
            loss = value_loss(v_net(obs[idx]), ret[idx])  # (5)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, k = total + loss.detach(), k + 1
    return total / max(k, 1)


def train(cfg: Config, run: Any) -> nn.ModuleDict:
    envs = run.make_envs()
    nets, opt = build(cfg, run.spec)
    run.track(nets=nets, opt=opt)
    ro = Rollout(cfg.n_steps, cfg.num_envs, run.spec, cfg.device)
    sample = PolicySampler(policy_function(nets["pi"]), nets["bounds"], run.spec.action_kind == "box")

    n = cfg.n_steps * cfg.num_envs
    while run.step < cfg.steps:
        collect_rollout(envs, sample, ro)
        with torch.no_grad():
            v = nets["v"](ro.obs)  # images: V(s_{t+1}) from the next row where it is one (a CNN pass fewer)
            v_next = next_values(nets["v"], ro, v) if run.spec.is_image else nets["v"](ro.next_obs)
            adv, ret = gae(ro.rewards, v, v_next, ro.terminated, ro.truncated, cfg.gamma, cfg.lam)  # (5)
        data = {"obs": flat(ro.obs), "actions": flat(ro.actions), "logp": flat(ro.logp), "adv": flat(adv)}
        metrics = update(nets, data, cfg)
        metrics["loss/value"] = fit_value(nets, opt, data["obs"], flat(ret), cfg)
        metrics["explained_var"] = 1.0 - (ret - v).var() / (ret.var() + 1e-8)
        if not run.advance(n, metrics, updates=1):
            break
    return nets
