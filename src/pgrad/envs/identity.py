"""Identity tasks on images: each frame shows one of k markers and the right action is the marker's index.

The pixel counterpart of the identity envs other libraries test with: solvable only by reading the frame, with a
known optimum (every step rewarded, a return of ``length``), and cheap enough for CI.
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
