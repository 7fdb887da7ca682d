"""collect_episodes cuts episodes at max_len as truncated (issue 20, point 10): REINFORCE with a value baseline
bootstraps there instead of treating the cut as the episode's end."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from pgrad.data.collect import collect_episodes
from pgrad.envs import VecEnv, describe, env_factory


class Endless(gym.Env):
    """Counts steps and never ends unless ``end_at`` (per reset, cycling) says so; reward 1 per step."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)
    ends = [4, None]  # the first env's episode terminates after 4 steps, the second's never does

    def __init__(self):
        self.t, self.end_at = 0, None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.end_at = Endless.ends[(seed or 0) % 2] if seed is not None else self.end_at
        return np.array([self.t], np.float32), {}

    def step(self, a):
        self.t += 1
        return np.array([self.t], np.float32), 1.0, self.end_at is not None and self.t == self.end_at, False, {}


def _sampler(obs):
    a = torch.zeros(obs.shape[0], dtype=torch.long)
    return a, torch.zeros(obs.shape[0]), a.numpy()


def test_episode_cut_at_max_len_is_truncated_not_terminated():
    factory, eid = env_factory(Endless)
    envs = VecEnv(factory, 2, 0, describe(factory(), eid))
    envs.reset(seed=0)  # env 0 terminates at t = 4, env 1 never ends
    ro, mask = collect_episodes(envs, _sampler, max_len=7)
    assert ro.T == 7
    assert mask[:, 0].tolist() == [True] * 4 + [False] * 3 and bool(mask[:, 1].all())
    # env 0: terminated at its 4th step, never truncated; env 1: cut at step 7, truncated there
    assert bool(ro.terminated[3, 0]) and not bool(ro.truncated[:, 0].any())
    assert bool(ro.truncated[6, 1]) and not bool(ro.terminated[:, 1].any())
    assert not bool(ro.truncated[:6, 1].any())
    assert ro.next_obs[6, 1].tolist() == [7.0]  # the observation a critic bootstraps from


def test_cut_inside_a_chunk_stops_at_max_len():
    factory, eid = env_factory(Endless)
    envs = VecEnv(factory, 2, 1, describe(factory(), eid))
    ro, mask = collect_episodes(envs, _sampler, max_len=300)  # more than one 256-step chunk, ends mid-chunk
    assert ro.T == 300 and int(mask.sum()) <= 600
    assert bool(ro.truncated[-1][mask[-1]].all())
