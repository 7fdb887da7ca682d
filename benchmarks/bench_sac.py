"""SAC on Pendulum-v1 against Stable-Baselines3 (`pgrad bench` rows; see docs/benchmarks.md).

    .venv/bin/python benchmarks/bench_sac.py [--reps N] [--quick] [--steps N] [--json FILE]

is `pgrad bench --rows sac-pendulum ...`: same hyperparameters for both libraries,
fresh one-thread processes, alternating order. The code is src/pgrad/bench.py.
"""

import sys

from pgrad.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--rows", "sac-pendulum", *sys.argv[1:]]))
