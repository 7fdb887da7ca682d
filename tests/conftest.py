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


@pytest.fixture
def customise_examples():
    """blocks(section): the ```python blocks of one section of docs/customise.md; run(code, cwd): one of them in a
    fresh interpreter (one thread), its CompletedProcess checked for exit status 0."""
    import re
    import subprocess
    import sys

    text = (Path(__file__).resolve().parents[1] / "docs" / "customise.md").read_text()

    def blocks(section: str) -> list[str]:
        body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
        found = re.findall(r"```python\n(.*?)```", body, re.DOTALL)
        assert found, f"no python example in docs/customise.md section {section!r}"
        return found

    def run(code: str, cwd: Path) -> subprocess.CompletedProcess:
        out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
        assert out.returncode == 0, out.stderr
        return out

    return blocks, run
