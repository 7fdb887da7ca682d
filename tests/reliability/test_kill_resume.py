"""Kill anywhere, resume exactly: training processes are SIGKILLed at several points (inside a checkpoint write at a
random byte offset, between the write and the rename, during the step-0 write, at a random instant of the run),
resumed (`pgrad train --resume`), and the final parameters equal those of an uninterrupted run with the same seed,
bit for bit, on CPU. A write that dies leaves the previous checkpoints/last.pt untouched.

- on-policy: PPO (CartPole-v1);
- off-policy: SAC (Pendulum-v1) with norm_obs and norm_reward: replay buffer, temperature, both normalisers;
  D4PG with its in-process actor (actors=0): prioritised n-step replay and an Ornstein-Uhlenbeck noise process;
- asynchronous: D4PG with an actor process and A3C with a Hogwild! worker cannot be bit-exact (the actors' and
  workers' interleaving with the learner is not reproducible), so for them: the killed learner's actors/workers
  exit by themselves, the resumed run continues from the checkpoint's counters (step, updates, episodes), restores
  its replay exactly (D4PG: the resumed buffer starts with the checkpoint's rows), survives a killed actor, and
  completes.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

import pgrad
from pgrad.run import load_checkpoint

CHILD = Path(__file__).with_name("kill_child.py")
QUIET = ["--progress", "false", "--tensorboard", "false"]
rng = random.Random(int(os.environ.get("PGRAD_KILL_SEED", "0")) or None)  # offsets and instants vary per run


def flags(kw: dict) -> list[str]:
    out: list[str] = []
    for k, v in kw.items():
        out.append("--" + k.replace("_", "-"))
        out.extend(str(x) for x in v) if isinstance(v, tuple) else out.append(str(v).lower() if isinstance(v, bool)
                                                                             else str(v))
    return out


def start(args: list[str], cwd: Path, die_at: str | None = None, record: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("PGRAD_TEST_DIE_AT_WRITE", None)
    if die_at is not None:
        env.update(PGRAD_TEST_DIE_AT_WRITE=die_at, PGRAD_TEST_RECORD=str(record))
    return subprocess.Popen([sys.executable, str(CHILD), *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def die_in_write(args: list[str], run_dir: Path, k: int, frac: float) -> int | None:
    """Run until the k-th write of last.pt and die inside it; check the previous last.pt survived whole.
    Returns the step of the checkpoint left (None: the crash was in the first write, none is left)."""
    record = run_dir.parent / f"{run_dir.name}-record"
    proc = start(args, run_dir.parent, f"{k}:{frac}", record)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL, f"the child was to die in write {k} ({frac=}):\n{out}"
    last = run_dir / "checkpoints" / "last.pt"
    temps = list((run_dir / "checkpoints").glob(".last.pt.tmp-*"))
    assert len(temps) == 1, temps  # the interrupted write
    before = record.read_text()
    if not before:
        assert not last.exists()
        return None
    assert hashlib.sha256(last.read_bytes()).hexdigest() == before, f"last.pt changed by a write that died ({frac=})"
    return load_checkpoint(last)["step"]  # complete and valid


def kill_at_random(args: list[str], run_dir: Path, min_step: int) -> int:
    """Run, SIGKILL at a random instant once last.pt has reached ``min_step``; returns that checkpoint's step."""
    proc = start(args, run_dir.parent)
    last = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if last.exists() and load_checkpoint(last)["step"] >= min_step:  # never a torn file: the rename is atomic
            break
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.2))
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it was killed:\n{out}"
    return load_checkpoint(last)["step"]


def assert_same_params(a_dir: Path, b_dir: Path) -> None:
    a = load_checkpoint(a_dir / "checkpoints" / "last.pt")
    b = load_checkpoint(b_dir / "checkpoints" / "last.pt")
    assert a["step"] == b["step"]
    assert a["nets"].keys() == b["nets"].keys()
    for k in a["nets"]:
        assert torch.equal(a["nets"][k], b["nets"][k]), k
    ca, cb = a["train"]["counters"], b["train"]["counters"]
    assert (ca["updates"], ca["episodes"]) == (cb["updates"], cb["episodes"])


def finish_in_process(algo: str, run_dir: Path) -> None:
    pgrad.train(algo, None, resume=run_dir, progress=False, tensorboard=False)
    assert not list((run_dir / "checkpoints").glob(".*.tmp-*")), "stale temp files were not cleaned up"
    assert "resumed at step" in (run_dir / "run.log").read_text()


PPO = dict(num_envs=2, n_steps=64, batch_size=64, epochs=2, hidden=(16, 16), steps=8192, checkpoint_every=256,
           eval_every=512, eval_episodes=2, seed=3)


def test_ppo_killed_three_times_resumes_exactly(tmp_path):
    pgrad.train("ppo", "CartPole-v1", out=tmp_path / "straight", progress=False, tensorboard=False, **PPO)
    run = tmp_path / "run"
    args = ["train", "ppo", "CartPole-v1", "--out", str(run), *flags(PPO), *QUIET]
    resume = ["train", "--resume", str(run), *QUIET]
    frac = rng.uniform(0.0, 1.0)
    assert die_in_write(args, run, k=3, frac=frac) == 256  # writes: step 0, 256, then 512 dies at a random byte
    assert die_in_write(resume, run, k=2, frac=1.0) == 512  # 768 dies between the complete write and the rename
    step = kill_at_random(resume, run, min_step=768)
    assert 768 <= step < 8192  # the run is long enough that the kill lands before its end on a fast machine
    finish_in_process("ppo", run)
    assert_same_params(tmp_path / "straight", run)


SAC = dict(hidden=(16, 16), batch_size=32, learning_starts=100, num_envs=2, norm_obs=True, norm_reward=True,
           steps=600, checkpoint_every=100, eval_every=300, eval_episodes=1, seed=1)


def test_sac_killed_in_its_first_write_and_mid_run_resumes_exactly(tmp_path):
    pgrad.train("sac", "Pendulum-v1", out=tmp_path / "straight", progress=False, tensorboard=False, **SAC)
    run = tmp_path / "run"
    args = ["train", "sac", "Pendulum-v1", "--out", str(run), *flags(SAC), *QUIET]
    # dies in the step-0 write: no checkpoint at all, so --resume starts the run again from its config.yaml
    assert die_in_write(args, run, k=1, frac=rng.uniform(0.0, 1.0)) is None
    step = kill_at_random(["train", "--resume", str(run), *QUIET], run, min_step=300)
    assert 300 <= step < 600
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["train"]["envs"]["obs_norm"]["rms"]["count"] > 1  # the normalisers travel with the checkpoint
    assert len(ckpt["train"]["tracked"]["replay"]["fields"]["obs"]) == step // 2
    finish_in_process("sac", run)
    assert_same_params(tmp_path / "straight", run)


D4PG = dict(hidden=(16, 16), batch_size=32, learning_starts=150, chunk=25, n_step=3, noise="ou", num_envs=2,
            steps=600, checkpoint_every=100, eval_every=300, eval_episodes=1, seed=2)


def test_d4pg_in_process_actor_killed_in_a_write_resumes_exactly(tmp_path):
    pgrad.train("d4pg", "Pendulum-v1", out=tmp_path / "straight", progress=False, tensorboard=False, **D4PG)
    run = tmp_path / "run"
    args = ["train", "d4pg", "Pendulum-v1", "--out", str(run), *flags(D4PG), *QUIET]
    assert die_in_write(args, run, k=5, frac=rng.uniform(0.0, 1.0)) == 300  # steps 0, 100, 200, 300; 400 dies
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert "x" in ckpt["train"]["tracked"]["actor"]["noise"]  # the OU process's state
    finish_in_process("d4pg", run)
    assert_same_params(tmp_path / "straight", run)


# ----------------------------------------------------------------------------- asynchronous runs
def pids_in_log(log: Path, what: str) -> list[int]:
    return [int(p) for p in re.findall(rf"{what} \d+ started \(pid (\d+)\)", log.read_text())]


def wait_gone(pids: list[int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        time.sleep(0.1)
    assert not alive, f"processes {alive} outlived their learner"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))  # a zombie is gone


def kill_learner(args: list[str], run_dir: Path, min_step: int, what: str) -> dict:
    """SIGKILL the learner once last.pt has reached min_step; its actors/workers must exit by themselves."""
    kill_at_random(args, run_dir, min_step)
    wait_gone(pids_in_log(run_dir / "run.log", what))
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")


def test_d4pg_with_an_actor_process_survives_a_killed_learner_and_a_killed_actor(tmp_path):
    kw = dict(D4PG, actors=1, noise="gaussian", num_envs=1, steps=2000, checkpoint_every=250, eval_every=0,
              learning_starts=100, replay_ratio=0.5)
    run = tmp_path / "run"
    ckpt = kill_learner(["train", "d4pg", "Pendulum-v1", "--out", str(run), *flags(kw), *QUIET], run, 500, "actor")
    c, saved = ckpt["train"]["counters"], ckpt["train"]["tracked"]
    # resume in this process; kill its actor once it has sent work, as the D4PG paper's actors may die
    result: dict = {}
    th = threading.Thread(target=lambda: result.update(
        agent=pgrad.train("d4pg", None, resume=run, progress=False, tensorboard=False)))
    th.start()
    log, last = run / "run.log", run / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and load_checkpoint(last)["step"] <= c["step"]:  # the actor has sent work
        time.sleep(0.05)
    victim = pids_in_log(log, "actor")[-1]
    os.kill(victim, signal.SIGKILL)
    th.join(600)
    assert "agent" in result, "the resumed run did not complete"
    text = log.read_text()
    assert f"resumed at step {c['step']}" in text
    assert re.search(rf"actor 0 \(pid {victim}\) died with exit code -9; restarting it", text), text
    final = load_checkpoint(run / "checkpoints" / "last.pt")
    f = final["train"]["counters"]
    assert final["step"] >= kw["steps"] and f["updates"] > c["updates"] and f["episodes"] >= c["episodes"]
    assert final["train"]["tracked"]["state"]["updates"] > saved["state"]["updates"]
    # the replay was restored exactly: the resumed buffer begins with the checkpoint's transitions
    n = saved["replay"]["pos"]
    for k, v in saved["replay"]["fields"].items():
        assert torch.equal(final["train"]["tracked"]["replay"]["fields"][k][:n], v[:n]), k


def test_a3c_killed_learner_resumes_from_its_checkpoint(tmp_path):
    kw = dict(workers=1, steps=6000, checkpoint_every=1000, eval_every=0, hidden=(16, 16), seed=0)
    run = tmp_path / "run"
    ckpt = kill_learner(["train", "a3c", "CartPole-v1", "--out", str(run), *flags(kw), *QUIET], run, 1000, "worker")
    c = ckpt["train"]["counters"]
    assert c["step"] >= 1000 and c["updates"] > 0
    pgrad.train("a3c", None, resume=run, progress=False, tensorboard=False)
    text = (run / "run.log").read_text()
    assert f"resumed at step {c['step']}" in text and "not bit-exact" in text
    final = load_checkpoint(run / "checkpoints" / "last.pt")
    f = final["train"]["counters"]
    assert final["step"] >= kw["steps"]
    # counters continue from the checkpoint's: the steps and updates after it add up (n_steps per update)
    per_update = ckpt["config"]["n_steps"] * ckpt["config"]["num_envs"]
    assert f["updates"] - c["updates"] == (final["step"] - c["step"]) // per_update
    assert f["episodes"] >= c["episodes"]
    # the optimiser's statistics came back too: RMSprop's step counts continue from the checkpoint's
    steps_then = [s["step"] for s in ckpt["train"]["tracked"]["opt"]["state"].values()]
    steps_now = [s["step"] for s in final["train"]["tracked"]["opt"]["state"].values()]
    assert all(float(b) > float(a) > 0 for a, b in zip(steps_then, steps_now))
