"""``pgrad theory``: every estimator of the post against the exact gradient, on a seeded MDP and an LQR.

Prints the exact ∇J(θ) of a random softmax policy on a seeded tabular MDP, then for each estimator (run through
pgrad's own losses) its sample mean, standard error, variance and distance to the exact value in standard
errors; the off-policy estimators against the exact off-policy gradient; DPG on the LQR against the exact
∇_K J. Writes a PNG of the error of the running mean versus the number of episodes, per estimator.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from pgrad.cli import COMMANDS, _Parser
from pgrad.errors import ConfigError

PSI = {
    "reinforce_gamma_t": "γ^t G_t (post)",
    "reinforce": "G_t (no γ^t)",
    "baseline": "γ^t (G_t - V(s_t))",
    "q_critic": "γ^t Q(s_t, a_t)",
    "advantage": "γ^t A(s_t, a_t)",
    "gae": "γ^t GAE(λ) with exact V",
    "action_baseline": "γ^t (G_t - Q(s_t, a_t))",
    "off_policy": "ρ Q(s, a), s~d^β, a~β",
    "off_policy_no_is": "Q(s, a) (ρ dropped)",
    "off_policy_trunc": "min(ρ, 1) Q(s, a)",
    "dpg": "Σ γ^t ∇_a Q ∇_K μ",
    "dpg_stale_critic": "same, Q of K* (stale)",
}
TARGET_NAME = {"reinforce": "η-weighted", "action_baseline": "0 (control)"}
CONTROL = {"reinforce", "action_baseline", "off_policy_no_is", "off_policy_trunc", "dpg_stale_critic"}


def _fmt_matrix(M: torch.Tensor, row: str = "s") -> list[str]:
    lines = ["        " + "".join(f"{'a=' + str(a):>10s}" for a in range(M.shape[1]))]
    for s in range(M.shape[0]):
        lines.append(f"  {row}={s:<4d}" + "".join(f"{float(x):10.4f}" for x in M[s]))
    return lines


def run(seed: int = 0, states: int = 5, actions: int = 3, gamma: float = 0.9, episodes: int = 20_000,
        z: float = 4.0, output: str | None = "theory.png", detail: bool = False, lam: float = 0.9) -> dict:
    """Compute every comparison, print the tables, write the plot; returns the comparisons by name."""
    from pgrad.theory import LQR, TabularMDP
    from pgrad.theory import estimators as E

    t0 = time.perf_counter()
    mdp = TabularMDP(n_states=states, n_actions=actions, gamma=gamma, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    theta = mdp.random_theta(gen)
    pi = mdp.policy(theta)
    grad = mdp.grad(theta)
    ep = mdp.sample_episodes(pi, episodes, gen)
    on = {n: E.per_episode_pg(theta, ep, E.episode_psi(mdp, theta, ep, n, lam)) for n in E.ON_POLICY}
    beta = mdp.policy(mdp.random_theta(gen))
    off_exact = mdp.off_policy_grad(theta, beta)
    tr = mdp.sample_transitions(beta, 2 * episodes, gen)
    q = mdp.q(pi)
    off = {n: E.per_transition_off_policy(theta, beta, tr, q, n) for n in E.OFF_POLICY}
    lqr = LQR(seed=seed)
    K_star = lqr.optimal_K()
    K = K_star + 0.25 * torch.randn(K_star.shape, dtype=torch.float64, generator=gen)
    while not lqr.is_stable(K):
        K = 0.5 * (K + K_star)
    s0 = lqr.sample_start(episodes // 2, gen)
    dpg_exact = -lqr.grad(K)
    dpg = {"dpg": E.lqr_dpg_samples(lqr, K, s0, 100),
           "dpg_stale_critic": E.lqr_dpg_samples(lqr, K, s0, 100, critic_K=K_star)}

    comps: dict[str, tuple] = {}  # name -> (vs own target, vs the gradient of the objective)
    for n, smp in on.items():
        comps[n] = (E.compare(n, smp, E.on_policy_target(mdp, theta, n)), E.compare(n, smp, grad))
    for n, smp in off.items():
        c = E.compare(n, smp, off_exact)
        comps[n] = (c, c)
    for n, smp in dpg.items():
        c = E.compare(n, smp, dpg_exact)
        comps[n] = (c, c)

    p = print
    p(f"pgrad theory: seed {seed}, {mdp.S} states, {mdp.A} actions, γ = {mdp.gamma}, termination 0.1 per step")
    p(f"  softmax policy θ ~ N(0, 1): J(θ) = {float(mdp.J(theta)):.4f} (optimal {mdp.optimal_J():.4f}), "
      f"mean episode length {mdp.expected_length(pi):.2f}")
    p("")
    p("exact ∇J(θ) = Σ_s d^π(s) Σ_a ∇π(a|s) Q^π(s, a)  (policy gradient theorem; equals autograd of J: "
      f"max difference {float((grad - mdp.grad_autograd(theta)).abs().max()):.1e})")
    for line in _fmt_matrix(grad):
        p(line)
    p("")
    p(f"{episodes} episodes of π; one gradient sample per episode through core.losses.policy_gradient_loss.")
    p(f"z = max over components of |mean - exact| / SE;  unbiased if z <= {z:g}.  tr Cov: variance of one sample.")
    hdr = f"  {'estimator':18s} {'Ψ_t':26s} {'z vs ∇J':>8s} {'|mean-∇J|':>10s} {'mean SE':>8s} {'tr Cov':>8s}  verdict"
    p(hdr)
    p("  " + "-" * (len(hdr) - 2))
    for n in E.ON_POLICY:
        own, vs = comps[n]
        if n in TARGET_NAME:
            verdict = (f"biased for ∇J; unbiased for {TARGET_NAME[n]} (z {own.max_z:.1f})" if own.unbiased(z)
                       else f"FAILS for {TARGET_NAME[n]} too (z {own.max_z:.1f})")
        else:
            verdict = "unbiased ✓" if vs.unbiased(z) else "BIASED ✗"
        p(f"  {n:18s} {PSI[n]:26s} {vs.max_z:8.2f} {vs.bias_norm:10.4f} {float(vs.se.mean()):8.4f} "
          f"{vs.total_var:8.3f}  {verdict}")
    p("")
    p(f"off-policy (post: importance weight π/β): {2 * episodes} transitions s ~ d^β, a ~ β, exact Q^π; "
      "target Σ_s d^β(s) Σ_a ∇π Q^π (normalised d^β)")
    for n in E.OFF_POLICY:
        c = comps[n][1]
        verdict = "unbiased ✓" if c.unbiased(z) else ("biased (negative control) ✗" if n in CONTROL else "BIASED ✗")
        p(f"  {n:18s} {PSI[n]:26s} {c.max_z:8.2f} {c.bias_norm:10.4f} {float(c.se.mean()):8.4f} "
          f"{c.total_var:8.3f}  {verdict}")
    p("")
    p(f"DPG on the LQR (state {lqr.n}, action {lqr.m}, γ {lqr.gamma}): K = {_vec(K)} (K* = {_vec(K_star)}), "
      f"{episodes // 2} start states")
    p(f"  exact ∇_K of the return = {_vec(dpg_exact)}")
    for n, smp in dpg.items():
        c = comps[n][1]
        verdict = "unbiased ✓" if c.unbiased(z) else ("biased (negative control) ✗" if n in CONTROL else "BIASED ✗")
        p(f"  {n:18s} {PSI[n]:26s} {c.max_z:8.2f} {c.bias_norm:10.4f} {float(c.se.mean()):8.4f} "
          f"{c.total_var:8.3f}  {verdict}   mean {_vec(c.mean)}")
    p("")
    p("variance (paired on the same episodes): tr Cov")
    for a, b in (("reinforce_gamma_t", "baseline"), ("reinforce_gamma_t", "q_critic"), ("q_critic", "advantage")):
        d, se = E.variance_reduction(on[a], on[b])
        p(f"  {a} {comps[a][1].total_var:.3f} -> {b} {comps[b][1].total_var:.3f}: lower by {d:.3f} ± {se:.3f}")
    if detail:
        p("")
        p("per component (θ[s, a]): exact target, sample mean, SE, per-sample variance, z")
        for n, (own, _) in comps.items():
            p(f"  {n}  (target: {TARGET_NAME.get(n, 'the exact gradient')})")
            var = own.se.pow(2) * own.n
            for k in range(own.exact.numel()):
                idx = f"K[{k // lqr.n},{k % lqr.n}]" if n.startswith("dpg") else f"θ[{k // mdp.A},{k % mdp.A}]"
                p(f"    {idx:8s} exact {float(own.exact[k]):9.4f}  mean {float(own.mean[k]):9.4f}  "
                  f"SE {float(own.se[k]):.4f}  var {float(var[k]):8.4f}  z {float(own.z[k]):5.2f}")
    if output:
        out = _plot(on, off, dpg, grad, off_exact, dpg_exact, Path(output), mdp, seed)
        p("")
        p(f"wrote {out}")
    p(f"({time.perf_counter() - t0:.1f} s)")
    return {n: c[1] for n, c in comps.items()}


def _vec(x: torch.Tensor) -> str:
    return "[" + ", ".join(f"{float(v):.4f}" for v in x.reshape(-1)) + "]"


LABEL = {
    "reinforce_gamma_t": r"REINFORCE, $\Psi_t=\gamma^t G_t$ (post)",
    "reinforce": r"REINFORCE without $\gamma^t$, $\Psi_t=G_t$",
    "baseline": r"baseline, $\gamma^t (G_t - V^\pi(s_t))$",
    "q_critic": r"Q critic, $\gamma^t Q^\pi(s_t,a_t)$",
    "advantage": r"advantage, $\gamma^t A^\pi(s_t,a_t)$",
    "gae": r"GAE($\lambda$) with exact $V^\pi$",
    "action_baseline": r"control: $\gamma^t (G_t - Q^\pi(s_t,a_t))$",
    "off_policy": r"$\rho\, Q^\pi(s,a)\, \nabla\ln\pi$, $\rho=\pi/\beta$",
    "off_policy_no_is": r"control: $\rho$ dropped",
    "off_policy_trunc": r"$\min(\rho, 1)$, no bias correction",
    "dpg": r"$\Sigma_t\, \gamma^t \nabla_a Q^\mu(s_t, a)\, \nabla_K \mu_K(s_t)$",
    "dpg_stale_critic": r"control: $Q$ of $K^*$ (stale critic)",
}


def _plot(on: dict, off: dict, dpg: dict, grad: torch.Tensor, off_exact: torch.Tensor, dpg_exact: torch.Tensor,
          out: Path, mdp, seed: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from pgrad.theory import estimators as E

    fig, axes = plt.subplots(1, 3, figsize=(17, 7.2))
    panels = [
        (axes[0], on, grad, ("On-policy estimators vs exact $\\nabla J(\\theta)$\n"
                            f"tabular MDP: {mdp.S} states, {mdp.A} actions, $\\gamma$={mdp.gamma}, seed {seed}"),
         "episodes"),
        (axes[1], off, off_exact, ("Off-policy estimators vs the exact off-policy gradient\n"
                                  "$s \\sim d^\\beta$, $a \\sim \\beta$, exact $Q^\\pi$"), "transitions"),
        (axes[2], dpg, dpg_exact, ("DPG on the LQR vs exact $\\nabla_K J$\n"
                                  "exact $Q^\\mu$ as the critic"), "start states"),
    ]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, group, exact, title, unit in panels:
        for i, (name, smp) in enumerate(group.items()):
            n_max = smp.shape[0]
            ns = sorted({int(x) for x in np.geomspace(10, n_max // 5, 30)})
            err = E.block_rms_error(smp, exact, ns)
            c = colors[i % len(colors)]
            biased = name in CONTROL
            tag = ("   [biased for ∇J]" if name == "reinforce" else "   [biased]") if biased else ""
            ax.loglog(ns, err, "--" if biased else "-", color=c, lw=1.8 if biased else 2.2, label=LABEL[name] + tag)
            tr_cov = float(smp.reshape(n_max, -1).var(0).sum())
            ax.loglog(ns, [np.sqrt(tr_cov / n) for n in ns], ":", color=c, lw=1.0, alpha=0.8)
        ax.set_title(title, fontsize=11)
        ax.set_xlabel(f"number of {unit} n")
        ax.set_ylabel("RMS of $\\|$mean of n samples $-$ exact$\\|_2$")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)
    fig.suptitle("Estimation error vs number of samples (one gradient sample per episode, through pgrad's losses).\n"
                 "Unbiased: falls as $1/\\sqrt{n}$ (dotted: $\\sqrt{\\mathrm{tr\\,Cov}/n}$). "
                 "Biased: levels off at the bias.", fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str]) -> int:
    p = _Parser(prog="pgrad theory",
                description="Check every policy-gradient estimator of the post against exact gradients.")
    p.add_argument("--seed", type=int, default=0, help="seed of the MDP, the policy and the samples")
    p.add_argument("--states", type=int, default=5, help="number of states S")
    p.add_argument("--actions", type=int, default=3, help="number of actions A")
    p.add_argument("--gamma", type=float, default=0.9, help="discount γ")
    p.add_argument("--lam", type=float, default=0.9, help="GAE λ")
    p.add_argument("--episodes", type=int, default=20_000, help="episodes sampled (one gradient sample each)")
    p.add_argument("--z", type=float, default=4.0, help="unbiased if every component is within z standard errors")
    p.add_argument("-o", "--output", default="theory.png", help="PNG of error vs number of episodes ('' for none)")
    p.add_argument("--detail", action="store_true", help="also print every component of every estimator")
    args = p.parse_args(argv)
    if args.states < 1 or args.actions < 2:
        raise ConfigError("--states must be at least 1 and --actions at least 2")
    if not 0.0 < args.gamma < 1.0:
        raise ConfigError("--gamma must be in (0, 1)")
    if not 0.0 <= args.lam <= 1.0:
        raise ConfigError("--lam must be in [0, 1]")
    if args.episodes < 100:
        raise ConfigError("--episodes must be at least 100 for meaningful standard errors")
    torch.set_num_threads(1)
    run(args.seed, args.states, args.actions, args.gamma, args.episodes, args.z, args.output or None, args.detail,
        args.lam)
    return 0


COMMANDS["theory"] = ("check every estimator against exact gradients (tabular MDP, LQR)", main)
