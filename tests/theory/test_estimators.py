"""The post's gradient estimators, run through pgrad's own losses and returns, average to the exact gradients.

Each check: n i.i.d. samples (one per episode or transition) with fixed seeds; every component of the sample
mean must lie within 4 standard errors of the exact value (max over 15 components: under the null a failure
has probability about 1e-3 and the seeds are fixed, so this does not flake). Negative controls are estimators
that are biased on purpose; they must fail the same check, which shows it has the power to fail.
"""

from __future__ import annotations

import pytest
import torch

from pgrad.theory import LQR, TabularMDP
from pgrad.theory import estimators as E

N_EPISODES = 20_000
N_TRANSITIONS = 40_000
Z = 4.0
FAIL_Z = 3 * Z  # negative controls must fail by a wide margin, not borderline


@pytest.fixture(scope="module")
def setup():
    mdp = TabularMDP(n_states=5, n_actions=3, gamma=0.9, seed=0)
    gen = torch.Generator().manual_seed(0)
    theta = mdp.random_theta(gen)
    ep = mdp.sample_episodes(mdp.policy(theta), N_EPISODES, gen)
    samples = {name: E.per_episode_pg(theta, ep, E.episode_psi(mdp, theta, ep, name)) for name in E.ON_POLICY}
    return mdp, theta, samples


@pytest.mark.parametrize("name", ["reinforce_gamma_t", "baseline", "q_critic", "advantage", "gae"])
def test_estimator_is_unbiased_for_the_policy_gradient(setup, name):
    mdp, theta, samples = setup
    E.compare(name, samples[name], mdp.grad(theta)).assert_unbiased(Z)


def test_reinforce_without_gamma_t_estimates_the_undiscounted_weighting_not_the_gradient(setup):
    """Dropping γ^t (what most implementations do) weights states by η(s) = Σ_t Pr(s_t = s), not by
    d^π(s) = Σ_t γ^t Pr(s_t = s): unbiased for Σ_s η(s) Σ_a ∇π Q^π, biased for ∇J (shown, not hidden)."""
    mdp, theta, samples = setup
    E.compare("reinforce", samples["reinforce"], mdp.grad_undiscounted_weighting(theta)).assert_unbiased(Z)
    vs_grad = E.compare("reinforce vs ∇J", samples["reinforce"], mdp.grad(theta))
    assert vs_grad.max_z > FAIL_Z, vs_grad
    # it still points uphill here, which is why it works in practice
    assert float((samples["reinforce"].mean(0) * mdp.grad(theta)).sum()) > 0


def test_negative_control_action_dependent_baseline_fails(setup):
    """Ψ = γ^t (G_t - Q^π(s_t, a_t)): a 'baseline' that depends on the action is not a baseline; its mean is 0."""
    mdp, theta, samples = setup
    c = E.compare("action_baseline", samples["action_baseline"], mdp.grad(theta))
    assert not c.unbiased(Z) and c.max_z > FAIL_Z, c
    with pytest.raises(AssertionError, match="standard errors"):
        c.assert_unbiased(Z)
    E.compare("action_baseline vs 0", samples["action_baseline"], torch.zeros_like(theta)).assert_unbiased(Z)


@pytest.mark.parametrize("plain, better", [("reinforce_gamma_t", "baseline"), ("reinforce_gamma_t", "q_critic"),
                                           ("q_critic", "advantage"), ("baseline", "advantage")])
def test_variance_is_measurably_lower(setup, plain, better):
    """Paired on the same episodes: tr Cov(plain) - tr Cov(better) > 4 standard errors."""
    _, _, samples = setup
    diff, se = E.variance_reduction(samples[plain], samples[better])
    assert diff > Z * se, (plain, better, diff, se)


def test_off_policy_importance_weighted_gradient():
    """Transitions s ~ d̄^β, a ~ β: E[ρ Q^π ∇ ln π] is the post's off-policy gradient; without ρ it is not,
    and truncating ρ at 1 without ACER's bias correction is biased too."""
    mdp = TabularMDP(n_states=5, n_actions=3, gamma=0.9, seed=1)
    gen = torch.Generator().manual_seed(1)
    theta = mdp.random_theta(gen)
    beta = mdp.policy(mdp.random_theta(gen))
    q = mdp.q(mdp.policy(theta))
    tr = mdp.sample_transitions(beta, N_TRANSITIONS, gen)
    exact = mdp.off_policy_grad(theta, beta)
    samples = {n: E.per_transition_off_policy(theta, beta, tr, q, n) for n in E.OFF_POLICY}
    E.compare("off_policy", samples["off_policy"], exact).assert_unbiased(Z)
    for biased in ("off_policy_no_is", "off_policy_trunc"):
        c = E.compare(biased, samples[biased], exact)
        assert c.max_z > FAIL_Z, c


def test_dpg_theorem_on_the_lqr():
    """E_{s~ρ^μ}[∇_a Q^μ(s, a) ∇_K μ_K(s)] with the exact Q^μ equals the exact ∇_K of the return, -∇_K J_cost,
    away from the optimum (where it is not trivially 0) and at K* (where it is 0)."""
    lqr = LQR(state_dim=2, action_dim=1, gamma=0.99, seed=0)
    gen = torch.Generator().manual_seed(0)
    K_star = lqr.optimal_K()
    for K in (K_star + torch.tensor([[0.3, -0.2]], dtype=torch.float64), K_star):
        samples = E.lqr_dpg_samples(lqr, K, lqr.sample_start(8000, gen), steps=100)
        c = E.compare("dpg", samples, -lqr.grad(K))
        c.assert_unbiased(Z)
    # negative control: ∇_a Q of a stale critic (Q^μ of K* while the actor is at K) is not the gradient at K
    K = K_star + torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    stale = E.lqr_dpg_samples(lqr, K, lqr.sample_start(8000, gen), steps=100, critic_K=K_star)
    c = E.compare("dpg, stale critic", stale, -lqr.grad(K))
    assert c.max_z > FAIL_Z, c


def test_per_episode_gradients_equal_a_slow_loop(setup):
    """The replicated-θ trick gives each episode its own Σ_t Ψ_t ∇ ln π(a_t|s_t); for the softmax table
    ∇_θ[s, :] ln π(a|s) = e_a - π(·|s). Checked on a few episodes against a Python loop from that formula."""
    mdp, theta, _ = setup
    gen = torch.Generator().manual_seed(5)
    ep = mdp.sample_episodes(mdp.policy(theta), 6, gen)
    psi = E.episode_psi(mdp, theta, ep, "baseline")
    fast = E.per_episode_pg(theta, ep, psi)
    pi = mdp.policy(theta)
    for i in range(6):
        slow = torch.zeros_like(theta)
        for t in range(ep.states.shape[0]):
            if ep.mask[t, i]:
                s, a = int(ep.states[t, i]), int(ep.actions[t, i])
                slow[s] += psi[t, i] * (torch.nn.functional.one_hot(torch.tensor(a), mdp.A).double() - pi[s])
        torch.testing.assert_close(fast[i], slow)
