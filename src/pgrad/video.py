"""Videos of a trained policy: ``pgrad eval RUN --video`` (needs the ``video`` extra: moviepy).

The deterministic policy plays fresh episodes of its environment created with ``render_mode="rgb_array"``;
Gymnasium's ``RecordVideo`` wrapper writes one mp4 per episode. Atari and MinAtar games are recorded through their
evaluation stack (full games, raw score): the frames are the emulator's own RGB screens, not the 84x84 inputs.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from pgrad.errors import EnvError, PgradError

MISSING = "video recording needs the video extra: pip install 'pgrad[video]' (moviepy)"


def require_video_extra() -> None:
    """Raise a one-line PgradError when moviepy is not installed."""
    try:
        import moviepy  # noqa: F401
    except ImportError:
        raise PgradError(MISSING) from None


def check_supported(agent: Any) -> None:
    """Raise a one-line PgradError when this agent's env cannot be recorded (multi-agent PettingZoo envs)."""
    if getattr(agent.module, "MULTI_AGENT", False):
        raise PgradError("video recording supports Gymnasium envs; multi-agent (PettingZoo) runs are not supported")


def record_video(agent: Any, video_dir: str | Path, episodes: int = 1, seed: int = 12_345,
                 env_id: str | None = None) -> tuple[list[Path], list[float]]:
    """Record ``episodes`` episodes of ``agent``'s deterministic policy; returns (mp4 paths, episode returns)."""
    require_video_extra()
    import gymnasium as gym
    from gymnasium.wrappers import RecordVideo

    from pgrad.config import env_family
    from pgrad.envs import env_factory, evaluation_factory, is_custom_id

    check_supported(agent)
    env_id = env_id or agent.spec.env_id
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame-rendered envs without a display
    try:
        if is_custom_id(env_id):  # module:Class, called with render_mode="rgb_array"
            env = env_factory(env_id, render_mode="rgb_array")[0]()
        elif env_family(env_id) is not None:  # Atari/MinAtar: the evaluation stack (full games, raw score), and
            # the recorder beneath it renders the raw RGB frames of the emulator
            env = evaluation_factory(env_factory(env_id, render_mode="rgb_array")[0])()
        else:
            env = gym.make(env_id, render_mode="rgb_array")
    except gym.error.Error as e:
        raise EnvError(f"cannot make {env_id!r} with render_mode='rgb_array' to record it: {e}") from None
    if env.metadata.get("render_modes") and "rgb_array" not in env.metadata["render_modes"]:
        env.close()
        raise EnvError(f"{env_id} cannot render frames (render modes: {env.metadata['render_modes']})")
    video_dir = Path(video_dir)
    video_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"{agent.algo}-{env_id.replace('/', '_').replace(':', '_')}-step{agent.step}"
    before = set(video_dir.glob(f"{prefix}*.mp4"))
    with warnings.catch_warnings():  # "overwriting existing videos": the file names carry the step; that is fine
        warnings.simplefilter("ignore")
        env = RecordVideo(env, str(video_dir), episode_trigger=lambda _: True, name_prefix=prefix)
    returns: list[float] = []
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            total, done = 0.0, False
            while not done:
                action = agent.act(obs, deterministic=True)
                if isinstance(action, np.ndarray) and action.ndim == 0:
                    action = action.item()
                obs, r, terminated, truncated, _ = env.step(action)
                total += float(r)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()  # writes the last episode's file
    paths = sorted(set(video_dir.glob(f"{prefix}*.mp4")) - before) or sorted(video_dir.glob(f"{prefix}*.mp4"))
    if not paths:
        raise PgradError(f"no video was written to {video_dir}: the env rendered no frames")
    return paths, returns
