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

import numpy as np
import torch


def zeros(shape: tuple[int, ...], dtype: torch.dtype = torch.float32,
          device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """torch.zeros, but on CPU the memory is numpy's calloc: pages are mapped on first write, so a large buffer
    costs resident memory only as it fills (torch.zeros writes every byte up front)."""
    if device.type != "cpu" or dtype not in _NUMPY:
        return torch.zeros(shape, dtype=dtype, device=device)
    return torch.from_numpy(np.zeros(shape, _NUMPY[dtype]))


_NUMPY = {torch.float32: np.float32, torch.float64: np.float64, torch.int64: np.int64, torch.int32: np.int32,
          torch.bool: np.bool_, torch.uint8: np.uint8, torch.float16: np.float16}


class ReplayBuffer:
    """Uniform replay of (s, a, r, terminated, truncated, s') from N envs, with n-step returns."""

    def __init__(self, capacity: int, num_envs: int, obs_shape: tuple[int, ...], act_shape: tuple[int, ...],
                 act_dtype: torch.dtype = torch.float32, n_step: int = 1, gamma: float = 0.99,
                 reward_shape: tuple[int, ...] = (), device: str | torch.device = "cpu",
                 extra: dict[str, tuple[tuple[int, ...], torch.dtype]] | None = None,
                 obs_dtype: torch.dtype = torch.float32):
        if capacity < num_envs * (n_step + 1):
            raise ValueError(f"replay capacity {capacity} is too small for {num_envs} envs and n_step={n_step}")
        self.rows, self.N = capacity // num_envs, num_envs
        self.n_step, self.gamma = n_step, gamma
        self.device = torch.device(device)
        C, N, dev = self.rows, num_envs, self.device
        self.fields: dict[str, torch.Tensor] = {
            "obs": zeros((C, N) + tuple(obs_shape), obs_dtype, dev),  # uint8 frames stay uint8
            "next_obs": zeros((C, N) + tuple(obs_shape), obs_dtype, dev),
            "actions": zeros((C, N) + tuple(act_shape), act_dtype, dev),
            "rewards": zeros((C, N) + tuple(reward_shape), device=dev),
            "terminated": zeros((C, N), torch.bool, dev),
            "truncated": zeros((C, N), torch.bool, dev),
        }
        for name, (shape, dtype) in (extra or {}).items():
            self.fields[name] = zeros((C, N) + tuple(shape), dtype, dev)
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
        if self.N == 1:  # the same indices with fewer ops: k // 1 = k, k % 1 = 0, and k < rows when start = 0
            return (k + start) % self.rows if start else k, torch.zeros_like(k)
        rows = (start + k // self.N) % self.rows
        return rows, k % self.N

    def gather(self, rows: torch.Tensor, envs: torch.Tensor) -> dict[str, torch.Tensor]:
        """n-step transitions starting at (rows, envs); see the module docstring."""
        f = self.fields
        flat = rows if self.N == 1 else rows * self.N + envs  # row-major [C, N] -> one index into C * N rows

        def take(name: str) -> torch.Tensor:
            return f[name].flatten(0, 1).index_select(0, flat)

        out = {name: take(name) for name in f if name not in ("rewards", "next_obs", "truncated")}
        if self.n_step == 1:
            out["rewards"], out["next_obs"] = take("rewards"), take("next_obs")
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


# ----------------------------------------------------------------------------- batched writes
def _extend(buf: ReplayBuffer, fields: dict[str, torch.Tensor]) -> tuple[int, int]:
    """Write T rows [T, N, ...] at once (wrapping around); returns (first row written, T)."""
    T = next(iter(fields.values())).shape[0]
    if T > buf.rows:
        raise ValueError(f"cannot write {T} rows at once into a replay buffer of {buf.rows} rows")
    r0 = buf.pos
    first = min(T, buf.rows - r0)
    for k, v in fields.items():
        dst = buf.fields[k]
        dst[r0:r0 + first] = v[:first]
        if first < T:
            dst[: T - first] = v[first:]
    buf.pos = (r0 + T) % buf.rows
    buf.full = buf.full or r0 + T >= buf.rows
    return r0, T


def extend(buf: ReplayBuffer, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor,
           terminated: torch.Tensor, truncated: torch.Tensor, next_obs: torch.Tensor, **extra: torch.Tensor) -> None:
    """``buf.add`` for T steps at once: every argument has leading axes [T, N]. One copy per field (not T)."""
    if isinstance(buf, PrioritizedReplayBuffer):
        buf.extend(obs, actions, rewards, terminated, truncated, next_obs, **extra)
        return
    _extend(buf, {"obs": obs, "actions": actions, "rewards": rewards, "terminated": terminated,
                  "truncated": truncated, "next_obs": next_obs, **extra})


# ----------------------------------------------------------------------------- prioritised replay
class SumTree:
    """A binary sum tree over ``size`` leaves, vectorised over batches of leaves (Schaul et al., 2016, App. B.2.1).

    One flat float64 array of 2P nodes (P = size rounded up to a power of two), node 1 the root, node i's
    children 2i and 2i+1, leaf j at node P + j. ``set`` writes leaves and recomputes their ancestors level by
    level (log2 P vectorised steps, duplicates harmless: a parent is always recomputed from its children, so
    sums never drift); ``find`` descends from the root for a batch of prefix sums at once.
    NumPy, not torch: these are many tiny ops, where NumPy's per-call cost is a few times lower.
    """

    def __init__(self, size: int):
        self.size = size
        self.cap = 1 << max(0, (size - 1).bit_length())
        self.depth = self.cap.bit_length() - 1
        self.nodes = np.zeros(2 * self.cap, np.float64)

    @property
    def total(self) -> float:
        return float(self.nodes[1])

    def leaves(self, idx: np.ndarray) -> np.ndarray:
        return self.nodes[idx + self.cap]

    def set(self, idx: np.ndarray, values: np.ndarray) -> None:
        """leaf[idx] = values (values >= 0), then every ancestor = sum of its two children."""
        i = np.asarray(idx, np.int64) + self.cap
        self.nodes[i] = values
        nodes = self.nodes
        for _ in range(self.depth):
            i = np.unique(i >> 1)
            nodes[i] = nodes[2 * i] + nodes[2 * i + 1]

    def find(self, u: np.ndarray) -> np.ndarray:
        """Leaf j with prefix(j) <= u < prefix(j) + leaf(j) for each u in [0, total), never a zero leaf."""
        u = np.array(u, np.float64)
        i = np.ones(u.shape, np.int64)
        nodes = self.nodes
        for _ in range(self.depth):
            left = 2 * i
            lv = nodes[left]
            # go right when u lies beyond the left subtree, unless the right one is empty (float round-off)
            right = (u >= lv) & (nodes[left + 1] > 0)
            u = np.where(right, u - lv, u)
            i = left + right
        return i - self.cap

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> np.ndarray:
        """Stratified proportional sampling: one draw from each of B equal slices of [0, total)."""
        total = self.total
        if not total > 0:
            raise RuntimeError("prioritised replay has no sampleable transitions yet")
        r = torch.rand(batch_size, dtype=torch.float64, generator=generator).numpy()
        u = (np.arange(batch_size) + r) * (total / batch_size)
        return self.find(np.minimum(u, np.nextafter(total, 0.0)))


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritised replay (Schaul et al., 2016) on top of ReplayBuffer (same layout, n-step too).

    P(i) = p_i^α / Σ_k p_k^α, p_i = |δ_i| + ε (new transitions get the largest priority seen so far);
    importance weights w_i = (M · P(i))^-β / max_batch w, M the number of sampleable transitions, β annealed
    to 1 by the caller (``sample(batch, beta)``). Weights are normalised by the batch maximum (so they only
    scale updates down) rather than the buffer-wide maximum: no second (min) tree to maintain.
    Leaves are (row, env) pairs flattened as row·N + env; a row's leaves hold priority 0 until its n-step
    window is complete, so exactly the transitions ReplayBuffer.sample_index would draw can be drawn.
    """

    def __init__(self, capacity: int, num_envs: int, obs_shape: tuple[int, ...], act_shape: tuple[int, ...],
                 act_dtype: torch.dtype = torch.float32, n_step: int = 1, gamma: float = 0.99,
                 reward_shape: tuple[int, ...] = (), device: str | torch.device = "cpu",
                 extra: dict[str, tuple[tuple[int, ...], torch.dtype]] | None = None,
                 alpha: float = 0.6, eps: float = 1e-6):
        super().__init__(capacity, num_envs, obs_shape, act_shape, act_dtype, n_step, gamma, reward_shape,
                         device, extra)
        if alpha < 0 or eps <= 0:
            raise ValueError("prioritised replay needs alpha >= 0 and eps > 0")
        self.alpha, self.eps = alpha, eps
        self.tree = SumTree(self.rows * self.N)
        self.max_priority = 1.0  # max p_i seen so far (before the exponent α)
        self._env_ids = np.arange(self.N, dtype=np.int64)

    # ------------------------------------------------------------------ writing
    def _leaves_of_rows(self, rows: np.ndarray) -> np.ndarray:
        return (np.asarray(rows, np.int64)[:, None] * self.N + self._env_ids).reshape(-1)

    def _after_write(self, r0: int, T: int) -> None:
        written = (r0 + np.arange(T)) % self.rows
        if self.n_step > 1:  # their windows are incomplete now
            self.tree.set(self._leaves_of_rows(written), np.zeros(T * self.N))
        complete = r0 + np.arange(T) - (self.n_step - 1)  # rows whose window the write completed
        if not self.full:
            complete = complete[complete >= 0]
        if complete.size:
            leaves = self._leaves_of_rows(complete % self.rows)
            self.tree.set(leaves, np.full(leaves.shape, self.max_priority ** self.alpha))

    def add(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, terminated: torch.Tensor,
            truncated: torch.Tensor, next_obs: torch.Tensor, **extra: torch.Tensor) -> None:
        r0 = self.pos
        super().add(obs, actions, rewards, terminated, truncated, next_obs, **extra)
        self._after_write(r0, 1)

    def extend(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, terminated: torch.Tensor,
               truncated: torch.Tensor, next_obs: torch.Tensor, **extra: torch.Tensor) -> None:
        """T steps at once, every argument [T, N, ...]."""
        r0, T = _extend(self, {"obs": obs, "actions": actions, "rewards": rewards, "terminated": terminated,
                               "truncated": truncated, "next_obs": next_obs, **extra})
        self._after_write(r0, T)

    # ------------------------------------------------------------------ reading
    def sample_index(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, env) indices drawn with probability P(i) ∝ p_i^α."""
        leaf = torch.from_numpy(self.tree.sample(batch_size)).to(self.device)
        return leaf // self.N, leaf % self.N

    def sample(self, batch_size: int, beta: float = 1.0) -> dict[str, torch.Tensor]:
        """n-step transitions drawn ∝ p^α, with ``weights`` (M·P(i))^-β / max w and their ``index`` for
        update_priorities."""
        leaf = self.tree.sample(batch_size)
        prob = self.tree.leaves(leaf) / self.tree.total
        w = (len(self) * prob) ** (-beta)
        w /= w.max()
        leaf_t = torch.from_numpy(leaf).to(self.device)
        rows, envs = leaf_t // self.N, leaf_t % self.N
        out = self.gather(rows, envs)
        out["rows"], out["envs"], out["index"] = rows, envs, leaf_t
        out["weights"] = torch.from_numpy(w.astype(np.float32)).to(self.device)
        return out

    def update_priorities(self, index: torch.Tensor, td: torch.Tensor) -> None:
        """p_i ← |δ_i| + ε for the sampled transitions ``index`` (from ``sample``), δ their TD errors (or
        distributional losses)."""
        p = td.detach().abs().double().cpu().numpy() + self.eps
        self.max_priority = max(self.max_priority, float(p.max()))
        idx = index.cpu().numpy()
        # a transition sampled twice in one batch keeps its last priority
        self.tree.set(idx, p ** self.alpha)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        d = super().state_dict()
        d["priorities"] = torch.from_numpy(self.tree.nodes[self.tree.cap:self.tree.cap + self.tree.size].copy())
        d["max_priority"] = self.max_priority
        return d

    def load_state_dict(self, d: dict[str, Any]) -> None:
        super().load_state_dict(d)
        self.tree.nodes[:] = 0.0
        self.tree.set(np.arange(self.tree.size), d["priorities"].numpy())
        self.max_priority = float(d["max_priority"])


class SequenceReplay:
    """ACER's replay: whole trajectory segments of T steps of N envs, stored with the behaviour policy's action
    probabilities β(.|s_t) so importance weights π/β and Retrace can be computed when a segment is replayed.

    ``fields`` maps a name to (per-step shape, dtype); a segment is {name: [T, N, *shape]}. Storage is a circular
    array [S, T, N, ...] of S = capacity // (T·N) segments. ``sample(k)`` draws k stored segments uniformly (with
    replacement) and concatenates them along the env axis: {name: [T, k·N, *shape]}, still time-major, so
    episode boundaries (``terminated``/``truncated``) stay where they were.
    """

    def __init__(self, capacity: int, T: int, N: int, fields: dict[str, tuple[tuple[int, ...], torch.dtype]],
                 device: str | torch.device = "cpu"):
        self.S = capacity // (T * N)
        if self.S < 1:
            raise ValueError(f"replay capacity {capacity} holds no segment of {T} steps x {N} envs")
        self.T, self.N = T, N
        self.device = torch.device(device)
        self.data = {name: zeros((self.S, T, N) + tuple(shape), dtype, self.device)
                     for name, (shape, dtype) in fields.items()}
        self.pos = 0
        self.full = False

    def add(self, **segment: torch.Tensor) -> None:
        """Store one segment; every field [T, N, ...]."""
        for name, buf in self.data.items():
            buf[self.pos] = segment[name]
        self.pos = (self.pos + 1) % self.S
        self.full = self.full or self.pos == 0

    def segments(self) -> int:
        return self.S if self.full else self.pos

    def __len__(self) -> int:
        """Transitions stored."""
        return self.segments() * self.T * self.N

    def sample(self, k: int = 1) -> dict[str, torch.Tensor]:
        n = self.segments()
        if n == 0:
            raise RuntimeError("sequence replay is empty")
        idx = torch.randint(0, n, (k,), device=self.device)
        out = {}
        for name, buf in self.data.items():
            x = buf[idx]  # [k, T, N, ...]
            out[name] = x.transpose(0, 1).reshape((self.T, k * self.N) + tuple(x.shape[3:]))
        return out

    def state_dict(self) -> dict[str, Any]:
        n = self.segments()
        return {"pos": self.pos, "full": self.full, "shape": (self.S, self.T, self.N),
                "data": {k: v[:n].clone() for k, v in self.data.items()}}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if tuple(d["shape"]) != (self.S, self.T, self.N):
            raise ValueError("sequence replay checkpoint has another capacity, segment length or number of envs")
        self.pos, self.full = d["pos"], d["full"]
        for k, v in d["data"].items():
            self.data[k][: v.shape[0]] = v.to(self.device)
