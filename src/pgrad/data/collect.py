"""Collection: the one place that steps vector envs for on-policy learners.

``sample(obs) -> (action, logp, env_action)`` is the algorithm's acting function: the action stored for
learning, its log-probability, and the numpy action sent to the env (clipped or rescaled where needed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from pgrad.data.rollout import Rollout
from pgrad.envs import VecEnv

Sampler = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, np.ndarray]]


class PolicySampler:
    """The acting function of a stochastic policy, written once for the on-policy algorithms: a ~ π(.|s) computed
    as ``pi(features(obs))``, log π(a|s), and the env action (Box samples clipped to the bounds; the learner keeps
    the unclipped one). ``value``: V(s_t) from the same features, kept for the rollout (``pop_values``), so the
    value targets of a shared-trunk algorithm need no second encoder pass over the frames."""

    def __init__(self, pi: Callable, bounds: Any, boxed: bool, features: Callable | None = None,
                 value: Callable | None = None):
        self.pi, self.bounds, self.boxed, self.features, self.value = pi, bounds, boxed, features, value
        self.values: list[torch.Tensor] = []

    def __call__(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        h = obs if self.features is None else self.features(obs)
        dist = self.pi(h)
        if self.value is not None:
            self.values.append(self.value(h))
        a = dist.sample()
        return a, dist.log_prob(a), (self.bounds.clip(a) if self.boxed else a).cpu().numpy()

    def pop_values(self) -> torch.Tensor:
        """[T, N] values V(s_t) of the steps acted since the last call."""
        v = torch.stack(self.values)
        self.values.clear()
        return v


@torch.no_grad()
def collect_rollout(envs: VecEnv, sample: Sampler, rollout: Rollout) -> None:
    """Fill ``rollout`` with T steps of every env, continuing the episodes in progress."""
    for t in range(rollout.T):
        obs, obs_array = envs.obs, getattr(envs, "obs_array", None)
        action, logp, env_action = sample(obs)
        rollout.store(t, obs, action, logp, envs.step(env_action), obs_array)


@torch.no_grad()
def collect_episodes(envs: VecEnv, sample: Sampler, max_len: int = 100_000) -> tuple[Rollout, torch.Tensor]:
    """One complete episode from each of the N envs (all reset first), for Monte-Carlo methods.

    Returns a Rollout of length T = the longest episode and a mask [T, N] of the steps that belong to each
    env's first episode. Steps after an env's episode ended are stepped (every env steps in lock-step) but
    masked out, with reward 0 and ``terminated`` set so no return flows across them. An episode still running
    after ``max_len`` steps ends there, marked truncated: a critic bootstraps from its last observation. Taking
    exactly the first episode of each env keeps the batch an unbiased sample of trajectories (stopping at a number
    of finished episodes would favour short ones).
    """
    envs.reset()
    N = envs.num_envs
    chunks: list[Rollout] = []
    masks: list[torch.Tensor] = []
    active = torch.ones(N, dtype=torch.bool)
    chunk_len = 256
    t_total = 0
    while bool(active.any()) and t_total < max_len:
        ro = Rollout(chunk_len, N, envs.spec, envs.device)
        mask = torch.zeros(chunk_len, N, dtype=torch.bool)
        for t in range(chunk_len):
            obs, obs_array = envs.obs, getattr(envs, "obs_array", None)
            action, logp, env_action = sample(obs)
            step = envs.step(env_action)
            ro.store(t, obs, action, logp, step, obs_array)
            mask[t] = active
            active = active & ~(step.terminated | step.truncated).cpu()
            t_total += 1
            if t_total >= max_len:  # the cut: episodes still running end here as truncated (bootstrapped)
                ro.truncated[t] |= active.to(ro.truncated.device)
                active = torch.zeros_like(active)
            if not bool(active.any()):
                ro = _truncate(ro, t + 1)
                mask = mask[: t + 1]
                break
        chunks.append(ro)
        masks.append(mask)
    out = _concat(chunks)
    m = torch.cat(masks).to(out.rewards.device)
    out.rewards = out.rewards * m
    out.terminated = out.terminated | ~m
    out.truncated = out.truncated & m
    return out, m


def _truncate(ro: Rollout, T: int) -> Rollout:
    ro._views = None  # the tensors below are replaced: no more numpy writes into the old ones
    for name in ("obs", "next_obs", "actions", "logp", "rewards", "terminated", "truncated"):
        setattr(ro, name, getattr(ro, name)[:T])
    ro.T = T
    return ro


def _concat(chunks: list[Rollout]) -> Rollout:
    if len(chunks) == 1:
        return chunks[0]
    out = chunks[0]
    out._views = None
    for name in ("obs", "next_obs", "actions", "logp", "rewards", "terminated", "truncated"):
        setattr(out, name, torch.cat([getattr(c, name) for c in chunks]))
    out.T = sum(c.T for c in chunks)
    return out
