"""core.nets: stacked ensembles equal their members run separately."""

from __future__ import annotations

import torch

from pgrad.core.nets import StackedMLP, StackedQ


def test_stacked_mlp_equals_members():
    torch.manual_seed(0)
    net = StackedMLP(3, 5, (16, 8), 2, "tanh")
    x = torch.randn(7, 5)
    out = net(x)
    assert out.shape == (3, 7, 2)
    for j in range(3):
        assert torch.allclose(out[j], net.member(j)(x), atol=1e-6)
    xs = torch.randn(3, 7, 5)
    out2 = net(xs)
    for j in range(3):
        assert torch.allclose(out2[j], net.member(j)(xs[j]), atol=1e-6)


def test_stacked_q_gradients_are_per_member():
    torch.manual_seed(1)
    q = StackedQ(2, 3, 1, (8,))
    obs, act = torch.randn(4, 3), torch.randn(4, 1)
    q(obs, act)[0].sum().backward()
    assert q.net.weights[0].grad[1].abs().sum() == 0 and q.net.weights[0].grad[0].abs().sum() > 0


def test_mlp_function_equals_the_module_and_follows_its_parameters():
    import torch

    from pgrad.core.nets import mlp, mlp_function

    for act in ("tanh", "relu", "elu", "gelu"):
        net = mlp(4, (8, 8), 3, act)
        f = mlp_function(net)
        x = torch.randn(5, 4)
        assert torch.equal(f(x), net(x))
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.1)
        assert torch.equal(f(x), net(x))


def test_policy_function_gives_the_same_distribution():
    import torch

    from pgrad.core.nets import CategoricalPolicy, GaussianPolicy, TanhGaussianPolicy, policy_function

    x = torch.randn(6, 4)
    cat = CategoricalPolicy(4, 3, (8,))
    assert torch.equal(policy_function(cat)(x).logits, cat(x).logits)
    gauss = GaussianPolicy(4, 2, (8,), log_std_init=-0.5)
    d1, d2 = policy_function(gauss)(x), gauss(x)
    assert torch.equal(d1.mean, d2.mean) and torch.equal(d1.log_std, d2.log_std)
    squashed = TanhGaussianPolicy(4, 2, (8,), log_std_min=-1.0, log_std_max=0.1)
    with torch.no_grad():
        squashed.net[-1].bias.copy_(torch.tensor([0.0, 0.0, 3.0, -3.0]))  # log σ beyond both clamps
    d1, d2 = policy_function(squashed)(x), squashed(x)
    assert torch.equal(d1.base.mean, d2.base.mean) and torch.equal(d1.base.log_std, d2.base.log_std)
    assert d1.base.log_std.max() == 0.1 and d1.base.log_std.min() == -1.0


def test_clip_grad_norm_matches_torch_bit_for_bit():
    """core.nets.clip_grad_norm is a faster path to the same operations as torch.nn.utils.clip_grad_norm_."""
    import copy

    from pgrad.core.nets import clip_grad_norm, mlp

    torch.manual_seed(0)
    for scale, max_norm in ((1e-3, 0.5), (1.0, 0.5), (100.0, 10.0)):
        a = mlp(4, (64, 64), 2)
        b = copy.deepcopy(a)
        x = torch.randn(256, 4)
        for net in (a, b):
            (net(x).pow(2).sum() * scale).backward()
        na = torch.nn.utils.clip_grad_norm_(a.parameters(), max_norm)
        nb = clip_grad_norm(b.parameters(), max_norm)
        assert torch.equal(na, nb)
        assert all(torch.equal(p.grad, q.grad) for p, q in zip(a.parameters(), b.parameters()))
    assert clip_grad_norm([torch.zeros(3, requires_grad=True)], 1.0) == 0  # no gradients: norm 0, like torch


def test_inplace_relu_gives_the_same_values_and_gradients():
    """The off-policy nets apply ReLU in place; forward values and every gradient equal the out-of-place net's."""
    import copy

    from torch import nn

    from pgrad.core.nets import QNet, mlp

    torch.manual_seed(0)
    q = QNet(5, 2, (32, 16), "relu")
    assert any(isinstance(m, nn.ReLU) and m.inplace for m in q.modules())
    ref = copy.deepcopy(q)
    for m in ref.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    obs, act = torch.randn(64, 5), torch.randn(64, 2, requires_grad=True)
    act_ref = act.detach().clone().requires_grad_()
    q(obs, act).square().mean().backward()
    ref(obs, act_ref).square().mean().backward()
    assert torch.equal(act.grad, act_ref.grad)
    for p, r in zip(q.parameters(), ref.parameters()):
        assert torch.equal(p.grad, r.grad)
    assert not any(isinstance(m, nn.ReLU) and m.inplace for m in mlp(5, (8,), 1, "relu").modules())  # default off
    s = StackedMLP(2, 5, (32, 16), 1, "relu")
    x = torch.randn(64, 5)
    y = s(x)
    for j in range(2):
        assert torch.allclose(y[j], s.member(j)(x), atol=1e-6)
