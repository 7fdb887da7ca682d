"""On-policy policy gradients: REINFORCE and PPO on CartPole, then use the trained agent.

    python examples/on_policy.py            # about a minute on a free laptop core

REINFORCE (post: REINFORCE) uses whole-episode returns G_t; PPO (post: PPO) clips the probability ratio r(θ) so
it can take many minibatch steps per rollout. Both come with presets for CartPole-v1 (`pgrad train ppo
CartPole-v1 --help` shows them); here the budgets are cut so the script finishes quickly.
"""

import numpy as np

import pgrad

# PPO: the preset for CartPole (8 envs, 32 steps each per rollout, 20 epochs), 30k steps instead of 100k.
ppo = pgrad.train("ppo", "CartPole-v1", steps=30_000, seed=0, out="runs/example-ppo",
                  overwrite=True, progress=True)
print("PPO:", ppo.evaluate(episodes=20))  # the best evaluated policy, on 20 fresh episodes

# REINFORCE with a learned value baseline: G_t - V_w(s_t) has the same expectation and lower variance.
reinforce = pgrad.train("reinforce", "CartPole-v1", steps=60_000, seed=0, baseline="value",
                        out="runs/example-reinforce", overwrite=True)
print("REINFORCE + baseline:", reinforce.evaluate(episodes=20))

# An Agent acts on raw observations (deterministic: the most likely action) ...
obs = np.array([0.0, 0.0, 0.05, 0.0], dtype=np.float32)  # the pole leans right
print("action for a pole leaning right:", ppo.act(obs))  # 1 = push the cart right
# ... and is saved and loaded with everything it needs (networks, spec, observation statistics).
ppo.save("runs/example-ppo.pt")
print("reloaded:", pgrad.load("runs/example-ppo.pt").evaluate(episodes=5))
print("learning curves: runs/example-ppo/curve.png, runs/example-reinforce/curve.png")
