"""Every random stream of a run, derived from its one seed s by ``numpy.random.SeedSequence`` spawning.

Stream ``key`` of seed s is ``SeedSequence(s, spawn_key=key)`` (the child that ``SeedSequence(s).spawn`` gives at
that position), read as one 32-bit seed. The keys are fixed:

    (ENV, i)                training env i: its ``reset`` seed
    (ACTION_SPACE, i)       training env i: its action space's sampler
    (EVAL, k, i)            episode i of the run's k-th evaluation
    (TORCH,) (NUMPY,) (PYTHON,)   the global generators (network init, sampling, minibatches, noise)
    (WORKER, k, r, t)       A3C (and A2C on Ray) worker k after r restarts, in a run (re)started at step t
    (ACTOR, k, r, t)        D4PG actor process k after r restarts, in a run (re)started at step t

A worker's or actor's seed is the root of its own process: it seeds that process's generators and envs through
the same keys. Worker 0 of a fresh run takes s itself, so one A3C worker draws exactly what A2C's single process
draws. Runs with seeds s and s + 1 share no stream (``SeedSequence`` hashes the whole key with s), where
``env.reset(seed=s + i)`` made env i of seed s env i - 1 of seed s + 1.

A seed a user gives ``Agent.evaluate`` keeps its meaning: episode i resets with seed + i (``episode_seeds``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch

ENV, ACTION_SPACE, EVAL, TORCH, NUMPY, PYTHON, WORKER, ACTOR = range(8)


def derive_seed(seed: int, *key: int) -> int:
    """The 32-bit seed of stream ``key`` of ``seed`` (see the module docstring for the keys)."""
    return int(np.random.SeedSequence(seed, spawn_key=key).generate_state(1, np.uint32)[0])


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators, each from its own stream of ``seed``."""
    random.seed(derive_seed(seed, PYTHON))
    np.random.seed(derive_seed(seed, NUMPY))
    torch.manual_seed(derive_seed(seed, TORCH))


def eval_seeds(seed: int, k: int, episodes: int) -> list[int]:
    """The reset seeds of the episodes of a run's k-th evaluation (fresh for every evaluation)."""
    return [derive_seed(seed, EVAL, k, i) for i in range(episodes)]


def worker_seed(seed: int, k: int, restarts: int = 0, step0: int = 0) -> int:
    """Root seed of worker k: ``seed`` itself for worker 0 of a fresh run (so one worker replays A2C's random
    streams), else its own stream per worker, per restart and per step a resumed run starts from."""
    return seed if k == restarts == step0 == 0 else derive_seed(seed, WORKER, k, restarts, step0)


def actor_seed(seed: int, k: int, restarts: int = 0, step0: int = 0) -> int:
    """Root seed of D4PG actor process k after ``restarts`` restarts, in a run (re)started at step ``step0``."""
    return derive_seed(seed, ACTOR, k, restarts, step0)


def episode_seeds(seed: int | Sequence[int], episodes: int) -> list[int]:
    """Reset seeds of ``episodes`` evaluation episodes: seed + i for a user's int (``Agent.evaluate``'s contract),
    or the seeds themselves when given one per episode (a run's evaluations, ``eval_seeds``)."""
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + i for i in range(episodes)]
    seeds = [int(s) for s in seed]
    if len(seeds) != episodes:
        raise ValueError(f"{len(seeds)} seeds for {episodes} episodes")
    return seeds
