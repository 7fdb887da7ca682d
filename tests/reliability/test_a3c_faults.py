"""Faults: a Hogwild! worker process killed mid-run is restarted from the shared parameters, the run completes,
and run.log records the death and the restart."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pgrad


def wait_for(path, pattern, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            m = re.search(pattern, path.read_text())
            if m:
                return m
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not in {path} after {timeout}s")


def test_killed_worker_is_restarted_and_the_run_finishes(tmp_path, quiet):
    out = tmp_path / "run"
    result = {}

    def target():
        try:
            result["agent"] = pgrad.train("a3c", "CartPole-v1", steps=8000, seed=0, out=out, workers=2,
                                          eval_every=1000, eval_episodes=2, **quiet)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            result["error"] = e

    th = threading.Thread(target=target)
    th.start()
    log = out / "run.log"
    pid = int(wait_for(log, r"worker 0 started \(pid (\d+)\)", 300).group(1))
    wait_for(log, r"step \d+: evaluation", 300)  # the worker is mid-run
    os.kill(pid, signal.SIGKILL)
    th.join(600)
    assert not th.is_alive()
    assert "error" not in result, result.get("error")
    text = log.read_text()
    assert re.search(rf"worker 0 \(pid {pid}\) died with exit code -9; restarting", text)
    assert re.search(r"worker 0 started \(pid \d+\), restart 1", text)
    assert re.search(r"finished at step (\d+)", text) and int(re.search(r"finished at step (\d+)", text).group(1)) >= 8000


def test_unreachable_ray_cluster_is_a_one_line_error(tmp_path, quiet):
    import pytest

    pytest.importorskip("ray")
    with pytest.raises(pgrad.PgradError, match="cannot reach the Ray cluster at '127.0.0.1:9'"):
        pgrad.train("a3c", "CartPole-v1", steps=100, out=tmp_path / "run", backend="ray", ray_address="127.0.0.1:9",
                    **quiet)
