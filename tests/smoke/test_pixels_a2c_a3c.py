"""A2C and A3C from pixels: one encoder shared by π and V (the A3C paper shares all non-output layers), the image
identity task (known optimum), MinAtar and Atari end to end, Hogwild! workers with a CNN, A3C with one worker
equal to A2C on images, and exact resume on MinAtar frames."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

import pgrad
from pgrad.envs.identity import ImageIdentityEnv
from pgrad.run import load_checkpoint, seed_everything

QUIET = dict(progress=False, tensorboard=False)


def small_identity() -> ImageIdentityEnv:
    return ImageIdentityEnv(4, 10, 1, "bool")


def final(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")


@pytest.mark.learning
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("size,dtype", [(10, "bool"), (36, "uint8")])  # MinAtar CNN, Nature CNN
def test_a2c_solves_image_identity(tmp_path, seed, size, dtype):
    # the A3C paper's Atari settings (16 envs x 5 steps, RMSprop 7e-4, entropy 0.01): seeds 0-5 all evaluate
    # 16/16 after 8,000 steps on both sizes (1-4 s each); with 8 envs and no entropy bonus, 1 seed in 3 stays at 3
    # of 4 markers
    agent = pgrad.train("a2c", lambda: ImageIdentityEnv(4, size, 1, dtype), steps=8000, seed=seed,
                        out=tmp_path / "r", eval_every=0, num_envs=16, ent_coef=0.01, **QUIET)
    assert agent.evaluate(episodes=10).mean_return >= 0.9 * 16


@pytest.mark.parametrize("algo", ["a2c", "a3c"])
def test_one_encoder_shared_by_pi_and_v(tmp_path, algo):
    extra = {"workers": 1} if algo == "a3c" else {"num_envs": 2}
    agent = pgrad.train(algo, lambda: ImageIdentityEnv(4, 36), steps=40, seed=0, out=tmp_path / "r",
                        eval_every=0, **extra, **QUIET)
    nets = agent.nets
    enc = {id(p) for p in nets["enc"].parameters()}
    pi, v = {id(p) for p in nets["pi"].parameters()}, {id(p) for p in nets["v"].parameters()}
    assert enc and not enc & pi and not enc & v
    assert nets["pi"].logits[0].in_features == nets["enc"].out_dim == 512  # heads read the Nature CNN's features
    fresh, opt = pgrad.ALGOS[algo].build(agent.cfg, agent.spec)
    held = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(held) == len(set(held)) == len(list(fresh.parameters()))  # enc + π + V, each once
    assert set(held) == {id(p) for p in fresh.parameters()}
    frame, _ = ImageIdentityEnv(4, 36).reset(seed=1)  # a raw HWC uint8 frame, as the env gives it
    a = agent.act(frame)
    assert np.ndim(a) == 0 and agent.act(np.stack([frame, frame])).shape == (2,)
    again = pgrad.load(tmp_path / "r")
    assert again.spec.obs_shape == (1, 36, 36) and again.act(frame) == a


def test_a3c_one_worker_equals_a2c_on_images(tmp_path):
    # the image version of tests/equivalence/test_a3c_equals_a2c.py: the worker's local copy is built from the spec
    # (MinAtar CNN included) with the same draws, and its gradients reach the shared encoder by copy
    shared = dict(num_envs=1, n_steps=5, lr=7e-4, gamma=0.99, vf_coef=0.5, ent_coef=0.01, max_grad_norm=0.5,
                  hidden=(), activation="relu", anneal_lr=False, optimizer="rmsprop", rms_alpha=0.99, opt_eps=1e-5,
                  eval_every=0, checkpoint_every=0, **QUIET)
    steps = 12 * shared["n_steps"]
    agent = pgrad.train("a2c", small_identity, steps=steps, seed=5, out=tmp_path / "a2c", lam=1.0, **shared)
    pgrad.train("a3c", small_identity, steps=steps, seed=5, out=tmp_path / "a3c", workers=1, **shared)
    a, b = final(tmp_path / "a2c")["nets"], final(tmp_path / "a3c")["nets"]
    assert a.keys() == b.keys() and any(k.startswith("enc.") for k in a)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    seed_everything(5)
    init = pgrad.ALGOS["a2c"].build(agent.cfg, agent.spec)[0].state_dict()
    moved = [k for k in init if k.startswith("enc.") and not torch.equal(init[k], b[k])]
    assert moved  # the shared encoder was trained: the comparison is not vacuous


@pytest.mark.parametrize("env", ["MinAtar/Breakout-v1", "identity"])
def test_a3c_hogwild_workers_on_frames(tmp_path, env):
    factory = small_identity if env == "identity" else env
    agent = pgrad.train("a3c", factory, steps=3000, seed=0, out=tmp_path / "r", workers=2, eval_every=3000,
                        eval_episodes=1, **QUIET)
    assert agent.spec.is_image and agent.cfg.workers == 2
    last = final(tmp_path / "r")
    assert last["step"] >= 3000 and last["train"]["counters"]["updates"] >= 3000 // (5 * agent.cfg.num_envs)
    rows = list(csv.DictReader(open(tmp_path / "r" / "evaluations.csv")))
    assert len(rows) == 1 and np.isfinite(float(rows[0]["mean_return"]))
    res = agent.evaluate(episodes=1)
    assert len(res.returns) == 1 and float(res.mean_return).is_integer()


def test_a2c_on_minatar_resumes_exactly(tmp_path):
    # 2,000 steps + resume to 4,000 == 4,000 straight, bit for bit (the MinAtar envs' states are in the checkpoint)
    kw = dict(anneal_lr=False, eval_every=1000, eval_episodes=1, checkpoint_every=1000, num_envs=4, seed=1, **QUIET)
    pgrad.train("a2c", "MinAtar/Breakout-v1", out=tmp_path / "straight", steps=4000, **kw)
    pgrad.train("a2c", "MinAtar/Breakout-v1", out=tmp_path / "resumed", steps=2000, **kw)
    pgrad.train("a2c", None, resume=tmp_path / "resumed", steps=4000, **QUIET)
    a, b = final(tmp_path / "straight"), final(tmp_path / "resumed")
    assert a["step"] == b["step"] == 4000 and a["nets"].keys() == b["nets"].keys()
    for k in a["nets"]:
        assert torch.equal(a["nets"][k], b["nets"][k]), k


def test_a2c_on_atari_end_to_end(tmp_path):
    pytest.importorskip("ale_py")
    agent = pgrad.train("a2c", "BreakoutNoFrameskip-v4", steps=2000, seed=0, out=tmp_path / "r", eval_every=0,
                        eval_episodes=1, num_envs=4, **QUIET)
    assert agent.spec.obs_shape == (4, 84, 84) and agent.spec.obs_dtype == "uint8"
    assert agent.cfg.hidden == () and agent.cfg.ent_coef == 0.01  # the atari family preset
    assert final(tmp_path / "r")["step"] == 2000
    from pgrad.envs.atari import make_atari

    obs, _ = make_atari("BreakoutNoFrameskip-v4", train=False).reset(seed=0)
    assert 0 <= int(agent.act(obs)) < 4
    res = agent.evaluate(episodes=1)  # a full game (all lives, raw score): under a second here
    assert float(res.mean_return).is_integer() and len(res.returns) == 1
