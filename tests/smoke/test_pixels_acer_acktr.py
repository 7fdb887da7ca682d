"""ACER and ACKTR on image observations, with the trunk shared by their heads as in their papers: ACER's one
network with π and Q heads whose averaged copy averages the trunk too, and whose replay keeps frames in their own
dtype; ACKTR's encoder forwarded once under K-FAC's ``track()``, its layers preconditioned from the joint Fisher of
actor and critic. Both solve the image identity task, and run on MinAtar and Atari Breakout."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import pgrad
from pgrad.algos import acer, acktr
from pgrad.core.encoders import MinAtarCNN
from pgrad.data.replay import SequenceReplay
from pgrad.envs import describe
from pgrad.envs.identity import ImageIdentityEnv

LENGTH = 16  # ImageIdentityEnv's episode length: its maximal return


def _ident(dtype: str = "bool", size: int = 10):
    return lambda: ImageIdentityEnv(4, size, 1, dtype, length=LENGTH)


def _spec(dtype: str = "bool", size: int = 10):
    return describe(_ident(dtype, size)(), "ImageIdentity")


def _frames(spec, *lead: int) -> torch.Tensor:
    high = 256 if spec.obs_dtype == "uint8" else 2
    x = torch.randint(0, high, (*lead, *spec.obs_shape))
    return x.to(torch.uint8) if spec.obs_dtype == "uint8" else x.bool()


def _segment(spec, T: int, N: int) -> dict[str, torch.Tensor]:
    A = spec.n_actions
    return {"obs": _frames(spec, T, N), "next_obs": _frames(spec, T, N),
            "actions": torch.randint(0, A, (T, N)), "rewards": torch.randn(T, N),
            "terminated": torch.rand(T, N) < 0.1, "truncated": torch.zeros(T, N, dtype=torch.bool),
            "beta_probs": torch.softmax(torch.randn(T, N, A), -1)}


@pytest.fixture
def replays(monkeypatch):
    """The SequenceReplay instances ACER's train builds."""
    made: list[SequenceReplay] = []

    class Recorded(SequenceReplay):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(acer, "SequenceReplay", Recorded)
    return made


def _check_frames_replay(replay: SequenceReplay, spec) -> None:
    """Frames stored as the env gives them: dtype, shape and one byte per pixel."""
    dtype = {"uint8": torch.uint8, "bool": torch.bool}[spec.obs_dtype]
    for name in ("obs", "next_obs"):
        buf = replay.data[name]
        assert buf.dtype == dtype and buf.shape[3:] == tuple(spec.obs_shape)
        assert buf.element_size() == 1
        assert buf.nbytes == replay.S * replay.T * replay.N * math.prod(spec.obs_shape)
    filled = replay.data["obs"][: replay.segments()]
    assert filled.any()
    if spec.obs_dtype == "uint8":
        assert int(filled.max()) > 1  # raw pixel values, not scaled to [0, 1] in storage


def _train(out, algo, env, steps, seed=0, **kw):
    return pgrad.train(algo, env, steps=steps, seed=seed, out=out / algo, progress=False, tensorboard=False,
                       eval_every=0, **kw)


# ----------------------------------------------------------------------------- structure
def test_acer_one_trunk_for_pi_and_q_and_its_average():
    torch.manual_seed(0)
    spec = _spec()
    cfg = acer.Config(replay_start=0)
    nets, opt = acer.build(cfg, spec)
    assert isinstance(nets["enc"], MinAtarCNN) and isinstance(nets["enc_avg"], MinAtarCNN)
    assert nets["pi"].logits[0].in_features == nets["q"].q[0].in_features == nets["enc"].out_dim
    params = opt.param_groups[0]["params"]
    expect = [*nets["enc"].parameters(), *nets["pi"].parameters(), *nets["q"].parameters()]
    assert len({id(p) for p in params}) == len(params) == len(expect)  # the trunk once, no duplicates
    assert {id(p) for p in params} == {id(p) for p in expect}
    assert not any(p.requires_grad for k in ("enc_avg", "pi_avg") for p in nets[k].parameters())

    avg_before = [p.clone() for k in ("enc_avg", "pi_avg") for p in nets[k].parameters()]
    trunk_before = [p.clone() for p in nets["enc"].parameters()]
    acer.update(nets, opt, _segment(spec, 5, 3), cfg)  # (5): θ_avg ← α θ_avg + (1 - α) θ over trunk and head
    assert any(not torch.equal(a, b) for a, b in zip(trunk_before, nets["enc"].parameters()))  # Q and π train it
    live = [*nets["enc"].parameters(), *nets["pi"].parameters()]
    now = [*nets["enc_avg"].parameters(), *nets["pi_avg"].parameters()]
    for old, p, new in zip(avg_before, live, now):
        torch.testing.assert_close(new, cfg.avg_decay * old + (1 - cfg.avg_decay) * p.detach())


def test_acktr_trunk_forwarded_once_and_preconditioned_from_the_joint_fisher():
    spec = _spec()
    torch.manual_seed(1)
    B = 40
    b = {"obs": _frames(spec, B), "actions": torch.randint(0, spec.n_actions, (B,)), "ret": torch.randn(B)}
    G = {}
    for vf_fisher_coef in (1.0, 0.0):
        torch.manual_seed(0)  # the same networks and the same sampled ã, ỹ: only the critic's weight differs
        cfg = acktr.Config(vf_fisher_coef=vf_fisher_coef)
        nets, opt = acktr.build(cfg, spec)
        trunk = [m for m in nets["enc"].modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        assert len(trunk) == 2  # the MinAtar CNN: one conv, one linear
        assert len(set(opt.layers)) == len(opt.layers) and all(m in opt.layers for m in trunk)
        params = opt.param_groups[0]["params"]
        assert len({id(p) for p in params}) == len(params) == len(list(nets.parameters()))
        calls = []
        nets["enc"].register_forward_hook(lambda *_: calls.append(1))
        acktr.update(nets, opt, b, cfg)
        assert len(calls) == 1  # one forward of the trunk for π and V
        for m in trunk:
            st = opt.state[m.weight]
            assert {"A", "G", "QA", "QG"} <= set(st)  # preconditioned by K-FAC (KFC for the conv)
        G[vf_fisher_coef] = [opt.state[m.weight]["G"].clone() for m in trunk]
    # the critic's sampled Fisher term reaches the shared layers' G factors
    assert all(not torch.allclose(g1, g0) for g1, g0 in zip(G[1.0], G[0.0]))


# ----------------------------------------------------------------------------- the identity task
# each seed a few seconds on 2 cores: ACER about 2 s (3k steps), ACKTR about 4 s (5k steps, lr annealed over them)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("algo,steps", [("acer", 3000), ("acktr", 5000)])
def test_solves_image_identity(algo, steps, seed, tmp_path):
    agent = _train(tmp_path, algo, _ident(), steps, seed=seed)
    assert agent.evaluate(episodes=5).mean_return >= 0.9 * LENGTH


def test_acer_replay_keeps_uint8_frames(replays, tmp_path):
    spec = _spec("uint8", 36)  # the Nature CNN's frames, 36x36x1 uint8
    agent = _train(tmp_path, "acer", _ident("uint8", 36), 160, num_envs=2, n_steps=8, buffer_size=320,
                   replay_start=32)
    (replay,) = replays
    _check_frames_replay(replay, spec)
    assert replay.data["obs"].nbytes == 320 * 36 * 36  # 1,296 B per transition, not 5,184 as float32
    assert type(agent.nets["enc"]).__name__ == "NatureCNN"


# ----------------------------------------------------------------------------- MinAtar and Atari Breakout
def test_minatar_breakout(replays, tmp_path):
    pytest.importorskip("minatar")
    a = _train(tmp_path, "acer", "MinAtar/Breakout-v1", 2000, replay_start=400, buffer_size=2000,
               eval_episodes=1)
    _check_frames_replay(replays[0], a.spec)  # bool frames, [4, 10, 10]
    k = _train(tmp_path, "acktr", "MinAtar/Breakout-v1", 2000, eval_episodes=1)
    for agent in (a, k):
        assert agent.spec.obs_shape == (4, 10, 10) and agent.spec.obs_dtype == "bool"
        res = agent.evaluate(episodes=1)
        assert math.isfinite(res.mean_return)
        path = agent.save(tmp_path / f"{agent.algo}.pt")
        again = pgrad.load(path)
        frame = _frames(agent.spec, 3).numpy()
        assert (again.act(frame) == agent.act(frame)).all()


@pytest.mark.slow
def test_acer_atari_breakout(replays, tmp_path):
    """8 s on a quiet 2-core machine, 20 s under load: the Nature CNN's updates (a quarter replayed) and the
    ROM loads."""
    pytest.importorskip("ale_py")
    agent = _train(tmp_path, "acer", "BreakoutNoFrameskip-v4", 2000, num_envs=4, replay_start=400,
                   buffer_size=2000, replay_ratio=0.25, eval_episodes=1)
    assert agent.spec.obs_shape == (4, 84, 84) and agent.spec.obs_dtype == "uint8"
    (replay,) = replays
    _check_frames_replay(replay, agent.spec)
    assert replay.data["obs"].nbytes == 2000 * 28_224  # 28 KB per 4x84x84 observation, not 113 KB as float32
    assert math.isfinite(agent.evaluate(episodes=1).mean_return)


@pytest.mark.slow
def test_acktr_atari_breakout(tmp_path):
    """16 s on a quiet 2-core machine, 40 s under load, mostly K-FAC on the Nature CNN's 512-unit layer: its
    first refresh eigendecomposes the 3137x3137 A factor (seconds in float64); each step preconditions with it."""
    pytest.importorskip("ale_py")
    agent = _train(tmp_path, "acktr", "BreakoutNoFrameskip-v4", 2000, num_envs=8, conv_rows=4096,
                   eval_episodes=1)
    assert agent.spec.obs_shape == (4, 84, 84) and agent.spec.obs_dtype == "uint8"
    assert math.isfinite(agent.evaluate(episodes=1).mean_return)
