"""PPO from pixels: the image identity task (known optimum), MinAtar and Atari end to end, and the refusals."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

import pgrad
from pgrad.envs.identity import ImageIdentityEnv
from pgrad.errors import ConfigError, EnvError

QUIET = dict(progress=False, tensorboard=False)
SMALL = dict(n_steps=64, num_envs=4, batch_size=64, epochs=4, hidden=(), lr=1e-3)


@pytest.mark.learning
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("size,dtype", [(10, "bool"), (36, "uint8")])  # MinAtar CNN, Nature CNN
def test_ppo_solves_image_identity(tmp_path, seed, size, dtype):
    # seeds 0-3 all evaluate 16/16 after 3,072 steps (2-6 s each)
    agent = pgrad.train("ppo", lambda: ImageIdentityEnv(4, size, 1, dtype), steps=3072, seed=seed,
                        out=tmp_path / "r", eval_every=0, **SMALL, **QUIET)
    assert agent.evaluate(episodes=10).mean_return >= 0.9 * 16


def test_ppo_shares_one_encoder_and_stores_frames_as_they_come(tmp_path):
    agent = pgrad.train("ppo", lambda: ImageIdentityEnv(4, 36), steps=256, seed=0, out=tmp_path / "r",
                        eval_every=0, **SMALL, **QUIET)
    nets = agent.nets
    enc_params = {id(p) for p in nets["enc"].parameters()}
    assert enc_params and not enc_params & {id(p) for p in nets["pi"].parameters()}
    assert not enc_params & {id(p) for p in nets["v"].parameters()}
    frame, _ = ImageIdentityEnv(4, 36).reset(seed=1)  # a raw HWC uint8 frame, as the env gives it
    a = agent.act(frame)
    assert np.ndim(a) == 0 and agent.act(np.stack([frame, frame])).shape == (2,)
    again = pgrad.load(tmp_path / "r")
    assert again.spec.obs_shape == (1, 36, 36) and again.act(frame) == a


def test_ppo_on_minatar_evaluates_raw_scores(tmp_path):
    agent = pgrad.train("ppo", "MinAtar/Breakout-v1", steps=2048, seed=0, out=tmp_path / "r", eval_every=1024,
                        eval_episodes=2, **QUIET)
    assert agent.spec.obs_shape == (4, 10, 10) and agent.spec.obs_dtype == "bool"
    assert agent.cfg.n_steps == 128 and agent.cfg.hidden == ()  # the minatar family preset
    rows = list(csv.DictReader(open(tmp_path / "r" / "evaluations.csv")))
    assert [int(r["step"]) for r in rows] == [1024, 2048]
    assert all(float(r["mean_return"]) == int(float(r["mean_return"]) * 2) / 2 for r in rows)  # game points


def test_ppo_on_atari_end_to_end(tmp_path):
    pytest.importorskip("ale_py")
    agent = pgrad.train("ppo", "BreakoutNoFrameskip-v4", steps=1024, seed=0, out=tmp_path / "r", eval_every=0,
                        eval_episodes=1, num_envs=2, n_steps=256, **QUIET)
    assert agent.spec.obs_shape == (4, 84, 84) and agent.spec.obs_dtype == "uint8"
    from pgrad.envs.atari import make_atari

    env = make_atari("BreakoutNoFrameskip-v4", train=False)
    obs, _ = env.reset(seed=0)
    assert 0 <= int(agent.act(obs)) < 4
    with torch.no_grad():
        h = agent.nets["enc"](torch.as_tensor(obs)[None])
    assert h.shape == (1, 512)
    res = agent.evaluate(episodes=1)  # a full game (all lives, raw score)
    assert len(res.returns) == 1 and float(res.mean_return).is_integer()


def test_images_refuse_what_would_break_them(tmp_path):
    make = lambda: ImageIdentityEnv(4, 10, 1, "bool")  # noqa: E731
    with pytest.raises(ConfigError, match="norm_obs would z-score every pixel"):
        pgrad.train("ppo", make, steps=64, out=tmp_path / "a", norm_obs=True, **QUIET)
    with pytest.raises(EnvError, match="--net minatar"):
        pgrad.train("ppo", make, steps=64, out=tmp_path / "b", net="nature", **QUIET)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before a run directory


def test_net_mlp_flattens_frames(tmp_path):
    import pgrad.core.encoders as E

    E._warned_mlp = False
    with pytest.warns(UserWarning, match="every pixel"):
        agent = pgrad.train("ppo", lambda: ImageIdentityEnv(4, 10, 1, "bool"), steps=256, seed=0,
                            out=tmp_path / "r", eval_every=0, net="mlp", **SMALL, **QUIET)
    assert type(agent.nets["enc"]).__name__ == "FlatFrames"


def test_video_of_an_atari_game_records_the_raw_screen(tmp_path):
    pytest.importorskip("ale_py")
    pytest.importorskip("moviepy")
    import imageio.v3 as iio

    from pgrad.video import record_video

    agent = pgrad.train("ppo", "BreakoutNoFrameskip-v4", steps=64, seed=0, out=tmp_path / "r", eval_every=0,
                        eval_episodes=1, num_envs=1, n_steps=64, **QUIET)
    paths, returns = record_video(agent, tmp_path / "v", episodes=1)
    frame = next(iter(iio.imiter(paths[0])))
    assert frame.shape[:2] == (210, 160) and frame.shape[2] == 3  # the emulator's RGB screen, not 84x84 gray
    assert len(returns) == 1 and float(returns[0]).is_integer()
