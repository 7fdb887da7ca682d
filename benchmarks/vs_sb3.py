"""PPO and A2C on CartPole-v1 against Stable-Baselines3 (`pgrad bench` rows; see docs/benchmarks.md).

    .venv/bin/python benchmarks/vs_sb3.py [--reps N] [--quick] [--steps N] [--json FILE]

is `pgrad bench --rows ppo-cartpole a2c-cartpole ...`: same hyperparameters for both libraries,
fresh one-thread processes, alternating order. The code is src/pgrad/bench.py.
"""

import sys

from pgrad.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--rows", "ppo-cartpole", "a2c-cartpole", *sys.argv[1:]]))
