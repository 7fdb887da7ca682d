"""The Ray backend on a local Ray with 2 CPUs: A2C and A3C train through Ray actors, one actor reproduces the
single-process computation exactly, and a killed actor is restarted while the run completes."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest
import torch

import pgrad
from pgrad.run import load_checkpoint

ray = pytest.importorskip("ray")

# every hyperparameter a preset may set is explicit, so a2c and a3c run the same computation
SHARED = dict(n_steps=5, lr=7e-4, gamma=0.99, vf_coef=0.5, ent_coef=0.01, max_grad_norm=0.5, hidden=(32, 32),
              activation="tanh", log_std_init=0.0, anneal_lr=False, norm_obs=False, norm_reward=False,
              rms_alpha=0.99, opt_eps=1e-5, eval_every=0, checkpoint_every=0, progress=False, tensorboard=False)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


def params(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["nets"]


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_one_ray_actor_reproduces_local_a2c(tmp_path):
    """A2C with backend=ray and one actor holding both envs == local A2C with 2 envs; A3C with backend=ray and
    one worker == A2C with one env (the learner applies each gradient as it arrives: with one worker, in order)."""
    steps = 2 * 5 * 20
    pgrad.train("a2c", "CartPole-v1", steps=steps, seed=7, out=tmp_path / "local2", num_envs=2, lam=1.0, **SHARED)
    pgrad.train("a2c", "CartPole-v1", steps=steps, seed=7, out=tmp_path / "ray2", num_envs=2, lam=1.0,
                backend="ray", ray_workers=1, **SHARED)
    assert_same(params(tmp_path / "local2"), params(tmp_path / "ray2"))
    steps = 5 * 30
    pgrad.train("a2c", "CartPole-v1", steps=steps, seed=7, out=tmp_path / "local1", num_envs=1, lam=1.0, **SHARED)
    pgrad.train("a3c", "CartPole-v1", steps=steps, seed=7, out=tmp_path / "a3c", num_envs=1, workers=1,
                backend="ray", **SHARED)
    assert_same(params(tmp_path / "local1"), params(tmp_path / "a3c"))
    assert "ray: using the Ray instance already initialised" in (tmp_path / "a3c" / "run.log").read_text()


def test_a2c_over_two_ray_actors(tmp_path):
    agent = pgrad.train("a2c", "CartPole-v1", steps=2000, seed=0, out=tmp_path / "run", num_envs=4, lam=1.0,
                        backend="ray", ray_workers=2, **SHARED)
    log = (tmp_path / "run" / "run.log").read_text()
    assert "ray worker 0 started" in log and "ray worker 1 started" in log
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 2000
    assert agent.evaluate(episodes=2).mean_return > 0


def wait_for(path, pattern, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            m = re.search(pattern, path.read_text())
            if m:
                return m
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not in {path} after {timeout}s")


def test_killed_ray_actor_is_restarted_and_a3c_finishes(tmp_path):
    out = tmp_path / "run"
    result = {}

    def target():
        try:
            result["agent"] = pgrad.train("a3c", "CartPole-v1", steps=6000, seed=0, out=out, workers=2, num_envs=1,
                                          backend="ray", **{**SHARED, "eval_every": 1000, "eval_episodes": 2})
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            result["error"] = e

    th = threading.Thread(target=target)
    th.start()
    log = out / "run.log"
    pid = int(wait_for(log, r"ray worker 1 started \(pid (\d+)\)", 300).group(1))
    wait_for(log, r"step \d+: evaluation", 300)
    os.kill(pid, signal.SIGKILL)
    th.join(600)
    assert not th.is_alive()
    assert "error" not in result, result.get("error")
    text = log.read_text()
    assert re.search(r"ray worker 1 died \(\w+\); restarting it", text), text
    assert re.search(r"ray worker 1 started \(pid \d+\), restart 1", text)
    m = re.search(r"finished at step (\d+)", text)
    assert m and int(m.group(1)) >= 6000


def test_more_workers_than_ray_cpus_is_refused(tmp_path):
    with pytest.raises(pgrad.ConfigError, match="3 Ray workers need 3 CPUs"):
        pgrad.train("a3c", "CartPole-v1", steps=100, out=tmp_path / "run", workers=3, backend="ray", **SHARED)
