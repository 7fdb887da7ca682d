"""A3C: asynchronous advantage actor-critic, K workers updating shared parameters without locks
(post: A3C; Mnih et al., 2016, "Asynchronous Methods for Deep Reinforcement Learning", Algorithm S3).

The post's algorithm, per worker, with global θ, w in shared memory and a global step counter T:
  (0) dθ ← 0, dw ← 0; synchronise θ' = θ, w' = w                    parallel.hogwild (the worker loop below)
  (1) roll t_max steps with a ~ π_θ'(a|s); T ← T + t_max             data.collect.collect_rollout
  (2) R = 0 if s_t is terminal else V_w'(s_t); R ← r_i + γ R for i = t-1 … t_start
                                                                      core.returns.bootstrapped_returns
  (3) dθ ← dθ + ∇_θ' log π_θ'(a_i|s_i) (R - V_w'(s_i))               core.losses.policy_gradient_loss
  (4) dw ← dw + ∂(R - V_w'(s_i))² / ∂w'   (J_v(w), times vf_coef)      core.losses.value_loss
      (3) and (4), with the entropy bonus, as one loss                  core.losses.actor_critic_loss
  (5) update θ with dθ and w with dw asynchronously: the gradients are copied into the shared model and one
      step of an optimiser whose statistics are shared is applied            parallel.hogwild.copy_gradients
Evaluation and checkpoints happen in the main process, which only reads the shared parameters.

Backends: ``hogwild`` (default): K processes on this machine (spawn, ``torch.set_num_threads(1)`` each);
``ray``: K Ray actors compute (1)-(4) on their own rollouts and the learner applies each gradient as it
arrives (5), on one machine or a cluster (``ray_address``); see docs/distributed.md.

Beyond the post:
- a worker rolls exactly t_max steps and continues its episode at the next rollout (the post stops a rollout
  at a terminal state); returns never cross an episode end, so the gradient is the same estimator. This is
  what makes one worker with one env perform exactly the computation of A2C with one env (tested);
- losses are averaged over the t_max steps (not summed), the entropy bonus c2 H(π) of the paper, gradient
  clipping, RMSprop with shared statistics (the paper's "shared RMSProp") or shared Adam;
- time limits: V of the true final observation is bootstrapped at truncation, never at termination;
- image observations: π and V share one encoder (``nets["enc"]``, the CNN of ``--net``): the paper's network
  shares all non-output layers; it lives in shared memory with the heads, and each worker's local copy θ', w'
  (built from the same spec) includes it; vectors keep two separate MLPs;
- dead workers (processes or Ray actors) are restarted from the shared parameters and the run log says so.

Resume: parameters, shared optimiser statistics and all counters are restored; workers start new episodes with
new random streams, and the asynchronous interleaving is not reproducible, so resume is not bit-exact.
"""

from __future__ import annotations

import signal
import time
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
from pgrad.core.returns import bootstrapped_returns
from pgrad.data.collect import PolicySampler, collect_rollout
from pgrad.data.rollout import Rollout, flat, next_values
from pgrad.envs import EnvSpec, VecEnv
from pgrad.errors import ConfigError
from pgrad.parallel.hogwild import (
    WorkerPool,
    WorkerStats,
    attach_optimizer_state,
    copy_gradients,
    init_optimizer_state,
    pickle_factory,
    record_episodes,
    share_optimizer_state,
    unpickle_factory,
    worker_seed,
)
from pgrad.run import seed_everything

SPACES = ("discrete", "box", "multidiscrete", "multibinary")
METRICS = ["loss/policy", "loss/value", "entropy", "grad_norm"]


@dataclass
class Config(BaseConfig):
    workers: int = 2
    """Asynchronous workers K (processes, or Ray actors with backend=ray)."""
    num_envs: int = 1
    """Environments per worker (the post: one)."""
    backend: Literal["hogwild", "ray"] = "hogwild"
    """'hogwild': worker processes on this machine sharing memory; 'ray': Ray actors (one machine or a cluster)."""
    ray_address: str | None = None
    """Ray cluster to join (e.g. 'auto' or 'ray://head:10001'); None starts a local Ray."""
    lr: float = 7e-4
    """Learning rate α (for θ and w)."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 with the global step counter T."""
    optimizer: Literal["rmsprop", "rmsprop_tf", "adam"] = "rmsprop"
    """Optimiser with shared statistics: RMSprop (the A3C paper's shared RMSProp, torch's form), rmsprop_tf
    (TensorFlow's, as the paper's code ran it: ε inside the root, square average starting at 1) or Adam."""
    rms_alpha: float = 0.99
    """RMSprop smoothing constant."""
    opt_eps: float = 1e-5
    """Optimiser ε."""
    gamma: float = 0.99
    """Discount γ."""
    n_steps: int = 5
    """Steps t_max per worker (and env) between updates."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient c2 (the A3C paper used 0.01; 0 here as A2C's default, the CartPole row's
    setting)."""
    max_grad_norm: float = 0.5
    """Clip each worker's gradient norm to this value."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and value heads (separate MLPs; on images, after the shared encoder)."""
    activation: Activation = "tanh"
    """Hidden activation."""
    log_std_init: float = 0.0
    """Initial log σ of the Gaussian policy (Box actions)."""
    max_restarts: int = 10
    """Restart a worker that dies at most this many times before the run fails."""

    RANGES = {
        "workers": "[1, 1024]", "lr": "(0, inf)", "rms_alpha": "(0, 1)", "opt_eps": "(0, inf)", "gamma": "(0, 1]",
        "n_steps": "[1, inf)", "vf_coef": "[0, inf)", "ent_coef": "[0, inf)", "max_grad_norm": "(0, inf)",
        "hidden": "[1, 100000]", "max_restarts": "[0, inf)", "log_std_init": "[-20, 2]",
    }


def make_optimizer(cfg: Config, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.rms_alpha, eps=cfg.opt_eps)
    if cfg.optimizer == "rmsprop_tf":
        return optim.RMSpropTF(params, lr=cfg.lr, alpha=cfg.rms_alpha, eps=cfg.opt_eps)
    return torch.optim.Adam(params, lr=cfg.lr, eps=cfg.opt_eps)


def trainable(nets: nn.ModuleDict) -> list[nn.Parameter]:
    """θ and w: the shared encoder's parameters (none for vectors), then π's, then V's, each once."""
    return list(nets["enc"].parameters()) + list(nets["pi"].parameters()) + list(nets["v"].parameters())


def build(cfg: Config, spec: EnvSpec) -> tuple[nn.ModuleDict, torch.optim.Optimizer]:
    enc = make_encoder(spec, cfg.net)
    d = in_width(spec, enc)
    nets = nn.ModuleDict({
        "enc": enc or nn.Identity(),  # shared by π and V (no parameters for vectors)
        "pi": policy_net(spec, cfg.hidden, cfg.activation, cfg.log_std_init, in_dim=d),
        "v": ValueNet(d, cfg.hidden, cfg.activation),
        "bounds": ActionBounds(spec),
    }).to(cfg.device)
    return nets, make_optimizer(cfg, trainable(nets))


def act(nets: nn.ModuleDict, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
    dist = nets["pi"](nets["enc"](obs))
    a = dist.mode() if deterministic else dist.sample()
    if a.dtype.is_floating_point:
        a = nets["bounds"].clip(a)
    return a.cpu().numpy()


def gradients(nets: nn.ModuleDict, b: dict[str, torch.Tensor], cfg: Config) -> dict[str, torch.Tensor]:
    """dθ and dw of one rollout, left in the (local) networks' .grad (3), (4); the features are computed once
    for π and V."""
    h = nets["enc"](b["obs"])
    dist = nets["pi"](h)
    logp = dist.log_prob(b["actions"])
    v = nets["v"](h)
    loss, metrics = actor_critic_loss(logp, v, b["ret"], dist.entropy(), cfg.vf_coef, cfg.ent_coef)  # (3), (4)
    for p in nets.parameters():
        p.grad = None
    loss.backward()
    return metrics


def update(local: nn.ModuleDict, shared: nn.ModuleDict, opt: torch.optim.Optimizer, b: dict[str, torch.Tensor],
           cfg: Config) -> dict[str, torch.Tensor]:
    """One asynchronous step (5): the local gradients of rollout b, clipped, copied into the shared model and
    applied by the optimiser whose statistics are shared."""
    metrics = gradients(local, b, cfg)
    grad_norm = clip_grad_norm(local.parameters(), cfg.max_grad_norm)
    copy_gradients(local, shared)  # (5)
    opt.step()
    metrics["grad_norm"] = grad_norm.detach()
    return metrics


def rollout_batch(nets: nn.ModuleDict, envs: VecEnv, ro: Rollout, cfg: Config) -> dict[str, torch.Tensor]:
    """(1) t_max steps of every env with π_θ', then (2) the n-step returns R, flattened to one batch."""
    enc, image = features_function(nets["enc"]), envs.spec.is_image  # images: V(s_t) comes with acting, as A2C
    sample = PolicySampler(policy_function(nets["pi"]), nets["bounds"], envs.spec.action_kind == "box",
                           nets["enc"] if image else None, nets["v"] if image else None)
    collect_rollout(envs, sample, ro)  # (1)
    with torch.no_grad():
        value = lambda o: nets["v"](enc(o))  # noqa: E731
        v_next = next_values(value, ro, sample.pop_values()) if image else value(ro.next_obs)
        R = bootstrapped_returns(ro.rewards, v_next, ro.terminated, ro.truncated, cfg.gamma)  # (2)
    return {"obs": flat(ro.obs), "actions": flat(ro.actions), "ret": flat(R)}


def rollout_gradients(nets: nn.ModuleDict, envs: VecEnv, ro: Rollout, cfg: Config) -> dict[str, torch.Tensor]:
    """(1)-(4) on a worker's own networks: what a Ray actor computes (parallel.ray_backend)."""
    return gradients(nets, rollout_batch(nets, envs, ro, cfg), cfg)


# ------------------------------------------------------------------------------------------------ hogwild worker
def _worker(k: int, seed: int, cfg: Config, spec: EnvSpec, factory_blob: bytes, shared: nn.ModuleDict,
            opt_states: list[dict[str, torch.Tensor]], stats: WorkerStats, step0: int) -> None:
    """Worker k's loop (0)-(5) until the global counter T reaches cfg.steps or the main process says stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's: it sets stats.stop
    torch.set_num_threads(1)
    seed_everything(seed)
    envs = VecEnv(unpickle_factory(factory_blob), cfg.num_envs, seed, spec, vectorization=cfg.vectorization)
    local, _ = build(cfg, spec)  # the same random draws as the main process's build: worker 0 then samples
    # exactly as A2C's single process does with the same seed
    opt = make_optimizer(cfg, trainable(shared))
    attach_optimizer_state(opt, opt_states)
    ro = Rollout(cfg.n_steps, cfg.num_envs, spec)
    n = cfg.n_steps * cfg.num_envs
    while not int(stats.stop[0]):
        T = step0 + stats.total_steps()
        if T >= cfg.steps:
            break
        if cfg.anneal_lr:
            for g in opt.param_groups:
                g["lr"] = cfg.lr * (1.0 - T / cfg.steps)
        local.load_state_dict(shared.state_dict())  # (0) θ' = θ, w' = w
        b = rollout_batch(local, envs, ro, cfg)
        metrics = update(local, shared, opt, b, cfg)
        stats.add(k, n, envs.pop_finished(), metrics)
    envs.close()


# ------------------------------------------------------------------------------------------------ train
def train(cfg: Config, run: Any) -> nn.ModuleDict:
    if cfg.norm_obs or cfg.norm_reward:
        name = "norm_obs" if cfg.norm_obs else "norm_reward"
        raise ConfigError(f"a3c does not support {name}: each worker would keep its own statistics, neither "
                          f"shared nor saved; set {name}=false")
    if cfg.device != "cpu":
        raise ConfigError("a3c's workers share CPU memory; use device=cpu")
    nets, opt = build(cfg, run.spec)
    init_optimizer_state(opt)
    run.track(nets=nets, opt=opt)
    if run.step > 0:
        run.exact_resume = False
        run.log_event("a3c resumes parameters, optimiser statistics and counters; workers start new episodes "
                      "and random streams (not bit-exact)")
    if cfg.backend == "ray":
        _train_ray(cfg, run, nets, opt)
    else:
        _train_hogwild(cfg, run, nets, opt)
    return nets


def _train_hogwild(cfg: Config, run: Any, nets: nn.ModuleDict, opt: torch.optim.Optimizer) -> None:
    states = share_optimizer_state(opt)  # after run.track: a resumed state is moved to shared memory too
    nets.share_memory()
    stats = WorkerStats(cfg.workers, METRICS)
    step0 = run.step
    blob = pickle_factory(run.factory)

    def args(k: int, restarts: int) -> tuple:
        return (k, worker_seed(cfg.seed, k, restarts, step0), cfg, run.spec, blob, nets, states, stats, step0)

    pool = WorkerPool(_worker, args, cfg.workers, run.log_event, cfg.max_restarts)
    seen_steps = seen_updates = 0
    try:
        pool.start()
        while True:
            over = bool(stats.stop[0]) or step0 + stats.total_steps() >= cfg.steps
            all_done = pool.poll(run_over=over)
            total = stats.total_steps()
            updates = int(stats.table[:, WorkerStats.UPDATES].sum())
            record_episodes(run, stats.new_episodes())
            if total > seen_steps:
                keep_going = run.advance(total - seen_steps, stats.metrics(), updates=updates - seen_updates)
                seen_steps, seen_updates = total, updates
                if not keep_going:
                    stats.stop[0] = 1
            if all_done:
                break
            time.sleep(0.01)
    finally:
        stats.stop[0] = 1
        pool.stop_all()


def _train_ray(cfg: Config, run: Any, nets: nn.ModuleDict, opt: torch.optim.Optimizer) -> None:
    from pgrad.parallel.ray_backend import RayWorkerPool, apply_gradients, ray_session

    step0 = run.step
    n = cfg.n_steps * cfg.num_envs
    with ray_session(cfg.ray_address, run.log_event):
        pool = RayWorkerPool("a3c", cfg, run.spec, run.factory, cfg.workers, cfg.num_envs,
                             lambda k, restarts: worker_seed(cfg.seed, k, restarts, step0), run.log_event,
                             cfg.max_restarts)
        try:
            weights = pool.put_weights(nets)
            for k in range(cfg.workers):
                if run.step + k * n < cfg.steps:
                    pool.submit(k, weights)
            while pool.pending():
                k, res = pool.next_result()
                metrics = apply_gradients(nets, opt, res["grads"], cfg.max_grad_norm)  # (5), as they arrive
                metrics.update({m: torch.tensor(res["metrics"][m]) for m in METRICS if m in res["metrics"]})
                record_episodes(run, res["finished"])
                if cfg.anneal_lr:
                    for g in opt.param_groups:
                        g["lr"] = cfg.lr * (1.0 - run.step / cfg.steps)
                if not run.advance(res["steps"], metrics):
                    break
                if run.step + pool.pending() * n < cfg.steps:
                    pool.submit(k, pool.put_weights(nets))
        finally:
            pool.shutdown()
