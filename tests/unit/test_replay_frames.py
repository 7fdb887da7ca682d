"""data.replay with frame_stack=k (each frame stored once, stacks rebuilt in gather) against a plain buffer that
stores every stacked obs and next_obs: the same transitions, field for field, for the same indices."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from pgrad.data import replay as replay_mod
from pgrad.data.replay import ReplayBuffer, extend, replay_bytes
from pgrad.errors import ConfigError


class FakeStacks:
    """N envs whose observations are stacks of the last k frames (oldest first), as pgrad's Atari FrameStack gives,
    built with numpy. Episodes end at random by termination or truncation; the vector env resets at once (the
    true final stack is next_obs, the reset stack the next obs). ``pad``: what a reset stack holds before its
    frame: "reset" (the frame repeated, as FrameStack) or "zeros" (as Gymnasium's padding_type="zero").
    ``levels`` small makes frames repeat by chance (coincidental equalities)."""

    def __init__(self, N, k, hw=(3, 3), p_end=0.15, pad="reset", levels=256, dtype=np.uint8, seed=0):
        self.rng = np.random.default_rng(seed)
        self.k, self.hw, self.p_end, self.pad, self.levels, self.dtype = k, hw, p_end, pad, levels, dtype
        self.stacks = np.stack([self._reset() for _ in range(N)])

    def _frame(self):
        return self.rng.integers(0, self.levels, self.hw).astype(self.dtype)

    def _reset(self):
        f = self._frame()
        if self.pad == "reset":
            return np.repeat(f[None], self.k, 0)
        s = np.zeros((self.k,) + self.hw, self.dtype)
        s[-1] = f
        return s

    def step(self):
        obs = self.stacks.copy()
        nxt = np.concatenate([obs[:, 1:], np.stack([self._frame() for _ in obs])[:, None]], 1)
        u = self.rng.random(len(obs))
        term, trunc = u < self.p_end / 2, (u >= self.p_end / 2) & (u < self.p_end)
        for i in range(len(obs)):
            self.stacks[i] = self._reset() if term[i] or trunc[i] else nxt[i]
        return obs, nxt, term, trunc


def steps(env, T, N, seed=0, odd_next=0.0):
    """T vector steps of env as add() arguments; ``odd_next``: the chance that a step's next_obs is not the next
    step's obs (a wrapper that changes observations between steps)."""
    g = np.random.default_rng(seed + 1)
    out = []
    for _ in range(T):
        obs, nxt, term, trunc = env.step()
        if odd_next:
            for i in np.nonzero(g.random(N) < odd_next)[0]:
                nxt[i] = g.integers(0, 2, nxt[i].shape).astype(nxt.dtype)
        out.append((torch.from_numpy(obs), torch.from_numpy(g.integers(0, 5, N)), torch.from_numpy(g.standard_normal(N)
                    .astype(np.float32)), torch.from_numpy(term), torch.from_numpy(trunc), torch.from_numpy(nxt)))
    return out


def buffers(rows, N, k, n_step, hw=(3, 3), dtype=torch.uint8):
    kw = dict(act_dtype=torch.long, n_step=n_step, gamma=0.9, obs_dtype=dtype)
    return (ReplayBuffer(rows * N, N, (k,) + hw, (), **kw),
            ReplayBuffer(rows * N, N, (k,) + hw, (), frame_stack=k, **kw))


def all_valid(buf):
    """Every (row, env) the buffer may sample."""
    n = buf.valid_rows()
    rows = (buf._oldest() + torch.arange(n)).repeat_interleave(buf.N) % buf.rows
    return rows, torch.arange(buf.N).repeat(n)


def assert_same(plain, dedup):
    rows, envs = all_valid(dedup)
    assert rows.numel() > 0
    a, b = plain.gather(rows, envs), dedup.gather(rows, envs)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("T", [25, 137], ids=["before-wrap", "after-wrap"])
@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize("N", [1, 3])
def test_gather_equals_plain_buffer(N, n_step, T):
    k, rows = 4, 40
    plain, dedup = buffers(rows, N, k, n_step)
    for i, s in enumerate(steps(FakeStacks(N, k, seed=N + n_step), T, N)):
        plain.add(*s)
        dedup.add(*s)
        if i in (3, 17, 61, 100):  # stacks that straddle the first rows, and the wrap
            assert_same(plain, dedup)
    assert_same(plain, dedup)
    assert dedup.full == (T > rows) and dedup.pos == plain.pos
    assert len(dedup) == (rows - n_step - (k - 1) if T > rows else T - n_step) * N
    # what sample_index draws is a subset of what the plain buffer may draw, and gathers the same
    torch.manual_seed(0)
    r, e = dedup.sample_index(500)
    ok = set(zip(*all_valid(dedup)))
    assert {(a, b) for a, b in zip(r.tolist(), e.tolist())} <= {(a.item(), b.item()) for a, b in ok}
    a, b = plain.gather(r, e), dedup.gather(r, e)
    assert all(torch.equal(a[name], b[name]) for name in a)


@pytest.mark.parametrize("case", ["zero-padding", "mid-episode-start", "odd-next-obs", "not-stacked", "bool-2x2"])
def test_irregular_stacks_are_kept_exactly(case):
    """Whatever the env does (other padding, a buffer that starts mid-episode, next_obs that is not the next obs,
    observations that are no frame stack at all, frames that repeat by chance), gather returns what was added."""
    N, k, n_step, rows, T = 3, 4, 3, 30, 80
    hw, dtype, levels = (3, 3), np.uint8, 256
    if case == "bool-2x2":
        hw, dtype, levels = (2, 2), np.bool_, 2
    env = FakeStacks(N, k, hw, pad="zeros" if case == "zero-padding" else "reset", levels=levels, dtype=dtype)
    if case == "mid-episode-start":
        env.p_end = 0.05
        env.step(), env.step()
    data = steps(env, T, N, odd_next=0.2 if case == "odd-next-obs" else 0.0)
    if case == "not-stacked":
        g = torch.Generator().manual_seed(0)
        noise = lambda: torch.randint(0, 256, (N, k) + hw, generator=g, dtype=torch.uint8)  # noqa: E731
        data = [(noise(),) + s[1:5] + (noise(),) for s in data]
    plain, dedup = buffers(rows, N, k, n_step, hw, torch.bool if dtype is np.bool_ else torch.uint8)
    for i, s in enumerate(data):
        plain.add(*s)
        dedup.add(*s)
        if i in (5, 29, 33, 51):
            assert_same(plain, dedup)
    assert_same(plain, dedup)


def test_atari_frame_stack_wrapper_needs_no_side_stacks():
    """pgrad's Atari FrameStack pads a reset stack with its frame, which is what gather rebuilds: over episodes
    that end by termination and truncation, no stack is kept on the side, only one final frame per episode end."""
    gym = pytest.importorskip("gymnasium")
    from pgrad.envs.atari import FrameStack

    class Frames(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (5, 5), np.uint8)
        action_space = gym.spaces.Discrete(2)

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            return self.np_random.integers(0, 256, (5, 5), dtype=np.uint8), {}

        def step(self, action):
            u = self.np_random.random()
            return self.np_random.integers(0, 256, (5, 5), dtype=np.uint8), 1.0, u < 0.05, 0.05 <= u < 0.1, {}

    N, k, rows = 2, 4, 60
    envs = [FrameStack(Frames(), k) for _ in range(N)]
    obs = np.stack([e.reset(seed=i)[0] for i, e in enumerate(envs)])
    plain, dedup = buffers(rows, N, k, 3, (5, 5))
    ends = 0
    for t in range(150):
        nxt, term, trunc = np.empty_like(obs), np.zeros(N, bool), np.zeros(N, bool)
        new = np.empty_like(obs)
        for i, e in enumerate(envs):
            nxt[i], _, term[i], trunc[i], _ = e.step(0)
            new[i] = e.reset()[0] if term[i] or trunc[i] else nxt[i]
        s = (torch.from_numpy(obs), torch.zeros(N, dtype=torch.long), torch.ones(N), torch.from_numpy(term),
             torch.from_numpy(trunc), torch.from_numpy(nxt))
        plain.add(*s)
        dedup.add(*s)
        ends += int((term | trunc).sum())
        obs = new
    assert_same(plain, dedup)
    assert ends > 5 and dedup._stacks.used == 0 and 0 < dedup._finals.used <= ends


def test_state_dict_roundtrip_is_exact():
    """A checkpoint (through torch.save) restores a buffer that gathers and samples exactly as the original, and
    goes on doing so as both are filled further (past the wrap, where side entries are freed and reused)."""
    N, k, n_step, rows = 2, 4, 3, 30
    data = steps(FakeStacks(N, k, pad="zeros", seed=5), 100, N, odd_next=0.05)
    plain, dedup = buffers(rows, N, k, n_step)
    for s in data[:45]:
        plain.add(*s)
        dedup.add(*s)
    f = io.BytesIO()
    torch.save(dedup.state_dict(), f)
    f.seek(0)
    _, loaded = buffers(rows, N, k, n_step)
    loaded.load_state_dict(torch.load(f, weights_only=False))
    for s in data[45:]:
        for b in (plain, dedup, loaded):
            b.add(*s)
    assert_same(plain, loaded)
    assert all(torch.equal(loaded.side[n], dedup.side[n]) for n in dedup.side)
    torch.manual_seed(3)
    a = dedup.sample(64)
    torch.manual_seed(3)
    b = loaded.sample(64)
    assert all(torch.equal(a[n], b[n]) for n in a)
    with pytest.raises(ValueError, match="frame_stack"):
        plain.load_state_dict(dedup.state_dict())


def test_extend_and_storage():
    """extend() writes T steps as T adds; storage is one frame per row, no obs or next_obs field."""
    N, k = 3, 4
    data = steps(FakeStacks(N, k, seed=2), 30, N)
    _, a = buffers(20, N, k, 1)
    _, b = buffers(20, N, k, 1)
    for s in data:
        a.add(*s)
    extend(b, *(torch.stack([s[j] for s in data]) for j in range(6)))
    assert all(torch.equal(a.fields[n], b.fields[n]) for n in a.fields)
    assert all(torch.equal(a.side[n], b.side[n]) for n in a.side)
    assert a.fields["frames"].shape == (20, N, 3, 3) and "obs" not in a.fields and "next_obs" not in a.fields
    with pytest.raises(ValueError, match="frame_stack=4 needs observations"):
        ReplayBuffer(100, 1, (3, 84, 84), (), frame_stack=4)


def test_replay_bytes_is_what_is_allocated_and_atari_fits_1m_in_8gb():
    for k in (0, 4):
        buf = ReplayBuffer(1000, 4, (4, 84, 84), (), torch.long, obs_dtype=torch.uint8, frame_stack=k,
                           extra={"logp": ((), torch.float32)})
        held = sum(t.nbytes for t in buf.fields.values()) + sum(t.nbytes for t in getattr(buf, "side", {}).values())
        assert replay_bytes(1000, 4, (4, 84, 84), torch.uint8, k, (), torch.long,
                            extra={"logp": ((), torch.float32)}) == held
    per = replay_bytes(10_000, 1, (4, 84, 84), torch.uint8, 4, (), torch.long) / 10_000
    assert per < 7_100 and per * 1_000_000 < 8e9


def test_preflight_refuses_what_does_not_fit(monkeypatch):
    monkeypatch.setattr(replay_mod, "available_memory", lambda: 2**30)
    with pytest.raises(ConfigError, match=r"needs 5\.26 GiB \(100,000 transitions x 56,462 B\) but 1\.00 GiB .*"
                                          r"lower buffer_size or store stacked frames once \(frame_stack=k\)"):
        ReplayBuffer(100_000, 1, (4, 84, 84), (), torch.long, obs_dtype=torch.uint8)
    ReplayBuffer(100_000, 1, (4, 84, 84), (), torch.long, obs_dtype=torch.uint8, frame_stack=4)  # 0.66 GiB
    with pytest.raises(ConfigError, match=r"lower buffer_size$"):
        ReplayBuffer(200_000, 1, (4, 84, 84), (), torch.long, obs_dtype=torch.uint8, frame_stack=4)
