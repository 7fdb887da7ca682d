"""Trust-region methods on CartPole: TRPO (natural gradient, KL constraint) and ACKTR (K-FAC).

    python examples/trust_region.py         # about two minutes

TRPO (post: TRPO) maximises E[π_θ/π_θold Â] subject to E[KL(π_θold || π_θ)] <= δ with a conjugate-gradient
natural step and a line search; ACKTR (post: ACKTR) approximates the Fisher matrix per layer with Kronecker
factors and scales each step to a KL trust region. The metrics show the constraint at work.
"""

import csv

import pgrad

trpo = pgrad.train("trpo", "CartPole-v1", steps=50_000, seed=0, out="runs/example-trpo", overwrite=True)
print("TRPO:", trpo.evaluate(episodes=20))
with open("runs/example-trpo/progress.csv") as f:
    last = list(csv.DictReader(f))[-1]
print(f"  last update: KL {float(last['kl']):.4f} (δ = {trpo.cfg.max_kl}), "
      f"{int(float(last['ls_tries']))} line-search tries, step accepted: {bool(float(last['ls_accepted']))}")

acktr = pgrad.train("acktr", "CartPole-v1", steps=50_000, seed=0, out="runs/example-acktr", overwrite=True)
print("ACKTR:", acktr.evaluate(episodes=20))
with open("runs/example-acktr/progress.csv") as f:
    last = list(csv.DictReader(f))[-1]
print(f"  last update: KL-clip scale ν = {float(last['kl_clip_scale']):.3f} (1: the step was not shortened)")
