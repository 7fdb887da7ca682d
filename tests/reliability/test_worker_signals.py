"""A3C's Hogwild! workers and D4PG's actor processes ignore SIGINT and SIGTERM, from the first instant of their
start-up: a Ctrl-C or a scheduler's SIGTERM reaches the whole process group, and the learner, not the signal, stops
them (through their stop flag; tests/reliability/test_signals.py covers the learner's side). Neither is killed,
prints a traceback or is restarted by its pool."""

from __future__ import annotations

import os
import signal
import time

from pgrad.core.nets import DeterministicActor
from pgrad.envs import describe, env_factory
from pgrad.parallel.actors import ActorPool, ActorSpec
from pgrad.parallel.hogwild import WorkerPool


def pelt(pids: list[int]) -> None:
    for pid in pids:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def test_hogwild_workers_ignore_stop_signals_from_their_start(capfd):
    logs: list[str] = []
    pool = WorkerPool(time.sleep, lambda k, restarts: (4.0,), 2, logs.append, max_restarts=3)
    pool.start()
    deadline = time.monotonic() + 120
    while not pool.poll(run_over=False):  # signals from the start (imports, unpickling) until the workers finish
        pelt([p for p in pool.pids() if p is not None])
        assert time.monotonic() < deadline, logs
        time.sleep(0.1)
    assert pool.restarts == [0, 0] and [p.exitcode for p in pool.procs] == [0, 0], logs
    assert not any("died" in m for m in logs), logs
    assert "Traceback" not in capfd.readouterr().err


def test_actor_processes_ignore_stop_signals_and_are_not_restarted(capfd):
    factory, env_id = env_factory("Pendulum-v1")
    es = describe(factory(), env_id)
    spec = ActorSpec(factory=factory, env_spec=es, num_envs=1, chunk=10,
                     policy=DeterministicActor(es.obs_dim, es.act_dim, (8,), "relu"))
    logs: list[str] = []
    pool = ActorPool(spec, 2, queue_size=1, log=logs.append, max_restarts=3)
    pids = pool.pids()
    try:
        chunks = 0
        deadline = time.monotonic() + 120
        while chunks < 6:  # signals during start-up and while the actors send
            pelt(pids)
            chunks += len(pool.get(timeout=0.2))
            assert time.monotonic() < deadline, logs
        assert pool.restarts == 0 and pool.pids() == pids, logs
        assert all(p.is_alive() for p in pool.procs)
    finally:
        pool.close()
    assert not any(p.is_alive() for p in pool.procs)
    assert "Traceback" not in capfd.readouterr().err
