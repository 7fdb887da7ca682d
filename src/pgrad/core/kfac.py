"""K-FAC: Kronecker-factored approximate curvature for nn.Linear layers (Martens & Grosse, 2015), as used by
ACKTR (post: ACKTR; Wu et al., 2017).

For a Linear layer y = W ā with ā = [a; 1] (the bias folded in as a last input column, W of shape [out, in+1]),
the layer's block of the Fisher matrix in column-major vec(W) order is approximated by a Kronecker product

    F_W = E[(ā āᵀ) ⊗ (g gᵀ)] ≈ A ⊗ G,   A = E[ā āᵀ] [in+1, in+1],   G = E[g gᵀ] [out, out],

g = ∂(-ln p(y|x))/∂y the gradient at the layer's output of a *sampled* Fisher loss: targets drawn from the
model's own predictive distribution (the actor's ã ~ π(.|s); the critic's ỹ ~ N(V(s), 1)). Then
(A ⊗ G) vec(X) = vec(G X A), so the natural gradient of the layer is G^{-1} ∇_W A^{-1}: with the
eigendecompositions A = Q_A diag(d_A) Q_Aᵀ, G = Q_G diag(d_G) Q_Gᵀ and damping λ,

    (A ⊗ G + λ I)^{-1} vec(∇_W) = vec(Q_G [(Q_Gᵀ ∇_W Q_A) / (d_G d_Aᵀ + λ)] Q_Aᵀ)     (kfac_precondition)

Practicalities (DESIGN.md section 3): A and G are running averages with decay ``stat_decay`` (the first batch
initialises them, so there is no start-up bias toward zero); they are decomposed every ``eigen_every`` steps
in float64 (the factors are often ill-conditioned), and a refresh whose factors are not finite is skipped (the
previous decomposition is kept). The step is rescaled by the trust region of ACKTR (the KL clip):

    Δ = F̂^{-1} ∇ (per layer; identity for parameters outside Linear layers),
    ν = min(1, sqrt(δ / (η² ∇ᵀ Δ))),   θ ← θ - η ν Δ   (through heavy-ball momentum μ with step η (1 - μ)),

so that the quadratic model of the change, (ην Δ)ᵀ F̂ (ην Δ), is at most δ = ``kl_clip``.

Usage, per update:
    with kfac.track():                  # forwards under this record each layer's input and output
        dist, v = pi(obs), v_net(obs)
    kfac.update_stats(fisher_loss)      # running A, G from the sampled Fisher loss (a batch mean)
    kfac.zero_grad(); loss.backward(); kfac.step()
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


def kfac_precondition(grad: torch.Tensor, QA: torch.Tensor, dA: torch.Tensor, QG: torch.Tensor,
                      dG: torch.Tensor, damping: float) -> torch.Tensor:
    """(A ⊗ G + λI)^{-1} vec(grad) reshaped like grad [out, in+1], from A = QA diag(dA) QAᵀ, G = QG diag(dG) QGᵀ."""
    v1 = QG.T @ grad @ QA
    v2 = v1 / (dG.unsqueeze(1) * dA.unsqueeze(0) + damping)
    return QG @ v2 @ QA.T


def layer_factors(a: torch.Tensor, g: torch.Tensor, bias: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch's A = E[ā āᵀ] and G = E[g gᵀ] from inputs a [B, in] and output gradients g [B, out].

    ``g`` is the gradient of the *mean* Fisher loss over the batch (each row carries a factor 1/B), so it is
    rescaled by B: G = Σ_i (B g_i)(B g_i)ᵀ / B.
    """
    B = a.shape[0]
    if bias:
        a = torch.cat([a, torch.ones_like(a[:, :1])], 1)
    A = a.T @ a / B
    G = (g.T @ g) * B
    return A, G


class KFAC(torch.optim.Optimizer):
    """Natural-gradient steps with K-FAC preconditioning of every nn.Linear layer of ``model`` and a KL clip.

    Parameters outside Linear layers (a Gaussian policy's log σ) take the plain gradient inside the same KL clip.
    """

    def __init__(self, model: nn.Module, lr: float = 0.25, momentum: float = 0.9, stat_decay: float = 0.99,
                 damping: float = 1e-2, kl_clip: float = 1e-3, stats_every: int = 1, eigen_every: int = 10):
        params = [p for p in model.parameters() if p.requires_grad]
        super().__init__(params, dict(lr=lr, momentum=momentum))
        self.stat_decay, self.damping, self.kl_clip = stat_decay, damping, kl_clip
        self.stats_every, self.eigen_every = stats_every, eigen_every
        self.layers: list[nn.Linear] = [m for m in model.modules() if isinstance(m, nn.Linear)
                                        and m.weight.requires_grad]
        self.steps = 0
        self.skipped_refreshes = 0
        self._tracking = False
        self._cache: dict[nn.Linear, tuple[torch.Tensor, torch.Tensor]] = {}
        self._handles = [m.register_forward_hook(self._record) for m in self.layers]

    # ------------------------------------------------------------------ statistics
    def _record(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if self._tracking and torch.is_grad_enabled():
            self._cache[module] = (inputs[0].detach(), output)

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Forwards run inside record the Linear layers' inputs and outputs for ``update_stats``."""
        self._cache.clear()
        self._tracking = True
        try:
            yield
        finally:
            self._tracking = False

    def stats_due(self) -> bool:
        return self.steps % self.stats_every == 0

    @torch.no_grad()
    def _accumulate(self, layer: nn.Linear, A: torch.Tensor, G: torch.Tensor) -> None:
        st = self.state[layer.weight]
        if "A" not in st:
            st["A"], st["G"] = A.clone(), G.clone()
        else:
            st["A"].lerp_(A, 1.0 - self.stat_decay)
            st["G"].lerp_(G, 1.0 - self.stat_decay)

    def update_stats(self, fisher_loss: torch.Tensor) -> None:
        """Fold one batch's factors into the running A and G (when due), from the layers recorded by ``track``.

        ``fisher_loss`` is the batch mean of -ln p(ỹ|x) with ỹ sampled from the model; its gradients reach only
        the recorded layer outputs here (parameters' .grad are untouched).
        """
        if not self.stats_due() or not self._cache:
            return
        layers = [m for m in self.layers if m in self._cache]
        outs = [self._cache[m][1] for m in layers]
        grads = torch.autograd.grad(fisher_loss, outs, retain_graph=True, allow_unused=True)
        for m, g in zip(layers, grads):
            if g is None:
                continue
            a = self._cache[m][0]
            A, G = layer_factors(a.reshape(-1, a.shape[-1]), g.reshape(-1, g.shape[-1]), m.bias is not None)
            self._accumulate(m, A, G)

    @torch.no_grad()
    def refresh_eigen(self) -> None:
        """Eigendecompose every layer's A and G in float64; skip a layer whose factors are not finite."""
        for m in self.layers:
            st = self.state[m.weight]
            if "A" not in st:
                continue
            A, G = st["A"].double(), st["G"].double()
            if not (bool(torch.isfinite(A).all()) and bool(torch.isfinite(G).all())):
                self.skipped_refreshes += 1
                continue
            dA, QA = torch.linalg.eigh(A)
            dG, QG = torch.linalg.eigh(G)
            dt = m.weight.dtype
            # the factors are PSD; clamp rounding noise below zero
            st["dA"], st["QA"] = dA.clamp_min(0).to(dt), QA.to(dt)
            st["dG"], st["QG"] = dG.clamp_min(0).to(dt), QG.to(dt)

    # ------------------------------------------------------------------ the step
    @torch.no_grad()
    def precondition(self) -> dict[torch.Tensor, torch.Tensor]:
        """Δ for every parameter with a gradient: K-FAC for Linear layers with factors, identity otherwise."""
        out: dict[torch.Tensor, torch.Tensor] = {}
        for m in self.layers:
            st = self.state[m.weight]
            if "QA" not in st or m.weight.grad is None:
                continue
            has_b = m.bias is not None and m.bias.grad is not None
            grad = torch.cat([m.weight.grad, m.bias.grad.unsqueeze(1)], 1) if has_b else m.weight.grad
            if not has_b and st["QA"].shape[0] != grad.shape[1]:
                continue
            pre = kfac_precondition(grad, st["QA"], st["dA"], st["QG"], st["dG"], self.damping)
            out[m.weight] = pre[:, : m.weight.shape[1]]
            if has_b:
                out[m.bias] = pre[:, -1]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p not in out:
                    out[p] = p.grad
        return out

    @torch.no_grad()
    def step(self, closure: Any = None) -> torch.Tensor:  # type: ignore[override]
        """Precondition, clip to the trust region, take a momentum step. Returns ν (detached)."""
        if self.steps % self.eigen_every == 0:
            self.refresh_eigen()
        pre = self.precondition()
        lr = self.param_groups[0]["lr"]
        vg = sum((pre[p] * p.grad).sum() for p in pre) if pre else torch.zeros(())
        nu = torch.clamp(torch.sqrt(self.kl_clip / (vg * lr * lr).clamp_min(1e-20)), max=1.0)
        for group in self.param_groups:
            lr_g, mu = group["lr"], group["momentum"]
            for p in group["params"]:
                if p not in pre:
                    continue
                d = pre[p] * nu
                st = self.state[p]
                if mu > 0:
                    buf = st.get("momentum_buffer")
                    if buf is None:
                        buf = st["momentum_buffer"] = d.clone()
                    else:
                        buf.mul_(mu).add_(d)
                    d = buf
                p.add_(d, alpha=-lr_g * (1.0 - mu))
        self.steps += 1
        return nu

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        d = super().state_dict()
        d["kfac"] = {"steps": self.steps, "skipped_refreshes": self.skipped_refreshes}
        return d

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        d = dict(state_dict)
        k = d.pop("kfac", {"steps": 0, "skipped_refreshes": 0})
        super().load_state_dict(d)
        self.steps, self.skipped_refreshes = k["steps"], k["skipped_refreshes"]
