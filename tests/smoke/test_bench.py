"""`pgrad bench`: the row registry, its one-line errors, one tiny real row against SB3 (no timing asserted), and
`--contention` with a stand-in child (real busy processes, started and killed)."""

from __future__ import annotations

import json
import math

import pytest

from pgrad import bench
from pgrad.cli import main
from pgrad.errors import ConfigError


def test_rows_registry_parses():
    assert list(bench.ROWS) == [
        "a2c-cartpole", "ppo-cartpole", "ppo-pendulum", "ppo-atari", "trpo-cartpole",
        "ddpg-pendulum", "td3-pendulum", "sac-pendulum", "sac-halfcheetah",
    ]  # fmt: skip
    assert bench.row_target(bench.ROWS["ppo-atari"]) == 1.5 and bench.row_target(bench.ROWS["ppo-cartpole"]) == 3.0
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


def _fake_child(procs, calls, fail_busy=False):
    """A stand-in for bench._spawn: notes whether a busy process is alive, and SB3 halves beside one."""

    def spawn(spec):
        assert spec["threads"] == "default"
        busy = bool(procs) and procs[-1].poll() is None
        calls.append((spec["row"], spec["seed"], spec["lib"], busy))
        if busy and fail_busy:
            raise bench.PgradError("child failed")
        sps = {"pgrad": 200.0, "sb3": 100.0 * (0.5 if busy else 1.0)}[spec["lib"]]
        threads = 1 if spec["lib"] == "pgrad" else 2
        return {"sps": sps, "cpu_sps": sps, "window_steps": 64, "torch_threads": threads, "returns": [0.0]}

    return spawn


def _recording_popen(monkeypatch):
    procs = []

    class Popen(bench.subprocess.Popen):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            if bench.BUSY in a[0]:  # not e.g. platform.processor()'s uname
                procs.append(self)

    monkeypatch.setattr(bench.subprocess, "Popen", Popen)
    monkeypatch.setattr(bench, "check_installed", lambda rows: None)
    return procs


def test_contention_busy_process_and_table(monkeypatch, tmp_path):
    procs, calls = _recording_popen(monkeypatch), []
    monkeypatch.setattr(bench, "_spawn", _fake_child(procs, calls))
    out, md = tmp_path / "c.json", tmp_path / "c.md"
    assert main(["bench", "--contention", "--reps", "2", "--json", str(out), "--markdown", str(md)]) == 0
    # default rows; each child beside a live busy process or none; orders alternate per repetition
    assert [c[2:] for c in calls[:8]] == [
        ("pgrad", False), ("pgrad", True), ("sb3", False), ("sb3", True),
        ("sb3", True), ("sb3", False), ("pgrad", True), ("pgrad", False),
    ]  # fmt: skip
    assert {c[0] for c in calls} == {"ppo-cartpole", "sac-pendulum"} and len(calls) == 16
    assert len(procs) == 8 and all(p.returncode is not None for p in procs)  # every busy process killed
    res = json.loads(out.read_text())
    (row, _) = res["rows"]
    assert row["threads"] == {"pgrad": [1], "sb3": [2]}
    assert row["retained"]["pgrad"]["median"] == 1.0 and row["retained"]["sb3"]["median"] == 0.5
    assert row["ratio"]["alone"]["median"] == 2.0 and row["ratio"]["busy"]["median"] == 4.0
    text = md.read_text()
    assert "| ppo-cartpole | SB3 | 2 | 100 | 50 | 0.50 |" in text
    assert "SB3 (threads: 2) 50%; pgrad/SB3 2.00x alone, 4.00x busy" in text


def test_contention_kills_busy_process_when_child_fails(monkeypatch):
    procs, calls = _recording_popen(monkeypatch), []
    monkeypatch.setattr(bench, "_spawn", _fake_child(procs, calls, fail_busy=True))
    res = bench.contention(["ppo-cartpole"], reps=1, say=lambda s: None)
    assert "child failed" in res["rows"][0]["error"]
    assert "| ppo-cartpole | failed: child failed |" in bench.contention_markdown(res)
    assert len(procs) == 1 and procs[0].returncode is not None


def test_child_env_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert bench._child_env({"lib": "pgrad"})["OMP_NUM_THREADS"] == "1"  # the main bench: one thread
    env = bench._child_env({"lib": "sb3", "threads": "default"})
    assert "OMP_NUM_THREADS" not in env and "MKL_NUM_THREADS" not in env  # torch's own default


def test_matmul_recorder_and_floor():
    """The off-policy limit's inputs: every matmul of a forward and backward is recorded with its shapes (forward
    addmm per layer; backward dW per layer and dX except for the input), and replaying them takes CPU time."""
    import torch

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    rec = bench._matmul_recorder()
    with rec:
        net(torch.randn(16, 4)).sum().backward()
    names = [str(f) for f, _, _ in rec.calls]
    assert names == ["aten.addmm.default"] * 2 + ["aten.mm.default"] * 3
    assert rec.calls[0][1][1][0] == (16, 4)  # the input's shape, kept with its strides and dtype
    assert 0 < bench.matmul_floor_ms(rec.calls, updates=1, reps=3) < 1_000


def test_best_cpu_ms_warms_up_then_takes_the_best_round():
    calls = []
    ms = bench.best_cpu_ms(lambda: calls.append(sum(range(2000))), n=30, rounds=4)
    assert len(calls) == 10 + 30 * 4  # max(30 // 3, 10) warm-up calls, then 4 rounds of 30
    assert 0.0 < ms < 100.0 and math.isfinite(ms)


def test_alternate_rotates_the_order_and_ratios_line_reports_each_run_against_sb3():
    calls = []

    def run(name, sps):
        return lambda rep: calls.append((rep, name)) or {"sps": sps * (rep + 1)}

    sps = bench.alternate({"floor": run("floor", 30.0), "pgrad": run("pgrad", 20.0), "sb3": run("sb3", 10.0)}, 3,
                          "sps", say=lambda _: None)
    assert [n for _, n in calls] == ["floor", "pgrad", "sb3", "pgrad", "sb3", "floor", "sb3", "floor", "pgrad"]
    assert [r for r, _ in calls] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert sps == {"floor": [30.0, 60.0, 90.0], "pgrad": [20.0, 40.0, 60.0], "sb3": [10.0, 20.0, 30.0]}
    line = bench.ratios_line(sps)
    assert "floor 60.0, pgrad 40.0, sb3 20.0" in line and "floor 3.00, 3.00, 3.00; pgrad 2.00, 2.00, 2.00" in line
