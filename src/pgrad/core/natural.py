"""Natural-gradient machinery for TRPO: flat gradients, Fisher-vector products, conjugate gradient, line search.

TRPO (post: TRPO; Schulman et al., 2015) maximises the surrogate J(θ) = E[π_θ(a|s)/π_θold(a|s) Â] subject to
E_s[D_KL(π_θold(.|s) || π_θ(.|s))] <= δ. Approximating the objective to first order (gradient g) and the
constraint to second order gives the step

    s = F^{-1} g  (conjugate gradient on Fisher-vector products),   θ ← θ_old + β s,  β = sqrt(2δ / sᵀ F s),

where F = ∇²_θ KL at θ = θ_old is the Fisher information matrix of the policy. Because the quadratic model is
only a model, a backtracking line search then shrinks β until the surrogate really improves and the mean KL
really is within δ (Appendix C of the paper).

Vectors are flat: one float tensor [P] over the concatenation of the parameters, in ``params`` order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def flat_grad(y: torch.Tensor, params: Sequence[torch.Tensor], retain_graph: bool = False,
              create_graph: bool = False) -> torch.Tensor:
    """∇_θ y as one flat vector [P]; parameters y does not depend on contribute zeros.

    ``create_graph`` (for a second derivative) also keeps the graph of y.
    """
    grads = torch.autograd.grad(y, list(params), retain_graph=retain_graph or create_graph,
                                create_graph=create_graph, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)])


def flat_params(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The parameters concatenated into one detached vector [P] (a copy)."""
    return torch.cat([p.detach().reshape(-1) for p in params])


@torch.no_grad()
def set_flat_params_(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Write a flat vector [P] back into the parameters, in place."""
    i = 0
    for p in params:
        n = p.numel()
        p.copy_(flat[i:i + n].view_as(p))
        i += n


def fisher_vector_product(kl: torch.Tensor, params: Sequence[torch.Tensor],
                          damping: float = 0.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """v ↦ (F + damping·I) v with F = ∇²_θ KL, by double backpropagation (Pearlmutter's trick).

    ``kl`` is the mean D_KL(π_θold || π_θ) over the batch, built with θ_old detached and evaluated at θ = θ_old:
    its gradient there is zero and its Hessian is the Fisher information matrix E_s[∇ ln π ∇ ln πᵀ].
    The gradient ∇_θ KL is built once with ``create_graph``; each product is then one more backward pass of
    (∇_θ KL)ᵀ v, so F is never formed. ``damping`` (TRPO's cg_damping) keeps F positive definite for CG.
    """
    params = list(params)
    g = flat_grad(kl, params, create_graph=True)

    def fvp(v: torch.Tensor) -> torch.Tensor:
        return flat_grad((g * v.detach()).sum(), params, retain_graph=True) + damping * v

    return fvp


def conjugate_gradient(Avp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int = 10,
                       residual_tol: float = 1e-10) -> torch.Tensor:
    """Approximately solve A x = b for a symmetric positive definite A given only products v ↦ A v.

    Hestenes-Stiefel CG from x = 0: at most ``iters`` products; stops early once ‖r‖² < residual_tol.
    After P iterations (P = len(b)) the solution is exact up to rounding.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r.dot(r)
    for _ in range(iters):
        if float(rr) < residual_tol:
            break
        Ap = Avp(p)
        alpha = rr / p.dot(Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = r.dot(r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


@torch.no_grad()
def backtracking_line_search(params: Sequence[torch.Tensor], full_step: torch.Tensor,
                             evaluate: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                             surrogate_old: torch.Tensor, max_kl: float, shrink: float = 0.8,
                             max_iter: int = 10) -> tuple[bool, int, torch.Tensor, torch.Tensor]:
    """Try θ_old + shrink^i · full_step for i = 0, 1, ...; keep the first step whose surrogate improves on
    ``surrogate_old`` and whose mean KL is at most δ = ``max_kl``.

    ``evaluate()`` returns (surrogate J(θ), mean D_KL(π_θold || π_θ)) at the parameters as currently set.
    If no step is accepted within ``max_iter`` tries the parameters are restored to θ_old.
    Returns (accepted, tries used, surrogate, kl) at the parameters finally kept (kl = 0 when restored).
    """
    params = list(params)
    old = flat_params(params)
    frac = 1.0
    for i in range(max_iter):
        set_flat_params_(params, old + frac * full_step)
        surr, kl = evaluate()
        if bool(torch.isfinite(kl)) and float(kl) <= max_kl and float(surr) > float(surrogate_old):
            return True, i + 1, surr.detach(), kl.detach()
        frac *= shrink
    set_flat_params_(params, old)
    return False, max_iter, surrogate_old.detach(), torch.zeros((), device=old.device)


def natural_step_size(step_dir: torch.Tensor, Fs: torch.Tensor, max_kl: float) -> torch.Tensor:
    """β = sqrt(2δ / sᵀ F s): the largest multiple of s that keeps the quadratic KL model ½ βs ᵀF βs at δ."""
    return torch.sqrt(2.0 * max_kl / step_dir.dot(Fs).clamp_min(1e-12))
