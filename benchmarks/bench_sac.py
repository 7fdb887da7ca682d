"""SAC on Pendulum-v1 against Stable-Baselines3: now a row set of `pgrad bench` (src/pgrad/bench.py, docs/benchmarks.md).

    .venv/bin/python benchmarks/bench_sac.py [--reps N] [--quick] [--steps N] [--json FILE] [--markdown FILE]

is `pgrad bench --rows sac-pendulum ...`: the same hyperparameters, fresh one-thread processes, alternating order.
"""

import sys

from pgrad.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--rows", "sac-pendulum", *sys.argv[1:]]))
