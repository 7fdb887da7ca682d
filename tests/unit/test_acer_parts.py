"""ACER's pure parts against slow references written from the equations: Retrace Q^ret (time limits included),
the truncated importance weight + bias correction gradient, and the trust-region projection."""

from __future__ import annotations

import math

import torch

from pgrad.core.losses import acer_policy_loss, trust_region_projection
from pgrad.core.returns import retrace


def segment_data(T=17, N=5, seed=0, p_term=0.1, p_trunc=0.08):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(T, N, generator=g, dtype=torch.float64)
    q_a = torch.randn(T, N, generator=g, dtype=torch.float64)
    v = torch.randn(T, N, generator=g, dtype=torch.float64)
    v_next = torch.randn(T, N, generator=g, dtype=torch.float64)
    c_bar = torch.rand(T, N, generator=g, dtype=torch.float64) * 1.5
    u = torch.rand(T, N, generator=g, dtype=torch.float64)
    term = u < p_term
    trunc = (u >= p_term) & (u < p_term + p_trunc)
    for t in range(T - 1):  # V(s_{t+1}) is the next row's V where no episode ended
        same = ~(term[t] | trunc[t])
        v_next[t][same] = v[t + 1][same]
    return r, q_a, v, v_next, c_bar, term, trunc


def ref_retrace(r, q_a, v, v_next, c_bar, term, trunc, gamma):
    """The post's ΔQ^ret form: Q^ret_t = Q(s_t, a_t) + Σ_{k>=t} γ^{k-t} Π_{t<τ<=k} c̄_τ δ_k, within the episode and
    the segment; δ_k = r_k + γ V(s_{k+1}) - Q(s_k, a_k), V(s_{k+1}) = 0 at termination, V(final obs) at truncation."""
    T, N = r.shape
    out = torch.zeros(T, N, dtype=torch.float64)
    for i in range(N):
        for t in range(T):
            total, weight = 0.0, 1.0
            for k in range(t, T):
                if k > t:
                    weight *= gamma * c_bar[k, i].item()
                boot = 0.0 if term[k, i] else v_next[k, i].item()
                delta = r[k, i].item() + gamma * boot - q_a[k, i].item()
                total += weight * delta
                if term[k, i] or trunc[k, i]:
                    break
            out[t, i] = q_a[t, i].item() + total
    return out


def ref_retrace_recursive(r, q_a, v, v_next, c_bar, term, trunc, gamma):
    """The paper's recursion, one env and one step at a time: Q^ret_t = r_t + γ [c̄_{t+1} (Q^ret_{t+1} - Q_{t+1})
    + V(s_{t+1})], restarted from V(s_{t+1}) of the final observation where the episode or the segment ends."""
    T, N = r.shape
    out = torch.zeros(T, N, dtype=torch.float64)
    for i in range(N):
        nxt = 0.0
        for t in range(T - 1, -1, -1):
            if term[t, i]:
                nxt = 0.0
            elif trunc[t, i] or t == T - 1:
                nxt = v_next[t, i].item()
            else:
                nxt = c_bar[t + 1, i].item() * (out[t + 1, i].item() - q_a[t + 1, i].item()) + v[t + 1, i].item()
            out[t, i] = r[t, i].item() + gamma * nxt
    return out


def test_retrace_matches_the_sum_of_truncated_td_errors_and_the_recursion():
    for seed in range(3):
        r, q_a, v, v_next, c_bar, term, trunc = segment_data(seed=seed)
        for gamma in (0.99, 0.7):
            q_ret = retrace(r, q_a, v_next, c_bar, term, trunc, gamma)
            assert torch.allclose(q_ret, ref_retrace(r, q_a, v, v_next, c_bar, term, trunc, gamma), atol=1e-10)
            assert torch.allclose(q_ret, ref_retrace_recursive(r, q_a, v, v_next, c_bar, term, trunc, gamma),
                                  atol=1e-10)


def test_retrace_time_limits():
    # one env, three steps: terminated after step 0, truncated after step 1, segment ends after step 2
    r = torch.tensor([[1.0], [1.0], [1.0]], dtype=torch.float64)
    q_a = torch.zeros(3, 1, dtype=torch.float64)
    v_next = torch.tensor([[50.0], [100.0], [10.0]], dtype=torch.float64)
    c_bar = torch.ones(3, 1, dtype=torch.float64)
    term = torch.tensor([[True], [False], [False]])
    trunc = torch.tensor([[False], [True], [False]])
    q_ret = retrace(r, q_a, v_next, c_bar, term, trunc, 0.5)
    assert q_ret[0, 0] == 1.0  # no bootstrap through termination
    assert q_ret[1, 0] == 1.0 + 0.5 * 100.0  # bootstrap V of the true final observation at truncation
    assert q_ret[2, 0] == 1.0 + 0.5 * 10.0  # and at the segment end


def test_retrace_with_zero_traces_is_the_one_step_expected_sarsa_target():
    r, q_a, _, v_next, c_bar, term, trunc = segment_data(seed=5)
    q_ret = retrace(r, q_a, v_next, torch.zeros_like(c_bar), term, trunc, 0.9)  # c̄ = 0: r + γ V(s')
    assert torch.allclose(q_ret, r + 0.9 * (~term).double() * v_next)


def ref_acer_grad(logits, actions, beta, q_ret, q, v, c):
    """ĝ_i with respect to the logits u_i, written from the equation with ∇_u ln π(a) = e_a - π."""
    B, A = logits.shape
    out = torch.zeros(B, A, dtype=torch.float64)
    for i in range(B):
        pi = torch.softmax(logits[i], -1)
        a = int(actions[i])
        omega = pi[a] / beta[i, a]
        e = torch.zeros(A, dtype=torch.float64)
        e[a] = 1.0
        g = min(c, omega.item()) * (q_ret[i] - v[i]) * (e - pi)
        for b in range(A):
            omega_b = (pi[b] / beta[i, b]).item()
            eb = torch.zeros(A, dtype=torch.float64)
            eb[b] = 1.0
            g += pi[b] * max(0.0, (omega_b - c) / omega_b) * (q[i, b] - v[i]) * (eb - pi)
        out[i] = g
    return out


def test_acer_policy_loss_gradient_matches_the_equation():
    g = torch.Generator().manual_seed(0)
    B, A = 9, 4
    logits = (2 * torch.randn(B, A, generator=g, dtype=torch.float64)).requires_grad_()
    beta = torch.softmax(2 * torch.randn(B, A, generator=g, dtype=torch.float64), -1)
    actions = torch.multinomial(beta, 1, generator=g).squeeze(-1)
    q = torch.randn(B, A, generator=g, dtype=torch.float64)
    pi = torch.softmax(logits.detach(), -1)
    v = (pi * q).sum(-1)
    q_ret = torch.randn(B, generator=g, dtype=torch.float64)
    for c in (0.5, 1.0, 10.0, math.inf):
        loss, stats = acer_policy_loss(torch.log_softmax(logits, -1), actions, beta, q_ret, q, v, c)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.allclose(-grad * B, ref_acer_grad(logits.detach(), actions, beta, q_ret, q, v, c), atol=1e-10)
        assert 0.0 <= float(stats["truncated_frac"]) <= 1.0


def test_trust_region_projection_solves_the_constrained_problem():
    g = torch.Generator().manual_seed(1)
    B, D = 64, 5
    grad = torch.randn(B, D, generator=g, dtype=torch.float64)
    k = torch.randn(B, D, generator=g, dtype=torch.float64)
    k[0] = 0.0
    delta = 0.3
    z = trust_region_projection(grad, k, delta)
    kg = (k * grad).sum(-1)
    kz = (k * z).sum(-1)
    inactive = kg <= delta
    assert torch.allclose(z[inactive], grad[inactive])  # the constraint holds already: z = ĝ
    assert torch.allclose(kz[~inactive], torch.full_like(kz[~inactive], delta))  # else it binds
    assert (kz <= delta + 1e-12).all()
    # brute force: no feasible point (kᵀy <= δ) near z is closer to ĝ
    for i in range(B):
        y = z[i] + 0.5 * torch.randn(2000, D, generator=g, dtype=torch.float64)
        feasible = y @ k[i] <= delta
        d_best = (y[feasible] - grad[i]).norm(dim=-1).min()
        assert (z[i] - grad[i]).norm() <= d_best + 1e-12
