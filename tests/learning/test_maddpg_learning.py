"""BENCHMARKS.md CI rows for MADDPG on mpe2's speaker-listener and simple_spread.

Each test trains with the preset of its env (presets/maddpg.yaml: the paper's hyperparameters, two update rounds per
100 env steps, 8 envs, 50 episodes per periodic evaluation) and asserts on the policy ``pgrad.train`` returns (the
checkpoint of its best periodic evaluation, checkpoints/best.pt) re-evaluated on 20 fresh episodes (seed 777, never
used by the periodic evaluations). "Per agent" is each agent's own return (both speaker-listener agents share one
reward; simple_spread's agents differ by their collision penalties); mean_return is their mean.
"""

from __future__ import annotations

import pytest

import pgrad

pytestmark = pytest.mark.learning

QUIET = dict(progress=False, tensorboard=False)
SL = "mpe2:simple_speaker_listener_v4"
SPREAD = "mpe2:simple_spread_v3"


def test_speaker_listener_beats_no_communication_and_independent_ddpg(tmp_path):
    """MADDPG better than -17 per agent (the best policy without communication) and better than independent DDPG
    (centralized=False: each critic sees only its own observation and action) on the same seed, budget and 20
    evaluation episodes. 120k steps. Measured (best.pt on 20 episodes of seed 777), MADDPG vs independent DDPG:
    seed 0: -11.9 vs -14.9; seed 1: -9.8 vs -14.5; seed 2: -9.3 vs -12.9; seed 3: -7.8 vs -13.4."""
    ma = pgrad.train("maddpg", SL, seed=1, out=tmp_path / "maddpg", **QUIET)
    ind = pgrad.train("maddpg", SL, seed=1, centralized=False, out=tmp_path / "independent", **QUIET)
    m, i = ma.evaluate(episodes=20, seed=777), ind.evaluate(episodes=20, seed=777)
    assert all(r >= -17 for r in m.per_agent.values()), m.per_agent
    assert m.mean_return > i.mean_return, (m.mean_return, i.mean_return)


def test_simple_spread(tmp_path):
    """MADDPG better than -18 per agent on simple_spread (3 agents), 200k steps. Measured (best.pt, 20 episodes of
    seed 777, per agent): seed 1: -15.8, -15.8, -15.5; seed 2: -15.9, -16.1, -16.2; seed 0: periodic evaluations
    (50 episodes) between -17.1 and -15.7 from 120k to 200k steps."""
    agent = pgrad.train("maddpg", SPREAD, seed=1, out=tmp_path / "spread", **QUIET)
    res = agent.evaluate(episodes=20, seed=777)
    assert all(r >= -18 for r in res.per_agent.values()), res.per_agent
