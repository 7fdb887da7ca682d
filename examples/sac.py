"""Soft actor-critic on Pendulum (post: Soft Actor-Critic), and a video of the result.

    python examples/sac.py                   # about two minutes

SAC maximises reward plus α times the policy's entropy. `version="auto"` (the default) learns α so that the
entropy stays near -|A|; `version="2018"` is the post's algorithm with a soft value network and a fixed α.
"""

import csv

import pgrad

agent = pgrad.train("sac", "Pendulum-v1", steps=8_000, seed=0, eval_every=2_000, out="runs/example-sac",
                    overwrite=True)
print("SAC:", agent.evaluate(episodes=20))

with open("runs/example-sac/progress.csv") as f:
    rows = [r for r in csv.DictReader(f) if r.get("alpha")]
for r in rows[:: max(1, len(rows) // 5)]:
    print(f"  step {int(r['step']):5d}: α = {float(r['alpha']):.3f}, entropy {float(r['entropy']):+.2f}, "
          f"Q {float(r['q']):8.1f}")

try:
    from pgrad.video import record_video

    paths, returns = record_video(agent, "runs/example-sac/videos")
    print(f"video: {paths[0]} (return {returns[0]:.1f})")
except pgrad.errors.PgradError as e:
    print(f"no video: {e}")
