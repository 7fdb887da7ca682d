"""The tabular calculator is exact, and its samplers and Gymnasium env draw from the MDP it describes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import pgrad  # noqa: F401  registers pgrad/TabularMDP-v0
from pgrad.core.returns import discounted_returns
from pgrad.errors import PgradError
from pgrad.theory import TabularMDP


@pytest.fixture(scope="module")
def mdp() -> TabularMDP:
    return TabularMDP(n_states=5, n_actions=3, gamma=0.9, seed=0)


@pytest.fixture(scope="module")
def theta(mdp) -> torch.Tensor:
    return mdp.random_theta(torch.Generator().manual_seed(0))


def test_policy_gradient_theorem_equals_autograd_and_finite_differences(mdp, theta):
    exact = mdp.grad(theta)
    torch.testing.assert_close(exact, mdp.grad_autograd(theta), rtol=1e-10, atol=1e-12)
    eps = 1e-6
    fd = torch.zeros_like(theta)
    for s in range(mdp.S):
        for a in range(mdp.A):
            d = torch.zeros_like(theta)
            d[s, a] = eps
            fd[s, a] = (mdp.J(theta + d) - mdp.J(theta - d)) / (2 * eps)
    torch.testing.assert_close(fd, exact, rtol=1e-6, atol=1e-9)


def test_bellman_and_visitation_identities(mdp, theta):
    pi = mdp.policy(theta)
    v, q = mdp.v(pi), mdp.q(pi)
    torch.testing.assert_close((pi * q).sum(-1), v)  # V = Σ_a π Q
    d = mdp.visitation(pi)
    # J = Σ_s d(s) r_π(s): the discounted visitation weights the one-step rewards
    torch.testing.assert_close(d @ mdp.r_pi(pi), mdp.J(theta))
    # d = ρ0 + γ d P_π, and η (γ = 1) sums to the expected episode length 1/p_end
    torch.testing.assert_close(d, mdp.rho0 + mdp.gamma * d @ mdp.P_pi(pi))
    assert mdp.expected_length(pi) == pytest.approx(10.0)  # p_end = 0.1 for every (s, a)
    assert mdp.visitation(pi, normalize=True).sum() == pytest.approx(1.0)


def test_undiscounted_weighting_differs_from_the_gradient(mdp, theta):
    g, g_undisc = mdp.grad(theta), mdp.grad_undiscounted_weighting(theta)
    assert (g - g_undisc).norm() > 0.5 * g.norm()  # not a small effect: a different vector
    # with γ = 1 the two coincide
    m1 = TabularMDP(5, 3, gamma=1.0, seed=0)
    torch.testing.assert_close(m1.grad(theta), m1.grad_undiscounted_weighting(theta))


def test_off_policy_gradient_reduces_to_on_policy_direction(mdp, theta):
    pi = mdp.policy(theta)
    # with β = π the off-policy gradient is the on-policy gradient divided by Σ_s d^π(s) (normalised d)
    torch.testing.assert_close(mdp.off_policy_grad(theta, pi), mdp.grad(theta) / mdp.visitation(pi).sum())


def test_value_iteration_is_optimal(mdp, theta):
    v_star = mdp.optimal_v()
    pi_star = mdp.optimal_policy()
    torch.testing.assert_close(mdp.v(pi_star), v_star, rtol=1e-9, atol=1e-9)
    assert mdp.optimal_J() >= float(mdp.J(theta))
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        assert mdp.optimal_J() >= float(mdp.J(mdp.random_theta(gen, scale=3.0))) - 1e-12
    # undiscounted (the env's units) works because every episode terminates
    assert mdp.optimal_return() == pytest.approx(mdp.J_pi(mdp.optimal_policy(1.0), gamma=1.0))
    assert mdp.optimal_return() >= mdp.J_pi(pi_star, gamma=1.0) - 1e-9


def test_sampled_episodes_have_the_exact_distribution(mdp, theta):
    pi = mdp.policy(theta)
    gen = torch.Generator().manual_seed(1)
    n = 20_000
    ep = mdp.sample_episodes(pi, n, gen)
    assert not ep.truncated.any()
    assert bool((ep.terminated.sum(0) == 1).all())  # every episode ends exactly once
    G0 = discounted_returns(ep.rewards, ep.done, mdp.gamma)[0]  # the return from the start state
    se = G0.std() / n ** 0.5
    assert abs(float(G0.mean() - mdp.J(theta))) < 4 * se
    # discounted visitation counts, component by component
    disc = (mdp.gamma ** torch.arange(ep.states.shape[0], dtype=torch.float64)).unsqueeze(1).expand_as(ep.rewards)
    per_ep = torch.zeros(n, mdp.S, dtype=torch.float64)
    cols = torch.arange(n).expand_as(ep.states)
    per_ep.index_put_((cols[ep.mask], ep.states[ep.mask]), disc[ep.mask], accumulate=True)
    z = (per_ep.mean(0) - mdp.visitation(pi)).abs() / (per_ep.std(0) / n ** 0.5)
    assert z.max() < 4


def test_sampled_transitions_follow_the_state_distribution(mdp, theta):
    gen = torch.Generator().manual_seed(2)
    beta = mdp.policy(mdp.random_theta(gen))
    n = 40_000
    tr = mdp.sample_transitions(beta, n, gen)
    d = mdp.visitation(beta, normalize=True)
    freq = torch.bincount(tr.states, minlength=mdp.S).double() / n
    assert ((freq - d).abs() / (d * (1 - d) / n).sqrt()).max() < 4
    # rewards are R(s, a) and terminations happen at rate term(s, a)
    torch.testing.assert_close(tr.rewards, mdp.R[tr.states, tr.actions])
    t_rate = tr.terminated.double().mean()
    assert abs(float(t_rate) - 0.1) < 4 * (0.09 / n) ** 0.5


def test_gymnasium_env_matches_the_exact_value(mdp, theta):
    env = gym.make("pgrad/TabularMDP-v0", n_states=5, n_actions=3, gamma=0.9, seed=0)
    m = env.unwrapped.mdp
    torch.testing.assert_close(m.P, mdp.P)
    pi = mdp.policy(theta).numpy()
    rng = np.random.default_rng(0)
    rets = []
    for ep in range(3000):
        obs, info = env.reset(seed=ep)
        assert obs.shape == (5,) and obs.sum() == 1.0 and obs[info["state"]] == 1.0
        total, done = 0.0, False
        while not done:
            s = int(obs.argmax())
            obs, r, term, trunc, _ = env.step(int(rng.choice(3, p=pi[s])))
            total += r
            done = term or trunc
            assert not trunc
        rets.append(total)
    rets = np.asarray(rets)
    exact = mdp.J_pi(mdp.policy(theta), gamma=1.0)  # the env reports undiscounted returns
    assert abs(rets.mean() - exact) < 4 * rets.std() / len(rets) ** 0.5


def test_bad_instances_are_refused():
    with pytest.raises(PgradError):
        TabularMDP(gamma=1.5)
    with pytest.raises(PgradError):
        TabularMDP(P=np.ones((2, 1, 2)), R=np.zeros((2, 1)), rho0=np.array([0.5, 0.5]))
