"""PURE return estimators. All tensors are time-major: [T, N] (T steps of N parallel envs).

Conventions, the same everywhere in pgrad:
- ``r[t]`` is the reward after acting at s_t (the post's R_{t+1}).
- ``terminated[t]``: s_{t+1} is terminal; its value is 0, never bootstrapped.
- ``truncated[t]``: the episode was cut by a time limit after step t; s_{t+1} is not terminal and its value
  ``v_next[t]`` = V(s_{t+1}) of the *true final observation* is bootstrapped.
- ``v_next[t]`` is V(s_{t+1}) for every t (the next state's value, the final observation where an episode
  ended). Traces never cross an episode boundary (``terminated | truncated``).
"""

from __future__ import annotations

import torch


def discounted_returns(r: torch.Tensor, done: torch.Tensor, gamma: float,
                       last: torch.Tensor | None = None) -> torch.Tensor:
    """Monte-Carlo return G_t = Σ_k γ^k r_{t+k} up to the end of the episode (post: G_t, REINFORCE).

    ``done[t]`` ends the sum after r_t; ``last`` [N] is added as γ^{T-t} last after the final step (0 default).
    """
    G = torch.empty_like(r)
    acc = torch.zeros_like(r[0]) if last is None else last.clone()
    notdone = (~done.bool()).to(r.dtype)
    for t in range(r.shape[0] - 1, -1, -1):
        acc = r[t] + gamma * notdone[t] * acc
        G[t] = acc
    return G


def bootstrapped_returns(r: torch.Tensor, v_next: torch.Tensor, terminated: torch.Tensor,
                         truncated: torch.Tensor, gamma: float) -> torch.Tensor:
    """A3C/A2C n-step return: R ← r_i + γ R, started from R = V(s_T) (0 if terminal) (post: A3C, step 6).

    Each step bootstraps from the end of its segment: the rollout's last state, or the episode's true final
    state at a truncation.
    """
    T = r.shape[0]
    coef = gamma * (~terminated.bool()).to(r.dtype)  # γ (1 - terminated)
    done = (terminated.bool() | truncated.bool()).unbind(0)
    rs, cs, vs = r.unbind(0), coef.unbind(0), v_next.unbind(0)  # one call for all T rows
    acc = rs[T - 1] + cs[T - 1] * vs[T - 1]
    out = [acc]
    for t in range(T - 2, -1, -1):
        acc = rs[t] + cs[t] * torch.where(done[t], vs[t], acc)
        out.append(acc)
    return torch.stack(out[::-1])


def gae(r: torch.Tensor, v: torch.Tensor, v_next: torch.Tensor, terminated: torch.Tensor,
        truncated: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016, eq. 16).

    δ_t = r_t + γ (1 - terminated_t) V(s_{t+1}) - V(s_t)
    Â_t = δ_t + γ λ (1 - done_t) Â_{t+1}
    Returns (Â, Â + V), the advantages and the TD(λ) value targets. With λ = 1 the targets equal
    ``bootstrapped_returns``; with λ = 0, Â is the one-step TD error.
    """
    notterm = (~terminated.bool()).to(r.dtype)
    notdone = (~(terminated.bool() | truncated.bool())).to(r.dtype)
    delta = r + gamma * notterm * v_next - v
    acc = torch.zeros_like(r[0])
    decay = gamma * lam * notdone
    ds, ks = delta.unbind(0), decay.unbind(0)  # one call for all T rows
    out = []
    for t in range(r.shape[0] - 1, -1, -1):
        acc = ds[t] + ks[t] * acc
        out.append(acc)
    adv = torch.stack(out[::-1])
    return adv, adv + v


def lambda_returns(r: torch.Tensor, v_next: torch.Tensor, terminated: torch.Tensor,
                   truncated: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """TD(λ) return G^λ_t = r_t + γ (1 - term_t) [(1 - λ) V(s_{t+1}) + λ G^λ_{t+1}], cut at episode ends."""
    T = r.shape[0]
    notterm = (~terminated.bool()).to(r.dtype)
    done = terminated.bool() | truncated.bool()
    G = torch.empty_like(r)
    acc = v_next[T - 1]
    for t in range(T - 1, -1, -1):
        if t == T - 1:
            nxt = v_next[t]
        else:
            nxt = torch.where(done[t], v_next[t], (1 - lam) * v_next[t] + lam * acc)
        acc = r[t] + gamma * notterm[t] * nxt
        G[t] = acc
    return G


def td_error(r: torch.Tensor, v: torch.Tensor, v_next: torch.Tensor, terminated: torch.Tensor,
             gamma: float) -> torch.Tensor:
    """One-step TD error δ_t = r_t + γ (1 - terminated_t) V(s_{t+1}) - V(s_t) (any shape)."""
    return r + gamma * (~terminated.bool()).to(r.dtype) * v_next - v


def retrace(r: torch.Tensor, q_a: torch.Tensor, v_next: torch.Tensor, c_bar: torch.Tensor,
            terminated: torch.Tensor, truncated: torch.Tensor, gamma: float) -> torch.Tensor:
    """Retrace target Q^ret(s_t, a_t) (Munos et al., 2016; post: ACER) over a segment [T, N].

    The post's ΔQ^ret form: the TD errors of the critic, their traces cut by truncated importance weights,

        Q^ret_t = Q(s_t, a_t) + Σ_{k>=t} γ^{k-t} (Π_{t<τ<=k} c̄_τ) δ_k,
        δ_k = r_k + γ (1 - terminated_k) V(s_{k+1}) - Q(s_k, a_k),

    with c̄_t = min(c, π(a_t|s_t) / β(a_t|s_t)) (``c_bar``), ``q_a[t]`` = Q(s_t, a_t) and ``v_next[t]`` = V(s_{t+1})
    = Σ_a π(a|s_{t+1}) Q(s_{t+1}, a). The sum stops at the end of the episode and of the segment: V of the true
    final observation is bootstrapped at a truncation and at the segment's end, and nothing after a termination.
    It equals the paper's recursion Q^ret_t = r_t + γ [c̄_{t+1} (Q^ret_{t+1} - Q(s_{t+1}, a_{t+1})) + V(s_{t+1})]
    (computed here as D_t = Q^ret_t - Q(s_t, a_t) = δ_t + γ (1 - done_t) c̄_{t+1} D_{t+1}: one op per step).
    """
    T = r.shape[0]
    notterm = (~terminated.bool()).to(r.dtype)
    notdone = (~(terminated.bool() | truncated.bool())).to(r.dtype)
    delta = r + gamma * notterm * v_next - q_a
    decay = torch.zeros_like(r)
    decay[:-1] = gamma * notdone[:-1] * c_bar[1:]
    deltas, decays = delta.unbind(0), decay.unbind(0)
    out = [deltas[T - 1]]
    for t in range(T - 2, -1, -1):
        out.append(torch.addcmul(deltas[t], decays[t], out[-1]))
    return q_a + torch.stack(out[::-1])
