"""Smoke: MADDPG on PettingZoo MPE (Discrete and Box actions, heterogeneous agents), inferred policies, policy
ensembles, independent DDPG, the CLI with per-agent evaluation, checkpoints and resume; a few hundred steps each."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import pgrad
from pgrad.cli import main
from pgrad.errors import ConfigError, EnvError

SL = "mpe2:simple_speaker_listener_v4"
TINY = dict(steps=400, learning_starts=150, batch_size=32, update_every=25, hidden=(16, 16), eval_every=200,
            eval_episodes=2, num_envs=2, checkpoint_every=200, log_every=100)


def spread_box():
    from mpe2 import simple_spread_v3

    return simple_spread_v3.parallel_env(N=2, continuous_actions=True)


@pytest.mark.parametrize("env,kw", [
    (SL, {}),
    (SL, {"infer_policies": True}),
    (SL, {"ensemble": 3}),
    (SL, {"ensemble": 2, "infer_policies": True, "gumbel_hard": False}),
    (SL, {"centralized": False}),
    (spread_box, {"infer_policies": True, "ensemble": 2}),
])
def test_trains_evaluates_and_acts(env, kw, tmp_path, quiet):
    out = tmp_path / "run"
    agent = pgrad.train("maddpg", env, out=out, seed=1, **TINY, **kw, **quiet)
    res = agent.evaluate(episodes=3)
    assert len(res.returns) == 3 and np.isfinite(res.mean_return)
    assert set(res.per_agent) == set(agent.spec.agents)
    assert np.isclose(res.total_return, sum(res.per_agent.values()))
    assert np.isclose(res.mean_return, np.mean(list(res.per_agent.values())))
    for f in ("config.yaml", "progress.csv", "evaluations.csv", "curve.png", "checkpoints/last.pt",
              "checkpoints/best.pt", "run.log"):
        assert (out / f).exists(), f
    with open(out / "evaluations.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(f"return/{ag}" in rows[0] for ag in agent.spec.agents) and "total_return" in rows[0]
    with open(out / "progress.csv") as f:
        prog = list(csv.DictReader(f))
    assert "loss/critic" in prog[-1] and prog[-1]["loss/critic"] != ""
    if kw.get("infer_policies"):
        assert prog[-1]["loss/infer"] != ""
    obs = {ag: np.zeros(d, np.float32) for ag, d in zip(agent.spec.agents, agent.spec.obs_dims)}
    a = agent.act(obs)
    assert set(a) == set(agent.spec.agents)
    for i, ag in enumerate(agent.spec.agents):
        if agent.spec.action_kind == "discrete":
            assert 0 <= a[ag] < agent.spec.act_dims[i]
        else:
            assert a[ag].shape == (agent.spec.act_dims[i],)
            assert np.all(a[ag] >= agent.spec.act_low[i]) and np.all(a[ag] <= agent.spec.act_high[i])
    again = pgrad.load(out)
    b = again.act(obs)
    assert all(np.array_equal(a[ag], b[ag]) for ag in a)


def test_cli_train_resume_and_eval(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["train", "maddpg", SL, "--steps", "300", "--out", str(out), "--learning-starts", "100", "--batch-size",
            "32", "--update-every", "25", "--hidden", "16", "16", "--eval-every", "150", "--eval-episodes", "2",
            "--num-envs", "2", "--progress", "false", "--tensorboard", "false", "--seed", "3"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "per agent: speaker_0" in text and "listener_0" in text and "total" in text
    assert main(["train", "--resume", str(out), "--steps", "500", "--progress", "false"]) == 0
    capsys.readouterr()
    with open(out / "progress.csv") as f:
        assert int(list(csv.DictReader(f))[-1]["step"]) == 500
    assert main(["eval", str(out), "--episodes", "2"]) == 0
    text = capsys.readouterr().out
    assert "maddpg on mpe2:simple_speaker_listener_v4" in text and "per agent" in text
    assert main(["train", "maddpg", SL, "--help"]) == 0
    assert "--infer-policies" in capsys.readouterr().out


def test_bad_input(tmp_path, capsys):
    with pytest.raises(EnvError, match="is not a PettingZoo env id"):
        pgrad.train("maddpg", "CartPole-v1", out=tmp_path / "a")
    with pytest.raises(ConfigError, match="infer_policies=true needs centralized=true"):
        pgrad.train("maddpg", SL, centralized=False, infer_policies=True, out=tmp_path / "b")
    assert main(["train", "maddpg", "mpe2:simple_spred_v3", "--steps", "10"]) == 2
    assert "did you mean mpe2:simple_spread_v3" in capsys.readouterr().err
