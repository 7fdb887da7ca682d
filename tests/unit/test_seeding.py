"""Seeds (issue 20.5): every stream of a run comes from its one seed through numpy's SeedSequence (pgrad.seeding), so
runs with seeds s and s + 1 share no env seed, evaluation seed, worker or actor seed; the same seed gives the same
seeds; and the streams of one run are distinct. The seeds checked are those actually passed to ``env.reset``."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import pgrad
from pgrad.seeding import (
    ACTION_SPACE,
    ENV,
    NUMPY,
    PYTHON,
    TORCH,
    actor_seed,
    derive_seed,
    episode_seeds,
    eval_seeds,
    worker_seed,
)


class Recording(gym.Wrapper):
    """Appends "pid seed" to ``path`` at every seeded reset (a file: worker and actor processes write to it too)."""

    def __init__(self, env: gym.Env, path: str):
        super().__init__(env)
        self.path = path

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            with open(self.path, "a") as f:
                f.write(f"{os.getpid()} {seed}\n")
        return self.env.reset(seed=seed, options=options)


def recorded(path: Path) -> list[tuple[int, int]]:
    return [tuple(int(x) for x in line.split()) for line in path.read_text().split("\n") if line]


def seeds_of(algo: str, seed: int, out: Path, env_id: str = "CartPole-v1", **kw) -> list[tuple[int, int]]:
    """(pid, seed) of every seeded env.reset of a short run."""
    log = out.with_suffix(".seeds")
    path = str(log)
    pgrad.train(algo, lambda: Recording(gym.make(env_id), path), seed=seed, out=out, progress=False,
                tensorboard=False, checkpoint_every=0, **kw)
    return recorded(log)


A2C = dict(num_envs=4, steps=1000, eval_every=250, eval_episodes=3, hidden=(16,))


def test_runs_with_adjacent_seeds_share_no_env_or_eval_seed(tmp_path):
    a = seeds_of("a2c", 7, tmp_path / "s7", **A2C)
    b = seeds_of("a2c", 8, tmp_path / "s8", **A2C)
    again = seeds_of("a2c", 7, tmp_path / "s7-again", **A2C)
    sa, sb = [s for _, s in a], [s for _, s in b]
    # 4 training envs, then 4 evaluations (steps 250, 500, 750, 1000) of 3 episodes
    assert len(sa) == len(sb) == 4 + 4 * 3
    assert sa[:4] == [derive_seed(7, ENV, i) for i in range(4)]
    assert sa[4:] == [s for k in range(4) for s in eval_seeds(7, k, 3)]
    assert not set(sa) & set(sb), "seeds 7 and 8 share env seeds"
    assert len(set(sa)) == len(sa)  # distinct streams within the run: no env or episode seeded twice alike
    assert sa == [s for _, s in again]  # the same seed gives the same seeds
    # the old arithmetic made these coincide: env i of seed s was env i - 1 of seed s + 1
    assert not {7 + i for i in range(1, 4)} & set(sa)


def test_a3c_workers_of_adjacent_seeds_share_no_seed(tmp_path):
    kw = dict(workers=2, num_envs=2, steps=400, eval_every=400, eval_episodes=2, hidden=(16,))
    a = seeds_of("a3c", 3, tmp_path / "s3", **kw)
    b = seeds_of("a3c", 4, tmp_path / "s4", **kw)
    for rec in (a, b):  # two worker processes with two envs each, plus the learner's one evaluation
        pids = {p for p, _ in rec}
        assert len(pids) == 3 and len(rec) == 2 * 2 + 2
        assert len({s for _, s in rec}) == len(rec)
    assert not {s for _, s in a} & {s for _, s in b}
    # worker 0 of a fresh run is the run's own seed (it replays A2C's streams); worker 1 has its own
    expect = {derive_seed(worker_seed(3, k, 0, 0), ENV, i) for k in range(2) for i in range(2)}
    assert expect <= {s for _, s in a}
    assert {derive_seed(3, ENV, i) for i in range(2)} <= {s for _, s in a}


def test_d4pg_actor_processes_of_adjacent_seeds_share_no_seed(tmp_path):
    kw = dict(actors=2, num_envs=1, steps=600, learning_starts=200, batch_size=16, hidden=(16,), eval_every=600,
              eval_episodes=2)
    a = seeds_of("d4pg", 3, tmp_path / "s3", env_id="Pendulum-v1", **kw)
    b = seeds_of("d4pg", 4, tmp_path / "s4", env_id="Pendulum-v1", **kw)
    for rec, s in ((a, 3), (b, 4)):
        assert len({p for p, _ in rec}) == 3  # two actor processes and the learner's evaluation
        assert {derive_seed(actor_seed(s, k), ENV, 0) for k in range(2)} <= {x for _, x in rec}
        assert len({x for _, x in rec}) == len(rec)
    assert not {s for _, s in a} & {s for _, s in b}


def test_maddpg_envs_and_evaluations_of_adjacent_seeds_share_no_seed(tmp_path):
    from mpe2 import simple_spread_v3

    class RecordingParallel:
        def __init__(self, path: str):
            self.env, self.path = simple_spread_v3.parallel_env(N=2, max_cycles=25, continuous_actions=True), path

        def reset(self, seed=None, options=None):
            if seed is not None:
                with open(self.path, "a") as f:
                    f.write(f"{os.getpid()} {seed}\n")
            return self.env.reset(seed=seed, options=options)

        def __getattr__(self, name):
            return getattr(self.env, name)

    def run(seed: int) -> list[int]:
        path = tmp_path / f"s{seed}.seeds"
        pgrad.train("maddpg", lambda: RecordingParallel(str(path)), seed=seed, out=tmp_path / f"s{seed}", steps=100,
                    num_envs=2, learning_starts=50, batch_size=16, hidden=(16,), eval_every=100, eval_episodes=2,
                    checkpoint_every=0, progress=False, tensorboard=False)
        return [s for _, s in recorded(path)]

    a, b = run(5), run(6)
    assert a[:2] == [derive_seed(5, ENV, i) for i in range(2)] and a[2:] == eval_seeds(5, 0, 2)
    assert len(set(a)) == len(a) and not set(a) & set(b)


def test_user_evaluation_seed_keeps_its_meaning(tmp_path):
    """``Agent.evaluate(episodes, seed)`` resets episode i with seed + i (theory/lqr.py pairs episodes on it)."""
    path = tmp_path / "eval.seeds"
    agent = pgrad.train("a2c", "CartPole-v1", steps=64, seed=0, out=tmp_path / "run", eval_every=0, num_envs=2,
                        progress=False, tensorboard=False, checkpoint_every=0)
    agent.evaluate(episodes=3, seed=100, env=lambda: Recording(gym.make("CartPole-v1"), str(path)))
    assert [s for _, s in recorded(path)] == [100, 101, 102]
    assert episode_seeds(100, 3) == [100, 101, 102] and episode_seeds([5, 9], 2) == [5, 9]
    with pytest.raises(ValueError):
        episode_seeds([5], 2)


def test_streams_are_distinct_and_adjacent_seeds_disjoint():
    def streams(s: int) -> list[int]:
        return ([derive_seed(s, k) for k in (TORCH, NUMPY, PYTHON)]
                + [derive_seed(s, k, i) for k in (ENV, ACTION_SPACE) for i in range(16)]
                + [x for k in range(8) for x in eval_seeds(s, k, 10)]
                + [worker_seed(s, k, r, t) for k in range(8) for r in range(3) for t in (0, 5000)][1:]
                + [actor_seed(s, k, r, t) for k in range(8) for r in range(3) for t in (0, 5000)])

    for s in (0, 1, 12_345, 2**32 - 1):
        x = streams(s)
        assert len(set(x)) == len(x), s
        assert all(0 <= v < 2**32 for v in x)
        assert x == streams(s)
    for s in (0, 1, 2, 41, 1000):
        assert not set(streams(s)) & set(streams(s + 1)), s
        assert not set(streams(s)) & {s + i for i in range(-16, 17)}  # nor the old seed + i arithmetic
    assert worker_seed(9, 0, 0, 0) == 9  # one A3C worker replays A2C's streams (tests/equivalence)
    assert np.random.SeedSequence(9).spawn(3)[2].generate_state(1)[0] == derive_seed(9, 2)  # spawning, as stated
