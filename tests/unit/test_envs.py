"""envs: SAME_STEP autoreset with the true final observation, terminated vs truncated, normalisation, space errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgrad.envs import VecEnv, check_action_space, describe, env_factory, run_episodes
from pgrad.errors import EnvError


class Counter(gym.Env):
    """obs = [t, episode]; terminates at t == 3 on even episodes, else a time limit of 5 truncates."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self):
        self.t, self.ep = 0, -1

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.ep = 0, self.ep + 1
        return np.array([self.t, self.ep], np.float32), {}

    def step(self, a):
        self.t += 1
        terminated = self.ep % 2 == 0 and self.t == 3
        truncated = not terminated and self.t == 5
        return np.array([self.t, self.ep], np.float32), 1.0, terminated, truncated, {}


def make_vec(n=2, **kw):
    factory, eid = env_factory(Counter)
    spec = describe(factory(), eid)
    return VecEnv(factory, n, 0, spec, **kw)


def test_same_step_autoreset_keeps_final_observation():
    envs = make_vec(1)
    seen = []
    for _ in range(8):
        s = envs.step(np.zeros(1, np.int64))
        seen.append((s.next_obs[0].tolist(), s.obs[0].tolist(), bool(s.terminated[0]), bool(s.truncated[0])))
    # episode 0 terminates at t=3: next_obs is the final obs, obs is the reset obs of episode 1
    assert seen[2] == ([3.0, 0.0], [0.0, 1.0], True, False)
    # episode 1 is truncated at t=5
    assert seen[7] == ([5.0, 1.0], [0.0, 2.0], False, True)
    assert envs.pop_finished() == [(3.0, 3), (5.0, 5)]


def test_normaliser_updates_in_training_and_is_frozen_in_evaluation():
    factory, eid = env_factory("CartPole-v1")
    spec = describe(factory(), eid)
    envs = VecEnv(factory, 4, 0, spec, norm_obs=True)
    for _ in range(50):
        envs.step(np.random.randint(0, 2, 4))
    before = envs.obs_norm.state_dict()
    run_episodes(lambda o: np.zeros(len(o), np.int64), factory, spec, 3, seed=1, obs_norm=envs.obs_norm)
    after = envs.obs_norm.state_dict()
    assert np.array_equal(before["rms"]["mean"], after["rms"]["mean"]) and before["rms"]["count"] == after["rms"]["count"]
    assert abs(envs.obs.mean().item()) < 2.0


def test_vec_env_state_roundtrip_continues_identically():
    factory, eid = env_factory("CartPole-v1")
    spec = describe(factory(), eid)
    a = VecEnv(factory, 3, 7, spec, norm_obs=True)
    rng = np.random.default_rng(0)
    for _ in range(30):
        a.step(rng.integers(0, 2, 3))
    b = VecEnv(factory, 3, 99, spec, norm_obs=True)
    assert b.load_state_dict(a.state_dict())
    for _ in range(40):
        act = rng.integers(0, 2, 3)
        sa, sb = a.step(act), b.step(act)
        assert torch.equal(sa.obs, sb.obs) and torch.equal(sa.reward, sb.reward)


def test_unsupported_spaces_give_clear_errors():
    class DictObs(Counter):
        observation_space = gym.spaces.Dict({"x": gym.spaces.Discrete(2)})

    with pytest.raises(EnvError, match="FlattenObservation"):
        describe(DictObs(), "DictObs")
    spec = describe(gym.make("Pendulum-v1"), "Pendulum-v1")
    with pytest.raises(EnvError, match="does not support Box"):
        check_action_space(spec, "dqnlike", ("discrete",))
    with pytest.raises(EnvError, match="unknown environment 'CartPol-v1'.*CartPole-v1"):
        env_factory("CartPol-v1")


def test_discrete_observations_are_one_hot():
    factory, eid = env_factory("FrozenLake-v1")
    spec = describe(factory(), eid)
    envs = VecEnv(factory, 2, 0, spec)
    assert envs.obs.shape == (2, 16) and torch.all(envs.obs.sum(1) == 1)


@pytest.mark.parametrize("norm", [False, True])
def test_rollout_numpy_store_matches_tensor_store(norm):
    """collect_rollout's CPU path (numpy rows from Step.arrays and VecEnv.obs_array) stores exactly what the
    tensor path stores, across terminations, truncations and normalisation."""
    from pgrad.data.collect import collect_rollout
    from pgrad.data.rollout import Rollout

    a, b = make_vec(3, norm_obs=norm, norm_reward=norm), make_vec(3, norm_obs=norm, norm_reward=norm)
    ra, rb = Rollout(7, 3, a.spec), Rollout(7, 3, b.spec)
    rng = np.random.default_rng(0)

    def sample(obs):
        act = torch.from_numpy(rng.integers(0, 2, 3))
        return act, -obs.sum(-1), act.numpy()

    seen_term = seen_trunc = False
    for _ in range(3):
        collect_rollout(a, sample, ra)
        for t in range(7):  # the tensor path: no obs_array
            obs = b.obs
            act, logp, env_act = sample(obs)
            step = b.step(env_act)
            for arr, ten in zip(step.arrays, (step.obs, step.reward, step.terminated, step.truncated, step.next_obs)):
                assert np.array_equal(arr, ten.numpy())
            rb.store(t, obs, act, logp, step)
        for name in ("obs", "next_obs", "rewards", "terminated", "truncated"):
            assert torch.equal(getattr(ra, name), getattr(rb, name)), name
        seen_term, seen_trunc = seen_term or bool(ra.terminated.any()), seen_trunc or bool(ra.truncated.any())
    assert seen_term and seen_trunc
