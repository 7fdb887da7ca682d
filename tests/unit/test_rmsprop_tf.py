"""core.optim.RMSpropTF: TensorFlow's RMSProp (issue 20, point 11), the update the A3C/A2C reference code ran."""

from __future__ import annotations

import pytest
import torch

import pgrad
from pgrad.core.optim import RMSpropTF
from pgrad.parallel.hogwild import init_optimizer_state


def test_update_is_tensorflows_rmsprop():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 4, generator=g, dtype=torch.float64)
    p = torch.nn.Parameter(w.clone())
    opt = RMSpropTF([p], lr=0.01, alpha=0.9, eps=1e-3)
    v, theta = torch.ones_like(w), w.clone()  # TF's accumulator starts at 1
    for _ in range(5):
        grad = torch.randn(3, 4, generator=g, dtype=torch.float64)
        p.grad = grad.clone()
        opt.step()
        v = 0.9 * v + 0.1 * grad * grad
        theta = theta - 0.01 * grad / torch.sqrt(v + 1e-3)
        assert torch.allclose(p.detach(), theta, rtol=0, atol=1e-12)
    assert int(opt.state[p]["step"]) == 5


def test_first_step_differs_from_torchs_rmsprop():
    """torch's RMSprop starts v at 0: its first step is lr / √(1 - α) per coordinate whatever the gradient."""
    p1, p2 = torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(4))
    grad = torch.tensor([1e-3, 1e-1, 1.0, 10.0])
    for p in (p1, p2):
        p.grad = grad.clone()
    RMSpropTF([p1], lr=0.1, alpha=0.99, eps=1e-5).step()
    torch.optim.RMSprop([p2], lr=0.1, alpha=0.99, eps=1e-5).step()
    assert torch.allclose(p2.detach(), -0.1 * grad / (0.1 * grad.abs() + 1e-5))  # about -lr / √(1 - α) = -1
    assert torch.allclose(p1.detach(), -0.1 * grad / torch.sqrt(0.99 + 0.01 * grad**2 + 1e-5))


def test_shared_state_starts_at_one():
    p = torch.nn.Parameter(torch.zeros(2, 2))
    opt = RMSpropTF([p])
    init_optimizer_state(opt)
    assert torch.equal(opt.state[p]["square_avg"], torch.ones(2, 2)) and float(opt.state[p]["step"]) == 0


@pytest.mark.parametrize("algo", ["a2c", "a3c"])
def test_a2c_a3c_run_with_it(algo, tmp_path):
    agent = pgrad.train(algo, "CartPole-v1", steps=2000, seed=0, optimizer="rmsprop_tf", eval_every=0,
                        out=tmp_path / "run", progress=False, **({"workers": 2} if algo == "a3c" else {}))
    assert agent.evaluate(episodes=2).mean_return > 0
