"""core.returns against slow loops written directly from the equations, time limits included."""

from __future__ import annotations

import torch

from pgrad.core.returns import bootstrapped_returns, discounted_returns, gae, lambda_returns, td_error


def random_episode_data(T=23, N=4, seed=0, p_term=0.08, p_trunc=0.06):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(T, N, generator=g)
    v = torch.randn(T, N, generator=g)
    v_next = torch.randn(T, N, generator=g)
    u = torch.rand(T, N, generator=g)
    terminated = u < p_term
    truncated = (u >= p_term) & (u < p_term + p_trunc)
    # where no episode ended, V(s_{t+1}) is the next row's V(s_t): keep the data consistent
    for t in range(T - 1):
        same = ~(terminated[t] | truncated[t])
        v_next[t][same] = v[t + 1][same]
    return r, v, v_next, terminated, truncated


def ref_segments(terminated, truncated, i):
    """Episode segments [start, end] (inclusive) of env i within the rollout."""
    T = terminated.shape[0]
    segs, start = [], 0
    for t in range(T):
        if terminated[t, i] or truncated[t, i] or t == T - 1:
            segs.append((start, t))
            start = t + 1
    return segs


def test_discounted_returns_matches_sum_over_episode():
    r, _, _, term, trunc = random_episode_data()
    done = term | trunc
    gamma = 0.97
    G = discounted_returns(r, done, gamma)
    T, N = r.shape
    for i in range(N):
        for s, e in ref_segments(term, trunc, i):
            for t in range(s, e + 1):
                ref = sum(gamma ** (k - t) * r[k, i].item() for k in range(t, e + 1))
                assert abs(G[t, i].item() - ref) < 1e-4


def test_gae_is_discounted_sum_of_td_errors_within_episode():
    r, v, v_next, term, trunc = random_episode_data(seed=1)
    gamma, lam = 0.99, 0.9
    adv, target = gae(r, v, v_next, term, trunc, gamma, lam)
    T, N = r.shape
    for i in range(N):
        for s, e in ref_segments(term, trunc, i):
            for t in range(s, e + 1):
                ref = 0.0
                for k in range(t, e + 1):
                    boot = 0.0 if term[k, i] else v_next[k, i].item()  # truncation bootstraps V(final obs)
                    delta = r[k, i].item() + gamma * boot - v[k, i].item()
                    ref += (gamma * lam) ** (k - t) * delta
                assert abs(adv[t, i].item() - ref) < 1e-4, (t, i)
    assert torch.allclose(target, adv + v)


def test_bootstrapped_returns_follow_a3c_loop():
    r, v, v_next, term, trunc = random_episode_data(seed=2)
    gamma = 0.95
    R = bootstrapped_returns(r, v_next, term, trunc, gamma)
    T, N = r.shape
    for i in range(N):
        for s, e in ref_segments(term, trunc, i):
            # R = 0 if the segment ends in a terminal state, else V of the state after it
            acc = 0.0 if term[e, i] else v_next[e, i].item()
            for t in range(e, s - 1, -1):
                acc = r[t, i].item() + gamma * acc
                assert abs(R[t, i].item() - acc) < 1e-4


def test_gae_limits_lambda_one_and_zero():
    r, v, v_next, term, trunc = random_episode_data(seed=3)
    gamma = 0.9
    _, target1 = gae(r, v, v_next, term, trunc, gamma, 1.0)
    assert torch.allclose(target1, bootstrapped_returns(r, v_next, term, trunc, gamma), atol=1e-5)
    adv0, _ = gae(r, v, v_next, term, trunc, gamma, 0.0)
    assert torch.allclose(adv0, td_error(r, v, v_next, term, gamma), atol=1e-6)


def test_lambda_returns_equal_gae_targets():
    r, v, v_next, term, trunc = random_episode_data(seed=4)
    _, target = gae(r, v, v_next, term, trunc, 0.99, 0.8)
    assert torch.allclose(lambda_returns(r, v_next, term, trunc, 0.99, 0.8), target, atol=1e-5)


def test_truncation_bootstraps_and_termination_does_not():
    # one env, 2 steps each ending an episode: first by termination, then by truncation
    r = torch.tensor([[1.0], [1.0]])
    v = torch.zeros(2, 1)
    v_next = torch.tensor([[100.0], [100.0]])
    term = torch.tensor([[True], [False]])
    trunc = torch.tensor([[False], [True]])
    adv, _ = gae(r, v, v_next, term, trunc, 0.5, 0.95)
    assert adv[0, 0].item() == 1.0  # no bootstrap through termination
    assert adv[1, 0].item() == 1.0 + 0.5 * 100.0  # bootstrap V(final obs) at truncation
