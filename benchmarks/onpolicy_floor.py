"""The eager-PyTorch floor of the on-policy bench rows (A2C and PPO on CartPole-v1, rl-zoo settings), against pgrad.

For each row it times, on the process CPU clock, one-thread:
- the update: the fewest eager ops that compute the same loss and step (64x64 tanh policy and value networks,
  categorical log-probabilities, the row's loss, global-norm clipping, the optimiser as direct kernel calls),
  written without any library code, and pgrad's ``update`` on the same batch;
- collection: one vector step of 8 Gymnasium CartPole-v1 envs (``gymnasium.make``, the same wrappers SB3 gets)
  with the fewest ops that act and store (functional MLP, Gumbel-max sample, log-probability, writes into
  preallocated arrays), and pgrad's own ``collect_rollout`` on its VecEnv.
Per 100k env steps the floor is updates x update floor + vector steps x collection floor (returns, GAE and
logging left out, so it is lower than any complete implementation): SB3's time per 100k over it bounds what
this formulation (two networks, as SB3's, in eager PyTorch on one thread) can reach against SB3. The same two
networks stacked into one batched matmul per layer (``Stacked``) are timed too: fewer, larger ops, a lower floor. Pass SB3's measured steps/s
(from ``pgrad bench``) to get the bound printed:

    .venv/bin/python benchmarks/onpolicy_floor.py [--sb3-a2c STEPS_PER_S] [--sb3-ppo STEPS_PER_S]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pgrad.algos import a2c, ppo
from pgrad.core.nets import policy_function
from pgrad.data.collect import collect_rollout
from pgrad.data.rollout import Rollout
from pgrad.envs import VecEnv, describe, env_factory

N = 8  # envs of both rows
STEPS = 100_000


def best_ms(f, n: int = 300, rounds: int = 5) -> float:
    """Best mean over ``rounds`` of ``n`` calls, on the process CPU clock (robust to other processes)."""
    for _ in range(max(n // 3, 10)):
        f()
    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        for _ in range(n):
            f()
        best = min(best, (time.process_time() - t) / n * 1e3)
    return best


def net(out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, out))


class Stacked:
    """Policy and value networks as one batched matmul per layer ([2, in, out] weights; the value uses column 0
    of the last layer's 2 outputs): the same two networks in fewer, larger ops."""

    def __init__(self) -> None:
        self.params = [torch.randn(2, i, o).mul_(0.1).requires_grad_() for i, o in ((4, 64), (64, 64), (64, 2))]
        self.params = [t for w in self.params for t in (w, torch.zeros(2, 1, w.shape[2], requires_grad=True))]

    def __call__(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w1, b1, w2, b2, w3, b3 = self.params
        h = torch.tanh(torch.baddbmm(b1, obs.expand(2, -1, -1), w1))
        out = torch.baddbmm(b3, torch.tanh(torch.baddbmm(b2, h, w2)), w3)
        return out[0], out[1, :, 0]


def _backward_clip(loss: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Gradients of ``loss``, clipped to global norm 0.5 in place."""
    for p in params:
        p.grad = None
    loss.backward()
    g = [p.grad for p in params]
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(g)))
    torch._foreach_mul_(g, torch.clamp(0.5 / (norm + 1e-6), max=1.0))
    return g


class AdamStep:
    """Adam (lr 3e-4, eps 1e-5) as one fused kernel call with one step counter."""

    def __init__(self, params: list[torch.Tensor]):
        self.params, self.step = params, torch.zeros(1)
        self.m1, self.m2 = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]

    def __call__(self, loss: torch.Tensor) -> None:
        g = _backward_clip(loss, self.params)
        with torch.no_grad():
            self.step.add_(1)
            torch._fused_adam_(self.params, g, self.m1, self.m2, [], [self.step[0]] * len(g), amsgrad=False,
                               lr=3e-4, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-5, maximize=False,
                               grad_scale=None, found_inf=None)


class RMSpropStep:
    """RMSprop (lr 7e-4, alpha 0.99, eps 1e-5) as five foreach calls."""

    def __init__(self, params: list[torch.Tensor]):
        self.params, self.sq = params, [torch.zeros_like(p) for p in params]

    def __call__(self, loss: torch.Tensor) -> None:
        g = _backward_clip(loss, self.params)
        with torch.no_grad():
            torch._foreach_mul_(self.sq, 0.99)
            torch._foreach_addcmul_(self.sq, g, g, value=0.01)
            avg = torch._foreach_sqrt(self.sq)
            torch._foreach_add_(avg, 1e-5)
            torch._foreach_addcdiv_(self.params, g, avg, value=-7e-4)


def ppo_update_floor(B: int = 256) -> tuple[float, float, float]:
    """(floor, stacked floor, pgrad) ms of one PPO update: clipped surrogate, value loss, normalised advantages,
    clip, Adam."""
    torch.manual_seed(0)
    obs, act = torch.randn(B, 4), torch.randint(0, 2, (B,))
    logp_old, adv, ret = torch.full((B,), -0.69), torch.randn(B), torch.randn(B)

    def loss(logits: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        ratio = (logits.log_softmax(-1).gather(1, act[:, None]).squeeze(1) - logp_old).exp()
        a = (adv - adv.mean()) / (adv.std() + 1e-8)
        return -torch.min(ratio * a, ratio.clamp(0.8, 1.2) * a).mean() + 0.5 * (val - ret).pow(2).mean()

    pi, v = net(2), net(1)
    opt = AdamStep(list(pi.parameters()) + list(v.parameters()))
    st = Stacked()
    st_opt = AdamStep(st.params)

    make, env_id = env_factory("CartPole-v1")
    cfg = ppo.Config()
    nets, popt = ppo.build(cfg, describe(make(), env_id))
    batch = {"obs": obs, "actions": act, "logp": logp_old, "adv": adv, "ret": ret, "v": torch.randn(B)}
    return (best_ms(lambda: opt(loss(pi(obs), v(obs).squeeze(1)))), best_ms(lambda: st_opt(loss(*st(obs)))),
            best_ms(lambda: ppo.update(nets, popt, batch, 0.2, cfg)))


def a2c_update_floor(B: int = 40) -> tuple[float, float, float]:
    """(floor, stacked floor, pgrad) ms of one A2C update: policy gradient with A = R - V, value loss, clip,
    RMSprop."""
    torch.manual_seed(0)
    obs, act, ret = torch.randn(B, 4), torch.randint(0, 2, (B,)), torch.randn(B)

    def loss(logits: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        logp = logits.log_softmax(-1).gather(1, act[:, None]).squeeze(1)
        return -(logp * (ret - val.detach())).mean() + 0.5 * (ret - val).pow(2).mean()

    pi, v = net(2), net(1)
    opt = RMSpropStep(list(pi.parameters()) + list(v.parameters()))
    st = Stacked()
    st_opt = RMSpropStep(st.params)

    make, env_id = env_factory("CartPole-v1")
    cfg = a2c.Config(norm_adv=False, ent_coef=0.0)
    nets, aopt = a2c.build(cfg, describe(make(), env_id))
    batch = {"obs": obs, "actions": act, "ret": ret}
    return (best_ms(lambda: opt(loss(pi(obs), v(obs).squeeze(1)))), best_ms(lambda: st_opt(loss(*st(obs)))),
            best_ms(lambda: a2c.update(nets, aopt, batch, cfg)))


def collect_floor(T: int = 5, reps: int = 400) -> tuple[float, float]:
    """(floor, pgrad) ms per vector step of 8 CartPole envs: act, step, store; T steps per rollout."""
    torch.manual_seed(0)
    pi = net(2)
    layers = [(m.weight, m.bias) for m in pi if isinstance(m, nn.Linear)]
    envs = [gym.make("CartPole-v1") for _ in range(N)]
    obs = np.stack([e.reset(seed=i)[0] for i, e in enumerate(envs)]).astype(np.float32)
    O, A, LP = torch.zeros(T, N, 4), torch.zeros(T, N, dtype=torch.long), torch.zeros(T, N)
    R, TE, TR, NO = np.zeros((T, N), np.float32), np.zeros((T, N), bool), np.zeros((T, N), bool), \
        np.zeros((T, N, 4), np.float32)

    @torch.no_grad()
    def floor() -> None:
        for t in range(T):
            x = torch.from_numpy(obs)
            O[t] = x
            h = torch.tanh(F.linear(torch.tanh(F.linear(x, *layers[0])), *layers[1]))
            logits = torch.log_softmax(F.linear(h, *layers[2]), -1)
            a = (logits - torch.rand_like(logits).clamp_(1e-20, 1.0).log_().neg_().log_()).argmax(-1)
            A[t] = a
            LP[t] = logits.gather(-1, a[:, None])[:, 0]
            an = a.numpy()
            for i, e in enumerate(envs):
                o, r, te, tr, _ = e.step(an[i])
                R[t, i], TE[t, i], TR[t, i], NO[t, i] = r, te, tr, o
                if te or tr:
                    o, _ = e.reset()
                obs[i] = o

    make, env_id = env_factory("CartPole-v1")
    spec = describe(make(), env_id)
    venv = VecEnv(make, N, 0, spec)
    cfg = a2c.Config()
    nets, _ = a2c.build(cfg, spec)
    act = policy_function(nets["pi"])
    ro = Rollout(T, N, spec)

    def sample(o: torch.Tensor):
        d = act(o)
        a = d.sample()
        return a, d.log_prob(a), a.cpu().numpy()

    ours = best_ms(lambda: collect_rollout(venv, sample, ro), n=reps) / T
    return best_ms(floor, n=reps) / T, ours


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sb3-a2c", type=float, default=None, help="SB3's steps/s on the a2c-cartpole row")
    p.add_argument("--sb3-ppo", type=float, default=None, help="SB3's steps/s on the ppo-cartpole row")
    a = p.parse_args()
    torch.set_num_threads(1)
    coll, coll_ours = collect_floor()
    vec_steps = STEPS / N
    rows = [
        # row, updates per 100k steps, (floor, pgrad) update ms, SB3 steps/s
        ("a2c-cartpole", STEPS / (N * 5), a2c_update_floor(), a.sb3_a2c),
        ("ppo-cartpole", STEPS / (N * 32) * 20, ppo_update_floor(), a.sb3_ppo),
    ]
    print(f"collection, per vector step of {N} CartPole-v1 envs: floor {coll * 1e3:.0f} us, pgrad "
          f"{coll_ours * 1e3:.0f} us")
    for name, n_upd, (low, low_st, ours), sb3 in rows:
        floor_s = (n_upd * low + vec_steps * coll) / 1e3
        floor_st = (n_upd * low_st + vec_steps * coll) / 1e3
        ours_s = (n_upd * ours + vec_steps * coll_ours) / 1e3
        line = (f"{name}: update floor {low:.3f} ms (stacked networks {low_st:.3f} ms), pgrad {ours:.3f} ms "
                f"({ours / low:.2f}x); per 100k steps ({n_upd:,.0f} updates, {vec_steps:,.0f} vector steps) floor "
                f"{floor_s:.1f} s (stacked {floor_st:.1f} s), pgrad's update and collection {ours_s:.1f} s")
        if sb3:
            line += (f"; SB3 {STEPS / sb3:.1f} s -> at the floor pgrad/SB3 would be {STEPS / sb3 / floor_s:.2f}x "
                     f"(stacked {STEPS / sb3 / floor_st:.2f}x)")
        print(line)


if __name__ == "__main__":
    main()
