"""Replay: a circular buffer of preallocated tensors filled from a vector env, with n-step transitions.

Layout: every field is stored as [C, N, ...] (C = capacity // N rows, one column per env), so the steps of one
env are consecutive in its column and n-step transitions are gathered at sample time, vectorised.

n-step transition from (row t, env i), with k* = min(n - 1, first j >= 0 where the episode ended at t + j):
    reward   = Σ_{j <= k*} γ^j r_{t+j}
    next_obs = s_{t+k*+1} (the true final observation where the episode ended)
    discount = γ^{k*+1} (1 - terminated_{t+k*})    -> target = reward + discount · Q(next_obs, ·)
so returns stop at termination and bootstrap at truncation. Rows whose n-step window is not complete yet
(the newest n - 1 rows) are not sampled.

Stacked frames (``frame_stack=k``, observations [k, H, W], oldest frame first, as the Atari FrameStack gives):
each row stores only the newest frame of its observation, and no next_obs. ``gather`` rebuilds
    obs[t]      = the frames of rows t-k+1 .. t, except that frames older than the latest *anchor* row s of
                  that window come from s's own stack. An anchor is a row that begins an episode (or its
                  column) or whose stack is not the previous stack shifted by one frame; its stack is its frame
                  repeated (what FrameStack gives at reset) or, where it is not, the stack kept in a side table
    next_obs[t] = obs[t + 1], except where the episode ended at t: obs[t] shifted by the final frame (a side
                  table of one frame per episode end), or, where that is not the final observation, the final
                  stack itself (side table)
so every stack equals the one the env gave, whatever it pads with (tests/unit/test_replay_frames.py checks this
against a plain buffer). ``add`` finds anchors and irregular stacks by comparing each step with the previous
one, so callers pass full stacks as always. Not sampled besides the above: the newest row (its next_obs is the
next row, not yet written) and, once the buffer wraps, the oldest k - 1 rows (their earlier frames are gone).
Memory: a 4x84x84 uint8 Atari transition takes 7,083 B (frame 7,056, action, reward, flags, side-table indices)
instead of 56,462 B, plus one frame per episode end.

``replay_bytes`` is what a buffer allocates; a buffer bigger than the free memory refuses to be built (one line
naming the bytes), rather than failing hours in as its calloc'd pages fill.

Trailing dimensions are free: an agent axis (MADDPG) rides along in obs/actions/rewards shapes.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch

from pgrad.errors import ConfigError


def zeros(shape: tuple[int, ...], dtype: torch.dtype = torch.float32,
          device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """torch.zeros, but on CPU the memory is numpy's calloc: pages are mapped on first write, so a large buffer
    costs resident memory only as it fills (torch.zeros writes every byte up front)."""
    if device.type != "cpu" or dtype not in _NUMPY:
        return torch.zeros(shape, dtype=dtype, device=device)
    return torch.from_numpy(np.zeros(shape, _NUMPY[dtype]))


_NUMPY = {torch.float32: np.float32, torch.float64: np.float64, torch.int64: np.int64, torch.int32: np.int32,
          torch.bool: np.bool_, torch.uint8: np.uint8, torch.float16: np.float16}


# ----------------------------------------------------------------------------- memory preflight
def replay_bytes(capacity: int, num_envs: int, obs_shape: tuple[int, ...], obs_dtype: torch.dtype = torch.float32,
                 frame_stack: int = 0, act_shape: tuple[int, ...] = (), act_dtype: torch.dtype = torch.float32,
                 reward_shape: tuple[int, ...] = (),
                 extra: dict[str, tuple[tuple[int, ...], torch.dtype]] | None = None) -> int:
    """Bytes a ``ReplayBuffer`` with these arguments allocates (its side tables for stacked frames, about one
    frame per episode end, grow as needed and are not counted)."""
    def size(shape: tuple[int, ...], dtype: torch.dtype) -> int:
        return int(np.prod(shape, dtype=np.int64)) * torch.empty((), dtype=dtype).element_size()

    per = size((), torch.bool) * 2 + size(reward_shape, torch.float32) + size(act_shape, act_dtype)
    if frame_stack:
        per += size(tuple(obs_shape[1:]), obs_dtype) + size((), torch.bool) + 3 * size((), torch.int32)
    else:
        per += 2 * size(tuple(obs_shape), obs_dtype)
    per += sum(size(shape, dtype) for shape, dtype in (extra or {}).values())
    return (capacity // num_envs) * num_envs * per


def available_memory() -> int | None:
    """Bytes this process can still allocate: MemAvailable (or free pages), and the cgroup's limit where one is
    set; None where neither can be read."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:  # a container's limit (cgroup v2) can be far below the machine's
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read())
        if limit != "max":
            avail = min(avail, int(limit) - used)
    except (OSError, ValueError):
        pass
    return avail


def check_memory(nbytes: int, capacity: int, hint: str = "") -> None:
    """Refuse a buffer that cannot fit in the memory available now (one line: the bytes, and buffer_size plus
    ``hint`` as what to lower). Buffers are calloc'd, so without this a too-large one starts fine and is killed
    when its pages fill."""
    avail = available_memory()
    if avail is None or nbytes <= avail:
        return
    raise ConfigError(f"the replay buffer needs {nbytes / 2**30:.2f} GiB ({capacity:,} transitions x "
                      f"{nbytes / max(capacity, 1):,.0f} B) but {avail / 2**30:.2f} GiB is available: lower "
                      f"buffer_size{hint}")


class _Pool:
    """Equal-shaped items in one growable tensor, with a free list: the side tables of frame-stack replay."""

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device):
        self.data = zeros((0,) + tuple(shape), dtype, device)
        self.used = 0  # slots ever handed out
        self.free: list[int] = []

    def put(self, x: torch.Tensor) -> torch.Tensor:
        """Store x [M, *shape]; returns the M slots (int32)."""
        m = x.shape[0]
        slots = [self.free.pop() for _ in range(min(m, len(self.free)))]
        fresh = m - len(slots)
        if self.used + fresh > self.data.shape[0]:  # double: amortised O(1) per item
            grown = zeros((max(2 * self.data.shape[0], self.used + fresh),) + tuple(self.data.shape[1:]),
                          self.data.dtype, self.data.device)
            grown[: self.used] = self.data[: self.used]
            self.data = grown
        slots += range(self.used, self.used + fresh)
        self.used += fresh
        idx = torch.tensor(slots, dtype=torch.long, device=self.data.device)
        self.data[idx] = x
        return idx.int()

    def release(self, slots: torch.Tensor) -> None:
        self.free.extend(slots[slots >= 0].tolist())

    def state_dict(self) -> dict[str, Any]:
        return {"data": _prefix(self.data, self.used), "free": list(self.free)}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.data = zeros(tuple(d["data"].shape), self.data.dtype, self.data.device)
        self.data[: d["data"].shape[0]] = d["data"].to(self.data.device)
        self.used, self.free = d["data"].shape[0], list(d["free"])


def _prefix(t: torch.Tensor, n: int) -> torch.Tensor:
    """The first n rows to checkpoint: the tensor itself when that is all of it (torch.save writes a view's whole
    storage, so a part must be copied; the whole need not be, and a large full replay is not doubled in RAM)."""
    return t if n == t.shape[0] else t[:n].clone()


def _same(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[N] bool: a[i] == b[i] everywhere."""
    return (a == b).flatten(1).all(1)


class ReplayBuffer:
    """Uniform replay of (s, a, r, terminated, truncated, s') from N envs, with n-step returns; with
    ``frame_stack=k``, stacked frames are stored once each (module docstring)."""

    def __init__(self, capacity: int, num_envs: int, obs_shape: tuple[int, ...], act_shape: tuple[int, ...],
                 act_dtype: torch.dtype = torch.float32, n_step: int = 1, gamma: float = 0.99,
                 reward_shape: tuple[int, ...] = (), device: str | torch.device = "cpu",
                 extra: dict[str, tuple[tuple[int, ...], torch.dtype]] | None = None,
                 obs_dtype: torch.dtype = torch.float32, frame_stack: int = 0):
        k = frame_stack
        if k and (len(obs_shape) < 2 or obs_shape[0] != k):
            raise ValueError(f"frame_stack={k} needs observations [{k}, ...] (frames on the first axis), "
                             f"not {tuple(obs_shape)}")
        if capacity < num_envs * (n_step + 1 + k):
            raise ValueError(f"replay capacity {capacity} is too small for {num_envs} envs and n_step={n_step}"
                             + (f" with frame_stack={k}" if k else ""))
        self.rows, self.N = capacity // num_envs, num_envs
        self.n_step, self.gamma = n_step, gamma
        self.frame_stack = k
        self.device = torch.device(device)
        if self.device.type == "cpu":  # elsewhere the allocation itself fails at once
            check_memory(replay_bytes(capacity, num_envs, obs_shape, obs_dtype, k, act_shape, act_dtype,
                                      reward_shape, extra), capacity,
                         "" if k else " or store stacked frames once (frame_stack=k)")
        C, N, dev = self.rows, num_envs, self.device
        if k:  # the newest frame of each observation; the rest is rebuilt in gather
            self.fields: dict[str, torch.Tensor] = {"frames": zeros((C, N) + tuple(obs_shape[1:]), obs_dtype, dev)}
        else:
            self.fields = {
                "obs": zeros((C, N) + tuple(obs_shape), obs_dtype, dev),  # uint8 frames stay uint8
                "next_obs": zeros((C, N) + tuple(obs_shape), obs_dtype, dev),
            }
        self.fields.update({
            "actions": zeros((C, N) + tuple(act_shape), act_dtype, dev),
            "rewards": zeros((C, N) + tuple(reward_shape), device=dev),
            "terminated": zeros((C, N), torch.bool, dev),
            "truncated": zeros((C, N), torch.bool, dev),
        })
        for name, (shape, dtype) in (extra or {}).items():
            self.fields[name] = zeros((C, N) + tuple(shape), dtype, dev)
        self.pos = 0  # next row to write
        self.full = False
        self._gammas = gamma ** torch.arange(n_step + 1, dtype=torch.float32, device=dev)
        if k:
            self._obs_dtype = obs_dtype
            # per row: an anchor (module docstring); slots of its own stack, its next_obs stack, its final frame
            self.side = {"anchor": zeros((C, N), torch.bool, dev)}
            for name in ("stack_slot", "next_slot", "final_slot"):
                self.side[name] = torch.full((C, N), -1, dtype=torch.int32, device=dev)
            self._stacks = _Pool(tuple(obs_shape), obs_dtype, dev)
            self._finals = _Pool(tuple(obs_shape[1:]), obs_dtype, dev)
            self._prev: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # last (obs, next_obs, done)

    # ------------------------------------------------------------------ writing
    def add(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, terminated: torch.Tensor,
            truncated: torch.Tensor, next_obs: torch.Tensor, **extra: torch.Tensor) -> None:
        """Store one vector-env step: every argument has a leading env axis N."""
        row = self.pos
        f = self.fields
        if self.frame_stack:
            self._add_frames(row, obs, terminated, truncated, next_obs)
        else:
            f["obs"][row] = obs
        f["actions"][row] = actions
        f["rewards"][row] = rewards
        f["terminated"][row] = terminated
        f["truncated"][row] = truncated
        if not self.frame_stack:
            f["next_obs"][row] = next_obs
        for k, v in extra.items():
            f[k][row] = v
        self.pos = (row + 1) % self.rows
        self.full = self.full or self.pos == 0

    def _add_frames(self, row: int, obs: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
                    next_obs: torch.Tensor) -> None:
        """Write the newest frame of obs at row, and side-table entries where a stack cannot be rebuilt."""
        side, dev = self.side, self.device
        if self.full:  # the overwritten row's side entries go with it
            self._stacks.release(side["stack_slot"][row])
            self._stacks.release(side["next_slot"][row])
            self._finals.release(side["final_slot"][row])
            for name in ("stack_slot", "next_slot", "final_slot"):
                side[name][row] = -1
        obs = obs.to(dev, self._obs_dtype)
        next_obs = next_obs.to(dev, self._obs_dtype)
        done = (torch.as_tensor(terminated, device=dev) | torch.as_tensor(truncated, device=dev)).bool()
        if self._prev is None:  # the column's first row: an episode start as far as this buffer knows
            anchor = torch.ones(self.N, dtype=torch.bool, device=dev)
        else:
            p_obs, p_next, p_done = self._prev
            anchor = p_done | ~_same(obs[:, :-1], p_obs[:, 1:])
            odd = ~p_done & ~_same(obs, p_next)  # the previous row's next_obs is not this row's obs
            if odd.any():
                e = odd.nonzero(as_tuple=True)[0]
                side["next_slot"][(row - 1) % self.rows, e] = self._stacks.put(p_next[e])
        explicit = anchor & ~_same(obs, obs[:, -1:].expand_as(obs))  # not its newest frame repeated
        if explicit.any():
            e = explicit.nonzero(as_tuple=True)[0]
            side["stack_slot"][row, e] = self._stacks.put(obs[e])
        side["anchor"][row] = anchor
        if done.any():
            e = done.nonzero(as_tuple=True)[0]
            shifted = _same(next_obs[e, :-1], obs[e, 1:])
            if shifted.any():
                side["final_slot"][row, e[shifted]] = self._finals.put(next_obs[e[shifted], -1])
            if not shifted.all():
                side["next_slot"][row, e[~shifted]] = self._stacks.put(next_obs[e[~shifted]])
        self.fields["frames"][row] = obs[:, -1]
        self._prev = (obs.clone(), next_obs.clone(), done.clone())

    def __len__(self) -> int:
        """Transitions that can be sampled now."""
        return self.valid_rows() * self.N

    def valid_rows(self) -> int:
        filled = self.rows if self.full else self.pos
        if self.frame_stack:  # next_obs of the newest row is the next row; wrapped, the oldest k-1 lack frames
            return max(0, filled - self.n_step - (self.frame_stack - 1 if self.full else 0))
        return max(0, filled - (self.n_step - 1))

    # ------------------------------------------------------------------ reading
    def sample_index(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Uniform (row, env) indices among sampleable transitions."""
        n_rows = self.valid_rows()
        if n_rows == 0:
            raise RuntimeError("replay buffer has no complete transitions yet")
        start = self._oldest()
        k = torch.randint(0, n_rows * self.N, (batch_size,), device=self.device)
        if self.N == 1:  # the same indices with fewer ops: k // 1 = k, k % 1 = 0, and k < rows when start = 0
            return (k + start) % self.rows if start else k, torch.zeros_like(k)
        rows = (start + k // self.N) % self.rows
        return rows, k % self.N

    def _oldest(self) -> int:
        """The oldest sampleable row."""
        if not self.full:
            return 0
        return (self.pos + self.frame_stack - 1) % self.rows if self.frame_stack else self.pos

    def gather(self, rows: torch.Tensor, envs: torch.Tensor) -> dict[str, torch.Tensor]:
        """n-step transitions starting at (rows, envs); see the module docstring."""
        f = self.fields
        flat = rows if self.N == 1 else rows * self.N + envs  # row-major [C, N] -> one index into C * N rows

        def take(name: str) -> torch.Tensor:
            return f[name].flatten(0, 1).index_select(0, flat)

        out = {"obs": None} if self.frame_stack else {}  # filled below, with next_obs
        out.update({name: take(name) for name in f if name not in ("rewards", "next_obs", "truncated", "frames")})
        if self.n_step == 1:
            out["rewards"] = take("rewards")
            if self.frame_stack:
                out["obs"], out["next_obs"] = self._obs_and_next(rows, envs, rows)
            else:
                out["next_obs"] = take("next_obs")
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
        if self.frame_stack:
            out["obs"], out["next_obs"] = self._obs_and_next(rows, envs, last_row)
        else:
            out["next_obs"] = f["next_obs"][last_row, envs]
        out["terminated"] = term_last
        out["discount"] = self._gammas[k_star + 1] * (~term_last).float()
        out["n"] = k_star + 1
        return out

    def _stack(self, rows: torch.Tensor, envs: torch.Tensor) -> torch.Tensor:
        """obs[t] for t in rows: the frames of rows t-k+1..t from the latest anchor s in that window on, and the
        frames before s from s's stack (its frame repeated, or the stack kept for it)."""
        k = self.frame_stack
        j = torch.arange(k, device=self.device)  # position in the stack, 0 oldest
        src = (rows.unsqueeze(1) - (k - 1) + j) % self.rows  # [B, k]
        e = envs.unsqueeze(1).expand_as(src)
        last = ((j + 1) * self.side["anchor"][src, e]).amax(1) - 1  # the latest anchor's position, -1 if none
        before = j < last.unsqueeze(1)  # [B, k] positions older than the anchor
        s = src.gather(1, last.clamp(min=0).unsqueeze(1))  # [B, 1] the anchor's row
        frames = self.fields["frames"].flatten(0, 1)
        flat = (torch.where(before, s, src) * self.N + e).flatten()  # one index into the C * N frames
        if frames.device.type == "cpu":  # numpy copies rows of small frames ~2x faster than index_select
            out = torch.from_numpy(frames.numpy()[flat.numpy()])
        else:
            out = frames.index_select(0, flat)
        out = out.view(src.shape + frames.shape[1:])  # [B, k, *frame]
        slot = self.side["stack_slot"][s.squeeze(1), envs]
        kept = before & (slot >= 0).unsqueeze(1)
        if kept.any():
            b, p = kept.nonzero(as_tuple=True)
            out[b, p] = self._stacks.data[slot[b].long(), k - 1 - (last[b] - p)]
        return out

    def _obs_and_next(self, rows: torch.Tensor, envs: torch.Tensor,
                      last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs at (rows, envs) and the observation after (last, envs): the next row's, or the final one where the
        episode ended at last. One gather for both (one large allocation, not several: each costs page faults)."""
        B = rows.shape[0]
        final = self.side["final_slot"][last, envs]
        i = (final >= 0).nonzero(as_tuple=True)[0]
        both = self._stack(torch.cat([rows, (last + 1) % self.rows, last[i]]), torch.cat([envs, envs, envs[i]]))
        obs, nxt = both[:B], both[B: 2 * B]
        if i.numel():  # the ended episode's last stack shifted by its final frame
            nxt[i, :-1] = both[2 * B:, 1:]
            nxt[i, -1] = self._finals.data[final[i].long()]
        kept = self.side["next_slot"][last, envs]
        i = (kept >= 0).nonzero(as_tuple=True)[0]
        if i.numel():
            nxt[i] = self._stacks.data[kept[i].long()]
        return obs, nxt

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        rows, envs = self.sample_index(batch_size)
        out = self.gather(rows, envs)
        out["rows"], out["envs"] = rows, envs
        return out

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The filled rows (the live tensors where the buffer is full: nothing is copied, as nn.Module's)."""
        filled = self.rows if self.full else self.pos
        d = {"pos": self.pos, "full": self.full, "rows": self.rows, "N": self.N,
             "fields": {k: _prefix(v, filled) for k, v in self.fields.items()}}
        if self.frame_stack:
            d["frame_stack"] = self.frame_stack
            d["side"] = {k: _prefix(v, filled) for k, v in self.side.items()}
            d["stacks"], d["finals"] = self._stacks.state_dict(), self._finals.state_dict()
            d["prev"] = None if self._prev is None else tuple(t.clone() for t in self._prev)
        return d

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if d["rows"] != self.rows or d["N"] != self.N:
            raise ValueError("replay buffer checkpoint has another capacity or number of envs")
        if d.get("frame_stack", 0) != self.frame_stack:
            raise ValueError(f"replay buffer checkpoint has frame_stack={d.get('frame_stack', 0)}, "
                             f"this buffer {self.frame_stack}")
        self.pos, self.full = d["pos"], d["full"]
        for k, v in d["fields"].items():
            self.fields[k][: v.shape[0]] = v.to(self.device)
        if self.frame_stack:
            for k, v in d["side"].items():
                self.side[k][: v.shape[0]] = v.to(self.device)
            self._stacks.load_state_dict(d["stacks"])
            self._finals.load_state_dict(d["finals"])
            self._prev = None if d["prev"] is None else tuple(t.to(self.device).clone() for t in d["prev"])


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
    if buf.frame_stack:  # each step is compared with the one before it
        for t in range(obs.shape[0]):
            buf.add(obs[t], actions[t], rewards[t], terminated[t], truncated[t], next_obs[t],
                    **{k: v[t] for k, v in extra.items()})
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
                 alpha: float = 0.6, eps: float = 1e-6, obs_dtype: torch.dtype = torch.float32):
        super().__init__(capacity, num_envs, obs_shape, act_shape, act_dtype, n_step, gamma, reward_shape,
                         device, extra, obs_dtype)
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
        if self.device.type == "cpu":  # ACER's frames: refuse what cannot fit before it fills
            per_row = sum(math.prod(shape) * torch.empty((), dtype=dtype).element_size()
                          for shape, dtype in fields.values())
            check_memory(per_row * self.S * T * N, self.S * T * N)
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
                "data": {k: _prefix(v, n) for k, v in self.data.items()}}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if tuple(d["shape"]) != (self.S, self.T, self.N):
            raise ValueError("sequence replay checkpoint has another capacity, segment length or number of envs")
        self.pos, self.full = d["pos"], d["full"]
        for k, v in d["data"].items():
            self.data[k][: v.shape[0]] = v.to(self.device)
