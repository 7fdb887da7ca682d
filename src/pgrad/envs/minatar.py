"""MinAtar (Young & Tian 2019): five miniature Atari games on a 10x10 grid, through ``minatar.gym``.

Ids are ``MinAtar/<Game>-v0`` (all 6 actions, the paper's setting) and ``MinAtar/<Game>-v1`` (the game's minimal
action set), for Asterix, Breakout, Freeway, Seaquest and SpaceInvaders. Observations stay as MinAtar gives them:
bool ``(10, 10, C)``, channel last ({0, 1} as is; the vector env transposes them to channel first once).
Rewards are raw game points, so there is no clipping and no episodic life: ``train`` only mirrors `make_atari`.
MinAtar's defaults are kept: sticky actions with p=0.1 and difficulty ramping (``sticky_action_prob`` and
``difficulty_ramping`` are passed through).

Time limit: MinAtar registers none, and Young & Tian train by frame budget on uncapped episodes; gymnax caps
episodes at 1,000 steps, which cuts good Breakout/SpaceInvaders policies short and makes its scores a different
task. Here a truncation (not a termination) at ``max_episode_steps=10_000`` keeps evaluation finite while binding
only for near-perpetual play; pass None for none. Freeway ends by itself (terminal) after 2,500 frames.

The env's whole state is plain Python/numpy (the game objects and their ``RandomState``), so it pickles and
deep-copies exactly, mid-episode included.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import gymnasium as gym

from pgrad.errors import EnvError

GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
MAX_EPISODE_STEPS = 10_000


def is_minatar_id(env_id: str) -> bool:
    """True for ``MinAtar/...`` ids."""
    return isinstance(env_id, str) and env_id.startswith("MinAtar/")


def _minatar_gym(env_id: str) -> ModuleType:
    try:
        module = importlib.import_module("minatar.gym")
    except ImportError:
        raise EnvError(f"{env_id} needs the MinAtar extra: pip install 'pgrad[minatar]'") from None
    if "MinAtar/Breakout-v1" not in gym.registry:  # registering twice makes gymnasium warn
        module.register_envs()
    return module


def make_minatar(env_id: str, train: bool, *, max_episode_steps: int | None = MAX_EPISODE_STEPS,
                 **make_kwargs: Any) -> gym.Env:
    """A MinAtar env, bool ``(10, 10, C)`` observations, truncated at `max_episode_steps` (None: no limit).

    ``make_kwargs`` go to ``gym.make`` (``sticky_action_prob``, ``difficulty_ramping``, ``render_mode``).
    Seed it through ``reset(seed=...)``: that seeds the game and its sticky actions.
    """
    del train  # the same env trains and evaluates: raw points, one life
    _minatar_gym(env_id)
    if env_id not in gym.registry:
        raise EnvError(f"unknown MinAtar environment {env_id!r}; the games are "
                       f"{', '.join(f'MinAtar/{g}-v1' for g in GAMES)} (-v0: all 6 actions)")
    try:
        return gym.make(env_id, max_episode_steps=max_episode_steps, **make_kwargs)
    except (TypeError, ValueError, gym.error.Error) as e:
        msg = (str(e).splitlines() or [""])[0]
        raise EnvError(f"cannot make {env_id!r}: {type(e).__name__}: {msg}") from None
