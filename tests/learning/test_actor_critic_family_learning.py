"""Learning rows of BENCHMARKS.md for the actor-critic family on CartPole-v1: actor_critic (Q, SARSA critic) and
off_policy_ac reach 195, a3c with 2 workers reaches 475 (rows: 200k steps).

Settings are the presets (actor_critic: Ψ = Q - E_π[Q], α_θ = 1e-4, α_w = 1e-3, 8 envs; a3c: 2 Hogwild! workers
x 4 envs, t_max 8) and off_policy_ac's defaults (ε-mixture behaviour ε = 0.2, 8 envs, no replay). The policy
checked is the one pgrad.train returns: the best periodic evaluation (checkpoints/best.pt, select='best'),
re-evaluated here on 20 fresh episodes with deterministic actions.

CI budgets are below the rows' 200k where every seed tried crossed the threshold well before (a stricter test):
measured at 200k steps on seeds 0, 1, 2 (best.pt re-evaluated on 20 episodes; periodic evaluations every 10k):
  actor_critic  500, 500, 500   (first periodic evaluation >= 195: 90k, 40k, 60k; seed 1 collapsed after 150k)
  off_policy_ac 500, 500, 500   (first >= 195: 50k, 70k, 30k)
  a3c (2 workers, asynchronous: not repeatable run to run) 500, 500, 500   (first >= 475: 40k, 10k, 10k)
so CI trains 100k steps (seed 0). Re-checked at the CI budget of 100k with the committed code, seeds 0, 1, 2:
  actor_critic 500, 500, 500;  off_policy_ac 500, 500, 500;  a3c 500, 500, 498.95
(the machine was shared with other jobs throughout, load average 6-25 on 2 cores).
"""

from __future__ import annotations

import pytest

import pgrad

EVAL = dict(eval_every=10_000, eval_episodes=10)


@pytest.mark.learning
@pytest.mark.parametrize("algo,steps,threshold,seed", [
    ("actor_critic", 100_000, 195, 0),
    ("off_policy_ac", 100_000, 195, 0),
    ("a3c", 100_000, 475, 0),
])
def test_cartpole(algo, steps, threshold, seed, tmp_path, quiet):
    agent = pgrad.train(algo, "CartPole-v1", steps=steps, seed=seed, out=tmp_path / "run", **EVAL, **quiet)
    res = agent.evaluate(episodes=20)
    assert res.mean_return >= threshold, f"{algo} seed {seed}: {res.mean_return:.1f} < {threshold} at {steps} steps"
