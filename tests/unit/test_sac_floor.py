"""benchmarks/sac_floor.py times pgrad's SAC update as the fewest eager ops: check that it is the same update."""

from __future__ import annotations

import pytest
import torch

from pgrad.algos import sac
from pgrad.envs import describe, env_factory


@pytest.mark.parametrize("stacked", [True, False])
def test_floor_update_matches_pgrad(stacked, benchmark_script):
    sf = benchmark_script("sac_floor")
    make, env_id = env_factory("Pendulum-v1")
    spec = describe(make(), env_id)
    cfg = sac.Config(version="auto", batch_size=32, hidden=(sf.H, sf.H), lr=1e-3)
    torch.manual_seed(1)
    nets, opt = sac.build(cfg, spec)
    g = torch.Generator().manual_seed(2)
    b = {"obs": torch.randn(32, 3, generator=g), "actions": torch.rand(32, 1, generator=g) * 2 - 1,
         "rewards": torch.randn(32, generator=g), "discount": torch.full((32,), 0.99),
         "next_obs": torch.randn(32, 3, generator=g)}
    update, floor = sf.make_floor(3, 1, stacked, -1.0, init=sf.pgrad_params(nets))
    theta0 = nets["pi"].net[0].weight.detach().clone()
    torch.manual_seed(5)
    for _ in range(2):
        update(b)
    torch.manual_seed(5)
    for _ in range(2):
        sac.update(nets, opt, b, cfg, -1.0)
    ours = sf.pgrad_params(nets)
    if not stacked:  # pgrad's stacked [2, in, out] weights and [2, 1, out] biases in the floor's per-critic layout
        for key in ("q", "q_targ"):
            ours[key] = [w.detach()[k].t() if i % 2 == 0 else w.detach()[k][0]
                         for k in range(2) for i, w in enumerate(ours[key])]
    for key in ("pi", "q", "q_targ", "log_alpha"):
        for x, y in zip(floor[key], ours[key], strict=True):
            torch.testing.assert_close(x.detach(), y.detach(), rtol=0, atol=1e-6)
    assert not torch.equal(nets["pi"].net[0].weight, theta0)  # the updates moved θ


def test_floor_loop_runs_one_update_per_step_after_learning_starts(benchmark_script):
    sf = benchmark_script("sac_floor")
    theta = []
    orig = sf.make_floor

    def spy(*a, **k):
        update, params = orig(*a, **k)
        theta.append((params["pi"][0], params["pi"][0].detach().clone()))
        return update, params

    sf.make_floor = spy
    out = sf.floor_loop("Pendulum-v1", steps=30, ls=10, seed=0)
    assert out["updates"] == 21  # from step ls - 1 on, as pgrad and SB3
    assert out["cpu_sps"] > 0 and out["sps"] > 0
    w, w0 = theta[0]
    assert not torch.equal(w.detach(), w0)  # the policy the loop acts with was trained
