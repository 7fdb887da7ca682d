"""Smoke: the continuous-action algorithms on image observations (DESIGN.md section 6).

SAC, TD3, DDPG and D4PG train a few hundred steps on frames through a CNN encoder, evaluate, save and load; each
head owns its encoder (twin critics share one in front of their stack, targets copy theirs); replay, D4PG's actor
chunks and its learner's replay keep frames in their own dtype and shape; TD3 learns the marker task on three
seeds; DPG and MADDPG refuse frames with one line.
"""

from __future__ import annotations

import sys
from typing import Any

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest
import torch

import pgrad
from pgrad.core.nets import Encoded, StackedQ
from pgrad.envs import describe, env_factory
from pgrad.errors import ConfigError, EnvError
from pgrad.run import load_checkpoint


class MarkerEnv(gym.Env):
    """A frame shows a vertical bar in one of ``size`` columns, at x = -1 + 2 col / (size - 1) in [-1, 1]; the
    action should name x: reward -(a - x)^2 (0 at best). ``length`` steps per episode, a fresh column each step,
    so only reading the frame helps: the best blind action (a = 0) loses E[x^2] per step, uniform random actions
    E[x^2] + 1/3. Frames are HxWx1, bool (MinAtar CNN at 10x10) or uint8 (the Nature CNN from 36x36)."""

    metadata = {"render_modes": []}

    def __init__(self, size: int = 10, dtype: str = "bool", length: int = 8):
        self.size, self.length = size, length
        self._dtype = np.dtype(np.uint8 if dtype == "uint8" else np.bool_)
        self.observation_space = gym.spaces.Box(0, 255 if dtype == "uint8" else 1, (size, size, 1), self._dtype)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._col, self._t = 0, 0

    @property
    def x(self) -> float:
        return -1.0 + 2.0 * self._col / (self.size - 1)

    def _frame(self) -> np.ndarray:
        img = np.zeros((self.size, self.size, 1), self._dtype)
        img[:, self._col] = 255 if self._dtype == np.uint8 else True
        return img

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t, self._col = 0, int(self.np_random.integers(self.size))
        return self._frame(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        r = -(float(np.asarray(action, np.float64).reshape(-1)[0]) - self.x) ** 2
        self._t += 1
        self._col = int(self.np_random.integers(self.size))
        return self._frame(), r, self._t >= self.length, False, {}


def bool_frames() -> MarkerEnv:
    return MarkerEnv(10, "bool")


def uint8_frames() -> MarkerEnv:
    return MarkerEnv(36, "uint8")


TINY = dict(steps=300, learning_starts=100, batch_size=32, hidden=(32, 32), eval_every=150, eval_episodes=2,
            checkpoint_every=150)
CASES = [
    ("sac", bool_frames, {}),
    ("sac", bool_frames, {"version": "2018"}),
    ("td3", bool_frames, {}),
    ("ddpg", bool_frames, {"noise": "ou", "n_step": 2}),
    ("d4pg", bool_frames, {"chunk": 20, "v_min": -10.0, "v_max": 1.0}),
    ("td3", uint8_frames, {"steps": 200, "batch_size": 16}),
]
HEADS = {"sac": ("pi", "q"), "td3": ("mu", "q"), "ddpg": ("mu", "q"), "d4pg": ("mu", "z")}


def storages(module: torch.nn.Module) -> set[int]:
    return {p.untyped_storage().data_ptr() for p in module.parameters()}


def check_encoders(algo: str, nets: torch.nn.ModuleDict) -> None:
    """Each head (and each target) owns an encoder; no two networks share a parameter; twin critics one stack."""
    heads = [*HEADS[algo], *(k for k in nets if k.endswith("_targ"))] + (["v"] if "v" in nets else [])
    for k in heads:
        assert isinstance(nets[k], Encoded), k
    for i, a in enumerate(heads):
        for b in heads[i + 1:]:
            assert not storages(nets[a]) & storages(nets[b]), (a, b)
    if algo in ("sac", "td3"):
        assert isinstance(nets["q"].head, StackedQ)  # one encoder in front of the K critics
    for k in heads:
        if k.endswith("_targ"):
            assert all(not p.requires_grad for p in nets[k].parameters())


@pytest.mark.parametrize("algo,env,kw", CASES, ids=[f"{a}-{e.__name__}-{i}" for i, (a, e, _) in enumerate(CASES)])
def test_trains_evaluates_saves_and_loads_on_frames(algo, env, kw, tmp_path, quiet):
    out = tmp_path / "run"
    agent = pgrad.train(algo, env, out=out, seed=0, **{**TINY, **kw}, **quiet)
    spec = agent.spec
    assert spec.is_image and spec.obs_shape[0] == 1
    check_encoders(algo, agent.nets)
    res = agent.evaluate(episodes=2)
    assert len(res.returns) == 2 and np.isfinite(res.mean_return)
    probe = env()
    frame, _ = probe.reset(seed=3)
    a = agent.act(frame)
    assert a.shape == (1,) and -1.0 <= a[0] <= 1.0
    batch = np.stack([frame, probe.step(a)[0]])
    assert agent.act(batch).shape == (2, 1)
    agent.save(tmp_path / "saved.pt")
    for loaded in (pgrad.load(tmp_path / "saved.pt"), pgrad.load(out)):
        assert np.array_equal(loaded.act(batch), agent.act(batch))
    # replay keeps the frames in their own dtype and CHW shape (the learner's, and D4PG's local actor's)
    tracked = load_checkpoint(out / "checkpoints" / "last.pt")["train"]["tracked"]
    dtype = torch.bool if spec.obs_dtype == "bool" else torch.uint8
    replays = [tracked["replay"]] + ([tracked["actor"]["local"]] if algo == "d4pg" else [])
    for replay in replays:
        for k in ("obs", "next_obs"):
            f = replay["fields"][k]
            assert f.dtype == dtype and tuple(f.shape[2:]) == tuple(spec.obs_shape), (k, f.dtype, f.shape)
    assert tracked["replay"]["fields"]["obs"].any()  # frames were stored, not zeros


def test_d4pg_actor_chunks_keep_uint8_frames():
    from pgrad.algos import d4pg
    from pgrad.parallel.actors import Actor, ActorSpec

    factory, env_id = env_factory(uint8_frames)
    spec = describe(factory(), env_id)
    nets, _ = d4pg.build(d4pg.Config(hidden=(16,)), spec)
    actor = Actor(ActorSpec(factory=factory, env_spec=spec, policy=nets["mu"], num_envs=2, n_step=3, chunk=6))
    actor.random = False  # the CNN policy acts on the uint8 frames
    assert actor.local.fields["obs"].dtype == torch.uint8
    c = actor.collect(6)
    n = c["obs"].shape[0]
    assert n == (6 - 2) * 2 and c["steps"] == 12
    for k in ("obs", "next_obs"):
        assert c[k].dtype == np.uint8 and c[k].shape == (n, 1, 36, 36)
        assert set(np.unique(c[k])) <= {0, 255} and (c[k] == 255).any()
    actor.envs.close()


@pytest.mark.slow
def test_d4pg_actor_process_sends_uint8_frames(tmp_path, quiet):
    mod = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(mod)  # the test env travels to the spawned actor by value
    try:
        agent = pgrad.train("d4pg", uint8_frames, out=tmp_path / "run", seed=0, actors=1, chunk=25,
                            **{**TINY, "batch_size": 16}, **quiet)
    finally:
        cloudpickle.unregister_pickle_by_value(mod)
    assert np.isfinite(agent.evaluate(episodes=2).mean_return)
    obs = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["train"]["tracked"]["replay"]["fields"]["obs"]
    assert obs.dtype == torch.uint8 and obs.shape[2:] == (1, 36, 36) and (obs == 255).any()


def test_ddpg_batch_norm_is_refused_on_frames(tmp_path, quiet):
    with pytest.raises(ConfigError, match="batch_norm") as e:
        pgrad.train("ddpg", bool_frames, steps=10, batch_norm=True, out=tmp_path / "run", **quiet)
    assert "\n" not in str(e.value)


def test_dpg_refuses_frames(tmp_path, quiet):
    with pytest.raises(EnvError, match="flat vector") as e:
        pgrad.train("dpg", bool_frames, steps=10, out=tmp_path / "run", **quiet)
    assert "\n" not in str(e.value)


class PixelAgents:
    """A PettingZoo-style parallel env whose agents see 10x10x1 uint8 frames."""

    metadata = {"name": "pixel_agents"}
    possible_agents = ["a0", "a1"]

    def __init__(self) -> None:
        self.agents = list(self.possible_agents)

    def observation_space(self, agent: str) -> gym.spaces.Box:
        return gym.spaces.Box(0, 255, (10, 10, 1), np.uint8)

    def action_space(self, agent: str) -> gym.spaces.Box:
        return gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        return {ag: np.zeros((10, 10, 1), np.uint8) for ag in self.agents}, {ag: {} for ag in self.agents}

    def step(self, actions: dict) -> tuple[dict, ...]:
        obs, _ = self.reset()
        zero = {ag: 0.0 for ag in self.agents}
        false = {ag: False for ag in self.agents}
        return obs, zero, false, false, {ag: {} for ag in self.agents}

    def close(self) -> None:
        pass


def test_maddpg_refuses_frames(tmp_path, quiet):
    with pytest.raises(EnvError, match="MADDPG reads flat vectors") as e:
        pgrad.train("maddpg", lambda: PixelAgents(), steps=10, out=tmp_path / "run", **quiet)
    assert "\n" not in str(e.value) and "10x10x1" in str(e.value)


def policy_return(env: MarkerEnv, act: Any, episodes: int = 50, seed: int = 12_345) -> float:
    """Mean return of ``act(frame) -> action`` over ``episodes`` episodes."""
    total = 0.0
    for ep in range(episodes):
        o, _ = env.reset(seed=seed + ep)
        done = False
        while not done:
            o, r, term, trunc, _ = env.step(act(o))
            total += r
            done = term or trunc
    return total / episodes


@pytest.mark.learning
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_td3_learns_the_marker_from_frames(seed, tmp_path, quiet):
    """TD3 with the MinAtar CNN, 1000 steps: the best blind policy (a = 0) returns about -3.3 over the 8 steps,
    uniform random actions about -5.9, reading the frame perfectly 0."""
    agent = pgrad.train("td3", bool_frames, steps=1000, seed=seed, learning_starts=200, batch_size=64,
                        hidden=(64, 64), eval_every=0, out=tmp_path / "run", **quiet)
    env = bool_frames()
    blind = policy_return(env, lambda o: np.zeros(1, np.float32))
    rng = np.random.default_rng(seed)
    random = policy_return(env, lambda o: rng.uniform(-1, 1, 1))
    learned = policy_return(env, agent.act)
    print(f"seed {seed}: TD3 {learned:.3f}, blind a=0 {blind:.3f}, random {random:.3f}")
    assert learned > -1.0 > blind > random
