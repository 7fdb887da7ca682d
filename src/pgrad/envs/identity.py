"""Identity tasks: the observation shows the right action, and the reward says how much of it was taken.

- ``ImageIdentityEnv``: each frame shows one of k markers and the right action is the marker's index (the pixel
  counterpart of the identity envs other libraries test with: solvable only by reading the frame);
- ``MultiDiscreteIdentityEnv`` / ``MultiBinaryIdentityEnv``: the observation shows k components and the reward
  counts the components of the action that match (MultiDiscrete and MultiBinary actions).

Each has a known optimum (every step fully rewarded) and is cheap enough for CI.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class ImageIdentityEnv(gym.Env):
    """Frames of ``size`` x ``size`` with one lit cell of a k-cell grid; reward 1 when the action names the cell.

    ``dtype`` "uint8" lights the cell at 255 (pixels, scaled by 1/255 in the encoder), "bool" sets it True
    (MinAtar-style binary frames). ``channel_last`` gives HxWxC frames as Gymnasium images are; otherwise CxHxW.
    An episode is ``length`` steps (terminated at its end: there is nothing after it to bootstrap).
    """

    metadata = {"render_modes": []}

    def __init__(self, k: int = 4, size: int = 36, channels: int = 1, dtype: str = "uint8",
                 channel_last: bool = True, length: int = 16):
        self.k, self.size, self.channels, self.length = k, size, channels, length
        self.cols = int(np.ceil(np.sqrt(k)))
        self.cell = size // self.cols
        self._dtype = np.dtype(np.uint8 if dtype == "uint8" else np.bool_)
        self.channel_last = channel_last
        shape = (size, size, channels) if channel_last else (channels, size, size)
        high = 255 if dtype == "uint8" else 1
        self.observation_space = gym.spaces.Box(0, high, shape, self._dtype)
        self.action_space = gym.spaces.Discrete(k)
        self._marker = 0
        self._t = 0

    def _frame(self) -> np.ndarray:
        img = np.zeros((self.size, self.size), self._dtype)
        r, c = divmod(self._marker, self.cols)
        img[r * self.cell:(r + 1) * self.cell, c * self.cell:(c + 1) * self.cell] = 255 if self._dtype == np.uint8 \
            else True
        stack = np.repeat(img[None], self.channels, 0)
        return np.moveaxis(stack, 0, -1).copy() if self.channel_last else stack

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        self._marker = int(self.np_random.integers(self.k))
        return self._frame(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(int(action) == self._marker)
        self._t += 1
        self._marker = int(self.np_random.integers(self.k))
        return self._frame(), reward, self._t >= self.length, False, {}


class MultiDiscreteIdentityEnv(gym.Env):
    """k components, component i a target in 0..nvec[i]-1 shown one-hot (the observation is the k one-hot blocks
    side by side, Σ nvec floats); the action is MultiDiscrete(nvec) and the reward counts the components that name
    their target (0..k per step). Targets are drawn afresh each step; an episode is ``length`` steps (terminated
    at its end), so the optimum return is k * length."""

    metadata = {"render_modes": []}

    def __init__(self, nvec: tuple[int, ...] = (3, 3, 3), length: int = 16):
        self.nvec = np.asarray(nvec, np.int64)
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, 1.0, (int(self.nvec.sum()),), np.float32)
        self.action_space = gym.spaces.MultiDiscrete(self.nvec)
        self._offsets = np.concatenate([[0], np.cumsum(self.nvec)[:-1]])
        self._target = np.zeros(len(self.nvec), np.int64)
        self._t = 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.observation_space.shape, np.float32)
        obs[self._offsets + self._target] = 1.0
        return obs

    def _draw(self) -> None:
        self._target = self.np_random.integers(self.nvec)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        self._draw()
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(np.sum(np.asarray(action).reshape(-1) == self._target))
        self._t += 1
        self._draw()
        return self._obs(), reward, self._t >= self.length, False, {}


class MultiBinaryIdentityEnv(gym.Env):
    """k bits shown as floats; the action is MultiBinary(k) and the reward counts the bits it copies (0..k per
    step). Bits are drawn afresh each step; an episode is ``length`` steps, so the optimum return is k * length."""

    metadata = {"render_modes": []}

    def __init__(self, k: int = 4, length: int = 16):
        self.k, self.length = k, length
        self.observation_space = gym.spaces.Box(0.0, 1.0, (k,), np.float32)
        self.action_space = gym.spaces.MultiBinary(k)
        self._bits = np.zeros(k, np.int8)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        self._bits = self.np_random.integers(0, 2, self.k).astype(np.int8)
        return self._bits.astype(np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(np.sum(np.asarray(action).reshape(-1) == self._bits))
        self._t += 1
        self._bits = self.np_random.integers(0, 2, self.k).astype(np.int8)
        return self._bits.astype(np.float32), reward, self._t >= self.length, False, {}
