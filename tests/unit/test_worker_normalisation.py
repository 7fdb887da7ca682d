"""Per-worker statistics are refused (issue 20, point 8): A3C's workers and A2C's Ray actors would each scale
rewards (or observations) by their own running statistics, never shared with the learner nor saved."""

from __future__ import annotations

import pytest

import pgrad
from pgrad.errors import ConfigError


@pytest.mark.parametrize("algo,kw", [("a3c", {}), ("a3c", {"backend": "ray"}), ("a2c", {"backend": "ray"})])
@pytest.mark.parametrize("name", ["norm_reward", "norm_obs"])
def test_per_worker_normalisation_is_refused(algo, kw, name, tmp_path):
    with pytest.raises(ConfigError, match=f"{name}=false"):
        pgrad.train(algo, "CartPole-v1", steps=1000, out=tmp_path / "run", progress=False, **{name: True}, **kw)
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()
