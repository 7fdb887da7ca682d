"""`pgrad bench`: the row registry, its one-line errors, and one tiny real row against SB3 (no timing asserted)."""

from __future__ import annotations

import math

import pytest

from pgrad import bench
from pgrad.cli import main
from pgrad.errors import ConfigError


def test_rows_registry_parses():
    assert list(bench.ROWS) == [
        "a2c-cartpole", "ppo-cartpole", "ppo-pendulum", "trpo-cartpole",
        "ddpg-pendulum", "td3-pendulum", "sac-pendulum", "sac-halfcheetah",
    ]  # fmt: skip
    for row in bench.ROWS.values():
        assert row.kind in bench.TARGET and row.doc, row.name  # every row states its hyperparameters
        for quick in (False, True):
            steps, ls = row.budget(quick, None)
            assert steps > ls >= 0
    assert [r.name for r in bench.select_rows(["sac-pendulum", "ppo-cartpole"])] == [
        "sac-pendulum",
        "ppo-cartpole",
    ]
    with pytest.raises(ConfigError, match="learning_starts"):
        bench.ROWS["td3-pendulum"].budget(False, 500)


def test_unknown_row_is_one_line_error(capsys):
    assert main(["bench", "--rows", "ppo-cartpole", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pgrad: error: unknown bench row 'nope'") and "\n" not in err
    assert all(name in err for name in bench.ROWS)


def test_tiny_real_row():
    pytest.importorskip("stable_baselines3")
    res = bench.bench(
        ["ppo-cartpole"], reps=1, steps=512, episodes=2, limits=False, memory=False, say=lambda s: None
    )
    (row,) = res["rows"]
    for lib in ("pgrad", "sb3"):
        assert row["sps"][lib]["median"] > 0
        (run,) = row["runs"][lib]
        assert len(run["returns"]) == 2 and all(math.isfinite(x) for x in run["returns"])
        assert run["peak_rss_mib"] > 0
    (cells,) = bench.table_rows(res)
    assert cells[0] == "ppo-cartpole" and len(cells) == len(bench.COLUMNS)
    assert "| ppo-cartpole |" in bench.markdown(res)


def test_missing_sb3_is_one_line_error(monkeypatch, capsys):
    real = bench.importlib.util.find_spec
    monkeypatch.setattr(
        bench.importlib.util, "find_spec", lambda name: None if name == "stable_baselines3" else real(name)
    )
    assert main(["bench", "--rows", "ppo-cartpole", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("pgrad: error:")
        and "pip install stable-baselines3 sb3-contrib" in err
        and "\n" not in err
    )
