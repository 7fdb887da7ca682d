"""Actor-critic family: A2C (synchronous) and A3C (asynchronous worker processes) on CartPole.

    python examples/actor_critic.py         # one to two minutes

A2C and A3C compute the same estimator, (R - V_w(s)) ∇ log π_θ(a|s) with n-step returns R (post: A3C, A2C).
A2C steps once on the gradients of all N envs together; A3C's K workers each apply their own gradients to
shared parameters as soon as they have them, without locks (Hogwild!).
"""

import pgrad

# A2C: the CartPole preset (8 envs, RMSprop 7e-4, 5-step returns), 100k steps instead of 200k.
a2c = pgrad.train("a2c", "CartPole-v1", steps=100_000, seed=0, out="runs/example-a2c", overwrite=True)
print("A2C:", a2c.evaluate(episodes=20))

# A3C: 2 worker processes (each with its own env and one torch thread); evaluation and checkpoints happen in
# this process from the shared parameters.
a3c = pgrad.train("a3c", "CartPole-v1", steps=100_000, seed=0, workers=2, out="runs/example-a3c", overwrite=True)
print("A3C (2 workers):", a3c.evaluate(episodes=20))

# The post's simple action-value actor-critic (SARSA critic, one update per step) is slower to learn:
ac = pgrad.train("actor_critic", "CartPole-v1", steps=20_000, seed=0, out="runs/example-actor-critic",
                 overwrite=True)
print("actor-critic, 20k steps:", ac.evaluate(episodes=20))
