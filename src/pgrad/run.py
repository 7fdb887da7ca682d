"""The run directory and everything around an algorithm's loop: logs, progress, evaluation, checkpoints, resume.

An algorithm's ``train(cfg, run)`` calls, in order:

    envs = run.make_envs()              # the training VecEnv (restored mid-episode when resuming)
    nets, opt = build(cfg, run.spec)
    run.track(nets=nets, opt=opt, ...)  # what checkpoints hold; loaded here when resuming
    while run.step < cfg.steps:
        ... collect, update ...
        if not run.advance(steps, metrics):   # logs, evaluates, checkpoints; False once the run must stop
            break
    return nets

Helpers, not a callback framework: the user's callbacks (pgrad.callbacks) are called from ``advance``, ``evaluate_now``
and ``save``, so no algorithm knows of them. A run stops early when a callback says so or on SIGINT / SIGTERM: the
loop ends after the current batch, ``finish`` writes last.pt, and ``pgrad.train`` raises ``pgrad.Interrupted`` (a
KeyboardInterrupt) for a signal. The layout of a run directory:

    config.yaml  progress.csv  evaluations.csv  events.out.tfevents.*  run.log  curve.png
    checkpoints/last.pt  checkpoints/best.pt
"""

from __future__ import annotations

import collections
import csv
import datetime as _dt
import errno
import hashlib
import io
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from pgrad.callbacks import RunState, StopAtReturn, StopTraining
from pgrad.config import BaseConfig
from pgrad.envs import EnvSpec, VecEnv, evaluation_factory, run_episodes
from pgrad.errors import CheckpointError, NumericsError, PgradError
from pgrad.seeding import eval_seeds, seed_everything

FORMAT_VERSION = 2  # 2: EnvSpec has obs_shape, obs_dtype and obs_hwc (defaults make version-1 files load)
_MAGIC = b"PGRADCK1"

# Test seam: called with (temp file, final path) once the temp file is complete and fsynced, just before the rename.
# tests/reliability/test_kill_resume.py kills the process here (after cutting the temp file short) to prove that a
# crash in the middle of a write leaves the previous checkpoint whole.
before_commit: Callable[[Path, Path], None] | None = None


# ----------------------------------------------------------------------------- checkpoint files
class _Offset(io.RawIOBase):
    """A file seen from byte ``start`` on: torch.save and torch.load read and write the payload in place, after
    the checkpoint's header."""

    def __init__(self, f: Any, start: int):
        super().__init__()
        self.f, self.start = f, start
        f.seek(start)

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return self.f.readinto(b)

    def write(self, b: Any) -> int:
        return self.f.write(b)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            offset += self.start
        return self.f.seek(offset, whence) - self.start

    def tell(self) -> int:
        return self.f.tell() - self.start

    def flush(self) -> None:
        self.f.flush()


def save_checkpoint(path: str | Path, obj: dict[str, Any]) -> None:
    """Atomically write ``obj``: a temp file in the same directory, fsync, then rename over the old file.

    File layout: 8-byte magic, 32-byte SHA-256 of the payload, payload (torch.save). A crash at any point
    leaves either the previous complete file or the new complete file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w+b") as f:
            # the payload streams to the file (a large replay is not copied in memory first), then is hashed back
            f.write(_MAGIC + bytes(32))
            torch.save(obj, _Offset(f, len(_MAGIC) + 32))
            f.seek(len(_MAGIC) + 32)
            digest = hashlib.sha256()
            while chunk := f.read(1 << 24):
                digest.update(chunk)
            f.seek(len(_MAGIC))
            f.write(digest.digest())
            f.flush()
            os.fsync(f.fileno())
        if before_commit is not None:
            before_commit(tmp, path)
        os.replace(tmp, path)
    except BaseException as e:  # a full disk, a second Ctrl-C: the old file stays, the temp file goes
        tmp.unlink(missing_ok=True)
        os_error = _os_error_in(e)
        if os_error is not None and not isinstance(e, CheckpointError):
            raise CheckpointError(f"cannot write {path}: {_os_reason(os_error)}") from e
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
    except OSError:
        pass


def _os_error_in(e: BaseException) -> OSError | None:
    """The OSError behind ``e``: itself, or the one torch.save's RuntimeError was raised while handling."""
    seen = 0
    while e is not None and seen < 5:
        if isinstance(e, OSError):
            return e
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


def _os_reason(e: OSError) -> str:
    """A failed write in words, with what to do."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the device (free some space)"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied (make the directory writable or choose another)"
    return e.strerror or str(e)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by save_checkpoint, refusing truncated or corrupted files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    with open(path, "rb") as f:  # hashed in chunks, then read once by torch.load (no copy of the whole file)
        head = f.read(40)
        if len(head) < 40 or head[:8] != _MAGIC:
            raise CheckpointError(f"{path} is not a pgrad checkpoint (or is truncated); use another checkpoint")
        digest = hashlib.sha256()
        while chunk := f.read(1 << 24):
            digest.update(chunk)
        if digest.digest() != head[8:40]:
            raise CheckpointError(f"{path} is corrupted (checksum mismatch); use checkpoints/best.pt or a backup")
        try:
            obj = torch.load(_Offset(f, 40), map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad checkpoint
            raise CheckpointError(f"{path} cannot be read ({type(e).__name__}); it was not written by this pgrad") \
                from None
    if not isinstance(obj, dict) or obj.get("format") != "pgrad":
        raise CheckpointError(f"{path} is not a pgrad checkpoint")
    missing = [k for k in ("algo", "env_id", "spec", "config", "nets") if k not in obj]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}; it was not written by pgrad")
    if obj.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {obj['version']}; upgrade pgrad to read it")
    return obj


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(d: dict[str, Any]) -> None:
    random.setstate(d["python"])
    np.random.set_state(d["numpy"])
    torch.set_rng_state(d["torch"])


# ----------------------------------------------------------------------------- the run
class Run:
    """One training run: its directory, logs, evaluation, checkpoints and progress display."""

    def __init__(self, algo: str, module: Any, cfg: BaseConfig, factory: Callable, spec: EnvSpec,
                 directory: Path, resume: dict[str, Any] | None = None,
                 callbacks: Sequence[Callable[[RunState], bool | None]] = ()):
        self.algo, self.module, self.cfg, self.factory, self.spec = algo, module, cfg, factory, spec
        self.dir = Path(directory)
        try:
            (self.dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PgradError(f"cannot create the run directory {self.dir}: {_os_reason(e)}; "
                             "choose another with --out") from None
        self._resume = resume
        self.callbacks = list(callbacks)
        if getattr(cfg, "stop_at", None) is not None:
            self.callbacks.append(StopAtReturn(cfg.stop_at))
        self.stop_reason: str | None = None  # why a callback stopped the run
        self.stop_signal: int | None = None  # SIGINT or SIGTERM, once one has asked the run to stop
        self._last_eval_step: int | None = None
        self.step = 0
        self.updates = 0
        self.episodes = 0
        self.best_eval = -math.inf
        self.last_eval: float | None = None
        self.recent: collections.deque[float] = collections.deque(maxlen=100)
        self.recent_len: collections.deque[int] = collections.deque(maxlen=100)
        self.eval_count = 0
        self.exact_resume = True
        self.stop_requested = False
        self.tracked: dict[str, Any] = {}
        self.envs: VecEnv | None = None
        self.nets: torch.nn.Module | None = None
        self.counters_extra: dict[str, float] = {}
        self.skipped_updates = 0  # optimiser steps skipped for non-finite gradients (on_nonfinite="skip")
        self.last_ckpt_step: int | None = None  # the step of the newest complete checkpoints/last.pt
        self._pending: dict[str, float] = {}
        self.eval_extra: dict[str, float] = {}
        self._csv_keys: list[str] | None = None
        self._tb = None
        self._bar = None
        self._prev_handlers: dict[int, Any] = {}

        torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        self.log_every = cfg.log_every or max(1000, cfg.steps // 200)
        self.next_log = self.log_every
        self.next_eval = cfg.eval_every if cfg.eval_every > 0 else math.inf
        self.next_ckpt = cfg.checkpoint_every if cfg.checkpoint_every > 0 else math.inf
        if resume is not None:
            c = resume["train"]["counters"]
            self.step, self.updates, self.episodes = c["step"], c["updates"], c["episodes"]
            self.best_eval, self.last_eval, self.eval_count = c["best_eval"], c["last_eval"], c["eval_count"]
            self.recent.extend(c["recent"])
            self.recent_len.extend(c["recent_len"])
            self.next_log, self.next_eval, self.next_ckpt = c["next_log"], c["next_eval"], c["next_ckpt"]
            if cfg.eval_every > 0 and self.next_eval == math.inf:
                self.next_eval = self.step + cfg.eval_every
            self.counters_extra = dict(c.get("extra", {}))
            self.skipped_updates = int(c.get("skipped_updates", 0))
            self.last_ckpt_step = self.step
            _remove_stale_temp_files(self.dir / "checkpoints")
            self._truncate_csv("progress.csv", self.step)
            self._truncate_csv("evaluations.csv", self.step)
            before = resume["config"].get("steps")
            self._write_config()  # the settings a resume may change (steps above all) as they now are
            self.log_event(f"resumed at step {self.step}"
                           + (f" (steps {before} -> {cfg.steps})" if before not in (None, cfg.steps) else ""))
        else:
            self._write_config()
            self.log_event(f"started {algo} on {spec.env_id} for {cfg.steps} steps (seed {cfg.seed})")
        self._t0 = time.perf_counter()
        self._step0 = self.step
        self._install_signal_handlers()

    def _write_config(self) -> None:
        """config.yaml: the algorithm and every Config value (keys it does not know are kept), replaced atomically."""
        path = self.dir / "config.yaml"
        old: dict[str, Any] = {}
        if path.exists():
            try:
                loaded = yaml.safe_load(path.read_text())
                old = loaded if isinstance(loaded, dict) else {}
            except yaml.YAMLError:
                pass
        tmp = path.with_name(f".config.yaml.tmp-{os.getpid()}")
        try:
            with open(tmp, "w") as f:
                yaml.safe_dump({**old, "algo": self.algo, **self.cfg.to_dict()}, f, sort_keys=False)
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise PgradError(f"cannot write {path}: {_os_reason(e)}; choose another directory with --out") from None

    # ---------------------------------------------------------------- setup used by algorithms
    def make_envs(self, num_envs: int | None = None, gamma: float | None = None) -> VecEnv:
        """The training vector env: seeded from cfg.seed, restored mid-episode when resuming."""
        cfg = self.cfg
        gamma = gamma if gamma is not None else getattr(cfg, "gamma", 0.99)
        if getattr(self.module, "MULTI_AGENT", False):  # a multi-agent algorithm brings its own vector env
            envs = self.module.make_envs(self.factory, num_envs or cfg.num_envs, cfg.seed, self.spec, cfg)
        else:
            envs = VecEnv(self.factory, num_envs or cfg.num_envs, cfg.seed, self.spec,
                          vectorization=cfg.vectorization, norm_obs=cfg.norm_obs, norm_reward=cfg.norm_reward,
                          clip_obs=cfg.clip_obs, gamma=gamma, device=cfg.device)
        if self._resume is not None and "envs" in self._resume["train"]:
            self.exact_resume = envs.load_state_dict(self._resume["train"]["envs"])
            if not self.exact_resume:
                self.log_event("the env could not be restored mid-episode (not picklable): episodes restart")
        self.envs = envs
        return envs

    def track(self, nets: torch.nn.Module, **others: Any) -> None:
        """Register what checkpoints hold. ``nets`` are the networks the policy needs (module.act uses them);
        ``others`` are optimisers, replay buffers, noise processes: anything with state_dict/load_state_dict.
        When resuming, their states and the RNG states are restored now."""
        self.nets = nets
        self.tracked = {"nets": nets, **others}
        if self._resume is not None:
            st = self._resume["train"]["tracked"]
            for name, obj in self.tracked.items():
                if name not in st:
                    raise CheckpointError(f"checkpoint has no state for {name!r}; it was written by another version")
                obj.load_state_dict(st[name])
            set_rng_state(self._resume["train"]["rng"])
        if getattr(self.cfg, "on_nonfinite", "stop") == "skip":
            self._guard_optimizers()
        self._start_progress()
        if self._resume is None:
            self.save()  # step 0: a run killed at any later instant has a checkpoint to resume from

    # ---------------------------------------------------------------- per-iteration
    def advance(self, steps: int, metrics: dict[str, torch.Tensor] | None = None, updates: int = 1) -> bool:
        """Count ``steps`` env steps and ``updates`` updates, then log, evaluate and checkpoint when due.

        Calls the callbacks ("step", then "update" when ``updates`` > 0, "eval", "checkpoint"). Returns False when the
        run should stop (a callback, SIGINT or SIGTERM): the algorithm breaks out of its loop.
        """
        self.step += steps
        self.updates += updates
        if self.envs is not None:
            for ret, length in self.envs.pop_finished():
                self.recent.append(ret)
                self.recent_len.append(length)
                self.episodes += 1
        if metrics:
            # one stack and one host copy; the finiteness check runs on the Python floats
            vals = torch.stack([torch.as_tensor(v, dtype=torch.float32).detach().reshape(())
                                for v in metrics.values()]).tolist()
            if not all(map(math.isfinite, vals)) and getattr(self.cfg, "on_nonfinite", "stop") == "stop":
                bad = [k for k, v in zip(metrics, vals) if not math.isfinite(v)]
                raise NumericsError(f"non-finite {', '.join(bad)} at step {self.step} (update {self.updates}); "
                                    + self._numerics_advice())
            self._pending = dict(zip(metrics.keys(), vals))  # "skip": NaN stays visible in the logs
        if self.callbacks:
            self._notify("step")
            if updates > 0:
                self._notify("update")
        due_ckpt = self.step >= self.next_ckpt and self.step < self.cfg.steps
        if self.step >= self.next_log or due_ckpt or (self.step >= self.next_eval and self.step < self.cfg.steps):
            self.check_finite()
        if self.step >= self.next_log:
            self._log_row()
            while self.next_log <= self.step:
                self.next_log += self.log_every
        # the next due steps move on before the evaluation and the save, so the checkpoint holds them: a run resumed
        # from it evaluates and checkpoints at the very steps the uninterrupted run does
        if self.step >= self.next_eval and self.step < self.cfg.steps:
            while self.next_eval <= self.step:
                self.next_eval += self.cfg.eval_every
            self.evaluate_now()
        if due_ckpt:
            while self.next_ckpt <= self.step:
                self.next_ckpt += self.cfg.checkpoint_every
            self.save()
        self._update_progress()
        if self._prev_handlers:
            self._keep_signal_handlers()
        return not self.stop_requested

    def record_episodes(self, episodes: list[tuple[float, int]]) -> None:
        """Count (return, length) of episodes finished outside ``run.envs`` (D4PG's actor processes)."""
        for ret, length in episodes:
            self.recent.append(ret)
            self.recent_len.append(length)
            self.episodes += 1

    # ---------------------------------------------------------------- evaluation
    def act_fn(self) -> Callable[[torch.Tensor], np.ndarray]:
        nets, module = self.nets, self.module
        return lambda obs: module.act(nets, obs, True)

    def evaluate_now(self) -> float:
        """Deterministic evaluation on fresh envs (seeds of their own, new at every evaluation: pgrad.seeding);
        saves best.pt on a new best."""
        assert self.nets is not None
        self.check_finite()
        obs_norm = self.envs.obs_norm if self.envs is not None else None
        seed = eval_seeds(self.cfg.seed, self.eval_count, self.cfg.eval_episodes)
        extra: dict[str, float] = {}
        if getattr(self.module, "MULTI_AGENT", False):  # per-agent returns too (extra columns)
            rets, extra = self.module.evaluate_episodes(self.nets, self.factory, self.spec, self.cfg.eval_episodes,
                                                        seed, obs_norm=obs_norm, device=self.cfg.device)
            self.eval_extra = {f"eval/{k}": v for k, v in extra.items()}
        else:
            rets = run_episodes(self.act_fn(), evaluation_factory(self.factory), self.spec, self.cfg.eval_episodes, seed,
                                obs_norm=obs_norm, device=self.cfg.device)
        self.eval_count += 1
        mean, std = float(np.mean(rets)), float(np.std(rets))
        self.last_eval = mean
        new_path = self.dir / "evaluations.csv"
        write_header = not new_path.exists()
        with open(new_path, "a", newline="") as f:
            w = csv.writer(f)
            if write_header:
                w.writerow(["step", "mean_return", "std_return", "episodes", *extra])
            w.writerow([self.step, mean, std, len(rets), *extra.values()])
        if self._tb is not None:
            self._tb.add_scalar("eval/mean_return", mean, self.step)
            for k, v in extra.items():
                self._tb.add_scalar(f"eval/{k}", v, self.step)
        new_best = mean >= self.best_eval
        if new_best:
            self.best_eval = mean
            self._save_or_explain(self.dir / "checkpoints" / "best.pt", self._policy_payload(eval_return=mean))
        self._last_eval_step = self.step
        self.log_event(f"step {self.step}: evaluation {mean:.2f} ± {std:.2f} over {len(rets)} episodes")
        if self.callbacks:
            self._notify("eval", new_best=new_best)
        return mean

    # ---------------------------------------------------------------- checkpoints
    def _policy_payload(self, **extra: Any) -> dict[str, Any]:
        obs_norm = self.envs.obs_norm.state_dict() if self.envs is not None else None
        return {
            "format": "pgrad", "version": FORMAT_VERSION, "algo": self.algo, "env_id": self.spec.env_id,
            "spec": self.spec.to_dict(), "config": self.cfg.to_dict(), "step": self.step,
            "nets": self.nets.state_dict(), "obs_norm": obs_norm, **extra,
        }

    def save(self) -> Path:
        """Write checkpoints/last.pt with everything needed to continue this run exactly (never non-finite
        parameters: NumericsError instead, and the previous last.pt stays)."""
        self.check_finite()
        payload = self._policy_payload()
        payload["train"] = {
            "tracked": {k: v.state_dict() for k, v in self.tracked.items()},
            "rng": rng_state(),
            "envs": self.envs.state_dict() if self.envs is not None else None,
            "counters": {
                "step": self.step, "updates": self.updates, "episodes": self.episodes,
                "best_eval": self.best_eval, "last_eval": self.last_eval, "eval_count": self.eval_count,
                "recent": list(self.recent), "recent_len": list(self.recent_len),
                "next_log": self.next_log, "next_eval": self.next_eval, "next_ckpt": self.next_ckpt,
                "extra": self.counters_extra, "skipped_updates": self.skipped_updates,
            },
        }
        if payload["train"]["envs"] is None:
            del payload["train"]["envs"]
        path = self.dir / "checkpoints" / "last.pt"
        self._save_or_explain(path, payload)
        self.last_ckpt_step = self.step
        if self._tb is not None:
            self._tb.flush()  # the events up to the checkpoint are on disk: a resumed run does not write them again
        if self.callbacks:
            self._notify("checkpoint", checkpoint=path)
        return path

    def _save_or_explain(self, path: Path, payload: dict[str, Any]) -> None:
        """save_checkpoint, its one-line error completed with the checkpoint kept and how to continue."""
        try:
            save_checkpoint(path, payload)
        except CheckpointError as e:
            last = self.dir / "checkpoints" / "last.pt"
            kept = f"last good checkpoint kept: {last} (step {self.last_ckpt_step})" \
                if self.last_ckpt_step is not None else "no checkpoint was written"
            raise CheckpointError(f"{e}; {kept}; then continue with: pgrad train --resume {self.dir}") from e

    # ---------------------------------------------------------------- callbacks
    def state(self, event: str, new_best: bool = False, checkpoint: Path | None = None) -> RunState:
        """A snapshot of the counters for the callbacks."""
        return RunState(
            event=event, step=self.step, total_steps=self.cfg.steps, updates=self.updates, episodes=self.episodes,
            train_return=float(np.mean(self.recent)) if self.recent else None, eval_return=self.last_eval,
            best_eval=self.best_eval if self.best_eval > -math.inf else None, new_best=new_best,
            metrics=dict(self._pending), run_dir=self.dir, checkpoint=checkpoint, nets=self.nets, _run=self)

    def _notify(self, event: str, **extra: Any) -> None:
        """Call every callback; False or StopTraining asks the run to stop (at the end of this batch)."""
        st = self.state(event, **extra)
        for cb in self.callbacks:
            try:
                keep_going = cb(st)
            except StopTraining as e:
                self.request_stop(str(e) or f"{_name(cb)} raised StopTraining at {event}")
                continue
            if keep_going is False:
                self.request_stop(f"{_name(cb)} returned False at {event}")

    def request_stop(self, reason: str) -> None:
        """Stop the run at the end of the current batch, then evaluate (unless done at this step) and save."""
        if self.stop_requested:
            return
        self.stop_requested = True
        self.stop_reason = reason
        self.log_event(f"step {self.step}: stopping: {reason}")

    # ---------------------------------------------------------------- numerics
    def nonfinite_params(self) -> list[str]:
        """Names of the floating-point tensors of ``nets`` (parameters and buffers) holding a NaN or an inf."""
        if self.nets is None:
            return []
        named = [(k, v) for k, v in self.nets.state_dict().items() if v.is_floating_point() and v.numel()]
        if not named:
            return []
        total = torch.stack(torch._foreach_norm([v for _, v in named])).sum()
        if bool(torch.isfinite(total)):
            return []
        return [k for k, v in named if not bool(torch.isfinite(v).all())]  # (a finite norm can overflow: exact)

    def check_finite(self) -> None:
        """Raise NumericsError naming the first non-finite parameter of ``nets`` (before evaluating or saving)."""
        bad = self.nonfinite_params()
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise NumericsError(f"non-finite parameter {bad[0]}{more} at step {self.step} (update {self.updates}); "
                                + self._numerics_advice())

    def _numerics_advice(self) -> str:
        ckpt = self.dir / "checkpoints" / "last.pt"
        kept = f"last good checkpoint kept: {ckpt} (step {self.last_ckpt_step})" if self.last_ckpt_step is not None \
            else "no checkpoint was written"
        return f"{kept}; try a lower learning rate, norm_obs=true or on_nonfinite=skip"

    def _guard_optimizers(self) -> None:
        """on_nonfinite="skip": every tracked torch optimiser skips a step whose gradients are not all finite, and
        the run counts it (skipped_updates in progress.csv, the first ones in run.log)."""
        names = {id(p): n for n, p in self.nets.named_parameters()} if self.nets is not None else {}
        for key, obj in self.tracked.items():
            if isinstance(obj, torch.optim.Optimizer):
                obj.step = self._guarded_step(key, obj, names)  # an instance attribute shadows the class's step

    def _guarded_step(self, key: str, opt: torch.optim.Optimizer, names: dict[int, str]) -> Callable:
        step = opt.step
        params = [p for g in opt.param_groups for p in g["params"]]

        def guarded_step(*args: Any, **kwargs: Any) -> Any:
            grads = [p.grad for p in params if p.grad is not None]
            if grads and not bool(torch.isfinite(torch.stack(torch._foreach_norm(grads)).sum())):
                bad = [names.get(id(p), f"{key} parameter {i}") for i, p in enumerate(params)
                       if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
                if bad:
                    self.skipped_updates += 1
                    if self.skipped_updates <= 10 or self.skipped_updates % 1000 == 0:
                        self.log_event(f"step {self.step}: skipped a step of {key}: non-finite gradient of {bad[0]}"
                                       f" ({self.skipped_updates} skipped so far)")
                    return None
            return step(*args, **kwargs)

        return guarded_step

    # ---------------------------------------------------------------- logging
    def log_event(self, msg: str) -> None:
        stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        with open(self.dir / "run.log", "a") as f:
            f.write(f"{stamp} {msg}\n")

    def _truncate_csv(self, name: str, step: int) -> None:
        path = self.dir / name
        if not path.exists():
            return
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        kept = [rows[0]] + [r for r in rows[1:] if r and float(r[0]) <= step]
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(kept)

    def _log_row(self) -> None:
        elapsed = time.perf_counter() - self._t0
        row: dict[str, Any] = {
            "step": self.step, "time": round(elapsed, 3),
            "steps_per_s": round((self.step - self._step0) / max(elapsed, 1e-9), 1),
            "episodes": self.episodes, "updates": self.updates,
            "return_mean": float(np.mean(self.recent)) if self.recent else "",
            "length_mean": float(np.mean(self.recent_len)) if self.recent_len else "",
        }
        if getattr(self.cfg, "on_nonfinite", "stop") == "skip":
            row["skipped_updates"] = self.skipped_updates
        for k, v in self._pending.items():
            row[k] = v
        row.update(self.eval_extra)  # multi-agent: the latest per-agent evaluation returns
        path = self.dir / "progress.csv"
        if self._csv_keys is None and path.exists() and path.stat().st_size > 0:
            with open(path, newline="") as f:
                self._csv_keys = next(csv.reader(f), None)
        if self._csv_keys is None or any(k not in self._csv_keys for k in row):
            old: list[dict[str, str]] = []
            if path.exists() and path.stat().st_size > 0:
                with open(path, newline="") as f:
                    old = list(csv.DictReader(f))
            self._csv_keys = list(dict.fromkeys((self._csv_keys or []) + list(row)))
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, self._csv_keys)
                w.writeheader()
                w.writerows(old)
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, self._csv_keys).writerow(row)
        if self._tb is not None:
            for k, v in row.items():
                if k != "step" and v != "":
                    self._tb.add_scalar(("charts/" if k in ("return_mean", "length_mean", "steps_per_s") else "train/") + k,
                                        float(v), self.step)

    # ---------------------------------------------------------------- progress display
    def _start_progress(self) -> None:
        if self.cfg.tensorboard and self._tb is None:
            if getattr(self.cfg, "track", False) and getattr(self, "_wandb", None) is None:
                from pgrad.tracking import start_wandb

                self._wandb = start_wandb(self)  # before the SummaryWriter: W&B syncs its event files
            from torch.utils.tensorboard import SummaryWriter

            # TensorBoard drops the events at steps >= purge_step: those a killed run wrote after its checkpoint.
            # The events at the checkpoint's own step were written before it and are not written again: kept.
            self._tb = SummaryWriter(str(self.dir), purge_step=self.step + 1 if self._resume else None)
        if not self.cfg.progress:
            return
        self._tty = sys.stdout.isatty()
        self._next_line = self.step
        if self._tty:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn(f"[bold]{self.algo}[/] {self.spec.env_id}"), BarColumn(),
                TextColumn("{task.completed:,}/{task.total:,} steps"),
                TextColumn("{task.fields[sps]} steps/s"), TextColumn("train return {task.fields[ret]}"),
                TextColumn("eval return {task.fields[ev]}"), TimeRemainingColumn(), transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("train", total=self.cfg.steps, completed=self.step,
                                            sps="-", ret="-", ev="-")

    def _fields(self) -> tuple[str, str, str]:
        elapsed = time.perf_counter() - self._t0
        sps = f"{(self.step - self._step0) / max(elapsed, 1e-9):,.0f}"
        ret = f"{np.mean(self.recent):.1f}" if self.recent else "-"
        ev = f"{self.last_eval:.1f}" if self.last_eval is not None else "-"
        return sps, ret, ev

    def _update_progress(self) -> None:
        if not self.cfg.progress:
            return
        if self._bar is not None:
            sps, ret, ev = self._fields()
            self._bar.update(self._task, completed=min(self.step, self.cfg.steps), sps=sps, ret=ret, ev=ev)
        elif self.step >= self._next_line:
            sps, ret, ev = self._fields()
            pct = 100.0 * self.step / self.cfg.steps
            print(f"[{self.algo} {self.spec.env_id}] {self.step:,}/{self.cfg.steps:,} steps ({pct:.0f}%) "
                  f"{sps} steps/s  train return {ret}  eval return {ev}", flush=True)
            self._next_line = self.step + max(1, self.cfg.steps // 10)

    # ---------------------------------------------------------------- SIGINT, SIGTERM
    def _install_signal_handlers(self) -> None:
        """SIGINT (Ctrl-C) and SIGTERM (``kill``, ``timeout``, a cluster scheduler) stop the run after the current
        batch, with a checkpoint; a second one abandons the batch (KeyboardInterrupt: last.pt stays as it was).
        Main thread only (Python delivers signals there). Worker processes are stopped by their pools, which the
        algorithm closes when its loop ends."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._prev_handlers[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.stop_signal is not None:
            self._restore_signal_handlers()
            raise KeyboardInterrupt(f"second {name}: the update under way was abandoned")
        self.stop_signal = signum
        self.stop_requested = True
        again = "Ctrl-C" if signum == signal.SIGINT else name
        print(f"\npgrad: {name}: stopping after this update and saving a checkpoint ({again} again to abort)",
              file=sys.stderr, flush=True)

    def _keep_signal_handlers(self) -> None:
        """Take the signals back from a library started inside the loop: ray.init makes SIGTERM exit at once
        (sys.exit), which would lose the update and the checkpoint; the loop's end shuts Ray down instead."""
        for signum in self._prev_handlers:
            if signal.getsignal(signum) != self._on_signal:
                signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        for signum, prev in self._prev_handlers.items():
            signal.signal(signum, prev if prev is not None else signal.SIG_DFL)
        self._prev_handlers = {}

    # ---------------------------------------------------------------- the end
    def finish(self) -> dict[str, Any]:
        """Final evaluation, last.pt, curve.png; returns a summary."""
        self.train_seconds = time.perf_counter() - self._t0
        if self._pending_row_due():
            self._log_row()  # the last row's time is the training loop alone (benchmarks read it)
        # a signal ends the run at once; a callback's stop still evaluates the policy it leaves (once per step)
        if self.nets is not None and self.stop_signal is None and self._last_eval_step != self.step:
            self.evaluate_now()
            if self.cfg.eval_every > 0:  # this evaluation stands for the one due now: a resumed run skips it
                while self.next_eval <= self.step:
                    self.next_eval += self.cfg.eval_every
        if self.nets is not None:
            self.save()
        self.close()
        try:
            from pgrad.plot import plot_runs

            plot_runs([self.dir], self.dir / "curve.png")
        except Exception as e:  # noqa: BLE001 - a plot failure must never lose a run
            self.log_event(f"curve.png not written: {e}")
        rounded = f" ({self.cfg.steps} asked: whole batches of env steps)" \
            if self.step > self.cfg.steps and not self.stop_requested else ""
        self.log_event(f"finished at step {self.step}{rounded} after {self.train_seconds:.1f}s of training"
                       + (f" (interrupted by {signal.Signals(self.stop_signal).name})" if self.stop_signal
                          else f" (stopped: {self.stop_reason})" if self.stop_reason else ""))
        return {"step": self.step, "last_eval": self.last_eval, "best_eval": self.best_eval}

    def _pending_row_due(self) -> bool:
        path = self.dir / "progress.csv"
        if not path.exists():
            return True
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        return len(rows) < 2 or rows[-1][0] != str(self.step)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if getattr(self, "_wandb", None) is not None:
            self._wandb.finish()
            self._wandb = None
        self._restore_signal_handlers()
        if self.envs is not None:
            self.envs.close()


def _name(cb: Any) -> str:
    return getattr(cb, "__name__", type(cb).__name__)


def _remove_stale_temp_files(ckpt_dir: Path) -> None:
    """Delete temp files of checkpoint writes whose process died before the rename (``.last.pt.tmp-PID``)."""
    for tmp in ckpt_dir.glob(".*.tmp-*"):
        try:
            os.kill(int(tmp.name.rsplit("-", 1)[1]), 0)
        except (ValueError, ProcessLookupError):
            tmp.unlink(missing_ok=True)
        except PermissionError:  # a live process of another user: not ours to delete
            pass


def default_run_dir(algo: str, env_id: str, seed: int) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe_env = env_id.replace("/", "_").replace(":", "_")
    base = Path("runs") / f"{algo}-{safe_env}-s{seed}-{stamp}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = Path(f"{base}-{k}")
    return path


__all__ = ["Run", "save_checkpoint", "load_checkpoint", "default_run_dir"]
