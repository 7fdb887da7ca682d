"""Hogwild! machinery for A3C: shared-memory parameters and optimiser statistics, per-worker counters, and
worker processes (spawn) that are restarted when they die.

What lives in shared memory (one copy, read and written by every process without locks, Recht et al., 2011):
- the global parameters θ, w (``module.share_memory()``);
- the optimiser's statistics (RMSprop's running mean of g², Adam's moments, step counts): every worker builds
  its own optimiser object over the shared parameters and points its state at these shared tensors
  (``init_optimizer_state`` + ``share_optimizer_state`` in the main process, ``attach_optimizer_state`` in a
  worker), so the statistics are shared as in the A3C paper's "shared RMSProp";
- ``WorkerStats``: one row per worker (its env steps, updates, last losses) and a ring of its finished episodes.
  Each row has exactly one writer, so the global step counter T = Σ_k steps_k needs no lock, and a worker killed
  at any instant can leave no lock held.

Gradients are *copied* from a worker's local model into the shared one (``copy_gradients``), never aliased:
with ``zero_grad(set_to_none=True)`` an aliased ``.grad`` silently accumulates or goes stale.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import cloudpickle
import torch
import torch.multiprocessing as tmp
from torch import nn

from pgrad.parallel.watchdog import run_watched
from pgrad.seeding import worker_seed  # noqa: F401 - where the A2C and A3C loops have always found it

# ------------------------------------------------------------------------------------------------ optimiser
_ZEROS_LIKE = {
    torch.optim.RMSprop: lambda g: ["square_avg"] + (["momentum_buffer"] if g["momentum"] > 0 else [])
    + (["grad_avg"] if g["centered"] else []),
    torch.optim.Adam: lambda g: ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if g["amsgrad"] else []),
}


def init_optimizer_state(opt: torch.optim.Optimizer) -> None:
    """Create the per-parameter state now, as the optimiser's first step would (zeros, step 0).

    Supported: torch.optim.RMSprop and torch.optim.Adam (CPU, no fused/capturable), and optimisers with an
    ``init_state(state, p)`` (core.optim.RMSpropTF). Creating it eagerly lets the state be moved to shared memory
    before any worker starts.
    """
    if hasattr(opt, "init_state"):  # an optimiser that says how its state starts (core.optim.RMSpropTF: ones)
        for group in opt.param_groups:
            for p in group["params"]:
                if not opt.state[p]:
                    opt.init_state(opt.state[p], p)
        return
    names = _ZEROS_LIKE.get(type(opt))
    if names is None:
        raise TypeError(f"shared optimiser state supports RMSprop and Adam, not {type(opt).__name__}")
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state[p]
            if st:
                continue
            st["step"] = torch.zeros((), dtype=torch.float32)
            for name in names(group):
                st[name] = torch.zeros_like(p, memory_format=torch.preserve_format)


def share_optimizer_state(opt: torch.optim.Optimizer) -> list[dict[str, torch.Tensor]]:
    """Move every state tensor to shared memory (in place); returns the states in parameter order."""
    out = []
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state[p]
            for v in st.values():
                if isinstance(v, torch.Tensor):
                    v.share_memory_()
            out.append(st)
    return out


def attach_optimizer_state(opt: torch.optim.Optimizer, states: list[dict[str, torch.Tensor]]) -> None:
    """Point a worker's optimiser (built over the shared parameters) at the shared state tensors."""
    params = [p for g in opt.param_groups for p in g["params"]]
    if len(params) != len(states):
        raise ValueError(f"{len(states)} shared optimiser states for {len(params)} parameters")
    for p, st in zip(params, states):
        opt.state[p] = st


def copy_gradients(local: nn.Module, shared: nn.Module) -> None:
    """shared.grad ← local.grad, parameter by parameter (a copy into a worker-owned buffer, never an alias).

    A parameter without a local gradient gets a zero gradient in the shared model."""
    for lp, sp in zip(local.parameters(), shared.parameters()):
        if sp.grad is None:
            sp.grad = torch.zeros_like(sp, memory_format=torch.contiguous_format)
        if lp.grad is None:
            sp.grad.zero_()
        else:
            sp.grad.copy_(lp.grad)


# ------------------------------------------------------------------------------------------------ counters
class WorkerStats:
    """Per-worker counters in shared memory: steps, updates, finished-episode ring, last metrics, control flags.

    Row k is written only by worker k (and its replacement after a restart), read by the main process.
    """

    STEPS, UPDATES, EPISODES, DONE = 0, 1, 2, 3
    FIXED = 4

    def __init__(self, num_workers: int, metric_names: list[str], ring: int = 256):
        self.metric_names = list(metric_names)
        self.table = torch.zeros(num_workers, self.FIXED + len(metric_names), dtype=torch.float64).share_memory_()
        self.ring = torch.zeros(num_workers, ring, 2, dtype=torch.float64).share_memory_()
        self.stop = torch.zeros(1, dtype=torch.int64).share_memory_()  # set by the main process: stop now
        self._read = [0] * num_workers

    # -- worker side
    def add(self, k: int, steps: int, finished: list[tuple[float, int]], metrics: dict[str, torch.Tensor]) -> None:
        row = self.table[k]
        R = self.ring.shape[1]
        n = int(row[self.EPISODES])
        for ret, length in finished:
            self.ring[k, n % R, 0] = ret
            self.ring[k, n % R, 1] = length
            n += 1
        if metrics:
            vals = torch.stack([metrics[name].detach().reshape(()).double() for name in self.metric_names])
            row[self.FIXED:] = vals
        row[self.EPISODES] = n  # after the ring entries: the reader never sees a count ahead of its entries
        row[self.UPDATES] += 1
        row[self.STEPS] += steps

    def total_steps(self) -> int:
        return int(self.table[:, self.STEPS].sum())

    # -- main side
    def new_episodes(self) -> list[tuple[float, int]]:
        out: list[tuple[float, int]] = []
        R = self.ring.shape[1]
        for k in range(self.table.shape[0]):
            n = int(self.table[k, self.EPISODES])
            start = max(self._read[k], n - R)
            for i in range(start, n):
                out.append((float(self.ring[k, i % R, 0]), int(self.ring[k, i % R, 1])))
            self._read[k] = n
        return out

    def metrics(self) -> dict[str, torch.Tensor]:
        """Mean of the latest metrics of the workers that have updated at least once."""
        active = self.table[:, self.UPDATES] > 0
        if not bool(active.any()):
            return {}
        vals = self.table[active, self.FIXED:].mean(0).float()
        return dict(zip(self.metric_names, vals.unbind()))


def record_episodes(run: Any, finished: list[tuple[float, int]]) -> None:
    """Count episodes that ended in worker processes in a Run's statistics (it sees no training env itself)."""
    for ret, length in finished:
        run.recent.append(ret)
        run.recent_len.append(length)
        run.episodes += 1


# ------------------------------------------------------------------------------------------------ processes
def pickle_factory(factory: Callable) -> bytes:
    """An env factory as bytes a spawned process can rebuild (closures and lambdas included, via cloudpickle)."""
    return cloudpickle.dumps(factory)


def unpickle_factory(blob: bytes) -> Callable:
    return cloudpickle.loads(blob)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_signals_blocked() -> Any:
    """Block SIGINT and SIGTERM in this thread while a child process starts.

    The child inherits the mask through spawn, so a Ctrl-C or a scheduler's SIGTERM to the process group during its
    start-up (interpreter, imports, unpickling) waits until ``ignore_stop_signals`` drops it, instead of killing it
    or printing a traceback; this process receives its own pending signal when the block ends.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    # multiprocessing starts its resource tracker at the first spawn, then unblocks these very signals: start it first
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def ignore_stop_signals() -> None:
    """In a worker or actor process: SIGINT and SIGTERM belong to the learner, which stops its workers through their
    stop flag and closes the pool (pgrad.run's signal handling); a worker cut by one would die mid-write."""
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)  # also drops one that arrived during start-up (stop_signals_blocked)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def run_ignoring_stop_signals(target: Callable[..., Any], *args: Any) -> None:
    """Process entry point: ``target(*args)`` with SIGINT and SIGTERM ignored (``ignore_stop_signals``)."""
    ignore_stop_signals()
    target(*args)


@contextlib.contextmanager
def _without_main_reimport() -> Any:
    """Start spawn children without re-running the parent's main script.

    A spawned child normally re-imports ``__main__`` (the user's script), which re-runs any training call not
    under ``if __name__ == "__main__":``. Workers need nothing from it (the env factory travels by value,
    with cloudpickle), so the script's path and spec are hidden from multiprocessing while a child starts.
    """
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    try:
        if main is not None:
            main.__dict__.pop("__file__", None)
            main.__spec__ = None
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)
            if "__spec__" not in saved:
                main.__dict__.pop("__spec__", None)


class WorkerPool:
    """K worker processes started with ``spawn``; ``poll()`` restarts any that died before finishing.

    ``make_args(k, restarts)`` gives worker k's arguments (a new seed for each restart: pgrad.seeding.worker_seed);
    ``target(*args)`` must return normally once the run is over (exit code 0). Workers ignore SIGINT and SIGTERM
    (the main process stops them through their stop flag). A worker that exits otherwise (killed, crashed) is
    started again from the shared parameters, at most ``max_restarts`` times per worker.
    """

    def __init__(self, target: Callable, make_args: Callable[[int, int], tuple], num_workers: int,
                 log: Callable[[str], None], max_restarts: int = 10):
        self.ctx = tmp.get_context("spawn")
        self.target, self.make_args, self.K = target, make_args, num_workers
        self.log, self.max_restarts = log, max_restarts
        self.procs: list[Any] = [None] * num_workers
        self.restarts = [0] * num_workers
        self.finished = [False] * num_workers

    def _start(self, k: int) -> None:
        # run_watched: a worker outlives no learner killed with SIGKILL (daemon=True acts only on a normal exit)
        p = self.ctx.Process(target=run_watched, args=(run_ignoring_stop_signals, os.getpid(), self.target,
                                                       *self.make_args(k, self.restarts[k])),
                             daemon=True, name=f"pgrad-worker-{k}")
        with _without_main_reimport(), stop_signals_blocked():
            p.start()
        self.procs[k] = p
        self.log(f"worker {k} started (pid {p.pid})" + (f", restart {self.restarts[k]}" if self.restarts[k] else ""))

    def start(self) -> None:
        for k in range(self.K):
            self._start(k)

    def poll(self, run_over: bool) -> bool:
        """Restart dead workers; True once every worker has exited normally (or the run is over and all exited)."""
        for k, p in enumerate(self.procs):
            if self.finished[k] or p is None or p.is_alive():
                continue
            code = p.exitcode
            p.join()
            if code == 0 or run_over:
                self.finished[k] = True
                if code != 0:
                    self.log(f"worker {k} (pid {p.pid}) exited with code {code} after the run ended")
                continue
            self.restarts[k] += 1
            if self.restarts[k] > self.max_restarts:
                self.stop_all()
                from pgrad.errors import PgradError

                raise PgradError(f"A3C worker {k} died {self.restarts[k]} times (last exit code {code}); "
                                 "see the traceback above and run.log")
            self.log(f"worker {k} (pid {p.pid}) died with exit code {code}; restarting it "
                     f"({self.restarts[k]} of at most {self.max_restarts})")
            self._start(k)
        return all(self.finished)

    def stop_all(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        for p in self.procs:
            if p is not None:
                p.join(max(0.0, deadline - time.monotonic()))
        for p in self.procs:
            if p is not None and p.is_alive():
                p.kill()  # workers ignore SIGTERM
                p.join(2.0)

    def pids(self) -> list[int | None]:
        return [p.pid if p is not None else None for p in self.procs]
