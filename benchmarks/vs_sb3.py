"""PPO and A2C on CartPole-v1 against Stable-Baselines3: now a row set of `pgrad bench` (src/pgrad/bench.py, docs/benchmarks.md).

    .venv/bin/python benchmarks/vs_sb3.py [--reps N] [--quick] [--steps N] [--json FILE] [--markdown FILE]

is `pgrad bench --rows ppo-cartpole a2c-cartpole ...`: the same hyperparameters, fresh one-thread processes, alternating order.
"""

import sys

from pgrad.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--rows", "ppo-cartpole", "a2c-cartpole", *sys.argv[1:]]))
