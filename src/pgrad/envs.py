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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

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
    except gym.error.Error:
        close = difflib.get_close_matches(env_id, list(gym.registry.keys()), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `pgrad list --envs` shows the registered ids"
        raise EnvError(f"unknown environment {env_id!r}{hint}") from None
    except ModuleNotFoundError as e:
        raise EnvError(f"cannot make {env_id!r}: {e.msg}; install the package that registers it") from None
    except (ImportError, gym.error.DependencyNotInstalled) as e:
        msg = str(e).splitlines()[0]
        raise EnvError(f"cannot make {env_id!r}: {msg}") from None
    except (TypeError, ValueError) as e:  # an id gym cannot parse (".:x": a relative import), or bad kwargs
        msg = (str(e).splitlines() or [""])[0]
        raise EnvError(f"cannot make {env_id!r}: {type(e).__name__}: {msg}") from None


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
        self._raw_obs = self._reset_all(seed)
        self._set_obs(self.obs_norm(self._raw_obs, update=True))

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
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
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
                self.finished.append((float(self._ep_ret[i]), int(self._ep_len[i])))
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
        if self._async is None and self._on_cpu:  # obs_n is a fresh C-contiguous float32 batch here
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
            self._set_obs(self.obs_norm(self._raw_obs, update=False))
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


# ----------------------------------------------------------------------------- multi-agent (PettingZoo parallel)
# MADDPG's data path. A PettingZoo parallel env becomes tensors with an agent axis: observations [E, N, O],
# rewards [E, N], actions [E, N] (Discrete) or [E, N, A] (Box), E envs and N agents in `possible_agents` order.
# Agents whose observation or action sizes differ are zero-padded to the largest size O = max O_i, A = max A_i
# (MultiAgentSpec.obs_mask / act_mask say which entries are real). Padded entries are constant zeros, so a network
# reading them computes exactly the function of one that does not (their weights get zero gradient), and the N
# per-agent networks can run as one batched matmul (core.nets.StackedMLP). Agents that left the episode early
# (PettingZoo removes them from env.agents) get zero observations and rewards and `acted = False`.


@dataclass
class MultiAgentSpec:
    """What networks need to know about a PettingZoo parallel env, agent by agent (in possible_agents order)."""

    env_id: str
    agents: list[str]
    obs_dims: list[int]  # flattened size of each agent's observation (one-hot size for Discrete)
    obs_kinds: list[str]  # "box" or "discrete" per agent
    action_kind: str  # "discrete" or "box", the same for every agent
    act_dims: list[int]  # Discrete: number of actions; Box: action dimension
    act_low: list[list[float]] | None = None
    act_high: list[list[float]] | None = None
    max_episode_steps: int | None = None

    @property
    def n_agents(self) -> int:
        return len(self.agents)

    @property
    def obs_dim(self) -> int:
        """Padded observation width O = max_i O_i."""
        return max(self.obs_dims)

    @property
    def n_actions(self) -> int:
        """Padded action width A = max_i A_i (one-hot width for Discrete actions)."""
        return max(self.act_dims)

    @property
    def act_dim(self) -> int:
        return self.n_actions

    def obs_mask(self) -> np.ndarray:
        """[N, O] bool: True where an agent's padded observation holds a real entry."""
        return np.arange(self.obs_dim)[None, :] < np.asarray(self.obs_dims)[:, None]

    def act_mask(self) -> np.ndarray:
        """[N, A] bool: True where an agent's padded action holds a real entry (a real discrete action)."""
        return np.arange(self.n_actions)[None, :] < np.asarray(self.act_dims)[:, None]

    def padded_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Box bounds as [N, A] arrays (padding: low = high = 0); zeros for Discrete actions."""
        low = np.zeros((self.n_agents, self.n_actions), np.float32)
        high = np.zeros((self.n_agents, self.n_actions), np.float32)
        if self.action_kind == "box":
            for i, (lo, hi) in enumerate(zip(self.act_low, self.act_high)):
                low[i, : len(lo)], high[i, : len(hi)] = lo, hi
        return low, high

    def same_spaces(self, other: MultiAgentSpec) -> bool:
        return (self.agents, self.obs_dims, self.action_kind, self.act_dims) == \
            (other.agents, other.obs_dims, other.action_kind, other.act_dims)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MultiAgentSpec:
        return cls(**d)


def _is_parallel_env(x: Any) -> bool:
    return all(hasattr(x, n) for n in ("possible_agents", "observation_space", "action_space", "step", "reset")) \
        and not hasattr(x, "agent_iter") and not isinstance(x, gym.Env)


def _parallel_name(env: Any) -> str:
    name = (getattr(env, "metadata", None) or {}).get("name")
    return str(name) if name else type(getattr(env, "unwrapped", env)).__name__


def _parallel_maker(env_id: str) -> Callable[[], Any]:
    import importlib

    mod_name, sep, attr = env_id.partition(":")
    if not sep or not mod_name or not attr:
        raise EnvError(f"{env_id!r} is not a PettingZoo env id: write 'package:env', e.g. mpe2:simple_spread_v3")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise EnvError(f"cannot make {env_id!r}: {e.msg}; install the package that provides it "
                       "(mpe2 comes with pip install 'pgrad[marl]')") from None
    obj = getattr(mod, attr, None)
    if obj is None:  # env modules are often submodules that the package does not import (mpe2)
        try:
            obj = importlib.import_module(f"{mod_name}.{attr}")
        except ModuleNotFoundError:
            obj = None
    if obj is None:
        import pkgutil

        names = [n for n in dir(mod) if not n.startswith("_")]
        names += [m.name for m in pkgutil.iter_modules(getattr(mod, "__path__", []))]
        close = difflib.get_close_matches(attr, names, n=3)
        hint = f"; did you mean {', '.join(f'{mod_name}:{c}' for c in close)}?" if close else ""
        raise EnvError(f"unknown environment {env_id!r}: {mod_name} has no {attr!r}{hint}")
    make = getattr(obj, "parallel_env", obj)
    if not callable(make):
        raise EnvError(f"{env_id!r} is neither a PettingZoo env module (with parallel_env) nor a factory")
    return make


def parallel_env_factory(env: Any) -> tuple[Callable[[], Any], str]:
    """(zero-argument factory, display id) for a PettingZoo parallel env: an id 'package:env' (the module's
    ``parallel_env()``, e.g. ``mpe2:simple_spread_v3``), an instance (deep-copied), or a factory."""
    if isinstance(env, str):
        make = _parallel_maker(env)
        probe = make()
        if not _is_parallel_env(probe):
            raise EnvError(f"{env!r} did not give a PettingZoo parallel env (got {type(probe).__name__})")
        probe.close()
        return make, env
    if _is_parallel_env(env):
        template = env
        return (lambda: copy.deepcopy(template)), _parallel_name(env)
    if hasattr(env, "agent_iter"):
        raise EnvError("this is a PettingZoo AEC env; give its parallel version "
                       "(pettingzoo.utils.conversions.aec_to_parallel(env) or module.parallel_env())")
    if callable(env) and not isinstance(env, gym.Env):
        probe = env()
        if not _is_parallel_env(probe):
            raise EnvError(f"the env factory returned {type(probe).__name__}, not a PettingZoo parallel env")
        name = _parallel_name(probe)
        probe.close()
        return env, name
    raise EnvError(f"a multi-agent algorithm needs a PettingZoo parallel env (an id such as "
                   f"'mpe2:simple_spread_v3', an instance or a factory), got {type(env).__name__}")


def describe_parallel(env: Any, env_id: str) -> MultiAgentSpec:
    """Build a MultiAgentSpec, raising EnvError for spaces pgrad does not handle."""
    agents = list(env.possible_agents)
    if not agents:
        raise EnvError(f"{env_id}: the env has no agents")
    obs_dims, obs_kinds, kinds, act_dims, lows, highs = [], [], [], [], [], []
    for ag in agents:
        o, a = env.observation_space(ag), env.action_space(ag)
        if isinstance(o, gym.spaces.Box):
            obs_kinds.append("box")
            obs_dims.append(int(np.prod(o.shape)))
        elif isinstance(o, gym.spaces.Discrete):
            obs_kinds.append("discrete")
            obs_dims.append(int(o.n))
        else:
            raise EnvError(f"{env_id}: observation space {type(o).__name__} of agent {ag} is not supported; "
                           "pgrad handles Box and Discrete observations")
        if isinstance(a, gym.spaces.Discrete):
            if a.start != 0:
                raise EnvError(f"{env_id}: Discrete action spaces must start at 0 (agent {ag}: start={a.start})")
            kinds.append("discrete")
            act_dims.append(int(a.n))
        elif isinstance(a, gym.spaces.Box) and len(a.shape) == 1:
            if not (np.all(np.isfinite(a.low)) and np.all(np.isfinite(a.high))):
                raise EnvError(f"{env_id}: Box action space of agent {ag} must have finite bounds")
            kinds.append("box")
            act_dims.append(int(a.shape[0]))
            lows.append(a.low.astype(np.float32).tolist())
            highs.append(a.high.astype(np.float32).tolist())
        else:
            raise EnvError(f"{env_id}: action space {a} of agent {ag} is not supported; pgrad handles "
                           "Discrete and 1-D Box actions")
    if len(set(kinds)) > 1:
        raise EnvError(f"{env_id}: agents mix Discrete and Box actions; pgrad needs one kind for every agent")
    max_steps = getattr(getattr(env, "unwrapped", env), "max_cycles", None)
    box = kinds[0] == "box"
    return MultiAgentSpec(env_id, agents, obs_dims, obs_kinds, kinds[0], act_dims, lows if box else None,
                          highs if box else None, int(max_steps) if isinstance(max_steps, int) else None)


def encode_agents(spec: MultiAgentSpec, obs: dict[str, Any]) -> np.ndarray:
    """{agent: observation} -> [N, O] float32, zero-padded; agents absent from the dict get zeros."""
    out = np.zeros((spec.n_agents, spec.obs_dim), np.float32)
    for i, ag in enumerate(spec.agents):
        if ag in obs:
            if spec.obs_kinds[i] == "discrete":
                out[i, int(obs[ag])] = 1.0
            else:
                out[i, : spec.obs_dims[i]] = np.asarray(obs[ag], np.float32).reshape(-1)
    return out


def actions_to_dict(spec: MultiAgentSpec, actions: np.ndarray, live: Any = None) -> dict[str, Any]:
    """[N] (Discrete) or [N, A] (Box, env scale, padded) -> {agent: action} for the agents in ``live``."""
    out: dict[str, Any] = {}
    for i, ag in enumerate(spec.agents):
        if live is not None and ag not in live:
            continue
        if spec.action_kind == "discrete":
            out[ag] = int(actions[i])
        else:
            out[ag] = np.asarray(actions[i][: spec.act_dims[i]], np.float32)
    return out


def _set_dict(o: Any, state: dict[str, Any]) -> None:
    o.__dict__.update(state)


def _none() -> None:
    return None


def _plain_dumps(obj: Any) -> bytes:
    """Pickle envs with their full state. PettingZoo/MPE envs pickle through EzPickle, which keeps only the
    constructor arguments (an unpickled env is a fresh one), and their wrappers forward attribute lookups; here
    such objects are pickled as their plain __dict__ instead, so an env comes back mid-episode, RNG included."""
    import io

    from gymnasium.utils.ezpickle import EzPickle

    class _Pickler(pickle.Pickler):
        def reducer_override(self, o: Any) -> Any:
            if type(o).__module__.startswith("pygame"):  # a renderer's surface or font: not state, dropped
                return _none, ()
            if isinstance(o, EzPickle) or _is_parallel_env(o) or hasattr(o, "agent_iter"):
                if isinstance(o, type) or not hasattr(o, "__dict__"):
                    return NotImplemented
                return object.__new__, (type(o),), dict(o.__dict__), None, None, _set_dict
            return NotImplemented

    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


class MultiAgentStep(NamedTuple):
    obs: torch.Tensor  # [E, N, O] observations to act on next (first obs of a new episode where one ended)
    reward: torch.Tensor  # [E, N] r_i (0 for agents that did not act)
    terminated: torch.Tensor  # [E, N] bool: agent i's episode ended for good; do not bootstrap
    truncated: torch.Tensor  # [E, N] bool: agent i was cut by a time limit; bootstrap from next_obs
    next_obs: torch.Tensor  # [E, N, O] true next observations o⃗' (the final ones where an episode ended)
    acted: torch.Tensor  # [E, N] bool: agent i was in the episode and acted at this step
    done: torch.Tensor  # [E] bool: the whole episode ended (every agent left) and the env was reset


class MultiAgentVecEnv:
    """E copies of a PettingZoo parallel env stepped in lock-step (same-step autoreset, as VecEnv), returning
    tensors with an agent axis. Episode statistics: per-agent returns; Run sees the mean over agents."""

    def __init__(self, factory: Callable[[], Any], num_envs: int, seed: int, spec: MultiAgentSpec, *,
                 norm_obs: bool = False, clip_obs: float = 10.0, device: str | torch.device = "cpu"):
        self.spec, self.num_envs, self.device = spec, num_envs, torch.device(device)
        n, o = spec.n_agents, spec.obs_dim
        self.obs_norm = ObsNormalizer(1, clip_obs, norm_obs)
        self.obs_norm.rms = RunningMeanStd((n, o))  # statistics per agent and feature
        self._ep_ret = np.zeros((num_envs, n), np.float64)
        self._ep_len = np.zeros(num_envs, np.int64)
        self.finished: list[tuple[float, int]] = []  # (return per agent, length) since the last pop
        self.finished_agents: list[np.ndarray] = []  # [N] returns of the same episodes
        self.episodes = 0
        self._envs = [factory() for _ in range(num_envs)]
        self._raw_obs = self._reset_all(seed)
        self.obs = self._to_tensor(self.obs_norm(self._raw_obs, update=True))

    def _reset_all(self, seed: int | None) -> np.ndarray:
        out = np.zeros((self.num_envs, self.spec.n_agents, self.spec.obs_dim), np.float32)
        for e, env in enumerate(self._envs):
            obs, _ = env.reset(seed=None if seed is None else seed + e)
            out[e] = encode_agents(self.spec, obs)
        return out

    def _to_tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

    def live(self) -> np.ndarray:
        """[E, N] bool: agents that act at the next step."""
        return np.array([[ag in env.agents for ag in self.spec.agents] for env in self._envs], bool)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        self._raw_obs = self._reset_all(seed)
        self._ep_ret[:] = 0
        self._ep_len[:] = 0
        self.obs = self._to_tensor(self.obs_norm(self._raw_obs, update=True))
        return self.obs

    def step(self, actions: np.ndarray) -> MultiAgentStep:
        """``actions``: [E, N] ints (Discrete) or [E, N, A] floats in env scale (Box, padded)."""
        spec, E, N = self.spec, self.num_envs, self.spec.n_agents
        obs = np.zeros((E, N, spec.obs_dim), np.float32)
        rew = np.zeros((E, N), np.float64)
        term = np.zeros((E, N), bool)
        trunc = np.zeros((E, N), bool)
        acted = np.zeros((E, N), bool)
        done = np.zeros(E, bool)
        finals: list[tuple[int, np.ndarray]] = []
        for e, env in enumerate(self._envs):
            live = set(env.agents)
            o, r, te, tr, _ = env.step(actions_to_dict(spec, actions[e], live))
            for i, ag in enumerate(spec.agents):
                if ag in live:
                    acted[e, i] = True
                    rew[e, i] = float(r.get(ag, 0.0))
                    term[e, i] = bool(te.get(ag, False))
                    trunc[e, i] = bool(tr.get(ag, False)) and not term[e, i]
            obs[e] = encode_agents(spec, o)
            if not env.agents:
                done[e] = True
                finals.append((e, obs[e].copy()))
                o, _ = env.reset()
                obs[e] = encode_agents(spec, o)
        self._ep_ret += rew
        self._ep_len += 1
        final = obs
        if finals:
            final = obs.copy()
            for e, fo in finals:
                final[e] = fo
            for e in np.nonzero(done)[0]:
                self.finished.append((float(self._ep_ret[e].mean()), int(self._ep_len[e])))
                self.finished_agents.append(self._ep_ret[e].copy())
            self.episodes += int(done.sum())
            self._ep_ret[done] = 0
            self._ep_len[done] = 0
        self._raw_obs = obs
        obs_n = self.obs_norm(obs, update=True)
        self.obs = self._to_tensor(obs_n)
        next_t = self.obs if final is obs else self._to_tensor(self.obs_norm(final, update=False))
        dev = self.device
        rew_t, term_t, trunc_t, acted_t, done_t = (torch.from_numpy(x).to(dev) for x in
                                                   (rew.astype(np.float32), term, trunc, acted, done))
        return MultiAgentStep(self.obs, rew_t, term_t, trunc_t, next_t, acted_t, done_t)

    def pop_finished(self) -> list[tuple[float, int]]:
        out, self.finished = self.finished, []
        return out

    def pop_finished_agents(self) -> list[np.ndarray]:
        out, self.finished_agents = self.finished_agents, []
        return out

    def close(self) -> None:
        for env in self._envs:
            env.close()

    def state_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"obs_norm": self.obs_norm.state_dict(), "ep_ret": self._ep_ret.copy(),
                             "ep_len": self._ep_len.copy(), "raw_obs": self._raw_obs.copy(),
                             "episodes": self.episodes, "envs": None}
        try:
            d["envs"] = _plain_dumps(self._envs)
        except Exception:  # an env that cannot be pickled (renderer, C handle): resume resets it
            d["envs"] = None
        return d

    def load_state_dict(self, d: dict[str, Any]) -> bool:
        """Restore statistics and, when they were picklable, the envs mid-episode. Returns exactness."""
        self.obs_norm.load_state_dict(d["obs_norm"])
        self.episodes = d["episodes"]
        if d.get("envs") is None:
            return False
        for env in self._envs:
            env.close()
        self._envs = pickle.loads(d["envs"])
        self._ep_ret, self._ep_len = d["ep_ret"].copy(), d["ep_len"].copy()
        self._raw_obs = d["raw_obs"].copy()
        self.obs = self._to_tensor(self.obs_norm(self._raw_obs, update=False))
        return True


def run_parallel_episodes(act: Callable[[torch.Tensor, np.ndarray], np.ndarray], factory: Callable[[], Any],
                          spec: MultiAgentSpec, episodes: int, seed: int, obs_norm: ObsNormalizer | None = None,
                          device: str | torch.device = "cpu", max_steps: int = 1_000_000) -> np.ndarray:
    """Undiscounted per-agent returns [episodes, N] of fresh episodes of a PettingZoo parallel env.

    ``act(obs, episode_index)`` maps a [B, N, O] float tensor of (normalised) observations and the [B] indices of
    the episodes they belong to to env actions ([B, N] or [B, N, A]); statistics are frozen here.
    """
    returns = np.zeros((episodes, spec.n_agents))
    start = 0
    while start < episodes:
        k = min(32, episodes - start)
        envs = [factory() for _ in range(k)]
        obs = np.stack([encode_agents(spec, env.reset(seed=seed + start + i)[0]) for i, env in enumerate(envs)])
        active = np.ones(k, bool)
        t = 0
        while active.any() and t < max_steps:
            o = obs if obs_norm is None else obs_norm(obs, update=False)
            with torch.no_grad():
                a = act(torch.as_tensor(o, dtype=torch.float32, device=device), np.arange(start, start + k))
            for j in np.nonzero(active)[0]:
                env = envs[j]
                ob, r, _, _, _ = env.step(actions_to_dict(spec, a[j], set(env.agents)))
                for i, ag in enumerate(spec.agents):
                    returns[start + j, i] += float(r.get(ag, 0.0))
                obs[j] = encode_agents(spec, ob)
                if not env.agents:
                    active[j] = False
            t += 1
        for env in envs:
            env.close()
        start += k
    return returns
