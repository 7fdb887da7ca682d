"""Running statistics and observation normalisation (saved in checkpoints, frozen at evaluation)."""

from __future__ import annotations

from typing import Any

import numpy as np


class RunningMeanStd:
    """Running mean and variance (parallel algorithm of Chan et al.), in float64."""

    def __init__(self, shape: tuple[int, ...] = ()):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64)
        b_mean, b_var, b_n = x.mean(0), x.var(0), x.shape[0]
        delta = b_mean - self.mean
        tot = self.count + b_n
        self.mean = self.mean + delta * b_n / tot
        m2 = self.var * self.count + b_var * b_n + delta**2 * self.count * b_n / tot
        self.var = m2 / tot
        self.count = tot

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.mean, self.var, self.count = np.array(d["mean"]), np.array(d["var"]), float(d["count"])


class ObsNormalizer:
    """(obs - mean) / sqrt(var + eps), clipped; statistics updated only while training."""

    def __init__(self, dim: int, clip: float, enabled: bool):
        self.enabled, self.clip = enabled, clip
        self.rms = RunningMeanStd((dim,))

    def __call__(self, obs: np.ndarray, update: bool) -> np.ndarray:
        if not self.enabled:
            return obs
        if update:
            self.rms.update(obs)
        out = (obs - self.rms.mean) / np.sqrt(self.rms.var + 1e-8)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "clip": self.clip, "rms": self.rms.state_dict()}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.enabled, self.clip = d["enabled"], d["clip"]
        self.rms.load_state_dict(d["rms"])
