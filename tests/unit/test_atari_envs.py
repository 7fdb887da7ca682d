"""Atari preprocessing (pgrad.envs.atari) and MinAtar envs (pgrad.envs.minatar): shapes, the DeepMind wrapper
semantics (max-and-skip, episodic life in training only, reward clipping, fire and no-op resets, raw scores,
truncation), seeds, exact pickling and the missing-extra messages."""

from __future__ import annotations

import copy
import pickle
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgrad.envs.atari import MaxAndSkip, is_atari_id, make_atari
from pgrad.envs.minatar import is_minatar_id, make_minatar
from pgrad.errors import EnvError


def _chain(env):
    out = [env]
    while isinstance(out[-1], gym.Wrapper):
        out.append(out[-1].env)
    return out


def _find(env, cls):
    return next(w for w in _chain(env) if isinstance(w, cls))


def _play(env, actions, reset_on_end=True):
    """(obs bytes, reward, terminated, truncated, raw_return) per step; resets where an episode ends."""
    out = []
    for a in actions:
        obs, r, term, trunc, info = env.step(int(a))
        out.append((obs.tobytes(), r, term, trunc, info.get("raw_return")))
        if (term or trunc) and reset_on_end:
            out.append(env.reset()[0].tobytes())
    return out


# ----------------------------------------------------------------------------- ids and missing extras
def test_is_atari_id():
    for eid in ("ALE/Pong-v5", "PongNoFrameskip-v4", "BreakoutNoFrameskip-v0"):
        assert is_atari_id(eid)
    for eid in ("CartPole-v1", "MinAtar/Breakout-v1", "Nope-v0", "", None):
        assert not is_atari_id(eid)
    pytest.importorskip("ale_py")
    assert is_atari_id("Pong-v4")  # registered with ale_py's AtariEnv


def test_is_minatar_id():
    assert is_minatar_id("MinAtar/Breakout-v1")
    assert not is_minatar_id("BreakoutNoFrameskip-v4") and not is_minatar_id("CartPole-v1")


def test_missing_extras_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py", None)  # `import ale_py` now raises ImportError
    with pytest.raises(EnvError) as e:
        make_atari("PongNoFrameskip-v4", train=True)
    assert str(e.value) == "PongNoFrameskip-v4 needs the Atari extra: pip install 'pgrad[atari]'"
    assert is_atari_id("ALE/Pong-v5") and not is_atari_id("Pong-v4")
    monkeypatch.setitem(sys.modules, "minatar.gym", None)
    with pytest.raises(EnvError) as e:
        make_minatar("MinAtar/Breakout-v1", train=True)
    assert str(e.value) == "MinAtar/Breakout-v1 needs the MinAtar extra: pip install 'pgrad[minatar]'"


# ----------------------------------------------------------------------------- Atari
@pytest.fixture(scope="module")
def ale():
    pytest.importorskip("cv2")
    return pytest.importorskip("ale_py")


@pytest.mark.parametrize("train", [True, False])
def test_observations_are_uint8_channel_first_stacks(ale, train):
    env = make_atari("PongNoFrameskip-v4", train=train)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert env.observation_space.shape == (4, 84, 84) and env.observation_space.dtype == np.uint8
    assert (obs == obs[0]).all()  # a reset fills the stack with its frame
    obs2, *_ = env.step(0)
    assert env.observation_space.contains(obs2) and (obs2[:3] == obs[1:]).all()
    assert env.spec.id == "PongNoFrameskip-v4"
    assert make_atari("PongNoFrameskip-v4", train=train, frame_stack=1).reset(seed=0)[0].shape == (1, 84, 84)


def test_max_and_skip_sums_four_rewards_and_max_pools_last_two(ale):
    env, twin = MaxAndSkip(gym.make("PongNoFrameskip-v4"), 4), gym.make("PongNoFrameskip-v4")
    env.reset(seed=1)
    twin.reset(seed=1)
    rewards = 0
    for a in np.random.default_rng(0).integers(6, size=250):
        obs, r, *_ = env.step(int(a))
        frames, total = [], 0.0
        for _ in range(4):
            f, fr, *_ = twin.step(int(a))
            frames.append(f)
            total += fr
        assert r == total
        assert np.array_equal(obs, np.maximum(frames[2], frames[3]))
        rewards += r != 0
    assert rewards > 0  # the sum was checked on scoring steps too


def test_episodic_life_in_training_only(ale):
    rng = np.random.default_rng(0)
    train = make_atari("BreakoutNoFrameskip-v4", train=True)
    _, info = train.reset(seed=0)
    assert info["lives"] == 5
    for _ in range(2000):
        _, _, term, trunc, info = train.step(int(rng.integers(4)))
        if term:
            break
    assert term and not trunc and info["lives"] == 4 and info["game_over"] is False and "raw_return" not in info
    frame = info["episode_frame_number"]
    _, info = train.reset()
    assert info["lives"] == 4 and info["episode_frame_number"] > frame  # the same game goes on

    evaluate = make_atari("BreakoutNoFrameskip-v4", train=False)
    _, info = evaluate.reset(seed=0)
    lives_seen = {info["lives"]}
    for _ in range(5000):
        _, _, term, trunc, info = evaluate.step(int(rng.integers(4)))
        if term or trunc:
            break
        lives_seen.add(info["lives"])
    assert term and info["lives"] == 0 and info["game_over"] is True and "raw_return" in info
    assert lives_seen == {1, 2, 3, 4, 5}  # it played through every life without terminating


def test_reward_clipping_in_training_only(ale):
    train = make_atari("SpaceInvadersNoFrameskip-v4", train=True)
    evaluate = make_atari("SpaceInvadersNoFrameskip-v4", train=False)
    train.reset(seed=3)
    evaluate.reset(seed=3)
    raw = []
    for a in np.random.default_rng(0).integers(6, size=2000):  # identical games up to the first life loss
        _, r_train, term, _, _ = train.step(int(a))
        _, r_eval, *_ = evaluate.step(int(a))
        assert r_train == np.sign(r_eval)
        raw.append(r_eval)
        if term:
            break
    assert max(raw) > 1  # invaders are worth 5..30 points


def test_fire_reset_launches_the_ball(ale):
    env = make_atari("BreakoutNoFrameskip-v4", train=False)
    _, info = env.reset(seed=0)
    assert info["episode_frame_number"] >= 5  # at least one NOOP frame, then FIRE for 4 frames
    for _ in range(1000):  # NOOP only: without the FIRE press at reset no life is ever lost
        _, _, _, _, info = env.step(0)
        if info["lives"] < 5:
            break
    assert info["lives"] == 4
    assert "FIRE" not in gym.make("FreewayNoFrameskip-v4").unwrapped.get_action_meanings()
    make_atari("FreewayNoFrameskip-v4", train=True).reset(seed=0)  # no FIRE: no fire reset, still works


def test_noop_reset_reproducible_under_seeds(ale):
    a, b = make_atari("PongNoFrameskip-v4", train=True), make_atari("PongNoFrameskip-v4", train=True)
    frames = set()
    for seed in range(3):  # each seeded reset reloads the ROM (~65 ms)
        obs_a, info_a = a.reset(seed=seed)
        obs_b, info_b = b.reset(seed=seed)
        assert np.array_equal(obs_a, obs_b) and info_a["episode_frame_number"] == info_b["episode_frame_number"]
        frames.add(info_a["episode_frame_number"])
        assert 1 + 4 <= info_a["episode_frame_number"] <= 30 + 4  # 1..30 NOOP frames + one FIRE step
    assert len(frames) > 1  # the number of no-ops varies with the seed


def test_raw_return_is_the_full_game_score(ale):
    rng = np.random.default_rng(1)
    env = make_atari("SpaceInvadersNoFrameskip-v4", train=True)  # 3 lives, invaders worth 5..30 points
    skip = _find(env, MaxAndSkip)
    inner_step, raw = skip.step, []

    def spy(action):  # every agent step beneath the recorder, with its raw reward
        out = inner_step(action)
        raw.append(out[1])
        return out

    skip.step = spy
    env.reset(seed=1)
    terminations, clipped, info = 0, 0.0, {}
    for _ in range(5000):
        _, r, term, trunc, info = env.step(int(rng.integers(6)))
        assert r in (0.0, 1.0)
        clipped += r
        if "raw_return" in info:
            break
        if term:
            terminations += 1
            env.reset()
    assert terminations == 2 and info["game_over"]  # two life losses, then the game over
    assert info["raw_return"] == sum(raw) > clipped > 0 and info["raw_length"] == len(raw)

    evaluate = make_atari("BreakoutNoFrameskip-v4", train=False)
    evaluate.reset(seed=3)
    rng = np.random.default_rng(3)
    rewards, relaunches, lives = [], 0, 5
    for _ in range(5000):
        _, r, term, trunc, info = evaluate.step(int(rng.integers(4)))
        rewards.append(r)
        if term or trunc:
            break
        relaunches += info["lives"] < lives  # evaluation presses FIRE after each lost life: one more step
        lives = info["lives"]
    assert relaunches == 4
    assert info["raw_return"] == sum(rewards) > 0 and info["raw_length"] == len(rewards) + 1 + relaunches


def test_evaluation_relaunches_after_a_lost_life(ale):
    """Training relaunches the ball after each lost life (episodic life resets through FireReset), so a policy
    never learns to press FIRE; evaluation plays full games and must relaunch too, or it idles to the time limit."""
    env = make_atari("BreakoutNoFrameskip-v4", train=False)
    env.reset(seed=0)
    for t in range(10_000):
        _, _, term, trunc, info = env.step(0)  # NOOP forever: only the wrapper presses FIRE
        if term or trunc:
            break
    assert term and not trunc and info["lives"] == 0 and t < 5000


def test_time_limits_truncate(ale):
    assert gym.make("PongNoFrameskip-v4").unwrapped.ale.getInt("max_num_frames_per_episode") == 108_000
    env = make_atari("PongNoFrameskip-v4", train=False, max_num_frames_per_episode=400)  # ALE frames
    env.reset(seed=0)
    for n in range(1, 101):
        _, _, term, trunc, info = env.step(0)
        if term or trunc:
            break
    assert trunc and not term and n < 100 and info["game_over"] and "raw_return" in info

    env = make_atari("BreakoutNoFrameskip-v4", train=True, max_episode_steps=15)  # agent steps of the game
    env.reset(seed=0)
    for _ in range(15):
        _, _, term, trunc, info = env.step(0)
        if term or trunc:
            break
    assert trunc and not term and info["raw_length"] == 15  # the FIRE step at reset counts
    _, info = env.reset()
    assert info["lives"] == 5 and info["episode_frame_number"] < 40  # a real reset after a truncation


def test_v5_keeps_sticky_actions(ale):
    env = make_atari("ALE/Pong-v5", train=True)
    ale_if = env.unwrapped.ale
    assert ale_if.getFloat("repeat_action_probability") == pytest.approx(0.25)
    assert env.unwrapped._frameskip == 1 and _find(env, MaxAndSkip).skip == 4
    assert ale_if.getInt("max_num_frames_per_episode") == 108_000
    assert env.reset(seed=0)[0].shape == (4, 84, 84)
    off = make_atari("ALE/Pong-v5", train=True, repeat_action_probability=0.0)
    assert off.unwrapped.ale.getFloat("repeat_action_probability") == 0.0
    v4 = make_atari("PongNoFrameskip-v4", train=True)
    assert v4.unwrapped.ale.getFloat("repeat_action_probability") == 0.0


def test_pickle_and_state_are_exact(ale):
    from pgrad.envs.atari import atari_state, restore_atari_state

    rng = np.random.default_rng(0)
    env = make_atari("ALE/Breakout-v5", train=True)  # sticky actions: the emulator RNG must come along
    env.reset(seed=3)
    _play(env, rng.integers(4, size=150))
    actions = rng.integers(4, size=250)
    blob, state, clone = pickle.dumps(env), atari_state(env), copy.deepcopy(env)
    ref = _play(env, actions)
    assert _play(pickle.loads(blob), actions) == ref
    assert _play(clone, actions) == ref
    fresh = make_atari("ALE/Breakout-v5", train=True)
    restore_atari_state(fresh, state)
    assert _play(fresh, actions) == ref


def test_render_gives_the_rgb_screen_and_unknown_ids_fail(ale):
    env = make_atari("BreakoutNoFrameskip-v4", train=False, render_mode="rgb_array")
    env.reset(seed=0)
    assert env.render().shape == (210, 160, 3)
    with pytest.raises(EnvError, match="unknown Atari environment"):
        make_atari("ALE/Pongg-v5", train=False)


# ----------------------------------------------------------------------------- MinAtar
@pytest.fixture(scope="module")
def minatar():
    return pytest.importorskip("minatar")


@pytest.mark.filterwarnings("ignore:.*is out of date:DeprecationWarning")  # -v0 (6 actions) next to -v1
@pytest.mark.parametrize("game,channels", [("Breakout", 4), ("SpaceInvaders", 6), ("Freeway", 7),
                                           ("Asterix", 4), ("Seaquest", 10)])
def test_minatar_observations(minatar, game, channels):
    env = make_minatar(f"MinAtar/{game}-v1", train=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (10, 10, channels) and obs.dtype == np.bool_
    assert env.observation_space.shape == (10, 10, channels) and env.observation_space.dtype == np.bool_
    obs, r, *_ = env.step(0)
    assert env.observation_space.contains(obs) and isinstance(float(r), float)
    assert env.spec.max_episode_steps == 10_000
    assert make_minatar(f"MinAtar/{game}-v0", train=False).action_space.n == 6


def test_minatar_seeds_and_pickles(minatar):
    actions = np.random.default_rng(0).integers(4, size=300)
    a, b = make_minatar("MinAtar/SpaceInvaders-v1", train=True), make_minatar("MinAtar/SpaceInvaders-v1", train=True)
    a.reset(seed=5)
    b.reset(seed=5)
    assert _play(a, actions) == _play(b, actions)
    blob, clone = pickle.dumps(a), copy.deepcopy(a)  # mid-episode
    ref = _play(a, actions)
    assert _play(pickle.loads(blob), actions) == ref and _play(clone, actions) == ref


def test_minatar_time_limit_truncates(minatar):
    env = make_minatar("MinAtar/Freeway-v1", train=True, max_episode_steps=20)
    env.reset(seed=0)
    out = _play(env, [0] * 20, reset_on_end=False)
    assert out[-1][3] and not out[-1][2] and not any(step[3] for step in out[:-1])
    assert make_minatar("MinAtar/Freeway-v1", train=True, max_episode_steps=None).spec.max_episode_steps is None
    with pytest.raises(EnvError, match="unknown MinAtar environment"):
        make_minatar("MinAtar/Pong-v1", train=True)


def test_vector_env_logs_raw_game_scores_sync_and_async_alike(ale):
    """The training env ends an episode at each lost life, but the logged return is the game's raw score, once
    per game: in process and in subprocesses (where Gymnasium hands the last infos over in final_info)."""
    from pgrad.envs import VecEnv, describe, env_factory

    factory, env_id = env_factory("BreakoutNoFrameskip-v4")
    spec = describe(factory(), env_id)
    out = {}
    for kind in ("sync", "async"):
        envs = VecEnv(factory, 2, 0, spec, vectorization=kind)
        rng = np.random.default_rng(0)
        lives_lost = 0
        for _ in range(1500):
            step = envs.step(rng.integers(4, size=2))
            lives_lost += int(step.terminated.sum())
        out[kind] = (envs.pop_finished(), lives_lost, envs.obs.clone())
        envs.close()
    (games, lost, obs), (games_a, lost_a, obs_a) = out["sync"], out["async"]
    assert games == games_a and lost == lost_a and torch.equal(obs, obs_a)
    assert games and lost >= 5 * len(games)  # five lives a game: episodes of the learner are lives, not games
    assert all(float(r).is_integer() and length > 0 for r, length in games)
