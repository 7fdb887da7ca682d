"""The eager-PyTorch floor of one PPO update at the rl-zoo CartPole-v1 settings, against pgrad's update.

The floor is the fewest eager ops that compute the same loss (64x64 tanh policy and value networks, batch 256,
clipped surrogate, squared value error, normalised advantages, global-norm clipping, Adam as one call of the
fused kernel with one step counter), written without any library code. At these settings PPO does 7,800 such updates per 100k env steps, so the update
alone bounds the speed of any eager-PyTorch PPO on this machine (see README, Speed).

    .venv/bin/python benchmarks/ppo_update_floor.py
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from torch import nn

from pgrad.algos import ppo
from pgrad.envs import describe, env_factory

B = 256


def best_ms(f, n: int = 300, rounds: int = 5) -> float:
    """Best mean over ``rounds`` of ``n`` calls, on the process CPU clock (robust to other processes)."""
    for _ in range(100):
        f()
    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        for _ in range(n):
            f()
        best = min(best, (time.process_time() - t) / n * 1e3)
    return best


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    obs, act = torch.randn(B, 4), torch.randint(0, 2, (B,))
    logp_old, adv, ret = torch.full((B,), -0.69), torch.randn(B), torch.randn(B)

    def net(out: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, out))

    pi, v = net(2), net(1)
    params = list(pi.parameters()) + list(v.parameters())
    m1, m2 = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    step = torch.zeros(1)
    steps = [step[0]] * len(params)

    def floor() -> None:
        logp = pi(obs).log_softmax(-1).gather(1, act[:, None]).squeeze(1)
        ratio = (logp - logp_old).exp()
        a = (adv - adv.mean()) / (adv.std() + 1e-8)
        surr = torch.min(ratio * a, ratio.clamp(0.8, 1.2) * a).mean()
        loss = -surr + 0.5 * (v(obs).squeeze(1) - ret).pow(2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        g = [p.grad for p in params]
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(g)))
        torch._foreach_mul_(g, torch.clamp(0.5 / (norm + 1e-6), max=1.0))
        with torch.no_grad():
            step.add_(1)
            torch._fused_adam_(params, g, m1, m2, [], steps, amsgrad=False, lr=3e-4, beta1=0.9, beta2=0.999,
                               weight_decay=0.0, eps=1e-5, maximize=False, grad_scale=None, found_inf=None)

    make, env_id = env_factory("CartPole-v1")
    cfg = ppo.Config()
    nets, popt = ppo.build(cfg, describe(make(), env_id))
    batch = {"obs": obs, "actions": act, "logp": logp_old, "adv": adv, "ret": ret, "v": torch.randn(B)}
    ours = best_ms(lambda: ppo.update(nets, popt, batch, 0.2, cfg))
    low = best_ms(floor)
    print(f"pgrad PPO update {ours:.3f} ms; eager floor {low:.3f} ms ({ours / low:.2f}x the floor)")
    print(f"per 100k CartPole steps at the rl-zoo settings (7,800 updates): pgrad {7.8 * ours:.1f} s, "
          f"floor {7.8 * low:.1f} s of updates alone")


if __name__ == "__main__":
    main()
