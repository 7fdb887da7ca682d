"""Shared test settings: one torch thread (deterministic, no OpenMP thrashing on 2 cores), quiet runs."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(1)

# Settings that keep test runs quiet and cheap; learning tests pass their own budgets.
QUIET = dict(progress=False, tensorboard=False)


@pytest.fixture
def quiet() -> dict:
    return dict(QUIET)


@pytest.fixture
def benchmark_script():
    """load(name): benchmarks/<name>.py as a module (the floor scripts are files, not a package)."""
    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load
