"""core.natural: the Fisher-vector product against the explicit Fisher of a tiny network, CG against a direct
solve, and the line search's acceptance rule."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from pgrad.core.distributions import Categorical, DiagGaussian
from pgrad.core.natural import (
    backtracking_line_search,
    conjugate_gradient,
    fisher_vector_product,
    flat_grad,
    flat_params,
    natural_step_size,
    set_flat_params_,
)


def tiny_net(in_dim=3, out_dim=4, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(in_dim, 5), nn.Tanh(), nn.Linear(5, out_dim)).double()


def explicit_categorical_fisher(net, obs):
    """F = (1/B) Σ_s Σ_a π(a|s) ∇ ln π(a|s) ∇ ln π(a|s)ᵀ, one gradient per (s, a)."""
    params = list(net.parameters())
    P = sum(p.numel() for p in params)
    F = torch.zeros(P, P, dtype=torch.float64)
    for s in obs:
        logp = torch.log_softmax(net(s), -1)
        for a in range(logp.shape[0]):
            g = flat_grad(logp[a], params, retain_graph=True)
            F += logp[a].exp().detach() * torch.outer(g, g)
    return F / obs.shape[0]


def test_fvp_equals_explicit_fisher_categorical():
    net = tiny_net()
    obs = torch.randn(7, 3, dtype=torch.float64)
    params = list(net.parameters())
    with torch.no_grad():
        old = Categorical(net(obs))
    kl = old.kl(Categorical(net(obs))).mean()  # D_KL(π_old || π_θ) at θ = θ_old
    damping = 0.1
    fvp = fisher_vector_product(kl, params, damping)
    F = explicit_categorical_fisher(net, obs)
    P = F.shape[0]
    for seed in range(3):
        v = torch.randn(P, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        assert torch.allclose(fvp(v), F @ v + damping * v, atol=1e-10)
    # and the whole matrix, column by column
    cols = torch.stack([fvp(e) - damping * e for e in torch.eye(P, dtype=torch.float64)], 1)
    assert torch.allclose(cols, F, atol=1e-10)


def test_fvp_equals_explicit_fisher_gaussian():
    torch.manual_seed(1)
    mean_net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    log_std = nn.Parameter(torch.tensor([0.3, -0.5], dtype=torch.float64))
    params = list(mean_net.parameters()) + [log_std]
    obs = torch.randn(6, 3, dtype=torch.float64)
    with torch.no_grad():
        old = DiagGaussian(mean_net(obs), log_std.clone())
    kl = old.kl(DiagGaussian(mean_net(obs), log_std)).mean()
    fvp = fisher_vector_product(kl, params)
    # Fisher of N(μ, diag σ²) in (μ, ln σ) is diag(1/σ², 2): F = (1/B) Σ_s J_sᵀ diag(1/σ², 2) J_s
    P = sum(p.numel() for p in params)
    F = torch.zeros(P, P, dtype=torch.float64)
    inv_var = (-2 * log_std.detach()).exp()
    for s in obs:
        mu = mean_net(s)
        J = torch.stack([flat_grad(mu[i], params, retain_graph=True) for i in range(2)]
                        + [flat_grad(log_std[i], params, retain_graph=True) for i in range(2)])
        M = torch.diag(torch.cat([inv_var, torch.full((2,), 2.0, dtype=torch.float64)]))
        F += J.T @ M @ J
    F /= obs.shape[0]
    cols = torch.stack([fvp(e) for e in torch.eye(P, dtype=torch.float64)], 1)
    assert torch.allclose(cols, F, atol=1e-10)


def test_conjugate_gradient_matches_direct_solve():
    g = torch.Generator().manual_seed(0)
    n = 12
    M = torch.randn(n, n, generator=g, dtype=torch.float64)
    A = M @ M.T + 0.5 * torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: A @ v, b, iters=n, residual_tol=0.0)
    assert torch.allclose(x, torch.linalg.solve(A, b), atol=1e-8)
    # fewer iterations: the A-norm error of CG decreases monotonically
    exact = torch.linalg.solve(A, b)
    errs = []
    for k in range(1, n + 1):
        e = conjugate_gradient(lambda v: A @ v, b, iters=k, residual_tol=0.0) - exact
        errs.append(float(e @ A @ e))
    assert all(a >= b_ - 1e-9 for a, b_ in itertools.pairwise(errs))


def test_conjugate_gradient_with_fisher_products_solves_damped_system():
    net = tiny_net(seed=2)
    obs = torch.randn(9, 3, dtype=torch.float64)
    params = list(net.parameters())
    with torch.no_grad():
        old = Categorical(net(obs))
    kl = old.kl(Categorical(net(obs))).mean()
    fvp = fisher_vector_product(kl, params, damping=0.05)
    F = explicit_categorical_fisher(net, obs) + 0.05 * torch.eye(sum(p.numel() for p in params), dtype=torch.float64)
    b = torch.randn(F.shape[0], generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = conjugate_gradient(fvp, b, iters=200, residual_tol=1e-24)
    assert torch.allclose(x, torch.linalg.solve(F, b), atol=1e-6)
    beta = natural_step_size(x, fvp(x), 0.01)
    assert torch.isclose(0.5 * beta**2 * x.dot(F @ x), torch.tensor(0.01, dtype=torch.float64))


def test_flat_params_roundtrip():
    net = tiny_net()
    params = list(net.parameters())
    v = flat_params(params)
    set_flat_params_(params, v * 2)
    assert torch.allclose(flat_params(params), 2 * v)


def test_line_search_accepts_first_step_with_improvement_and_small_kl():
    # θ ∈ R²; surrogate J(θ) = θ_0 (improves along +x); "KL" = ½‖θ - θ_old‖² ≤ δ
    theta = nn.Parameter(torch.zeros(2, dtype=torch.float64))

    def evaluate():
        return theta[0].clone(), 0.5 * theta.pow(2).sum()

    step = torch.tensor([1.0, 0.0], dtype=torch.float64)  # KL(full) = 0.5 > δ
    ok, tries, surr, kl = backtracking_line_search([theta], step, evaluate, torch.tensor(0.0), max_kl=0.1,
                                                   shrink=0.5, max_iter=10)
    # 0.5^i with ½ (0.5^i)² ≤ 0.1  ->  i = 2 (0.25: KL = 0.03125); i = 1 gives KL 0.125
    assert ok and tries == 2 + 1
    assert torch.allclose(theta.detach(), torch.tensor([0.25, 0.0], dtype=torch.float64))
    assert float(kl) <= 0.1 and float(surr) > 0


def test_line_search_rejects_steps_that_do_not_improve_and_restores():
    theta = nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    start = theta.detach().clone()

    def evaluate():
        return theta[0].clone(), 0.5 * (theta - start).pow(2).sum()

    step = torch.tensor([-1.0, 0.0], dtype=torch.float64)  # within the KL but the surrogate gets worse
    ok, tries, _, kl = backtracking_line_search([theta], step, evaluate, torch.tensor(1.0, dtype=torch.float64),
                                                   max_kl=10.0, max_iter=5)
    assert not ok and tries == 5 and float(kl) == 0.0
    assert torch.equal(theta.detach(), start)
