"""Numerics: a non-finite loss, gradient or parameter stops training with a diagnostic (which quantity, which step,
the last good checkpoint, kept) and exit code 3 from the CLI; ``on_nonfinite=skip`` skips the optimiser steps whose
gradients are not finite instead, and counts them (progress.csv ``skipped_updates``, run.log)."""

from __future__ import annotations

import csv
import math
import re

import gymnasium as gym
import numpy as np
import pytest
import torch

import pgrad
from pgrad.algos import get_algo
from pgrad.api import prepare
from pgrad.cli import main
from pgrad.errors import NumericsError
from pgrad.run import Run, load_checkpoint


class BadRewardEnv(gym.Env):
    """A 20-step toy episode with reward 1 per step, except ``value`` (NaN or inf) at the ``bad_step``-th step of
    the env's life (counted across episodes). Discrete actions, or a 1-D Box with ``continuous``."""

    def __init__(self, bad_step: int = 300, value: float = math.nan, continuous: bool = False):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32) if continuous else gym.spaces.Discrete(2)
        self.bad_step, self.value = bad_step, value
        self.t = self.life = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):
        self.t += 1
        self.life += 1
        r = self.value if self.life == self.bad_step else 1.0
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), r, self.t >= 20, False, {}


gym.register("pgrad_test/InfReward-v0", entry_point=lambda **kw: BadRewardEnv(value=math.inf, **kw))

PPO = dict(num_envs=1, n_steps=64, batch_size=32, epochs=2, hidden=(16, 16), checkpoint_every=128, eval_every=0,
           eval_episodes=1, progress=False, tensorboard=False)


def test_nan_reward_stops_with_the_quantity_the_step_and_the_checkpoint_kept(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(NumericsError) as e:
        pgrad.train("ppo", BadRewardEnv, steps=1024, out=out, **PPO)
    msg = str(e.value)
    # the 300th step lies in the rollout of steps 257-320: its losses are NaN
    assert re.match(r"non-finite loss/policy, loss/value.* at step 320 \(update \d+\); last good checkpoint kept: "
                    r"\S+last\.pt \(step 256\); try a lower learning rate", msg), msg
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["step"] == 256
    assert all(bool(torch.isfinite(v).all()) for v in ckpt["nets"].values() if v.is_floating_point())
    pgrad.load(out).evaluate(episodes=1, env=BadRewardEnv)  # the kept checkpoint is a working policy


def test_cli_exits_3_with_one_line_on_an_inf_reward(tmp_path, capsys):
    code = main(["train", "ppo", "pgrad_test/InfReward-v0", "--steps", "1024", "--out", str(tmp_path / "run"),
                 "--n-steps", "64", "--batch-size", "32", "--epochs", "1", "--hidden", "16", "16", "--eval-every", "0",
                 "--eval-episodes", "1", "--progress", "false", "--tensorboard", "false"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert err.startswith("pgrad: error: non-finite ") and err.count("\n") == 1, err
    assert "at step 320" in err and "last good checkpoint kept" in err


def test_skip_mode_skips_and_counts_the_bad_steps_and_completes(tmp_path):
    out = tmp_path / "run"
    agent = pgrad.train("ppo", BadRewardEnv, steps=1024, out=out, on_nonfinite="skip", select="last", log_every=64,
                        **PPO)
    with open(out / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    skipped = [int(r["skipped_updates"]) for r in rows]
    assert skipped[-1] > 0 and skipped == sorted(skipped)
    assert skipped[3] == 0 and skipped[4] > 0  # nothing before step 320's rollout, its minibatches after
    assert math.isnan(float(rows[4]["loss/value"]))  # the skipped losses stay visible in the logs
    assert math.isfinite(float(rows[-1]["loss/value"]))  # and training went on after them
    assert "skipped a step of opt: non-finite gradient of " in (out / "run.log").read_text()
    assert all(bool(torch.isfinite(p).all()) for p in agent.nets.parameters())
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["train"]["counters"]["skipped_updates"] == skipped[-1]


def test_skip_mode_for_an_off_policy_algorithm(tmp_path):
    out = tmp_path / "run"
    pgrad.train("sac", lambda: BadRewardEnv(bad_step=150, continuous=True), steps=400, out=out, on_nonfinite="skip",
                hidden=(16, 16), batch_size=32, learning_starts=100, eval_every=0, eval_episodes=1, log_every=50,
                progress=False, tensorboard=False)
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["train"]["counters"]["skipped_updates"] > 0  # every batch that draws the NaN transition
    assert all(bool(torch.isfinite(v).all()) for v in ckpt["nets"].values() if v.is_floating_point())


def make_run(tmp_path, **kw):
    module, algo, cfg, factory, spec, run_dir, _ = prepare("ppo", "CartPole-v1", out=tmp_path / "run",
                                                           **{**PPO, **kw})
    run = Run(algo, module, cfg, factory, spec, run_dir)
    run.make_envs()
    nets, opt = module.build(cfg, spec)
    run.track(nets=nets, opt=opt)  # writes the step-0 checkpoint
    return run, nets, opt


def test_a_non_finite_parameter_is_named_and_never_saved(tmp_path):
    run, nets, _ = make_run(tmp_path)
    try:
        before = (run.dir / "checkpoints" / "last.pt").read_bytes()
        with torch.no_grad():
            nets["v"].v[0].weight[0, 0] = math.inf
        with pytest.raises(NumericsError, match=r"non-finite parameter v\.v\.0\.weight at step 128 .*"
                                                r"last good checkpoint kept: .*last\.pt \(step 0\)"):
            run.advance(128)  # a checkpoint is due: the check comes before the write
        assert (run.dir / "checkpoints" / "last.pt").read_bytes() == before
    finally:
        run.close()


def test_a_huge_but_finite_parameter_is_not_flagged(tmp_path):
    run, nets, _ = make_run(tmp_path)
    try:
        with torch.no_grad():
            nets["v"].v[0].weight.fill_(3e38)  # its norm overflows float32; the values are finite
        assert run.nonfinite_params() == []
    finally:
        run.close()


@pytest.mark.parametrize("mode", ["stop", "skip"])
def test_a_non_finite_gradient(mode, tmp_path):
    run, nets, opt = make_run(tmp_path, on_nonfinite=mode)
    try:
        params = [p.detach().clone() for p in nets.parameters()]
        for p in nets.parameters():
            p.grad = torch.ones_like(p)
        next(nets["pi"].parameters()).grad[0] = math.nan
        opt.step()
        if mode == "skip":  # skipped and counted, the parameters untouched
            assert run.skipped_updates == 1
            assert all(torch.equal(a, b) for a, b in zip(params, nets.parameters()))
            assert re.search(r"skipped a step of opt: non-finite gradient of pi\.\S+ \(1 skipped so far\)",
                             (run.dir / "run.log").read_text())
        else:  # the step spreads it to the parameters: stopped at the next check, naming them
            with pytest.raises(NumericsError, match=r"non-finite parameter pi\."):
                run.advance(128)
    finally:
        run.close()


def test_on_nonfinite_can_change_when_resuming(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(NumericsError):
        pgrad.train("ppo", BadRewardEnv, steps=1024, out=out, **PPO)
    # the same run, resumed from its last good checkpoint with skipping on, gets past the bad step
    pgrad.train("ppo", BadRewardEnv, resume=out, on_nonfinite="skip", progress=False)
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["step"] == 1024 and ckpt["train"]["counters"]["skipped_updates"] > 0


def test_every_algorithm_config_has_the_option():
    from pgrad.algos import ALGOS

    for name in ALGOS:
        assert get_algo(name).Config().on_nonfinite == "stop"
