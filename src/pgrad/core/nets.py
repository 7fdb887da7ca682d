"""Networks: MLPs with orthogonal initialisation, policy heads, value and action-value networks.

Every head maps a float tensor of features [B, in_dim] to its output: the observations themselves for flat
vectors, an encoder's output for images (core.encoders; ``Encoded`` puts an encoder in front of a head).
Distributions come from pgrad.core.distributions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import torch
from torch import nn

from pgrad.core.distributions import Bernoulli, Categorical, DiagGaussian, MultiCategorical, TanhGaussian
from pgrad.envs import EnvSpec

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}
Activation = Literal["tanh", "relu", "elu", "gelu"]  # the type of every Config.activation field


def init_linear(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def clip_grad_norm(params: Sequence[torch.Tensor] | Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale the gradients so that their global L2 norm is at most ``max_norm``; returns the norm before.

    The same operations, hence the same bits, as torch.nn.utils.clip_grad_norm_ with its defaults, for the common
    case of gradients of one device and dtype, without its per-call grouping (about a tenth of a small PPO
    update); other cases go to torch's function.
    """
    params = list(params)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or len({(g.device, g.dtype) for g in grads}) > 1:
        return nn.utils.clip_grad_norm_(params, max_norm)
    with torch.no_grad():
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
        torch._foreach_mul_(grads, torch.clamp(float(max_norm) / (total + 1e-6), max=1.0))
    return total


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: str = "tanh",
        out_gain: float = 1.0, hidden_gain: float = math.sqrt(2), inplace: bool = False) -> nn.Sequential:
    """in -> hidden[0] -> ... -> out, activation between layers, orthogonal init (gain sqrt 2 inside).

    ``inplace``: ReLU overwrites each Linear's fresh output (same values, one tensor fewer per layer); not for
    nets whose Linear outputs are read after the forward (K-FAC's hooks keep them).
    """
    act = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        relu_inplace = inplace and act is nn.ReLU
        layers += [init_linear(nn.Linear(d, h), hidden_gain), act(inplace=True) if relu_inplace else act()]
        d = h
    layers.append(init_linear(nn.Linear(d, out_dim), out_gain))
    return nn.Sequential(*layers)


class CategoricalPolicy(nn.Module):
    """π_θ(a|s) = softmax(f_θ(s))."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: Sequence[int], activation: str = "tanh"):
        super().__init__()
        self.logits = mlp(obs_dim, hidden, n_actions, activation, out_gain=0.01)

    def forward(self, obs: torch.Tensor) -> Categorical:
        return Categorical(self.logits(obs))


class MultiCategoricalPolicy(nn.Module):
    """π_θ(a|s) = Π_i softmax(f_θ(s)_i)_{a_i}: one MLP, a block of logits for each MultiDiscrete component."""

    def __init__(self, obs_dim: int, nvec: Sequence[int], hidden: Sequence[int], activation: str = "tanh"):
        super().__init__()
        self.nvec = tuple(int(n) for n in nvec)
        self.logits = mlp(obs_dim, hidden, sum(self.nvec), activation, out_gain=0.01)

    def forward(self, obs: torch.Tensor) -> MultiCategorical:
        return MultiCategorical(self.logits(obs), self.nvec)


class BernoulliPolicy(nn.Module):
    """π_θ(a|s) = Π_i Bernoulli(sigmoid(f_θ(s)_i)): one logit for each MultiBinary component."""

    def __init__(self, obs_dim: int, n: int, hidden: Sequence[int], activation: str = "tanh"):
        super().__init__()
        self.logits = mlp(obs_dim, hidden, n, activation, out_gain=0.01)

    def forward(self, obs: torch.Tensor) -> Bernoulli:
        return Bernoulli(self.logits(obs))


class GaussianPolicy(nn.Module):
    """π_θ(a|s) = N(f_θ(s), diag(σ)^2) with a state-independent learned log σ."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], activation: str = "tanh",
                 log_std_init: float = 0.0):
        super().__init__()
        self.mean = mlp(obs_dim, hidden, act_dim, activation, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))

    def forward(self, obs: torch.Tensor) -> DiagGaussian:
        return DiagGaussian(self.mean(obs), self.log_std)


def policy_net(spec: EnvSpec, hidden: Sequence[int], activation: str = "tanh",
               log_std_init: float = 0.0, in_dim: int | None = None) -> nn.Module:
    """The stochastic policy for the env's action space: Categorical (Discrete), DiagGaussian (Box),
    MultiCategorical (MultiDiscrete) or Bernoulli (MultiBinary), reading ``in_dim`` features (default: the
    observation width)."""
    d = spec.obs_dim if in_dim is None else in_dim
    if spec.action_kind == "discrete":
        return CategoricalPolicy(d, spec.n_actions, hidden, activation)
    if spec.action_kind == "multidiscrete":
        return MultiCategoricalPolicy(d, spec.act_nvec, hidden, activation)
    if spec.action_kind == "multibinary":
        return BernoulliPolicy(d, spec.n_actions, hidden, activation)
    return GaussianPolicy(d, spec.n_actions, hidden, activation, log_std_init)


class Encoded(nn.Module):
    """head(encoder(obs), *rest): a head with its own encoder in front (the algorithms whose heads do not share
    a trunk: REINFORCE, the actor-critics, TRPO, DDPG, TD3, D4PG, SAC). Targets copied from it copy both."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, obs: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(obs), *rest)


def encoded(encoder: nn.Module | None, head: nn.Module) -> nn.Module:
    """``head`` with ``encoder`` in front, or ``head`` itself when there is no encoder (flat vectors)."""
    return head if encoder is None else Encoded(encoder, head)


def in_width(spec: EnvSpec, encoder: nn.Module | None) -> int:
    """The feature width a head reads: the encoder's output, or the observation width."""
    return spec.obs_dim if encoder is None else int(encoder.out_dim)


def features_function(enc: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """A shared trunk as a function for acting: nothing at all for nn.Identity (flat vectors)."""
    return (lambda obs: obs) if isinstance(enc, nn.Identity) else enc


class ValueNet(nn.Module):
    """V_w(s)."""

    def __init__(self, obs_dim: int, hidden: Sequence[int], activation: str = "tanh"):
        super().__init__()
        self.v = mlp(obs_dim, hidden, 1, activation, out_gain=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.v(obs).squeeze(-1)


class QNet(nn.Module):
    """Q_w(s, a) for continuous actions: an MLP on the concatenation [s, a]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], activation: str = "relu"):
        super().__init__()
        self.q = mlp(obs_dim + act_dim, hidden, 1, activation, out_gain=1.0, inplace=True)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.q(torch.cat([obs, act], -1)).squeeze(-1)


class DiscreteQNet(nn.Module):
    """Q_w(s, ·) for discrete actions: one output per action."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: Sequence[int], activation: str = "relu"):
        super().__init__()
        self.q = mlp(obs_dim, hidden, n_actions, activation, out_gain=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q(obs)


class ActionBounds(nn.Module):
    """The env's Box bounds as buffers (saved with the networks): clip Gaussian samples or rescale [-1, 1]."""

    def __init__(self, spec: EnvSpec):
        super().__init__()
        box = spec.action_kind == "box"
        self.register_buffer("low", torch.as_tensor(spec.act_low if box else [], dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(spec.act_high if box else [], dtype=torch.float32))

    def clip(self, a: torch.Tensor) -> torch.Tensor:
        return torch.max(torch.min(a, self.high), self.low)

    def scale(self, a: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> [low, high]."""
        return self.low + (a + 1.0) * 0.5 * (self.high - self.low)

    def unscale(self, a: torch.Tensor) -> torch.Tensor:
        """[low, high] -> [-1, 1]."""
        return 2.0 * (a - self.low) / (self.high - self.low) - 1.0


class StackedMLP(nn.Module):
    """K MLPs of the same shape evaluated as one batched matmul per layer (twin critics, ensembles).

    Parameters are stacked: weight [K, in, out], bias [K, 1, out]. Input [B, in] is shared by all members,
    input [K, B, in] gives each member its own batch; output is [K, B, out]. Equal to K separate ``mlp``s
    with the same weights (tested), with one kernel per layer instead of K.
    """

    def __init__(self, k: int, in_dim: int, hidden: Sequence[int], out_dim: int, activation: str = "relu",
                 out_gain: float = 1.0, hidden_gain: float = math.sqrt(2)):
        super().__init__()
        self.k = k
        dims = [in_dim, *hidden, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            gain = out_gain if i == len(dims) - 2 else hidden_gain
            w = torch.empty(k, d_out, d_in)
            for j in range(k):
                nn.init.orthogonal_(w[j], gain)
            self.weights.append(nn.Parameter(w.transpose(1, 2).contiguous()))
            self.biases.append(nn.Parameter(torch.zeros(k, 1, d_out)))
        # ReLU in place on each layer's fresh baddbmm output: the same values without a new [K, B, out] tensor
        # per layer (about 6% of a SAC update); baddbmm's backward does not read its output
        self.act = nn.ReLU(inplace=True) if activation == "relu" else ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.k, -1, -1)
        n = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < n - 1:
                x = self.act(x)
        return x

    def member(self, j: int) -> nn.Sequential:
        """Member j as an ordinary (independent, copied) MLP."""
        layers: list[nn.Module] = []
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            lin = nn.Linear(w.shape[1], w.shape[2])
            with torch.no_grad():
                lin.weight.copy_(w[j].T)
                lin.bias.copy_(b[j, 0])
            layers.append(lin)
            if i < len(self.weights) - 1:
                layers.append(type(self.act)())
        return nn.Sequential(*layers)


class StackedQ(nn.Module):
    """K critics Q_{w_k}(s, a) in one StackedMLP: forward(obs [B, D], act [B, A]) -> [K, B]."""

    def __init__(self, k: int, obs_dim: int, act_dim: int, hidden: Sequence[int], activation: str = "relu"):
        super().__init__()
        self.net = StackedMLP(k, obs_dim + act_dim, hidden, 1, activation)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, act], -1)).squeeze(-1)


class TanhGaussianPolicy(nn.Module):
    """π_θ(a|s): a = tanh(u), u ~ N(f_μ(s), diag(exp(f_logσ(s)))^2), actions in (-1, 1) (SAC).

    One MLP outputs [mean, log σ] (state-dependent σ); log σ is clamped to [log_std_min, log_std_max] as in
    Haarnoja et al.'s code. forward(obs [B, D]) -> TanhGaussian over [B, A]; rescale to the env's bounds with
    ActionBounds.scale and correct the log-density with distributions.scale_log_prob.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], activation: str = "relu",
                 log_std_min: float = -20.0, log_std_max: float = 2.0):
        super().__init__()
        self.net = mlp(obs_dim, hidden, 2 * act_dim, activation, out_gain=0.01, inplace=True)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def forward(self, obs: torch.Tensor) -> TanhGaussian:
        mean, log_std = self.net(obs).chunk(2, -1)
        return TanhGaussian(mean, log_std.clamp(self.log_std_min, self.log_std_max))


# ----------------------------------------------------------------------------- deterministic policies (DPG family)
class DeterministicActor(nn.Module):
    """μ_θ(s) = tanh(f_θ(s)) ∈ (-1, 1)^A, rescaled to the env's bounds with ActionBounds.scale (DDPG, TD3, D4PG).

    ``batch_norm``: normalise each input feature over the minibatch first (BatchNorm1d; DDPG paper's answer to
    low-dimensional inputs in different physical units). Call .eval() before acting on single observations.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], activation: str = "relu",
                 batch_norm: bool = False):
        super().__init__()
        self.norm = nn.BatchNorm1d(obs_dim) if batch_norm else nn.Identity()
        self.mu = mlp(obs_dim, hidden, act_dim, activation, out_gain=0.01, inplace=True)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.mu(self.norm(obs)))


class CategoricalQ(nn.Module):
    """Z_w(s, a): logits of a categorical distribution over M fixed atoms (D4PG's distributional critic).

    forward(obs [B, D], act [B, A]) -> logits [B, M]; Q_w(s, a) = E[Z_w] is losses.categorical_mean.
    """

    def __init__(self, obs_dim: int, act_dim: int, n_atoms: int, hidden: Sequence[int], activation: str = "relu"):
        super().__init__()
        self.z = mlp(obs_dim + act_dim, hidden, n_atoms, activation, out_gain=0.01, inplace=True)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.z(torch.cat([obs, act], -1))


def stacked_members(net: StackedMLP, x: torch.Tensor, k: int) -> torch.Tensor:
    """The first k members of a StackedMLP only: [k, B, out] (TD3's actor loss needs Q_w1 alone, and this
    skips the other critics' forward and backward)."""
    if x.dim() == 2:
        x = x.unsqueeze(0).expand(k, -1, -1)
    n = len(net.weights)
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        x = torch.baddbmm(b[:k], x, w[:k])
        if i < n - 1:
            x = net.act(x)
    return x


def mlp_function(seq: nn.Sequential) -> Callable[[torch.Tensor], torch.Tensor]:
    """``seq`` (Linear layers and activations, as built by ``mlp``) as a plain function of the *same* parameters.

    It skips the nn.Module call machinery (hooks, per-module dispatch), which dominates the cost of the tiny
    batches of acting one vector-env step at a time: about half the time per call for a 64x64 MLP on CPU. It
    reads the live parameters, so it follows every optimiser step; layers it does not know are called as modules.
    """
    fns = {nn.Tanh: torch.tanh, nn.ReLU: torch.relu, nn.ELU: torch.nn.functional.elu,
           nn.GELU: torch.nn.functional.gelu}
    ops: list[Callable[[torch.Tensor], torch.Tensor]] = []
    for m in seq:
        if type(m) is nn.Linear:
            ops.append(lambda x, w=m.weight, b=m.bias: torch.nn.functional.linear(x, w, b))
        else:
            ops.append(fns.get(type(m), m))

    def forward(x: torch.Tensor) -> torch.Tensor:
        for op in ops:
            x = op(x)
        return x

    return forward


def policy_function(pi: nn.Module) -> Callable[[torch.Tensor], Categorical | DiagGaussian | TanhGaussian
                                                 | MultiCategorical | Bernoulli]:
    """obs -> π(.|s), the same distribution as ``pi(obs)`` for a CategoricalPolicy, MultiCategoricalPolicy,
    BernoulliPolicy, GaussianPolicy or TanhGaussianPolicy, computed through ``mlp_function`` (for acting one step at a time); other policies are
    returned as they are; an ``Encoded`` policy runs its encoder first."""
    if isinstance(pi, Encoded):
        head = policy_function(pi.head)
        return lambda obs: head(pi.encoder(obs))
    if isinstance(pi, CategoricalPolicy):
        f = mlp_function(pi.logits)
        return lambda obs: Categorical(f(obs))
    if isinstance(pi, MultiCategoricalPolicy):
        f, nvec = mlp_function(pi.logits), pi.nvec
        return lambda obs: MultiCategorical(f(obs), nvec)
    if isinstance(pi, BernoulliPolicy):
        f = mlp_function(pi.logits)
        return lambda obs: Bernoulli(f(obs))
    if isinstance(pi, GaussianPolicy):
        f = mlp_function(pi.mean)
        return lambda obs: DiagGaussian(f(obs), pi.log_std)
    if isinstance(pi, TanhGaussianPolicy):
        g = mlp_function(pi.net)

        def tanh_gaussian(obs: torch.Tensor) -> TanhGaussian:
            mean, log_std = g(obs).chunk(2, -1)
            return TanhGaussian(mean, log_std.clamp(pi.log_std_min, pi.log_std_max))

        return tanh_gaussian
    return pi
