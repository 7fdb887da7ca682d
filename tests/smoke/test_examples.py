"""examples/: every script compiles and uses only public names that exist; the fast one runs end to end."""

from __future__ import annotations

import ast
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

import pgrad

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.py"))


def test_there_is_one_example_per_family():
    names = {p.stem for p in EXAMPLES}
    assert {"on_policy", "actor_critic", "deterministic", "trust_region", "sac", "maddpg", "theory"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_compiles_and_names_real_algorithms(path):
    py_compile.compile(str(path), doraise=True)
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), f"{path.name} needs a docstring saying what it shows and how to run it"
    for node in ast.walk(tree):  # pgrad.train("algo", ...): the algorithm exists and the keywords are its fields
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "train" \
                and node.args and isinstance(node.args[0], ast.Constant):
            cfg = pgrad.ALGOS[node.args[0].value].Config
            for kw in node.keywords:
                assert kw.arg in cfg.field_names() or kw.arg in ("out", "resume", "overwrite"), (path.name, kw.arg)


def test_theory_example_runs(tmp_path):
    out = subprocess.run([sys.executable, str(EXAMPLES[0].parent / "theory.py")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert "exact gradient norm" in out.stdout and "baseline" in out.stdout
