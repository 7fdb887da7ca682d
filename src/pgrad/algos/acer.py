"""ACER: actor-critic with experience replay, discrete actions (post: ACER; Wang et al., 2017).

Paper: "Sample Efficient Actor-Critic with Experience Replay".

Equations (post notation) and the functions that compute them:
  (1) Retrace: Q^ret(s_t, a_t) = r_t + γ [c̄_{t+1} (Q^ret_{t+1} - Q_w(s_{t+1}, a_{t+1})) + V_w(s_{t+1})],
      c̄ = min(c_retrace, π/β), V_w(s) = Σ_a π(a|s) Q_w(s, a)                       core.returns.retrace
  (2) the critic's L2 error (Q^ret(s, a) - Q_w(s, a))²                               core.losses.value_loss
  (3) ĝ^acer = min(c, ω_t) (Q^ret_t - V_w(s_t)) ∇ ln π(a_t|s_t)
              + E_{a~π}[max(0, (ω_t(a) - c) / ω_t(a)) (Q_w(s_t, a) - V_w(s_t)) ∇ ln π(a|s_t)]
                                                                                  core.losses.acer_policy_loss
  (4) efficient trust region (§3.3 of the paper): the gradient ĝ of the objective with respect to the policy's
      statistics φ(s), for a categorical policy the probability vector f(.|s), is projected onto kᵀz <= δ,
      k = ∇_f D_KL(f_avg(.|s) || f(.|s)) = -f_avg / f, z* = ĝ - max(0, (kᵀĝ - δ) / ‖k‖²) k, and z is
      backpropagated through f(s) into θ                                   core.losses.trust_region_projection
  (5) the averaged policy network θ_avg ← α θ_avg + (1 - α) θ                     core.targets.polyak_update

Beyond the post:
- segments of T steps of N envs are stored whole with the behaviour probabilities β(.|s_t)
  (data.replay.SequenceReplay); each on-policy update is followed by Poisson(replay_ratio) updates on replayed
  segments, as in the paper;
- ĝ w.r.t. f is computed as (∂/∂ ln f) / f, the probabilities clamped at 1e-6 in that division and in k (as the
  paper's code adds 1e-6): a near-zero probability then neither overflows k nor its share of z, which the
  softmax's Jacobian multiplies by f again; ``tr_active`` logs the share of samples where the constraint binds;
- the entropy bonus is part of the projected gradient (as in the paper's code); on vectors the actor and the
  critic Q_w(s, .) are separate networks;
- time limits: Retrace bootstraps V_w of the true final observation at truncation, never at termination;
- image observations: as in the paper, one network with π and Q heads: both read one encoder (``nets["enc"]``,
  the CNN of ``--net``), and the averaged network of (5) averages that trunk too (``nets["enc_avg"]``, beside
  ``nets["pi_avg"]``); the replay keeps frames in their own dtype (uint8 stays uint8); features of s_{t+1}
  (Retrace's targets only) are computed without a graph, so the trunk's backward covers s_t alone;
- continuous actions (the paper's stochastic dueling network) are not implemented: ACER here is discrete only.
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
from pgrad.core.losses import acer_policy_loss, trust_region_projection, value_loss
from pgrad.core.nets import Activation, DiscreteQNet, clip_grad_norm, features_function, in_width, policy_net
from pgrad.core.returns import retrace
from pgrad.core.targets import frozen_copy, polyak_update
from pgrad.data.collect import collect_rollout
from pgrad.data.replay import SequenceReplay
from pgrad.data.rollout import Rollout
from pgrad.envs import EnvSpec, obs_torch_dtype

SPACES = ("discrete",)


@dataclass
class Config(BaseConfig):
    num_envs: int = 4
    """Parallel environments N (one segment holds T steps of each)."""
    n_steps: int = 20
    """Segment length T: steps per env between on-policy updates, and the length of replayed sequences."""
    gamma: float = 0.99
    """Discount γ."""
    lr: float = 7e-4
    """Adam learning rate of the actor and the critic."""
    c: float = 10.0
    """Truncation c of the importance weight ω = π/β in the policy gradient (3)."""
    c_retrace: float = 1.0
    """Truncation of the traces c̄ = min(c_retrace, π/β) in Retrace (1)."""
    trust_region: bool = True
    """Project the policy gradient onto the linearised KL constraint to the averaged policy (4)."""
    delta: float = 1.0
    """Trust region δ of (4), on the linearised KL change kᵀz with respect to the probabilities f (the paper's 1)."""
    avg_decay: float = 0.99
    """α of the averaged policy network, θ_avg ← α θ_avg + (1 - α) θ (5)."""
    replay_ratio: float = 4.0
    """Mean (Poisson) number of replayed updates after each on-policy update; 0 makes ACER on-policy."""
    replay_start: int = 1000
    """Transitions in the replay before replayed updates start."""
    buffer_size: int = 50_000
    """Replay capacity in transitions (kept as whole segments)."""
    replay_segments: int = 1
    """Segments per replayed update (each of T steps of N envs)."""
    q_coef: float = 0.5
    """Weight of the critic loss (2)."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient (inside the projected gradient)."""
    max_grad_norm: float = 10.0
    """Clip the global gradient norm to this value."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and Q heads (separate MLPs; on images, after the shared encoder)."""
    activation: Activation = "tanh"
    """Hidden activation."""

    RANGES = {
        "n_steps": "[1, inf)", "gamma": "(0, 1]", "lr": "(0, inf)", "c": "(0, inf]", "c_retrace": "[0, inf]",
        "delta": "(0, inf)", "avg_decay": "[0, 1)", "replay_ratio": "[0, inf)", "replay_start": "[0, inf)",
        "buffer_size": "[1, inf)", "replay_segments": "[1, inf)", "q_coef": "[0, inf)", "ent_coef": "[0, inf)",
        "max_grad_norm": "(0, inf)", "hidden": "[1, 100000]",
    }


def build(cfg: Config, spec: EnvSpec) -> tuple[nn.ModuleDict, torch.optim.Optimizer]:
    enc = make_encoder(spec, cfg.net)
    d = in_width(spec, enc)
    trunk = enc or nn.Identity()  # shared by π and Q (no parameters for vectors)
    pi = policy_net(spec, cfg.hidden, cfg.activation, in_dim=d)
    nets = nn.ModuleDict({
        "enc": trunk,
        "pi": pi,
        "q": DiscreteQNet(d, spec.n_actions, cfg.hidden, cfg.activation),
        "enc_avg": frozen_copy(trunk),  # the averaged network θ_avg of (5) is a copy of trunk and π head
        "pi_avg": frozen_copy(pi),
    }).to(cfg.device)
    params = list(nets["enc"].parameters()) + list(nets["pi"].parameters()) + list(nets["q"].parameters())
    return nets, optim.Adam(params, lr=cfg.lr, eps=1e-5, fused=torch.device(cfg.device).type == "cpu")


def act(nets: nn.ModuleDict, obs: torch.Tensor, deterministic: bool) -> np.ndarray:
    dist = nets["pi"](nets["enc"](obs))
    return (dist.mode() if deterministic else dist.sample()).cpu().numpy()


def update(nets: nn.ModuleDict, opt: torch.optim.Optimizer, seg: dict[str, torch.Tensor],
           cfg: Config) -> dict[str, torch.Tensor]:
    """One gradient step on a batch of segments {name: [T, B, ...]} (on-policy or replayed)."""
    enc, pi_net, q_net = nets["enc"], nets["pi"], nets["q"]
    obs, actions, beta = seg["obs"], seg["actions"].long(), seg["beta_probs"]
    a = actions.unsqueeze(-1)
    T = obs.shape[0]
    h = enc(obs)  # features of s_t, computed once for π and Q (the observations themselves for vectors)
    with torch.no_grad():
        h_next = enc(seg["next_obs"])  # s_{t+1} feeds only Retrace's targets: no backward through the trunk
    both = torch.cat([h, h_next])  # s_t and s_{t+1}: one forward per head
    u_both, q_both = pi_net.logits(both), q_net(both)
    u, q = u_both[:T], q_both[:T]  # the policy's logits [T, B, A]; Q_w(s_t, .)
    f = torch.softmax(u, -1)  # φ: the statistics of the categorical policy, its probabilities f(.|s_t)
    log_pi = torch.log_softmax(u, -1).detach().requires_grad_()  # ln f, a leaf: ĝ is taken through it
    q_a = q.gather(-1, a).squeeze(-1)
    with torch.no_grad():
        pi = log_pi.exp()
        v = (pi * q).sum(-1)
        rho = pi.gather(-1, a).squeeze(-1) / beta.gather(-1, a).squeeze(-1).clamp_min(1e-12)
        v_next = (torch.softmax(u_both[T:], -1) * q_both[T:]).sum(-1)  # V(s_{t+1}), the final obs at episode ends
        q_ret = retrace(seg["rewards"], q_a.detach(), v_next, rho.clamp(max=cfg.c_retrace),
                        seg["terminated"], seg["truncated"], cfg.gamma)  # (1)
    A = log_pi.shape[-1]
    pg_loss, stats = acer_policy_loss(log_pi.reshape(-1, A), actions.reshape(-1), beta.reshape(-1, A),
                                      q_ret.reshape(-1), q.detach().reshape(-1, A), v.reshape(-1), cfg.c)  # (3)
    ent = -(log_pi.exp() * log_pi).sum(-1).mean()
    n = q_ret.numel()
    (g_log,) = torch.autograd.grad(-(pg_loss - cfg.ent_coef * ent) * n, log_pi)  # per sample, w.r.t. ln f
    with torch.no_grad():
        f_safe = f.detach().clamp_min(1e-6)
        g = g_log / f_safe  # ĝ = ∂(objective)/∂f, by the chain rule through ln f
        if cfg.trust_region:
            f_avg = torch.softmax(nets["pi_avg"].logits(nets["enc_avg"](obs)), -1)
            k = -f_avg / f_safe  # ∇_f D_KL(f_avg || f)
            z = trust_region_projection(g, k, cfg.delta)  # (4)
        else:
            z = g
        active = (z != g).any(-1)  # samples where the constraint binds (a nonzero adjustment)
    policy_surrogate = -(z * f).sum(-1).mean()  # backpropagates z through f(s) into θ
    q_loss = value_loss(q_a, q_ret)  # (2)
    loss = policy_surrogate + cfg.q_coef * q_loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = clip_grad_norm(opt.param_groups[0]["params"], cfg.max_grad_norm)
    opt.step()
    if next(enc.parameters(), None) is not None:  # a trunk with weights (none for vectors and --net mlp)
        polyak_update(nets["enc_avg"], enc, 1.0 - cfg.avg_decay)  # (5), the trunk
    polyak_update(nets["pi_avg"], pi_net, 1.0 - cfg.avg_decay)  # (5), the π head
    return {"loss/policy": pg_loss.detach(), "loss/q": q_loss.detach(), "entropy": ent.detach(),
            "rho_mean": stats["rho_mean"], "truncated_frac": stats["truncated_frac"],
            "tr_shrink": (z - g).norm() / g.norm().clamp_min(1e-12), "tr_active": active.float().mean(),
            "grad_norm": grad_norm.detach()}


def train(cfg: Config, run: Any) -> nn.ModuleDict:
    envs = run.make_envs()
    nets, opt = build(cfg, run.spec)
    spec, T, N = run.spec, cfg.n_steps, cfg.num_envs
    frames = (tuple(spec.obs_shape), obs_torch_dtype(spec))  # uint8 (bool) frames stored as they come
    replay = SequenceReplay(cfg.buffer_size, T, N, {
        "obs": frames, "next_obs": frames,
        "actions": ((), torch.long), "rewards": ((), torch.float32), "terminated": ((), torch.bool),
        "truncated": ((), torch.bool), "beta_probs": ((spec.n_actions,), torch.float32)}, cfg.device)
    run.track(nets=nets, opt=opt, replay=replay)
    ro = Rollout(T, N, spec, cfg.device)
    beta_probs = torch.zeros(T, N, spec.n_actions, device=cfg.device)
    pi, enc = nets["pi"], features_function(nets["enc"])
    t = 0

    def sample(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        nonlocal t
        dist = pi(enc(obs))
        a = dist.sample()
        beta_probs[t] = dist.probs  # β(.|s_t): the behaviour policy stored with the segment
        t += 1
        return a, dist.log_prob(a), a.cpu().numpy()

    while run.step < cfg.steps:
        t = 0
        collect_rollout(envs, sample, ro)
        seg = {"obs": ro.obs, "next_obs": ro.next_obs, "actions": ro.actions, "rewards": ro.rewards,
               "terminated": ro.terminated, "truncated": ro.truncated, "beta_probs": beta_probs}
        replay.add(**seg)
        totals = update(nets, opt, seg, cfg)
        k = 1
        if len(replay) >= cfg.replay_start and cfg.replay_ratio > 0:
            for _ in range(int(torch.poisson(torch.tensor(float(cfg.replay_ratio))))):
                m = update(nets, opt, replay.sample(cfg.replay_segments), cfg)
                totals = {key: totals[key] + val for key, val in m.items()}
                k += 1
        if not run.advance(T * N, {key: val / k for key, val in totals.items()}, updates=k):
            break
    return nets
