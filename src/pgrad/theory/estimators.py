"""Sample policy gradients computed by pgrad's own losses, and the statistics that compare them with exact ones.

Every sample gradient here is autograd through a ``pgrad.core.losses`` function on ``pgrad.core.returns``
estimates, exactly as the algorithms use them; nothing re-implements an estimator. One sample per episode
(or per transition): the logits table θ is replicated once per episode, so one backward pass of the batch loss
gives every episode's own gradient (the loss is a mean over T·N elements, hence the factor T·N).

On-policy estimators (post: REINFORCE, Actor-Critic, Fig. 1's general form, Ψ_t in each):

    name                 Ψ_t                                 unbiased for
    reinforce_gamma_t    γ^t G_t  (the post's update)        ∇J(θ)
    reinforce            G_t      (most implementations)     Σ_s η(s) Σ_a ∇π Q^π  (undiscounted state weighting)
    baseline             γ^t (G_t - V^π(s_t))                ∇J(θ), lower variance than reinforce_gamma_t
    q_critic             γ^t Q^π(s_t, a_t)                   ∇J(θ)
    advantage            γ^t A^π(s_t, a_t)                   ∇J(θ)
    gae                  γ^t Â_t^{GAE(γ, λ)} with exact V^π  ∇J(θ) (for every λ, because V is exact)
    action_baseline      γ^t (G_t - Q^π(s_t, a_t))            nothing: negative control (a "baseline" that
                                                             depends on the action removes the signal; mean 0)

Off-policy (post: Off-Policy Policy Gradient), transitions s ~ d̄^β, a ~ β(·|s), exact Q^π:

    off_policy           ρ Q^π(s, a) ∇ ln π(a|s), ρ = π/β    Σ_s d̄^β(s) Σ_a ∇π(a|s) Q^π(s, a)
    off_policy_no_is     ρ replaced by 1                      biased: negative control
    off_policy_trunc     min(ρ, 1) Q^π ∇ ln π                 biased without ACER's correction term

DPG on the LQR (post: DPG): per start state s_0, Σ_t γ^t ∇_K Q^μ(s_t, μ_K(s_t)) through
``core.losses.dpg_actor_loss``: unbiased for the exact ∇_K of the return, -LQR.grad(K).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pgrad.core import losses, returns
from pgrad.theory.tabular import DT, Episodes, TabularMDP, Transitions, softmax_policy

ON_POLICY = ("reinforce_gamma_t", "reinforce", "baseline", "q_critic", "advantage", "gae", "action_baseline")
OFF_POLICY = ("off_policy", "off_policy_no_is", "off_policy_trunc")


# ----------------------------------------------------------------------------- per-sample gradients
def _replicated(theta: torch.Tensor, n: int) -> torch.Tensor:
    return theta.detach().to(DT).expand(n, *theta.shape).clone().requires_grad_()


def per_episode_pg(theta: torch.Tensor, ep: Episodes, psi: torch.Tensor) -> torch.Tensor:
    """Σ_t Ψ_t ∇_θ ln π_θ(a_t|s_t) for each episode [N, S, A], by autograd through ``policy_gradient_loss``."""
    T, N = ep.states.shape
    th = _replicated(theta, N)
    idx = torch.arange(N).expand(T, N)
    logp = torch.log_softmax(th, -1)[idx, ep.states, ep.actions]  # [T, N]
    psi = psi.masked_fill(~ep.mask, 0.0)
    loss = losses.policy_gradient_loss(logp, psi)  # -mean over T·N of Ψ ln π
    (g,) = torch.autograd.grad(loss, th)
    return -g * (T * N)


def episode_psi(mdp: TabularMDP, theta: torch.Tensor, ep: Episodes, name: str, lam: float = 0.9) -> torch.Tensor:
    """Ψ_t [T, N] of the on-policy estimator ``name`` (table in the module docstring), from core.returns."""
    pi = softmax_policy(theta.detach().to(DT))
    v, q = mdp.v(pi), mdp.q(pi)
    g = mdp.gamma
    G = returns.discounted_returns(ep.rewards, ep.done, g)  # G_t to the episode's end
    disc = g ** torch.arange(ep.states.shape[0], dtype=DT).unsqueeze(1)  # γ^t
    q_sa = q[ep.states, ep.actions]
    if name == "reinforce_gamma_t":
        return disc * G
    if name == "reinforce":
        return G
    if name == "baseline":
        return disc * (G - v[ep.states])
    if name == "q_critic":
        return disc * q_sa
    if name == "advantage":
        return disc * (q_sa - v[ep.states])
    if name == "gae":
        adv, _ = returns.gae(ep.rewards, v[ep.states], v[ep.next_states], ep.terminated, ep.truncated, g, lam)
        return disc * adv
    if name == "action_baseline":
        return disc * (G - q_sa)
    raise KeyError(f"unknown on-policy estimator {name!r}; choose from {ON_POLICY}")


def on_policy_target(mdp: TabularMDP, theta: torch.Tensor, name: str) -> torch.Tensor:
    """The exact gradient the estimator ``name`` is unbiased for (zero for the negative control)."""
    if name == "reinforce":
        return mdp.grad_undiscounted_weighting(theta)
    if name == "action_baseline":
        return torch.zeros_like(mdp.grad(theta))
    return mdp.grad(theta)


def per_transition_off_policy(theta: torch.Tensor, beta: torch.Tensor, tr: Transitions, q: torch.Tensor,
                              name: str = "off_policy") -> torch.Tensor:
    """ρ Q^π(s, a) ∇_θ ln π_θ(a|s) per transition [N, S, A], by autograd through ``off_policy_pg_loss``."""
    N = tr.states.shape[0]
    th = _replicated(theta, N)
    logp = torch.log_softmax(th, -1)[torch.arange(N), tr.states, tr.actions]
    beta_logp = beta.to(DT).log()[tr.states, tr.actions]
    q_sa = q[tr.states, tr.actions]
    if name == "off_policy":
        loss = losses.off_policy_pg_loss(logp, beta_logp, q_sa)
    elif name == "off_policy_no_is":
        loss = losses.off_policy_pg_loss(logp, logp.detach(), q_sa)  # ρ ≡ 1: pretends the data is on-policy
    elif name == "off_policy_trunc":
        loss = losses.off_policy_pg_loss(logp, beta_logp, q_sa, rho_max=1.0)
    else:
        raise KeyError(f"unknown off-policy estimator {name!r}; choose from {OFF_POLICY}")
    (g,) = torch.autograd.grad(loss, th)
    return -g * N


def lqr_dpg_samples(lqr, K: torch.Tensor, s0: torch.Tensor, steps: int = 200,
                    generator: torch.Generator | None = None, critic_K: torch.Tensor | None = None) -> torch.Tensor:
    """Σ_t γ^t ∇_K Q^μ(s_t, a)|_{a=μ_K(s_t)} per start state [N, m, n], through ``dpg_actor_loss``.

    States s_t follow μ_K from s0 (detached: the theorem differentiates through the action only); Q^μ is the exact
    LQR Q-function of the current K, held fixed (the critic). ``critic_K`` evaluates ∇_a Q of another policy's
    Q-function instead (a stale critic): biased, the negative control.
    """
    K = K.detach().to(DT)
    S = lqr.rollout(K, s0, steps, generator)  # [T, N, n]
    T, N, _ = S.shape
    Kb = _replicated(K, N)  # [N, m, n]
    a = -torch.einsum("nij,tnj->tni", Kb, S)  # μ_K(s_t) [T, N, m]
    disc = lqr.gamma ** torch.arange(T, dtype=DT).unsqueeze(1)
    q_mu = lqr.q(K if critic_K is None else critic_K, S.reshape(T * N, -1), a.reshape(T * N, -1)).reshape(T, N)
    loss = losses.dpg_actor_loss(disc * q_mu)  # -mean over T·N of γ^t Q(s_t, μ(s_t))
    (g,) = torch.autograd.grad(loss, Kb)
    return -g * (T * N)


# ----------------------------------------------------------------------------- statistics
@dataclass
class Comparison:
    """Sample mean of an estimator against an exact value, component by component."""

    name: str
    exact: torch.Tensor
    mean: torch.Tensor
    se: torch.Tensor  # standard error of the mean, per component
    total_var: float  # tr Cov of one sample (per episode / transition)
    n: int

    @property
    def z(self) -> torch.Tensor:
        """|mean - exact| / SE per component (components with SE = 0 must match to 1e-9)."""
        err = (self.mean - self.exact).abs()
        return torch.where(self.se > 0, err / self.se.clamp(min=1e-300), torch.where(err > 1e-9, torch.inf, 0.0))

    @property
    def max_z(self) -> float:
        return float(self.z.max())

    @property
    def bias_norm(self) -> float:
        return float((self.mean - self.exact).norm())

    def unbiased(self, z: float = 4.0) -> bool:
        """Every component within ``z`` standard errors of the exact value."""
        return self.max_z <= z

    def assert_unbiased(self, z: float = 4.0) -> None:
        if not self.unbiased(z):
            k = int(self.z.reshape(-1).argmax())
            raise AssertionError(
                f"{self.name}: component {k} is {self.max_z:.1f} standard errors from the exact value "
                f"(mean {float(self.mean.reshape(-1)[k]):.5f} ± {float(self.se.reshape(-1)[k]):.5f}, "
                f"exact {float(self.exact.reshape(-1)[k]):.5f}, n = {self.n})")

    def __str__(self) -> str:
        return (f"{self.name}: max z {self.max_z:.2f}, |bias| {self.bias_norm:.4f}, "
                f"mean SE {float(self.se.mean()):.4f}, tr Cov {self.total_var:.3f}, n {self.n}")


def compare(name: str, samples: torch.Tensor, exact: torch.Tensor) -> Comparison:
    """Compare i.i.d. samples [N, ...] of an estimator with an exact value [...]."""
    n = samples.shape[0]
    flat = samples.reshape(n, -1)
    mean = flat.mean(0)
    var = flat.var(0, unbiased=True)
    return Comparison(name, exact.reshape(-1).to(DT), mean, (var / n).sqrt(), float(var.sum()), n)


def variance_reduction(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Paired test that estimator ``b`` has lower total variance than ``a`` (same episodes).

    Returns (mean, SE) of d_i = ‖a_i - ā‖² - ‖b_i - b̄‖²: its mean is tr Cov(a) - tr Cov(b) (up to O(1/N)).
    """
    n = a.shape[0]
    da = (a.reshape(n, -1) - a.reshape(n, -1).mean(0)).pow(2).sum(1)
    db = (b.reshape(n, -1) - b.reshape(n, -1).mean(0)).pow(2).sum(1)
    d = da - db
    return float(d.mean()), float(d.std() / n ** 0.5)


def block_rms_error(samples: torch.Tensor, exact: torch.Tensor, ns: list[int]) -> list[float]:
    """Root-mean-square of ‖mean of n samples - exact‖ over the ⌊N/n⌋ disjoint blocks of n samples, per n.

    An estimate of E‖ĝ_n - g‖² ^ ½ = (‖bias‖² + tr Cov / n) ^ ½ (for the error-versus-episodes plot): it falls as
    1/√n for an unbiased estimator and levels off at ‖bias‖ for a biased one.
    """
    flat = samples.reshape(samples.shape[0], -1)
    ex = exact.reshape(-1).to(flat.dtype)
    out = []
    for n in ns:
        k = flat.shape[0] // n
        means = flat[: k * n].reshape(k, n, -1).mean(1)
        out.append(float((means - ex).pow(2).sum(1).mean().sqrt()))
    return out
