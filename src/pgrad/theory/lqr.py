"""An exactly solvable continuous-control problem: the discounted linear-quadratic regulator (post: DPG).

Dynamics, cost and policy (n = state_dim, m = action_dim):

    s_{t+1} = A s_t + B a_t + w_t,        w_t ~ N(0, σ_w² I)  (σ_w = ``noise_std``, 0 by default)
    c(s, a) = s'Q s + a'R a,               reward r = -c(s_t, a_t)  (cost of the state acted in, and the action)
    s_0 ~ ρ_0 = Uniform[-c0, c0]^n,        Σ_0 = E[s_0 s_0'] = c0²/3 I  (c0 = ``init_scale``)
    μ_K(s) = -K s                          a linear deterministic policy, K: [m, n]

Everything below is exact (float64, torch, differentiable in K where it says so):

    cost(K)        J(K) = E_{ρ_0}[Σ_t γ^t c(s_t, μ_K(s_t))] = tr(P_K Σ_0) + γ/(1-γ) σ_w² tr(P_K)
                   where P_K solves the Lyapunov equation P = Q + K'RK + γ A_K' P A_K, A_K = A - BK.
                   +inf when K does not stabilise √γ A_K. Differentiable in K (autograd through the solve).
    grad(K)        ∇_K J(K) = 2 [(R + γ B'P_K B) K - γ B'P_K A] Σ_K  (Fazel et al., 2018, discounted form),
                   Σ_K = Σ_t γ^t E[s_t s_t'] solves Σ = Σ_0 + γ/(1-γ) σ_w² I + γ A_K Σ A_K'.
                   NB: J here is a *cost*. The post's objective is the return -J, whose gradient is -grad(K).
    optimal_K()    K* = γ (R + γB'PB)^{-1} B'PA with P the discounted Riccati solution (iterated to 1e-12).
    q_cost(K,s,a)  Q-cost of acting a in s then following μ_K: c(s,a) + γ E[V_K(As + Ba + w)],
                   V_K(s) = s'P_K s + γ/(1-γ) σ_w² tr(P_K). Differentiable in a (and K).
    q(K,s,a)       the post's Q^μ(s, a) = -q_cost(K, s, a) (expected discounted *return*); v(K, s) likewise.
    state_visitation(K)  Σ_K above (the second moment of the post's discounted state distribution ρ^μ).
    expected_return(K, horizon, discount=1.0)
                   exact E[Σ_{t<horizon} discount^t r_t] from ρ_0: the env's own units (a negative number).
    episode_return(K, s0, horizon, discount=1.0)
                   the same from given start states s0 [N, n] (expectation over the dynamics noise only), for
                   comparing a learned policy with K* on the *same* evaluation episodes (paired, low variance).
    finite_horizon_optimal_return(horizon, discount=1.0)
                   the best any (time-varying) policy can do over the horizon (backward Riccati): an upper bound
                   on every controller's expected return in the env.
    rollout(K, s0, steps)   batched deterministic-policy trajectories (torch), for sampled estimators.
    make_env()     a gymnasium.Env: obs = s (float32), Box action in [-action_bound, action_bound]^m (actions
                   are clipped to it; the default bound 2 is far from binding for K*: |K* s| < 1 on ρ_0),
                   reward -(s'Qs + a'Ra), truncated (never terminated) after ``horizon`` steps.

Instances: ``LQR(state_dim=2, action_dim=1, gamma=0.99, horizon=50, seed=0)`` draws A = ρ_A O with O a random
rotation (so A is normal, well conditioned, every eigenvalue of modulus ρ_A = 0.95: open-loop stable but slow)
and B with unit-norm random columns, redrawing until [B, AB, ...] is well conditioned (controllable);
Q = I, R = r I. Pass A, B, Q, R explicitly for any other instance. Gymnasium id ``pgrad/LQR-v0`` is the
default instance (state 2, action 1, γ 0.99, horizon 50, seed 0); ``gym.make("pgrad/LQR-v0", seed=3)`` gives
another draw. For seed 0: J(0) = 6.26, J(K*) = 1.37, K* = [[0.230, 0.634]].

Comparing a learned controller with the optimum in env units: ``lqr.expected_return(lqr.optimal_K(), lqr.horizon)``
is the expected return of K* over one episode. One episode's return varies by 66% (std/mean) with its start
state, so with few evaluation episodes compare *paired* returns: ``lqr.optimal_eval_returns(20, seed)`` are K*'s
exact returns on the very episodes ``agent.evaluate(episodes=20, seed=seed)`` runs (default seed 12345), e.g.
``agent.evaluate(20).mean_return >= 1.1 * float(lqr.optimal_eval_returns(20).mean())`` is "cost within 10%".
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from pgrad.errors import PgradError

Tensorish = Any  # torch.Tensor, numpy array or nested lists

DT = torch.float64


def _t(x: Tensorish) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x if x.dtype == DT else x.to(DT)
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def _solve_stein(F: torch.Tensor, M: torch.Tensor, gamma: float) -> torch.Tensor:
    """X solving X = M + γ F X F' (Kronecker form; n is small). Differentiable in F and M."""
    n = F.shape[0]
    eye = torch.eye(n * n, dtype=F.dtype)
    x = torch.linalg.solve(eye - gamma * torch.kron(F, F), M.reshape(-1))
    x = x.reshape(n, n)
    return 0.5 * (x + x.T)


class LQR:
    """Discounted LQR with exact cost, gradient, Q-function and optimal controller (see the module docstring)."""

    def __init__(self, state_dim: int = 2, action_dim: int = 1, gamma: float = 0.99, horizon: int = 50,
                 seed: int = 0, *, A: Tensorish | None = None, B: Tensorish | None = None,
                 Q: Tensorish | None = None, R: Tensorish | None = None, r_scale: float = 1.0,
                 rho_A: float = 0.95, noise_std: float = 0.0, init_scale: float = 1.0,
                 action_bound: float = 2.0):
        if not 0.0 < gamma < 1.0:
            raise PgradError(f"LQR needs a discount 0 < gamma < 1, got {gamma}")
        if horizon < 1:
            raise PgradError(f"LQR horizon must be at least 1, got {horizon}")
        self.gamma, self.horizon, self.seed = float(gamma), int(horizon), int(seed)
        self.noise_std, self.init_scale, self.action_bound = float(noise_std), float(init_scale), float(action_bound)
        if A is None or B is None:
            A_, B_ = self._draw(state_dim, action_dim, rho_A, seed)
            A = A_ if A is None else A
            B = B_ if B is None else B
        self.A, self.B = _t(A).clone(), _t(B).clone()
        n, m = self.B.shape
        if self.A.shape != (n, n):
            raise PgradError(f"LQR: A must be [{n}, {n}] to match B [{n}, {m}], got {tuple(self.A.shape)}")
        self.n, self.m = n, m
        self.Q = torch.eye(n, dtype=DT) if Q is None else _t(Q).clone()
        self.R = r_scale * torch.eye(m, dtype=DT) if R is None else _t(R).clone()
        self.Sigma0 = (self.init_scale ** 2 / 3.0) * torch.eye(n, dtype=DT)
        self.W = (self.noise_std ** 2) * torch.eye(n, dtype=DT)
        self._K_star: torch.Tensor | None = None

    @staticmethod
    def _draw(n: int, m: int, rho_A: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(seed)
        for _ in range(1000):
            O, _ = np.linalg.qr(rng.standard_normal((n, n)))
            if np.linalg.det(O) < 0:
                O[:, 0] *= -1.0
            A = rho_A * O
            B = rng.standard_normal((n, m))
            B /= np.linalg.norm(B, axis=0, keepdims=True)
            C = np.hstack([np.linalg.matrix_power(A, k) @ B for k in range(n)])
            if np.linalg.cond(C @ C.T) < 1e3:
                return torch.as_tensor(A), torch.as_tensor(B)
        raise PgradError("could not draw a controllable LQR instance; pass A and B explicitly")

    # ------------------------------------------------------------------ exact quantities
    def closed_loop(self, K: Tensorish) -> torch.Tensor:
        """A_K = A - B K."""
        return self.A - self.B @ _t(K)

    def is_stable(self, K: Tensorish) -> bool:
        """Whether √γ A_K is stable (spectral radius < 1), i.e. J(K) is finite."""
        rad = torch.linalg.eigvals(self.closed_loop(_t(K).detach())).abs().max().item()
        return math.sqrt(self.gamma) * rad < 1.0

    def value_matrix(self, K: Tensorish) -> torch.Tensor:
        """P_K: V_K(s) = s'P_K s (+ the noise constant), the Lyapunov solution P = Q + K'RK + γ A_K'PA_K."""
        K = _t(K)
        AK = self.closed_loop(K)
        return _solve_stein(AK.T, self.Q + K.T @ self.R @ K, self.gamma)

    def _noise_const(self, P: torch.Tensor) -> torch.Tensor:
        return self.gamma / (1.0 - self.gamma) * torch.trace(P @ self.W)

    def cost(self, K: Tensorish) -> torch.Tensor:
        """Exact discounted cost J(K) from ρ_0 (0-d tensor; +inf if μ_K is not stabilising)."""
        if not self.is_stable(K):
            return torch.tensor(float("inf"), dtype=DT)
        P = self.value_matrix(K)
        return torch.trace(P @ self.Sigma0) + self._noise_const(P)

    def state_visitation(self, K: Tensorish) -> torch.Tensor:
        """Σ_K = Σ_t γ^t E[s_t s_t'] under μ_K from ρ_0 (unnormalised second moment of ρ^μ)."""
        AK = self.closed_loop(K)
        return _solve_stein(AK, self.Sigma0 + self.gamma / (1.0 - self.gamma) * self.W, self.gamma)

    def grad(self, K: Tensorish) -> torch.Tensor:
        """Exact ∇_K J(K) of the *cost* [m, n] (the post's return gradient is minus this)."""
        K = _t(K)
        if not self.is_stable(K):
            raise PgradError("grad(K): μ_K does not stabilise the system, J(K) is infinite")
        P = self.value_matrix(K)
        Sigma = self.state_visitation(K)
        g = self.gamma
        return 2.0 * ((self.R + g * self.B.T @ P @ self.B) @ K - g * self.B.T @ P @ self.A) @ Sigma

    def riccati(self, tol: float = 1e-12, max_iter: int = 100_000) -> tuple[torch.Tensor, torch.Tensor]:
        """(K*, P*) of the discounted algebraic Riccati equation, by value iteration from P = Q."""
        A, B, Q, R, g = self.A, self.B, self.Q, self.R, self.gamma
        P = Q.clone()
        for _ in range(max_iter):
            K = g * torch.linalg.solve(R + g * B.T @ P @ B, B.T @ P @ A)
            AK = A - B @ K
            P_new = Q + K.T @ R @ K + g * AK.T @ P @ AK
            if (P_new - P).abs().max() < tol * max(1.0, P.abs().max().item()):
                P = P_new
                break
            P = P_new
        else:
            raise PgradError("the Riccati iteration did not converge: is (√γ A, B) stabilisable?")
        K = g * torch.linalg.solve(R + g * B.T @ P @ B, B.T @ P @ A)
        return K, 0.5 * (P + P.T)

    def optimal_K(self) -> torch.Tensor:
        """K* minimising J(K) (the DARE solution for the discounted problem)."""
        if self._K_star is None:
            self._K_star = self.riccati()[0]
        return self._K_star.clone()

    def optimal_cost(self) -> float:
        return float(self.cost(self.optimal_K()))

    def v_cost(self, K: Tensorish, s: Tensorish) -> torch.Tensor:
        """Cost-to-go V_K(s) = s'P_K s + noise constant, s [N, n] -> [N]."""
        s = _t(s)
        P = self.value_matrix(K)
        return torch.einsum("ni,ij,nj->n", s, P, s) + self._noise_const(P)

    def q_cost(self, K: Tensorish, s: Tensorish, a: Tensorish) -> torch.Tensor:
        """Exact Q-cost c(s, a) + γ E[V_K(As + Ba + w)], s [N, n], a [N, m] -> [N]; differentiable in a, K."""
        s, a = _t(s), _t(a)
        P = self.value_matrix(K)
        nxt = s @ self.A.T + a @ self.B.T
        c = torch.einsum("ni,ij,nj->n", s, self.Q, s) + torch.einsum("ni,ij,nj->n", a, self.R, a)
        return c + self.gamma * (torch.einsum("ni,ij,nj->n", nxt, P, nxt) + self._noise_const(P))

    def q(self, K: Tensorish, s: Tensorish, a: Tensorish) -> torch.Tensor:
        """The post's Q^μ(s, a): expected discounted return (= -q_cost)."""
        return -self.q_cost(K, s, a)

    def v(self, K: Tensorish, s: Tensorish) -> torch.Tensor:
        """The post's V^μ(s) = Q^μ(s, μ_K(s)) (= -v_cost)."""
        return -self.v_cost(K, s)

    def mu(self, K: Tensorish, s: Tensorish) -> torch.Tensor:
        """μ_K(s) = -K s, s [N, n] -> [N, m]."""
        return -_t(s) @ _t(K).T

    # ------------------------------------------------------------------ finite-horizon (env units)
    def _horizon_matrices(self, K: torch.Tensor, horizon: int, discount: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, c): E[Σ_{t<H} d^t c_t | s_0] = s_0'M s_0 + c under μ_K (backward recursion)."""
        AK = self.closed_loop(K)
        C = self.Q + K.T @ self.R @ K
        M = torch.zeros_like(self.Q)
        const = torch.zeros((), dtype=DT)
        for _ in range(horizon):
            const = discount * (const + torch.trace(M @ self.W))
            M = C + discount * AK.T @ M @ AK
        return M, const

    def expected_return(self, K: Tensorish, horizon: int | None = None, discount: float = 1.0) -> float:
        """Exact E[Σ_{t<horizon} discount^t r_t] from s_0 ~ ρ_0 under μ_K (negative: rewards are -cost)."""
        M, const = self._horizon_matrices(_t(K), self.horizon if horizon is None else horizon, discount)
        return -float(torch.trace(M @ self.Sigma0) + const)

    def episode_return(self, K: Tensorish, s0: Tensorish, horizon: int | None = None,
                       discount: float = 1.0) -> torch.Tensor:
        """Exact expected return of μ_K over one episode from each given start state, s0 [N, n] -> [N]."""
        M, const = self._horizon_matrices(_t(K), self.horizon if horizon is None else horizon, discount)
        s0 = _t(s0).reshape(-1, self.n)
        return -(torch.einsum("ni,ij,nj->n", s0, M, s0) + const)

    def finite_horizon_optimal_return(self, horizon: int | None = None, discount: float = 1.0) -> float:
        """max over all (time-varying) policies of E[Σ_{t<H} discount^t r_t] from ρ_0 (backward Riccati)."""
        H = self.horizon if horizon is None else horizon
        A, B, Q, R, d = self.A, self.B, self.Q, self.R, discount
        P = torch.zeros_like(Q)
        const = torch.zeros((), dtype=DT)
        for _ in range(H):
            const = d * (const + torch.trace(P @ self.W))
            K = d * torch.linalg.solve(R + d * B.T @ P @ B, B.T @ P @ A)
            AK = A - B @ K
            P = Q + K.T @ R @ K + d * AK.T @ P @ AK
        return -float(torch.trace(P @ self.Sigma0) + const)

    # ------------------------------------------------------------------ sampling
    def sample_start(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """s_0 ~ ρ_0, [n, state_dim] float64."""
        u = torch.rand(n, self.n, dtype=DT, generator=generator)
        return (2.0 * u - 1.0) * self.init_scale

    def rollout(self, K: Tensorish, s0: Tensorish, steps: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """States s_0..s_{steps-1} under μ_K (with dynamics noise if any), [steps, N, n] float64."""
        AK = self.closed_loop(_t(K).detach())
        s = _t(s0)
        out = torch.empty(steps, *s.shape, dtype=DT)
        for t in range(steps):
            out[t] = s
            s = s @ AK.T
            if self.noise_std > 0:
                s = s + self.noise_std * torch.randn(s.shape, dtype=DT, generator=generator)
        return out

    def eval_start_states(self, episodes: int = 20, seed: int = 12_345) -> torch.Tensor:
        """The start states of the evaluation episodes ``Agent.evaluate(episodes, seed)`` runs (env.reset(seed=
        seed + i) for i < episodes), [episodes, n] float64."""
        env = self.make_env()
        starts = []
        for i in range(episodes):
            env.reset(seed=seed + i)
            starts.append(torch.as_tensor(env.s0))
        return torch.stack(starts)

    def optimal_eval_returns(self, episodes: int = 20, seed: int = 12_345) -> torch.Tensor:
        """Exact expected returns of μ_{K*} on the same evaluation episodes as ``Agent.evaluate(episodes, seed)``:
        the paired reference for "within x% of the optimal LQR cost" (cost = -return)."""
        return self.episode_return(self.optimal_K(), self.eval_start_states(episodes, seed))

    def linear_act(self, K: Tensorish):
        """A callable obs [B, n] tensor -> numpy actions of μ_K (for pgrad.envs.run_episodes and friends)."""
        K32 = _t(K).detach().to(torch.float32)

        def act(obs: torch.Tensor) -> np.ndarray:
            return (-obs.to(torch.float32) @ K32.T).cpu().numpy()

        return act

    def make_env(self) -> LQREnv:
        """The Gymnasium view of this instance."""
        return LQREnv(lqr=self)

    def __repr__(self) -> str:
        return (f"LQR(state_dim={self.n}, action_dim={self.m}, gamma={self.gamma}, horizon={self.horizon}, "
                f"seed={self.seed}, noise_std={self.noise_std})")


class LQREnv(gym.Env):
    """Gymnasium env of an LQR: obs s_t, action a_t (clipped to the Box), reward -(s'Qs + a'Ra).

    Episodes never terminate; they are truncated after ``lqr.horizon`` steps. ``self.s0`` is the start state of
    the current episode (for paired comparisons with ``LQR.episode_return``). Keyword arguments other than
    ``lqr`` build an ``LQR`` (so ``gym.make("pgrad/LQR-v0", seed=3, horizon=100)`` works).
    """

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, lqr: LQR | None = None, **lqr_kwargs: Any):
        self.lqr = lqr if lqr is not None else LQR(**lqr_kwargs)
        L = self.lqr
        self._A, self._B = L.A.numpy().copy(), L.B.numpy().copy()
        self._Q, self._R = L.Q.numpy().copy(), L.R.numpy().copy()
        self.horizon = L.horizon
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (L.n,), np.float32)
        bound = np.full(L.m, L.action_bound, np.float32)
        self.action_space = gym.spaces.Box(-bound, bound, dtype=np.float32)
        self.s = np.zeros(L.n)
        self.s0 = self.s.copy()
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        c0 = self.lqr.init_scale
        self.s = self.np_random.uniform(-c0, c0, self.lqr.n)
        self.s0 = self.s.copy()
        self.t = 0
        return self.s.astype(np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = np.clip(np.asarray(action, np.float64).reshape(self.lqr.m), -self.lqr.action_bound,
                    self.lqr.action_bound)
        s = self.s
        reward = -float(s @ self._Q @ s + a @ self._R @ a)
        s = self._A @ s + self._B @ a
        if self.lqr.noise_std > 0:
            s = s + self.lqr.noise_std * self.np_random.standard_normal(self.lqr.n)
        self.s = s
        self.t += 1
        return s.astype(np.float32), reward, False, self.t >= self.horizon, {}
