"""Inputs: every numeric hyperparameter of every algorithm has a declared range, out-of-range values are refused
with a message naming the parameter and its range, fields that constrain each other are checked together, and a
checkpoint is refused (one line, naming the problem) by a resume or a load with the wrong algorithm or env."""

from __future__ import annotations

import math
import types
import typing

import gymnasium as gym
import numpy as np
import pytest

import pgrad
from pgrad.algos import ALGOS, get_algo
from pgrad.cli import main
from pgrad.config import field_types, load_presets, make_config
from pgrad.errors import CheckpointError, ConfigError, EnvError


def numeric(tp) -> type | None:
    """int or float for an int/float field (also Optional and tuples of them), else None."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return numeric(args[0]) if len(args) == 1 else None
    if origin is tuple:
        return numeric(typing.get_args(tp)[0])
    return tp if tp in (int, float) else None


def interval(text: str) -> tuple[str, float, float, str]:
    lo, hi = (s.strip() for s in text[1:-1].split(","))
    return text[0], float(lo), float(hi), text[-1]


CASES = [(algo, name) for algo in ALGOS for name in get_algo(algo).Config.field_names()
         if numeric(field_types(get_algo(algo).Config)[name])]


@pytest.mark.parametrize("algo", list(ALGOS))
def test_every_numeric_field_has_a_range(algo):
    cls = get_algo(algo).Config
    tps, ranges = field_types(cls), cls.ranges()
    missing = [n for n in cls.field_names() if numeric(tps[n]) and n not in ranges]
    assert not missing, f"{algo}.Config has no RANGES entry for {missing}"
    for name, text in ranges.items():
        assert name in cls.field_names(), f"{algo}: RANGES names unknown field {name!r}"
        left, lo, hi, right = interval(text)
        assert left in "([" and right in ")]" and lo <= hi, (name, text)


@pytest.mark.parametrize("algo", list(ALGOS))
def test_defaults_and_presets_lie_in_their_ranges(algo):
    module = get_algo(algo)
    module.Config().validate()
    for env_id in load_presets(algo):
        make_config(module.Config, algo, env_id, {})  # raises on a preset value out of range


PROBABILITIES = {"gamma", "lam", "tau", "beta", "beta_eps", "rms_alpha", "avg_decay", "momentum", "stat_decay",
                 "ls_shrink"}


@pytest.mark.parametrize("algo,name", CASES)
def test_out_of_range_values_are_refused_with_the_range(algo, name):
    cls = get_algo(algo).Config
    ranges = cls.ranges()
    left, lo, hi, right = interval(ranges[name])
    if name in PROBABILITIES:
        assert lo >= 0 and hi <= 1, f"{name} is a probability or a rate: {ranges[name]}"
    is_int = numeric(field_types(cls)[name]) is int
    outside = [math.nan]
    if math.isfinite(lo):
        outside.append(lo if left == "(" else (lo - 1 if is_int else lo - 1e-3))
    if math.isfinite(hi):
        outside.append(hi if right == ")" else (hi + 1 if is_int else hi + 1e-3))
    if not math.isfinite(hi) and right == ")" and not is_int:
        outside.append(math.inf)
    for bad in outside:
        if is_int and not math.isfinite(bad):
            continue
        value = int(bad) if is_int else bad
        with pytest.raises(ConfigError) as e:
            make_config(cls, algo, None, {name: value})
        msg = str(e.value)
        assert name in msg and ranges[name] in msg, msg
        assert "\n" not in msg


@pytest.mark.parametrize("algo", [a for a in ALGOS if "buffer_size" in get_algo(a).Config.field_names()])
def test_replay_sizes_are_checked_together(algo):
    cls = get_algo(algo).Config
    names = cls.field_names()
    on = {"replay": True} if "replay" in names else {}  # off_policy_ac replays only when asked to
    if "batch_size" in names:
        with pytest.raises(ConfigError, match="batch_size=512 exceeds buffer_size=256"):
            make_config(cls, algo, None, {"batch_size": 512, "buffer_size": 256, **on})
    if on:  # no replay, no constraint
        make_config(cls, algo, None, {"batch_size": 512, "buffer_size": 256, "replay": False})
    with pytest.raises(ConfigError, match="buffer_size=1 "):
        make_config(cls, algo, None, {"buffer_size": 1, **on, **({"batch_size": 1} if "batch_size" in names else {})})


def test_ordered_pairs_are_checked_together():
    with pytest.raises(ConfigError, match="v_min=10.0 must be below v_max=-10.0"):
        make_config(get_algo("d4pg").Config, "d4pg", None, {"v_min": 10, "v_max": -10})
    with pytest.raises(ConfigError, match="log_std_min=2.0 must be below log_std_max=2.0"):
        make_config(get_algo("sac").Config, "sac", None, {"log_std_min": 2})


def test_cli_names_the_parameter_and_the_range(capsys):
    code = main(["train", "sac", "Pendulum-v1", "--tau", "1.5"])
    err = capsys.readouterr().err
    assert code == 2 and err == "pgrad: error: tau=1.5 is out of range: tau must be in (0, 1]\n"
    code = main(["train", "td3", "Pendulum-v1", "--batch-size", "64", "--buffer-size", "32"])
    err = capsys.readouterr().err
    assert code == 2 and "batch_size=64 exceeds buffer_size=32" in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- checkpoints and envs
@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "ppo"
    pgrad.train("ppo", "CartPole-v1", steps=128, out=out, n_steps=64, batch_size=64, epochs=1, hidden=(8,),
                eval_every=0, eval_episodes=1, progress=False, tensorboard=False)
    return out


def test_resume_with_the_wrong_algorithm_is_refused(cartpole_run, capsys):
    with pytest.raises(CheckpointError, match=r"is a ppo run, not a2c; resume it with `pgrad train ppo --resume"):
        pgrad.train("a2c", None, resume=cartpole_run)
    code = main(["train", "a2c", "--resume", str(cartpole_run)])
    err = capsys.readouterr().err
    assert code == 2 and "is a ppo run, not a2c" in err and err.count("\n") == 1


def test_resume_with_the_wrong_env_is_refused(cartpole_run):
    with pytest.raises(CheckpointError, match="was trained on CartPole-v1, not Acrobot-v1"):
        pgrad.train("ppo", "Acrobot-v1", resume=cartpole_run, steps=256)
    # an env object with other spaces is caught by its spaces (it has no id to compare)
    with pytest.raises(EnvError, match=r"trained on CartPole-v1 \(obs 4, discrete actions 2\) but the env given is "
                                       r"Acrobot-v1 \(obs 6, discrete actions 3\)"):
        pgrad.train("ppo", gym.make("Acrobot-v1"), resume=cartpole_run, steps=256)


def test_load_on_the_wrong_env_is_refused(cartpole_run, capsys):
    with pytest.raises(EnvError, match="trained on CartPole-v1 .* but the env given is Pendulum-v1"):
        pgrad.load(cartpole_run, env="Pendulum-v1")
    code = main(["eval", str(cartpole_run), "--env", "Acrobot-v1"])
    err = capsys.readouterr().err
    assert code == 2 and "but the env given is Acrobot-v1" in err and err.count("\n") == 1
    with pytest.raises(EnvError, match="discrete observations"):
        pgrad.load(cartpole_run, env=lambda: gym.wrappers.TimeLimit(_DiscreteObs(), 10))


class _DiscreteObs(gym.Env):
    """4 discrete observations (one-hot: 4 inputs, like CartPole's 4 floats) and 2 actions."""

    observation_space = gym.spaces.Discrete(4)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        return 0, {}

    def step(self, action):
        return 0, 0.0, True, False, {}


def test_load_with_other_action_bounds_is_refused(tmp_path):
    out = tmp_path / "sac"
    pgrad.train("sac", "Pendulum-v1", steps=64, out=out, hidden=(8,), batch_size=16, learning_starts=32,
                eval_every=0, eval_episodes=1, progress=False, tensorboard=False)
    one = np.ones(1, np.float32)

    def rescaled():
        return gym.wrappers.RescaleAction(gym.make("Pendulum-v1"), -one, one)

    with pytest.raises(EnvError, match=r"action bounds \[-2, 2\] but the env given \(Pendulum-v1\) has \[-1, 1\]"):
        pgrad.load(out, env=rescaled)
    pgrad.load(out, env="Pendulum-v1")  # the same env is fine


def test_checkpoint_with_missing_fields_or_an_unknown_algorithm(tmp_path, cartpole_run):
    import torch

    from pgrad.run import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(cartpole_run / "checkpoints" / "last.pt")
    save_checkpoint(tmp_path / "no_nets.pt", {k: v for k, v in ckpt.items() if k != "nets"})
    with pytest.raises(CheckpointError, match="lacks nets"):
        pgrad.load(tmp_path / "no_nets.pt")
    save_checkpoint(tmp_path / "alien.pt", {**ckpt, "algo": "dqn"})
    with pytest.raises(pgrad.PgradError, match="unknown algorithm 'dqn'"):
        pgrad.load(tmp_path / "alien.pt")
    ckpt["nets"] = {k: torch.zeros(3) for k in ckpt["nets"]}
    save_checkpoint(tmp_path / "resized.pt", ckpt)
    with pytest.raises(CheckpointError, match="do not match this algorithm's networks"):
        pgrad.load(tmp_path / "resized.pt")


def test_a_buffer_too_large_for_memory_is_a_one_line_error(tmp_path):
    # the replay's preflight compares its bytes with the memory available, before any row is written
    with pytest.raises(pgrad.PgradError, match=r"the replay buffer needs .* GiB .* lower buffer_size") as e:
        pgrad.train("sac", "Pendulum-v1", buffer_size=10**13, steps=10, out=tmp_path / "run", progress=False,
                    tensorboard=False)
    assert "\n" not in str(e.value)
