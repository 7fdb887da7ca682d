"""Shared helper of the learning tests."""

from __future__ import annotations

import pytest

import pgrad


@pytest.fixture
def final_return(tmp_path):
    """final_return(algo, env, steps, seed, **config): train quietly with a fixed seed and re-evaluate the policy
    ``pgrad.train`` returns (its best periodic evaluation's checkpoint) on 20 fresh episodes of seed 777."""

    def run(algo: str, env: str, steps: int, seed: int, **kw) -> float:
        agent = pgrad.train(algo, env, steps=steps, seed=seed, out=tmp_path / f"{algo}-{seed}", progress=False,
                            tensorboard=False, **kw)
        return agent.evaluate(episodes=20, seed=777).mean_return

    return run
