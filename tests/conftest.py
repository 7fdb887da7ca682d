"""Shared test settings: one torch thread (deterministic, no OpenMP thrashing on 2 cores), quiet runs."""

from __future__ import annotations

import os

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
