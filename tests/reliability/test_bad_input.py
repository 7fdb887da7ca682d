"""Bad input: a one-line error and exit code 2 from the CLI, never a traceback; clear exceptions from the API."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pgrad
from pgrad.cli import main
from pgrad.errors import CheckpointError, ConfigError, EnvError, PgradError


def run_cli(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("args,needle", [
    (["train", "ppx", "CartPole-v1"], "unknown algorithm 'ppx'; did you mean ppo"),
    (["train", "ppo", "CartPol-v1"], "unknown environment 'CartPol-v1'; did you mean CartPole-v1"),
    (["train", "ppo", "CartPole-v1", "--lrr", "0.1"], "unknown hyperparameter --lrr for ppo; did you mean --lr"),
    (["train", "ppo", "CartPole-v1", "--lr", "abc"], "lr='abc' is not a number"),
    (["train", "ppo", "CartPole-v1", "--gamma", "1.5"], "gamma=1.5 is out of range: gamma must be in (0, 1]"),
    (["train", "ppo", "CartPole-v1", "--n-steps", "0"], "n_steps=0 is out of range"),
    (["train", "ppo", "CartPole-v1", "--steps", "1.5"], "steps='1.5' is not an integer"),
    (["train", "ppo", "CartPole-v1", "--anneal-lr", "maybe"], "is not a boolean"),
    (["train", "ppo", "CartPole-v1", "--activation", "sigmoid"], "activation"),
    (["train", "--resume", "/nonexistent/run"], "not a pgrad run directory"),
    (["eval", "/nonexistent/run"], "no checkpoint or run directory"),
    (["plot", "/nonexistent/run"], "not a pgrad run directory"),
    (["frobnicate"], "unknown command"),
    (["train"], None),
])
def test_cli_one_line_errors(args, needle, capsys):
    code, out, err = run_cli(args, capsys)
    if needle is None:  # `pgrad train` alone prints usage
        assert code == 0 and "usage" in out
        return
    assert code == 2, (out, err)
    assert err.startswith("pgrad: error: ") and err.count("\n") == 1, err
    assert needle in err, err
    assert "Traceback" not in err


def test_discrete_only_algorithm_on_box_env(capsys, monkeypatch):
    from pgrad.algos import ALGOS

    mod = ALGOS["a2c"]
    monkeypatch.setattr(mod, "SPACES", ("discrete",))
    code, _, err = run_cli(["train", "a2c", "Pendulum-v1", "--steps", "10"], capsys)
    assert code == 2 and "a2c does not support Box (continuous) actions of Pendulum-v1" in err


def test_api_raises_typed_errors(tmp_path):
    with pytest.raises(PgradError, match="unknown algorithm"):
        pgrad.train("nope", "CartPole-v1")
    with pytest.raises(EnvError):
        pgrad.train("ppo", "NoSuchEnv-v0")
    with pytest.raises(ConfigError, match="valid: "):
        pgrad.train("ppo", "CartPole-v1", not_a_param=1)
    with pytest.raises(ConfigError, match="lr"):
        pgrad.train("ppo", "CartPole-v1", lr=-1.0)
    with pytest.raises(CheckpointError):
        pgrad.load(tmp_path / "missing")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a pgrad checkpoint"):
        pgrad.load(bad)


def test_existing_run_directory_is_never_overwritten(tmp_path):
    out = tmp_path / "run"
    pgrad.train("a2c", "CartPole-v1", steps=100, out=out, progress=False, tensorboard=False, eval_episodes=1)
    before = (out / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(PgradError, match="already holds a run"):
        pgrad.train("a2c", "CartPole-v1", steps=100, out=out, progress=False)
    assert (out / "checkpoints" / "last.pt").read_bytes() == before


def test_corrupted_checkpoint_is_refused(tmp_path):
    out = tmp_path / "run"
    pgrad.train("a2c", "CartPole-v1", steps=100, out=out, progress=False, tensorboard=False, eval_episodes=1)
    p = out / "checkpoints" / "last.pt"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        pgrad.train("a2c", None, resume=out, steps=200)
    p.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(CheckpointError):
        pgrad.train("a2c", None, resume=out, steps=200)


def test_console_script_exit_code_and_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "pgrad.cli", "train", "ppo", "CartPole-v1", "--gamma", "0"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "pgrad: error: gamma=0.0 is out of range: gamma must be in (0, 1]"
