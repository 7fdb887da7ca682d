"""Parallel faults beyond a single kill (the kills themselves: test_a3c_faults.py, test_kill_resume.py, the Ray tests in
tests/distributed and tests/unit/test_actors.py):

- a slow learner bounds what D4PG's actor processes send it: at most ``queue_size`` chunks wait per actor, however
  long the learner takes, so the learner's memory cannot grow with the actors' speed;
- an actor that dies at every start ends the run with a one-line error after ``max_restarts``, never a restart loop.
"""

from __future__ import annotations

import time

import pytest

from pgrad.core.nets import DeterministicActor
from pgrad.envs import describe, env_factory
from pgrad.errors import PgradError
from pgrad.parallel.actors import ActorPool, ActorSpec


def pendulum_spec(chunk: int = 10) -> ActorSpec:
    factory, env_id = env_factory("Pendulum-v1")
    es = describe(factory(), env_id)
    return ActorSpec(factory=factory, env_spec=es, policy=DeterministicActor(es.obs_dim, es.act_dim, (8,), "relu"),
                     chunk=chunk, seed=0)


def test_a_slow_learner_holds_at_most_queue_size_chunks_per_actor():
    pool = ActorPool(pendulum_spec(), 1, queue_size=2)
    try:
        conn = pool.conns[0]
        assert conn.poll(300), "the actor sent nothing"
        # the learner never returns a credit: the actor may send queue_size chunks, then must wait
        got = 0
        while conn.poll(3.0):  # three quiet seconds: an unbounded actor would have sent dozens of 10-step chunks
            conn.recv()
            got += 1
        assert got == 2
        assert pool.credits[0].get_value() == 0 and pool.procs[0].is_alive()  # waiting, not dead
        pool.credits[0].release()  # the learner takes one: exactly one more comes
        assert conn.poll(60)
        conn.recv()
        assert not conn.poll(2.0)
        assert pool.restarts == 0
    finally:
        pool.close()
    assert not any(p.is_alive() for p in pool.procs)


class _DeadProcess:
    pid, exitcode = 12345, 1

    def is_alive(self):
        return False

    def kill(self):
        pass

    def join(self, timeout=None):
        pass


class _Conn:
    def close(self):
        pass


def test_an_actor_dying_at_every_start_ends_the_run(monkeypatch):
    """ActorPool's restart accounting, with processes that are dead as soon as they start (no spawn cost)."""
    logs: list[str] = []
    started = []

    def fake_start(self, k, seed):
        started.append((k, seed))
        self.procs[k], self.conns[k] = _DeadProcess(), _Conn()
        self.log(f"actor {k} started (pid {_DeadProcess.pid})")

    monkeypatch.setattr(ActorPool, "_start", fake_start)
    monkeypatch.setattr("pgrad.parallel.actors.wait_connections", lambda conns, timeout: [])
    pool = ActorPool(pendulum_spec(), 2, queue_size=1, log=logs.append, max_restarts=3)
    with pytest.raises(PgradError, match=r"D4PG actor 0 died 4 times \(last exit code 1\)"):
        for _ in range(10):
            pool.get(timeout=0.0)
            time.sleep(0)
    assert pool.actor_restarts[0] == 4
    assert sum("actor 0 (pid 12345) died with exit code 1; restarting it" in m for m in logs) == 3
    assert len({seed for _, seed in started}) == len(started)  # each actor and each restart has its own seed
