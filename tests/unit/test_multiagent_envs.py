"""envs: PettingZoo parallel envs as tensors with an agent axis (MADDPG's data path), against direct env loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv

from pgrad.envs import (
    MultiAgentVecEnv,
    actions_to_dict,
    describe_parallel,
    encode_agents,
    parallel_env_factory,
    run_parallel_episodes,
)
from pgrad.errors import EnvError
from pgrad.seeding import ENV, derive_seed


class Toy(ParallelEnv):
    """Two agents of different sizes: 'a' (obs 2, 2 actions) plays 5 steps (truncated); 'b' (obs 4, 3 actions)
    terminates after 3. Rewards: a gets its action + t, b gets -its action; observations encode t and a seed."""

    metadata = {"name": "toy_v0"}

    def __init__(self):
        self.possible_agents = ["a", "b"]
        self.agents: list[str] = []
        self._spaces = {"a": (spaces.Box(-np.inf, np.inf, (2,)), spaces.Discrete(2)),
                        "b": (spaces.Box(-np.inf, np.inf, (4,)), spaces.Discrete(3))}

    def observation_space(self, agent):
        return self._spaces[agent][0]

    def action_space(self, agent):
        return self._spaces[agent][1]

    def _obs(self):
        return {"a": np.array([self.t, self.s], np.float32), "b": np.array([self.t, self.s, 1, 2], np.float32)}

    def reset(self, seed=None, options=None):
        if seed is not None or not hasattr(self, "rng"):
            self.rng = np.random.default_rng(seed)
        self.s = float(self.rng.integers(100))
        self.t = 0
        self.agents = list(self.possible_agents)
        return {ag: o for ag, o in self._obs().items() if ag in self.agents}, {ag: {} for ag in self.agents}

    def step(self, actions):
        self.t += 1
        self.s = float(self.rng.integers(100))
        rew = {"a": float(actions["a"]) + self.t} if "a" in actions else {}
        if "b" in actions:
            rew["b"] = -float(actions["b"])
        obs = {ag: o for ag, o in self._obs().items() if ag in self.agents}
        term = {ag: ag == "b" and self.t >= 3 for ag in self.agents}
        trunc = {ag: ag == "a" and self.t >= 5 for ag in self.agents}
        self.agents = [ag for ag in self.agents if not (term[ag] or trunc[ag])]
        return obs, rew, term, trunc, {ag: {} for ag in obs}


def test_factory_from_id_instance_and_callable():
    make, env_id = parallel_env_factory("mpe2:simple_speaker_listener_v4")
    assert env_id == "mpe2:simple_speaker_listener_v4" and make().possible_agents == ["speaker_0", "listener_0"]
    make, env_id = parallel_env_factory(Toy())
    assert env_id == "toy_v0" and isinstance(make(), Toy)
    make, env_id = parallel_env_factory(Toy)
    assert env_id == "toy_v0"


@pytest.mark.parametrize("bad,needle", [
    ("CartPole-v1", "is not a PettingZoo env id"),
    ("mpe2:simple_spred_v3", "did you mean mpe2:simple_spread_v3"),
    ("nopkg_xyz:env", "cannot make"),
    (3, "needs a PettingZoo parallel env"),
])
def test_factory_errors(bad, needle):
    with pytest.raises(EnvError, match=needle):
        parallel_env_factory(bad)


def test_describe_pads_heterogeneous_agents():
    spec = describe_parallel(Toy(), "toy")
    assert (spec.agents, spec.obs_dims, spec.act_dims, spec.action_kind) == (["a", "b"], [2, 4], [2, 3], "discrete")
    assert (spec.obs_dim, spec.n_actions) == (4, 3)
    assert spec.obs_mask().tolist() == [[True, True, False, False], [True] * 4]
    assert spec.act_mask().tolist() == [[True, True, False], [True] * 3]
    enc = encode_agents(spec, {"a": np.array([1.0, 2.0]), "b": np.arange(4.0)})
    assert enc.tolist() == [[1, 2, 0, 0], [0, 1, 2, 3]]
    assert actions_to_dict(spec, np.array([1, 2]), {"b"}) == {"b": 2}
    sl = describe_parallel(parallel_env_factory("mpe2:simple_speaker_listener_v4")[0](), "sl")
    assert sl.obs_dims == [3, 11] and sl.act_dims == [3, 5] and sl.max_episode_steps == 25


def test_box_actions_bounds_and_round_trip():
    from mpe2 import simple_spread_v3

    make, env_id = parallel_env_factory(lambda: simple_spread_v3.parallel_env(N=2, continuous_actions=True))
    spec = describe_parallel(make(), env_id)
    assert spec.action_kind == "box" and spec.act_dims == [5, 5]
    low, high = spec.padded_bounds()
    assert low.shape == (2, 5) and np.all(high == 1.0) and np.all(low == 0.0)
    back = type(spec).from_dict(spec.to_dict())
    assert back == spec and back.same_spaces(spec)


def reference_rollout(actions, seed):
    """Direct loop over one Toy env with autoreset: per step (obs_next, reward, term, trunc, acted, final)."""
    env = Toy()
    env.reset(seed=seed)
    out = []
    for a in actions:
        live = set(env.agents)
        o, r, te, tr, _ = env.step({ag: int(a[i]) for i, ag in enumerate(["a", "b"]) if ag in live})
        row = dict(rew=[r.get("a", 0.0), r.get("b", 0.0)], term=[te.get("a", False), te.get("b", False)],
                   trunc=[tr.get("a", False), tr.get("b", False)], acted=["a" in live, "b" in live],
                   final=o, done=not env.agents)
        if not env.agents:
            o, _ = env.reset()
        row["obs"] = o
        out.append(row)
    return out


def test_vec_env_matches_direct_loop():
    spec = describe_parallel(Toy(), "toy")
    venv = MultiAgentVecEnv(Toy, 2, 7, spec)
    rng = np.random.default_rng(0)
    acts = rng.integers(0, 2, (12, 2, 2))
    refs = [reference_rollout(acts[:, e], derive_seed(7, ENV, e)) for e in range(2)]  # env e's stream (pgrad.seeding)
    for t in range(12):
        st = venv.step(acts[t])
        for e in range(2):
            ref = refs[e][t]
            assert st.reward[e].tolist() == ref["rew"]
            assert st.terminated[e].tolist() == ref["term"] and st.truncated[e].tolist() == ref["trunc"]
            assert st.acted[e].tolist() == ref["acted"] and bool(st.done[e]) == ref["done"]
            assert np.array_equal(st.obs[e].numpy(), encode_agents(spec, ref["obs"]))
            assert np.array_equal(st.next_obs[e].numpy(), encode_agents(spec, ref["final"]))
    fin = venv.pop_finished()
    assert len(fin) == 4 and all(length == 5 for _, length in fin)
    per_agent = venv.pop_finished_agents()
    assert all(np.isclose(m, pa.mean()) for (m, _), pa in zip(fin, per_agent))


def test_state_dict_resumes_mid_episode():
    make = parallel_env_factory("mpe2:simple_speaker_listener_v4")[0]
    spec = describe_parallel(make(), "sl")
    a, rng = MultiAgentVecEnv(make, 2, 0, spec), np.random.default_rng(1)
    for _ in range(30):
        a.step(rng.integers(0, 3, (2, 2)))
    b = MultiAgentVecEnv(make, 2, 99, spec)
    assert b.load_state_dict(a.state_dict())
    for _ in range(30):
        act = rng.integers(0, 3, (2, 2))
        sa, sb = a.step(act), b.step(act)
        assert torch.equal(sa.obs, sb.obs) and torch.equal(sa.reward, sb.reward) and torch.equal(sa.done, sb.done)


def test_run_parallel_episodes_per_agent_returns():
    spec = describe_parallel(Toy(), "toy")
    rets = run_parallel_episodes(lambda obs, idx: np.ones((obs.shape[0], 2), np.int64), Toy, spec, 3, 0)
    # a: Σ_{t=1..5} (1 + t) = 20; b: three steps of -1
    assert rets.shape == (3, 2) and np.allclose(rets, [[20.0, -3.0]] * 3)
