"""D4PG: distributed distributional deep deterministic policy gradient (post: D4PG; Barth-Maron et al., 2018).

DDPG with the post's four parts: (1) a distributional critic, (2) N-step returns, (3) K parallel actors,
(4) prioritised experience replay.

Equations (post notation) and the functions that compute them:
  (1) Z_w(s, a): a categorical distribution on M atoms z_i evenly spaced in [v_min, v_max]   core.nets.CategoricalQ
      Q_w(s, a) = E[Z_w(s, a)]                                                   core.losses.categorical_mean
  (2) target 𝒯_{μθ} Z_w' = Σ_{n<N} γ^n r_n + γ^N Z_w'(s_N, μ_θ'(s_N)), projected on the atoms
                                                          data.replay (n-step), core.losses.categorical_projection
  (3) L(w) = E[(R p_i)^-1 d(Φ𝒯Z_w', Z_w(s, a))], d the cross-entropy             core.losses.categorical_loss
  (4) ∇_θ J ≈ E[∇_a E[Z_w(s, a)] ∇_θ μ_θ(s) |_{a=μ_θ(s)}]                       core.losses.dpg_actor_loss
  (5) K actors with their own exploration noise μ_θ(s) + 𝒩_k feed one replay;
      they receive the learner's published weights                  parallel.actors (processes), parallel.ray_actors
  (6) prioritised replay: P(i) ∝ p_i^α, weights (R P(i))^-β (β annealed to 1),
      p_i ← D_KL(Φ𝒯Z_w' ‖ Z_w(s_i, a_i))             data.replay.PrioritizedReplayBuffer, core.losses.categorical_kl
  (7) θ' ← τ θ + (1 - τ) θ', w' ← τ w + (1 - τ) w'                               core.targets.polyak_update

Beyond the post:
- ``actors = 0`` runs one actor in the learner's process on the run's own envs (exactly reproducible and
  resumable); ``actors = K >= 1`` spawns K processes (``backend = process``, each torch.set_num_threads(1),
  restarted if they die) or K Ray actors (``backend = ray``). The learner does ``replay_ratio`` updates per env
  step received, and bounded channels stop actors from running more than ``queue_size`` chunks ahead;
- actors act uniformly at random until the learner's first publication (after ``learning_starts`` steps);
- soft target updates (the paper copied the targets every 100 steps); importance weights are normalised by their
  batch maximum;
- priorities: the paper's Algorithm 1 (the post's Fig. 4) samples "from replay with priority p_i" and weights the
  critic's loss by (R p_i)^-1, but writes no rule for updating p_i (Acme's D4PG samples uniformly). pgrad takes
  Rainbow's rule for a distributional critic (Hessel et al., 2018): p_i ← D_KL(Φ𝒯Z_w' ‖ Z_w(s_i, a_i)), "since
  this is what the algorithm is minimizing". The cross-entropy of (3) has the same gradient but adds the target's
  entropy H(m), which stays when Z_w fits (a spread target, one return split between two atoms);
- the support [v_min, v_max]: yours or a preset's; where neither sets an end (None), it is derived once, at the
  first update, from the n-step rewards R_i = Σ_{n<N} γ^n r_n of the random warm-up in the replay, as r/(1-γ) at
  each window's discounted mean reward (R_i / (1 - γ^N)) with margin 2 and 0 inside (an episode can end):
  v_min = 2 min(0, min_i R_i / (1 - γ^N)), v_max = 2 max(0, max_i R_i / (1 - γ^N)), [-1, 1] if all R_i = 0.
  run.log states it, checkpoints keep it. ``edge_mass`` logs the target's mass on the two edge atoms,
  ``clipped_mass`` the share clipped onto them from outside; a warning, once, when ``clipped_mass`` > 0.1 (edge mass
  alone can be right: Pendulum's best values sit on its exact bound v_max = 0);
- N-step windows stop at episode ends: bootstrapping through truncation (true final s'), never termination;
- image observations: μ and Z each own an encoder (the CNN of ``--net``); the targets and the actors' copies of μ
  carry theirs; frames stay uint8 (or bool) in the actors' local replay, their chunks and the learner's replay;
  the actor step reads the critic's features without a graph.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from pgrad.config import BaseConfig
from pgrad.core import optim
from pgrad.core.encoders import make_encoder
from pgrad.core.losses import (
    categorical_clipped_mass,
    categorical_kl,
    categorical_loss,
    categorical_mean,
    categorical_projection,
    dpg_actor_loss,
)
from pgrad.core.nets import (
    ActionBounds,
    Activation,
    CategoricalQ,
    DeterministicActor,
    Encoded,
    encoded,
    in_width,
)
from pgrad.core.targets import frozen_copy, polyak_update
from pgrad.data.replay import PrioritizedReplayBuffer, ReplayBuffer, extend
from pgrad.envs import EnvSpec, obs_torch_dtype
from pgrad.errors import ConfigError
from pgrad.parallel.actors import Actor, ActorPool, ActorSpec

SPACES = ("box",)


@dataclass
class Config(BaseConfig):
    lr: float = 1e-4
    """Adam learning rate of the actor μ_θ (the paper: 1e-4)."""
    critic_lr: float | None = None
    """Adam learning rate of the distributional critic Z_w (None: the same as lr)."""
    gamma: float = 0.99
    """Discount γ."""
    tau: float = 0.005
    """Soft target update rate τ."""
    n_step: int = 5
    """N of the N-step return (the paper: 5)."""
    n_atoms: int = 51
    """Atoms M of the categorical critic."""
    v_min: float | None = None
    """Smallest atom z_0; returns below are clipped onto it (None: derived from the warm-up's rewards, see v_max)."""
    v_max: float | None = None
    """Largest atom z_{M-1} (None: derived at the first update from the random warm-up's n-step rewards R_i as
    2 max(0, max_i R_i / (1 - γ^N)), and v_min as 2 min(0, min_i R_i / (1 - γ^N)), i.e. r/(1-γ) with margin 2)."""
    buffer_size: int = 1_000_000
    """Replay capacity R in transitions."""
    batch_size: int = 256
    """Minibatch size of each update."""
    learning_starts: int = 1000
    """Env steps (all actors together) of uniform random actions before the first update."""
    replay_ratio: float = 1.0
    """Gradient steps per env step received from the actors."""
    prioritized: bool = True
    """Prioritised replay (part 4); False samples uniformly."""
    alpha: float = 0.6
    """Priority exponent α: P(i) ∝ p_i^α."""
    beta: float = 0.4
    """Initial importance-sampling exponent β, annealed linearly to 1 over the run."""
    actors: int = 0
    """K parallel actors (0: one actor inside the learner's process)."""
    backend: Literal["process", "ray"] = "process"
    """Where the K actors run: spawned processes or Ray actors."""
    chunk: int = 50
    """Vector-env steps an actor takes per message to the learner."""
    queue_size: int = 2
    """Chunks an actor may have in flight to the learner before it waits (the bound and rate limit)."""
    publish_every: int = 1
    """Publish the actor's weights to the actors every this many updates."""
    noise: Literal["gaussian", "ou"] = "gaussian"
    """Exploration noise 𝒩_k of each actor: Gaussian or Ornstein-Uhlenbeck (own process and seed per actor)."""
    noise_sigma: float = 0.1
    """σ of actor 0's noise, in units of half the action range (the paper: 0.3)."""
    noise_sigma_max: float | None = None
    """σ of actor K-1; actors in between are evenly spaced (None: every actor uses noise_sigma)."""
    hidden: tuple[int, ...] = (400, 300)
    """Hidden layer sizes of μ_θ and Z_w (on images, after each one's encoder)."""
    activation: Activation = "relu"
    """Hidden activation."""

    RANGES = {
        "lr": "(0, inf)", "critic_lr": "(0, inf)", "gamma": "(0, 1]", "tau": "(0, 1]", "n_step": "[1, 1000]",
        "n_atoms": "[2, 100000]", "buffer_size": "[1, inf)", "batch_size": "[1, inf)",
        "learning_starts": "[0, inf)", "replay_ratio": "(0, inf)", "alpha": "[0, inf)", "beta": "[0, 1]",
        "actors": "[0, 1024]", "chunk": "[1, inf)", "queue_size": "[1, inf)", "publish_every": "[1, inf)",
        "noise_sigma": "[0, inf)", "noise_sigma_max": "[0, inf)", "hidden": "[1, 100000]",
        "v_min": "(-inf, inf)", "v_max": "(-inf, inf)",
    }

    def _check_cross_fields(self) -> None:
        """v_min < v_max where both are set; an end left None is derived (and checked) in train, which needs γ < 1."""
        if (self.v_min is None or self.v_max is None) and self.gamma == 1.0:
            raise ConfigError("gamma=1 bounds no return by r/(1-γ), from which v_min/v_max are derived: set both")
        super()._check_cross_fields()


MARGIN = 2.0
"""A derived support reaches MARGIN times the largest warm-up value estimate R_i / (1 - γ^N) on each side of 0."""
CLIP_WARN = 0.1
"""Warn once when more than this share of the target's mass is clipped onto the edge atoms."""


def build(cfg: Config, spec: EnvSpec) -> tuple[nn.ModuleDict, dict[str, torch.optim.Optimizer]]:
    enc_mu, enc_z = make_encoder(spec, cfg.net), make_encoder(spec, cfg.net)  # None for vectors
    mu = encoded(enc_mu, DeterministicActor(in_width(spec, enc_mu), spec.act_dim, cfg.hidden, cfg.activation))
    z = encoded(enc_z, CategoricalQ(in_width(spec, enc_z), spec.act_dim, cfg.n_atoms, cfg.hidden, cfg.activation))
    nets = nn.ModuleDict({"mu": mu, "z": z, "mu_targ": frozen_copy(mu), "z_targ": frozen_copy(z),
                          "bounds": ActionBounds(spec)}).to(cfg.device)
    fused = torch.device(cfg.device).type == "cpu"
    opt = {"mu": optim.Adam(nets["mu"].parameters(), lr=cfg.lr, fused=fused),
           "z": optim.Adam(nets["z"].parameters(), lr=cfg.critic_lr or cfg.lr, fused=fused)}
    return nets, opt


def act(nets: nn.ModuleDict, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
    """μ_θ(s) rescaled to the env's bounds (exploration noise is the actors' business)."""
    return nets["bounds"].scale(nets["mu"](obs)).cpu().numpy()


def update(nets: nn.ModuleDict, opt: dict[str, torch.optim.Optimizer], b: dict[str, torch.Tensor],
           atoms: torch.Tensor, cfg: Config) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One step of the critic, then of the actor, then the targets. Returns the metrics and the per-sample
    D_KL(Φ𝒯Z_w' ‖ Z_w(s, a)) before the step (the new priorities)."""
    mu, z = nets["mu"], nets["z"]
    with torch.no_grad():
        p_next = torch.softmax(nets["z_targ"](b["next_obs"], nets["mu_targ"](b["next_obs"])), -1)
        m = categorical_projection(b["rewards"], b["gamma_n"], p_next, atoms)  # (2)
        clipped = categorical_clipped_mass(b["rewards"], b["gamma_n"], p_next, atoms).mean()
    logits = z(b["obs"], b["actions"])
    z_loss, _ = categorical_loss(logits, m, b.get("weights"))  # (3), (6)
    kl = categorical_kl(logits, m)  # (6) the priorities
    opt["z"].zero_grad(set_to_none=True)
    z_loss.backward()
    opt["z"].step()

    pi_loss = dpg_actor_loss(categorical_mean(z_of_actor(z, b["obs"], mu(b["obs"])), atoms))  # (4)
    params = list(mu.parameters())
    for p, g in zip(params, torch.autograd.grad(pi_loss, params)):  # θ only: no critic weight gradients
        p.grad = g
    opt["mu"].step()

    polyak_update(nets["mu_targ"], mu, cfg.tau)  # (7)
    polyak_update(nets["z_targ"], z, cfg.tau)
    q = categorical_mean(logits.detach(), atoms).mean()
    edge = (m[:, 0] + m[:, -1]).mean()  # the target's mass on z_0 and z_{M-1}
    return {"loss/critic": z_loss.detach(), "loss/actor": pi_loss.detach(), "q": q, "edge_mass": edge,
            "clipped_mass": clipped}, kl


def learn(nets: nn.ModuleDict, opt: dict[str, torch.optim.Optimizer], replay: ReplayBuffer, atoms: torch.Tensor,
          cfg: Config, beta: float) -> dict[str, torch.Tensor]:
    """Sample a minibatch (prioritised with exponent β, or uniformly), update, and write its priorities back."""
    b = replay.sample(cfg.batch_size, beta) if cfg.prioritized else replay.sample(cfg.batch_size)
    metrics, kl = update(nets, opt, b, atoms, cfg)
    if cfg.prioritized:
        replay.update_priorities(b["index"], kl)  # (6) p_i ← D_KL(Φ𝒯Z_w' ‖ Z_w(s_i, a_i))
    return metrics


def derive_support(R: torch.Tensor, gamma: float, n_step: int, v_min: float | None = None,
                   v_max: float | None = None) -> tuple[float, float]:
    """[v_min, v_max] from the n-step rewards R [n] = Σ_{k<N} γ^k r_k of the random warm-up (module docstring):
    v_min = MARGIN min(0, min_i R_i / (1 - γ^N)), v_max = MARGIN max(0, max_i R_i / (1 - γ^N)), R_i / (1 - γ^N)
    being r̄_i / (1 - γ) at the window's discounted mean reward r̄_i; [-1, 1] if that is a point (only zeros).
    An end given (by the user or a preset) is kept."""
    v = R.detach().double().flatten() / (1.0 - gamma ** n_step)
    lo = MARGIN * min(0.0, float(v.min())) if v.numel() else 0.0
    hi = MARGIN * max(0.0, float(v.max())) if v.numel() else 0.0
    if lo == hi:
        lo, hi = -1.0, 1.0
    lo, hi = (lo if v_min is None else v_min), (hi if v_max is None else v_max)
    if not lo < hi:
        raise ConfigError(f"the support [v_min, v_max] = [{lo:g}, {hi:g}] is empty (one end set, the other derived "
                          "from the warm-up's rewards): set both v_min and v_max")
    return lo, hi


def z_of_actor(z: nn.Module, obs: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Z_w(s, a) logits for the actor step, whose gradient is taken for θ only: an encoder's features carry no
    graph."""
    if isinstance(z, Encoded):
        with torch.no_grad():
            h = z.encoder(obs)
        return z.head(h, a)
    return z(obs, a)


def learner_replay(cfg: Config, spec: EnvSpec) -> ReplayBuffer:
    """The learner's replay: complete n-step transitions from the actors, one per row, frames in their own
    dtype."""
    buffer_cls = PrioritizedReplayBuffer if cfg.prioritized else ReplayBuffer
    kw = {"alpha": cfg.alpha} if cfg.prioritized else {}
    return buffer_cls(cfg.buffer_size, 1, spec.obs_shape, (spec.act_dim,), device=cfg.device,
                      extra={"gamma_n": ((), torch.float32)}, obs_dtype=obs_torch_dtype(spec), **kw)


def make_pool(backend: str, spec: ActorSpec, num_actors: int, queue_size: int = 2,
              log: Callable[[str], None] | None = None) -> Any:
    """The K actors: processes on this machine ('process') or Ray actors ('ray'), with one interface (publish,
    get, close, restarts)."""
    if backend == "ray":
        from pgrad.parallel.ray_actors import RayActorPool

        return RayActorPool(spec, num_actors, queue_size)
    return ActorPool(spec, num_actors, queue_size, log=log)


class LearnerState:
    """What a resumed run needs beyond the tracked objects: fractional updates owed, updates done, and the support
    [v_min, v_max] once derived (None before)."""

    def __init__(self) -> None:
        self.owed, self.updates = 0.0, 0
        self.support: tuple[float, float] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"owed": self.owed, "updates": self.updates, "support": self.support}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.owed, self.updates = float(d["owed"]), int(d["updates"])
        support = d.get("support")  # absent in checkpoints of runs whose config fixed the support
        self.support = None if support is None else (float(support[0]), float(support[1]))


def support_atoms(cfg: Config, state: LearnerState, replay: ReplayBuffer, run: Any) -> torch.Tensor:
    """The atoms z_i on [v_min, v_max]: the config's where it sets both ends, else the range derived from the warm-up
    transitions in the replay at the first update (kept in ``state`` for resume, announced in run.log)."""
    if cfg.v_min is not None and cfg.v_max is not None:
        state.support = (cfg.v_min, cfg.v_max)
    elif state.support is None:
        filled = replay.rows if replay.full else replay.pos
        R = replay.fields["rewards"][:filled]
        state.support = derive_support(R, cfg.gamma, cfg.n_step, cfg.v_min, cfg.v_max)
        run.log_event(f"step {run.step}: atoms on [v_min, v_max] = [{state.support[0]:.4g}, {state.support[1]:.4g}], "
                      f"derived from the rewards of {R.numel()} warm-up transitions (set v_min and v_max to fix them)")
    return torch.linspace(*state.support, cfg.n_atoms, device=cfg.device)  # (1)


def warn_clipped(cfg: Config, state: LearnerState, replay: ReplayBuffer, run: Any, clipped: float) -> None:
    """The one warning of a support too narrow for the returns: what share is clipped, and what to set."""
    filled = replay.rows if replay.full else replay.pos
    lo, hi = derive_support(replay.fields["rewards"][:filled], cfg.gamma, cfg.n_step)
    msg = (f"d4pg: {clipped:.0%} of the target distribution's mass fell outside the atoms' support "
           f"[{state.support[0]:.4g}, {state.support[1]:.4g}] at step {run.step} and was clipped onto its edge atoms: "
           f"Q saturates there and the actor's gradient vanishes. Set v_min and v_max to cover the discounted "
           f"returns, about r/(1-γ) (the rewards in the replay now suggest --v-min {lo:.4g} --v-max {hi:.4g})")
    warnings.warn(msg, stacklevel=2)
    run.log_event(msg)


def actor_spec(cfg: Config, run: Any, policy: nn.Module) -> ActorSpec:
    K = max(cfg.actors, 1)
    top = cfg.noise_sigma if cfg.noise_sigma_max is None else cfg.noise_sigma_max
    sigmas = [float(s) for s in np.linspace(cfg.noise_sigma, top, K)]
    return ActorSpec(factory=run.factory, env_spec=run.spec, policy=policy, num_envs=cfg.num_envs,
                     n_step=cfg.n_step, gamma=cfg.gamma, chunk=cfg.chunk, noise=cfg.noise, sigmas=sigmas,
                     seed=cfg.seed, step0=run.step)


def train(cfg: Config, run: Any) -> nn.ModuleDict:
    if cfg.actors > 0 and (cfg.norm_obs or cfg.norm_reward):
        raise ConfigError("norm_obs and norm_reward need actors=0 (actor processes keep no shared statistics)")
    spec = run.spec
    envs = run.make_envs() if cfg.actors == 0 else None
    nets, opt = build(cfg, spec)
    replay = learner_replay(cfg, spec)
    state = LearnerState()
    tracked: dict[str, Any] = {"opt_mu": opt["mu"], "opt_z": opt["z"], "replay": replay, "state": state}
    local = None
    if cfg.actors == 0:
        local = Actor(actor_spec(cfg, run, nets["mu"]), 0, envs=envs, policy=nets["mu"])
        tracked["actor"] = local
    run.track(nets=nets, **tracked)
    pool = None
    if cfg.actors > 0:
        pool = make_pool(cfg.backend, actor_spec(cfg, run, copy.deepcopy(nets["mu"]).cpu()), cfg.actors,
                         cfg.queue_size, log=run.log_event)
        if state.updates > 0:  # resumed: the actors start from the learned policy
            pool.publish(nets["mu"])
    metrics: dict[str, torch.Tensor] | None = None
    atoms: torch.Tensor | None = None
    warned = False
    try:
        while run.step < cfg.steps:
            if local is not None:
                local.random = run.step < cfg.learning_starts
                chunks = [local.collect(cfg.chunk)]
            else:
                chunks = pool.get(timeout=1.0)
            steps = 0
            for c in chunks:
                n = c["obs"].shape[0]
                if n:
                    disc = torch.from_numpy(c["discount"]).view(n, 1)
                    extend(replay, torch.from_numpy(c["obs"]).unsqueeze(1), torch.from_numpy(c["actions"]).unsqueeze(1),
                           torch.from_numpy(c["rewards"]).view(n, 1), (disc == 0), torch.zeros(n, 1, dtype=torch.bool),
                           torch.from_numpy(c["next_obs"]).unsqueeze(1), gamma_n=disc)
                steps += c["steps"]
                if "episodes" in c:
                    run.record_episodes(c["episodes"])
            k = 0
            if run.step + steps >= cfg.learning_starts and len(replay) >= cfg.batch_size:
                state.owed += steps * cfg.replay_ratio
                k = int(state.owed)
                state.owed -= k
                beta = cfg.beta + (1.0 - cfg.beta) * min(1.0, run.step / cfg.steps)  # (6) β annealed to 1
                if atoms is None:
                    atoms = support_atoms(cfg, state, replay, run)
                for _ in range(k):
                    metrics = learn(nets, opt, replay, atoms, cfg, beta)
                    state.updates += 1
                    if pool is not None and state.updates % cfg.publish_every == 0:
                        pool.publish(nets["mu"])  # (5)
            log_now = metrics is not None and run.step + steps >= run.next_log
            if log_now and pool is not None:
                metrics["actor_restarts"] = torch.tensor(float(pool.restarts))
            if log_now and not warned and float(metrics["clipped_mass"]) > CLIP_WARN:
                warn_clipped(cfg, state, replay, run, float(metrics["clipped_mass"]))
                warned = True
            if not run.advance(steps, metrics if log_now else None, updates=k):
                break
    finally:
        if pool is not None:
            pool.close()
    return nets
