"""On-policy storage: preallocated [T, N, ...] tensors filled in place, and a minibatch index iterator.

No advantage logic lives here: estimators in pgrad.core.returns read the tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from pgrad.envs import EnvSpec, Step, obs_torch_dtype


class Rollout:
    """T steps of N envs: obs s_t, action a_t, log π(a_t|s_t), r_t, terminated, truncated and s_{t+1}.

    Observations keep the env's shape and dtype ([T, N, *obs_shape]; uint8 frames stay uint8)."""

    def __init__(self, T: int, N: int, spec: EnvSpec, device: str | torch.device = "cpu"):
        self.T, self.N = T, N
        dev = torch.device(device)
        act_shape = () if spec.action_kind == "discrete" else (spec.n_actions,)  # multi*: k components
        act_dtype = torch.float32 if spec.action_kind == "box" else torch.long
        obs_dtype = obs_torch_dtype(spec)
        self.obs = torch.zeros(T, N, *spec.obs_shape, dtype=obs_dtype, device=dev)
        self.next_obs = torch.zeros(T, N, *spec.obs_shape, dtype=obs_dtype, device=dev)
        self.actions = torch.zeros((T, N) + act_shape, dtype=act_dtype, device=dev)
        self.logp = torch.zeros(T, N, device=dev)
        self.rewards = torch.zeros(T, N, device=dev)
        self.terminated = torch.zeros(T, N, dtype=torch.bool, device=dev)
        self.truncated = torch.zeros(T, N, dtype=torch.bool, device=dev)
        # on CPU, numpy views of the same memory: a numpy row write costs a fifth of a torch one
        self._views = None if dev.type != "cpu" else tuple(
            x.numpy() for x in (self.obs, self.rewards, self.terminated, self.truncated, self.next_obs))

    def store(self, t: int, obs: torch.Tensor, action: torch.Tensor, logp: torch.Tensor, step: Step,
              obs_array: np.ndarray | None = None) -> None:
        """Write step t. ``obs_array`` (numpy, the same values as ``obs``) and ``step.arrays`` let the
        environment's arrays be copied in directly on CPU."""
        self.actions[t] = action
        self.logp[t] = logp
        if self._views is not None and step.arrays is not None and obs_array is not None:
            o, r, te, tr, no = self._views
            o[t], r[t], te[t], tr[t], no[t] = obs_array, *step.arrays[1:]
            return
        self.obs[t] = obs
        self.rewards[t] = step.reward
        self.terminated[t] = step.terminated
        self.truncated[t] = step.truncated
        self.next_obs[t] = step.next_obs

    @property
    def done(self) -> torch.Tensor:
        return self.terminated | self.truncated


def flat(x: torch.Tensor) -> torch.Tensor:
    """[T, N, ...] -> [T*N, ...]."""
    return x.reshape((-1,) + tuple(x.shape[2:]))


def minibatches(n: int, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Indices of a random permutation of range(n) in chunks of batch_size (the last one may be smaller)."""
    perm = torch.randperm(n, generator=generator)
    for i in range(0, n, batch_size):
        yield perm[i:i + batch_size]


def next_values(value_fn: Callable[[torch.Tensor], torch.Tensor], ro: Rollout, v: torch.Tensor) -> torch.Tensor:
    """V(s_{t+1}) for every step [T, N], given v = V(s_t): s_{t+1} is the next row's s_t except where an episode
    ended at t (its true final observation) and at the last step, so only those observations are evaluated.

    Equal in value to ``value_fn(ro.next_obs)``; for image observations it saves a forward pass of the encoder
    over the whole rollout (pixel-readiness: the recomputed next-state values).
    """
    v_next = torch.empty_like(v)
    v_next[:-1] = v[1:]
    need = ro.done.clone()
    need[-1] = True
    idx = need.nonzero(as_tuple=True)
    if idx[0].numel():
        v_next[idx] = value_fn(ro.next_obs[idx])
    return v_next
