"""Small tabular MDPs where every quantity of the post is exact: J(θ), ∇J(θ), Q^π, V^π, d^π, d^β.

The MDP: S states, A actions, transition tensor ``P[s, a, s']`` that is *sub-stochastic*: with probability
``term[s, a] = 1 - Σ_s' P[s, a, s']`` the episode terminates after acting a in s (an absorbing state of value 0).
Rewards ``R[s, a]`` are deterministic, the start distribution is ``rho0[s]``, the discount γ.
Termination makes episodes finite, so Monte-Carlo estimators need no truncation, and the *undiscounted*
visitation η(s) = Σ_t Pr(s_t = s) is finite too, which is what makes "REINFORCE without γ^t" analysable.
The policy is a softmax over a logits table θ[S, A]: π_θ(a|s) = exp θ[s, a] / Σ_b exp θ[s, b].

Exact quantities (torch float64; ``pi`` is a [S, A] probability table, any policy, e.g. a behaviour β):

    v(pi), q(pi)           V^π = (I - γ P_π)^{-1} r_π,  Q^π(s, a) = R(s, a) + γ Σ_s' P(s'|s, a) V^π(s')
    visitation(pi, gamma)  d^π(s) = Σ_t γ^t Pr(s_t = s | s_0 ~ ρ_0, π)   (unnormalised; ``normalize=True``
                           divides by its sum, the post's "stationary distribution" of an episodic task);
                           gamma=1 gives η(s), the expected number of visits.
    J(theta)               J(θ) = Σ_s ρ_0(s) V^π(s); differentiable in θ (autograd through the linear solve).
    grad(theta)            the policy gradient theorem, ∇_θ J = Σ_s d^π(s) Σ_a ∇_θ π(a|s) Q^π(s, a); for the
                           softmax table, ∂J/∂θ[s, a] = d^π(s) π(a|s) A^π(s, a). Equal to autograd of J.
    grad_undiscounted_weighting(theta)
                           Σ_s η(s) Σ_a ∇π(a|s) Q^π(s, a): what REINFORCE *without* the γ^t factor estimates.
                           It is not ∇J (states late in an episode get weight 1 instead of γ^t).
    off_policy_grad(theta, beta)
                           the post's approximate off-policy gradient Σ_s d̄^β(s) Σ_a ∇π(a|s) Q^π(s, a), with
                           d̄^β the normalised discounted visitation of β (the red ∇Q term ignored).
    optimal_v(gamma), optimal_policy(gamma), optimal_return()
                           value iteration; ``optimal_return()`` is the best expected *undiscounted* episode return
                           from ρ_0 (the units of the Gymnasium env), ``optimal_J()`` the best discounted J.

Sampling (vectorised over episodes with torch, seeded with a ``torch.Generator``):

    sample_episodes(pi, n, generator)      n episodes from ρ_0, time-major [T, n] tensors (``Episodes``)
    sample_transitions(pi, n, generator, state_dist)
                                           n i.i.d. (s, a, r, s', terminated) with s ~ state_dist, a ~ pi(s)

``make_env()`` is the Gymnasium view: one-hot observations (Box [0, 1]^S), Discrete(A) actions, reward R(s, a),
``terminated`` on the termination event, ``truncated`` after ``max_episode_steps`` (1000 by default, reached with
negligible probability). Gymnasium id ``pgrad/TabularMDP-v0`` is ``TabularMDP()`` (8 states, 3 actions, seed 0).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import gymnasium as gym
import numpy as np
import torch

from pgrad.errors import PgradError

DT = torch.float64


class Episodes(NamedTuple):
    """A batch of episodes, time-major [T, N]; steps after an episode's end are padding (``mask`` False)."""

    states: torch.Tensor  # [T, N] long, s_t (0 on padding)
    actions: torch.Tensor  # [T, N] long, a_t
    rewards: torch.Tensor  # [T, N] float64, r_t = R(s_t, a_t) (0 on padding)
    next_states: torch.Tensor  # [T, N] long, s_{t+1} (the state itself where the episode terminated)
    terminated: torch.Tensor  # [T, N] bool, the episode terminated after step t
    truncated: torch.Tensor  # [T, N] bool, cut by max_steps after step t (only if T reached max_steps)
    mask: torch.Tensor  # [T, N] bool, step t is part of the episode

    @property
    def done(self) -> torch.Tensor:
        return self.terminated | self.truncated


class Transitions(NamedTuple):
    states: torch.Tensor  # [N] long
    actions: torch.Tensor  # [N] long
    rewards: torch.Tensor  # [N] float64
    next_states: torch.Tensor  # [N] long (meaningless where terminated)
    terminated: torch.Tensor  # [N] bool


def softmax_policy(theta: torch.Tensor) -> torch.Tensor:
    """π_θ(a|s) = softmax(θ[s, :])[a], [S, A] -> [S, A]."""
    return torch.softmax(theta, dim=-1)


def _as_pi(x: torch.Tensor) -> torch.Tensor:
    return x.to(DT)


def _categorical(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row of probs [N, K] (rows may sum to < 1: the remainder is index K), by inverse CDF."""
    u = torch.rand(probs.shape[0], 1, dtype=probs.dtype, generator=generator)
    cdf = probs.cumsum(-1)
    return (cdf <= u).sum(-1)


class TabularMDP:
    """A finite episodic MDP with exact policy evaluation and policy gradients (see the module docstring)."""

    def __init__(self, n_states: int = 8, n_actions: int = 3, gamma: float = 0.9, seed: int = 0, *,
                 P: Any = None, R: Any = None, rho0: Any = None, p_end: float | tuple[float, float] = 0.1,
                 concentration: float = 0.5, max_episode_steps: int = 1000):
        if not 0.0 < gamma <= 1.0:
            raise PgradError(f"TabularMDP needs 0 < gamma <= 1, got {gamma}")
        self.gamma, self.seed, self.max_episode_steps = float(gamma), int(seed), int(max_episode_steps)
        if P is None or R is None or rho0 is None:
            P_, R_, rho_ = self._draw(n_states, n_actions, seed, p_end, concentration)
            P = P_ if P is None else P
            R = R_ if R is None else R
            rho0 = rho_ if rho0 is None else rho0
        self.P = torch.as_tensor(np.asarray(P, np.float64)).clone()
        self.R = torch.as_tensor(np.asarray(R, np.float64)).clone()
        self.rho0 = torch.as_tensor(np.asarray(rho0, np.float64)).clone()
        S, A, S2 = self.P.shape
        if S2 != S or self.R.shape != (S, A) or self.rho0.shape != (S,):
            raise PgradError(f"TabularMDP: P must be [S, A, S], R [S, A], rho0 [S]; got {tuple(self.P.shape)}, "
                             f"{tuple(self.R.shape)}, {tuple(self.rho0.shape)}")
        self.term = 1.0 - self.P.sum(-1)
        if (self.P < 0).any() or (self.term < -1e-12).any() or abs(float(self.rho0.sum()) - 1) > 1e-9:
            raise PgradError("TabularMDP: P rows must be non-negative and sum to at most 1, rho0 to 1")
        self.term = self.term.clamp(min=0.0)
        self.S, self.A = S, A
        # cumulative tables for sampling: next state s' in 0..S-1, or S = terminate
        self._P_ext = torch.cat([self.P, self.term.unsqueeze(-1)], -1)

    @staticmethod
    def _draw(S: int, A: int, seed: int, p_end: float | tuple[float, float],
              concentration: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        lo, hi = (p_end, p_end) if isinstance(p_end, (int, float)) else p_end
        term = rng.uniform(lo, hi, (S, A))
        P = rng.dirichlet(np.full(S, concentration), (S, A)) * (1.0 - term)[..., None]
        R = rng.standard_normal((S, A))
        rho0 = rng.dirichlet(np.ones(S))
        return P, R, rho0

    # ------------------------------------------------------------------ policies
    def random_theta(self, generator: torch.Generator | None = None, scale: float = 1.0) -> torch.Tensor:
        """A logits table θ ~ N(0, scale²) [S, A]."""
        return scale * torch.randn(self.S, self.A, dtype=DT, generator=generator)

    @staticmethod
    def policy(theta: torch.Tensor) -> torch.Tensor:
        return softmax_policy(theta)

    # ------------------------------------------------------------------ exact evaluation
    def P_pi(self, pi: torch.Tensor) -> torch.Tensor:
        """State-to-state kernel under π, [S, S] (sub-stochastic)."""
        return torch.einsum("sa,sat->st", _as_pi(pi), self.P)

    def r_pi(self, pi: torch.Tensor) -> torch.Tensor:
        return (_as_pi(pi) * self.R).sum(-1)

    def _g(self, gamma: float | None) -> float:
        return self.gamma if gamma is None else float(gamma)

    def v(self, pi: torch.Tensor, gamma: float | None = None) -> torch.Tensor:
        """V^π [S] by a linear solve (differentiable in π)."""
        eye = torch.eye(self.S, dtype=DT)
        return torch.linalg.solve(eye - self._g(gamma) * self.P_pi(pi), self.r_pi(pi))

    def q(self, pi: torch.Tensor, gamma: float | None = None) -> torch.Tensor:
        """Q^π [S, A]."""
        return self.R + self._g(gamma) * self.P @ self.v(pi, gamma)

    def advantage(self, pi: torch.Tensor, gamma: float | None = None) -> torch.Tensor:
        q = self.q(pi, gamma)
        return q - (_as_pi(pi) * q).sum(-1, keepdim=True)

    def visitation(self, pi: torch.Tensor, gamma: float | None = None, normalize: bool = False) -> torch.Tensor:
        """d^π(s) = Σ_t γ^t Pr(s_t = s) from ρ_0 [S]; gamma=1 gives expected visit counts η(s)."""
        eye = torch.eye(self.S, dtype=DT)
        d = torch.linalg.solve((eye - self._g(gamma) * self.P_pi(pi)).T, self.rho0)
        return d / d.sum() if normalize else d

    def expected_length(self, pi: torch.Tensor) -> float:
        """E[episode length] = Σ_s η(s)."""
        return float(self.visitation(pi, 1.0).sum())

    def J(self, theta: torch.Tensor, gamma: float | None = None) -> torch.Tensor:
        """J(θ) = Σ_s ρ_0(s) V^{π_θ}(s) (0-d tensor, differentiable in θ)."""
        return self.rho0 @ self.v(softmax_policy(theta), gamma)

    def J_pi(self, pi: torch.Tensor, gamma: float | None = None) -> float:
        return float(self.rho0 @ self.v(pi, gamma))

    @staticmethod
    def _softmax_pg(pi: torch.Tensor, weight: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Σ_s w(s) Σ_a ∇_θ π(a|s) Q(s, a) for the softmax table: w(s) π(a|s) (Q(s, a) - Σ_b π(b|s) Q(s, b))."""
        return weight[:, None] * pi * (q - (pi * q).sum(-1, keepdim=True))

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        """∇_θ J(θ) [S, A] by the policy gradient theorem (discounted visitation d^π, no normalisation)."""
        pi = softmax_policy(theta.detach().to(DT))
        return self._softmax_pg(pi, self.visitation(pi), self.q(pi))

    def grad_autograd(self, theta: torch.Tensor) -> torch.Tensor:
        """∇_θ J(θ) by automatic differentiation through the linear solve (the cross-check of ``grad``)."""
        th = theta.detach().to(DT).clone().requires_grad_()
        (g,) = torch.autograd.grad(self.J(th), th)
        return g

    def grad_undiscounted_weighting(self, theta: torch.Tensor) -> torch.Tensor:
        """Σ_s η(s) Σ_a ∇π(a|s) Q^π(s, a), η the undiscounted visit counts: E[REINFORCE without γ^t]."""
        pi = softmax_policy(theta.detach().to(DT))
        return self._softmax_pg(pi, self.visitation(pi, 1.0), self.q(pi))

    def off_policy_grad(self, theta: torch.Tensor, beta: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """The post's off-policy gradient E_{s~d^β}[Σ_a ∇π(a|s) Q^π(s, a)], d^β discounted visitation of β."""
        pi = softmax_policy(theta.detach().to(DT))
        return self._softmax_pg(pi, self.visitation(beta, normalize=normalize), self.q(pi))

    # ------------------------------------------------------------------ optimal control
    def optimal_v(self, gamma: float | None = None, tol: float = 1e-12, max_iter: int = 100_000) -> torch.Tensor:
        """V* by value iteration (γ = 1 works too: every policy terminates when all term[s, a] > 0)."""
        g = self._g(gamma)
        if g >= 1.0 and float(self.term.min()) <= 0.0:
            raise PgradError("optimal_v(gamma=1) needs a termination probability > 0 for every (s, a)")
        V = torch.zeros(self.S, dtype=DT)
        for _ in range(max_iter):
            V_new = (self.R + g * self.P @ V).max(-1).values
            if (V_new - V).abs().max() < tol:
                return V_new
            V = V_new
        raise PgradError("value iteration did not converge")

    def optimal_policy(self, gamma: float | None = None) -> torch.Tensor:
        """A greedy optimal policy as a one-hot [S, A] table."""
        V = self.optimal_v(gamma)
        q = self.R + self._g(gamma) * self.P @ V
        return torch.nn.functional.one_hot(q.argmax(-1), self.A).to(DT)

    def optimal_J(self) -> float:
        """max_π J(π) (discounted, from ρ_0)."""
        return float(self.rho0 @ self.optimal_v())

    def optimal_return(self) -> float:
        """The best expected undiscounted episode return from ρ_0: the optimum in the Gymnasium env's units."""
        return float(self.rho0 @ self.optimal_v(1.0))

    # ------------------------------------------------------------------ sampling
    def sample_episodes(self, pi: torch.Tensor, n: int, generator: torch.Generator | None = None,
                        max_steps: int | None = None) -> Episodes:
        """n episodes of π from ρ_0 (vectorised). Runs until every episode has terminated or ``max_steps``.

        The default ``max_steps`` makes truncation happen with probability < 1e-10 per episode when every
        termination probability is positive (so the estimators' truncation bias is negligible).
        """
        pi = _as_pi(pi)
        if max_steps is None:
            pmin = float(self.term.min())
            max_steps = self.max_episode_steps if pmin <= 0 else min(
                self.max_episode_steps, math.ceil(math.log(1e-10) / math.log1p(-pmin)))
        S, A = self.S, self.A
        pi_cdf = pi.cumsum(-1)
        P_cdf = self._P_ext.cumsum(-1).reshape(S * A, S + 1)
        s = _categorical(self.rho0.expand(n, S), generator).clamp(max=S - 1)
        alive = torch.ones(n, dtype=torch.bool)
        zero = torch.zeros((), dtype=DT)
        cols: dict[str, list[torch.Tensor]] = {k: [] for k in ("s", "a", "r", "s2", "term", "mask")}
        for _ in range(max_steps):
            u = torch.rand(n, 2, dtype=DT, generator=generator)
            a = (pi_cdf[s] <= u[:, :1]).sum(-1).clamp_(max=A - 1)
            sa = s * A + a
            s2 = (P_cdf[sa] <= u[:, 1:]).sum(-1).clamp_(max=S)
            ended = s2 == S
            term = ended & alive
            r = torch.where(alive, self.R.reshape(-1)[sa], zero)
            s2 = torch.where(ended, s, s2)
            for k, x in zip(cols, (s, a, r, s2, term, alive)):
                cols[k].append(x)
            alive = alive & ~term
            s = s2
            if not alive.any():
                break
        st = {k: torch.stack(v) for k, v in cols.items()}
        mask = st["mask"]
        truncated = torch.zeros_like(mask)
        if alive.any():
            truncated[-1] = alive
        pad = ~mask
        return Episodes(st["s"].masked_fill(pad, 0), st["a"].masked_fill(pad, 0), st["r"],
                        st["s2"].masked_fill(pad, 0), st["term"], truncated, mask)

    def sample_transitions(self, pi: torch.Tensor, n: int, generator: torch.Generator | None = None,
                           state_dist: torch.Tensor | None = None) -> Transitions:
        """n i.i.d. transitions: s ~ state_dist (default: the normalised discounted visitation of π), a ~ π(s)."""
        pi = _as_pi(pi)
        dist = self.visitation(pi, normalize=True) if state_dist is None else state_dist.to(DT)
        s = _categorical(dist.expand(n, self.S), generator).clamp(max=self.S - 1)
        a = _categorical(pi[s], generator).clamp(max=self.A - 1)
        s2 = _categorical(self._P_ext[s, a], generator).clamp(max=self.S)
        term = s2 == self.S
        return Transitions(s, a, self.R[s, a], torch.where(term, s, s2), term)

    def make_env(self) -> TabularEnv:
        return TabularEnv(mdp=self)

    def __repr__(self) -> str:
        return f"TabularMDP(n_states={self.S}, n_actions={self.A}, gamma={self.gamma}, seed={self.seed})"


class TabularEnv(gym.Env):
    """Gymnasium view of a TabularMDP: one-hot observations, Discrete actions, termination events.

    Keyword arguments other than ``mdp`` build a ``TabularMDP`` (``gym.make("pgrad/TabularMDP-v0", seed=2)``).
    """

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, mdp: TabularMDP | None = None, **mdp_kwargs: Any):
        self.mdp = mdp if mdp is not None else TabularMDP(**mdp_kwargs)
        m = self.mdp
        self._P_ext = m._P_ext.numpy()
        self._P_cdf = np.cumsum(self._P_ext, -1)
        self._R = m.R.numpy()
        self._rho_cdf = np.cumsum(m.rho0.numpy())
        self.observation_space = gym.spaces.Box(0.0, 1.0, (m.S,), np.float32)
        self.action_space = gym.spaces.Discrete(m.A)
        self.s, self.t = 0, 0

    def _obs(self) -> np.ndarray:
        o = np.zeros(self.mdp.S, np.float32)
        o[self.s] = 1.0
        return o

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.s = min(int(np.searchsorted(self._rho_cdf, self.np_random.random(), side="right")), self.mdp.S - 1)
        self.t = 0
        return self._obs(), {"state": self.s}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = int(action)
        r = float(self._R[self.s, a])
        nxt = min(int(np.searchsorted(self._P_cdf[self.s, a], self.np_random.random(), side="right")), self.mdp.S)
        self.t += 1
        terminated = nxt == self.mdp.S
        if not terminated:
            self.s = nxt
        truncated = (not terminated) and self.t >= self.mdp.max_episode_steps
        return self._obs(), r, terminated, truncated, {"state": self.s}
