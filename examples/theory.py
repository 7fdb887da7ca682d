"""The policy gradient theorem, checked exactly (post: Policy Gradient Theorem, REINFORCE, DPG).

    python examples/theory.py                # a few seconds

On a small random MDP pgrad computes J(θ) and its gradient exactly (linear solves), then averages REINFORCE's
per-episode estimates, computed through pgrad's own loss: the average converges to the exact gradient, and the
baseline version gets there with less variance. `pgrad theory` runs every estimator of the post this way.
"""

import torch

from pgrad.theory import TabularMDP
from pgrad.theory import estimators as E

mdp = TabularMDP(n_states=5, n_actions=3, gamma=0.9, seed=0)
gen = torch.Generator().manual_seed(0)
theta = mdp.random_theta(gen)  # a softmax policy table θ[s, a]
exact = mdp.grad(theta)  # ∇J(θ) = Σ_s d^π(s) Σ_a Q^π(s, a) ∇π(a|s), by the policy gradient theorem
assert torch.allclose(exact, mdp.grad_autograd(theta))  # ... equal to differentiating J(θ) itself
print(f"J(θ) = {float(mdp.J(theta)):.4f}; exact gradient norm {float(exact.norm()):.4f}")

episodes = mdp.sample_episodes(mdp.policy(theta), 20_000, gen)
for name in ("reinforce_gamma_t", "baseline"):  # γ^t G_t (the post's update) and γ^t (G_t - V(s_t))
    samples = E.per_episode_pg(theta, episodes, E.episode_psi(mdp, theta, episodes, name))
    c = E.compare(name, samples, exact)
    print(f"{name:18s} mean error {c.bias_norm:.4f} (max {c.max_z:.1f} standard errors), "
          f"total variance {c.total_var:.2f}")
