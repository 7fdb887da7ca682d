"""ACER's policy gradient estimator on an exact tabular MDP (post: ACER, "Importance weights truncation").

Data: s ~ d̄^β (the normalised discounted visitation of a behaviour policy β far from π), a ~ β(.|s), then a
β-trajectory of H steps from (s, a) cut by a time limit, and Q^ret(s, a) from ``core.returns.retrace`` with the
exact Q^π, V^π as the critic (bootstrapping V^π at the time limit). Per sample, ACER's gradient through
``core.losses.acer_policy_loss``:

    ĝ = min(c, ω) (Q^ret - V) ∇ ln π(a|s) + E_{a'~π}[max(0, 1 - c/ω(a')) (Q(s, a') - V) ∇ ln π(a'|s)]

averages to the post's off-policy gradient Σ_s d̄^β(s) Σ_a ∇π(a|s) Q^π(s, a) (TabularMDP.off_policy_grad), as does
plain importance weighting ω (Q^ret - V) ∇ ln π, but with a smaller variance; dropping the correction term
(truncation alone) is biased: the negative control showing the test can see a bias.
"""

from __future__ import annotations

import math

import torch

from pgrad.core.losses import acer_policy_loss, off_policy_pg_loss
from pgrad.core.returns import retrace
from pgrad.theory.estimators import compare, variance_reduction
from pgrad.theory.tabular import DT, TabularMDP, softmax_policy

M = 100_000  # samples
H = 6  # β-steps per sample before the time limit


def setup(seed=0):
    mdp = TabularMDP(n_states=6, n_actions=3, gamma=0.9, seed=seed)
    g = torch.Generator().manual_seed(seed)
    theta = mdp.random_theta(g, scale=1.5)
    pi = softmax_policy(theta)
    # a behaviour policy that prefers what π avoids: importance weights up to ~ 20, heavy tailed
    beta = 0.9 * softmax_policy(-theta) + 0.1 / mdp.A
    return mdp, theta, pi, beta, g


def sample_q_ret(mdp, pi, beta, g, c_retrace=1.0):
    """(s_0, a_0, Q^ret_0) for M β-trajectories of H steps from s_0 ~ d̄^β, through core.returns.retrace."""
    q, v = mdp.q(pi), mdp.v(pi)
    ext = torch.cat([mdp.P, mdp.term.unsqueeze(-1)], -1)  # next state, or S = terminate
    S = mdp.S
    s = torch.multinomial(mdp.visitation(beta, normalize=True), M, replacement=True, generator=g)
    cols = {k: [] for k in ("s", "a", "r", "term", "s2")}
    alive = torch.ones(M, dtype=torch.bool)
    for _ in range(H):
        a = torch.multinomial(beta[s], 1, generator=g).squeeze(1)
        s2 = torch.multinomial(ext[s, a], 1, generator=g).squeeze(1)
        term = (s2 == S) & alive
        for k, x in zip(cols, (s, a, mdp.R[s, a] * alive, term, s2.clamp(max=S - 1))):
            cols[k].append(x)
        alive = alive & ~term
        s = s2.clamp(max=S - 1)
    st = {k: torch.stack(v_) for k, v_ in cols.items()}
    trunc = torch.zeros_like(st["term"])
    trunc[-1] = alive  # the time limit: Q^ret bootstraps V^π of the true last state
    c_bar = (pi[st["s"], st["a"]] / beta[st["s"], st["a"]]).clamp(max=c_retrace)
    q_ret = retrace(st["r"], q[st["s"], st["a"]], v[st["s2"]], c_bar, st["term"], trunc, mdp.gamma)
    return st["s"][0], st["a"][0], q_ret[0], q, v


def per_sample(theta, s, rows):
    """Scatter per-sample gradients w.r.t. the sample's own logits [M, A] into [M, S, A]."""
    out = torch.zeros(M, *theta.shape, dtype=DT)
    out[torch.arange(M), s] = rows
    return out


def acer_samples(theta, beta, s, a, q_ret, q, v, c):
    u = theta.detach()[s].clone().requires_grad_()
    loss, _ = acer_policy_loss(torch.log_softmax(u, -1), a, beta[s], q_ret, q[s], v[s], c)
    (grad,) = torch.autograd.grad(loss, u)
    return per_sample(theta, s, -grad * M)


def truncated_only_samples(theta, beta, s, a, q_ret, v, c):
    u = theta.detach()[s].clone().requires_grad_()
    logp = torch.log_softmax(u, -1)[torch.arange(M), a]
    loss = off_policy_pg_loss(logp, beta[s, a].log(), q_ret - v[s], rho_max=c)
    (grad,) = torch.autograd.grad(loss, u)
    return per_sample(theta, s, -grad * M)


def test_retrace_target_is_unbiased_for_q_pi_with_time_limits():
    mdp, _, pi, beta, g = setup()
    s, a, q_ret, q, _ = sample_q_ret(mdp, pi, beta, g)
    # E[Q^ret | s, a] = Q^π(s, a) when the critic is exact, whatever the truncation of the traces
    res = compare("q_ret - Q^pi", (q_ret - q[s, a]).unsqueeze(1), torch.zeros(1))
    res.assert_unbiased(4.0)


def test_acer_truncation_with_bias_correction_is_unbiased_and_lowers_variance():
    mdp, theta, pi, beta, g = setup()
    exact = mdp.off_policy_grad(theta, beta)
    s, a, q_ret, q, v = sample_q_ret(mdp, pi, beta, g)
    omega = pi[s, a] / beta[s, a]
    assert float(omega.max()) > 10.0  # the setting is one where truncation at c matters
    c = 1.0
    acer = compare("acer c=1", acer_samples(theta, beta, s, a, q_ret, q, v, c), exact)
    plain = compare("importance weights", acer_samples(theta, beta, s, a, q_ret, q, v, math.inf), exact)
    trunc = compare("truncated, no correction", truncated_only_samples(theta, beta, s, a, q_ret, v, c), exact)
    print(acer, plain, trunc, sep="\n")
    acer.assert_unbiased(4.0)
    plain.assert_unbiased(4.0)
    assert trunc.max_z > 10.0  # the correction term is what removes the bias of truncation
    assert acer.total_var < 0.5 * plain.total_var
    # paired over the same samples: tr Cov(plain) - tr Cov(acer) is positive beyond doubt
    diff, se = variance_reduction(acer_samples(theta, beta, s, a, q_ret, q, v, math.inf),
                                  acer_samples(theta, beta, s, a, q_ret, q, v, c))
    assert diff > 5 * se


def test_acer_with_large_c_equals_importance_weighting_where_weights_are_small():
    mdp, theta, pi, beta, g = setup(seed=1)
    s, a, q_ret, q, v = sample_q_ret(mdp, pi, beta, g)
    c = float((pi / beta).max()) + 1.0  # no weight reaches c: no truncation, no correction
    assert torch.allclose(acer_samples(theta, beta, s, a, q_ret, q, v, c),
                          acer_samples(theta, beta, s, a, q_ret, q, v, math.inf))
