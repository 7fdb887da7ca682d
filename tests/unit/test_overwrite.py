"""A run directory that already holds a run is refused, unless pgrad.train(overwrite=True) (issue 21, point 8):
the examples pass it, so they run twice in a row."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pgrad
from pgrad.errors import PgradError

KW = dict(steps=256, seed=0, eval_every=0, progress=False, tensorboard=False)


def test_an_existing_run_is_refused_then_replaced_on_request(tmp_path):
    pgrad.train("a2c", "CartPole-v1", out=tmp_path / "run", **KW)
    (tmp_path / "run" / "marker").write_text("the first run")
    with pytest.raises(PgradError, match="already holds a run"):
        pgrad.train("a2c", "CartPole-v1", out=tmp_path / "run", **KW)
    assert (tmp_path / "run" / "marker").exists()  # refused: nothing touched
    agent = pgrad.train("a2c", "CartPole-v1", out=tmp_path / "run", overwrite=True, **KW)
    assert not (tmp_path / "run" / "marker").exists() and agent.steps_trained >= 256
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_every_example_run_with_a_fixed_out_may_rerun():
    root = Path(__file__).resolve().parents[2] / "examples"
    calls = 0
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "train":
                kws = {k.arg: k.value for k in node.keywords}
                if "out" in kws:
                    calls += 1
                    assert "overwrite" in kws and ast.literal_eval(kws["overwrite"]) is True, (path.name, node.lineno)
    assert calls >= 8
