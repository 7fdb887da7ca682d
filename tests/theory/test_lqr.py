"""The LQR calculator is exact: cost, gradient, Riccati solution, Q-function and the env agree with each other."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import pgrad  # noqa: F401  registers pgrad/LQR-v0
from pgrad.theory import LQR

K_TEST = torch.tensor([[0.4, 0.2]], dtype=torch.float64)


@pytest.fixture(scope="module")
def lqr() -> LQR:
    return LQR(state_dim=2, action_dim=1, gamma=0.99, horizon=50, seed=0)


def test_closed_form_gradient_matches_autograd_and_finite_differences(lqr):
    K = K_TEST.clone().requires_grad_()
    lqr.cost(K).backward()
    exact = lqr.grad(K_TEST)
    torch.testing.assert_close(K.grad, exact, rtol=1e-9, atol=1e-12)
    eps = 1e-6
    fd = torch.zeros_like(K_TEST)
    for j in range(K_TEST.shape[1]):
        d = torch.zeros_like(K_TEST)
        d[0, j] = eps
        fd[0, j] = (lqr.cost(K_TEST + d) - lqr.cost(K_TEST - d)) / (2 * eps)
    torch.testing.assert_close(fd, exact, rtol=1e-6, atol=1e-8)


def test_riccati_solution_is_a_stationary_minimum(lqr):
    K = lqr.optimal_K()
    assert lqr.grad(K).abs().max() < 1e-10
    assert lqr.is_stable(K)
    J = float(lqr.cost(K))
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):  # every nearby controller costs more
        assert float(lqr.cost(K + 0.05 * torch.randn(K.shape, dtype=torch.float64, generator=gen))) > J


def test_riccati_matches_scipy_dare(lqr):
    linalg = pytest.importorskip("scipy.linalg")
    g = lqr.gamma
    # discounted problem == undiscounted one with √γ A, √γ B
    P = linalg.solve_discrete_are(np.sqrt(g) * lqr.A.numpy(), np.sqrt(g) * lqr.B.numpy(), lqr.Q.numpy(),
                                  lqr.R.numpy())
    _, P_ours = lqr.riccati()
    np.testing.assert_allclose(P_ours.numpy(), P, rtol=1e-8)


def test_q_function_is_consistent(lqr):
    K = K_TEST
    gen = torch.Generator().manual_seed(1)
    s = lqr.sample_start(64, gen)
    # V(s) = Q(s, μ(s)), and the Bellman equation Q(s, a) = r(s, a) + γ V(s')
    torch.testing.assert_close(lqr.q(K, s, lqr.mu(K, s)), lqr.v(K, s))
    a = torch.randn(64, 1, dtype=torch.float64, generator=gen)
    r = -((s @ lqr.Q * s).sum(1) + (a @ lqr.R * a).sum(1))
    s_next = s @ lqr.A.T + a @ lqr.B.T
    torch.testing.assert_close(lqr.q(K, s, a), r + lqr.gamma * lqr.v(K, s_next))
    # J(K) = E_{ρ0}[V(s0)] = tr(P Σ0)
    torch.testing.assert_close(-lqr.cost(K), -torch.trace(lqr.value_matrix(K) @ lqr.Sigma0))


def test_noisy_lqr_cost_and_gradient():
    lqr = LQR(seed=1, noise_std=0.3)
    K = K_TEST.clone().requires_grad_()
    lqr.cost(K).backward()
    torch.testing.assert_close(K.grad, lqr.grad(K_TEST), rtol=1e-9, atol=1e-12)
    # the discounted expected return over a long horizon converges to -J(K)
    assert lqr.expected_return(K_TEST, horizon=5000, discount=lqr.gamma) == pytest.approx(-float(lqr.cost(K_TEST)),
                                                                                         rel=1e-9)
    assert lqr.grad(lqr.optimal_K()).abs().max() < 1e-9


def test_env_returns_match_the_exact_episode_return(lqr):
    env = gym.make("pgrad/LQR-v0")
    K = lqr.optimal_K()
    rets, s0s = [], []
    for ep in range(5):
        obs, _ = env.reset(seed=ep)
        s0s.append(env.unwrapped.s0.copy())
        total, steps, done = 0.0, 0, False
        while not done:
            obs, r, term, trunc, _ = env.step(-(K.numpy() @ obs).astype(np.float32))
            assert not term
            total += r
            steps += 1
            done = trunc
        assert steps == lqr.horizon
        rets.append(total)
    exact = lqr.episode_return(K, np.stack(s0s))
    np.testing.assert_allclose(rets, exact.numpy(), rtol=1e-5)  # float32 observations
    # the action bound never binds for the optimal controller on ρ0 (corners of the start box included)
    corners = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
    assert lqr.mu(K, corners).abs().max() < 0.5 * lqr.action_bound


def test_finite_horizon_optimum_bounds_every_stationary_controller(lqr):
    best = lqr.finite_horizon_optimal_return()
    K = lqr.optimal_K()
    assert best >= lqr.expected_return(K) - 1e-12
    assert lqr.expected_return(K) > 1.02 * best  # K* is within 2% of the best possible over 50 steps (returns < 0)
    assert lqr.expected_return(torch.zeros(1, 2)) < 4 * best  # an idle controller is far from it


def test_unstable_controller_has_infinite_cost(lqr):
    assert lqr.cost(torch.tensor([[-5.0, -5.0]])) == float("inf")


def test_optimal_eval_returns_are_paired_with_agent_evaluation(lqr):
    """K*'s exact returns on the very episodes Agent.evaluate runs (run_episodes, seeds 12345 + i)."""
    from pgrad.envs import describe, env_factory, run_episodes

    factory, env_id = env_factory("pgrad/LQR-v0")
    spec = describe(factory(), env_id)
    K = lqr.optimal_K()
    rets = run_episodes(lqr.linear_act(K), factory, spec, episodes=20, seed=12_345)
    np.testing.assert_allclose(rets, lqr.optimal_eval_returns(20, 12_345).numpy(), rtol=1e-5)
