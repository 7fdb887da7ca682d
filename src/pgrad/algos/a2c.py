"""A2C: synchronous advantage actor-critic over N parallel envs (post: A2C, the synchronous A3C; Mnih et al., 2016).

Equations (post notation) and the functions that compute them:
  (1) R ← r_i + γ R from R = V_w(s_t) (0 if terminal): the n-step return    core.returns.bootstrapped_returns
      (or GAE(γ, λ) targets when λ < 1)                                     core.returns.gae
  (2) dθ ← ∇_θ log π_θ(a_i|s_i) (R - V_w(s_i))                              core.losses.policy_gradient_loss
  (3) dw ← ∇_w (R - V_w(s_i))^2   (J_v(w))                                  core.losses.value_loss
      (2) and (3), with the entropy bonus, as one loss                      core.losses.actor_critic_loss
  (4) one synchronous step on θ and w from the gradients of all N envs' T steps: the coordinator of A2C.

Beyond the post:
- entropy bonus c2 H(π) (A3C paper), gradient clipping, RMSprop as in the A3C paper and Stable-Baselines3;
- time limits: V of the true final observation is bootstrapped at truncation, never at termination;
- image observations: π and V share one encoder (``nets["enc"]``, the CNN of ``--net``), as the A3C paper shares
  all non-output layers, so vf_coef weighs the value loss's pull on the shared features; vectors keep two
  separate MLPs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from pgrad.config import BaseConfig
from pgrad.core import optim
from pgrad.core.encoders import make_encoder
from pgrad.core.losses import actor_critic_loss
from pgrad.core.nets import (
    ActionBounds,
    Activation,
    ValueNet,
    clip_grad_norm,
    features_function,
    in_width,
    policy_function,
    policy_net,
)
from pgrad.core.returns import bootstrapped_returns, gae
from pgrad.data.collect import PolicySampler, collect_rollout
from pgrad.data.rollout import Rollout, flat, next_values
from pgrad.envs import EnvSpec

SPACES = ("discrete", "box", "multidiscrete", "multibinary")
METRICS = ["loss/policy", "loss/value", "entropy", "grad_norm"]  # what update logs (via actor_critic_loss)


@dataclass
class Config(BaseConfig):
    num_envs: int = 8
    """Parallel environments N (the A2C coordinator waits for all of them)."""
    lr: float = 7e-4
    """Learning rate α (for θ and w)."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over the run."""
    optimizer: Literal["rmsprop", "rmsprop_tf", "adam"] = "rmsprop"
    """Optimiser: RMSprop (torch's, as SB3), rmsprop_tf (TensorFlow's, which the A2C/A3C reference code ran: ε inside
    the root, square average starting at 1; core.optim.RMSpropTF) or Adam."""
    rms_alpha: float = 0.99
    """RMSprop smoothing constant."""
    opt_eps: float = 1e-5
    """Optimiser ε."""
    gamma: float = 0.99
    """Discount γ."""
    lam: float = 1.0
    """GAE λ; 1 gives the post's n-step returns R."""
    n_steps: int = 5
    """Steps t_max per env between updates."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient (the A3C paper and its reference code used 0.01; 0 as SB3's default, which is
    what the CartPole and Pendulum rows are checked with)."""
    max_grad_norm: float = 0.5
    """Clip the global gradient norm to this value."""
    norm_adv: bool = False
    """Normalise the advantages R - V per update."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and value heads (separate MLPs; on images, after the shared encoder)."""
    activation: Activation = "tanh"
    """Hidden activation."""
    log_std_init: float = 0.0
    """Initial log σ of the Gaussian policy (Box actions)."""
    backend: Literal["local", "ray"] = "local"
    """'local': the N envs step in this process; 'ray': they are split over ray_workers Ray actors, each returns
    the gradient of its rollouts and the coordinator steps once all have reported (docs/distributed.md)."""
    ray_workers: int = 2
    """Ray actors with backend=ray (num_envs must be a multiple of it)."""
    ray_address: str | None = None
    """Ray cluster to join with backend=ray (e.g. 'auto'); None starts a local Ray."""

    RANGES = {
        "lr": "(0, inf)", "rms_alpha": "(0, 1)", "opt_eps": "(0, inf)", "gamma": "(0, 1]", "lam": "[0, 1]",
        "n_steps": "[1, inf)", "vf_coef": "[0, inf)", "ent_coef": "[0, inf)", "max_grad_norm": "(0, inf)",
        "hidden": "[1, 100000]", "ray_workers": "[1, 1024]", "log_std_init": "[-20, 2]",
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
    if cfg.optimizer == "rmsprop":
        opt: torch.optim.Optimizer = optim.RMSprop(params, lr=cfg.lr, alpha=cfg.rms_alpha, eps=cfg.opt_eps)
    elif cfg.optimizer == "rmsprop_tf":
        opt = optim.RMSpropTF(params, lr=cfg.lr, alpha=cfg.rms_alpha, eps=cfg.opt_eps)
    else:
        opt = torch.optim.Adam(params, lr=cfg.lr, eps=cfg.opt_eps)
    return nets, opt


def act(nets: nn.ModuleDict, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
    dist = nets["pi"](nets["enc"](obs))
    a = dist.mode() if deterministic else dist.sample()
    if a.dtype.is_floating_point:
        a = nets["bounds"].clip(a)
    return a.cpu().numpy()


def loss_of(nets: nn.ModuleDict, b: dict[str, torch.Tensor],
            cfg: Config) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of (2) and (3) on batch ``b`` (obs, actions, ret), the features computed once for π and V."""
    h = nets["enc"](b["obs"])
    dist = nets["pi"](h)
    logp = dist.log_prob(b["actions"])
    v = nets["v"](h)
    return actor_critic_loss(logp, v, b["ret"], dist.entropy(), cfg.vf_coef, cfg.ent_coef, cfg.norm_adv)  # (2), (3)


def update(nets: nn.ModuleDict, opt: torch.optim.Optimizer, b: dict[str, torch.Tensor],
           cfg: Config) -> dict[str, torch.Tensor]:
    """One synchronous gradient step on all N·T samples (4)."""
    loss, metrics = loss_of(nets, b, cfg)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = clip_grad_norm(nets.parameters(), cfg.max_grad_norm)
    opt.step()
    metrics["grad_norm"] = grad_norm.detach()
    return metrics


def returns(ro: Rollout, value: Callable[[torch.Tensor], torch.Tensor], cfg: Config,
            v: torch.Tensor | None = None) -> torch.Tensor:
    """Value targets R for every step of the rollout (1), bootstrapped from V of the next states;
    ``value(obs)`` is V_w(s) through the shared encoder. ``v``: V(s_t) when already known (images: computed
    while acting), so that only the next observations that are not the next row's go through the encoder."""
    with torch.no_grad():
        v_next = value(ro.next_obs) if v is None else next_values(value, ro, v)
        if cfg.lam == 1.0:
            return bootstrapped_returns(ro.rewards, v_next, ro.terminated, ro.truncated, cfg.gamma)  # (1)
        v = value(ro.obs) if v is None else v
        return gae(ro.rewards, v, v_next, ro.terminated, ro.truncated, cfg.gamma, cfg.lam)[1]  # (1)


def value_function(nets: nn.ModuleDict) -> Callable[[torch.Tensor], torch.Tensor]:
    """obs -> V_w(enc(obs)); V alone for vectors (no encoder call)."""
    enc, v = features_function(nets["enc"]), nets["v"]
    return lambda obs: v(enc(obs))


def train(cfg: Config, run: Any) -> nn.ModuleDict:
    if cfg.backend == "ray":
        return _train_ray(cfg, run)
    envs = run.make_envs()
    nets, opt = build(cfg, run.spec)
    run.track(nets=nets, opt=opt)
    ro = Rollout(cfg.n_steps, cfg.num_envs, run.spec, cfg.device)
    value, image = value_function(nets), run.spec.is_image  # images: V(s_t) comes with acting
    sample = PolicySampler(policy_function(nets["pi"]), nets["bounds"], run.spec.action_kind == "box",
                           nets["enc"] if image else None, nets["v"] if image else None)

    step_fn = torch.compile(update) if cfg.compile else update
    n = cfg.n_steps * cfg.num_envs
    while run.step < cfg.steps:
        if cfg.anneal_lr:
            for g in opt.param_groups:
                g["lr"] = cfg.lr * (1.0 - run.step / cfg.steps)
        collect_rollout(envs, sample, ro)
        R = returns(ro, value, cfg, sample.pop_values() if image else None)
        metrics = step_fn(nets, opt, {"obs": flat(ro.obs), "actions": flat(ro.actions), "ret": flat(R)}, cfg)
        if not run.advance(n, metrics):
            break
    return nets


# ----------------------------------------------------------------------------- backend=ray
def rollout_gradients(nets: nn.ModuleDict, envs: Any, ro: Rollout, cfg: Config) -> dict[str, torch.Tensor]:
    """A Ray worker's share of (4): collect its envs' T steps, (1) the targets R, and the gradients of the same
    loss as ``update`` on its N/K·T samples, left in .grad (the coordinator averages, clips and steps)."""
    sample = PolicySampler(nets["pi"], nets["bounds"], envs.spec.action_kind == "box", nets["enc"])
    collect_rollout(envs, sample, ro)
    R = returns(ro, value_function(nets), cfg)
    # norm_adv (if set) standardises over this worker's batch with backend=ray
    loss, metrics = loss_of(nets, {"obs": flat(ro.obs), "actions": flat(ro.actions), "ret": flat(R)}, cfg)
    for p in nets.parameters():
        p.grad = None
    loss.backward()
    return metrics


def _train_ray(cfg: Config, run: Any) -> nn.ModuleDict:
    """A2C's coordinator over Ray actors: one synchronous step (4) from the average of all K workers' gradients."""
    from pgrad.errors import ConfigError
    from pgrad.parallel.hogwild import record_episodes, worker_seed
    from pgrad.parallel.ray_backend import RayWorkerPool, apply_gradients, mean_gradients, ray_session

    if cfg.num_envs % cfg.ray_workers:
        raise ConfigError(f"num_envs={cfg.num_envs} must be a multiple of ray_workers={cfg.ray_workers}")
    if cfg.norm_obs or cfg.norm_reward:
        name = "norm_obs" if cfg.norm_obs else "norm_reward"
        raise ConfigError(f"a2c with backend=ray does not support {name} (each actor would keep its own "
                          f"statistics, neither shared nor saved); set {name}=false")
    nets, opt = build(cfg, run.spec)
    run.track(nets=nets, opt=opt)
    if run.step > 0:
        run.exact_resume = False
        run.log_event("a2c (backend=ray) resumes parameters, optimiser and counters; the actors start new "
                      "episodes and random streams (not bit-exact)")
    step0 = run.step
    with ray_session(cfg.ray_address, run.log_event):
        pool = RayWorkerPool("a2c", cfg, run.spec, run.factory, cfg.ray_workers, cfg.num_envs // cfg.ray_workers,
                             lambda k, restarts: worker_seed(cfg.seed, k, restarts, step0), run.log_event)
        try:
            while run.step < cfg.steps:
                if cfg.anneal_lr:
                    for g in opt.param_groups:
                        g["lr"] = cfg.lr * (1.0 - run.step / cfg.steps)
                results = pool.gather(pool.put_weights(nets))
                metrics = apply_gradients(nets, opt, mean_gradients(results), cfg.max_grad_norm)  # (4)
                for m in ("loss/policy", "loss/value", "entropy"):
                    metrics[m] = torch.tensor(float(np.mean([r["metrics"][m] for r in results])))
                for r in results:
                    record_episodes(run, r["finished"])
                if not run.advance(sum(r["steps"] for r in results), metrics):
                    break
        finally:
            pool.shutdown()
    return nets
