"""Ray backend: rollout workers as Ray actors, for A3C (gradients applied as they arrive) and A2C (applied once
every worker has reported), on one machine or a cluster.

Each actor owns its envs and a copy of the networks. Given the learner's current weights, it collects a rollout
and computes the gradients of the algorithm's loss with the algorithm's own ``rollout_gradients(nets, envs,
rollout, cfg)`` (so no loss is written twice); the learner clips them and steps its optimiser. Ray is imported
only when this backend is used (``pip install 'pgrad[ray]'``).

Faults: an actor that dies (its process killed, its node lost) surfaces as a RayActorError on its result; the
pool starts a replacement actor with a new seed, logs it in run.log and submits the lost work again.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from pgrad.core.nets import clip_grad_norm
from pgrad.errors import ConfigError, PgradError


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("backend=ray needs Ray: pip install 'pgrad[ray]' (or pip install 'ray[default]')") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None, log: Callable[[str], None]) -> Iterator[Any]:
    """Use the Ray already initialised in this process, else join ``address`` (a cluster) or start a local Ray;
    a Ray started here is shut down on exit."""
    ray = _ray()
    started = False
    if ray.is_initialized():
        log("ray: using the Ray instance already initialised in this process")
    else:
        _check_reachable(address)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=True, configure_logging=False)
        except ConnectionError as e:
            raise PgradError(f"cannot join the Ray cluster at {address!r}: {e}; start it with `ray start --head` "
                             "or leave ray_address unset for a local Ray") from None
        started = True
        where = f"joined the Ray cluster at {address}" if address else "started a local Ray"
        log(f"ray: {where} ({ray.cluster_resources().get('CPU', 0):.0f} CPUs)")
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast on a 'host:port' (or 'ray://host:port') nobody listens on: ray.init would retry for minutes."""
    if not address or address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise PgradError(f"cannot reach the Ray cluster at {address!r} ({e.strerror or e}); start it with "
                         "`ray start --head` there, or leave ray_address unset for a local Ray") from None


class GradientWorker:
    """One rollout worker (a Ray actor): its own envs and networks; returns gradients of its rollouts."""

    def __init__(self, algo: str, cfg: Any, spec: Any, factory_blob: bytes, num_envs: int, seed: int):
        torch.set_num_threads(1)
        from pgrad.algos import get_algo
        from pgrad.data.rollout import Rollout
        from pgrad.envs import VecEnv
        from pgrad.parallel.hogwild import unpickle_factory
        from pgrad.seeding import seed_everything

        seed_everything(seed)
        self.module, self.cfg = get_algo(algo), cfg
        self.envs = VecEnv(unpickle_factory(factory_blob), num_envs, seed, spec, vectorization=cfg.vectorization)
        self.nets = self.module.build(cfg, spec)[0]
        self.ro = Rollout(cfg.n_steps, num_envs, spec)
        self.steps = cfg.n_steps * num_envs

    def pid(self) -> int:
        return os.getpid()

    def gradients(self, weights: dict[str, torch.Tensor]) -> dict[str, Any]:
        self.nets.load_state_dict(weights)
        metrics = self.module.rollout_gradients(self.nets, self.envs, self.ro, self.cfg)
        grads = [None if p.grad is None else p.grad.numpy().copy() for p in self.nets.parameters()]
        return {"grads": grads, "metrics": {k: float(v) for k, v in metrics.items()}, "steps": self.steps,
                "finished": self.envs.pop_finished()}


def apply_gradients(nets: nn.Module, opt: torch.optim.Optimizer, grads: list[np.ndarray | None],
                    max_grad_norm: float) -> dict[str, torch.Tensor]:
    """Set the learner's gradients to ``grads`` (fresh tensors), clip the global norm, step the optimiser."""
    for p, g in zip(nets.parameters(), grads):
        p.grad = None if g is None else torch.from_numpy(np.array(g)).to(p.device)  # a copy: Ray's arrays are read-only
    grad_norm = clip_grad_norm(nets.parameters(), max_grad_norm)
    opt.step()
    return {"grad_norm": grad_norm.detach()}


def mean_gradients(results: list[dict[str, Any]]) -> list[np.ndarray | None]:
    """The average of the workers' gradients, weighted by their env steps (each is a mean over its batch)."""
    total = sum(r["steps"] for r in results)
    out: list[np.ndarray | None] = []
    for parts in zip(*[r["grads"] for r in results]):
        if all(g is None for g in parts):
            out.append(None)
            continue
        acc = None
        for r, g in zip(results, parts):
            if g is None:
                continue
            term = g * (r["steps"] / total)
            acc = term if acc is None else acc + term
        out.append(acc)
    return out


class RayWorkerPool:
    """K GradientWorker actors; submit work, take results as they arrive or all at once; restart dead actors."""

    def __init__(self, algo: str, cfg: Any, spec: Any, factory: Callable, num_workers: int, envs_per_worker: int,
                 seed_fn: Callable[[int, int], int], log: Callable[[str], None], max_restarts: int = 10):
        from pgrad.parallel.hogwild import pickle_factory

        self.ray = _ray()
        cpus = self.ray.cluster_resources().get("CPU", 0.0)
        if cpus < num_workers:  # each actor asks for one CPU: more actors than CPUs would wait forever
            raise ConfigError(f"{num_workers} Ray workers need {num_workers} CPUs but the Ray cluster has {cpus:g}; "
                              "use fewer workers or add nodes")
        self.algo, self.cfg, self.spec, self.K, self.E = algo, cfg, spec, num_workers, envs_per_worker
        self.blob = pickle_factory(factory)
        self.seed_fn, self.log, self.max_restarts = seed_fn, log, max_restarts
        self.cls = self.ray.remote(num_cpus=1, max_restarts=0)(GradientWorker)
        self.actors: list[Any] = [None] * num_workers
        self.restarts = [0] * num_workers
        self._pending: dict[Any, tuple[int, Any]] = {}  # object ref -> (worker, weights ref)
        self._start(range(num_workers))

    def _start(self, ks: Any) -> None:
        """Create the actors of workers ``ks`` together (each imports torch: seconds), then log their pids."""
        ks = list(ks)
        for k in ks:
            seed = self.seed_fn(k, self.restarts[k])
            self.actors[k] = self.cls.remote(self.algo, self.cfg, self.spec, self.blob, self.E, seed)
        pids = self.ray.get([self.actors[k].pid.remote() for k in ks])
        for k, pid in zip(ks, pids):
            self.log(f"ray worker {k} started (pid {pid})"
                     + (f", restart {self.restarts[k]}" if self.restarts[k] else ""))

    def _restart(self, k: int, err: Exception) -> None:
        self.restarts[k] += 1
        if self.restarts[k] > self.max_restarts:
            raise PgradError(f"Ray worker {k} died {self.restarts[k]} times (last: {type(err).__name__}); "
                             "see run.log and the Ray logs")
        self.log(f"ray worker {k} died ({type(err).__name__}); restarting it "
                 f"({self.restarts[k]} of at most {self.max_restarts})")
        with contextlib.suppress(Exception):
            self.ray.kill(self.actors[k])
        self._start([k])

    def put_weights(self, nets: nn.Module) -> Any:
        return self.ray.put({k: v.detach().cpu().clone() for k, v in nets.state_dict().items()})

    def submit(self, k: int, weights: Any) -> None:
        self._pending[self.actors[k].gradients.remote(weights)] = (k, weights)

    def pending(self) -> int:
        return len(self._pending)

    def _dead_errors(self) -> tuple[type, ...]:
        exc = self.ray.exceptions
        return tuple(e for e in (getattr(exc, "RayActorError", None), getattr(exc, "ActorUnavailableError", None))
                     if e is not None)

    def next_result(self) -> tuple[int, dict[str, Any]]:
        """The first result to arrive (A3C); a dead actor's work is restarted and resubmitted."""
        while True:
            ready, _ = self.ray.wait(list(self._pending), num_returns=1)
            ref = ready[0]
            k, weights = self._pending.pop(ref)
            try:
                return k, self.ray.get(ref)
            except self._dead_errors() as e:
                self._restart(k, e)
                self.submit(k, weights)

    def gather(self, weights: Any) -> list[dict[str, Any]]:
        """Every worker's result for the same weights (A2C): the synchronous coordinator."""
        for k in range(self.K):
            self.submit(k, weights)
        results: dict[int, dict[str, Any]] = {}
        while self._pending:
            k, res = self.next_result()
            results[k] = res
        return [results[k] for k in range(self.K)]

    def shutdown(self) -> None:
        for a in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(a)
        self._pending.clear()
