"""Deterministic policy gradients on Pendulum: DDPG, TD3 or D4PG (post: DPG, DDPG, TD3, D4PG).

    python examples/deterministic.py              # TD3, about two minutes
    python examples/deterministic.py ddpg         # or ddpg, d4pg

The actor is a deterministic μ_θ(s); it follows ∇_a Q_w(s, a) ∇_θ μ_θ(s) from a critic learned off-policy from
a replay buffer. TD3 adds twin critics (clipped double Q), delayed actor updates and target smoothing; D4PG a
distributional critic, N-step returns and prioritised replay. Each has a Pendulum-v1 preset (20k steps, 64x64
networks); here 10k steps, enough to swing the pendulum up (random policy: about -1200; solved: above -200).
"""

import sys

import pgrad

algo = sys.argv[1] if len(sys.argv) > 1 else "td3"
agent = pgrad.train(algo, "Pendulum-v1", steps=10_000, seed=0, eval_every=2_000, out=f"runs/example-{algo}",
                    overwrite=True)
result = agent.evaluate(episodes=20)
print(f"{algo} on Pendulum-v1 after 10k steps: {result}")

# The policy is deterministic: the same observation always gives the same torque.
print("torque at the bottom, at rest:", agent.act([-1.0, 0.0, 0.0]))
print(f"learning curve: runs/example-{algo}/curve.png; "
      f"video: pgrad eval runs/example-{algo} --video   (needs pip install 'pgrad[video]')")
