"""Environments: vector envs with an explicit autoreset mode, space checks, observation/reward normalisation.

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

import copy
import difflib
import pickle
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import gymnasium as gym
import numpy as np
import torch

from pgrad.errors import EnvError

EnvLike = Any  # a Gymnasium id, a gymnasium.Env instance, or a zero-argument factory


# ----------------------------------------------------------------------------- resolving and describing
def env_factory(env: EnvLike, **make_kwargs: Any) -> tuple[Callable[[], gym.Env], str]:
    """Return (zero-argument factory, display id) for an id, an instance or a factory."""
    if isinstance(env, str):
        env_id = env
        _make(env_id, **make_kwargs).close()  # fail early with a clear message

        def factory() -> gym.Env:
            return _make(env_id, **make_kwargs)

        return factory, env_id
    if isinstance(env, gym.Env):
        template = env
        env_id = template.spec.id if template.spec is not None else type(template.unwrapped).__name__

        def factory() -> gym.Env:
            return copy.deepcopy(template)

        return factory, env_id
    if callable(env):
        probe = env()
        if not isinstance(probe, gym.Env):
            raise EnvError(f"the env factory returned {type(probe).__name__}, not a gymnasium.Env")
        env_id = probe.spec.id if probe.spec is not None else type(probe.unwrapped).__name__
        probe.close()
        return env, env_id
    raise EnvError(f"env must be a Gymnasium id, a gymnasium.Env or a factory, got {type(env).__name__}")


def _make(env_id: str, **kwargs: Any) -> gym.Env:
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        close = difflib.get_close_matches(env_id, list(gym.registry.keys()), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `pgrad list --envs` shows the registered ids"
        raise EnvError(f"unknown environment {env_id!r}{hint}") from None
    except ModuleNotFoundError as e:
        raise EnvError(f"cannot make {env_id!r}: {e.msg}; install the package that registers it") from None
    except (ImportError, gym.error.DependencyNotInstalled) as e:
        msg = str(e).splitlines()[0]
        raise EnvError(f"cannot make {env_id!r}: {msg}") from None


@dataclass
class EnvSpec:
    """What networks need to know about an env: observation size and the action space."""

    env_id: str
    obs_dim: int
    obs_kind: str  # "box" or "discrete" (one-hot encoded)
    n_obs_discrete: int  # number of discrete observations when obs_kind == "discrete"
    action_kind: str  # "discrete" or "box"
    n_actions: int  # discrete: number of actions; box: action dimension
    act_low: np.ndarray | None = None
    act_high: np.ndarray | None = None
    max_episode_steps: int | None = None

    @property
    def act_dim(self) -> int:
        return self.n_actions

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for k in ("act_low", "act_high"):
            if d[k] is not None:
                d[k] = np.asarray(d[k]).tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EnvSpec:
        d = dict(d)
        for k in ("act_low", "act_high"):
            if d.get(k) is not None:
                d[k] = np.asarray(d[k], dtype=np.float32)
        return cls(**d)


def describe(env: gym.Env, env_id: str) -> EnvSpec:
    """Build an EnvSpec, raising EnvError for spaces pgrad does not handle."""
    obs_space, act_space = env.observation_space, env.action_space
    if isinstance(obs_space, gym.spaces.Box):
        obs_kind, obs_dim, n_obs = "box", int(np.prod(obs_space.shape)), 0
    elif isinstance(obs_space, gym.spaces.Discrete):
        obs_kind, obs_dim, n_obs = "discrete", int(obs_space.n), int(obs_space.n)
    else:
        raise EnvError(
            f"{env_id}: observation space {type(obs_space).__name__} is not supported; wrap the env with "
            "gymnasium.wrappers.FlattenObservation to get a Box"
        )
    if isinstance(act_space, gym.spaces.Discrete):
        if act_space.start != 0:
            raise EnvError(f"{env_id}: Discrete action spaces must start at 0 (got start={act_space.start})")
        return EnvSpec(env_id, obs_dim, obs_kind, n_obs, "discrete", int(act_space.n),
                       max_episode_steps=_max_steps(env))
    if isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
        low, high = act_space.low.astype(np.float32), act_space.high.astype(np.float32)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise EnvError(f"{env_id}: Box action space must have finite bounds to rescale actions")
        return EnvSpec(env_id, obs_dim, obs_kind, n_obs, "box", int(act_space.shape[0]), low, high,
                       max_episode_steps=_max_steps(env))
    raise EnvError(
        f"{env_id}: action space {act_space} is not supported; pgrad handles Discrete and 1-D Box actions"
    )


def _max_steps(env: gym.Env) -> int | None:
    return env.spec.max_episode_steps if env.spec is not None else None


def check_action_space(spec: EnvSpec, algo: str, supported: tuple[str, ...]) -> None:
    if spec.action_kind not in supported:
        kind = "Discrete" if spec.action_kind == "discrete" else "Box (continuous)"
        ok = " or ".join("Discrete" if s == "discrete" else "Box" for s in supported)
        raise EnvError(
            f"{algo} does not support {kind} actions of {spec.env_id}; it needs {ok} actions "
            f"(`pgrad list` shows which algorithms fit)"
        )


# ----------------------------------------------------------------------------- action conversion
def scale_action(a: np.ndarray, spec: EnvSpec) -> np.ndarray:
    """Map actions in [-1, 1] (tanh-squashed or deterministic policies) to the env's [low, high]."""
    return spec.act_low + (a + 1.0) * 0.5 * (spec.act_high - spec.act_low)


def clip_action(a: np.ndarray, spec: EnvSpec) -> np.ndarray:
    """Clip unbounded Gaussian samples to the env's bounds (the learner keeps the unclipped sample)."""
    return np.clip(a, spec.act_low, spec.act_high)


# ----------------------------------------------------------------------------- running statistics
class RunningMeanStd:
    """Running mean and variance (parallel algorithm of Chan et al.), in float64."""

    def __init__(self, shape: tuple[int, ...] = ()):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64)
        b_mean, b_var, b_n = x.mean(0), x.var(0), x.shape[0]
        delta = b_mean - self.mean
        tot = self.count + b_n
        self.mean = self.mean + delta * b_n / tot
        m2 = self.var * self.count + b_var * b_n + delta**2 * self.count * b_n / tot
        self.var = m2 / tot
        self.count = tot

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.mean, self.var, self.count = np.array(d["mean"]), np.array(d["var"]), float(d["count"])


class ObsNormalizer:
    """(obs - mean) / sqrt(var + eps), clipped; statistics updated only while training."""

    def __init__(self, dim: int, clip: float, enabled: bool):
        self.enabled, self.clip = enabled, clip
        self.rms = RunningMeanStd((dim,))

    def __call__(self, obs: np.ndarray, update: bool) -> np.ndarray:
        if not self.enabled:
            return obs
        if update:
            self.rms.update(obs)
        out = (obs - self.rms.mean) / np.sqrt(self.rms.var + 1e-8)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "clip": self.clip, "rms": self.rms.state_dict()}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.enabled, self.clip = d["enabled"], d["clip"]
        self.rms.load_state_dict(d["rms"])


# ----------------------------------------------------------------------------- vector env
class Step(NamedTuple):
    obs: torch.Tensor  # [N, D] observation to act on next (first obs of a new episode where one ended)
    reward: torch.Tensor  # [N] (scaled if norm_reward)
    terminated: torch.Tensor  # [N] bool: the MDP ended; do not bootstrap
    truncated: torch.Tensor  # [N] bool: cut by a time limit; bootstrap from next_obs
    next_obs: torch.Tensor  # [N, D] true next observation s_{t+1} (the final one where an episode ended)


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
        self._raw_obs = self._reset_all(seed)
        self.obs = self._to_tensor(self.obs_norm(self._raw_obs, update=True))

    # -- internals
    def _encode(self, o: Any) -> np.ndarray:
        if self.spec.obs_kind == "discrete":
            out = np.zeros(self.spec.obs_dim, np.float32)
            out[int(o)] = 1.0
            return out
        return np.asarray(o, np.float32).reshape(-1)

    def _encode_batch(self, obs: Any) -> np.ndarray:
        if self.spec.obs_kind == "discrete":
            return np.eye(self.spec.obs_dim, dtype=np.float32)[np.asarray(obs, np.int64)]
        return np.asarray(obs, np.float32).reshape(self.num_envs, -1)

    def _reset_all(self, seed: int | None) -> np.ndarray:
        if self._async is not None:
            obs, _ = self._async.reset(seed=seed)
            return self._encode_batch(obs)
        out = np.empty((self.num_envs, self.spec.obs_dim), np.float32)
        for i, e in enumerate(self._envs):
            o, _ = e.reset(seed=None if seed is None else seed + i)
            if seed is not None:
                e.action_space.seed(seed + i)
            out[i] = self._encode(o)
        return out

    def _to_tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

    # -- public
    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Start fresh episodes in every sub-env (episode statistics in progress are dropped)."""
        self._raw_obs = self._reset_all(seed)
        self._ep_ret[:] = 0
        self._ep_len[:] = 0
        self._disc_ret[:] = 0
        self.obs = self._to_tensor(self.obs_norm(self._raw_obs, update=True))
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
        else:
            obs = np.empty((n, self.spec.obs_dim), np.float32)
            rew = np.empty(n, np.float64)
            term = np.empty(n, bool)
            trunc = np.empty(n, bool)
            finals = []
            for i, e in enumerate(self._envs):
                o, r, te, tr, _ = e.step(actions[i])
                rew[i], term[i], trunc[i] = r, te, tr
                if te or tr:
                    finals.append((i, self._encode(o)))
                    o, _ = e.reset()
                obs[i] = self._encode(o)
            final = obs
            if finals:
                final = obs.copy()
                for i, o in finals:
                    final[i] = o
        done = term | trunc
        self._ep_ret += rew
        self._ep_len += 1
        if done.any():
            for i in np.nonzero(done)[0]:
                self.finished.append((float(self._ep_ret[i]), int(self._ep_len[i])))
            self.episodes += int(done.sum())
            self._ep_ret[done] = 0
            self._ep_len[done] = 0
        if self.norm_reward:
            self._disc_ret = self._disc_ret * self.gamma + rew
            self.ret_rms.update(self._disc_ret)
            rew = rew / np.sqrt(self.ret_rms.var + 1e-8)
            self._disc_ret[done] = 0
        self._raw_obs = obs
        obs_n = self.obs_norm(obs, update=True)
        next_n = obs_n if final is obs else self.obs_norm(final, update=False)
        self.obs = self._to_tensor(obs_n)
        next_t = self.obs if final is obs else self._to_tensor(next_n)
        return Step(self.obs, torch.from_numpy(rew.astype(np.float32)).to(self.device),
                    torch.from_numpy(term).to(self.device), torch.from_numpy(trunc).to(self.device), next_t)

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
        if self._envs is not None:
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
            self.obs = self._to_tensor(self.obs_norm(self._raw_obs, update=False))
        return exact


# ----------------------------------------------------------------------------- evaluation
def run_episodes(act: Callable[[torch.Tensor], np.ndarray], factory: Callable[[], gym.Env], spec: EnvSpec,
                 episodes: int, seed: int, obs_norm: ObsNormalizer | None = None,
                 device: str | torch.device = "cpu", max_steps: int = 1_000_000) -> list[float]:
    """Undiscounted returns of `episodes` fresh episodes, run in parallel, one per sub-env.

    ``act`` maps a [B, D] float tensor of (normalised) observations to env actions; normalisation statistics
    are frozen (never updated here).
    """
    returns: list[float] = []
    done_total = 0
    batch = min(episodes, 32)
    start = 0
    while done_total < episodes:
        k = min(batch, episodes - done_total)
        envs = [factory() for _ in range(k)]
        obs = np.stack([_encode_one(spec, e.reset(seed=seed + start + i)[0]) for i, e in enumerate(envs)])
        active = np.ones(k, bool)
        ret = np.zeros(k)
        t = 0
        while active.any() and t < max_steps:
            o = obs if obs_norm is None else obs_norm(obs, update=False)
            with torch.no_grad():
                a = act(torch.as_tensor(o, dtype=torch.float32, device=device))
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


def _encode_one(spec: EnvSpec, o: Any) -> np.ndarray:
    if spec.obs_kind == "discrete":
        out = np.zeros(spec.obs_dim, np.float32)
        out[int(o)] = 1.0
        return out
    return np.asarray(o, np.float32).reshape(-1)
