"""Callbacks: user code called from inside a run, that can stop it cleanly (docs/customise.md).

A callback is any callable ``cb(state) -> bool | None``; ``pgrad.train(..., callbacks=[cb])`` calls it at four
points of every algorithm's loop, named by ``state.event``:

    "step"        after each batch of env steps (one call of the algorithm's loop: a rollout, or one step of
                  every env for the off-policy learners)
    "update"      after a batch that made one or more gradient updates (right after its "step")
    "eval"        after each periodic evaluation, and the final one
    "checkpoint"  after each write of checkpoints/last.pt

Returning False, or raising :class:`StopTraining`, stops the run at the end of the current batch: the due
evaluation and checkpoint happen as scheduled, then a final evaluation (unless one was made at that step) and
checkpoints/last.pt, and ``pgrad.train`` returns the Agent as for a finished run. ``--resume`` continues such a run
to its ``steps``. A :class:`Callback` subclass overrides only the events it wants.

Callbacks are not saved in checkpoints: pass them again when resuming (the built-ins' counters start afresh).
They run in the training process between updates; code that draws from the global random streams there makes a
run differ from one without the callback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


class StopTraining(Exception):  # noqa: N818 - a signal to stop, not an error
    """Raise from a callback to stop the run cleanly (its message goes to run.log and the CLI's output)."""


@dataclass(frozen=True)
class RunState:
    """What a callback sees: a snapshot of the run's counters when ``event`` happened."""

    event: str
    """"step", "update", "eval" or "checkpoint"."""
    step: int
    """Env steps so far (summed over envs and workers)."""
    total_steps: int
    """The run's ``steps``."""
    updates: int
    episodes: int
    """Training episodes finished so far."""
    train_return: float | None
    """Mean undiscounted return of the last 100 training episodes (None before the first ends)."""
    eval_return: float | None
    """Mean return of the latest evaluation (None before the first)."""
    best_eval: float | None
    """Best evaluation mean so far (None before the first)."""
    new_best: bool
    """"eval": this evaluation is the best so far (checkpoints/best.pt was just written)."""
    metrics: dict[str, float]
    """The latest losses and statistics the algorithm handed over (the off-policy learners hand them over only on
    logging steps)."""
    run_dir: Path
    checkpoint: Path | None
    """"checkpoint": the file just written."""
    nets: torch.nn.Module | None = field(repr=False)
    """The live networks: read them, do not modify them."""
    _run: Any = field(default=None, repr=False, compare=False)

    def save(self, path: str | Path) -> Path:
        """Write the current policy to ``path`` as a checkpoint that ``pgrad.load`` reads."""
        from pgrad.run import save_checkpoint

        path = Path(path)
        save_checkpoint(path, self._run._policy_payload(eval_return=self.eval_return))
        return path


class Callback:
    """Base class for a callback with one method per event; each may return False (or raise StopTraining)."""

    def __call__(self, state: RunState) -> bool | None:
        return getattr(self, f"on_{state.event}")(state)

    def on_step(self, state: RunState) -> bool | None:
        return None

    def on_update(self, state: RunState) -> bool | None:
        return None

    def on_eval(self, state: RunState) -> bool | None:
        return None

    def on_checkpoint(self, state: RunState) -> bool | None:
        return None


class StopAtReturn(Callback):
    """Stop once an evaluation's mean return reaches ``threshold`` (``stop_at`` / ``--stop-at RETURN``)."""

    def __init__(self, threshold: float):
        self.threshold = float(threshold)

    def on_eval(self, state: RunState) -> None:
        if state.eval_return is not None and state.eval_return >= self.threshold:
            raise StopTraining(f"evaluation return {state.eval_return:.2f} reached stop_at {self.threshold:g}")


class StopOnNoImprovement(Callback):
    """Stop when ``patience`` evaluations in a row have not beaten the best one by more than ``min_delta``."""

    def __init__(self, patience: int, min_delta: float = 0.0):
        if patience < 1:
            raise ValueError(f"patience={patience} must be at least 1")
        self.patience, self.min_delta = int(patience), float(min_delta)
        self.best, self.stale = -math.inf, 0

    def on_eval(self, state: RunState) -> None:
        ret = state.eval_return
        if ret is None:
            return
        if ret > self.best + self.min_delta:
            self.best, self.stale = ret, 0
            return
        self.stale += 1
        if self.stale >= self.patience:
            raise StopTraining(f"no evaluation improved on {self.best:.2f} (by more than {self.min_delta:g}) "
                               f"for {self.patience} evaluations")


class SaveEveryBest(Callback):
    """Keep every new best policy, not only the latest: ``DIR/best-STEP.pt`` (default DIR: the run's checkpoints/),
    each loadable with ``pgrad.load``."""

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory is not None else None
        self.saved: list[Path] = []

    def on_eval(self, state: RunState) -> None:
        if state.new_best:
            where = self.directory if self.directory is not None else state.run_dir / "checkpoints"
            self.saved.append(state.save(where / f"best-{state.step}.pt"))


__all__ = ["Callback", "RunState", "StopTraining", "StopAtReturn", "StopOnNoImprovement", "SaveEveryBest"]
