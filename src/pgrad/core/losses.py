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
    """½ E[(V_w(s) - V_target)^2] (post: A3C's J_v(w), PPO's c1 term).

    With ``v_old`` and ``clip_eps``: PPO's clipped value loss max((V - T)^2, (V_old + clip(V - V_old) - T)^2).
    """
    target = target.detach()
    if v_old is None or clip_eps is None:
        return 0.5 * (v - target).pow(2).mean()
    v_clipped = v_old + (v - v_old).clamp(-clip_eps, clip_eps)
    return 0.5 * torch.max((v - target).pow(2), (v_clipped - target).pow(2)).mean()


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
