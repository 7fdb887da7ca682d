"""Multi-agent envs (PettingZoo parallel API) as tensors with an agent axis: MADDPG's data path."""

from __future__ import annotations

import copy
import difflib
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch

from pgrad.envs.normalize import ObsNormalizer, RunningMeanStd
from pgrad.errors import EnvError
from pgrad.seeding import ENV, derive_seed, episode_seeds

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
        if isinstance(o, gym.spaces.Box) and o.dtype in (np.uint8, np.bool_) and len(o.shape) in (2, 3):
            raise EnvError(f"{env_id}: agent {ag} observes {'x'.join(map(str, o.shape))} {np.dtype(o.dtype).name} "
                           "frames; MADDPG reads flat vectors (its critics concatenate every agent's observation): "
                           "give each agent a vector observation")
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
            obs, _ = env.reset(seed=None if seed is None else derive_seed(seed, ENV, e))  # pgrad.seeding
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
                          spec: MultiAgentSpec, episodes: int, seed: int | Sequence[int],
                          obs_norm: ObsNormalizer | None = None, device: str | torch.device = "cpu",
                          max_steps: int = 1_000_000) -> np.ndarray:
    """Undiscounted per-agent returns [episodes, N] of fresh episodes of a PettingZoo parallel env.

    ``act(obs, episode_index)`` maps a [B, N, O] float tensor of (normalised) observations and the [B] indices of
    the episodes they belong to to env actions ([B, N] or [B, N, A]); statistics are frozen here. Episode i resets
    with seed + i, or seed[i] when ``seed`` is one per episode (pgrad.seeding.episode_seeds).
    """
    seeds = episode_seeds(seed, episodes)
    returns = np.zeros((episodes, spec.n_agents))
    start = 0
    while start < episodes:
        k = min(32, episodes - start)
        envs = [factory() for _ in range(k)]
        obs = np.stack([encode_agents(spec, env.reset(seed=seeds[start + i])[0]) for i, env in enumerate(envs)])
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
