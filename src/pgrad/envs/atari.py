"""Atari (ALE) envs with the DeepMind preprocessing (Mnih et al. 2015), as small gymnasium wrappers.

Stack, innermost first: no-op reset (1..30 NOOP frames) -> max-and-skip 4 (rewards summed, max of the last two
frames) -> raw-score recorder -> [episodic life] -> fire reset -> 84x84 grayscale (cv2 INTER_AREA) ->
[reward sign] -> frame stack, giving uint8 ``(4, 84, 84)`` observations, channel first. The bracketed wrappers
are training only (``train=True``); evaluation and video play full games with raw rewards. The recorder sits
beneath both, so the step where the real game ends (all lives lost, or the time limit) carries
``info["raw_return"]`` (the raw game score) and ``info["raw_length"]`` (agent steps); every step carries
``info["game_over"]`` (False on a life loss that the training stack reports as ``terminated``).

Which id gives what (Machado et al. 2018 for sticky actions and the v5 protocol):

=====================  ==================================================  ===================================
id                     underlying env                                      max-and-skip 4 here
=====================  ==================================================  ===================================
``XNoFrameskip-v4``    frameskip 1, no sticky actions: the classic DQN /   yes
                       A2C / PPO protocol of the published baselines
``ALE/X-v5``           made with ``frameskip=1``; sticky actions p=0.25    yes (scores lower than v4's)
                       kept unless ``repeat_action_probability`` is given
``XNoFrameskip-v0``    frameskip 1, sticky actions p=0.25                  yes
``X-v4``, ``X-v0``     the ALE's stochastic frameskip 2..4                 no (frameskip is not 1)
=====================  ==================================================  ===================================

All ids are truncated (not terminated) at 108,000 frames = 27,000 agent steps, by the ALE itself
(``max_num_frames_per_episode``); ``max_episode_steps`` passed to `make_atari` counts agent steps.

The stack pickles (and deep-copies) with its full state: the recorder adds the emulator's own snapshot
(``cloneState(include_rng=True)``, sticky-action RNG included) and the env's ``np_random`` to the pickle, so a
restored env continues bit for bit. `atari_state` / `restore_atari_state` do the same in place.

Frames are the max of two RGB screens converted by cv2 (as in openai/baselines); ``obs_type="grayscale"`` takes
the ALE's own luminance screens instead (about 20% faster, values differ by a few levels).

Video: ``make_atari(id, train=False, render_mode="rgb_array").render()`` returns the RGB screen (210x160x3) of
the emulator beneath the evaluation wrappers.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np

from pgrad.errors import EnvError

FRAMES_PER_EPISODE = 108_000  # 30 minutes of play at 60 Hz: the Machado et al. (2018) / ALE cap


# ----------------------------------------------------------------------------- ids and the optional extra
def _ale(env_id: str | None = None) -> ModuleType | None:
    """ale_py with its envs registered, or None (or EnvError naming the extra, when `env_id` is given)."""
    try:
        ale_py = importlib.import_module("ale_py")
    except ImportError:
        if env_id is None:
            return None
        raise EnvError(f"{env_id} needs the Atari extra: pip install 'pgrad[atari]'") from None
    gym.register_envs(ale_py)
    return ale_py


def _is_atari_entry_point(entry_point: Any) -> bool:
    if isinstance(entry_point, str):
        return entry_point.replace(":", ".").startswith("ale_py.") and entry_point.endswith("AtariEnv")
    return getattr(entry_point, "__name__", "") == "AtariEnv" and "ale_py" in getattr(entry_point, "__module__", "")


def is_atari_id(env_id: str) -> bool:
    """True for ``ALE/...`` ids, ``*NoFrameskip-v4`` / ``*NoFrameskip-v0`` ids, and (when ale_py is installed)
    any id registered with ale_py's AtariEnv as its entry point (``Pong-v4``)."""
    if not isinstance(env_id, str):
        return False
    if env_id.startswith("ALE/") or env_id.endswith(("NoFrameskip-v4", "NoFrameskip-v0")):
        return True
    if _ale() is None:
        return False
    spec = gym.registry.get(env_id)
    return spec is not None and _is_atari_entry_point(spec.entry_point)


def stacked_frames(spec: Any, factory: Any) -> int:
    """k when the env's observations are k stacked frames (pgrad's Atari preprocessing of an Atari id: channel
    axis = time), else 0: what a replay buffer passes as ``frame_stack`` to store each frame once."""
    from pgrad.envs.spaces import GameFactory

    ours = isinstance(factory, GameFactory) and is_atari_id(spec.env_id)
    return spec.obs_shape[0] if ours and getattr(spec, "is_image", False) else 0


def restores_whole(env: gym.Env) -> bool:
    """Whether pickling ``env`` keeps its state: an ALE env pickles only its constructor arguments (EzPickle), so
    it comes back at frame 0 unless pgrad's RawScore wrapper carries the emulator state through."""
    for w in _chain(env):
        if isinstance(w, RawScore):
            return True
    ale = sys.modules.get("ale_py")
    return ale is None or not isinstance(env.unwrapped, ale.env.AtariEnv)


# ----------------------------------------------------------------------------- wrappers (innermost first)
def _action_index(env: gym.Env, meaning: str) -> int | None:
    meanings = env.unwrapped.get_action_meanings()
    return meanings.index(meaning) if meaning in meanings else None


class NoopReset(gym.Wrapper):
    """After each real reset, play 1..noop_max NOOP steps, drawn from the env's ``np_random`` (Mnih et al. 2015:
    "up to 30 no-op actions" as random starts). Beneath max-and-skip these are single frames."""

    def __init__(self, env: gym.Env, noop_max: int = 30):
        super().__init__(env)
        self.noop_max = noop_max
        self.noop = _action_index(env, "NOOP")

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        if self.noop is None or self.noop_max < 1:
            return obs, info
        for _ in range(int(self.np_random.integers(1, self.noop_max + 1))):
            obs, _, terminated, truncated, info = self.env.step(self.noop)
            if terminated or truncated:
                obs, info = self.env.reset()
        return obs, info


class MaxAndSkip(gym.Wrapper):
    """Repeat each action `skip` frames, sum the rewards and return the pixel-wise max of the last two frames
    (Atari sprites flicker between frames). Stops early when the game ends; a game that ends on the first frame
    returns that frame."""

    def __init__(self, env: gym.Env, skip: int = 4):
        super().__init__(env)
        self.skip = skip

    def step(self, action):
        total, prev, obs = 0.0, None, None
        for _ in range(self.skip):
            prev = obs
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        if prev is not None:
            obs = np.maximum(prev, obs)
        return obs, total, terminated, truncated, info


class RawScore(gym.Wrapper):
    """Records the raw full-game score beneath episodic life and reward clipping.

    Every step's info gets ``game_over`` (the real game ended: terminated or truncated here); the step where it
    ends also gets ``raw_return`` and ``raw_length`` (agent steps since the real reset, the fire-reset and
    life-loss NOOP steps included). It also carries the emulator state through pickling (see the module doc).
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.raw_return, self.raw_length = 0.0, 0

    def reset(self, **kwargs: Any):
        self.raw_return, self.raw_length = 0.0, 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.raw_return += float(reward)
        self.raw_length += 1
        over = bool(terminated or truncated)
        info = dict(info, game_over=over)
        if over:
            info["raw_return"], info["raw_length"] = self.raw_return, self.raw_length
        return obs, reward, terminated, truncated, info

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_emulator"] = _emulator_state(self.env)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        emulator = state.pop("_emulator")
        self.__dict__.update(state)
        _restore_emulator(self.env, emulator)  # the inner chain is rebuilt before this wrapper


class EpisodicLife(gym.Wrapper):
    """Training only: a life loss returns ``terminated=True`` to the learner, but the next ``reset`` replays one
    NOOP step instead of restarting the game; the game restarts only after a real game over (Mnih et al. 2015,
    "a life loss as terminal during training"). Games without lives (Pong: 0) are unaffected."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives, self.game_over = 0, True
        self.noop = _action_index(env, "NOOP") or 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = bool(terminated or truncated)
        lives = int(info["lives"])
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any):
        if self.game_over or kwargs.get("seed") is not None:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(self.noop)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.game_over = False
        self.lives = int(info["lives"])
        return obs, info


class FireReset(gym.Wrapper):
    """Press FIRE once after every reset, for games that wait for it (Breakout); above episodic life this also
    relaunches after each lost life in training, as in openai/baselines. ``on_life_loss`` (evaluation, where no
    episodic life resets the game) presses it after each lost life too, so a policy that never learned to relaunch
    (training did it for it) plays the full game as it trained instead of idling to the time limit."""

    def __init__(self, env: gym.Env, on_life_loss: bool = False):
        super().__init__(env)
        self.fire = _action_index(env, "FIRE")
        self.on_life_loss = on_life_loss and self.fire is not None
        self.lives = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.on_life_loss:
            lives = int(info.get("lives", 0))
            if 0 < lives < self.lives and not (terminated or truncated):
                obs, r, terminated, truncated, info = self.env.step(self.fire)
                reward += r
            self.lives = int(info.get("lives", 0))
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        if self.fire is None:
            return obs, info
        obs, _, terminated, truncated, info = self.env.step(self.fire)
        if terminated or truncated:
            obs, info = self.env.reset()
        self.lives = int(info.get("lives", 0))
        return obs, info


class WarpFrame(gym.ObservationWrapper):
    """RGB (or grayscale) screen -> 84x84 uint8 luminance, resized with cv2.INTER_AREA (Mnih et al. 2015)."""

    def __init__(self, env: gym.Env, size: int = 84):
        super().__init__(env)
        import cv2  # part of the Atari extra (opencv-python-headless)

        self._cv2, self.size = cv2, size
        self.observation_space = gym.spaces.Box(0, 255, (size, size), np.uint8)

    def observation(self, obs: np.ndarray) -> np.ndarray:
        cv2 = self._cv2
        if obs.ndim == 3:
            obs = cv2.cvtColor(obs, cv2.COLOR_RGB2GRAY)
        return cv2.resize(obs, (self.size, self.size), interpolation=cv2.INTER_AREA)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_cv2")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import cv2

        self.__dict__.update(state)
        self._cv2 = cv2


class ClipReward(gym.RewardWrapper):
    """Training only: reward -> sign(reward) in {-1, 0, 1} (Mnih et al. 2015)."""

    def reward(self, reward: float) -> float:
        return float(np.sign(reward))


class FrameStack(gym.Wrapper):
    """Stack the last `k` frames on a new leading axis: ``(k, 84, 84)`` uint8, channel first. A reset fills the
    stack with its frame. Each observation is a fresh array (safe to store)."""

    def __init__(self, env: gym.Env, k: int = 4):
        super().__init__(env)
        space = env.observation_space
        self.k = k
        self.frames = np.zeros((k, *space.shape), space.dtype)
        self.observation_space = gym.spaces.Box(0, 255, self.frames.shape, space.dtype)

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self.frames[:] = obs
        return self.frames.copy(), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.frames[:-1] = self.frames[1:]
        self.frames[-1] = obs
        return self.frames.copy(), reward, terminated, truncated, info


# ----------------------------------------------------------------------------- factory
def make_atari(env_id: str, train: bool, frame_stack: int = 4, *, noop_max: int = 30, skip: int = 4,
               max_episode_steps: int | None = None, **make_kwargs: Any) -> gym.Env:
    """An ALE env with the DeepMind preprocessing: uint8 ``(frame_stack, 84, 84)`` observations.

    ``train=True`` adds episodic life and reward clipping (what the learner sees); ``train=False`` plays full
    games with raw rewards (evaluation, video). ``make_kwargs`` go to ``gym.make`` (``repeat_action_probability``,
    ``full_action_space``, ``render_mode``, ``mode``, ``difficulty``...); ``max_episode_steps`` is a time limit in
    agent steps on the real game (the ALE's 108,000-frame cap applies regardless). ``frame_stack=0`` or 1 returns
    ``(84, 84)`` / ``(1, 84, 84)`` frames.
    """
    ale_py = _ale(env_id)
    spec = gym.registry.get(env_id)
    if spec is None:
        close = difflib.get_close_matches(env_id, list(gym.registry.keys()), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise EnvError(f"unknown Atari environment {env_id!r}{hint}")
    if env_id.startswith("ALE/"):
        make_kwargs.setdefault("frameskip", 1)  # v5: we max-pool ourselves; sticky actions stay as registered
    if "max_num_frames_per_episode" not in spec.kwargs:
        make_kwargs.setdefault("max_num_frames_per_episode", FRAMES_PER_EPISODE)
    try:
        env = gym.make(env_id, **make_kwargs)
    except (TypeError, ValueError, gym.error.Error) as e:
        msg = (str(e).splitlines() or [""])[0]
        raise EnvError(f"cannot make {env_id!r}: {type(e).__name__}: {msg}") from None
    if not isinstance(env.unwrapped, ale_py.env.AtariEnv):
        env.close()
        raise EnvError(f"{env_id!r} is not an ALE Atari env (its entry point is {spec.entry_point!r})")
    if getattr(env.unwrapped, "_obs_type", "rgb") not in ("rgb", "grayscale"):
        env.close()
        raise EnvError(f"{env_id!r}: the Atari preprocessing needs obs_type 'rgb' or 'grayscale' (screens)")

    env = NoopReset(env, noop_max)
    if env.unwrapped._frameskip == 1 and skip > 1:
        env = MaxAndSkip(env, skip)
    if max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps)
    env = RawScore(env)
    if train:
        env = EpisodicLife(env)
    env = FireReset(env, on_life_loss=not train)
    env = WarpFrame(env)
    if train:
        env = ClipReward(env)
    if frame_stack > 0:
        env = FrameStack(env, frame_stack)
    return env


# ----------------------------------------------------------------------------- exact state
def _emulator_state(env: gym.Env) -> dict[str, Any]:
    u = env.unwrapped
    return {"ale": u.ale.cloneState(include_rng=True).serialize(),
            "np_random": u.np_random.bit_generator.state}


def _restore_emulator(env: gym.Env, state: dict[str, Any]) -> None:
    import ale_py

    u = env.unwrapped
    u.ale.restoreState(ale_py.ALEState(state["ale"]))
    u.np_random.bit_generator.state = state["np_random"]


_STATEFUL = {RawScore: ("raw_return", "raw_length"), EpisodicLife: ("lives", "game_over"), FireReset: ("lives",),
             FrameStack: ("frames",)}


def _chain(env: gym.Env) -> list[gym.Env]:
    out = [env]
    while isinstance(out[-1], gym.Wrapper):
        out.append(out[-1].env)
    return out


def atari_state(env: gym.Env) -> dict[str, Any]:
    """The full state of a `make_atari` env as plain data (bytes, ints, arrays): the emulator snapshot with its
    RNG, ``np_random`` and the wrappers' counters and frames. Same as pickling the env, but restorable in place."""
    wrappers = [{k: np.copy(v) if isinstance(v, np.ndarray) else v for k, v in vars(w).items()
                 if k in _STATEFUL.get(type(w), ())} for w in _chain(env)]
    timers = [getattr(w, "_elapsed_steps", None) for w in _chain(env)]
    return {"emulator": _emulator_state(env), "wrappers": wrappers, "timers": timers}


def restore_atari_state(env: gym.Env, state: dict[str, Any]) -> None:
    """Restore `atari_state` into an env made by `make_atari` with the same id and arguments."""
    chain = _chain(env)
    if len(chain) != len(state["wrappers"]):
        raise EnvError("this Atari state was saved from a differently wrapped env")
    env.reset()  # satisfies gymnasium's reset-before-step check; everything it changes is overwritten below
    for w, saved, timer in zip(chain, state["wrappers"], state["timers"]):
        for k, v in saved.items():
            setattr(w, k, np.copy(v) if isinstance(v, np.ndarray) else v)
        if timer is not None:
            w._elapsed_steps = timer
    _restore_emulator(env, state["emulator"])
