"""SIGINT and SIGTERM stop a run cleanly: after the current update a checkpoint is written, one line says how to
continue (`stopped at step N; continue with: pgrad train --resume DIR`), the CLI exits 130 (SIGINT) or 143
(SIGTERM), worker processes exit with their learner, and `--resume` continues from step N: for PPO on CPU, to the
very parameters of a run never stopped. In Python, `pgrad.train` raises `pgrad.Interrupted` (a KeyboardInterrupt)
after saving; a second signal abandons the update under way and keeps the last complete checkpoint.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import pgrad
from pgrad.cli import main
from pgrad.run import load_checkpoint

QUIET = ["--progress", "false", "--tensorboard", "false"]
LINE = re.compile(r"^stopped at step (\d+); continue with: pgrad train --resume (\S+)$", re.MULTILINE)


def flags(kw: dict) -> list[str]:
    out: list[str] = []
    for k, v in kw.items():
        out.append("--" + k.replace("_", "-"))
        out.extend(str(x) for x in v) if isinstance(v, tuple) else out.append(str(v).lower() if isinstance(v, bool)
                                                                             else str(v))
    return out


def signal_run(args: list[str], run_dir: Path, sig: int, min_step: int, group: bool = False) -> tuple[int, str]:
    """Start ``pgrad ARGS`` in a child, send ``sig`` once checkpoints/last.pt has reached ``min_step`` (to the
    whole process group when ``group``, as a terminal's Ctrl-C does); (exit code, output)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pgrad.cli", *args], cwd=run_dir.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    last = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if last.exists() and load_checkpoint(last)["step"] >= min_step:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before the signal:\n{proc.communicate()[0]}"
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


def stopped_step(out: str, run_dir: Path) -> int:
    """The step of the one `stopped at step N` line, checked against the checkpoint written."""
    lines = LINE.findall(out)
    assert len(lines) == 1, out
    step, where = int(lines[0][0]), lines[0][1]
    assert Path(where).resolve() == run_dir.resolve()
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert ckpt["step"] == step and ckpt["train"]["counters"]["step"] == step
    assert not list((run_dir / "checkpoints").glob(".*.tmp-*")), "temp files left behind"
    return step


def pids_in_log(log: Path, what: str) -> list[int]:
    return [int(p) for p in re.findall(rf"{what} \d+ started \(pid (\d+)\)", log.read_text())]


def assert_gone(pids: list[int], timeout: float = 30.0) -> None:
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
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


PPO = dict(num_envs=2, n_steps=64, batch_size=64, epochs=2, hidden=(16, 16), steps=8192, checkpoint_every=512,
           eval_every=1024, eval_episodes=2, seed=5)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_exits_with_its_code_and_resume_continues_exactly(tmp_path, sig, code):
    run = tmp_path / "run"
    rc, out = signal_run(["train", "ppo", "CartPole-v1", "--out", str(run), *flags(PPO), *QUIET], run, sig, 512)
    assert rc == code, out
    step = stopped_step(out, run)
    assert 512 <= step < PPO["steps"] and step % 128 == 0  # a whole rollout: the update was finished
    name = signal.Signals(sig).name
    assert f"pgrad: {name}: stopping after this update" in out
    assert "Traceback" not in out
    assert f"finished at step {step}" in (run / "run.log").read_text()
    # resume: the checkpoint holds the envs mid-episode and the RNG streams, so the run ends where one never stopped
    assert main(["train", "--resume", str(run), *QUIET]) == 0
    assert f"resumed at step {step}" in (run / "run.log").read_text()
    pgrad.train("ppo", "CartPole-v1", out=tmp_path / "straight", progress=False, tensorboard=False, **PPO)
    a = load_checkpoint(run / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] >= PPO["steps"]
    for k in b["nets"]:
        assert torch.equal(a["nets"][k], b["nets"][k]), k


def test_sigterm_stops_a3c_and_its_workers(tmp_path):
    kw = dict(workers=2, steps=500_000, checkpoint_every=500, eval_every=0, hidden=(16, 16), seed=0)
    run = tmp_path / "run"
    rc, out = signal_run(["train", "a3c", "CartPole-v1", "--out", str(run), *flags(kw), *QUIET], run,
                         signal.SIGTERM, 500)
    assert rc == 143, out
    step = stopped_step(out, run)
    workers = pids_in_log(run / "run.log", "worker")
    assert len(workers) == 2
    assert_gone(workers)
    stopped = load_checkpoint(run / "checkpoints" / "last.pt")["train"]["counters"]
    pgrad.train("a3c", None, resume=run, steps=step + 400, progress=False, tensorboard=False)
    final = load_checkpoint(run / "checkpoints" / "last.pt")
    assert final["step"] >= step + 400
    assert final["train"]["counters"]["updates"] > stopped["updates"] > 0


def test_sigterm_stops_a3c_on_ray(tmp_path):
    """ray.init replaces the SIGTERM handler with an immediate exit; the run takes it back, saves and shuts Ray
    down."""
    pytest.importorskip("ray")
    kw = dict(backend="ray", workers=1, steps=2_000_000, checkpoint_every=500, eval_every=0, hidden=(16, 16), seed=0)
    run = tmp_path / "run"
    rc, out = signal_run(["train", "a3c", "CartPole-v1", "--out", str(run), *flags(kw), *QUIET], run,
                         signal.SIGTERM, 500)
    assert rc == 143, out
    stopped_step(out, run)
    assert "interrupted by SIGTERM" in (run / "run.log").read_text()


def test_ctrl_c_in_a_terminal_stops_d4pg_and_its_actor(tmp_path):
    """A terminal sends SIGINT to the whole process group: the learner saves, its actor process exits, and no
    restart of the actor is attempted."""
    kw = dict(actors=1, hidden=(16, 16), batch_size=32, learning_starts=100, steps=500_000, checkpoint_every=250,
              eval_every=0, seed=2)
    run = tmp_path / "run"
    rc, out = signal_run(["train", "d4pg", "Pendulum-v1", "--out", str(run), *flags(kw), *QUIET], run,
                         signal.SIGINT, 250, group=True)
    assert rc == 130, out
    stopped_step(out, run)
    actors = pids_in_log(run / "run.log", "actor")
    assert len(actors) == 1, (run / "run.log").read_text()  # not restarted
    assert_gone(actors)
    assert "Traceback" not in out


# ----------------------------------------------------------------------------- in process
def send_at(step: int, times: int = 1):
    """A callback that signals this process (SIGINT) ``times`` times once the run reaches ``step``."""
    def cb(state: pgrad.RunState) -> None:
        if state.event == "step" and state.step >= step and not cb.sent:
            cb.sent = True
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
    cb.sent = False
    return cb


def test_train_raises_keyboard_interrupt_after_saving(tmp_path):
    kw = dict(PPO, steps=4096)
    with pytest.raises(KeyboardInterrupt) as info:
        pgrad.train("ppo", "CartPole-v1", out=tmp_path / "run", progress=False, tensorboard=False,
                    callbacks=send_at(700), **kw)
    e = info.value
    assert isinstance(e, pgrad.Interrupted) and e.saved and e.signum == signal.SIGINT
    assert e.step == 768 and Path(e.run_dir) == tmp_path / "run"  # the batch under way (to 768) was finished
    assert str(e) == f"stopped at step 768; continue with: pgrad train --resume {tmp_path / 'run'}"
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 768
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are put back
    agent = pgrad.train("ppo", None, resume=tmp_path / "run", progress=False, tensorboard=False)
    assert agent.steps_trained == 4096


def test_a_second_signal_abandons_the_update_and_keeps_the_last_checkpoint(tmp_path):
    kw = dict(PPO, steps=4096)
    with pytest.raises(pgrad.Interrupted) as info:
        pgrad.train("ppo", "CartPole-v1", out=tmp_path / "run", progress=False, tensorboard=False,
                    callbacks=send_at(700, times=2), **kw)
    e = info.value
    assert not e.saved and e.step == 512  # the periodic checkpoint before the signals
    assert str(e).startswith("stopped at step 512; continue with: pgrad train --resume ")
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 512
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not list((tmp_path / "run" / "checkpoints").glob(".*.tmp-*"))
