"""The eager-PyTorch floor of a SAC update (the bench's sac-pendulum and sac-halfcheetah rows), against pgrad.

``pgrad bench`` bounds the SAC rows by their matmuls replayed alone, hot in cache. This script times a tighter
floor: the whole update written as the fewest eager ops, without library code, in one process on the same
batch, so the memory traffic around the matmuls (bias broadcasts into cold [2, 256, 256] outputs, activations
saved for the backward pass) is counted as it is in any implementation. Same maths as ``pgrad.algos.sac``
(version auto): the target y from the twin target critics at ã' ~ π(·|s'), J_Q summed over both critics,
J_π with the critics frozen, J(α) in log α, one fused Adam step, Polyak averaging. Two layouts are timed:
both critics stacked into one batched matmul per layer (pgrad's) and two separate critics (SB3's). On the
process CPU clock, one thread, 256x256 ReLU networks, batch 256.

Per env step the bound adds pgrad's own cost outside the update (acting, the env step, the replay write and
sample, measured here), so pgrad/SB3 at the floor = SB3's time per step / (floor update + that). Pass SB3's
steps/s from ``pgrad bench`` (its CPU-clock column) to get it printed:

    .venv/bin/python benchmarks/sac_floor.py [--sb3-pendulum STEPS_PER_S] [--sb3-halfcheetah STEPS_PER_S]

Those parts are timed alone, hot in cache, best of several rounds, so their sum is optimistic against a run's
mean steps/s. ``--loop`` instead runs the floor update inside the leanest training loop (``floor_loop``: a bare
gymnasium env, numpy replay rows, acting with the floor's policy) on the bench rows' budgets, alternating with
pgrad's and SB3's bench children, each a fresh one-thread process, and prints all three on the bench's CPU clock:

    .venv/bin/python benchmarks/sac_floor.py --loop [--reps 3] [--rows sac-pendulum sac-halfcheetah]
"""

from __future__ import annotations

import argparse
import math
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
import torch.nn.functional as F

from pgrad.algos import sac
from pgrad.bench import best_cpu_ms
from pgrad.data.replay import ReplayBuffer
from pgrad.envs import VecEnv, describe, env_factory

B, H = 256, 256
LOG_2 = math.log(2.0)
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _param(*shape: int, scale: float = 0.05) -> torch.Tensor:
    return (torch.randn(*shape) * scale).requires_grad_()


def make_floor(obs_dim: int, act_dim: int, stacked: bool, target_entropy: float,
               init: dict[str, list[torch.Tensor]] | None = None):
    """One SAC update as the fewest eager ops (``stacked``: twin critics as batched matmuls, else two critics);
    Linear weights are [out, in] as nn.Linear keeps them, stacked ones [2, in, out] as pgrad's StackedMLP.
    ``init`` (from ``pgrad_params``) starts from pgrad's parameters; returns (update, parameter lists)."""
    if init is None:
        pi = [_param(H, obs_dim), _param(H), _param(H, H), _param(H), _param(2 * act_dim, H), _param(2 * act_dim)]
        d_in = obs_dim + act_dim
        q = [_param(2, d_in, H), _param(2, 1, H), _param(2, H, H), _param(2, 1, H), _param(2, H, 1), _param(2, 1, 1)]
        q_targ = [t.detach().clone() for t in q]
        log_alpha = torch.zeros((), requires_grad=True)
    else:
        pi, q, q_targ = ([t.detach().clone().requires_grad_(k != "q_targ") for t in init[k]] for k in ("pi", "q", "q_targ"))
        log_alpha = init["log_alpha"][0].detach().clone().requires_grad_()
    if not stacked:  # critic k's layers as nn.Linear keeps them: weight [out, in], bias [out]
        q, q_targ = ([(w.detach()[k].t().contiguous() if i % 2 == 0 else w.detach()[k][0].clone()).requires_grad_(grad)
                      for k in range(2) for i, w in enumerate(ws)] for ws, grad in ((q, True), (q_targ, False)))
    params = pi + q + [log_alpha]
    m1, m2 = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    step = torch.zeros(1)

    def policy(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu_(F.linear(torch.relu_(F.linear(x, pi[0], pi[1])), pi[2], pi[3]))
        mean, log_std = F.linear(h, pi[4], pi[5]).chunk(2, -1)
        log_std = log_std.clamp(-20.0, 2.0)
        std = log_std.exp()
        eps = torch.randn_like(mean)
        u = mean + std * eps
        log_det = 2.0 * (LOG_2 - u - F.softplus(-2.0 * u))
        logp = (-0.5 * ((u - mean) / std).pow(2) - log_std - HALF_LOG_2PI).sum(-1) - log_det.sum(-1)  # squashed space
        return torch.tanh(u), logp

    def critics(w: list[torch.Tensor], s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        x = torch.cat([s, a], -1)
        if stacked:
            x = torch.relu_(torch.baddbmm(w[1], x.unsqueeze(0).expand(2, -1, -1), w[0]))
            x = torch.relu_(torch.baddbmm(w[3], x, w[2]))
            return torch.baddbmm(w[5], x, w[4]).squeeze(-1)
        out = []
        for k in (0, 6):
            h = torch.relu_(F.linear(torch.relu_(F.linear(x, w[k], w[k + 1])), w[k + 2], w[k + 3]))
            out.append(F.linear(h, w[k + 4], w[k + 5]).squeeze(-1))
        return torch.stack(out)

    def update(b: dict[str, torch.Tensor]) -> None:
        alpha = log_alpha.detach().exp()
        with torch.no_grad():
            a_next, logp_next = policy(b["next_obs"])
            y = b["rewards"] + b["discount"] * (critics(q_targ, b["next_obs"], a_next).min(0).values - alpha * logp_next)
        q_loss = 0.5 * (critics(q, b["obs"], b["actions"]) - y).pow(2).mean(1).sum()
        a_pi, logp = policy(b["obs"])
        q_pi = critics([w.detach() for w in q], b["obs"], a_pi).min(0).values
        pi_loss = (alpha * logp - q_pi).mean()
        alpha_loss = -(log_alpha * (logp.detach() + target_entropy)).mean()
        for p in params:
            p.grad = None
        (q_loss + pi_loss + alpha_loss).backward()
        with torch.no_grad():
            step.add_(1)
            torch._fused_adam_(params, [p.grad for p in params], m1, m2, [], [step[0]] * len(params), amsgrad=False,
                               lr=1e-3, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8, maximize=False,
                               grad_scale=None, found_inf=None)
            torch._foreach_lerp_(q_targ, q, 0.005)

    return update, {"pi": pi, "q": q, "q_targ": q_targ, "log_alpha": [log_alpha]}


def pgrad_params(nets: torch.nn.ModuleDict) -> dict[str, list[torch.Tensor]]:
    """pgrad's SAC parameters in the floor's order (``make_floor(init=...)``)."""
    def stacked(m: torch.nn.Module) -> list[torch.Tensor]:
        return [t for w, b in zip(m.net.weights, m.net.biases) for t in (w, b)]

    return {"pi": list(nets["pi"].net.parameters()), "q": stacked(nets["q"]), "q_targ": stacked(nets["q_targ"]),
            "log_alpha": [nets["temperature"].log_alpha]}


def other_ms(env_id: str, cfg: sac.Config, steps: int = 400) -> float:
    """pgrad's cost per env step outside the update: act, step the env, write and sample the replay (CPU ms)."""
    make, env_id = env_factory(env_id)
    spec = describe(make(), env_id)
    envs = VecEnv(make, 1, 0, spec)
    nets, _ = sac.build(cfg, spec)
    replay = ReplayBuffer(cfg.buffer_size, 1, (spec.obs_dim,), (spec.act_dim,), gamma=cfg.gamma)
    pi, bounds = nets["pi"], nets["bounds"]

    def one() -> None:
        obs = envs.obs
        with torch.no_grad():
            a = pi(obs).sample()
            step = envs.step(bounds.scale(a).cpu().numpy())
        replay.add(obs, a, step.reward, step.terminated, step.truncated, step.next_obs)
        replay.sample(cfg.batch_size)

    for _ in range(cfg.batch_size):
        one()
    return best_cpu_ms(one, n=steps, rounds=3)


def row(env_id: str, sb3: float | None) -> None:
    torch.manual_seed(0)
    make, env_id = env_factory(env_id)
    spec = describe(make(), env_id)
    D, A = spec.obs_dim, spec.act_dim
    cfg = sac.Config(version="auto", buffer_size=1_000_000, batch_size=B, hidden=(H, H), lr=1e-3)
    nets, opt = sac.build(cfg, spec)
    batch = {"obs": torch.randn(B, D), "actions": torch.rand(B, A) * 2 - 1, "rewards": torch.randn(B),
             "discount": torch.full((B,), 0.99), "next_obs": torch.randn(B, D)}
    floors = {name: best_cpu_ms(lambda f=make_floor(D, A, stacked, -float(A))[0]: f(batch), 40)
              for name, stacked in (("stacked critics", True), ("separate critics", False))}
    ours = best_cpu_ms(lambda: sac.update(nets, opt, batch, cfg, -float(A)), 40)
    other = other_ms(env_id, cfg)
    low_ms = min(floors.values())
    line = (f"{env_id}: update floor " + ", ".join(f"{k} {v:.2f} ms" for k, v in floors.items())
            + f"; pgrad {ours:.2f} ms ({ours / low_ms:.2f}x the floor); pgrad outside the update {other:.2f} ms "
            f"per env step")
    if sb3:
        line += (f"; SB3 {1e3 / sb3:.2f} ms per step -> at the floor pgrad/SB3 would be "
                 f"{1e3 / sb3 / (low_ms + other):.2f}x (pgrad now {1e3 / sb3 / (ours + other):.2f}x)")
    print(line, flush=True)


def floor_loop(env_id: str, steps: int, ls: int, seed: int, stacked: bool = False) -> dict[str, float]:
    """The floor update inside the leanest training loop: a bare gymnasium env, numpy replay rows, acting with
    the floor's policy, one update per step from step ``ls - 1`` on (as pgrad and SB3). Steps/s over the steps
    from ``ls`` to the end, timed as ``pgrad bench`` times a run (wall and CPU clock)."""
    import time

    import numpy as np

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    make, env_id = env_factory(env_id)
    env = make()
    D, A = env.observation_space.shape[0], env.action_space.shape[0]
    low, high = env.action_space.low.astype(np.float32), env.action_space.high.astype(np.float32)
    update, params = make_floor(D, A, stacked, -float(A))
    pi = params["pi"]
    O, Ac, R, Dc, O2 = (np.zeros((steps, *s), np.float32) for s in ((D,), (A,), (), (), (D,)))
    tO, tA, tR, tD, tO2 = (torch.from_numpy(x) for x in (O, Ac, R, Dc, O2))
    obs, _ = env.reset(seed=seed)
    t0 = c0 = 0.0
    updates = 0
    for t in range(steps):
        if t == ls:
            t0, c0 = time.perf_counter(), time.process_time()
        if t < ls:
            a = rng.uniform(-1.0, 1.0, A).astype(np.float32)
        else:
            with torch.no_grad():
                x = torch.from_numpy(np.asarray(obs, np.float32))
                h = torch.relu_(F.linear(torch.relu_(F.linear(x, pi[0], pi[1])), pi[2], pi[3]))
                mean, log_std = F.linear(h, pi[4], pi[5]).chunk(2, -1)
                a = torch.tanh(mean + log_std.clamp(-20.0, 2.0).exp() * torch.randn_like(mean)).numpy()
        next_obs, r, term, trunc, _ = env.step(low + (a + 1.0) * 0.5 * (high - low))
        O[t], Ac[t], R[t], Dc[t], O2[t] = obs, a, r, 0.0 if term else 0.99, next_obs
        obs = env.reset()[0] if term or trunc else next_obs
        if t + 1 >= ls:
            i = torch.randint(0, t + 1, (B,))
            update({"obs": tO[i], "actions": tA[i], "rewards": tR[i], "discount": tD[i], "next_obs": tO2[i]})
            updates += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"sps": (steps - ls) / wall, "cpu_sps": (steps - ls) / cpu, "updates": updates}


def loop(rows: list[str], reps: int) -> None:
    """The floor loop, pgrad and SB3 on the bench's SAC rows (same budgets), each a fresh one-thread process,
    the order rotated per repetition; steps/s on the CPU clock, median and per-repetition ratios to SB3."""
    from pgrad.bench import ROWS, _spawn, alternate, ratios_line, script_child

    for name in rows:
        r = ROWS[name]
        steps, ls = r.steps, r.learning_starts
        runs = {"floor loop": lambda rep: script_child(__file__, {"env_id": r.env, "steps": steps, "ls": ls,
                                                                   "seed": rep})}
        for lib in ("pgrad", "sb3"):
            runs[lib] = lambda rep, lib=lib: _spawn({"lib": lib, "row": name, "seed": rep, "steps": steps, "ls": ls,
                                                     "episodes": 1})
        print(f"{name}: CPU clock, " + ratios_line(alternate(runs, reps, "cpu_sps")), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sb3-pendulum", type=float, default=None, help="SB3's CPU-clock steps/s on sac-pendulum")
    p.add_argument("--sb3-halfcheetah", type=float, default=None, help="SB3's CPU-clock steps/s on sac-halfcheetah")
    p.add_argument("--loop", action="store_true", help="time the floor inside a training loop against pgrad and SB3")
    p.add_argument("--reps", type=int, default=3, help="repetitions of --loop")
    p.add_argument("--rows", nargs="+", default=["sac-pendulum", "sac-halfcheetah"], help="bench rows for --loop")
    p.add_argument("--loop-child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.loop_child:
        import json

        print(json.dumps(floor_loop(**json.loads(a.loop_child))))
        return
    if a.loop:
        loop(a.rows, a.reps)
        return
    row("Pendulum-v1", a.sb3_pendulum)
    row("HalfCheetah-v5", a.sb3_halfcheetah)


if __name__ == "__main__":
    main()
