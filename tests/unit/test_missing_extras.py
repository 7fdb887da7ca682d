"""Missing optional dependencies (issue 21.9): each names its package and the exact extra to install, never
"unknown environment ... did you mean" the same id; ``pgrad list --envs`` marks the ids whose extra is missing;
the README lists every extra of pyproject.toml. A missing package is simulated with a None in sys.modules
(``import x`` then raises ImportError and importlib.util.find_spec("x") returns None)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import pgrad
from pgrad.cli import main
from pgrad.envs import EXTRAS, extra_for, missing_extra
from pgrad.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
QUIET = dict(progress=False, tensorboard=False, eval_episodes=2)


def missing(monkeypatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def cli_error(args: list[str], capsys) -> str:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("pgrad: error: ") and err.count("\n") == 1, err
    assert "unknown environment" not in err and "did you mean" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("env_id, modules, expected", [
    ("LunarLander-v3", ("Box2D",), "LunarLander-v3 needs box2d: pip install 'pgrad[box2d]'"),
    ("BipedalWalker-v3", ("Box2D",), "BipedalWalker-v3 needs box2d: pip install 'pgrad[box2d]'"),
    ("Hopper-v5", ("mujoco",), "Hopper-v5 needs mujoco: pip install 'pgrad[mujoco]'"),
    ("ALE/Pong-v5", ("ale_py",), "ALE/Pong-v5 needs ale-py: pip install 'pgrad[atari]'"),
    ("PongNoFrameskip-v4", ("ale_py",), "PongNoFrameskip-v4 needs ale-py: pip install 'pgrad[atari]'"),
    ("MinAtar/Breakout-v1", ("minatar", "minatar.gym"), "MinAtar/Breakout-v1 needs minatar: pip install 'pgrad[minatar]'"),
])
def test_a_missing_env_package_names_package_and_extra(env_id, modules, expected, monkeypatch, capsys, tmp_path):
    missing(monkeypatch, *modules)
    err = cli_error(["train", "ppo", env_id, "--steps", "10", "--out", str(tmp_path / "run")], capsys)
    assert err.strip() == f"pgrad: error: {expected}"
    assert not (tmp_path / "run").exists()
    with pytest.raises(pgrad.EnvError, match=re.escape(expected)):  # the Python API says the same
        pgrad.train("ppo", env_id, steps=10, out=tmp_path / "run", **QUIET)


def test_gymnasiums_own_dependency_error_is_never_unknown_environment(monkeypatch, capsys):
    """Were the extra's module found but gymnasium still refuse (DependencyNotInstalled), the message is its own,
    with the extra, not "unknown environment ... did you mean" the same id."""
    import gymnasium as gym

    monkeypatch.setattr("pgrad.envs.spaces.missing_extra", lambda env_id: None)

    def refuse(env_id, **kw):
        raise gym.error.DependencyNotInstalled('Box2D is not installed, run `pip install "gymnasium[box2d]"`')

    monkeypatch.setattr(gym, "make", refuse)
    err = cli_error(["train", "ppo", "LunarLander-v3", "--steps", "10"], capsys)
    assert "cannot make 'LunarLander-v3': Box2D is not installed" in err
    assert err.strip().endswith("it needs box2d: pip install 'pgrad[box2d]'")


def test_pettingzoo_missing_names_the_marl_extra(monkeypatch, capsys, tmp_path):
    missing(monkeypatch, "pettingzoo")
    err = cli_error(["train", "maddpg", "mpe2:simple_spread_v3", "--steps", "10"], capsys)
    assert "PettingZoo is not installed" in err and "pettingzoo: pip install 'pgrad[marl]'" in err
    with pytest.raises(pgrad.EnvError, match=re.escape("pip install 'pgrad[marl]'")):
        pgrad.train("maddpg", "mpe2:simple_speaker_listener_v4", steps=10, out=tmp_path / "run", **QUIET)
    assert not (tmp_path / "run").exists()


def test_a_module_env_whose_dependency_is_missing_names_its_extra(monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m == "mpe2" or m.startswith("mpe2.")]:
        monkeypatch.delitem(sys.modules, name)
    missing(monkeypatch, "pettingzoo")
    with pytest.raises(pgrad.EnvError) as e:
        pgrad.train("ppo", "mpe2:simple_spread_v3", steps=10, out=tmp_path / "run", **QUIET)
    assert "'pettingzoo', which is not installed" in str(e.value)
    assert str(e.value).endswith("pettingzoo: pip install 'pgrad[marl]'")


@pytest.mark.parametrize("algo", ["a2c", "a3c"])
def test_ray_missing_names_the_ray_extra_before_the_run_starts(algo, monkeypatch, tmp_path, capsys):
    missing(monkeypatch, "ray")
    with pytest.raises(ConfigError, match=re.escape("backend=ray needs Ray, which is not installed: "
                                                    "ray: pip install 'pgrad[ray]'")):
        pgrad.train(algo, "CartPole-v1", steps=10, backend="ray", out=tmp_path / "run", **QUIET)
    assert not (tmp_path / "run").exists()
    err = cli_error(["train", algo, "CartPole-v1", "--backend", "ray", "--steps", "10"], capsys)
    assert "pip install 'pgrad[ray]'" in err


def test_moviepy_missing_names_the_video_extra(monkeypatch, capsys, tmp_path):
    missing(monkeypatch, "moviepy")
    run = tmp_path / "run"
    pgrad.train("a2c", "CartPole-v1", steps=10, out=run, **QUIET)
    err = cli_error(["eval", str(run), "--video"], capsys)
    assert "moviepy" in err and "pip install 'pgrad[video]'" in err


def test_list_envs_marks_the_ids_whose_extra_is_missing(monkeypatch, capsys):
    missing(monkeypatch, "mujoco", "Box2D", "ale_py", "minatar")
    assert main(["list", "--envs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    by_id = {line.split()[0]: line for line in lines if line and not line.startswith(("ALE/", "MinAtar/", "your"))}
    assert by_id["CartPole-v1"].strip() == "CartPole-v1"
    assert by_id["Hopper-v5"].endswith("(needs mujoco: pip install 'pgrad[mujoco]')")
    assert by_id["LunarLander-v3"].endswith("(needs box2d: pip install 'pgrad[box2d]')")
    assert "ALE/... (Atari) ids: not installed; they need ale-py: pip install 'pgrad[atari]'" in lines
    assert "MinAtar/... ids: not installed; they need minatar: pip install 'pgrad[minatar]'" in lines


def test_list_envs_marks_nothing_that_is_installed(capsys):
    assert main(["list", "--envs"]) == 0
    out = capsys.readouterr().out
    for line in out.splitlines():
        if "(needs " in line:
            env_id = line.split()[0]
            assert missing_extra(env_id) is not None, line
    pytest.importorskip("mujoco")
    assert "Hopper-v5  (needs" not in out and re.search(r"^Hopper-v5\s*$", out, re.M)


def test_extra_of_each_family():
    assert extra_for("Hopper-v5") == "mujoco" and extra_for("LunarLander-v3") == "box2d"
    assert extra_for("ALE/Pong-v5") == "atari" and extra_for("MinAtar/Asterix-v1") == "minatar"
    assert extra_for("CartPole-v1") is None and extra_for("custom_env_mod:TargetEnv") is None


def test_every_extra_named_exists_and_the_readme_lists_every_extra():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRAS) <= set(extras)  # every pip command pgrad prints installs something
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Optional extras", 1)[1].split("\n## ", 1)[0]
    for name in extras:
        assert f"pgrad[{name}]" in section, name

