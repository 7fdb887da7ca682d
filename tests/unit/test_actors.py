"""parallel.actors: an actor's n-step transitions against brute force; actor processes restart when killed;
the same actors as Ray actors."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from pgrad.core.nets import DeterministicActor
from pgrad.envs import Step, describe, env_factory
from pgrad.parallel.actors import Actor, ActorPool, ActorSpec


class FakeVecEnv:
    """Random observations, rewards, terminations and truncations; logs every step."""

    def __init__(self, M, obs_dim, seed=0):
        self.g = torch.Generator().manual_seed(seed)
        self.M, self.D = M, obs_dim
        self.obs = torch.randn(M, obs_dim, generator=self.g)
        self.log = []

    def step(self, actions):
        M, g = self.M, self.g
        rew = torch.randn(M, generator=g)
        u = torch.rand(M, generator=g)
        term, trunc = u < 0.08, (u >= 0.08) & (u < 0.15)
        nxt = torch.randn(M, self.D, generator=g)
        done = term | trunc
        new_obs = torch.where(done.unsqueeze(1), torch.randn(M, self.D, generator=g), nxt)
        self.log.append((self.obs, rew, term, trunc, nxt))
        self.obs = new_obs
        return Step(new_obs, rew, term, trunc, nxt)

    def pop_finished(self):
        return []


def reference(log, t, i, n, gamma):
    ret, k = 0.0, 0
    while True:
        _, rew, term, trunc, nxt = log[t + k]
        ret += gamma ** k * rew[i].item()
        if term[i] or trunc[i] or k == n - 1:
            return ret, nxt[i], (0.0 if term[i] else gamma ** (k + 1))
        k += 1


def test_actor_nstep_transitions_match_brute_force():
    factory, env_id = env_factory("Pendulum-v1")
    spec = describe(factory(), env_id)
    M, n, gamma, T = 3, 4, 0.9, 7
    policy = DeterministicActor(spec.obs_dim, spec.act_dim, (8,))
    aspec = ActorSpec(factory=factory, env_spec=spec, policy=policy, num_envs=M, n_step=n, gamma=gamma, chunk=T)
    fake = FakeVecEnv(M, spec.obs_dim)
    actor = Actor(aspec, envs=fake, policy=policy)
    chunks = [actor.collect(T) for _ in range(6)]  # 42 rows: the buffer of T + n + 1 rows wraps several times
    out = {k: torch.cat([torch.as_tensor(c[k]) for c in chunks]) for k in ("obs", "rewards", "next_obs", "discount")}
    rows = len(fake.log) - (n - 1)
    assert out["obs"].shape[0] == rows * M and sum(c["steps"] for c in chunks) == 6 * T * M
    for j in range(rows * M):
        t, i = divmod(j, M)
        ret, nxt, disc = reference(fake.log, t, i, n, gamma)
        assert torch.equal(out["obs"][j], fake.log[t][0][i])
        assert abs(out["rewards"][j].item() - ret) < 1e-5
        assert torch.equal(out["next_obs"][j], nxt)
        assert abs(out["discount"][j].item() - disc) < 1e-6


def pendulum_spec(**kw):
    factory, env_id = env_factory("Pendulum-v1")
    spec = describe(factory(), env_id)
    policy = DeterministicActor(spec.obs_dim, spec.act_dim, (8,))
    return ActorSpec(factory=factory, env_spec=spec, policy=policy, num_envs=1, n_step=2, gamma=0.99, chunk=20,
                     sigmas=[0.1, 0.3], **kw), policy


def wait_for(pool, pred, timeout=120):
    t0 = time.time()
    got = []
    while time.time() - t0 < timeout:
        got += pool.get(timeout=1.0)
        if pred(got):
            return got
    raise AssertionError(f"timed out; got {len(got)} chunks, restarts={pool.restarts}")


@pytest.mark.slow
def test_actor_processes_publish_and_restart():
    spec, policy = pendulum_spec()
    pool = ActorPool(spec, 2, queue_size=2)
    try:
        got = wait_for(pool, lambda g: {c["actor"] for c in g} == {0, 1})
        assert all(c["obs"].shape == (19, 3) or c["obs"].shape[0] in (19, 20) for c in got)
        pool.publish(policy)
        assert pool.weights.version.value == 2
        victim = pool.pids()[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(pool, lambda g: pool.restarts >= 1 and any(c["actor"] == 0 for c in g))
        assert pool.procs[0].pid != victim and pool.procs[0].is_alive()
        # the restarted actor keeps feeding the learner
        wait_for(pool, lambda g: sum(c["actor"] == 0 for c in g) >= 2)
    finally:
        pool.close()
    assert not any(p.is_alive() for p in pool.procs)


@pytest.mark.slow
def test_ray_actors_feed_and_survive_a_kill():
    pytest.importorskip("ray")
    from pgrad.parallel.ray_actors import RayActorPool

    spec, policy = pendulum_spec()
    pool = RayActorPool(spec, 2, queue_size=1)
    try:
        wait_for(pool, lambda g: {c["actor"] for c in g} == {0, 1}, timeout=180)
        pool.publish(policy)
        victim = pool.pids()[1]
        os.kill(victim, signal.SIGKILL)
        wait_for(pool, lambda g: pool.restarts >= 1 and sum(c["actor"] == 1 for c in g) >= 1, timeout=180)
    finally:
        pool.close()
