"""Callbacks (pgrad.callbacks): called at each step batch, update, evaluation and checkpoint with the run's state;
False or StopTraining stops the run cleanly with a checkpoint; the built-ins stop at a return, stop without
improvement and keep every best policy; a callback that only reads leaves the run bit-for-bit unchanged; the
examples of docs/customise.md run."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pgrad
from pgrad.callbacks import Callback, RunState, SaveEveryBest, StopAtReturn, StopOnNoImprovement, StopTraining
from pgrad.run import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
QUIET = dict(progress=False, tensorboard=False)
# rollouts of 64 x 2 = 128 steps; evaluations every 512, checkpoints every 1024
PPO = dict(num_envs=2, n_steps=64, batch_size=64, epochs=2, hidden=(16, 16), steps=2048, eval_every=512,
           eval_episodes=2, checkpoint_every=1024, seed=0, **QUIET)


def evaluations(run_dir: Path) -> list[tuple[int, float]]:
    with open(run_dir / "evaluations.csv", newline="") as f:
        return [(int(r["step"]), float(r["mean_return"])) for r in csv.DictReader(f)]


def test_events_arrive_in_order_with_the_run_state(tmp_path):
    seen: list[RunState] = []
    pgrad.train("ppo", "CartPole-v1", out=tmp_path / "run", callbacks=seen.append, **PPO)
    events = [(s.event, s.step) for s in seen]
    batches = list(range(128, 2049, 128))
    assert [st for e, st in events if e == "step"] == batches
    assert [st for e, st in events if e == "update"] == batches  # PPO updates after every rollout
    assert [st for e, st in events if e == "eval"] == [512, 1024, 1536, 2048]  # periodic, then the final one
    assert [st for e, st in events if e == "checkpoint"] == [0, 1024, 2048]
    # within a batch: step, update, then the evaluation and the checkpoint due at it
    k = events.index(("step", 1024))
    assert events[k:k + 4] == [("step", 1024), ("update", 1024), ("eval", 1024), ("checkpoint", 1024)]
    ev = [s for s in seen if s.event == "eval"]
    assert [(s.step, round(s.eval_return, 6)) for s in ev] == [(st, round(r, 6)) for st, r in
                                                               evaluations(tmp_path / "run")]
    assert all(s.best_eval == max(e.eval_return for e in ev[:i + 1]) for i, s in enumerate(ev))
    upd = [s for s in seen if s.event == "update"]
    assert all("loss/policy" in s.metrics for s in upd) and all(s.updates > 0 for s in upd)
    assert all(s.total_steps == 2048 and s.run_dir == tmp_path / "run" for s in seen)
    ck = [s for s in seen if s.event == "checkpoint"]
    assert all(s.checkpoint == tmp_path / "run" / "checkpoints" / "last.pt" for s in ck)


@pytest.mark.parametrize("how", ["false", "raise"])
def test_a_callback_stops_the_run_cleanly_with_a_checkpoint(tmp_path, how):
    def stop(state):
        if state.event == "update" and state.step >= 640:
            if how == "raise":
                raise StopTraining("enough")
            return False
        return None

    agent = pgrad.train("ppo", "CartPole-v1", out=tmp_path / "run", callbacks=[stop], **PPO)
    assert agent.steps_trained == 640
    assert agent.stop_reason == ("enough" if how == "raise" else "stop returned False at update")
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert ckpt["step"] == 640
    assert [s for s, _ in evaluations(tmp_path / "run")] == [512, 640]  # a final evaluation of the policy left
    log = (tmp_path / "run" / "run.log").read_text()
    assert "stopping:" in log and "finished at step 640" in log
    # --resume continues it to its steps
    pgrad.train("ppo", None, resume=tmp_path / "run", **QUIET)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 2048


def test_a_read_only_callback_leaves_the_run_bit_for_bit_unchanged(tmp_path):
    pgrad.train("ppo", "CartPole-v1", out=tmp_path / "plain", **PPO)
    pgrad.train("ppo", "CartPole-v1", out=tmp_path / "watched", callbacks=lambda s: s.nets is not None, **PPO)
    a = load_checkpoint(tmp_path / "plain" / "checkpoints" / "last.pt")["nets"]
    b = load_checkpoint(tmp_path / "watched" / "checkpoints" / "last.pt")["nets"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_stop_at_a_return_threshold(tmp_path):
    # a first evaluation decides nothing: pick a threshold between the first and the best of a full run
    full = evaluations(pgrad.train("ppo", "CartPole-v1", out=tmp_path / "full", **{**PPO, "steps": 4096}).run_dir)
    first = full[0][1]
    threshold = next(r for _, r in full if r > first)
    stop_step = next(s for s, r in full if r >= threshold)
    agent = pgrad.train("ppo", "CartPole-v1", out=tmp_path / "run", stop_at=threshold, **{**PPO, "steps": 4096})
    got = evaluations(tmp_path / "run")
    assert got == [(s, r) for s, r in full if s <= stop_step]  # stopped at the first evaluation reaching it
    assert got[-1][1] >= threshold and all(r < threshold for _, r in got[:-1])
    assert agent.steps_trained == stop_step < 4096
    assert agent.stop_reason == f"evaluation return {got[-1][1]:.2f} reached stop_at {threshold:g}"
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == stop_step


def test_stop_at_on_the_command_line(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "pgrad.cli", "train", "ppo", "CartPole-v1", "--stop-at", "-1",
                          "--out", str(tmp_path / "run"), "--steps", "2048", "--num-envs", "2", "--n-steps", "64",
                          "--eval-every", "256", "--eval-episodes", "2", "--progress", "false", "--tensorboard",
                          "false"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^stopped at step 256: evaluation return [\d.]+ reached stop_at -1$", out.stdout, re.M), out.stdout


def state(event: str = "eval", ret: float | None = None, step: int = 0, new_best: bool = False) -> RunState:
    return RunState(event=event, step=step, total_steps=100, updates=0, episodes=0, train_return=None,
                    eval_return=ret, best_eval=ret, new_best=new_best, metrics={}, run_dir=Path("."),
                    checkpoint=None, nets=None)


def test_stop_on_no_improvement_counts_evaluations_without_a_new_best():
    cb = StopOnNoImprovement(patience=2, min_delta=1.0)
    cb(state("step"))  # other events are ignored
    for r in (10.0, 12.0, 12.5, 13.5, 13.0):  # 12.5 is within min_delta of 12: no improvement; 13.5 is
        cb(state(ret=r))
    with pytest.raises(StopTraining, match=r"no evaluation improved on 13\.50 \(by more than 1\) for 2 evaluations"):
        cb(state(ret=14.0))
    with pytest.raises(ValueError):
        StopOnNoImprovement(patience=0)
    assert StopAtReturn(5.0)(state(ret=4.9)) is None
    with pytest.raises(StopTraining):
        StopAtReturn(5.0)(state(ret=5.0))


def test_stop_on_no_improvement_in_a_run(tmp_path):
    agent = pgrad.train("ppo", "CartPole-v1", out=tmp_path / "run", callbacks=StopOnNoImprovement(patience=1),
                        **{**PPO, "steps": 8192})
    got = evaluations(tmp_path / "run")
    # the run ends at the first evaluation not above every one before it, and evaluates no more
    stale = [i for i in range(1, len(got)) if got[i][1] <= max(r for _, r in got[:i])]
    assert stale == [len(got) - 1]
    assert agent.steps_trained == got[-1][0] < 8192 and "for 1 evaluations" in agent.stop_reason


def test_save_every_best_keeps_each_new_best_loadable(tmp_path):
    keep = SaveEveryBest()
    pgrad.train("ppo", "CartPole-v1", out=tmp_path / "run", callbacks=keep, **{**PPO, "steps": 3072})
    best, expected = -float("inf"), []
    for step, ret in evaluations(tmp_path / "run"):
        if ret >= best:
            best = ret
            expected.append(tmp_path / "run" / "checkpoints" / f"best-{step}.pt")
    assert keep.saved == expected and all(p.exists() for p in expected)
    assert sorted((tmp_path / "run" / "checkpoints").glob("best-*.pt")) == sorted(expected)
    agent = pgrad.load(expected[-1])
    assert agent.step == int(expected[-1].stem.split("-")[1])
    assert torch.equal(agent.nets.state_dict()["pi.logits.0.weight"],
                       pgrad.load(tmp_path / "run" / "checkpoints" / "best.pt").nets.state_dict()["pi.logits.0.weight"])


def test_callbacks_reach_off_policy_learners_too(tmp_path):
    class Count(Callback):
        def __init__(self):
            self.steps, self.updates = 0, 0

        def on_step(self, state):
            self.steps += 1

        def on_update(self, state):
            self.updates += 1

    cb = Count()
    pgrad.train("sac", "Pendulum-v1", out=tmp_path / "run", steps=300, learning_starts=100, batch_size=32,
                hidden=(16, 16), eval_every=0, eval_episodes=1, callbacks=[cb], **QUIET)
    counters = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["train"]["counters"]
    assert cb.steps == 300  # one env: a "step" per env step
    assert cb.updates == counters["updates"] == 201  # "update" once learning starts (from the 100th step on)


def test_a_callback_that_is_not_callable_is_refused(tmp_path):
    with pytest.raises(pgrad.ConfigError, match="callbacks must be callables"):
        pgrad.train("ppo", "CartPole-v1", out=tmp_path / "run", callbacks=[42], **PPO)


def test_the_callbacks_example_of_docs_customise_runs(tmp_path, customise_examples):
    blocks, run = customise_examples
    for code in blocks("Callbacks"):
        assert "evaluation" in run(code, tmp_path).stdout
    assert list((tmp_path / "runs" / "customise-callbacks" / "checkpoints").glob("best-*.pt"))
