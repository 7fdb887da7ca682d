"""A user's own envs, as ``module:Class`` / ``module:factory`` strings name them (tests/unit/test_custom_env.py).

``TargetEnv``: the observation one-hot encodes a target in 0..k-1, the action that names it earns 1, an episode is
``length`` steps (optimum: ``length``). ``make_target``: a factory of the same env. The others break Gymnasium's
API on purpose, one way each, for the env checker.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class TargetEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, k: int = 3, length: int = 8, render_mode: str | None = None):
        self.k, self.length, self.render_mode = k, length, render_mode
        self.observation_space = gym.spaces.Box(0.0, 1.0, (k,), np.float32)
        self.action_space = gym.spaces.Discrete(k)
        self._target, self._t = 0, 0

    def _obs(self) -> np.ndarray:
        return np.eye(self.k, dtype=np.float32)[self._target]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        self._target = int(self.np_random.integers(self.k))
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(int(action) == self._target)
        self._t += 1
        self._target = int(self.np_random.integers(self.k))
        return self._obs(), reward, self._t >= self.length, False, {}

    def render(self) -> np.ndarray:
        frame = np.zeros((32, 32 * self.k, 3), np.uint8)
        frame[:, 32 * self._target:32 * (self._target + 1)] = 255
        return frame


def make_target(render_mode: str | None = None) -> gym.Env:
    """A factory: the same env with targets among 2."""
    return TargetEnv(k=2, length=8, render_mode=render_mode)


class WideActionEnv(TargetEnv):
    """Box actions in [0, 10] (the target is floor(a)): the checker warns (it recommends [-1, 1]), training goes
    on."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.action_space = gym.spaces.Box(0.0, 10.0, (1,), np.float32)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return super().step(int(np.clip(np.asarray(action).reshape(-1)[0], 0, self.k - 1)))


class NoSeedEnv(TargetEnv):
    """``reset`` without a ``seed`` argument: the checker refuses it."""

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:  # type: ignore[override]
        self._t = 0
        return self._obs(), {}


NOT_AN_ENV = 42


def make_nothing() -> dict:
    """A factory that returns something other than an env."""
    return {}
