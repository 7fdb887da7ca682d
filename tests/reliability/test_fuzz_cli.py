"""Fuzzing the command line and config parsing with hypothesis: random argv lists and values never end in a
traceback, only in exit code 0 (help, list), exit code 2 with a one-line ``pgrad: error:`` message, or a valid
request that reaches training. Training itself is replaced by ``pgrad.api.prepare`` (every check ``train`` makes
before it starts) followed by a stop, so the test stays fast (the CLI runs in this process)."""

from __future__ import annotations

import math
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgrad.api
from pgrad.algos import ALGOS, get_algo
from pgrad.cli import main
from pgrad.config import BaseConfig, field_types, make_config
from pgrad.errors import ConfigError

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class ReachedTraining(Exception):
    """The stub's signal: every input check passed."""


@pytest.fixture
def stub_train(monkeypatch, tmp_path):
    def train(algo, env=None, **kw):
        pgrad.api.prepare(algo, env, **kw)
        raise ReachedTraining

    monkeypatch.setattr(pgrad.api, "train", train)
    monkeypatch.chdir(tmp_path)


def run(argv, capsys) -> tuple[int | None, str, str]:
    try:
        code = main(argv)
    except ReachedTraining:
        code = None
    out = capsys.readouterr()
    return code, out.out, out.err


def check(argv, capsys) -> int | None:
    code, _, err = run(argv, capsys)
    assert code in (None, 0, 2), (argv, code, err)
    if code == 2:
        assert err.startswith("pgrad: error: ") and err.count("\n") == 1, (argv, err)
    assert "Traceback" not in err
    return code


# ----------------------------------------------------------------------------- strategies
ALGO_NAMES = list(ALGOS)
GOOD_ENVS = ["CartPole-v1", "Pendulum-v1", "MountainCarContinuous-v0", "Acrobot-v1", "FrozenLake-v1"]
BAD_ENVS = ["Blackjack-v1", "CartPol-v1", "", ":", "x:y", "a/b/c", "ALE/Pong-v5", "mpe2:simple_spread_v3", ".:x",
            "CartPole-v1:x", "mpe2:nope", "-v1", "gymnasium.envs:CartPole-v1"]
numbers = st.one_of(st.integers(-10**6, 10**6), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["0", "-1", "1e3", "1.5", "nan", "inf", "-inf", "1e400", "0x10", "1_000", "true",
                                     "false", "none", "None", "null", "", " ", "-", "--", "--5", "64 64"]))
values = st.one_of(numbers.map(str), st.text(max_size=12))


def flag_names(algo: str) -> list[str]:
    return ["--" + n.replace("_", "-") for n in get_algo(algo).Config.field_names()]


def plausible(algo: str, flag: str) -> st.SearchStrategy[str]:
    """Values of the flag's own type (often valid), so that the fuzzer gets past the first error too."""
    tp = field_types(get_algo(algo).Config).get(flag[2:].replace("-", "_"))
    args = typing.get_args(tp)
    if typing.get_origin(tp) is typing.Literal:
        return st.sampled_from([str(a) for a in args])
    if tp is bool:
        return st.sampled_from(["true", "false", "1", "no"])
    if tp is int or int in args:
        return st.integers(0, 300).map(str)
    if tp is float or float in args:
        return st.floats(0, 2).map(repr)
    return values


@st.composite
def train_argv(draw):
    algo = draw(st.sampled_from(ALGO_NAMES) if draw(st.integers(0, 9)) else st.sampled_from(["ppx", "", "PPO", "d4-pg"]))
    argv = ["train", algo]
    if draw(st.integers(0, 9)):
        argv.append(draw(st.sampled_from(GOOD_ENVS) if draw(st.booleans()) else st.sampled_from(BAD_ENVS) | st.text(max_size=10)))
    names = flag_names(algo) if algo in ALGOS else ["--lr"]
    extra = ["--out", "--resume", "--help", "-h", "--env", "--steps=", "--lr=1e-3", "--=", "-x", "--no-such-flag"]
    for _ in range(draw(st.integers(0, 6))):
        flag = draw(st.sampled_from(names) if draw(st.integers(0, 4)) else st.sampled_from(extra))
        argv.append(flag)
        fit = plausible(algo, flag) if algo in ALGOS and flag in names else values
        for _ in range(draw(st.sampled_from([1, 1, 1, 0, 2]))):
            argv.append(draw(fit if draw(st.integers(0, 3)) else values))
    return argv


@st.composite
def other_argv(draw):
    cmd = draw(st.sampled_from(["eval", "plot", "list", "frobnicate", "", "-h", "--help", "trian"]))
    tokens = st.one_of(values, st.sampled_from(["--episodes", "--seed", "--env", "--video", "-o", "--envs", "--title",
                                                 "/nonexistent", ".", "-h"]))
    return [cmd, *draw(st.lists(tokens, max_size=5))]


# ----------------------------------------------------------------------------- tests
@FUZZ
@given(argv=train_argv())
def test_train_argv_never_tracebacks(argv, stub_train, capsys):
    check(argv, capsys)


@FUZZ
@given(argv=other_argv())
def test_other_commands_never_traceback(argv, stub_train, capsys):
    if "--help" in argv or "-h" in argv:  # argparse's own help exits through SystemExit(0)
        try:
            check(argv, capsys)
        except SystemExit as e:
            assert e.code == 0
        return
    check(argv, capsys)


def test_valid_requests_reach_training(stub_train, capsys):
    """The stub is not hiding everything behind errors: plain valid commands pass every check."""
    assert check(["train", "ppo", "CartPole-v1", "--lr", "1e-3", "--hidden", "32", "32"], capsys) is None
    assert check(["train", "sac", "Pendulum-v1", "--on-nonfinite", "skip", "--seed", "7"], capsys) is None
    assert check(["train", "d4pg", "Pendulum-v1", "--v-min", "-10", "--v-max", "10"], capsys) is None


def scalar_values(tp):
    base = typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else tp
    anything = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                         st.lists(st.integers(-5, 100), max_size=3))
    if base in (int, float) or (typing.get_origin(base) in (typing.Union,) and float in typing.get_args(base)):
        return st.one_of(st.integers(-10**20, 10**20), st.floats(), anything)
    return anything


@st.composite
def overrides(draw):
    algo = draw(st.sampled_from(ALGO_NAMES))
    cls = get_algo(algo).Config
    tps = field_types(cls)
    names = [n for n in cls.field_names() if n not in ("device", "track", "compile", "vectorization", "env")]
    chosen = draw(st.lists(st.sampled_from(names), max_size=5, unique=True))
    return algo, {n: draw(scalar_values(tps[n])) for n in chosen}


@FUZZ
@given(case=overrides())
def test_config_parsing_never_raises_anything_but_config_error(case):
    algo, kw = case
    try:
        cfg = make_config(get_algo(algo).Config, algo, None, kw)
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    # what passes is within every declared range
    for name in cfg.ranges():
        v = getattr(cfg, name, None)
        for x in v if isinstance(v, tuple) else () if v is None else (v,):
            assert not (isinstance(x, float) and math.isnan(x)), (name, x)


def test_base_config_devices():
    for bad in ("gpu", "cuda:99", "cpu:3", "meta", "", "cuda" * 3):
        with pytest.raises(ConfigError, match="device="):
            make_config(BaseConfig, "ppo", None, {"device": bad})
