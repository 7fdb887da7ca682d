"""PURE losses. Each returns a scalar to *minimise*: the negative of the post's objective where it maximises.

Shapes: per-sample tensors [B] (or [T, N], flattened or not: every loss averages over all elements).
"""

from __future__ import annotations

import torch


def policy_gradient_loss(logp: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """-E[Ψ_t ∇_θ ln π_θ(a_t|s_t)] as a surrogate: its gradient is the post's policy gradient.

    The general form of the post's Fig. 1 (Schulman et al., 2016): Ψ = G_t (REINFORCE), G_t - V(s_t)
    (REINFORCE with baseline), Q_w(s, a) (action-value actor-critic), Â_t (A2C/A3C). Ψ is treated as a constant.
    """
    return -(psi.detach() * logp).mean()


def off_policy_pg_loss(logp: torch.Tensor, beta_logp: torch.Tensor, q: torch.Tensor,
                       rho_max: float | None = None) -> torch.Tensor:
    """-E_β[π_θ(a|s)/β(a|s) Q^π(s, a) ∇_θ ln π_θ(a|s)] (post: off-policy policy gradient).

    The importance weight ρ = π/β is a constant of the gradient (Degris et al., 2012); ``rho_max`` truncates it.
    """
    rho = (logp.detach() - beta_logp).exp()
    if rho_max is not None:
        rho = rho.clamp(max=rho_max)
    return -(rho * q.detach() * logp).mean()


def value_loss(v: torch.Tensor, target: torch.Tensor, v_old: torch.Tensor | None = None,
               clip_eps: float | None = None) -> torch.Tensor:
    """E[(V_w(s) - V_target)^2] (post: A3C's J_v(w) = (G_t - V_w(s))^2, PPO's c1 term).

    With ``v_old`` and ``clip_eps``: PPO's clipped value loss max((V - T)^2, (V_old + clip(V - V_old) - T)^2).
    """
    target = target.detach()
    if v_old is None or clip_eps is None:
        return (v - target).pow(2).mean()
    v_clipped = v_old + (v - v_old).clamp(-clip_eps, clip_eps)
    return torch.max((v - target).pow(2), (v_clipped - target).pow(2)).mean()


def clipped_surrogate(logp: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor,
                      clip_eps: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """-J^CLIP(θ) = -E[min(r(θ) Â, clip(r(θ), 1-ε, 1+ε) Â)], r(θ) = π_θ(a|s) / π_θold(a|s) (post: PPO).

    Returns the loss and detached diagnostics: clip fraction and the approximate KL E[(r - 1) - ln r].
    """
    log_ratio = logp - logp_old.detach()
    ratio = log_ratio.exp()
    adv = adv.detach()
    surr = torch.min(ratio * adv, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv)
    with torch.no_grad():
        stats = {
            "clip_frac": ((ratio - 1.0).abs() > clip_eps).float().mean(),
            "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
        }
    return -surr.mean(), stats


def entropy_loss(entropy: torch.Tensor) -> torch.Tensor:
    """-E[H(π_θ(·|s))]: adding c2 times this to a loss is the post's entropy bonus c2 H(s, π_θ(.))."""
    return -entropy.mean()


def actor_critic_loss(logp: torch.Tensor, v: torch.Tensor, ret: torch.Tensor, entropy: torch.Tensor,
                      vf_coef: float, ent_coef: float, norm_adv: bool = False
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The A3C/A2C loss (post: A3C; Mnih et al., 2016): -E[ln π_θ(a|s) (R - V_w(s))] + c_v (R - V_w(s))^2
    - c2 H(π_θ(·|s)), with the advantage R - V a constant of the policy gradient.

    logp, v, ret, entropy: [B] (or [T, N]); ``norm_adv`` standardises R - V over the batch. An ``ent_coef`` of 0
    adds no entropy term (it would add exact zeros). Returns the loss and its detached parts.
    """
    adv = ret - v.detach()
    if norm_adv and adv.numel() > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg_loss = policy_gradient_loss(logp, adv)
    v_loss = value_loss(v, ret)
    loss = pg_loss + vf_coef * v_loss
    if ent_coef:
        loss = loss + ent_coef * entropy_loss(entropy)
    return loss, {"loss/policy": pg_loss.detach(), "loss/value": v_loss.detach(), "entropy": entropy.mean().detach()}


# ----------------------------------------------------------------------------- SAC (post: Soft Actor-Critic)
def _twin_min(q: torch.Tensor) -> torch.Tensor:
    """min over the critic axis of [K, B] (K >= 1); a [B] tensor passes through."""
    return q.min(0).values if q.dim() > 1 else q


def soft_v_target(q_pi: torch.Tensor, logp: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """Soft state value V(s) = E_{a~π}[Q(s, a) - α log π(a|s)] (post: SAC, soft V), one fresh ã ~ π per state.

    q_pi: [K, B] twin critics at (s, ã) (the minimum over K is taken: Haarnoja et al. 2018, Sec. 5) or [B];
    logp: [B] log π(ã|s); returns [B], detached: it is a regression target (J_V(ψ)).
    """
    return (_twin_min(q_pi) - alpha * logp).detach()


def soft_q_target(r: torch.Tensor, discount: torch.Tensor, v_next: torch.Tensor) -> torch.Tensor:
    """Soft Bellman target y = r + γ (1 - terminated) V(s') (post: SAC, J_Q(w)); [B], detached.

    ``discount`` is γ^n (1 - terminated) from the replay buffer (0 where the episode terminated, γ where it was
    truncated). V(s') is V_ψ̄(s') (version 2018) or ``soft_v_target`` of the target critics at ã' ~ π(·|s')
    (version auto: min_k Q_w̄k(s', ã') - α log π(ã'|s')).
    """
    return (r + discount * v_next).detach()


def soft_q_loss(q: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """J_Q(w) = Σ_k E[½ (Q_wk(s, a) - y)^2] (post: SAC), summed over the K critics of q [K, B] (or q [B])."""
    y = y.detach()
    if q.dim() == 1:
        return 0.5 * (q - y).pow(2).mean()
    return 0.5 * (q - y.unsqueeze(0)).pow(2).mean(1).sum()


def soft_v_loss(v: torch.Tensor, v_target: torch.Tensor) -> torch.Tensor:
    """J_V(ψ) = E_s[½ (V_ψ(s) - V_target(s))^2] (post: SAC), v and v_target [B] (the target from soft_v_target)."""
    return 0.5 * (v - v_target.detach()).pow(2).mean()


def sac_policy_loss(logp: torch.Tensor, q_pi: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """J_π(θ) = E_s[α log π_θ(ã|s) - min_k Q_wk(s, ã)], ã = f_θ(ε; s) reparameterised (post: SAC, J_π(θ)).

    This is the post's D_KL(π_θ(·|s) || exp(Q(s, ·)/α) / Z(s)) times α, less the constant log Z. logp: [B]
    (carries the gradient through ã and through log π), q_pi: [K, B] or [B] (gradient through ã only: the
    caller evaluates the critics with detached parameters), alpha: detached temperature.
    """
    return (alpha * logp - _twin_min(q_pi)).mean()


def temperature_loss(log_alpha: torch.Tensor, logp: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """J(α) = E_{a~π}[-α log π(a|s) - α H̄] (Haarnoja et al. 2018b, eq. 18), optimised in log α.

    Minimised with respect to log α as -E[log α (log π(a|s) + H̄)]: the same sign of gradient as J(α), so α grows
    when the entropy -E[log π] is below the target H̄ and shrinks when above. logp: [B], treated as a constant.
    """
    return -(log_alpha * (logp.detach() + target_entropy)).mean()


# ----------------------------------------------------------------------------- DPG family (post: DPG, DDPG, TD3, D4PG)
def dpg_actor_loss(q_mu: torch.Tensor) -> torch.Tensor:
    """-E_s[Q_w(s, μ_θ(s))] (post: DPG). Its gradient is the deterministic policy gradient theorem's
    -E_s[∇_a Q_w(s, a)|_{a=μ_θ(s)} ∇_θ μ_θ(s)]: q_mu [B] must be computed from a = μ_θ(s) with the gradient
    flowing through a (take gradients with respect to θ only, so the critic's weights are not touched).
    For a distributional critic pass its mean E[Z_w(s, μ_θ(s))] (post: D4PG, ``categorical_mean``).
    """
    return -q_mu.mean()


def smoothed_target_action(mu_next: torch.Tensor, sigma: float, noise_clip: float, low: float = -1.0,
                           high: float = 1.0) -> torch.Tensor:
    """TD3 target policy smoothing: ã = clip(μ_θ'(s') + clip(ε, -c, c), low, high), ε ~ N(0, σ²)
    (Fujimoto et al., 2018, eq. 15). mu_next: [B, A] target actor at s'. σ = 0 returns μ_θ'(s') (DDPG)."""
    if sigma == 0.0:
        return mu_next
    eps = (torch.randn_like(mu_next) * sigma).clamp(-noise_clip, noise_clip)
    return (mu_next + eps).clamp(low, high)


def clipped_double_q_target(r: torch.Tensor, discount: torch.Tensor, q_next: torch.Tensor) -> torch.Tensor:
    """y = r + γ^n (1 - terminated) min_k Q_w'k(s', ã) (TD3's clipped double Q, Fujimoto et al., 2018, eq. 10).

    r: [B] (n-step) rewards, discount: [B] γ^n (1 - terminated) from the replay buffer, q_next: [K, B] target
    critics at (s', ã) or [B]. With one critic (K = 1) and ã = μ_θ'(s') this is DDPG's target
    y = r + γ Q_w'(s', μ_θ'(s')) (post: DDPG). Detached: it is a regression target.
    """
    q_min = q_next.min(0).values if q_next.dim() > 1 else q_next
    return (r + discount * q_min).detach()


def q_regression_loss(q: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Σ_k E[w (Q_wk(s, a) - y)²]: the critics' TD loss (post: DDPG's critic, the DQN loss), summed over the K
    critics of q [K, B] (or q [B]); ``weights`` [B] are prioritised replay's importance weights (1 if None)."""
    y = y.detach()
    se = (q - y).pow(2)
    if weights is not None:
        se = se * weights
    return se.mean(-1).sum() if q.dim() > 1 else se.mean()


def categorical_mean(logits: torch.Tensor, atoms: torch.Tensor) -> torch.Tensor:
    """Q_w(s, a) = E[Z_w(s, a)] = Σ_i softmax(logits)_i z_i (post: D4PG); logits [B, M], atoms [M] -> [B]."""
    return (torch.softmax(logits, -1) * atoms).sum(-1)


def categorical_projection(r: torch.Tensor, discount: torch.Tensor, probs_next: torch.Tensor,
                           atoms: torch.Tensor) -> torch.Tensor:
    """Φ T Z: the distributional Bellman target r + γ^n Z_w'(s', μ'(s')) projected onto the fixed support
    (Bellemare et al., 2017, Alg. 1; post: D4PG's 𝒯_{μ_θ} Z_w').

    r: [B], discount: [B] γ^n (1 - terminated), probs_next: [B, M] target probabilities of the atoms
    z_0 < ... < z_{M-1} (evenly spaced from v_min to v_max) at s'. Each shifted atom Tz_j = r + γ^n z_j,
    clipped to [v_min, v_max], at fractional position b_j = (Tz_j - v_min) / Δz, gives its mass p_j to the
    atoms ⌊b_j⌋ and ⌊b_j⌋ + 1 in proportions 1 - (b_j - ⌊b_j⌋) and b_j - ⌊b_j⌋: the two shares sum to
    p_j, so every row of the result sums to Σ_j p_j (probability mass preserved, including when b_j is an
    integer, where the naive floor/ceil split drops the mass). Returns [B, M], detached.
    """
    M = atoms.shape[0]
    v_min, v_max = atoms[0], atoms[-1]
    dz = (v_max - v_min) / (M - 1)
    tz = (r.unsqueeze(-1) + discount.unsqueeze(-1) * atoms).clamp(v_min, v_max)
    b = (tz - v_min) / dz
    lo = b.floor().clamp(0, M - 2)
    frac = b - lo  # in [0, 1]; 1 only at b = M - 1
    lo = lo.long()
    p = probs_next.detach()
    m = torch.zeros_like(p)
    m.scatter_add_(-1, lo, p * (1.0 - frac))
    m.scatter_add_(-1, lo + 1, p * frac)
    return m


def categorical_loss(logits: torch.Tensor, target_probs: torch.Tensor,
                     weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """D4PG's distributional TD error d(Φ𝒯Z_w', Z_w) as the cross-entropy -Σ_i m_i log p_i(s, a) (post: D4PG's
    L(w); equal to the KL divergence up to the target's entropy, a constant of w).

    logits: [B, M] of Z_w(s, a), target_probs: [B, M] from ``categorical_projection``, weights: [B] importance
    weights of prioritised replay (the post's (R p_i)^-1) or None. Returns the scalar loss E[w · CE] and the
    per-sample cross-entropy [B] (detached). Priorities are ``categorical_kl``: the CE keeps the target's entropy.
    """
    ce = -(target_probs.detach() * torch.log_softmax(logits, -1)).sum(-1)
    loss = (ce * weights).mean() if weights is not None else ce.mean()
    return loss, ce.detach()


def categorical_kl(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """D_KL(Φ𝒯Z_w' ‖ Z_w(s, a)) = Σ_i m_i (log m_i - log p_i(s, a)) per sample (0 log 0 = 0): the cross-entropy of
    ``categorical_loss`` less the target's entropy H(m), so 0 where the critic matches its target. D4PG's priorities:
    Rainbow's rule for a distributional critic ("prioritize transitions by the KL loss, since this is what the
    algorithm is minimizing", Hessel et al., 2018). H(m) measures how spread the target is (up to ln 2 for one
    return split between two neighbouring atoms), not how wrong Z_w is, and would keep fitted samples' priority up.

    logits: [B, M] of Z_w(s, a), target_probs: [B, M] from ``categorical_projection``. Returns [B], detached.
    """
    m = target_probs.detach()
    return (torch.xlogy(m, m) - m * torch.log_softmax(logits.detach(), -1)).sum(-1)


def categorical_clipped_mass(r: torch.Tensor, discount: torch.Tensor, probs_next: torch.Tensor,
                             atoms: torch.Tensor) -> torch.Tensor:
    """Σ_j p_j 1[r + γ^n z_j ∉ [v_min, v_max]]: the share of the target's mass that ``categorical_projection``
    clips onto the edge atoms z_0 and z_{M-1} (arguments as there). Near 0 when the support covers the returns;
    near 1 when it is too narrow, so that Q_w saturates at an edge and ∇_a Q_w, the actor's gradient, vanishes.
    Returns [B], detached.
    """
    tz = r.unsqueeze(-1) + discount.unsqueeze(-1) * atoms
    outside = (tz < atoms[0]) | (tz > atoms[-1])
    return (probs_next.detach() * outside).sum(-1)


def acer_policy_loss(log_pi: torch.Tensor, actions: torch.Tensor, beta_probs: torch.Tensor, q_ret: torch.Tensor,
                     q: torch.Tensor, v: torch.Tensor, c: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """-ĝ^acer as a surrogate: truncated importance weights plus the bias correction (post: ACER; Wang et al.,
    2017, eq. 9 of the paper), for A discrete actions.

        ĝ_t = min(c, ω_t) (Q^ret_t - V(s_t)) ∇ ln π(a_t|s_t)
              + E_{a ~ π}[max(0, (ω_t(a) - c) / ω_t(a)) (Q(s_t, a) - V(s_t)) ∇ ln π(a|s_t)],
        ω_t(a) = π(a|s_t) / β(a|s_t),  ω_t = ω_t(a_t).

    Shapes: ``log_pi`` [B, A] log π_θ(.|s) (differentiable), ``actions`` [B], ``beta_probs`` [B, A] the
    behaviour probabilities stored with the data, ``q_ret`` [B], ``q`` [B, A] the critic Q_w(s, .), ``v`` [B]
    V_w(s) = Σ_a π(a|s) Q_w(s, a). Everything but ``log_pi`` is a constant of the gradient (ω, the max(0, .)
    weights and π in the expectation included). Returns the batch mean and detached diagnostics.
    With ``c = inf`` the correction vanishes and the first term is plain importance weighting.
    """
    pi = log_pi.detach().exp()
    omega_all = pi / beta_probs.clamp_min(1e-12)
    a = actions.long().unsqueeze(-1)
    omega = omega_all.gather(-1, a).squeeze(-1)
    adv_ret = (q_ret - v).detach()
    truncated_term = omega.clamp(max=c) * adv_ret * log_pi.gather(-1, a).squeeze(-1)
    corr_w = (1.0 - c / omega_all.clamp_min(1e-12)).clamp_min(0.0) * pi
    correction = (corr_w * (q - v.unsqueeze(-1)).detach() * log_pi).sum(-1)
    with torch.no_grad():
        stats = {"rho_mean": omega.mean(), "truncated_frac": (omega > c).float().mean()}
    return -(truncated_term + correction).mean(), stats


def trust_region_projection(g: torch.Tensor, k: torch.Tensor, delta: float) -> torch.Tensor:
    """ACER's efficient trust region (Wang et al., 2017, eq. 12): per sample, the solution of

        min_z ½ ‖ĝ - z‖²  subject to  kᵀ z <= δ,    z* = ĝ - max(0, (kᵀĝ - δ) / ‖k‖²) k,

    where ĝ [B, D] is the gradient of the objective with respect to the policy's statistics φ(s) and
    k [B, D] = ∇_φ D_KL(π_avg(.|s) || π_φ(.|s)) the gradient of the KL to the averaged policy: the linearised
    KL change kᵀz stays within δ. Rows with k = 0 are returned unchanged.
    """
    kk = (k * k).sum(-1, keepdim=True)
    scale = (((k * g).sum(-1, keepdim=True) - delta) / kk.clamp_min(1e-12)).clamp_min(0.0)
    return g - torch.where(kk > 0, scale, torch.zeros_like(scale)) * k
