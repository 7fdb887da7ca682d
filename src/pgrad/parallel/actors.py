"""D4PG-style distributed actors (Barth-Maron et al., 2018; post: D4PG part (3), "K independent actors").

Each actor steps its own envs with its own exploration noise process (and seed), turns its experience into
n-step transitions locally, and sends them to the learner, which puts them in its (prioritised) replay. The
learner publishes the policy's weights; actors pick up the newest at their next chunk.

- ``Actor``: the acting loop itself, usable in-process (the learner's own envs, exactly reproducible and
  resumable) or inside a process / a Ray actor. Until the learner's first publication it acts uniformly at
  random (the learning_starts phase).
- ``ActorPool``: K spawned processes, each with ``torch.set_num_threads(1)``. Channels are robust to an actor
  dying at any instant, and a dead actor is restarted (with a new seed):
    * transitions: one pipe per actor, bounded by a per-actor semaphore of ``queue_size`` credits (an actor
      waits for a credit before it sends a chunk; the learner returns it when it takes the chunk). This bound
      is also the rate limiter: actors cannot run more than ``queue_size`` chunks ahead of the learner;
    * weights: one flat shared-memory tensor under a seqlock (version odd while being written), so neither
      side ever holds a lock another side could wait on forever.
- the same actors as Ray actors: ``pgrad.parallel.ray_actors.RayActorPool`` (same interface).
Observations keep the env spec's shape and dtype all the way (DESIGN.md section 6): uint8 (or bool) frames stay
so in the local replay and in the chunks sent to the learner; the policy's own encoder casts them.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_connections
from typing import Any

import cloudpickle
import torch
from torch import nn

from pgrad.core.distributions import GaussianNoise, OUNoise
from pgrad.core.nets import ActionBounds
from pgrad.data.replay import ReplayBuffer
from pgrad.envs import EnvSpec, VecEnv, obs_torch_dtype
from pgrad.parallel.hogwild import ignore_stop_signals, stop_signals_blocked
from pgrad.parallel.watchdog import run_watched
from pgrad.seeding import actor_seed, seed_everything


@dataclass
class ActorSpec:
    """Everything an actor needs; picklable (the env factory and the policy travel with cloudpickle)."""

    factory: Callable[[], Any]
    env_spec: EnvSpec
    policy: nn.Module
    """Maps observations [B, *obs_shape] (in the env spec's dtype) to actions in [-1, 1]^A (rescaled to the
    env's bounds by the actor)."""
    num_envs: int = 1
    n_step: int = 1
    gamma: float = 0.99
    chunk: int = 50
    """Vector-env steps per message to the learner."""
    noise: str = "gaussian"
    sigmas: list[float] = field(default_factory=lambda: [0.1])
    """Exploration noise σ of each actor (actor k uses sigmas[k % len(sigmas)])."""
    ou_theta: float = 0.15
    seed: int = 0
    """The run's seed; each actor process gets its own root seed from it (pgrad.seeding.actor_seed)."""
    step0: int = 0
    """The step the run (re)started from: a resumed run's actor processes draw new streams."""


class Actor:
    """One actor: μ(s) + 𝒩 in its envs, n-step transitions computed locally (data.replay.ReplayBuffer.gather).

    ``collect(T)`` steps the envs T times and returns the n-step transitions whose windows completed, as
    numpy arrays [n, ...] in a dict (obs, actions, rewards, next_obs, discount = γ^k(1 - terminated)) plus
    ``steps`` (env steps taken); obs and next_obs are [n, *obs_shape] in the env spec's dtype (uint8 frames stay
    uint8). Windows stop at episode ends; the last n - 1 rows wait for the next call.
    """

    def __init__(self, spec: ActorSpec, index: int = 0, envs: VecEnv | None = None, policy: nn.Module | None = None):
        self.spec, self.index = spec, index
        es = spec.env_spec
        M, A = spec.num_envs, es.act_dim
        self.envs = envs if envs is not None else VecEnv(spec.factory, M, spec.seed, es)
        self.policy = policy if policy is not None else spec.policy
        self.bounds = ActionBounds(es)
        sigma = spec.sigmas[index % len(spec.sigmas)]
        self.noise = OUNoise((M, A), sigma, spec.ou_theta) if spec.noise == "ou" else GaussianNoise((M, A), sigma)
        rows = spec.chunk + spec.n_step + 1
        self.local = ReplayBuffer(rows * M, M, es.obs_shape, (A,), n_step=spec.n_step, gamma=spec.gamma,
                                  device=self.envs.obs.device, obs_dtype=obs_torch_dtype(es))
        self.rows_added = 0
        self.rows_sent = 0
        self.random = True

    @torch.no_grad()
    def collect(self, T: int) -> dict[str, Any]:
        envs, M, A = self.envs, self.spec.num_envs, self.spec.env_spec.act_dim
        dev = envs.obs.device
        if self.bounds.low.device != dev:
            self.bounds.to(dev)
        for _ in range(T):
            obs = envs.obs
            if self.random:
                a = torch.rand(M, A, device=dev) * 2 - 1
            else:
                a = (self.policy(obs) + self.noise().to(dev)).clamp(-1.0, 1.0)
            step = envs.step(self.bounds.scale(a).cpu().numpy())
            self.local.add(obs, a, step.reward, step.terminated, step.truncated, step.next_obs)
            done = step.terminated | step.truncated
            if bool(done.any()):
                self.noise.reset(done.cpu())
            self.rows_added += 1
        complete = self.rows_added - (self.spec.n_step - 1)
        rows = torch.arange(self.rows_sent, max(complete, self.rows_sent)) % self.local.rows
        self.rows_sent = max(complete, self.rows_sent)
        r = rows.repeat_interleave(M).to(self.local.device)
        e = torch.arange(M).repeat(len(rows)).to(self.local.device)
        b = {k: v.cpu().numpy() for k, v in self.local.gather(r, e).items()}
        return {"obs": b["obs"], "actions": b["actions"], "rewards": b["rewards"], "next_obs": b["next_obs"],
                "discount": b["discount"], "steps": T * M}

    def state_dict(self) -> dict[str, Any]:
        return {"local": self.local.state_dict(), "noise": self.noise.state_dict(), "rows_added": self.rows_added,
                "rows_sent": self.rows_sent, "random": self.random}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.local.load_state_dict(d["local"])
        self.noise.load_state_dict(d["noise"])
        self.rows_added, self.rows_sent, self.random = d["rows_added"], d["rows_sent"], d["random"]


# ----------------------------------------------------------------------------- weights in shared memory
def flat_params(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def load_flat(module: nn.Module, flat: torch.Tensor) -> None:
    with torch.no_grad():
        i = 0
        for p in module.parameters():
            n = p.numel()
            p.copy_(flat[i:i + n].view_as(p))
            i += n


class SharedWeights:
    """A flat parameter vector in shared memory under a seqlock: the writer makes the version odd, copies, makes
    it even; a reader retries until it sees the same even version before and after its copy."""

    def __init__(self, module: nn.Module, ctx: Any):
        self.flat = flat_params(module).clone().share_memory_()
        self.version = ctx.RawValue("q", 0)  # 0: nothing published yet

    def publish(self, module: nn.Module) -> None:
        self.version.value += 1
        self.flat.copy_(flat_params(module))
        self.version.value += 1

    def read_into(self, module: nn.Module, have: int) -> int:
        """Load the newest weights into ``module`` if newer than version ``have``; returns the version held."""
        for _ in range(100):
            v1 = self.version.value
            if v1 == have or v1 % 2 == 1:
                if v1 % 2 == 1:
                    time.sleep(0.0005)
                    continue
                return have
            copy = self.flat.clone()
            if self.version.value == v1:
                load_flat(module, copy)
                return v1
        return have


# ----------------------------------------------------------------------------- actor processes
def _actor_main(index: int, spec_bytes: bytes, conn: Any, credits: Any, weights: SharedWeights, stop: Any,
                seed: int) -> None:
    """Actor process ``index`` with root seed ``seed`` (its generators and envs); SIGINT and SIGTERM are ignored:
    the learner stops it through ``stop``."""
    ignore_stop_signals()
    torch.set_num_threads(1)
    spec: ActorSpec = cloudpickle.loads(spec_bytes)
    spec.seed = seed
    seed_everything(seed)
    actor = Actor(spec, index)
    actor.policy.eval()
    have = 0
    try:
        while not stop.is_set():
            have = weights.read_into(actor.policy, have)
            actor.random = have == 0
            chunk = actor.collect(spec.chunk)
            chunk["episodes"] = actor.envs.pop_finished()
            chunk["actor"] = index
            while not credits.acquire(timeout=0.2):
                if stop.is_set():
                    return
            conn.send(chunk)
    except (BrokenPipeError, EOFError, KeyboardInterrupt):
        pass
    finally:
        actor.envs.close()


class ActorPool:
    """K actor processes (spawn) feeding the learner: ``get`` returns the chunks ready, ``publish`` the weights.

    Actor k's root seed is ``actor_seed(spec.seed, k, r, spec.step0)`` after r restarts (pgrad.seeding). Actors
    ignore SIGINT and SIGTERM (a Ctrl-C or a scheduler's SIGTERM reaches the whole process group): the learner's run
    stops them with ``close``. A process found dead (killed, crashed) is restarted with a fresh channel and a new seed;
    ``restarts`` counts them, ``log`` (run.log) says so, and an actor that dies more than ``max_restarts`` times
    ends the run with a PgradError (a crash at every start would otherwise restart forever). Actors exit by
    themselves when the learner's process is gone (``pgrad.parallel.watchdog``).
    """

    def __init__(self, spec: ActorSpec, num_actors: int, queue_size: int = 2,
                 log: Callable[[str], None] | None = None, max_restarts: int = 10):
        self.ctx = mp.get_context("spawn")
        self.spec, self.K, self.queue_size = spec, num_actors, queue_size
        self.log, self.max_restarts = log or (lambda msg: None), max_restarts
        self.actor_restarts = [0] * num_actors
        self._spec_bytes = cloudpickle.dumps(spec)
        self.weights = SharedWeights(spec.policy, self.ctx)
        self.stop = self.ctx.Event()
        self.restarts = 0
        self.procs: list[Any] = [None] * num_actors
        self.conns: list[Any] = [None] * num_actors
        self.credits: list[Any] = [None] * num_actors
        for k in range(num_actors):
            self._start(k, self._seed(k))

    def _seed(self, k: int) -> int:
        return actor_seed(self.spec.seed, k, self.actor_restarts[k], self.spec.step0)

    def _start(self, k: int, seed: int) -> None:
        recv, send = self.ctx.Pipe(duplex=False)
        credits = self.ctx.Semaphore(self.queue_size)
        p = self.ctx.Process(target=run_watched, name=f"pgrad-actor-{k}", daemon=True,
                             args=(_actor_main, os.getpid(), k, self._spec_bytes, send, credits, self.weights,
                                   self.stop, seed))
        with stop_signals_blocked():  # until the child ignores them (_actor_main)
            p.start()
        send.close()  # the child holds the write end; EOF here means the child is gone
        self.procs[k], self.conns[k], self.credits[k] = p, recv, credits
        self.log(f"actor {k} started (pid {p.pid})" + (f", restart {self.actor_restarts[k]}"
                                                        if self.actor_restarts[k] else ""))

    def _restart(self, k: int) -> None:
        p = self.procs[k]
        if p.is_alive():
            p.kill()
        p.join(timeout=5)
        self.conns[k].close()
        self.restarts += 1
        self.actor_restarts[k] += 1
        if self.actor_restarts[k] > self.max_restarts:
            self.close()
            from pgrad.errors import PgradError

            raise PgradError(f"D4PG actor {k} died {self.actor_restarts[k]} times (last exit code {p.exitcode}); "
                             "see its traceback above")
        self.log(f"actor {k} (pid {p.pid}) died with exit code {p.exitcode}; restarting it "
                 f"({self.actor_restarts[k]} of at most {self.max_restarts})")
        self._start(k, self._seed(k))

    def publish(self, policy: nn.Module) -> None:
        self.weights.publish(policy)

    def get(self, timeout: float = 1.0) -> list[dict[str, Any]]:
        """The chunks available now (waiting up to ``timeout`` for the first); restarts dead actors."""
        out = []
        ready = wait_connections([c for c in self.conns], timeout=timeout)
        for conn in ready:
            k = self.conns.index(conn)
            try:
                chunk = conn.recv()
            except Exception:  # noqa: BLE001 - EOF, or a message cut short by the actor's death
                self._restart(k)
                continue
            self.credits[k].release()
            out.append(chunk)
        for k, p in enumerate(self.procs):
            if not p.is_alive() and not self.stop.is_set():
                self._restart(k)
        return out

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def close(self) -> None:
        self.stop.set()
        for k, p in enumerate(self.procs):
            p.join(timeout=3)
            if p.is_alive():
                p.kill()
                p.join(timeout=3)
            self.conns[k].close()
