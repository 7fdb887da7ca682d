"""Replay: a circular buffer of preallocated tensors filled from a vector env, with n-step transitions.

Layout: every field is stored as [C, N, ...] (C = capacity // N rows, one column per env), so the steps of one
env are consecutive in its column and n-step transitions are gathered at sample time, vectorised.

n-step transition from (row t, env i), with k* = min(n - 1, first j >= 0 where the episode ended at t + j):
    reward   = Σ_{j <= k*} γ^j r_{t+j}
    next_obs = s_{t+k*+1} (the true final observation where the episode ended)
    discount = γ^{k*+1} (1 - terminated_{t+k*})    -> target = reward + discount · Q(next_obs, ·)
so returns stop at termination and bootstrap at truncation. Rows whose n-step window is not complete yet
(the newest n - 1 rows) are not sampled.

Trailing dimensions are free: an agent axis (MADDPG) rides along in obs/actions/rewards shapes.
"""

from __future__ import annotations

from typing import Any

import torch


class ReplayBuffer:
    """Uniform replay of (s, a, r, terminated, truncated, s') from N envs, with n-step returns."""

    def __init__(self, capacity: int, num_envs: int, obs_shape: tuple[int, ...], act_shape: tuple[int, ...],
                 act_dtype: torch.dtype = torch.float32, n_step: int = 1, gamma: float = 0.99,
                 reward_shape: tuple[int, ...] = (), device: str | torch.device = "cpu",
                 extra: dict[str, tuple[tuple[int, ...], torch.dtype]] | None = None):
        if capacity < num_envs * (n_step + 1):
            raise ValueError(f"replay capacity {capacity} is too small for {num_envs} envs and n_step={n_step}")
        self.rows, self.N = capacity // num_envs, num_envs
        self.n_step, self.gamma = n_step, gamma
        self.device = torch.device(device)
        C, N, dev = self.rows, num_envs, self.device
        self.fields: dict[str, torch.Tensor] = {
            "obs": torch.zeros((C, N) + tuple(obs_shape), device=dev),
            "next_obs": torch.zeros((C, N) + tuple(obs_shape), device=dev),
            "actions": torch.zeros((C, N) + tuple(act_shape), dtype=act_dtype, device=dev),
            "rewards": torch.zeros((C, N) + tuple(reward_shape), device=dev),
            "terminated": torch.zeros((C, N), dtype=torch.bool, device=dev),
            "truncated": torch.zeros((C, N), dtype=torch.bool, device=dev),
        }
        for name, (shape, dtype) in (extra or {}).items():
            self.fields[name] = torch.zeros((C, N) + tuple(shape), dtype=dtype, device=dev)
        self.pos = 0  # next row to write
        self.full = False
        self._gammas = gamma ** torch.arange(n_step + 1, dtype=torch.float32, device=dev)

    # ------------------------------------------------------------------ writing
    def add(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, terminated: torch.Tensor,
            truncated: torch.Tensor, next_obs: torch.Tensor, **extra: torch.Tensor) -> None:
        """Store one vector-env step: every argument has a leading env axis N."""
        row = self.pos
        f = self.fields
        f["obs"][row] = obs
        f["actions"][row] = actions
        f["rewards"][row] = rewards
        f["terminated"][row] = terminated
        f["truncated"][row] = truncated
        f["next_obs"][row] = next_obs
        for k, v in extra.items():
            f[k][row] = v
        self.pos = (row + 1) % self.rows
        self.full = self.full or self.pos == 0

    def __len__(self) -> int:
        """Transitions that can be sampled now."""
        return self.valid_rows() * self.N

    def valid_rows(self) -> int:
        filled = self.rows if self.full else self.pos
        return max(0, filled - (self.n_step - 1))

    # ------------------------------------------------------------------ reading
    def sample_index(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Uniform (row, env) indices among sampleable transitions."""
        n_rows = self.valid_rows()
        if n_rows == 0:
            raise RuntimeError("replay buffer has no complete transitions yet")
        start = self.pos if self.full else 0  # oldest row
        k = torch.randint(0, n_rows * self.N, (batch_size,), device=self.device)
        rows = (start + k // self.N) % self.rows
        return rows, k % self.N

    def gather(self, rows: torch.Tensor, envs: torch.Tensor) -> dict[str, torch.Tensor]:
        """n-step transitions starting at (rows, envs); see the module docstring."""
        f = self.fields
        out = {name: t[rows, envs] for name, t in f.items() if name not in ("rewards", "next_obs", "truncated")}
        if self.n_step == 1:
            out["rewards"] = f["rewards"][rows, envs]
            out["next_obs"] = f["next_obs"][rows, envs]
            out["terminated"] = f["terminated"][rows, envs]
            out["discount"] = self.gamma * (~out["terminated"]).float()
            return out
        n = self.n_step
        offs = torch.arange(n, device=self.device)
        r_idx = (rows.unsqueeze(1) + offs) % self.rows  # [B, n]
        e_idx = envs.unsqueeze(1).expand_as(r_idx)
        done = f["terminated"][r_idx, e_idx] | f["truncated"][r_idx, e_idx]  # [B, n]
        # alive[:, j]: no episode end strictly before j
        alive = torch.cat([torch.ones_like(done[:, :1]), ~done[:, :-1]], 1).cumprod(1).bool()
        k_star = alive.sum(1) - 1  # last included offset
        rew = f["rewards"][r_idx, e_idx]  # [B, n, *reward_shape]
        w = (self._gammas[:n] * alive.float())
        w = w.reshape(w.shape + (1,) * (rew.dim() - 2))
        last_row = r_idx.gather(1, k_star.unsqueeze(1)).squeeze(1)
        term_last = f["terminated"][last_row, envs]
        out["rewards"] = (w * rew).sum(1)
        out["next_obs"] = f["next_obs"][last_row, envs]
        out["terminated"] = term_last
        out["discount"] = self._gammas[k_star + 1] * (~term_last).float()
        out["n"] = k_star + 1
        return out

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        rows, envs = self.sample_index(batch_size)
        out = self.gather(rows, envs)
        out["rows"], out["envs"] = rows, envs
        return out

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        filled = self.rows if self.full else self.pos
        return {"pos": self.pos, "full": self.full, "rows": self.rows, "N": self.N,
                "fields": {k: v[:filled].clone() for k, v in self.fields.items()}}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if d["rows"] != self.rows or d["N"] != self.N:
            raise ValueError("replay buffer checkpoint has another capacity or number of envs")
        self.pos, self.full = d["pos"], d["full"]
        for k, v in d["fields"].items():
            self.fields[k][: v.shape[0]] = v.to(self.device)
