"""K-FAC: Kronecker-factored approximate curvature for nn.Linear layers (Martens & Grosse, 2015) and nn.Conv2d
layers (KFC: Grosse & Martens, 2016, "A Kronecker-factored approximate Fisher matrix for convolution layers"),
as used by ACKTR (post: ACKTR; Wu et al., 2017).

For a Linear layer y = W ā with ā = [a; 1] (the bias folded in as a last input column, W of shape [out, in+1]),
the layer's block of the Fisher matrix in column-major vec(W) order is approximated by a Kronecker product

    F_W = E[(ā āᵀ) ⊗ (g gᵀ)] ≈ A ⊗ G,   A = E[ā āᵀ] [in+1, in+1],   G = E[g gᵀ] [out, out],

g = ∂(-ln p(y|x))/∂y the gradient at the layer's output of a *sampled* Fisher loss: targets drawn from the
model's own predictive distribution (the actor's ã ~ π(.|s); the critic's ỹ ~ N(V(s), 1)). Then
(A ⊗ G) vec(X) = vec(G X A), so the natural gradient of the layer is G^{-1} ∇_W A^{-1}: with the
eigendecompositions A = Q_A diag(d_A) Q_Aᵀ, G = Q_G diag(d_G) Q_Gᵀ and damping λ,

    (A ⊗ G + λ I)^{-1} vec(∇_W) = vec(Q_G [(Q_Gᵀ ∇_W Q_A) / (d_G d_Aᵀ + λ)] Q_Aᵀ)     (kfac_precondition)

A Conv2d with groups = 1 (KFC) is the same with W viewed as [C_out, C_in·kh·kw (+1)]:
a sample's gradient is Σ_t Ds_t ā_tᵀ over the output positions t ∈ T, ā_t the input patch under the kernel
at t (plus a 1 for the bias), Ds_t the output gradient there. Assuming activations independent of
derivatives, spatial homogeneity and spatially uncorrelated derivatives (E[Ds_t Ds_t'ᵀ] = 0 for t ≠ t'),

    F_W = E[Σ_{t,t'} (ā_t ā_t'ᵀ) ⊗ (Ds_t Ds_t'ᵀ)] ≈ Ω ⊗ Γ,  Ω = E[Σ_t ā_t ā_tᵀ],  Γ = E[Σ_t Ds_t Ds_tᵀ] / |T|;

pgrad moves the |T| to keep A a mean over rows, as for Linear layers: over N samples and N·|T| patch rows,

    A = Ω / |T| = āᵀā / (N·|T|),   G = |T| Γ = E[Σ_t Ds_t Ds_tᵀ] = N Σ_{n,t} g gᵀ     (conv_factors)

(g = Ds / N from the batch-mean loss; G normalised by the N·|T| rows would be |T| times too large). With
``conv_rows``, A is the mean over that many patch rows drawn without replacement, unbiased for the full mean.

Practicalities (DESIGN.md section 3): A and G are running averages with decay ``stat_decay`` (the first batch
initialises them, so there is no start-up bias toward zero); they are decomposed every ``eigen_every`` steps
in float64 (the factors are often ill-conditioned), and a refresh whose factors are not finite is skipped (the
previous decomposition is kept). The step is rescaled by the trust region of ACKTR (the KL clip):

    Δ = F̂^{-1} ∇ (per layer; identity for parameters outside Linear and Conv2d layers),
    ν = min(1, sqrt(2δ / (η² ∇ᵀ Δ))),   θ ← θ - η ν Δ   (through heavy-ball momentum μ with step η (1 - μ)),

so that the quadratic model of the KL change, ½ (ην Δ)ᵀ F̂ (ην Δ), is at most δ = ``kl_clip``: Wu et al.
(2017), section 3.1, η_eff = min(η_max, sqrt(2δ / (Δθᵀ F̂ Δθ))). (The ACKTR code, baselines' kfac.py, drops
the 2: there (ην Δ)ᵀ F̂ (ην Δ) <= δ, a KL of δ/2; its kl_clip 0.001 equals δ = 0.0005 here.)

Usage, per update:
    with kfac.track():                  # forwards under this record each layer's input and output
        dist, v = pi(obs), v_net(obs)
    kfac.update_stats(fisher_loss)      # running A, G from the sampled Fisher loss (a batch mean)
    kfac.zero_grad(); loss.backward(); kfac.step()

A layer called more than once in the forwards under ``track`` contributes only its last call's statistics.
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


def _conv_windows(layer: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A strided view [N, H_out, W_out, C_in, kh, kw] of the (padded) input under the kernel, per position."""
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.stride, layer.dilation
    if isinstance(layer.padding, str):  # "valid" or "same" (any extra padding goes right/bottom, as conv2d's)
        tot = (0, 0) if layer.padding == "valid" else (dh * (kh - 1), dw * (kw - 1))
        pad = (tot[1] // 2, tot[1] - tot[1] // 2, tot[0] // 2, tot[0] - tot[0] // 2)
    else:
        ph, pw = layer.padding
        pad = (pw, pw, ph, ph)
    if any(pad):
        mode = "constant" if layer.padding_mode == "zeros" else layer.padding_mode
        x = nn.functional.pad(x, pad, mode=mode)
    # windows spanning d (k - 1) + 1 inputs, every d-th of them under the kernel
    win = x.unfold(2, dh * (kh - 1) + 1, sh).unfold(3, dw * (kw - 1) + 1, sw)[..., ::dh, ::dw]
    return win.permute(0, 2, 3, 1, 4, 5)


def conv_patches(layer: nn.Conv2d, x: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """The input patches ā_t of a Conv2d on x [N, C_in, H, W], one row per sample and output position t.

    Returns [R, C_in·kh·kw (+1)], columns ordered as ``layer.weight.reshape(C_out, -1)`` and F.unfold, with
    a last column of ones when the layer has a bias, so that the output at t is W ā_t. R = N·|T|, unless
    ``rows`` is smaller: then R = ``rows`` (sample, position) pairs drawn uniformly without replacement with
    torch's global RNG, whose mean of ā āᵀ is an unbiased estimate of the mean over all N·|T| rows.
    """
    win = _conv_windows(layer, x)
    N, Ho, Wo, C, kh, kw = win.shape
    D, n_rows = C * kh * kw, N * Ho * Wo
    if rows is not None and rows < n_rows:
        idx = torch.randperm(n_rows, device=x.device)[:rows]  # a device tensor: no host sync
        t = idx % (Ho * Wo)
        win = win[idx // (Ho * Wo), t // Wo, t % Wo]  # [rows, C, kh, kw], a copy of the chosen windows only
        n_rows = rows
    bias = layer.bias is not None
    out = torch.empty(n_rows, D + bias, dtype=x.dtype, device=x.device)
    out[:, :D].view(win.shape).copy_(win)  # one copy from the strided windows into the rows
    if bias:
        out[:, D] = 1.0
    return out


def conv_factors(layer: nn.Conv2d, x: torch.Tensor, g: torch.Tensor,
                 rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's KFC factors of a Conv2d: input x [N, C_in, H, W], output gradient g [N, C_out, H', W'].

    A = mean over samples and positions of ā_t ā_tᵀ (over ``rows`` random patch rows, see ``conv_patches``);
    G = E_sample[Σ_t Ds_t Ds_tᵀ] = N Σ_{n,t} g gᵀ, as ``g`` carries the 1/N of the batch-mean Fisher loss.
    Sums over positions in G and means in A, so that A ⊗ G = Ω ⊗ Γ of KFC (module docstring).
    """
    N = x.shape[0]
    a = conv_patches(layer, x, rows)
    A = a.T @ a / a.shape[0]
    g = g.permute(0, 2, 3, 1).reshape(-1, g.shape[1])  # [N·|T|, C_out]
    G = (g.T @ g) * N
    return A, G


# convolutions KFC as implemented here does not cover (Conv2d with groups > 1 is refused separately)
_OTHER_CONVS = (nn.Conv1d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


class KFAC(torch.optim.Optimizer):
    """Natural-gradient steps with K-FAC preconditioning of every nn.Linear and nn.Conv2d layer of ``model``
    and a KL clip.

    Parameters outside those layers (a Gaussian policy's log σ) take the plain gradient inside the same clip.
    Other trainable convolutions (grouped or depthwise Conv2d, Conv1d, Conv3d, transposed) are refused rather
    than silently left unpreconditioned. ``conv_rows``: when a Conv2d has more patch rows (samples × output
    positions) than this, its A statistic is the mean over that many rows drawn uniformly without
    replacement with torch's global RNG (seeded runs repeat): an unbiased estimate of the mean over all rows,
    for a fraction of the cost of unfolding them all. None uses every row.
    """

    def __init__(self, model: nn.Module, lr: float = 0.25, momentum: float = 0.9, stat_decay: float = 0.99,
                 damping: float = 1e-2, kl_clip: float = 1e-3, stats_every: int = 1, eigen_every: int = 10,
                 conv_rows: int | None = None):
        params = [p for p in model.parameters() if p.requires_grad]
        super().__init__(params, dict(lr=lr, momentum=momentum))
        self.stat_decay, self.damping, self.kl_clip = stat_decay, damping, kl_clip
        self.stats_every, self.eigen_every = stats_every, eigen_every
        if conv_rows is not None and conv_rows < 1:
            raise ValueError(f"KFAC: conv_rows must be a positive number of rows or None, got {conv_rows}")
        self.conv_rows = conv_rows
        self.layers: list[nn.Linear | nn.Conv2d] = []
        for name, m in model.named_modules():
            if not (isinstance(m, (nn.Linear, nn.Conv2d, *_OTHER_CONVS)) and m.weight.requires_grad):
                continue
            if isinstance(m, _OTHER_CONVS) or (isinstance(m, nn.Conv2d) and m.groups != 1):
                raise ValueError(f"KFAC: layer '{name}' ({m}) is not supported: K-FAC preconditions "
                                 "nn.Linear and nn.Conv2d with groups=1 only; freeze it or replace it")
            self.layers.append(m)
        self.steps = 0
        self.skipped_refreshes = 0
        self._tracking = False
        self._cache: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
        self._handles = [m.register_forward_hook(self._record) for m in self.layers]

    # ------------------------------------------------------------------ statistics
    def _record(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if self._tracking and torch.is_grad_enabled():
            self._cache[module] = (inputs[0].detach(), output)

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Forwards run inside record the layers' inputs and outputs for ``update_stats`` (last call wins)."""
        self._cache.clear()
        self._tracking = True
        try:
            yield
        finally:
            self._tracking = False

    def stats_due(self) -> bool:
        return self.steps % self.stats_every == 0

    @torch.no_grad()
    def _accumulate(self, layer: nn.Module, A: torch.Tensor, G: torch.Tensor) -> None:
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
            if isinstance(m, nn.Conv2d):
                if a.dim() == 3:  # an unbatched [C, H, W] call
                    a, g = a.unsqueeze(0), g.unsqueeze(0)
                A, G = conv_factors(m, a, g, self.conv_rows)
            else:
                a, g = a.reshape(-1, a.shape[-1]), g.reshape(-1, g.shape[-1])
                A, G = layer_factors(a, g, m.bias is not None)
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
        """Δ per parameter with a gradient: K-FAC for Linear and Conv2d layers with factors, else identity."""
        out: dict[torch.Tensor, torch.Tensor] = {}
        for m in self.layers:
            st = self.state[m.weight]
            if "QA" not in st or m.weight.grad is None:
                continue
            has_b = m.bias is not None and m.bias.grad is not None
            w_grad = m.weight.grad.reshape(m.weight.shape[0], -1)  # a conv's [C_out, C_in·kh·kw]
            grad = torch.cat([w_grad, m.bias.grad.unsqueeze(1)], 1) if has_b else w_grad
            if not has_b and st["QA"].shape[0] != grad.shape[1]:
                continue
            pre = kfac_precondition(grad, st["QA"], st["dA"], st["QG"], st["dG"], self.damping)
            out[m.weight] = pre[:, : w_grad.shape[1]].view_as(m.weight)
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
        # ν: the step s = ην Δ keeps ½ sᵀ F̂ s <= δ (Wu et al.'s 2δ)
        nu = torch.clamp(torch.sqrt(2.0 * self.kl_clip / (vg * lr * lr).clamp_min(1e-20)), max=1.0)
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
