"""`pgrad compare`: two algorithms x two seeds on tiny budgets, in worker processes; resume; the CLI."""

from __future__ import annotations

import json

import pytest

import pgrad
from pgrad.cli import main
from pgrad.compare import compare

TINY = {"n_steps": 16, "num_envs": 2}


def test_compare_writes_plot_table_and_resumes(tmp_path, capsys):
    out = tmp_path / "cmp"
    res = compare(["ppo", "a2c"], "CartPole-v1", seeds=2, steps=320, out=out, jobs=2, eval_episodes=2,
                  hparams=TINY)
    assert not res["failed"]
    assert set(res["scores"]) == {"ppo", "a2c"} and all(len(v) == 2 for v in res["scores"].values())
    for f in ("curves.png", "results.md", "scores.csv", "compare.yaml"):
        assert (out / f).exists(), f
    for a in ("ppo", "a2c"):
        for s in (0, 1):
            d = out / a / f"s{s}"
            assert json.loads((d / "compare.json").read_text())["steps"] == 320
            assert (d / "checkpoints" / "last.pt").exists()
    table = (out / "results.md").read_text()
    assert "| ppo | 320 | 2 |" in table and "| a2c | 320 | 2 |" in table and "IQM" in table
    assert (out / "curves.png").stat().st_size > 10_000
    # the score in the table is the run's last evaluation, at the end of training
    rows = (out / "scores.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("algo,seed,steps,final_return")

    # same command again: every run is skipped
    capsys.readouterr()
    compare(["ppo", "a2c"], "CartPole-v1", seeds=2, steps=320, out=out, jobs=2, eval_episodes=2, hparams=TINY)
    assert "4 of 4 runs already finished" in capsys.readouterr().out

    # an interrupted run (no compare.json, a checkpoint at step 160) resumes from it; a new seed starts fresh
    d = out / "ppo" / "s2"
    pgrad.train("ppo", "CartPole-v1", steps=160, seed=2, out=d, progress=False, tensorboard=False,
                eval_every=16, eval_episodes=2, checkpoint_every=32, select="last", **TINY)
    res = compare(["ppo"], "CartPole-v1", seeds=3, steps=320, out=out, jobs=1, eval_episodes=2, hparams=TINY)
    assert "resumed at step 160" in (d / "run.log").read_text()
    assert len(res["scores"]["ppo"]) == 3


def test_compare_refuses_changed_settings(tmp_path):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "compare.yaml").write_text("env: Pendulum-v1\neval_episodes: 10\neval_every: null\n")
    with pytest.raises(pgrad.errors.PgradError, match="env='Pendulum-v1'"):
        compare(["ppo"], "CartPole-v1", seeds=1, steps=100, out=out, jobs=1)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["compare", "--help"]) == 0
    assert "interquartile mean" in capsys.readouterr().out
    assert main(["compare", "ppo"]) == 2
    assert "name an environment" in capsys.readouterr().err
    assert main(["compare", "ppo", "sac", "--env", "CartPole-v1", "--not-a-param", "1", "--out",
                 str(tmp_path / "x")]) == 2
    assert "no algorithm of ppo, sac has a hyperparameter --not-a-param" in capsys.readouterr().err
    assert main(["compare", "pp0", "--env", "CartPole-v1"]) == 2
    assert "did you mean ppo" in capsys.readouterr().err
    assert main(["compare", "ppo", "sac", "--env", "CartPole-v1", "--out", str(tmp_path / "y")]) == 2
    assert "sac does not support Discrete actions" in capsys.readouterr().err
    assert main(["compare", "ppo", "a2c", "--env", "CartPole-v1", "--gamma", "2", "--out", str(tmp_path / "y")]) == 2
    assert "gamma=2.0 is out of range" in capsys.readouterr().err
    for flag in ("--seeds", "--eval-episodes", "--steps", "--jobs", "--eval-every"):  # 0 is an error, not a default
        assert main(["compare", "ppo", "--env", "CartPole-v1", flag, "0", "--out", str(tmp_path / "y")]) == 2
        assert "must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


def test_plot_overlays_runs_with_short_labels(tmp_path, capsys):
    from pgrad.plot import _labels

    runs = []
    for algo, seed in (("ppo", 0), ("ppo", 1), ("a2c", 0)):
        d = tmp_path / f"{algo}{seed}"
        pgrad.train(algo, "CartPole-v1", steps=64, seed=seed, out=d, eval_every=32, eval_episodes=1,
                    progress=False, tensorboard=False, **TINY)
        runs.append(d)
    labels, title = _labels(runs)
    assert labels == ["ppo seed 0", "ppo seed 1", "a2c seed 0"] and title == "on CartPole-v1"
    assert _labels(runs[:1]) == (["ppo0"], "ppo on CartPole-v1 (seed 0)")
    assert main(["plot", *map(str, runs), "-o", str(tmp_path / "all.png")]) == 0
    assert (tmp_path / "all.png").stat().st_size > 10_000 and "wrote" in capsys.readouterr().out
    assert main(["plot", str(tmp_path / "nope")]) == 2
    assert "not a pgrad run directory" in capsys.readouterr().err
