"""`pgrad theory` in a fresh process prints the comparison table and writes the plot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _pgrad(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "pgrad.cli", *args], cwd=cwd, env=env, capture_output=True,
                          check=False, text=True, timeout=300)


def test_pgrad_theory_prints_the_table_and_writes_the_plot(tmp_path):
    out = _pgrad("theory", "--episodes", "4000", "-o", "plots/theory.png", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "exact ∇J(θ)" in text
    lines: dict[str, str] = {}  # the first table row of each estimator
    for ln in text.splitlines():
        if ln.startswith("  ") and ln.split():
            lines.setdefault(ln.split()[0], ln)
    for name in ("reinforce_gamma_t", "baseline", "q_critic", "advantage", "gae", "off_policy", "dpg"):
        assert "unbiased ✓" in lines[name], lines[name]
    assert "biased for ∇J; unbiased for η-weighted" in lines["reinforce"]
    assert "biased for ∇J" in lines["action_baseline"]
    for control in ("off_policy_no_is", "off_policy_trunc", "dpg_stale_critic"):
        assert "biased (negative control)" in lines[control]
    png = tmp_path / "plots" / "theory.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


@pytest.mark.parametrize("args", [["--gamma", "1.5"], ["--episodes", "10"], ["--bogus"]])
def test_pgrad_theory_bad_input_is_one_line(capsys, args):
    from pgrad.cli import main

    assert main(["theory", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pgrad: error:") and err.count("\n") == 1, err
