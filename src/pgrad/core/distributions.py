"""Action distributions: Categorical, MultiCategorical (MultiDiscrete actions), Bernoulli (MultiBinary actions),
DiagGaussian, TanhGaussian, and exploration noise for deterministic policies.

Small, argument-check-free classes (torch.distributions validates on every call, which costs more than the
maths for the batch sizes of classic control). Each is checked against torch.distributions in the unit tests.
All log-probabilities and entropies are summed over the action dimension: shapes are [...] for a batch [...].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)
LOG_2 = math.log(2.0)


class Categorical:
    """π(a|s) = softmax(logits)_a over A discrete actions."""

    def __init__(self, logits: torch.Tensor):
        self.logits = torch.log_softmax(logits, -1)  # normalised log-probabilities

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.exp()

    def sample(self) -> torch.Tensor:
        # Gumbel-max trick: argmax(log p + G), G ~ Gumbel(0, 1), is a draw from p.
        g = torch.rand_like(self.logits).clamp_(1e-20, 1.0).log_().neg_().log_()  # -G, in place
        return (self.logits - g).argmax(-1)

    def log_prob(self, a: torch.Tensor) -> torch.Tensor:
        a = a if a.dtype == torch.long else a.long()
        return self.logits.gather(-1, a.unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.probs * self.logits).sum(-1)

    def mode(self) -> torch.Tensor:
        return self.logits.argmax(-1)

    def kl(self, other: Categorical) -> torch.Tensor:
        """D_KL(self || other) per state."""
        return (self.probs * (self.logits - other.logits)).sum(-1)


class MultiCategorical:
    """π(a|s) = Π_i softmax(logits_i)_{a_i}: k independent categoricals (a MultiDiscrete action a = (a_1..a_k),
    component i with nvec[i] choices). log π and the entropy are sums over the components.

    ``logits`` [..., Σ nvec] (each component's block in turn) are laid out once as [..., k, max(nvec)], the blocks
    of fewer choices padded with a large negative logit (probability 0, an exact 0 in the entropy and the KL), so
    that sampling, log-probabilities and entropies are one batched Categorical.
    """

    PAD = -1e9  # finite: 0 * PAD is 0 where -inf would give nan

    def __init__(self, logits: torch.Tensor, nvec: tuple[int, ...] | None = None):
        """``logits`` [..., Σ nvec] with ``nvec``, or already laid out as [..., k, max(nvec)] (nvec None)."""
        self.cat = Categorical(logits if nvec is None else _pad_blocks(logits, tuple(nvec)))

    @property
    def logits(self) -> torch.Tensor:
        """Normalised log-probabilities [..., k, max(nvec)] (padding: about -1e9)."""
        return self.cat.logits

    def sample(self) -> torch.Tensor:
        return self.cat.sample()

    def log_prob(self, a: torch.Tensor) -> torch.Tensor:
        return self.cat.log_prob(a).sum(-1)

    def entropy(self) -> torch.Tensor:
        return self.cat.entropy().sum(-1)

    def mode(self) -> torch.Tensor:
        return self.cat.mode()

    def kl(self, other: MultiCategorical) -> torch.Tensor:
        """D_KL(self || other) per state: the sum of the components' KLs (they are independent)."""
        return self.cat.kl(other.cat).sum(-1)

    def detach(self) -> MultiCategorical:
        return MultiCategorical(self.logits.detach())


def _pad_blocks(logits: torch.Tensor, nvec: tuple[int, ...]) -> torch.Tensor:
    """[..., Σ nvec] -> [..., k, max(nvec)], short blocks padded with MultiCategorical.PAD."""
    k, m = len(nvec), max(nvec)
    if all(n == m for n in nvec):
        return logits.reshape(*logits.shape[:-1], k, m)
    idx, valid = [], []
    start = 0
    for n in nvec:
        idx += [start + j if j < n else 0 for j in range(m)]
        valid += [j < n for j in range(m)]
        start += n
    idx_t = torch.tensor(idx, device=logits.device)
    valid_t = torch.tensor(valid, device=logits.device)
    padded = logits.index_select(-1, idx_t).masked_fill(~valid_t, MultiCategorical.PAD)
    return padded.reshape(*logits.shape[:-1], k, m)


class Bernoulli:
    """π(a|s) = Π_i p_i^{a_i} (1 - p_i)^{1 - a_i}, p = sigmoid(logits): k independent Bernoullis (a MultiBinary
    action a ∈ {0, 1}^k). log π and the entropy are sums over the components; actions are long 0/1."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits

    @property
    def probs(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    def sample(self) -> torch.Tensor:
        with torch.no_grad():
            return (torch.rand_like(self.logits) < self.probs).long()

    def log_prob(self, a: torch.Tensor) -> torch.Tensor:
        # log p = -softplus(-l), log(1 - p) = -softplus(l): stable for large |l|
        a = a.to(self.logits.dtype)
        return -(a * F.softplus(-self.logits) + (1.0 - a) * F.softplus(self.logits)).sum(-1)

    def entropy(self) -> torch.Tensor:
        p = self.probs
        return (p * F.softplus(-self.logits) + (1.0 - p) * F.softplus(self.logits)).sum(-1)

    def mode(self) -> torch.Tensor:
        return (self.logits > 0).long()

    def kl(self, other: Bernoulli) -> torch.Tensor:
        """D_KL(self || other) per state, summed over the components."""
        p = self.probs
        log_p, log_1mp = -F.softplus(-self.logits), -F.softplus(self.logits)
        log_q, log_1mq = -F.softplus(-other.logits), -F.softplus(other.logits)
        return (p * (log_p - log_q) + (1.0 - p) * (log_1mp - log_1mq)).sum(-1)

    def detach(self) -> Bernoulli:
        return Bernoulli(self.logits.detach())


class DiagGaussian:
    """π(a|s) = N(mean, diag(exp(log_std))^2)."""

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor):
        self.mean = mean
        self.log_std = log_std.expand_as(mean)

    @property
    def std(self) -> torch.Tensor:
        return self.log_std.exp()

    def sample(self) -> torch.Tensor:
        with torch.no_grad():
            return self.mean + self.std * torch.randn_like(self.mean)

    def rsample(self) -> torch.Tensor:
        return self.mean + self.std * torch.randn_like(self.mean)

    def log_prob(self, a: torch.Tensor) -> torch.Tensor:
        z = (a - self.mean) / self.std
        return (-0.5 * z.pow(2) - self.log_std - 0.5 * LOG_2PI).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (0.5 + 0.5 * LOG_2PI + self.log_std).sum(-1)

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self, other: DiagGaussian) -> torch.Tensor:
        """D_KL(self || other) per state."""
        var_ratio = (self.log_std - other.log_std).mul(2).exp()
        t = (self.mean - other.mean).pow(2) / other.std.pow(2)
        return 0.5 * (var_ratio + t - 1.0 - var_ratio.log()).sum(-1)


class TanhGaussian:
    """a = tanh(u), u ~ N(mean, std^2): a policy with actions in (-1, 1) (SAC).

    Change of variables: log π(a|s) = log N(u) - Σ_i log(1 - tanh(u_i)^2), computed in the stable form
    log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)). Actions rescaled to [low, high] by a = c + s tanh(u)
    have log-density lower by Σ_i log s_i (``scale_log_prob``).
    """

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor):
        self.base = DiagGaussian(mean, log_std)

    def rsample_with_log_prob(self) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.base.rsample()
        return torch.tanh(u), self._log_prob_u(u)

    def sample(self) -> torch.Tensor:
        with torch.no_grad():
            return torch.tanh(self.base.sample())

    def _log_prob_u(self, u: torch.Tensor) -> torch.Tensor:
        log_det = 2.0 * (LOG_2 - u - F.softplus(-2.0 * u))
        return self.base.log_prob(u) - log_det.sum(-1)

    def log_prob(self, a: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        u = torch.atanh(a.clamp(-1.0 + eps, 1.0 - eps))
        return self._log_prob_u(u)

    def mode(self) -> torch.Tensor:
        return torch.tanh(self.base.mean)


def scale_log_prob(log_prob: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """log-density of c + s a given that of a, with s = (high - low) / 2."""
    return log_prob - torch.log((high - low) / 2.0).sum(-1)


# ----------------------------------------------------------------------------- exploration noise (DPG family)
class GaussianNoise:
    """μ'(s) = μ(s) + N(0, σ^2) per step, independent across steps."""

    def __init__(self, shape: tuple[int, ...], sigma: float):
        self.shape, self.sigma = shape, sigma

    def __call__(self) -> torch.Tensor:
        return self.sigma * torch.randn(self.shape)

    def reset(self, mask: torch.Tensor | None = None) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, d: dict) -> None:
        pass


class OUNoise:
    """Ornstein-Uhlenbeck process x ← x + θ(0 - x)dt + σ sqrt(dt) ε (DDPG paper: θ = 0.15, σ = 0.2)."""

    def __init__(self, shape: tuple[int, ...], sigma: float = 0.2, theta: float = 0.15, dt: float = 1e-2):
        self.shape, self.sigma, self.theta, self.dt = shape, sigma, theta, dt
        self.x = torch.zeros(shape)

    def __call__(self) -> torch.Tensor:
        self.x = self.x - self.theta * self.x * self.dt + self.sigma * math.sqrt(self.dt) * torch.randn(self.shape)
        return self.x

    def reset(self, mask: torch.Tensor | None = None) -> None:
        """Restart the process for the envs whose episode ended (all when mask is None)."""
        if mask is None:
            self.x.zero_()
        else:
            self.x[mask] = 0.0

    def state_dict(self) -> dict:
        return {"x": self.x.clone()}

    def load_state_dict(self, d: dict) -> None:
        self.x = d["x"].clone()
