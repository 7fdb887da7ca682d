"""D4PG's parallel actors as Ray actors (``--backend ray``): the same ``pgrad.parallel.actors.Actor`` inside a
Ray actor, so actors can live on other machines of a Ray cluster.

Same interface as ``ActorPool``: ``publish(policy)``, ``get(timeout) -> chunks``, ``close()``, ``restarts``.
- weights: ``publish`` puts (version, flat parameters) in the object store once; every request carries the
  newest reference and an actor loads it only when the version changed;
- bound and rate limit: at most ``queue_size`` requests in flight per actor (a new one is sent when one returns);
- failures: the Ray actors are created with ``max_restarts=-1`` (Ray restarts a dead actor process); a request
  that failed because its actor died is counted in ``restarts`` and sent again.
Chunks come back as the actors made them (``Actor.collect``): observations keep their shape and dtype, uint8
frames stay uint8 through the object store.
Each Ray actor runs with ``torch.set_num_threads(1)``. Ray is started here (``num_cpus`` = K) unless the caller
already connected to a cluster.
"""

from __future__ import annotations

from typing import Any

import cloudpickle
import numpy as np
import torch
from torch import nn

from pgrad.parallel.actors import Actor, ActorSpec, flat_params, load_flat
from pgrad.seeding import actor_seed, seed_everything


class _RemoteActor:
    def __init__(self, spec_bytes: bytes, index: int, seed: int):
        """Actor ``index`` with root seed ``seed`` (its generators and envs; Ray restarts it with the same one)."""
        torch.set_num_threads(1)
        spec: ActorSpec = cloudpickle.loads(spec_bytes)
        spec.seed = seed
        seed_everything(seed)
        self.spec, self.index = spec, index
        self.actor = Actor(spec, index)
        self.actor.policy.eval()
        self.version = 0

    def collect(self, weights: tuple[int, torch.Tensor] | None) -> dict[str, Any]:
        if weights is not None and weights[0] != self.version:
            load_flat(self.actor.policy, weights[1])
            self.version = weights[0]
        self.actor.random = self.version == 0
        chunk = self.actor.collect(self.spec.chunk)
        chunk["episodes"] = self.actor.envs.pop_finished()
        chunk["actor"] = self.index
        return chunk

    def pid(self) -> int:
        import os

        return os.getpid()


class RayActorPool:
    """K Ray actors feeding the learner (see the module docstring)."""

    def __init__(self, spec: ActorSpec, num_actors: int, queue_size: int = 2):
        import ray

        self.ray = ray
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            ray.init(num_cpus=num_actors, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        self.K, self.queue_size = num_actors, queue_size
        remote_cls = ray.remote(num_cpus=1, max_restarts=-1)(_RemoteActor)
        spec_bytes = cloudpickle.dumps(spec)
        self.actors = [remote_cls.remote(spec_bytes, k, actor_seed(spec.seed, k, 0, spec.step0))
                       for k in range(num_actors)]
        self.version = 0
        self.weights_ref = None
        self.restarts = 0
        self.inflight: dict[Any, int] = {}
        for k in range(num_actors):
            for _ in range(queue_size):
                self._submit(k)

    def _submit(self, k: int) -> None:
        self.inflight[self.actors[k].collect.remote(self.weights_ref)] = k

    def publish(self, policy: nn.Module) -> None:
        self.version += 1
        self.weights_ref = self.ray.put((self.version, flat_params(policy).clone()))

    def get(self, timeout: float = 1.0) -> list[dict[str, Any]]:
        ray = self.ray
        refs = list(self.inflight)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out = []
        for ref in ready:
            k = self.inflight.pop(ref)
            try:
                chunk = ray.get(ref)  # arrays come back read-only (zero-copy from the object store): copy them
                out.append({name: v.copy() if isinstance(v, np.ndarray) else v for name, v in chunk.items()})
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                self.restarts += 1
            self._submit(k)
        return out

    def pids(self) -> list[int]:
        return self.ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.inflight.clear()
        if self._owns_ray:
            self.ray.shutdown()
