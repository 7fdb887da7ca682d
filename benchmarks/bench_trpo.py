"""TRPO on CartPole-v1 against sb3-contrib (`pgrad bench` rows; see docs/benchmarks.md).

    .venv/bin/python benchmarks/bench_trpo.py [--reps N] [--quick] [--steps N] [--json FILE]

is `pgrad bench --rows trpo-cartpole ...`: same hyperparameters for both libraries,
fresh one-thread processes, alternating order. The code is src/pgrad/bench.py.
"""

import sys

from pgrad.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--rows", "trpo-cartpole", *sys.argv[1:]]))
