"""Custom envs named ``module:Class`` or ``module:factory`` (issue 21.5): on ``pgrad train``, ``eval``, ``compare``
and video, and as the env of ``pgrad.train``; kept in config.yaml so that ``pgrad eval RUN`` and ``--resume`` make
the env again; Gymnasium's env checker run once, its warnings shown, its errors one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import pgrad
from pgrad.cli import main
from pgrad.envs import EnvCheckerWarning, env_factory, is_custom_id
from pgrad.errors import EnvError

HERE = Path(__file__).resolve().parent
MODULE = HERE / "custom_env_mod.py"
QUIET = dict(progress=False, tensorboard=False, eval_episodes=2)
PPO = dict(n_steps=64, batch_size=64, epochs=2)
PGRAD = Path(sys.executable).parent / "pgrad"  # the console script: the current directory is not on its sys.path


def cli(args: list[str], cwd: Path, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [str(PGRAD)] if PGRAD.exists() else [sys.executable, "-m", "pgrad.cli"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"OMP_NUM_THREADS": "1", **(extra_env or {})})
    return subprocess.run([*cmd, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


# ----------------------------------------------------------------------------- resolving module:attr
def test_module_class_and_factory_resolve_to_their_own_id():
    for env_id in ("custom_env_mod:TargetEnv", "custom_env_mod:make_target"):
        factory, shown = env_factory(env_id)
        assert shown == env_id and is_custom_id(env_id)
        env = factory()
        assert env.observation_space.shape == ((3,) if "Target" in env_id else (2,))
    assert env_factory("custom_env_mod:TargetEnv", render_mode="rgb_array")[0]().render_mode == "rgb_array"
    # Gymnasium's own module:EnvId (importing the module registers the id) still goes to gym.make
    factory, shown = env_factory("gymnasium.envs:CartPole-v1")
    assert not is_custom_id("gymnasium.envs:CartPole-v1") and factory().spec.id == "CartPole-v1"
    assert not is_custom_id("CartPole-v1")


@pytest.mark.parametrize("env_id, needle", [
    ("no_such_module_xyz:Env", "cannot import the module 'no_such_module_xyz' of the env 'no_such_module_xyz:Env': "
                               "no module named 'no_such_module_xyz'; it must be importable"),
    ("custom_env_mod:TargetEnvv", "custom_env_mod has no 'TargetEnvv': name a gymnasium.Env subclass or a "
                                  "zero-argument factory in it, as module:Class; did you mean custom_env_mod:TargetEnv?"),
    ("custom_env_mod:NOT_AN_ENV", "custom_env_mod:NOT_AN_ENV names '42' (int), not a gymnasium.Env subclass"),
    ("custom_env_mod:make_nothing", "custom_env_mod:make_nothing returned dict, not a gymnasium.Env"),
    ("mpe2:simple_spread_v3", "is a PettingZoo (multi-agent) env"),
])
def test_bad_custom_ids_are_one_line_errors(env_id, needle, tmp_path):
    with pytest.raises(EnvError) as e:
        pgrad.train("ppo", env_id, steps=64, out=tmp_path / "run", **QUIET)
    assert needle in str(e.value)
    assert "\n" not in str(e.value) and not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- Python API
def test_api_trains_stores_the_id_and_evaluates_from_the_run_directory(tmp_path):
    run = tmp_path / "run"
    agent = pgrad.train("ppo", "custom_env_mod:TargetEnv", steps=256, seed=0, out=run, **QUIET, **PPO)
    assert agent.spec.env_id == "custom_env_mod:TargetEnv"
    assert yaml.safe_load((run / "config.yaml").read_text())["env"] == "custom_env_mod:TargetEnv"
    again = pgrad.load(run)  # the env comes back from its id alone
    res = again.evaluate(episodes=3)
    assert len(res.returns) == 3 and 0 <= res.mean_return <= 8
    assert pgrad.evaluate(run, episodes=2).returns == again.evaluate(episodes=2).returns
    resumed = pgrad.train("ppo", resume=run, steps=384, **QUIET)  # the id in config.yaml makes the env again
    assert resumed.steps_trained == 384


def test_a_factory_works_as_well(tmp_path):
    agent = pgrad.train("a2c", "custom_env_mod:make_target", steps=64, seed=0, out=tmp_path / "run", **QUIET)
    assert agent.spec.obs_dim == 2 and agent.evaluate(episodes=2).mean_return >= 0


def test_env_checker_runs_once_and_its_warnings_are_shown(tmp_path, monkeypatch):
    import gymnasium.utils.env_checker as checker

    calls = []
    real = checker.check_env
    monkeypatch.setattr(checker, "check_env", lambda env, **kw: (calls.append(type(env).__name__), real(env, **kw)))
    with pytest.warns(EnvCheckerWarning, match=r"custom_env_mod:WideActionEnv: For Box action spaces, we recommend"):
        pgrad.train("ppo", "custom_env_mod:WideActionEnv", steps=64, seed=0, out=tmp_path / "run", **QUIET, **PPO)
    assert calls == ["WideActionEnv"]  # warnings do not stop training; the run finished
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    pgrad.train("ppo", resume=tmp_path / "run", steps=128, **QUIET)
    assert calls == ["WideActionEnv"]  # not again on resume
    pgrad.train("ppo", "CartPole-v1", steps=64, out=tmp_path / "gym", **QUIET, **PPO)
    assert calls == ["WideActionEnv"]  # registered ids are Gymnasium's own: not checked


def test_env_checker_error_is_one_line_and_nothing_is_written(tmp_path):
    with pytest.raises(EnvError) as e:
        pgrad.train("ppo", "custom_env_mod:NoSeedEnv", steps=64, out=tmp_path / "run", **QUIET)
    msg = str(e.value)
    assert msg.startswith("custom_env_mod:NoSeedEnv fails Gymnasium's env checker: AssertionError: ")
    assert "\n" not in msg and "\x1b" not in msg and not (tmp_path / "run").exists()


def test_video_records_a_custom_env(tmp_path):
    pytest.importorskip("moviepy")
    from pgrad.video import record_video

    agent = pgrad.train("ppo", "custom_env_mod:TargetEnv", steps=64, seed=0, out=tmp_path / "run", **QUIET, **PPO)
    paths, rets = record_video(agent, tmp_path / "videos", episodes=1)
    assert paths and paths[0].stat().st_size > 0 and len(rets) == 1


# ----------------------------------------------------------------------------- the command line, in subprocesses
def test_cli_train_then_eval_run(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(MODULE, work / "custom_env_mod.py")  # a module beside the user, as `pgrad` finds it
    run = tmp_path / "run"
    out = cli(["train", "ppo", "custom_env_mod:WideActionEnv", "--steps", "128", "--n-steps", "64",
               "--batch-size", "64", "--epochs", "2", "--out", str(run), "--progress", "false",
               "--tensorboard", "false", "--eval-episodes", "2"], work)
    assert out.returncode == 0, out.stderr
    warned = [line for line in out.stderr.splitlines() if line.startswith("pgrad: warning: ")]
    assert len(warned) == 1 and "custom_env_mod:WideActionEnv: For Box action spaces" in warned[0], out.stderr
    assert "Traceback" not in out.stderr
    assert yaml.safe_load((run / "config.yaml").read_text())["env"] == "custom_env_mod:WideActionEnv"

    ev = cli(["eval", str(run), "--episodes", "2"], work)
    assert ev.returncode == 0, ev.stderr
    assert "ppo on custom_env_mod:WideActionEnv (step 128): mean return" in ev.stdout

    elsewhere = cli(["eval", str(run), "--episodes", "2"], tmp_path)  # the module is not importable from here
    assert elsewhere.returncode == 2
    assert elsewhere.stderr.count("\n") == 1 and elsewhere.stderr.startswith("pgrad: error: cannot import the "
                                                                             "module 'custom_env_mod'")
    assert "must be importable" in elsewhere.stderr

    pythonpath = cli(["eval", str(run), "--episodes", "2"], tmp_path, {"PYTHONPATH": str(work)})
    assert pythonpath.returncode == 0, pythonpath.stderr


def test_cli_checker_error_exits_2_in_one_line(tmp_path):
    out = cli(["train", "ppo", "custom_env_mod:NoSeedEnv", "--steps", "64"], tmp_path,
              {"PYTHONPATH": str(HERE)})
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("pgrad: error: custom_env_mod:NoSeedEnv fails Gymnasium's env checker")
    assert not (tmp_path / "runs").exists()


def test_cli_in_process_accepts_env_flag(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "a2c", "--env", "custom_env_mod:make_target", "--steps", "32", "--out", str(run),
                 "--progress", "false", "--tensorboard", "false", "--eval-episodes", "2"])
    assert code == 0, capsys.readouterr().err
    assert main(["eval", str(run), "--episodes", "2", "--env", "custom_env_mod:make_target"]) == 0
    assert "a2c on custom_env_mod:make_target" in capsys.readouterr().out


def test_cli_compare_on_a_custom_env(tmp_path):
    out = cli(["compare", "ppo", "--env", "custom_env_mod:TargetEnv", "--seeds", "1", "--steps", "128",
               "--jobs", "1", "--out", str(tmp_path / "cmp"), "--n-steps", "64", "--batch-size", "64",
               "--eval-episodes", "2"], tmp_path, {"PYTHONPATH": str(HERE)})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "cmp" / "results.md").exists()
    assert "custom_env_mod:TargetEnv" in (tmp_path / "cmp" / "results.md").read_text()


def test_the_custom_environments_example_of_docs_customise_runs(tmp_path):
    import re

    text = (HERE.parents[1] / "docs" / "customise.md").read_text()
    section = text.split("## Custom environments", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 2 and blocks[0].startswith("# my_envs.py\n")
    (tmp_path / "my_envs.py").write_text(blocks[0])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", blocks[1]], cwd=tmp_path, capture_output=True, text=True,
                         env={**env, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "config.yaml keeps my_envs:Corridor" in out.stdout and "evaluation" in out.stdout
    assert "pgrad: warning" not in out.stderr and "EnvCheckerWarning" not in out.stderr  # the example is clean
    shorter = cli(["eval", str(tmp_path / "runs" / "customise-corridor"), "--env", "my_envs:short_corridor"],
                  tmp_path)  # the example's factory makes a corridor of 3 cells: other observations, refused
    assert shorter.returncode == 2 and "was trained on my_envs:Corridor (obs 6" in shorter.stderr
    assert cli(["eval", str(tmp_path / "runs" / "customise-corridor")], tmp_path).returncode == 0
