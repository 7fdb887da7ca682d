"""Resuming as users do it: the original command with `--resume DIR` added works (values equal to the saved ones are
no change; a real change is a one-line error naming the saved value); config.yaml records the new total steps;
TensorBoard keeps the events up to the resumed step and drops those a killed run wrote after it. Also: `pgrad train
ALGO --env ID`, and `--steps N` run in whole batches with the true count printed and logged.
"""

from __future__ import annotations

import csv
import os
import time

import pytest
import torch
import yaml

import pgrad
from pgrad.cli import main
from pgrad.run import load_checkpoint

QUIET = ["--progress", "false", "--tensorboard", "false"]
PPO = ["--num-envs", "2", "--n-steps", "64", "--batch-size", "64", "--epochs", "2", "--hidden", "16", "16",
       "--eval-every", "512", "--eval-episodes", "2", "--checkpoint-every", "512", "--seed", "3", "--lr", "1e-3",
       "--norm-obs", "--anneal-lr", "false", "--anneal-clip", "false"]  # schedules over `steps`: off


def params(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")


def test_the_original_command_with_resume_added_continues_exactly(tmp_path):
    run, straight = tmp_path / "run", tmp_path / "straight"
    assert main(["train", "ppo", "CartPole-v1", "--steps", "1024", "--out", str(run), *PPO, *QUIET]) == 0
    # the same command, steps raised, --resume added: every other value equals the saved one (as typed: "3", "16 16",
    # "1e-3", a bare boolean flag), --out names the same directory
    assert main(["train", "ppo", "CartPole-v1", "--steps", "2048", "--out", str(run), *PPO, *QUIET,
                 "--resume", str(run)]) == 0
    assert main(["train", "ppo", "CartPole-v1", "--steps", "2048", "--out", str(straight), *PPO, *QUIET]) == 0
    a, b = params(run), params(straight)
    assert a["step"] == b["step"] == 2048
    for k in b["nets"]:
        assert torch.equal(a["nets"][k], b["nets"][k]), k
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["steps"] == 2048 and saved["algo"] == "ppo" and saved["seed"] == 3  # the new total is recorded
    assert "resumed at step 1024 (steps 1024 -> 2048)" in (run / "run.log").read_text()


def test_the_positional_env_and_algo_may_be_left_out_or_given_as_env(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "ppo", "--env", "CartPole-v1", "--steps", "512", "--out", str(run), *PPO, *QUIET]) == 0
    assert params(run)["env_id"] == "CartPole-v1"
    assert main(["train", "--resume", str(run), "--env", "CartPole-v1", "--steps", "768", *QUIET]) == 0
    assert params(run)["step"] == 768


def test_a_real_change_is_refused_in_one_line_naming_the_saved_value(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "ppo", "CartPole-v1", "--steps", "256", "--out", str(run), *PPO, *QUIET]) == 0
    capsys.readouterr()
    assert main(["train", "ppo", "CartPole-v1", "--seed", "4", "--lr", "1e-3", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("pgrad: error: cannot change seed when resuming (the run has seed=3); only checkpoint_every, "
                   "eval_episodes, eval_every, log_every, on_nonfinite, progress, select, steps, stop_at, tensorboard, "
                   "threads, track may change")
    assert main(["train", "ppo", "CartPole-v1", "--resume", str(run), "--out", str(tmp_path / "other")]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["train", "ppo", "Pendulum-v1", "--resume", str(run)]) == 2
    assert "trained on CartPole-v1" in capsys.readouterr().err
    with pytest.raises(pgrad.ConfigError, match="cannot change hidden"):
        pgrad.train("ppo", "CartPole-v1", resume=run, hidden=(32, 32))
    assert params(run)["step"] == 256  # nothing was touched


def test_env_given_twice_differently_is_an_error(capsys):
    assert main(["train", "ppo", "CartPole-v1", "--env", "Pendulum-v1"]) == 2
    assert "two environments given" in capsys.readouterr().err


def tb_scalars(run_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_tensorboard_keeps_the_resumed_step_and_drops_orphans(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "run"
    common = ["train", "ppo", "CartPole-v1", "--out", str(run), *PPO, "--log-every", "256", "--progress", "false"]
    assert main([*common, "--steps", "1024"]) == 0
    time.sleep(1.1)  # event files are ordered by their creation second
    with SummaryWriter(str(run)) as w:  # what a run killed after its checkpoint at 1024 had logged beyond it
        w.add_scalar("train/episodes", -12345.0, 1280)
    time.sleep(1.1)
    assert main([*common, "--steps", "2048", "--resume", str(run)]) == 0
    points = tb_scalars(run, "train/episodes")
    steps = [s for s, _ in points]
    assert steps == sorted(set(steps)), steps  # each step once, in order
    assert 1024 in steps and -12345.0 not in [v for _, v in points]
    with open(run / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert steps == [int(r["step"]) for r in rows]  # TensorBoard and progress.csv tell the same story


def test_steps_run_in_whole_batches_and_the_true_count_is_reported(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "ppo", "CartPole-v1", "--steps", "300", "--out", str(run), *PPO, *QUIET]) == 0
    out = capsys.readouterr().out
    assert "trained 384 env steps (--steps 300, run in whole batches)" in out  # rollouts of 64 x 2 envs
    assert "finished at step 384 (300 asked: whole batches of env steps)" in (run / "run.log").read_text()
    with open(run / "progress.csv", newline="") as f:
        assert list(csv.DictReader(f))[-1]["step"] == "384"
    assert params(run)["step"] == 384


# ----------------------------------------------------------------------------- filesystem faults
def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint_and_no_temp_file(tmp_path, monkeypatch, capsys):
    import errno

    import pgrad.run

    run = tmp_path / "run"
    real_write = pgrad.run._Offset.write
    writes = {"n": 0}

    def full_after_first_checkpoint(self, b):  # torch.save's writes: the step-0 file fits, the disk fills after
        writes["n"] += 1
        if load_step_0_done() and writes["n"] > writes.get("limit", 10**9):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, b)

    def load_step_0_done():
        if "limit" not in writes and (run / "checkpoints" / "last.pt").exists():
            writes["limit"] = writes["n"] + 3  # a few writes into the next checkpoint
        return "limit" in writes

    monkeypatch.setattr(pgrad.run._Offset, "write", full_after_first_checkpoint)
    assert main(["train", "ppo", "CartPole-v1", "--steps", "2048", "--out", str(run), *PPO, *QUIET]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"pgrad: error: cannot write {run}/checkpoints/")
    assert "no space left on the device (free some space)" in err
    assert f"last good checkpoint kept: {run}/checkpoints/last.pt (step 0)" in err
    assert err.endswith(f"then continue with: pgrad train --resume {run}")
    assert not list((run / "checkpoints").glob(".*tmp*")), "temp files left behind"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 0
    monkeypatch.setattr(pgrad.run._Offset, "write", real_write)  # space freed: the run continues
    assert main(["train", "--resume", str(run), *QUIET]) == 0
    assert params(run)["step"] == 2048


def test_a_failed_fsync_is_a_checkpoint_error_too(tmp_path, monkeypatch):
    import errno

    import pgrad.run

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pgrad.run.os, "fsync", no_space)
    with pytest.raises(pgrad.CheckpointError, match=r"no space left .* no checkpoint was written; then continue"):
        pgrad.train("ppo", "CartPole-v1", out=tmp_path / "run", steps=256, progress=False, tensorboard=False)
    assert not list((tmp_path / "run" / "checkpoints").iterdir())


def test_an_output_directory_that_cannot_be_made_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert main(["train", "ppo", "CartPole-v1", "--out", str(blocker / "run"), *QUIET]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"pgrad: error: cannot create the run directory {blocker / 'run'}: ")
    assert err.endswith("choose another with --out") and "\n" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_output_directory_is_one_line(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main(["train", "ppo", "CartPole-v1", "--out", str(ro / "run"), *QUIET]) == 2
    finally:
        ro.chmod(0o755)
    assert "permission denied (make the directory writable or choose another)" in capsys.readouterr().err


def test_an_existing_run_directory_is_not_overwritten(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "ppo", "CartPole-v1", "--steps", "256", "--out", str(run), *PPO, *QUIET]) == 0
    before = (run / "checkpoints" / "last.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", "ppo", "CartPole-v1", "--steps", "256", "--out", str(run), *QUIET]) == 2
    assert capsys.readouterr().err.strip() == (f"pgrad: error: {run} already holds a run; resume it with --resume "
                                               f"{run} or choose another --out")
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
