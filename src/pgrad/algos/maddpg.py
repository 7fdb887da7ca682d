"""MADDPG: multi-agent DDPG, centralised critics and decentralised actors (post: MADDPG; Lowe et al., 2017).

N agents in a PettingZoo parallel env (a Markov game). Agent i acts on its own observation o_i with
μ_θi(o_i); its critic Q_i(o⃗, a_1, ..., a_N) sees every observation and action during training, and is learned
separately for each i, so rewards may be cooperative, competitive or mixed.

Equations (post notation) and the functions that compute them:
  (1) y = r_i + γ Q'_i(o⃗', a'_1, ..., a'_N) |_{a'_j = μ'_j(o'_j)}  (0 future where agent i terminated)
                                                                      core.losses.clipped_double_q_target (K = 1)
  (2) L(θ_i) = E_{o⃗, a, r, o⃗' ~ D}[(Q_i(o⃗, a_1, ..., a_N) - y)^2]    core.losses.q_regression_loss
  (3) ∇_θi J = E_{o⃗, a ~ D}[∇_θi μ_i(o_i) ∇_ai Q_i(o⃗, a_1, ..., a_N)|_{a_i = μ_i(o_i)}]: only agent i's own
      action is replaced; the others' come from the replay buffer        core.losses.dpg_actor_loss
  (4) θ'_i ← τ θ_i + (1 - τ) θ'_i for actors, critics and inferred policies   core.targets.polyak_update
  (5) inferred policies (infer_policies=True): agent i fits μ̂_i^j to agent j's observed actions,
      L(φ_i^j) = -E_{o_j, a_j}[log μ̂_i^j(a_j|o_j) + λ H(μ̂_i^j)], and uses μ̂'_i^j(o'_j) for a'_j in (1)
                                                                      core.distributions.Categorical / DiagGaussian
  (6) policy ensembles (ensemble=K): K sub-policies μ_i^(k) per agent, one drawn per episode; sub-policy k of
      agent i learns from its own buffer D_i^(k) with its own critic, so each maximises the ensemble objective
      J_e(μ_i) = E_k E_{D_i^(k)}[R_i] against the mixture of the others' sub-policies.

Discrete actions (MPE's default) use the Gumbel-softmax relaxation, as in the paper: agents act with samples of
π_i = softmax(logits_i) (the Gumbel-max trick), the buffer stores one-hot actions, and in (3) a_i is the
straight-through Gumbel-softmax sample (one-hot forward, softmax((logits + g)/T) gradient). gumbel_hard=False
uses the soft sample softmax((logits + g)/T) throughout, as the MADDPG authors' code does: the buffer stores it,
(1) targets with it and (3) differentiates it, so the critics are read only at the kind of action they learned on
(the env steps with its argmax, the same Gumbel-max sample of π_i). Box actions use a deterministic tanh actor with Gaussian exploration noise, as DDPG.
With centralized=False every critic sees only its own observation and action: independent DDPG learners.

Beyond the post:
- the agent axis: observations [B, N, O], actions [B, N, A], zero-padded to the largest agent (envs.MultiAgentSpec
  masks); padded inputs are constant zeros, so every network equals its unpadded version, and the N·K actors,
  critics and N(N-1) inferred policies each run as one stacked network (core.nets.StackedMLP, one batched
  matmul per layer); padded discrete actions have probability 0;
- each learner (agent i, sub-policy k) draws its own minibatch (as the paper's code); gradients are clipped per
  learner to a global norm (the paper's code clips at 0.5); logits carry a small L2 penalty (its 1e-3);
- the buffers D_i^(k) share one joint storage: D_i^(k) is the set of transitions in which agent i played
  sub-policy k, sampled uniformly (torch.multinomial), so no transition is copied K·N times;
- uniform random actions for the first ``learning_starts`` steps; then an update round every ``update_every``
  env steps (the paper's code: 100 steps, batch 1024, lr 1e-2, γ 0.95, τ 0.01, 64x64 ReLU networks; the MPE
  presets update every 50 steps, which reached better returns within the CI budgets on speaker-listener);
- inferred policies are fitted on the latest ``infer_window`` transitions (the paper: "the latest samples");
- time limits: the target bootstraps through truncation (MPE's 25-step limit) and never through termination;
- evaluation reports each agent's return and the total; the headline return is the mean over agents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pgrad.config import BaseConfig
from pgrad.core import optim
from pgrad.core.losses import clipped_double_q_target, dpg_actor_loss, q_regression_loss
from pgrad.core.nets import Activation, StackedMLP
from pgrad.core.targets import frozen_copy, polyak_update
from pgrad.data.replay import ReplayBuffer
from pgrad.envs import (
    MultiAgentSpec,
    MultiAgentVecEnv,
    ObsNormalizer,
    describe_parallel,
    parallel_env_factory,
    run_parallel_episodes,
)
from pgrad.errors import ConfigError
from pgrad.seeding import episode_seeds

SPACES = ("discrete", "box")

# A multi-agent algorithm: pgrad.api and pgrad.run use the env hooks below instead of the Gymnasium ones.
MULTI_AGENT = True
env_factory = parallel_env_factory
describe = describe_parallel
Spec = MultiAgentSpec

_NEG = -1e9  # logit of a padded (non-existent) discrete action: probability exactly 0


@dataclass
class Config(BaseConfig):
    lr: float = 1e-2
    """Adam learning rate of the actors μ_θi (the paper's 1e-2)."""
    critic_lr: float | None = None
    """Adam learning rate of the critics Q_i (None: the same as lr)."""
    gamma: float = 0.95
    """Discount γ."""
    tau: float = 0.01
    """Soft target update rate τ."""
    buffer_size: int = 1_000_000
    """Replay capacity in joint transitions, per sub-policy buffer D_i^(k)."""
    batch_size: int = 1024
    """Minibatch size of each learner's update."""
    learning_starts: int = 25_600
    """Env steps of uniform random actions before the first update (the paper's code: 1024 · 25)."""
    update_every: int = 100
    """Env steps (summed over envs) between update rounds."""
    gradient_steps: int = 1
    """Gradient steps of every learner per update round."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the actors, critics and inferred policies."""
    activation: Activation = "relu"
    """Hidden activation."""
    max_grad_norm: float | None = 0.5
    """Clip each learner's gradient to this global norm (None: no clipping)."""
    centralized: bool = True
    """Centralised critics Q_i(o⃗, a_1..a_N) (MADDPG); False: Q_i(o_i, a_i), independent DDPG agents."""
    gumbel_temperature: float = 1.0
    """Temperature T of the Gumbel-softmax relaxation (discrete actions)."""
    gumbel_hard: bool = True
    """Straight-through Gumbel-softmax (one-hot forward, relaxed gradient); False: the soft sample, stored and
    targeted with as well."""
    logit_reg: float = 1e-3
    """L2 penalty on the actors' logits (discrete) or pre-tanh outputs (box), as in the paper's code."""
    noise_sigma: float = 0.1
    """Gaussian exploration noise σ of Box actions, in units of half the action range."""
    infer_policies: bool = False
    """Each agent i learns approximations μ̂_i^j of the others' policies and uses them in its critic target."""
    infer_ent: float = 1e-3
    """Entropy regulariser λ of the inferred policies' log-likelihood loss."""
    infer_lr: float | None = None
    """Adam learning rate of the inferred policies (None: the same as lr)."""
    infer_window: int = 2_500
    """The inferred policies are fitted on the latest this many joint transitions."""
    ensemble: int = 1
    """Sub-policies K per agent (policy ensembles); one is drawn per agent and episode."""

    RANGES = {
        "lr": "(0, inf)", "critic_lr": "(0, inf)", "gamma": "(0, 1]", "tau": "(0, 1]", "buffer_size": "[1, inf)",
        "batch_size": "[1, inf)", "learning_starts": "[0, inf)", "update_every": "[1, inf)",
        "gradient_steps": "[1, inf)", "hidden": "[1, 100000]", "max_grad_norm": "(0, inf)",
        "gumbel_temperature": "(0, inf)", "logit_reg": "[0, inf)", "noise_sigma": "[0, inf)",
        "infer_ent": "[0, inf)", "infer_lr": "(0, inf)", "infer_window": "[1, inf)", "ensemble": "[1, 1000]",
    }

    def validate(self) -> None:
        super().validate()
        if self.infer_policies and not self.centralized:
            raise ConfigError("infer_policies=true needs centralized=true: independent critics see no other agent")
        if self.norm_reward:
            raise ConfigError("norm_reward is not supported by maddpg (one reward per agent); use norm_reward=false")


# ----------------------------------------------------------------------------- networks
class Layout(nn.Module):
    """Where learners and agents sit on the stacked axes (saved with the networks).

    Learner l = i·K + k is sub-policy k of agent i: actors and critics have L = N·K members. Inferred policies
    have P = N(N-1) members, pair p = (i, j ≠ i): agent i's model of agent j.
    """

    def __init__(self, spec: MultiAgentSpec, k: int):
        super().__init__()
        n = spec.n_agents
        self.n, self.k, self.l = n, k, n * k
        agent_of = torch.arange(n).repeat_interleave(k)
        pairs = [(i, j) for i in range(n) for j in range(n) if j != i]
        self.register_buffer("agent_of", agent_of)  # [L]
        self.register_buffer("sub_of", torch.arange(k).repeat(n))  # [L]
        self.register_buffer("own", F.one_hot(agent_of, n).bool())  # [L, N]: learner l's own agent
        self.register_buffer("act_mask", torch.as_tensor(spec.act_mask()))  # [N, A]
        low, high = spec.padded_bounds()
        self.register_buffer("low", torch.as_tensor(low))  # [N, A]
        self.register_buffer("high", torch.as_tensor(high))
        self.register_buffer("pair_i", torch.tensor([p[0] for p in pairs], dtype=torch.long))  # [P]
        self.register_buffer("pair_j", torch.tensor([p[1] for p in pairs], dtype=torch.long))
        self.discrete = spec.action_kind == "discrete"


class InferredPolicies(nn.Module):
    """μ̂_i^j(a_j|o_j) for the P pairs (i, j ≠ i): Categorical(logits) or N(tanh(f(o_j)), σ²) per pair (Box,
    with a learned state-independent log σ per pair)."""

    def __init__(self, p: int, obs_dim: int, act_dim: int, hidden: tuple[int, ...], activation: str, box: bool):
        super().__init__()
        self.net = StackedMLP(p, obs_dim, hidden, act_dim, activation, out_gain=0.01)
        if box:
            self.log_std = nn.Parameter(torch.full((p, 1, act_dim), -0.5))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


def build(cfg: Config, spec: MultiAgentSpec) -> tuple[nn.ModuleDict, dict[str, torch.optim.Optimizer]]:
    n, o, a, k = spec.n_agents, spec.obs_dim, spec.n_actions, cfg.ensemble
    lay = Layout(spec, k)
    critic_in = n * (o + a) if cfg.centralized else o + a
    mu = StackedMLP(n * k, o, cfg.hidden, a, cfg.activation, out_gain=0.01)
    q = StackedMLP(n * k, critic_in, cfg.hidden, 1, cfg.activation)
    nets = nn.ModuleDict({"mu": mu, "q": q, "mu_targ": frozen_copy(mu), "q_targ": frozen_copy(q), "layout": lay})
    if cfg.infer_policies and n > 1:
        pi_hat = InferredPolicies(n * (n - 1), o, a, cfg.hidden, cfg.activation, spec.action_kind == "box")
        nets["pi_hat"], nets["pi_hat_targ"] = pi_hat, frozen_copy(pi_hat)
    nets = nets.to(cfg.device)
    fused = torch.device(cfg.device).type == "cpu"
    opt = {"mu": optim.Adam(nets["mu"].parameters(), lr=cfg.lr, fused=fused),
           "q": optim.Adam(nets["q"].parameters(), lr=cfg.critic_lr or cfg.lr, fused=fused)}
    if "pi_hat" in nets:
        opt["pi_hat"] = optim.Adam(nets["pi_hat"].parameters(), lr=cfg.infer_lr or cfg.lr, fused=fused)
    return nets, opt


# ----------------------------------------------------------------------------- acting
def _per_learner(x: torch.Tensor, lay: Layout) -> torch.Tensor:
    """[B, N, D] rows of every agent -> [L, B, D]: learner (i, k) reads agent i's rows."""
    return x.transpose(0, 1).repeat_interleave(lay.k, 0) if lay.k > 1 else x.transpose(0, 1)


def _head(out: torch.Tensor, mask: torch.Tensor, discrete: bool) -> torch.Tensor:
    """Raw actor outputs -> masked logits (padded actions at -1e9) or tanh actions (padded entries 0)."""
    if discrete:
        return out.masked_fill(~mask, _NEG)
    return torch.tanh(out) * mask


def policy_outputs(nets: nn.ModuleDict, obs: torch.Tensor, k: torch.Tensor | None = None) -> torch.Tensor:
    """Masked logits (Discrete) or μ(o) in [-1, 1] (Box), [B, N, A], of sub-policy k [B, N] (default 0)."""
    lay = nets["layout"]
    out = nets["mu"](_per_learner(obs, lay))  # [L, B, A]
    out = out.view(lay.n, lay.k, *out.shape[1:])
    if lay.k == 1 or k is None:
        out = out[:, 0]
    else:
        idx = k.T.reshape(lay.n, 1, -1, 1).expand(-1, 1, -1, out.shape[-1])
        out = out.gather(1, idx).squeeze(1)
    return _head(out.transpose(0, 1), lay.act_mask, lay.discrete)


def act(nets: nn.ModuleDict, obs: torch.Tensor, deterministic: bool, k: torch.Tensor | None = None) -> np.ndarray:
    """Env actions [B, N] (Discrete: the mode, or a sample of π_i) or [B, N, A] (Box: μ_i(o_i), rescaled)."""
    lay = nets["layout"]
    out = policy_outputs(nets, obs, k)
    if lay.discrete:
        a = out.argmax(-1) if deterministic else _gumbel_max(out)
        return a.cpu().numpy()
    return (lay.low + (out + 1.0) * 0.5 * (lay.high - lay.low)).cpu().numpy()


def _gumbel_max(logits: torch.Tensor) -> torch.Tensor:
    """argmax(logits + G), G ~ Gumbel(0, 1): a sample of softmax(logits)."""
    return (logits - torch.empty_like(logits).exponential_().log()).argmax(-1)


def evaluate_episodes(nets: nn.ModuleDict, factory: Any, spec: MultiAgentSpec, episodes: int,
                      seed: int | Sequence[int], obs_norm: ObsNormalizer | None = None,
                      device: str | torch.device = "cpu") -> tuple[list[float], dict[str, float]]:
    """Deterministic episodes: (return per agent of each episode, {return/<agent>, total_return}).

    Episode i resets with seed + i, or seed[i] when ``seed`` is one per episode (a run's evaluations). With an
    ensemble each agent plays one sub-policy per episode, drawn with a generator seeded by the first episode's seed
    (the training RNG is not touched)."""
    lay = nets["layout"]
    g = torch.Generator().manual_seed(episode_seeds(seed, episodes)[0] if episodes else 0)
    ks = torch.randint(lay.k, (episodes, lay.n), generator=g).to(device)
    was = nets.training
    nets.eval()
    rets = run_parallel_episodes(lambda o, idx: act(nets, o, True, ks[torch.as_tensor(idx, device=device)]),
                                 factory, spec, episodes, seed, obs_norm=obs_norm, device=device)
    nets.train(was)
    extra = {f"return/{ag}": float(rets[:, i].mean()) for i, ag in enumerate(spec.agents)}
    extra["total_return"] = float(rets.sum(1).mean())
    return rets.mean(1).tolist(), extra


def make_envs(factory: Any, num_envs: int, seed: int, spec: MultiAgentSpec, cfg: Config) -> MultiAgentVecEnv:
    """The training vector env with an agent axis (Run.make_envs calls this for a multi-agent algorithm)."""
    return MultiAgentVecEnv(factory, num_envs, seed, spec, norm_obs=cfg.norm_obs, clip_obs=cfg.clip_obs,
                            device=cfg.device)


# ----------------------------------------------------------------------------- the update
def _own(x: torch.Tensor, lay: Layout) -> torch.Tensor:
    """[L, B, N, ...] -> [L, B, ...]: learner l's own agent's entry."""
    return x[torch.arange(lay.l, device=x.device), :, lay.agent_of]


def _critic_in(obs: torch.Tensor, actions: torch.Tensor, lay: Layout, centralized: bool) -> torch.Tensor:
    """Q_i's input: [o⃗, a_1..a_N] (centralised) or [o_i, a_i] (independent), from [L, B, N, ·]."""
    if centralized:
        return torch.cat([obs.flatten(-2), actions.flatten(-2)], -1)
    return torch.cat([_own(obs, lay), _own(actions, lay)], -1)


def _one_hot(idx: torch.Tensor, a: int) -> torch.Tensor:
    return F.one_hot(idx, a).float()


def _discrete_sample(logits: torch.Tensor, cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """(action vector, env action) of a sample of softmax(logits): the one-hot Gumbel-max sample (gumbel_hard),
    or the soft Gumbel-softmax sample softmax((logits + G) / T) and its argmax, the same Gumbel-max sample. The
    vector is what the buffer stores and the critics see, in (1) and (2) as in (3)."""
    if cfg.gumbel_hard:
        idx = _gumbel_max(logits)
        return _one_hot(idx, logits.shape[-1]), idx
    y = F.gumbel_softmax(logits, tau=cfg.gumbel_temperature, hard=False)
    return y, y.argmax(-1)


@torch.no_grad()
def _target_actions(nets: nn.ModuleDict, b: dict[str, torch.Tensor], cfg: Config) -> torch.Tensor:
    """a'_1..a'_N [L, B, N, A] of (1): μ'_j of the sub-policy agent j played (own: learner l's), or, with
    inferred policies, agent i's model μ̂'_i^j for every j ≠ i. Discrete: one-hot samples of π'_j."""
    lay = nets["layout"]
    nxt = b["next_obs"]  # [L, B, N, O]
    L, B, N, _ = nxt.shape
    A = lay.act_mask.shape[1]
    # every sub-policy of every agent j on agent j's next observations of every learner's batch
    x = nxt.permute(2, 0, 1, 3).reshape(N, L * B, -1)  # [N, L·B, O]
    out = nets["mu_targ"](x.repeat_interleave(lay.k, 0) if lay.k > 1 else x)  # [N·K, L·B, A]
    out = out.view(N, lay.k, L, B, A)
    k = b["k"].clone()  # [L, B, N] sub-policies played
    k[lay.own.unsqueeze(1).expand(-1, B, -1)] = lay.sub_of.repeat_interleave(B)  # own: learner's sub-policy
    idx = k.permute(2, 0, 1).reshape(N, 1, L, B, 1).expand(-1, 1, -1, -1, A)
    out = out.gather(1, idx).squeeze(1).permute(1, 2, 0, 3)  # [L, B, N, A]
    a_next = _head(out, lay.act_mask, lay.discrete)
    if lay.discrete:
        a_next = _discrete_sample(a_next, cfg)[0]
    if "pi_hat" in nets and cfg.infer_policies:
        # pair p = (i, j): agent i's model of j, on agent j's next observations of agent i's learners' batches
        xv = nxt.view(N, lay.k, B, N, -1)[lay.pair_i, :, :, lay.pair_j]  # [P, K, B, O]
        h = nets["pi_hat_targ"](xv.reshape(xv.shape[0], lay.k * B, -1)).view(-1, lay.k, B, A)
        h = _head(h, lay.act_mask[lay.pair_j].unsqueeze(1).unsqueeze(1), lay.discrete)
        if lay.discrete:
            h = _discrete_sample(h, cfg)[0]
        a_next = a_next.view(N, lay.k, B, N, A).clone()
        a_next[lay.pair_i, :, :, lay.pair_j] = h
        a_next = a_next.view(L, B, N, A)
    return a_next


def clip_grad_norm_stacked(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Clip the gradients of each member of stacked parameters (leading axis = member) to a global norm per
    member, as torch.nn.utils.clip_grad_norm_ would for each member's own parameters; returns the norms [M]."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.stack([g.reshape(g.shape[0], -1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))
    return norms


def _step(opt: torch.optim.Optimizer, params: list[torch.Tensor], loss: torch.Tensor,
          max_grad_norm: float | None) -> torch.Tensor:
    """Gradients of ``loss`` with respect to ``params`` only (no other network's weight gradients), per-member
    clipping, one optimiser step; returns the members' gradient norms (before clipping)."""
    for p, g in zip(params, torch.autograd.grad(loss, params)):
        p.grad = g
    if max_grad_norm is not None:
        norms = clip_grad_norm_stacked(params, max_grad_norm)
    else:
        norms = torch.stack([p.grad.reshape(p.shape[0], -1).pow(2).sum(1) for p in params]).sum(0).sqrt()
    opt.step()
    return norms


def update(nets: nn.ModuleDict, opt: dict[str, torch.optim.Optimizer], b: dict[str, torch.Tensor],
           cfg: Config, recent: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """One gradient step of every learner: inferred policies (5), critics (1)-(2), actors (3), targets (4).

    ``b``: each learner's minibatch, [L, B, N, ...] (obs, actions one-hot or in [-1, 1], rewards, agent_term,
    acted, k); ``recent``: [B', N, ...] latest transitions for the inferred policies.
    """
    lay = nets["layout"]
    mu, q = nets["mu"], nets["q"]
    metrics: dict[str, torch.Tensor] = {}
    if "pi_hat" in nets and recent is not None:  # (5)
        xo = recent["obs"][:, lay.pair_j].transpose(0, 1)  # [P, B', O]: agent j's observations
        aj = recent["actions"][:, lay.pair_j].transpose(0, 1)  # [P, B', A]
        w = recent["acted"][:, lay.pair_j].T.float()  # [P, B']
        out = nets["pi_hat"](xo)
        mask = lay.act_mask[lay.pair_j].unsqueeze(1)
        if lay.discrete:
            logp_all = torch.log_softmax(out.masked_fill(~mask, _NEG), -1)
            logp = (aj * logp_all).sum(-1)
            ent = -(logp_all.exp() * logp_all).sum(-1)
        else:
            log_std = nets["pi_hat"].log_std.expand_as(out)
            z = (aj - torch.tanh(out)) / log_std.exp()
            logp = ((-0.5 * z.pow(2) - log_std - 0.5 * np.log(2 * np.pi)) * mask).sum(-1)
            ent = ((0.5 + 0.5 * np.log(2 * np.pi) + log_std) * mask).sum(-1)
        h_loss = -(w * (logp + cfg.infer_ent * ent)).mean(-1).sum()
        _step(opt["pi_hat"], list(nets["pi_hat"].parameters()), h_loss, None)
        metrics["loss/infer"] = h_loss.detach() / w.shape[0]
        metrics["infer_logp"] = logp.detach().mean()

    # (1), (2): critics
    r, term, acted = _own(b["rewards"], lay), _own(b["agent_term"], lay), _own(b["acted"], lay).float()
    a_next = _target_actions(nets, b, cfg)
    with torch.no_grad():
        q_next = nets["q_targ"](_critic_in(b["next_obs"], a_next, lay, cfg.centralized)).squeeze(-1)  # [L, B]
        # (1), one critic per learner: flattened, since a [K, B] input would mean K twin critics to take the min of
        y = clipped_double_q_target(r.flatten(), cfg.gamma * (~term).float().flatten(), q_next.flatten()).view_as(r)
    q_sa = q(_critic_in(b["obs"], b["actions"], lay, cfg.centralized)).squeeze(-1)
    q_loss = q_regression_loss(q_sa, y, weights=acted)  # (2): Σ_i E[w (Q_i - y_i)^2]
    q_norm = _step(opt["q"], list(q.parameters()), q_loss, cfg.max_grad_norm)

    # (3): actors, substituting only agent i's own action
    o_own = _own(b["obs"], lay)  # [L, B, O]
    raw = mu(o_own)
    own_mask = lay.act_mask[lay.agent_of].unsqueeze(1)  # [L, 1, A]
    if lay.discrete:
        logits = raw.masked_fill(~own_mask, _NEG)
        a_i = F.gumbel_softmax(logits, tau=cfg.gumbel_temperature, hard=cfg.gumbel_hard)
    else:
        a_i = torch.tanh(raw) * own_mask
    if cfg.centralized:
        joint = torch.where(lay.own[:, None, :, None], a_i.unsqueeze(2), b["actions"])
        x = torch.cat([b["obs"].flatten(-2), joint.flatten(-2)], -1)
    else:
        x = torch.cat([o_own, a_i], -1)
    q_mu = q(x).squeeze(-1)  # [L, B]
    pi_loss = lay.l * dpg_actor_loss(acted * q_mu)  # Σ_l -E[Q_l(o⃗, .., μ_l(o_i), ..)]
    reg = (raw.pow(2) * own_mask).sum(-1).mean(-1) / own_mask.sum(-1).squeeze(-1)  # [L]
    loss = pi_loss + cfg.logit_reg * reg.sum() if cfg.logit_reg > 0 else pi_loss
    mu_norm = _step(opt["mu"], list(mu.parameters()), loss, cfg.max_grad_norm)

    # (4): targets
    polyak_update(nets["mu_targ"], mu, cfg.tau)
    polyak_update(nets["q_targ"], q, cfg.tau)
    if "pi_hat" in nets:
        polyak_update(nets["pi_hat_targ"], nets["pi_hat"], cfg.tau)
    metrics.update({"loss/critic": q_loss.detach() / lay.l, "loss/actor": pi_loss.detach() / lay.l,
                    "q": q_sa.detach().mean(), "grad_norm/critic": q_norm.mean().detach(),
                    "grad_norm/actor": mu_norm.mean().detach()})
    return metrics


# ----------------------------------------------------------------------------- replay per sub-policy
class SubPolicies:
    """The sub-policy k each agent plays in each env's current episode (drawn uniformly per episode)."""

    def __init__(self, k: int, num_envs: int, n_agents: int, device: str | torch.device):
        self.k = k
        self.current = torch.randint(k, (num_envs, n_agents), device=device) if k > 1 else \
            torch.zeros(num_envs, n_agents, dtype=torch.long, device=device)

    def redraw(self, done: torch.Tensor) -> None:
        if self.k > 1 and bool(done.any()):
            new = torch.randint(self.k, self.current.shape, device=self.current.device)
            self.current = torch.where(done.unsqueeze(1), new, self.current)

    def state_dict(self) -> dict[str, Any]:
        return {"current": self.current.clone()}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.current = d["current"].clone().to(self.current.device)


def sample_learners(buf: ReplayBuffer, lay: Layout, batch_size: int) -> dict[str, torch.Tensor]:
    """One minibatch per learner, [L, B, ...]. Without an ensemble: uniform over the buffer. With one: learner
    (i, k) samples uniformly from D_i^(k), the transitions in which agent i played sub-policy k (from all of
    them while D_i^(k) is still empty)."""
    L = lay.l
    if lay.k == 1:
        rows, envs = buf.sample_index(L * batch_size)
    else:
        filled = buf.rows if buf.full else buf.pos
        kf = buf.fields["k"][:filled]  # [C', E, N]
        w = (kf[..., lay.agent_of] == lay.sub_of).permute(2, 0, 1).reshape(L, -1).float()  # [L, C'·E]
        empty = w.sum(1) == 0
        if bool(empty.any()):
            w[empty] = 1.0
        flat_idx = torch.multinomial(w, batch_size, replacement=True).reshape(-1)
        rows, envs = flat_idx // buf.N, flat_idx % buf.N
    out = buf.gather(rows, envs)
    return {key: out[key].view(L, batch_size, *out[key].shape[1:])
            for key in ("obs", "actions", "rewards", "next_obs", "agent_term", "acted", "k")}


def sample_recent(buf: ReplayBuffer, window: int, batch_size: int) -> dict[str, torch.Tensor]:
    """Uniform minibatch among the latest ``window`` joint transitions (for the inferred policies)."""
    filled = buf.rows if buf.full else buf.pos
    n_rows = max(1, min(filled, window // buf.N))
    k = torch.randint(0, n_rows * buf.N, (batch_size,), device=buf.device)
    rows = (buf.pos - 1 - k // buf.N) % buf.rows
    f = buf.fields
    envs = k % buf.N
    return {"obs": f["obs"][rows, envs], "actions": f["actions"][rows, envs], "acted": f["acted"][rows, envs]}


# ----------------------------------------------------------------------------- the loop
def train(cfg: Config, run: Any) -> nn.ModuleDict:
    envs = run.make_envs()
    spec, E = run.spec, cfg.num_envs
    N, A = spec.n_agents, spec.n_actions
    nets, opt = build(cfg, spec)
    lay = nets["layout"]
    replay = ReplayBuffer(cfg.buffer_size * cfg.ensemble, E, (N, spec.obs_dim), (N, A), gamma=cfg.gamma,
                          reward_shape=(N,), device=cfg.device,
                          extra={"agent_term": ((N,), torch.bool), "acted": ((N,), torch.bool),
                                 "k": ((N,), torch.long)})
    subs = SubPolicies(cfg.ensemble, E, N, cfg.device)
    run.track(nets=nets, replay=replay, subs=subs, **{f"opt_{name}": o for name, o in opt.items()})
    step_fn = torch.compile(update) if cfg.compile else update
    act_mask = lay.act_mask.float()
    metrics: dict[str, torch.Tensor] | None = None
    while run.step < cfg.steps:
        obs = envs.obs
        with torch.no_grad():
            if run.step < cfg.learning_starts:
                if lay.discrete:
                    a, env_a = _discrete_sample(
                        torch.zeros(E, N, A, device=cfg.device).masked_fill(~lay.act_mask, _NEG), cfg)
                else:
                    a = (torch.rand(E, N, A, device=cfg.device) * 2 - 1) * act_mask
            else:
                out = policy_outputs(nets, obs, subs.current)
                if lay.discrete:
                    a, env_a = _discrete_sample(out, cfg)  # a sample of π_i
                else:
                    a = ((out + cfg.noise_sigma * torch.randn_like(out)).clamp(-1.0, 1.0)) * act_mask
            if not lay.discrete:
                env_a = lay.low + (a + 1.0) * 0.5 * (lay.high - lay.low)
        st = envs.step(env_a.cpu().numpy())
        ended_for_good = st.done & (st.terminated | ~st.acted).all(1)
        replay.add(obs, a, st.reward, ended_for_good, st.done & ~ended_for_good, st.next_obs,
                   agent_term=st.terminated, acted=st.acted, k=subs.current)
        subs.redraw(st.done)  # (6) one sub-policy per agent and episode
        rounds = (run.step + E) // cfg.update_every - run.step // cfg.update_every
        n_upd = 0
        if run.step + E >= cfg.learning_starts and len(replay) >= cfg.batch_size:
            for _ in range(rounds * cfg.gradient_steps):
                b = sample_learners(replay, lay, cfg.batch_size)  # (6) learner (i, k) samples D_i^(k)
                recent = sample_recent(replay, cfg.infer_window, cfg.batch_size) if "pi_hat" in nets else None
                metrics = step_fn(nets, opt, b, cfg, recent)
                n_upd += 1
        log_now = metrics is not None and run.step + E >= run.next_log
        if not run.advance(E, metrics if log_now else None, updates=n_upd):
            break
    return nets
