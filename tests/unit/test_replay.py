"""data.replay n-step transitions against a slow loop over the stored episodes."""

from __future__ import annotations

import os

import pytest
import torch

from pgrad.data.replay import ReplayBuffer


def fill(buf, T, N, seed=0):
    g = torch.Generator().manual_seed(seed)
    log = []
    for t in range(T):
        obs = torch.randn(N, 3, generator=g)
        act = torch.randn(N, 2, generator=g)
        rew = torch.randn(N, generator=g)
        u = torch.rand(N, generator=g)
        term, trunc = u < 0.1, (u >= 0.1) & (u < 0.2)
        nxt = torch.randn(N, 3, generator=g)
        buf.add(obs, act, rew, term, trunc, nxt)
        log.append((obs, act, rew, term, trunc, nxt))
    return log


def reference(log, t, i, n, gamma):
    ret, k = 0.0, 0
    while True:
        _, _, rew, term, trunc, nxt = log[t + k]
        ret += gamma ** k * rew[i].item()
        if term[i] or trunc[i] or k == n - 1:
            disc = 0.0 if term[i] else gamma ** (k + 1)
            return ret, nxt[i], disc
        k += 1


def test_nstep_transitions_match_loop():
    n, gamma, N, T = 3, 0.9, 4, 40
    buf = ReplayBuffer(1000, N, (3,), (2,), n_step=n, gamma=gamma)
    log = fill(buf, T, N)
    rows = torch.arange(T - n + 1).repeat_interleave(N)
    envs = torch.arange(N).repeat(T - n + 1)
    out = buf.gather(rows, envs)
    for j in range(len(rows)):
        t, i = rows[j].item(), envs[j].item()
        ret, nxt, disc = reference(log, t, i, n, gamma)
        assert abs(out["rewards"][j].item() - ret) < 1e-5
        assert torch.allclose(out["next_obs"][j], nxt)
        assert abs(out["discount"][j].item() - disc) < 1e-6
        assert torch.equal(out["obs"][j], log[t][0][i])


def test_wraparound_only_samples_complete_windows():
    n, N = 4, 2
    buf = ReplayBuffer(40, N, (3,), (2,), n_step=n, gamma=0.99)
    fill(buf, 57, N, seed=1)
    assert buf.full and len(buf) == (20 - (n - 1)) * N
    torch.manual_seed(0)
    rows, _ = buf.sample_index(5000)
    # the newest n-1 rows (just before pos) are never sampled
    newest = {(buf.pos - k) % buf.rows for k in range(1, n)}
    assert not set(rows.tolist()) & newest


def test_one_step_and_state_roundtrip():
    buf = ReplayBuffer(100, 2, (3,), (2,), n_step=1, gamma=0.5)
    log = fill(buf, 10, 2, seed=2)
    out = buf.gather(torch.tensor([4]), torch.tensor([1]))
    _, _, rew, term, trunc, nxt = log[4]
    assert abs(out["rewards"][0].item() - rew[1].item()) < 1e-6
    assert abs(out["discount"][0].item() - (0.0 if term[1] else 0.5)) < 1e-6
    buf2 = ReplayBuffer(100, 2, (3,), (2,), n_step=1, gamma=0.5)
    buf2.load_state_dict(buf.state_dict())
    assert buf2.pos == buf.pos and torch.equal(buf2.fields["obs"], buf.fields["obs"])


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmRSS from /proc")
def test_large_buffer_is_resident_only_as_it_fills():
    """A 1M-transition HalfCheetah-sized buffer (~160 MiB of zeros) maps its pages as rows are written."""
    from pgrad.bench import rss_mib

    before = rss_mib()
    buf = ReplayBuffer(1_000_000, 1, (17,), (6,))
    assert rss_mib() - before < 40
    assert float(buf.fields["obs"][::997].abs().sum()) == 0.0 and buf.fields["obs"].dtype == torch.float32
    assert buf.fields["terminated"].dtype == torch.bool and not bool(buf.fields["terminated"].any())


@pytest.mark.parametrize("N,T", [(1, 30), (1, 130), (3, 30), (3, 130)])
def test_sampled_indices_and_rows_are_the_oldest_first_uniform_draw(N, T):
    """sample_index maps one randint draw k onto (row, env) = ((oldest + k // N) % rows, k % N), on its N = 1
    fast path too, and gather returns exactly those stored rows."""
    buf = ReplayBuffer(100 * N, N, (3,), (2,), gamma=0.9)
    fill(buf, T, N)
    start = buf.pos if buf.full else 0
    torch.manual_seed(4)
    rows, envs = buf.sample_index(256)
    torch.manual_seed(4)
    k = torch.randint(0, buf.valid_rows() * N, (256,))
    assert torch.equal(rows, (start + k // N) % buf.rows) and torch.equal(envs, k % N)
    out = buf.gather(rows, envs)
    for name in ("obs", "actions", "rewards", "terminated", "next_obs"):
        assert torch.equal(out[name], buf.fields[name][rows, envs])
    assert torch.equal(out["discount"], 0.9 * (~buf.fields["terminated"][rows, envs]).float())


def test_state_dict_copies_a_partial_buffer_and_shares_a_full_one():
    """A checkpoint of a full buffer is its live tensors (torch.save writes them as they are: no second copy of a
    large replay in RAM); of a partly filled one, a copy of the filled rows (a view would save all of them)."""
    buf = ReplayBuffer(20, 2, (3,), (2,))
    fill(buf, 4, 2)
    d = buf.state_dict()
    assert d["fields"]["obs"].shape[0] == 4 and d["fields"]["obs"].data_ptr() != buf.fields["obs"].data_ptr()
    fill(buf, 10, 2, seed=1)
    d = buf.state_dict()
    assert buf.full and all(d["fields"][k] is v for k, v in buf.fields.items())
    buf2 = ReplayBuffer(20, 2, (3,), (2,))
    buf2.load_state_dict(d)
    assert all(torch.equal(buf2.fields[k], v) for k, v in buf.fields.items())


def test_replay_bytes_of_a_plain_buffer_and_prioritised_uint8():
    from pgrad.data.replay import PrioritizedReplayBuffer, replay_bytes

    buf = ReplayBuffer(300, 3, (17,), (6,), extra={"logp": ((), torch.float32)})
    assert replay_bytes(300, 3, (17,), torch.float32, 0, (6,), extra={"logp": ((), torch.float32)}) == sum(
        t.nbytes for t in buf.fields.values())
    per = PrioritizedReplayBuffer(300, 3, (4, 8, 8), (), torch.long, obs_dtype=torch.uint8)
    assert per.fields["obs"].dtype == torch.uint8 and per.fields["next_obs"].dtype == torch.uint8
