"""core.kfac: on one layer the K-FAC preconditioned gradient equals (A ⊗ G + λI)^{-1} g computed directly; the
factors are the running averages of the equations; non-finite refreshes are skipped; the KL clip holds."""

from __future__ import annotations

import torch
from torch import nn

from pgrad.core.kfac import KFAC, kfac_precondition, layer_factors


def one_layer(seed=0, in_dim=3, out_dim=2):
    torch.manual_seed(seed)
    return nn.Linear(in_dim, out_dim).double()


def vec(X):
    """Column-major vec: stack the columns of X."""
    return X.T.reshape(-1)


def unvec(v, shape):
    return v.reshape(shape[1], shape[0]).T


def fisher_batch(layer, B=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, layer.in_features, generator=g, dtype=torch.float64)
    y = layer(x)
    # a sampled Fisher loss of a unit-variance Gaussian output: ½‖y - ỹ‖², ỹ ~ N(y, I), batch mean
    target = y.detach() + torch.randn(y.shape, generator=g, dtype=torch.float64)
    return x, y, 0.5 * (y - target).pow(2).sum(-1).mean()


def test_kronecker_identity_and_precondition_equal_direct_solve():
    layer = one_layer()
    x, y, fl = fisher_batch(layer)
    g_out = torch.autograd.grad(fl, y)[0]
    A, G = layer_factors(x, g_out, bias=True)
    # the identity behind K-FAC: (A ⊗ G) vec(X) = vec(G X A)
    X = torch.randn(2, 4, dtype=torch.float64)
    assert torch.allclose(torch.kron(A, G) @ vec(X), vec(G @ X @ A))
    grad = torch.randn(2, 4, dtype=torch.float64)
    dA, QA = torch.linalg.eigh(A)
    dG, QG = torch.linalg.eigh(G)
    for lam in (0.0, 1e-3, 0.1):  # λ = 0: exactly (A ⊗ G)^{-1} g
        direct = torch.linalg.solve(torch.kron(A, G) + lam * torch.eye(8, dtype=torch.float64), vec(grad))
        assert torch.allclose(kfac_precondition(grad, QA, dA, QG, dG, lam), unvec(direct, (2, 4)), atol=1e-9)


def test_layer_factors_follow_the_definitions():
    layer = one_layer(seed=1)
    x, y, fl = fisher_batch(layer, B=5, seed=1)
    g_out = torch.autograd.grad(fl, y)[0]
    A, G = layer_factors(x, g_out, bias=True)
    B = x.shape[0]
    A_ref = sum(torch.outer(torch.cat([x[i], torch.ones(1, dtype=x.dtype)]),
                            torch.cat([x[i], torch.ones(1, dtype=x.dtype)])) for i in range(B)) / B
    G_ref = sum(torch.outer(B * g_out[i], B * g_out[i]) for i in range(B)) / B
    assert torch.allclose(A, A_ref) and torch.allclose(G, G_ref)


def test_optimizer_step_is_the_direct_natural_gradient_on_one_layer():
    layer = one_layer(seed=2)
    lam, lr, decay = 0.05, 0.1, 0.9
    opt = KFAC(layer, lr=lr, momentum=0.0, stat_decay=decay, damping=lam, kl_clip=1e9, eigen_every=1)
    As, Gs = [], []
    for k in range(3):  # three batches of statistics: A, G are their running averages
        with opt.track():
            x, y, fl = fisher_batch(layer, seed=10 + k)
        opt.update_stats(fl)
        g_out = torch.autograd.grad(fl, y)[0]
        A, G = layer_factors(x, g_out, bias=True)
        As.append(A)
        Gs.append(G)
        if k < 2:
            opt.steps += 1  # statistics only, no parameter step
    A_run, G_run = As[0], Gs[0]
    for A, G in zip(As[1:], Gs[1:]):
        A_run = decay * A_run + (1 - decay) * A
        G_run = decay * G_run + (1 - decay) * G
    st = opt.state[layer.weight]
    assert torch.allclose(st["A"], A_run) and torch.allclose(st["G"], G_run)

    x = torch.randn(8, 3, dtype=torch.float64)
    loss = layer(x).pow(2).sum()
    opt.zero_grad()
    loss.backward()
    grad = torch.cat([layer.weight.grad, layer.bias.grad.unsqueeze(1)], 1)
    before = torch.cat([layer.weight.detach(), layer.bias.detach().unsqueeze(1)], 1).clone()
    opt.step()
    after = torch.cat([layer.weight.detach(), layer.bias.detach().unsqueeze(1)], 1)
    direct = torch.linalg.solve(torch.kron(A_run, G_run) + lam * torch.eye(8, dtype=torch.float64), vec(grad))
    assert torch.allclose(after, before - lr * unvec(direct, grad.shape), atol=1e-9)


def test_kl_clip_rescales_the_step():
    layer = one_layer(seed=3)
    lr, clip = 0.5, 1e-4
    opt = KFAC(layer, lr=lr, momentum=0.0, damping=0.01, kl_clip=clip, eigen_every=1)
    with opt.track():
        _, _, fl = fisher_batch(layer, seed=3)
    opt.update_stats(fl)
    loss = layer(torch.randn(4, 3, dtype=torch.float64)).sum() * 10
    opt.zero_grad()
    loss.backward()
    opt.refresh_eigen()
    pre = opt.precondition()
    vg = sum((pre[p] * p.grad).sum() for p in pre)
    before = [p.detach().clone() for p in layer.parameters()]
    nu = opt.step()
    assert float(nu) < 1.0
    assert torch.isclose(nu, torch.sqrt(clip / (lr**2 * vg)))
    # the quadratic model of the change, Δθᵀ F̂ Δθ with F̂ Δ = ∇, equals the clip exactly
    delta = [p.detach() - b for p, b in zip(layer.parameters(), before)]
    dFd = sum((d * (-lr * nu) * p.grad).sum() for d, p in zip(delta, layer.parameters()))
    assert torch.isclose(dFd, torch.tensor(clip, dtype=torch.float64))


def test_refresh_with_non_finite_factors_is_skipped():
    layer = one_layer(seed=4)
    opt = KFAC(layer, eigen_every=1)
    with opt.track():
        _, _, fl = fisher_batch(layer, seed=4)
    opt.update_stats(fl)
    opt.refresh_eigen()
    st = opt.state[layer.weight]
    kept = {k: st[k].clone() for k in ("QA", "dA", "QG", "dG")}
    st["A"][0, 0] = float("nan")
    opt.refresh_eigen()
    assert opt.skipped_refreshes == 1
    for k, v in kept.items():
        assert torch.equal(st[k], v)
    st["G"][0, 0] = float("inf")
    opt.refresh_eigen()
    assert opt.skipped_refreshes == 2


def test_state_dict_roundtrip():
    layer = one_layer(seed=5)
    opt = KFAC(layer, eigen_every=1)
    with opt.track():
        _, _, fl = fisher_batch(layer, seed=5)
    opt.update_stats(fl)
    layer(torch.randn(3, 3, dtype=torch.float64)).sum().backward()
    opt.step()
    sd = opt.state_dict()
    layer2 = one_layer(seed=5)
    opt2 = KFAC(layer2, eigen_every=1)
    opt2.load_state_dict(sd)
    assert opt2.steps == 1
    for k in ("A", "G", "QA", "dA"):
        assert torch.equal(opt2.state[layer2.weight][k], opt.state[layer.weight][k])
