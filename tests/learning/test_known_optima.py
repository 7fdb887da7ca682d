"""Known optima (issue 20): random tabular MDPs whose optimum pgrad.theory computes exactly.

Each algorithm trains with its defaults (no per-problem tuning) for 100k steps on three generated instances
(TabularMDP seeds 0, 1, 2: 8 states, 3 actions, stochastic transitions, a 10% chance of ending per step); the
greedy policy it returns must reach >= 90% of the way from the uniformly random policy's exact return to the
optimal one. benchmarks/known_optima.py runs every discrete algorithm (docs/benchmarks.md, "Known optima");
these six are the ones cheap enough for CI (under 20 s a run). Shares measured at seed 0 (instances 0, 1, 2):
reinforce 0.98, 1.0, 0.97; a2c 1.0, 0.995, 0.96; acktr 1.0, 1.0, 0.96; acer 0.98, 1.0, 1.0; trpo 1.0, 1.0, 1.0;
off_policy_ac 1.0, 1.0, 1.0.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "known_optima", Path(__file__).resolve().parents[2] / "benchmarks" / "known_optima.py")
known_optima = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(known_optima)


@pytest.mark.learning
@pytest.mark.parametrize("instance", [0, 1, 2])
@pytest.mark.parametrize("algo", ["reinforce", "a2c", "acktr", "acer", "trpo", "off_policy_ac"])
def test_reaches_ninety_percent_of_the_optimum(algo, instance):
    res = known_optima.run(algo, instance, steps=100_000, seed=0)
    assert res["share"] >= 0.9, res
