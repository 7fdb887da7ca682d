"""Unit tests of the Hogwild! and Ray helpers (pgrad.parallel): eager optimiser state, gradient copies, counters,
gradient averaging."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pgrad.parallel.hogwild import (
    WorkerStats,
    attach_optimizer_state,
    copy_gradients,
    init_optimizer_state,
    share_optimizer_state,
)
from pgrad.parallel.ray_backend import mean_gradients


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))


@pytest.mark.parametrize("make", [
    lambda p: torch.optim.RMSprop(p, lr=1e-2, alpha=0.99, eps=1e-5),
    lambda p: torch.optim.RMSprop(p, lr=1e-2, momentum=0.9, centered=True),
    lambda p: torch.optim.Adam(p, lr=1e-2),
    lambda p: torch.optim.Adam(p, lr=1e-2, amsgrad=True),
])
def test_eager_shared_state_steps_exactly_like_lazy_state(make):
    """State created up front (and moved to shared memory) gives bit-identical steps to torch's lazy creation."""
    a, b = _net(0), _net(0)
    opt_a, opt_b = make(a.parameters()), make(b.parameters())
    init_optimizer_state(opt_b)
    share_optimizer_state(opt_b)
    x = torch.randn(16, 3)
    for _ in range(5):
        for net, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad(set_to_none=True)
            net(x).pow(2).mean().backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert all(v.is_shared() for st in opt_b.state.values() for v in st.values())


def test_attached_state_is_the_same_storage():
    shared = _net(0)
    shared.share_memory()
    opt = torch.optim.RMSprop(shared.parameters(), lr=1e-2)
    init_optimizer_state(opt)
    states = share_optimizer_state(opt)
    other = torch.optim.RMSprop(shared.parameters(), lr=1e-2)  # a worker's optimiser object
    attach_optimizer_state(other, states)
    for p in shared.parameters():
        p.grad = torch.ones_like(p)
    other.step()
    assert float(states[0]["step"]) == 1.0  # the statistics the main process holds moved
    assert float(opt.state[shared[0].weight]["square_avg"].abs().sum()) > 0


def test_copy_gradients_copies_never_aliases():
    local, shared = _net(0), _net(1)
    local(torch.randn(4, 3)).sum().backward()
    copy_gradients(local, shared)
    for lp, sp in zip(local.parameters(), shared.parameters()):
        assert torch.equal(lp.grad, sp.grad) and lp.grad.data_ptr() != sp.grad.data_ptr()
    before = [sp.grad.clone() for sp in shared.parameters()]
    for lp in local.parameters():  # the next rollout's backward in the worker
        lp.grad.mul_(3.0)
    local.zero_grad(set_to_none=True)
    for b, sp in zip(before, shared.parameters()):
        assert torch.equal(b, sp.grad)
    copy_gradients(local, shared)  # local has no gradients now: the shared ones become zero
    assert all(float(sp.grad.abs().sum()) == 0 for sp in shared.parameters())


def test_worker_stats_counts_and_episode_ring():
    st = WorkerStats(2, ["loss/policy", "entropy"], ring=4)
    m = {"loss/policy": torch.tensor(1.0), "entropy": torch.tensor(0.5)}
    st.add(0, 5, [(10.0, 10), (12.0, 12)], m)
    st.add(1, 5, [], {"loss/policy": torch.tensor(3.0), "entropy": torch.tensor(0.7)})
    assert st.total_steps() == 10
    assert st.new_episodes() == [(10.0, 10), (12.0, 12)]
    assert st.new_episodes() == []
    st.add(0, 5, [(float(i), i) for i in range(6)], m)  # more than the ring holds: the newest 4 survive
    assert st.new_episodes() == [(2.0, 2), (3.0, 3), (4.0, 4), (5.0, 5)]
    got = st.metrics()
    assert got["loss/policy"].item() == pytest.approx(2.0) and got["entropy"].item() == pytest.approx(0.6)


def test_mean_gradients_is_the_sample_weighted_average():
    rng = np.random.default_rng(0)
    results = [{"steps": s, "grads": [rng.normal(size=(3, 2)), None, rng.normal(size=4)]} for s in (10, 30)]
    out = mean_gradients(results)
    for i in (0, 2):
        ref = (10 * results[0]["grads"][i] + 30 * results[1]["grads"][i]) / 40
        np.testing.assert_allclose(out[i], ref, rtol=1e-12)
    assert out[1] is None
