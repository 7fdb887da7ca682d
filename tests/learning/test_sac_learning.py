"""SAC learning rows of BENCHMARKS.md: Pendulum-v1 in 20k steps, return >= -250, both versions.

Budget and networks from the Pendulum-v1 preset (rl-zoo settings with 64x64 networks). The policy checked is the
one pgrad.train returns: the best of the periodic evaluations (checkpoints/best.pt, select='best'), re-evaluated
here on 20 fresh episodes with deterministic actions. Checked on seeds 0, 1, 2 (20-episode returns):
auto -135.7, -131.5, -132.4; 2018 -180.8, -138.7, -132.6. CI runs seed 0 of each.
"""

from __future__ import annotations

import pytest

import pgrad


@pytest.mark.learning
@pytest.mark.parametrize("version,seed", [("auto", 0), ("2018", 0)])
def test_sac_pendulum(version, seed, tmp_path, quiet):
    agent = pgrad.train("sac", "Pendulum-v1", steps=20_000, seed=seed, version=version, eval_every=2000,
                        out=tmp_path / "run", **quiet)
    res = agent.evaluate(episodes=20)
    assert res.mean_return >= -250, f"sac ({version}) seed {seed}: {res.mean_return:.1f} < -250"
