"""TRPO on CartPole-v1 against sb3-contrib: now a row set of `pgrad bench` (src/pgrad/bench.py, docs/benchmarks.md).

    .venv/bin/python benchmarks/bench_trpo.py [--reps N] [--quick] [--steps N] [--json FILE] [--markdown FILE]

is `pgrad bench --rows trpo-cartpole ...`: the same hyperparameters, fresh one-thread processes, alternating order.
"""

import sys

from pgrad.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--rows", "trpo-cartpole", *sys.argv[1:]]))
