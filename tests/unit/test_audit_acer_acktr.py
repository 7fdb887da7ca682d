"""Issue 20 (points 2 and 6): ACER's trust region on the policy's probabilities f as Wang et al. (2017, §3.3)
define it, and ACKTR's KL clip (Wu et al., 2017, §3.1: 2δ) and value loss (the Gaussian critic's ½ (R - V)²).

Each is checked against an independent computation: the trust-region projection against the small QP solved
through its KKT system, ACER's whole policy gradient against ĝ, k taken by autograd with f as the leaf, the KL clip
against the damped K-FAC matrix written out with a Kronecker product.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pgrad.algos import acer, acktr
from pgrad.core.kfac import KFAC
from pgrad.core.losses import trust_region_projection
from pgrad.core.returns import retrace
from pgrad.envs.spaces import EnvSpec

ROOT = Path(__file__).resolve().parents[2]


def solve_qp(g: np.ndarray, k: np.ndarray, delta: float) -> np.ndarray:
    """min_z ½‖z - ĝ‖² subject to kᵀz <= δ, from its KKT conditions by enumerating the active sets (no closed
    form used): z = ĝ if feasible, else the solution of [[I, k], [kᵀ, 0]] [z; λ] = [ĝ; δ], which needs λ >= 0."""
    if k @ g <= delta:
        return g.copy()
    D = len(g)
    kkt = np.block([[np.eye(D), k[:, None]], [k[None, :], np.zeros((1, 1))]])
    sol = np.linalg.solve(kkt, np.concatenate([g, [delta]]))
    assert sol[-1] >= 0  # the multiplier of an active inequality
    return sol[:D]


def test_projection_equals_the_qp_solution_and_satisfies_the_constraint():
    gen = torch.Generator().manual_seed(0)
    B, A, delta = 200, 4, 1.0
    f = torch.softmax(2 * torch.randn(B, A, generator=gen, dtype=torch.float64), -1)
    f_avg = torch.softmax(2 * torch.randn(B, A, generator=gen, dtype=torch.float64), -1)
    k = -f_avg / f  # ACER's k on the probabilities
    g = 3 * torch.randn(B, A, generator=gen, dtype=torch.float64)
    z = trust_region_projection(g, k, delta)
    kz = (k * z).sum(-1)
    assert (kz <= delta + 1e-9).all()
    binds = (k * g).sum(-1) > delta
    assert 0 < int(binds.sum()) < B  # both cases are exercised
    assert torch.allclose(kz[binds], torch.full_like(kz[binds], delta))
    for i in range(B):
        ref = solve_qp(g[i].numpy(), k[i].numpy(), delta)
        assert np.allclose(z[i].numpy(), ref, atol=1e-6 * (1 + np.abs(ref).max())), i


def spec_discrete(obs_dim=4, n_actions=3):
    return EnvSpec("test", obs_dim, "box", 0, "discrete", n_actions)


def test_acer_policy_gradient_is_the_projection_on_f_backpropagated_into_theta():
    torch.manual_seed(0)
    T, B, D, A = 6, 3, 4, 3
    cfg = acer.Config(delta=0.5, c=1.5, ent_coef=0.05, max_grad_norm=1e9)
    nets, opt = acer.build(cfg, spec_discrete(D, A))
    nets.double()
    opt.param_groups[0]["lr"] = 0.0  # keep θ: the test reads the gradient
    with torch.no_grad():  # an averaged policy away from π, so that the constraint binds somewhere
        for p in nets["pi_avg"].parameters():
            p.add_(0.5 * torch.randn_like(p))
    gen = torch.Generator().manual_seed(1)
    seg = {"obs": torch.randn(T, B, D, generator=gen, dtype=torch.float64),
           "next_obs": torch.randn(T, B, D, generator=gen, dtype=torch.float64),
           "actions": torch.randint(0, A, (T, B), generator=gen),
           "rewards": torch.randn(T, B, generator=gen, dtype=torch.float64),
           "terminated": torch.zeros(T, B, dtype=torch.bool), "truncated": torch.zeros(T, B, dtype=torch.bool),
           "beta_probs": torch.softmax(torch.randn(T, B, A, generator=gen, dtype=torch.float64), -1)}
    pi_params = list(nets["pi"].parameters())
    # the independent computation, before update moves θ_avg
    with torch.no_grad():
        f_avg = torch.softmax(nets["pi_avg"].logits(seg["obs"]), -1).reshape(-1, A)
        q = nets["q"](seg["obs"])
        v_next = (torch.softmax(nets["pi"].logits(seg["next_obs"]), -1) * nets["q"](seg["next_obs"])).sum(-1)
    f = torch.softmax(nets["pi"].logits(seg["obs"]), -1)  # with θ's graph
    a = seg["actions"].unsqueeze(-1)
    with torch.no_grad():
        pi = f.detach()
        omega_all = pi / seg["beta_probs"]
        rho = omega_all.gather(-1, a).squeeze(-1)
        v = (pi * q).sum(-1)
        q_ret = retrace(seg["rewards"], q.gather(-1, a).squeeze(-1), v_next, rho.clamp(max=cfg.c_retrace),
                        seg["terminated"], seg["truncated"], cfg.gamma)
    f_leaf = pi.reshape(-1, A).clone().requires_grad_()
    log_f = f_leaf.log()
    acts = seg["actions"].reshape(-1)
    rows = torch.arange(T * B)
    w_a = (rho.clamp(max=cfg.c) * (q_ret - v)).reshape(-1)  # min(c, ω) (Q^ret - V)
    w_all = ((1 - cfg.c / omega_all).clamp_min(0) * pi * (q - v.unsqueeze(-1))).reshape(-1, A)  # the correction
    objective = (w_a * log_f[rows, acts]).sum() + (w_all * log_f).sum() - cfg.ent_coef * (f_leaf * log_f).sum()
    (g_hat,) = torch.autograd.grad(objective, f_leaf)  # ĝ = ∂(objective)/∂f, per sample
    f_k = pi.reshape(-1, A).clone().requires_grad_()
    kl = (f_avg * (f_avg.log() - f_k.log())).sum()
    (k,) = torch.autograd.grad(kl, f_k)  # ∇_f D_KL(f_avg || f)
    z = torch.stack([torch.from_numpy(solve_qp(g_hat[i].numpy(), k[i].numpy(), cfg.delta)) for i in rows])
    binds = (k * g_hat).sum(-1) > cfg.delta
    assert 0 < int(binds.sum()) < T * B
    expected = torch.autograd.grad(-(z * f.reshape(-1, A)).sum() / (T * B), pi_params)
    out = acer.update(nets, opt, seg, cfg)
    for p, e in zip(pi_params, expected):
        assert torch.allclose(p.grad, e, atol=1e-6 * (1 + e.abs().max())), (p.grad, e)
    assert float(out["tr_active"]) == pytest.approx(float(binds.double().mean()))


def test_acer_trust_region_binds_at_a_nonzero_but_not_total_rate(tmp_path):
    import pgrad

    pgrad.train("acer", "CartPole-v1", steps=6000, seed=0, out=tmp_path / "r", log_every=1000, eval_every=0,
                eval_episodes=1, progress=False, tensorboard=False)
    with open(tmp_path / "r" / "progress.csv") as fh:
        rates = [float(r["tr_active"]) for r in csv.DictReader(fh)]
    # measured: 2-19% of samples per logging window over the first 20k steps (mean 7%)
    assert 0.0 < float(np.mean(rates)) < 0.5, rates
    assert max(rates) < 1.0


# ----------------------------------------------------------------------------- ACKTR
def test_kl_clip_keeps_half_the_quadratic_model_of_the_step_within_delta():
    torch.manual_seed(3)
    layer = torch.nn.Linear(3, 2).double()
    lr, lam = 0.5, 0.01
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(16, 3, generator=gen, dtype=torch.float64)
    for clip in (1e-4, 1e9):
        opt = KFAC(layer, lr=lr, momentum=0.0, damping=lam, kl_clip=clip, eigen_every=1)
        with opt.track():
            y = layer(x)
        opt.update_stats(0.5 * (y - (y.detach() + torch.randn(y.shape, generator=gen, dtype=torch.float64)))
                         .pow(2).sum(-1).mean())
        opt.zero_grad()
        (10 * layer(torch.randn(4, 3, generator=gen, dtype=torch.float64)).sum()).backward()
        grad = torch.cat([layer.weight.grad, layer.bias.grad.unsqueeze(1)], 1)
        before = torch.cat([layer.weight, layer.bias.unsqueeze(1)], 1).detach().clone()
        nu = opt.step()
        s = torch.cat([layer.weight, layer.bias.unsqueeze(1)], 1).detach() - before
        st = opt.state[layer.weight]
        F = torch.kron(st["A"], st["G"]) + lam * torch.eye(8, dtype=torch.float64)  # damped A ⊗ G, vec column-major
        vec = lambda X: X.T.reshape(-1)  # noqa: E731
        quad = vec(s) @ F @ vec(s)
        natural = torch.linalg.solve(F, vec(grad))
        if clip < 1.0:  # the clip binds: ½ sᵀF̂s = δ exactly (Wu et al.'s η = sqrt(2δ / ΔᵀF̂Δ))
            assert float(nu) < 1.0
            assert torch.isclose(0.5 * quad, torch.tensor(clip, dtype=torch.float64), rtol=1e-8)
            assert torch.isclose(nu, torch.sqrt(2 * clip / (lr**2 * (vec(grad) @ natural))), rtol=1e-8)
        else:  # inactive: the plain natural step -η F̂^{-1} ∇
            assert float(nu) == 1.0
            assert torch.allclose(vec(s), -lr * natural, atol=1e-10)


def test_acktr_value_loss_is_the_gaussian_critics_negative_log_likelihood():
    torch.manual_seed(0)
    cfg = acktr.Config()
    assert cfg.vf_coef == 0.5
    nets, opt = acktr.build(cfg, spec_discrete(4, 2))
    gen = torch.Generator().manual_seed(2)
    b = {"obs": torch.randn(32, 4, generator=gen), "actions": torch.randint(0, 2, (32,), generator=gen),
         "ret": 5 * torch.randn(32, generator=gen)}
    v_params = list(nets["v"].parameters())
    v = nets["v"](b["obs"])
    nll = (0.5 * (b["ret"] - v).pow(2)).mean()  # -ln N(R; V_w(s), 1) up to a constant (Wu et al., §3.2)
    expected = torch.autograd.grad(nll, v_params)
    out = acktr.update(nets, opt, b, cfg)
    assert torch.isclose(out["loss/value"], (b["ret"] - v.detach()).pow(2).mean())  # logged: E[(R - V)²]
    for p, e in zip(v_params, expected):  # the critic's raw gradient (K-FAC preconditions a copy)
        assert torch.allclose(p.grad, e, atol=1e-6)


@pytest.mark.parametrize("text,value_term,two_delta", [
    ((ROOT / "docs" / "algorithms" / "acktr.md").read_text(), r"c_v \mathbb{E}[(R - V_w(s))^2]", r"2 \delta"),
    (acktr.__doc__, "c_v E[(R - V_w(s))²]", "2δ"),
])
def test_acktr_docs_state_the_value_loss_and_the_clip_as_the_code_computes_them(text, value_term, two_delta):
    """The page and the module docstring write c_v (R - V)² with c_v = 0.5, as value_loss computes it (not
    c_v ½ (R - V)²), and the paper's 2δ in the KL clip, as KFAC.step computes it."""
    eq2 = next(line for line in text.splitlines() if line.lstrip().startswith("(2)"))
    assert value_term in eq2, eq2
    assert re.search(r"c_v \\frac\{1\}\{2\}|c_v ½", text) is None
    eq5 = text[text.index("(5)"):]
    assert two_delta in eq5[:400]
