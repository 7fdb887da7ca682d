"""Orphan protection for worker processes (A3C's Hogwild! workers, D4PG's actor processes).

A process killed with SIGKILL takes none of its children with it: ``daemon=True`` only acts on a normal exit. An
A3C worker whose learner is gone would train on to the end of the run for nobody, and a D4PG actor would wait
forever for a send credit that only the learner returns. ``run_watched`` starts the real target with a thread that
polls the parent's pid and ends the process as soon as it has been re-parented (its parent died).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any


def watch_parent(ppid: int, interval: float = 0.5) -> threading.Thread:
    """In a child process: exit (code 0, no cleanup to wait on) once the process ``ppid`` is no longer the parent."""

    def loop() -> None:
        while True:
            if os.getppid() != ppid:
                os._exit(0)
            time.sleep(interval)

    th = threading.Thread(target=loop, daemon=True, name="pgrad-parent-watch")
    th.start()
    return th


def run_watched(target: Callable[..., Any], ppid: int, *args: Any) -> None:
    """Process entry point: ``target(*args)`` under ``watch_parent(ppid)`` (pass the starting process's pid)."""
    watch_parent(ppid)
    target(*args)
