"""MADDPG on a PettingZoo environment: two agents that must talk (post: MADDPG). Needs `pip install 'pgrad[marl]'`.

    python examples/maddpg.py                # about two minutes

In simple_speaker_listener the speaker sees the goal colour but cannot move; the listener moves but cannot see
the goal. Each agent's actor sees only its own observation; each critic Q_i(o⃗, a_1, a_2) sees everything during
training. Random agents score about -40 per agent over 25 steps; without communication the best is about -17.
A short run shows the start of learning; `pgrad train maddpg mpe2:simple_speaker_listener_v4 --steps 300000`
goes further.
"""

from mpe2 import simple_speaker_listener_v4

import pgrad

agent = pgrad.train("maddpg", "mpe2:simple_speaker_listener_v4", steps=40_000, seed=0, num_envs=8,
                    learning_starts=4_000, eval_every=10_000, out="runs/example-maddpg", overwrite=True)
res = agent.evaluate(episodes=20)
print("per agent:", {k: round(v, 1) for k, v in res.per_agent.items()}, "total:", round(res.total_return, 1))

# Decentralised execution: each agent acts on its own observation.
env = simple_speaker_listener_v4.parallel_env()
obs, _ = env.reset(seed=1)
print("actions:", agent.act(obs))
