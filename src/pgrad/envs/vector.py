"""Vector envs with an explicit autoreset mode, and evaluation episodes.

Semantics (DESIGN.md section 3):
- Autoreset is SAME_STEP: when a sub-env ends, ``step`` returns the first observation of its next episode as
  ``obs`` and the true last observation of the ended episode as ``next_obs``. Nothing is pending between steps,
  so the vector env's state is just the sub-envs plus the current observation (which makes it picklable for
  exact resume).
- ``terminated`` and ``truncated`` stay separate. Learners bootstrap through truncation (with V or Q of
  ``next_obs``) and never through termination.
- Normalisation statistics live here, are saved in checkpoints and are frozen (not updated) at evaluation.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch

from pgrad.envs.normalize import ObsNormalizer, RunningMeanStd
from pgrad.envs.spaces import EnvSpec, encode_obs
from pgrad.seeding import ACTION_SPACE, ENV, derive_seed, episode_seeds


class Step(NamedTuple):
    obs: torch.Tensor  # [N, D] observation to act on next (first obs of a new episode where one ended)
    reward: torch.Tensor  # [N] (scaled if norm_reward)
    terminated: torch.Tensor  # [N] bool: the MDP ended; do not bootstrap
    truncated: torch.Tensor  # [N] bool: cut by a time limit; bootstrap from next_obs
    next_obs: torch.Tensor  # [N, D] true next observation s_{t+1} (the final one where an episode ended)
    arrays: tuple[np.ndarray, ...] | None = None  # on CPU: the numpy arrays behind obs, reward, terminated,
    # truncated and next_obs (same values; Rollout.store writes them without torch's per-op overhead)


class VecEnv:
    """N copies of an env stepped in lock-step (SAME_STEP autoreset), returning torch tensors."""

    def __init__(self, factory: Callable[[], gym.Env], num_envs: int, seed: int, spec: EnvSpec, *,
                 vectorization: str = "sync", norm_obs: bool = False, norm_reward: bool = False,
                 clip_obs: float = 10.0, gamma: float = 0.99, device: str | torch.device = "cpu"):
        self.spec, self.num_envs, self.device = spec, num_envs, torch.device(device)
        self.vectorization = vectorization
        self.obs_norm = ObsNormalizer(spec.obs_dim, clip_obs, norm_obs)
        self.norm_reward, self.gamma = norm_reward, gamma
        self.ret_rms = RunningMeanStd(())
        self._disc_ret = np.zeros(num_envs, np.float64)
        self._ep_ret = np.zeros(num_envs, np.float64)
        self._ep_len = np.zeros(num_envs, np.int64)
        self.finished: list[tuple[float, int]] = []  # (raw return, length) of episodes ended since last pop
        self.episodes = 0
        if vectorization == "async":
            self._async = gym.vector.AsyncVectorEnv(
                [factory] * num_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
            self._envs: list[gym.Env] | None = None
        else:
            self._async = None
            self._envs = [factory() for _ in range(num_envs)]
        # a flat Box observation is written into the float32 batch as it is (the cast np.asarray would do)
        space = self._envs[0].observation_space if self._envs else None
        self._flat_box = isinstance(space, gym.spaces.Box) and len(space.shape) == 1 and spec.obs_kind == "box"
        self._on_cpu = self.device.type == "cpu"
        self._obs_dtype = obs_numpy_dtype(spec)
        self._raw_obs = self._reset_all(seed)
        self._set_obs(self.obs_norm(self._raw_obs, update=True))

    # -- internals
    def _encode(self, o: Any) -> np.ndarray:
        return encode_obs(self.spec, o)

    def _encode_batch(self, obs: Any) -> np.ndarray:
        return encode_obs(self.spec, obs, batch=True)

    def _empty_obs(self) -> np.ndarray:
        return np.empty((self.num_envs, *self.spec.obs_shape), obs_numpy_dtype(self.spec))

    def _reset_all(self, seed: int | None) -> np.ndarray:
        """Reset every sub-env; with a seed, env i from stream (ENV, i) of it and its action space from
        (ACTION_SPACE, i) (pgrad.seeding: runs with seeds s and s + 1 share none)."""
        if self._async is not None:
            obs, _ = self._async.reset(seed=None if seed is None else
                                       [derive_seed(seed, ENV, i) for i in range(self.num_envs)])
            return self._encode_batch(obs)
        out = self._empty_obs()
        for i, e in enumerate(self._envs):
            o, _ = e.reset(seed=None if seed is None else derive_seed(seed, ENV, i))
            if seed is not None:
                e.action_space.seed(derive_seed(seed, ACTION_SPACE, i))
            out[i] = self._encode(o)
        return out

    def _to_tensor(self, x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=self._obs_dtype))
        return t if self._on_cpu else t.to(self.device)

    def _set_obs(self, x: np.ndarray) -> None:
        """self.obs from the (normalised) batch x; on CPU self.obs_array is the numpy array behind it."""
        self.obs = self._to_tensor(x)
        self.obs_array = self.obs.numpy() if self._on_cpu else None

    # -- public
    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Start fresh episodes in every sub-env (episode statistics in progress are dropped)."""
        self._raw_obs = self._reset_all(seed)
        self._ep_ret[:] = 0
        self._ep_len[:] = 0
        self._disc_ret[:] = 0
        self._set_obs(self.obs_norm(self._raw_obs, update=True))
        return self.obs

    def step(self, actions: np.ndarray) -> Step:
        n = self.num_envs
        if self._async is not None:
            obs, rew, term, trunc, info = self._async.step(actions)
            obs = self._encode_batch(obs)
            rew, term, trunc = np.asarray(rew, np.float64), np.asarray(term, bool), np.asarray(trunc, bool)
            final = obs
            if "_final_obs" in info and np.any(info["_final_obs"]):
                final = obs.copy()
                for i in np.nonzero(info["_final_obs"])[0]:
                    final[i] = self._encode(info["final_obs"][i])
            ended = np.nonzero(term | trunc)[0].tolist()
            fin = info.get("final_info", {})  # SAME_STEP: the ended episodes' last infos, as arrays
            scores = {i: _game_score({k: fin[k][i] for k in ("game_over", "raw_return", "raw_length") if k in fin})
                      for i in ended} if "game_over" in fin else None
        else:
            obs = self._empty_obs()
            rew = np.empty(n, np.float64)
            term = np.empty(n, bool)
            trunc = np.empty(n, bool)
            finals = []
            scores = None
            for i, e in enumerate(self._envs):
                o, r, te, tr, info = e.step(actions[i])
                rew[i], term[i], trunc[i] = r, te, tr
                if te or tr:
                    if "game_over" in info:
                        scores = scores or {}
                        scores[i] = _game_score(info)
                    finals.append((i, self._encode(o)))
                    o, _ = e.reset()
                obs[i] = o if self._flat_box else self._encode(o)
            final = obs
            ended = [i for i, _ in finals]  # ascending, as np.nonzero(term | trunc) would give
            if finals:
                final = obs.copy()
                for i, o in finals:
                    final[i] = o
        self._ep_ret += rew
        self._ep_len += 1
        if ended:
            for i in ended:
                if scores is None or i not in scores:
                    self.finished.append((float(self._ep_ret[i]), int(self._ep_len[i])))
                elif scores[i] is not None:  # a game env: its raw score at game over, nothing at a lost life
                    self.finished.append(scores[i])
            self.episodes += len(ended)
            self._ep_ret[ended] = 0
            self._ep_len[ended] = 0
        if self.norm_reward:
            self._disc_ret = self._disc_ret * self.gamma + rew
            self.ret_rms.update(self._disc_ret)
            rew = rew / np.sqrt(self.ret_rms.var + 1e-8)
            self._disc_ret[ended] = 0
        self._raw_obs = obs
        obs_n = self.obs_norm(obs, update=True)
        next_n = obs_n if final is obs else self.obs_norm(final, update=False)
        if self._async is None and self._on_cpu:  # obs_n is a fresh C-contiguous batch of the obs dtype here
            self.obs, self.obs_array = torch.from_numpy(obs_n), obs_n
        else:
            self._set_obs(obs_n)
        next_t = self.obs if final is obs else self._to_tensor(next_n)
        rew32 = rew.astype(np.float32)
        rew_t, term_t, trunc_t = torch.from_numpy(rew32), torch.from_numpy(term), torch.from_numpy(trunc)
        if not self._on_cpu:
            return Step(self.obs, rew_t.to(self.device), term_t.to(self.device), trunc_t.to(self.device), next_t)
        return Step(self.obs, rew_t, term_t, trunc_t, next_t, (obs_n, rew32, term, trunc, next_n))

    def pop_finished(self) -> list[tuple[float, int]]:
        out, self.finished = self.finished, []
        return out

    def close(self) -> None:
        if self._async is not None:
            self._async.close()
        else:
            for e in self._envs:
                e.close()

    # -- checkpointing
    def state_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "obs_norm": self.obs_norm.state_dict(), "ret_rms": self.ret_rms.state_dict(),
            "disc_ret": self._disc_ret.copy(), "ep_ret": self._ep_ret.copy(), "ep_len": self._ep_len.copy(),
            "raw_obs": self._raw_obs.copy(), "episodes": self.episodes, "envs": None,
        }
        from pgrad.envs.atari import restores_whole

        if self._envs is not None and all(restores_whole(e) for e in self._envs):
            try:
                d["envs"] = pickle.dumps(self._envs)
            except Exception:  # an env that cannot be pickled (renderer, C handle): resume resets it
                d["envs"] = None
        return d

    def load_state_dict(self, d: dict[str, Any]) -> bool:
        """Restore statistics and, when they were picklable, the sub-envs mid-episode. Returns exactness."""
        self.obs_norm.load_state_dict(d["obs_norm"])
        self.ret_rms.load_state_dict(d["ret_rms"])
        self.episodes = d["episodes"]
        exact = d.get("envs") is not None and self._envs is not None
        if exact:
            for e in self._envs:
                e.close()
            self._envs = pickle.loads(d["envs"])
            self._disc_ret, self._ep_ret, self._ep_len = d["disc_ret"].copy(), d["ep_ret"].copy(), d["ep_len"].copy()
            self._raw_obs = d["raw_obs"].copy()
            self._set_obs(self.obs_norm(self._raw_obs, update=False))
        return exact


# ----------------------------------------------------------------------------- evaluation
def run_episodes(act: Callable[[torch.Tensor], np.ndarray], factory: Callable[[], gym.Env], spec: EnvSpec,
                 episodes: int, seed: int | Sequence[int], obs_norm: ObsNormalizer | None = None,
                 device: str | torch.device = "cpu", max_steps: int = 1_000_000) -> list[float]:
    """Undiscounted returns of `episodes` fresh episodes, run in parallel, one per sub-env.

    Episode i resets with seed + i, or with seed[i] when ``seed`` is one per episode (pgrad.seeding.episode_seeds).
    ``act`` maps a [B, *obs_shape] tensor of (normalised) observations, in the dtype they keep (float32 vectors,
    uint8 or bool frames), to env actions; normalisation statistics
    are frozen (never updated here).
    """
    seeds = episode_seeds(seed, episodes)
    returns: list[float] = []
    done_total = 0
    batch = min(episodes, 32)
    start = 0
    while done_total < episodes:
        k = min(batch, episodes - done_total)
        envs = [factory() for _ in range(k)]
        obs = np.stack([_encode_one(spec, e.reset(seed=seeds[start + i])[0]) for i, e in enumerate(envs)])
        active = np.ones(k, bool)
        ret = np.zeros(k)
        t = 0
        while active.any() and t < max_steps:
            o = obs if obs_norm is None else obs_norm(obs, update=False)
            with torch.no_grad():
                a = act(torch.as_tensor(o, device=device))
            for i in np.nonzero(active)[0]:
                ob, r, te, tr, _ = envs[i].step(a[i])
                ret[i] += r
                obs[i] = _encode_one(spec, ob)
                if te or tr:
                    active[i] = False
            t += 1
        for e in envs:
            e.close()
        returns.extend(ret.tolist())
        done_total += k
        start += k
    return returns


def _game_score(info: dict[str, Any]) -> tuple[float, int] | None:
    """(raw score, length) of a game that ended at this step, None where only a life was lost: Atari training
    envs report ``game_over`` beneath episodic life and reward clipping (envs/atari.py RawScore)."""
    if not info.get("game_over"):
        return None
    return float(info["raw_return"]), int(info["raw_length"])


def _encode_one(spec: EnvSpec, o: Any) -> np.ndarray:
    return encode_obs(spec, o)


def obs_numpy_dtype(spec: EnvSpec) -> np.dtype:
    """The dtype observations keep from the env to the network: the frames' own for images, float32 otherwise."""
    return np.dtype(spec.obs_dtype) if spec.is_image else np.dtype(np.float32)


def obs_torch_dtype(spec: EnvSpec) -> torch.dtype:
    return {"uint8": torch.uint8, "bool": torch.bool}.get(spec.obs_dtype, torch.float32) if spec.is_image \
        else torch.float32
