"""data.replay: the sum tree and proportional prioritised replay against brute force; batched writes; memory."""

from __future__ import annotations

import numpy as np
import torch

from pgrad.data.replay import PrioritizedReplayBuffer, ReplayBuffer, SumTree, extend


def test_sum_tree_sums_and_find_match_cumsum_search():
    rng = np.random.default_rng(0)
    tree = SumTree(37)  # not a power of two: padded leaves stay 0
    p = rng.random(37) * (rng.random(37) < 0.8)  # some zero leaves
    for _ in range(3):  # repeated overwrites, with duplicate indices in one call
        idx = rng.integers(0, 37, 60)
        tree.set(idx, p[idx])
    tree.set(np.arange(37), p)
    assert abs(tree.total - p.sum()) < 1e-12
    cum = np.cumsum(p)
    u = rng.random(5000) * p.sum()
    got = tree.find(u)
    want = np.searchsorted(cum, u, side="right")
    assert np.array_equal(got, want)
    assert (p[got] > 0).all()


def test_sum_tree_sampling_frequencies_match_priorities():
    """Empirical frequencies of 400k stratified draws vs P(i) = p_i / Σ p: every leaf within 5 binomial
    standard errors (stratification only lowers the variance, so the bound is conservative)."""
    rng = np.random.default_rng(1)
    n = 50
    p = rng.random(n) ** 2
    p[[3, 17]] = 0.0
    tree = SumTree(n)
    tree.set(np.arange(n), p)
    g = torch.Generator().manual_seed(0)
    draws = 400_000
    counts = np.zeros(n)
    for _ in range(draws // 1000):
        counts += np.bincount(tree.sample(1000, g), minlength=n)
    P = p / p.sum()
    se = np.sqrt(np.maximum(P * (1 - P), 1e-300) / draws)
    assert counts[3] == 0 and counts[17] == 0
    z = np.abs(counts / draws - P)[P > 0] / se[P > 0]
    assert z.max() < 5.0, z.max()


def fill(buf, T, N, seed=0, obs_dim=3):
    g = torch.Generator().manual_seed(seed)
    steps = []
    for _ in range(T):
        obs = torch.randn(N, obs_dim, generator=g)
        act = torch.randn(N, 2, generator=g)
        rew = torch.randn(N, generator=g)
        u = torch.rand(N, generator=g)
        term, trunc = u < 0.1, (u >= 0.1) & (u < 0.2)
        nxt = torch.randn(N, obs_dim, generator=g)
        buf.add(obs, act, rew, term, trunc, nxt)
        steps.append((obs, act, rew, term, trunc, nxt))
    return steps


def test_prioritized_samples_only_complete_windows_and_follows_priorities():
    n, N = 3, 2
    buf = PrioritizedReplayBuffer(40, N, (3,), (2,), n_step=n, gamma=0.9, alpha=1.0)
    fill(buf, 7, N)  # not full: rows 0..4 complete, rows 5, 6 not
    torch.manual_seed(0)
    b = buf.sample(2000, beta=0.4)
    assert set(b["rows"].tolist()) <= set(range(5))
    assert torch.allclose(b["weights"], torch.ones(2000))  # equal priorities: w = 1
    fill(buf, 50, N, seed=3)  # wraps: pos = 57 % 20
    newest = {(buf.pos - k) % buf.rows for k in range(1, n)}
    b = buf.sample(4000)
    assert not set(b["rows"].tolist()) & newest
    # one transition with priority 100x the others gets drawn with P = 100 / (M - 1 + 100)
    M = len(buf)
    idx = torch.arange(buf.rows * N)
    valid = buf.tree.leaves(idx.numpy()) > 0
    buf.update_priorities(idx[valid], torch.ones(int(valid.sum())))
    hot = int(idx[valid][5])
    buf.update_priorities(torch.tensor([hot]), torch.tensor([100.0]))
    b = buf.sample(20_000, beta=1.0)
    P_hot = 100 / (M - 1 + 100)
    freq = (b["index"] == hot).float().mean().item()
    assert abs(freq - P_hot) < 5 * np.sqrt(P_hot * (1 - P_hot) / 20_000)
    # importance weights (M P(i))^-β / max: the hot one gets 1/100 of the others
    w_hot = b["weights"][b["index"] == hot]
    w_cold = b["weights"][b["index"] != hot]
    assert torch.allclose(w_hot, torch.full_like(w_hot, 0.01), rtol=1e-4)
    assert torch.allclose(w_cold, torch.ones_like(w_cold), rtol=1e-4)
    # the n-step transitions gathered are the uniform buffer's for the same indices
    ref = ReplayBuffer.gather(buf, b["rows"], b["envs"])
    assert torch.equal(ref["rewards"], b["rewards"]) and torch.equal(ref["next_obs"], b["next_obs"])


def test_prioritized_state_roundtrip():
    buf = PrioritizedReplayBuffer(60, 2, (3,), (2,), n_step=2, alpha=0.7)
    fill(buf, 45, 2)
    b = buf.sample(32)
    buf.update_priorities(b["index"], torch.rand(32) * 5)
    buf2 = PrioritizedReplayBuffer(60, 2, (3,), (2,), n_step=2, alpha=0.7)
    buf2.load_state_dict(buf.state_dict())
    assert np.array_equal(buf.tree.nodes, buf2.tree.nodes) and buf2.max_priority == buf.max_priority
    torch.manual_seed(5)
    x = buf.sample(64)
    torch.manual_seed(5)
    y = buf2.sample(64)
    assert torch.equal(x["index"], y["index"]) and torch.equal(x["weights"], y["weights"])


def test_extend_equals_repeated_add():
    for cls in (ReplayBuffer, PrioritizedReplayBuffer):
        a = cls(30, 3, (3,), (2,), n_step=3)
        b = cls(30, 3, (3,), (2,), n_step=3)
        steps = fill(a, 23, 3, seed=4)  # wraps around a 10-row buffer
        for t0, t1 in [(0, 4), (4, 10), (10, 12), (12, 21), (21, 23)]:
            chunk = [torch.stack([s[j] for s in steps[t0:t1]]) for j in range(6)]
            extend(b, *chunk)
        assert a.pos == b.pos and a.full == b.full
        for k in a.fields:
            assert torch.equal(a.fields[k], b.fields[k]), k
        if cls is PrioritizedReplayBuffer:
            assert np.array_equal(a.tree.nodes, b.tree.nodes)


def test_one_million_halfcheetah_transitions_fit_in_200_mb():
    """1M transitions of HalfCheetah-v5 (obs 17, act 6, float32), with the priority tree: storage < 200 MB."""
    buf = PrioritizedReplayBuffer(1_000_000, 1, (17,), (6,))
    nbytes = sum(t.numel() * t.element_size() for t in buf.fields.values()) + buf.tree.nodes.nbytes
    assert nbytes < 200e6, nbytes / 1e6
