"""core.kfac: on one layer the K-FAC preconditioned gradient equals (A ⊗ G + λI)^{-1} g computed directly; the
factors are the running averages of the equations; non-finite refreshes are skipped; the KL clip holds."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from pgrad.core.kfac import KFAC, conv_factors, conv_patches, kfac_precondition, layer_factors


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
    assert torch.isclose(nu, torch.sqrt(2 * clip / (lr**2 * vg)))  # Wu et al. (2017), section 3.1: 2δ
    # the quadratic model of the KL change, ½ Δθᵀ F̂ Δθ with F̂ Δ = ∇, equals the clip exactly
    delta = [p.detach() - b for p, b in zip(layer.parameters(), before)]
    dFd = sum((d * (-lr * nu) * p.grad).sum() for d, p in zip(delta, layer.parameters()))
    assert torch.isclose(0.5 * dFd, torch.tensor(clip, dtype=torch.float64))


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


# ------------------------------------------------------------------------------------ convolutions (KFC)
def conv_net(seed=0, stride=1, padding=0, bias=True, hw=5, c_in=2, c_out=3, n_cls=4):
    torch.manual_seed(seed)
    conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=padding, bias=bias)
    n_pos = ((hw + 2 * padding - 3) // stride + 1) ** 2
    return nn.Sequential(conv, nn.Tanh(), nn.Flatten(), nn.Linear(c_out * n_pos, n_cls)).double()


def categorical_fisher(net, x, seed=0):
    """Logits, sampled classes ã ~ softmax(logits) and the batch-mean sampled Fisher loss -ln p(ã|x)."""
    logits = net(x)
    g = torch.Generator().manual_seed(seed)
    a_tilde = torch.multinomial(logits.detach().softmax(-1), 1, generator=g)
    return a_tilde, -logits.log_softmax(-1).gather(1, a_tilde).mean()


def patches_by_hand(conv, xi):
    """ā_t for one sample [C, H, W], sliced from the zero-padded input position by position: {t: ā_t}."""
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    xp = nn.functional.pad(xi, (pw, pw, ph, ph))
    Ho, Wo = (xp.shape[1] - kh) // sh + 1, (xp.shape[2] - kw) // sw + 1
    out = {}
    for oh in range(Ho):
        for ow in range(Wo):
            p = xp[:, oh * sh: oh * sh + kh, ow * sw: ow * sw + kw].reshape(-1)
            out[oh, ow] = torch.cat([p, torch.ones(1, dtype=p.dtype)]) if conv.bias is not None else p
    return out


def flat_weight(conv, use_grad=False):
    """A conv's [C_out, C_in·kh·kw (+1)] matrix (weight or gradient) with the bias as the last column."""
    w, b = conv.weight, conv.bias
    if use_grad:
        w, b = w.grad, None if b is None else b.grad
    w = w.detach().reshape(w.shape[0], -1)
    return w if b is None else torch.cat([w, b.detach().unsqueeze(1)], 1)


@pytest.mark.parametrize("stride,padding,bias", [(1, 0, True), (2, 1, True), (1, 1, False)])
def test_conv_factors_equal_brute_force_sums_over_samples_and_positions(stride, padding, bias):
    net = conv_net(seed=6, stride=stride, padding=padding, bias=bias)
    conv, lin = net[0], net[3]
    B = 6
    x = torch.randn(B, 2, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    opt = KFAC(net)
    with opt.track():
        a_tilde, fl = categorical_fisher(net, x, seed=6)
    opt.update_stats(fl)
    # per sample: Ds_t = ∂(-ln p(ã_i|x_i))/∂s_t at every output position t, by autograd on that sample alone
    A_ref = G_ref = 0.0
    n_pos = 0
    for i in range(B):
        s = conv(x[i: i + 1])
        nll = -net[1:](s).log_softmax(-1)[0, a_tilde[i, 0]]
        Ds, dW = torch.autograd.grad(nll, [s, conv.weight])
        dW = dW.reshape(dW.shape[0], -1)
        if bias:
            dW = torch.cat([dW, torch.autograd.grad(-net(x[i: i + 1]).log_softmax(-1)[0, a_tilde[i, 0]],
                                                    conv.bias)[0].unsqueeze(1)], 1)
        patches = patches_by_hand(conv, x[i])
        n_pos = len(patches)
        assert Ds.shape[2] * Ds.shape[3] == n_pos
        # the structure KFC starts from: the sample's gradient is Σ_t Ds_t ā_tᵀ
        assert torch.allclose(sum(torch.outer(Ds[0, :, oh, ow], a) for (oh, ow), a in patches.items()), dW)
        A_ref = A_ref + sum(torch.outer(a, a) for a in patches.values())
        G_ref = G_ref + sum(torch.outer(Ds[0, :, oh, ow], Ds[0, :, oh, ow]) for oh, ow in patches)
    A_ref, G_ref = A_ref / (B * n_pos), G_ref / B  # A: mean over samples, positions; G: E_i[Σ_t Ds_t Ds_tᵀ]
    st = opt.state[conv.weight]
    assert st["A"].shape == (18 + bias, 18 + bias) and st["G"].shape == (3, 3)
    assert torch.allclose(st["A"], A_ref, rtol=1e-12, atol=1e-14)
    assert torch.allclose(st["G"], G_ref, rtol=1e-10, atol=1e-14)
    # the Linear layer after it is unchanged by the conv support
    with torch.no_grad():
        h = net[:3](x)
    logits = lin(h)
    g_out = torch.autograd.grad(-logits.log_softmax(-1).gather(1, a_tilde).mean(), logits)[0]
    A_lin, G_lin = layer_factors(h, g_out, bias=True)
    st = opt.state[lin.weight]
    assert torch.allclose(st["A"], A_lin) and torch.allclose(st["G"], G_lin)


def test_conv_kronecker_product_matches_the_exact_fisher_when_kfc_assumptions_hold():
    """A unit-variance Gaussian output at every position: Ds_t = s_t - ỹ_t are i.i.d. N(0, I), independent of
    the activations and uncorrelated across positions, so the exact Fisher block is (1/B) Σ_{i,t} ā_t ā_tᵀ ⊗ I
    and A ⊗ G must match it, |T| included (G ≈ |T| I; over the B·|T| rows, G would be 16 times too big).
    """
    torch.manual_seed(7)
    conv = nn.Conv2d(2, 2, 3, padding=1).double()
    B = 1000
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(B, 2, 4, 4, dtype=torch.float64, generator=gen)
    opt = KFAC(conv)
    with opt.track():
        s = conv(x)
    y_tilde = s.detach() + torch.randn(s.shape, dtype=torch.float64, generator=gen)
    opt.update_stats(0.5 * (s - y_tilde).pow(2).sum((1, 2, 3)).mean())
    rows = nn.functional.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, 18)  # [B·|T|, C_in·kh·kw]
    rows = torch.cat([rows, torch.ones(rows.shape[0], 1, dtype=torch.float64)], 1)
    F_exact = torch.kron(rows.T @ rows / B, torch.eye(2, dtype=torch.float64))
    st = opt.state[conv.weight]
    F_kfc = torch.kron(st["A"], st["G"])
    assert torch.linalg.norm(F_kfc - F_exact) / torch.linalg.norm(F_exact) < 0.03
    assert torch.allclose(st["G"], 16 * torch.eye(2, dtype=torch.float64), atol=0.5)


def test_conv_1x1_on_a_1x1_input_equals_the_linear_layer():
    """One position (|T| = 1) and a 1x1 kernel: the conv is a Linear layer, and KFC is exactly K-FAC."""
    torch.manual_seed(8)
    conv = nn.Conv2d(3, 2, 1).double()
    lin = nn.Linear(3, 2).double()
    with torch.no_grad():
        lin.weight.copy_(conv.weight.reshape(2, 3))
        lin.bias.copy_(conv.bias)
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(16, 3, dtype=torch.float64, generator=gen)
    noise = torch.randn(16, 2, dtype=torch.float64, generator=gen)
    opts = {}
    for name, layer, inp, flat in (("conv", conv, x[:, :, None, None], nn.Flatten()),
                                   ("lin", lin, x, nn.Identity())):
        opt = opts[name] = KFAC(layer, eigen_every=1, damping=0.05)
        with opt.track():
            y = flat(layer(inp))
        opt.update_stats(0.5 * (y - (y.detach() + noise)).pow(2).sum(-1).mean())
        opt.zero_grad()
        flat(layer(inp)).pow(3).sum().backward()
        opt.refresh_eigen()
    sc, sl = opts["conv"].state[conv.weight], opts["lin"].state[lin.weight]
    # an unbatched [C, H, W] call is one sample
    opt1 = KFAC(conv)
    with opt1.track():
        y = conv(x[0, :, None, None]).flatten()
    opt1.update_stats(0.5 * (y - (y.detach() + noise[0])).pow(2).sum())
    A1, G1 = layer_factors(x[:1], (y.detach() - (y.detach() + noise[0])).unsqueeze(0), bias=True)
    st1 = opt1.state[conv.weight]
    assert torch.allclose(st1["A"], A1) and torch.allclose(st1["G"], G1)
    assert torch.allclose(sc["A"], sl["A"], rtol=1e-13) and torch.allclose(sc["G"], sl["G"], rtol=1e-13)
    pc, pl = opts["conv"].precondition(), opts["lin"].precondition()
    assert pc[conv.weight].shape == conv.weight.shape
    assert torch.allclose(pc[conv.weight].reshape(2, 3), pl[lin.weight], rtol=1e-9)
    assert torch.allclose(pc[conv.bias], pl[lin.bias], rtol=1e-9)


@pytest.mark.parametrize("bias", [True, False])
def test_conv_precondition_equals_direct_solve(bias):
    net = conv_net(seed=9, stride=2, padding=1, bias=bias)
    conv = net[0]
    lam = 0.03
    opt = KFAC(net, damping=lam, eigen_every=1)
    x = torch.randn(8, 2, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    with opt.track():
        _, fl = categorical_fisher(net, x, seed=9)
    opt.update_stats(fl)
    opt.zero_grad()
    net(x).pow(2).sum().backward()
    opt.refresh_eigen()
    pre = opt.precondition()
    grad = flat_weight(conv, use_grad=True)  # [3, 18 (+1)]
    st = opt.state[conv.weight]
    n = grad.numel()
    direct = unvec(torch.linalg.solve(torch.kron(st["A"], st["G"]) + lam * torch.eye(n, dtype=torch.float64),
                                      vec(grad)), grad.shape)
    assert pre[conv.weight].shape == conv.weight.shape
    assert torch.allclose(pre[conv.weight], direct[:, :18].view_as(conv.weight), atol=1e-10)
    if bias:
        assert torch.allclose(pre[conv.bias], direct[:, 18], atol=1e-10)


def test_grouped_and_other_convolutions_are_refused():
    net = nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(ValueError, match=r"layer '1'.*groups=1"):
        KFAC(net)
    with pytest.raises(ValueError, match=r"layer 'enc'.*Conv1d"):
        KFAC(nn.ModuleDict({"enc": nn.Conv1d(2, 2, 3)}))
    net[1].requires_grad_(False)  # frozen: it takes no step, nothing to precondition
    assert KFAC(net).layers == [net[0]]
    with pytest.raises(ValueError, match="conv_rows"):
        KFAC(net, conv_rows=0)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("kw", [dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
                                dict(kernel_size=4, padding="same", dilation=1, bias=False),
                                dict(kernel_size=3, padding="valid", stride=2),
                                dict(kernel_size=3, padding=2, padding_mode="reflect"),
                                dict(kernel_size=3, padding=1, padding_mode="circular", dilation=2),
                                dict(kernel_size=2, padding=1, padding_mode="replicate")])
def test_conv_patches_reproduce_the_convolution(kw):
    """W ā_t is the conv's output at t, rows ordered sample-major then position, columns as weight.reshape."""
    torch.manual_seed(10)
    conv = nn.Conv2d(3, 4, **kw).double()
    x = torch.randn(5, 3, 7, 6, dtype=torch.float64)
    rows = conv_patches(conv, x)
    y = conv(x)
    n_cols = 3 * conv.weight[0, 0].numel() + (conv.bias is not None)
    assert rows.shape == (5 * y.shape[2] * y.shape[3], n_cols)
    assert torch.allclose(rows @ flat_weight(conv).T, y.permute(0, 2, 3, 1).reshape(-1, 4), atol=1e-12)
    if conv.padding_mode == "zeros" and not isinstance(conv.padding, str):
        unf = nn.functional.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)
        assert torch.equal(rows[:, : unf.shape[1]], unf.transpose(1, 2).reshape(-1, unf.shape[1]))


def test_conv_rows_subsampling_is_unbiased_and_exact_when_all_rows_fit():
    net = conv_net(seed=11, stride=2, padding=1)  # 3x3 = 9 positions
    conv = net[0]
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    g = torch.randn(2, 3, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    full = conv_patches(conv, x)  # 18 rows
    A_full, G_full = conv_factors(conv, x, g)
    for k in (18, 19, 1000):  # as many rows or more: every row, bit for bit, and no RNG draw
        state = torch.get_rng_state()
        assert torch.equal(conv_patches(conv, x, k), full)
        assert torch.equal(torch.get_rng_state(), state)
    # fewer: distinct rows of the full set (without replacement), repeatable under a seed
    torch.manual_seed(0)
    sub = conv_patches(conv, x, 5)
    match = (sub[:, None, :] == full[None, :, :]).all(-1)  # [5, 18]
    assert (match.sum(1) == 1).all() and match.any(0).sum() == 5
    torch.manual_seed(0)
    assert torch.equal(conv_patches(conv, x, 5), sub)
    sub = conv_patches(conv, x, 15)  # with replacement, 15 draws of 18 would repeat a row with p > 0.999
    assert ((sub[:, None, :] == full[None, :, :]).all(-1).sum(0) <= 1).all()
    # unbiased: the mean over many draws of the subsampled A is the full A; G always uses every position
    draws = 4000
    A_mean = 0.0
    for _ in range(draws):
        A_k, G_k = conv_factors(conv, x, g, rows=5)
        A_mean = A_mean + A_k / draws
        assert torch.equal(G_k, G_full)
    # the standard error of a mean of 5 of 18 rows, over 4000 draws, is below 0.01 · max|A| here
    assert torch.allclose(A_mean, A_full, atol=0.03 * A_full.abs().max())
    # through the optimiser: conv_rows at or above the row count leaves the statistics bit-identical
    stats = []
    for rows in (None, 18, 5):
        torch.manual_seed(1)
        net_r = conv_net(seed=11, stride=2, padding=1)
        opt = KFAC(net_r, conv_rows=rows)
        with opt.track():
            _, fl = categorical_fisher(net_r, x, seed=11)
        opt.update_stats(fl)
        stats.append((opt.state[net_r[0].weight]["A"], opt.state[net_r[0].weight]["G"]))
    assert torch.equal(stats[0][0], stats[1][0]) and torch.equal(stats[0][1], stats[1][1])
    assert not torch.equal(stats[0][0], stats[2][0]) and torch.equal(stats[0][1], stats[2][1])


def test_state_dict_roundtrip_with_conv_layers():
    def make():
        net = conv_net(seed=13, stride=2, padding=1)
        return net, KFAC(net, eigen_every=1, momentum=0.5)

    net, opt = make()
    x = torch.randn(4, 2, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(13))
    with opt.track():
        _, fl = categorical_fisher(net, x, seed=13)
    opt.update_stats(fl)
    net(x).sum().backward()
    opt.step()
    net2, opt2 = make()
    buf = io.BytesIO()  # through a file, as a checkpoint (state_dict() holds references to the live tensors)
    torch.save({"net": net.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf)
    net2.load_state_dict(ckpt["net"])
    opt2.load_state_dict(ckpt["opt"])
    assert opt2.steps == 1
    for m, m2 in ((net[0], net2[0]), (net[3], net2[3])):
        for k in ("A", "G", "QA", "dA", "QG", "dG", "momentum_buffer"):
            assert torch.equal(opt2.state[m2.weight][k], opt.state[m.weight][k])
    # the next step is the same from the restored optimiser
    for n, o in ((net, opt), (net2, opt2)):
        o.zero_grad()
        n(x).pow(2).sum().backward()
        o.step()
    for p, p2 in zip(net.parameters(), net2.parameters()):
        assert torch.equal(p, p2)
