"""SAC on Pendulum-v1 at the rl-baselines3-zoo settings: pgrad and Stable-Baselines3 alternated in one invocation.

rl-zoo (hyperparams/sac.yml, Pendulum-v1): 20k steps, learning_rate 1e-3, SB3 defaults otherwise: buffer 1e6,
learning_starts 100, batch 256, tau 0.005, gamma 0.99, train_freq 1, gradient_steps 1, ent_coef 'auto' (initial
α = 1, target entropy -|A|), 256x256 ReLU networks, one env. pgrad gets the same values (its Pendulum preset's
64x64 networks are overridden back to 256x256). Both run with one torch thread.

Reported per run: env-steps/s over the whole training call (construction, learning and, for pgrad, the run
directory's final bookkeeping with a 1-episode evaluation), the final policy's mean return over 20 evaluation
episodes with deterministic actions (pgrad: select='last', like SB3's final model), and the ratio of steps/s.
Runs alternate pgrad, SB3, pgrad, SB3 ... so that load on a shared machine hits both alike.

    .venv/bin/python benchmarks/bench_sac.py [--steps 20000] [--seeds 0 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import pgrad  # noqa: E402

ENV = "Pendulum-v1"
LR = 1e-3


def run_pgrad(steps: int, seed: int, out: str, version: str) -> tuple[float, float]:
    t = time.perf_counter()
    agent = pgrad.train("sac", ENV, steps=steps, seed=seed, out=out, version=version, lr=LR, learning_starts=100,
                        hidden=(256, 256), batch_size=256, buffer_size=1_000_000, tau=0.005, gamma=0.99,
                        alpha_init=1.0, eval_every=0, eval_episodes=1, checkpoint_every=0, select="last",
                        progress=False, tensorboard=False)
    elapsed = time.perf_counter() - t
    return steps / elapsed, agent.evaluate(episodes=20, seed=10_000 + seed).mean_return


def run_sb3(steps: int, seed: int) -> tuple[float, float]:
    from stable_baselines3 import SAC
    from stable_baselines3.common.evaluation import evaluate_policy

    t = time.perf_counter()
    model = SAC("MlpPolicy", gym.make(ENV), learning_rate=LR, seed=seed, device="cpu", verbose=0)
    model.learn(total_timesteps=steps)
    elapsed = time.perf_counter() - t
    from stable_baselines3.common.monitor import Monitor

    env = Monitor(gym.make(ENV))
    env.reset(seed=10_000 + seed)
    mean, _ = evaluate_policy(model, env, n_eval_episodes=20, deterministic=True)
    return steps / elapsed, float(mean)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--version", default="auto", choices=["auto", "2018"], help="pgrad's SAC version")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, seed in enumerate(args.seeds):
            order = ["pgrad", "sb3"] if i % 2 == 0 else ["sb3", "pgrad"]
            res = {}
            for who in order:
                if who == "pgrad":
                    res[who] = run_pgrad(args.steps, seed, f"{tmp}/pgrad-{seed}", args.version)
                else:
                    res[who] = run_sb3(args.steps, seed)
                print(f"seed {seed} {who:5s}: {res[who][0]:7.1f} env-steps/s, return {res[who][1]:8.1f}",
                      flush=True)
            rows.append({"seed": seed, "pgrad_sps": res["pgrad"][0], "sb3_sps": res["sb3"][0],
                         "ratio": res["pgrad"][0] / res["sb3"][0], "pgrad_return": res["pgrad"][1],
                         "sb3_return": res["sb3"][1]})
    print(f"\nSAC {ENV}, {args.steps} steps, rl-zoo settings, 1 torch thread, {platform.processor() or platform.machine()}")
    print("| seed | pgrad steps/s | SB3 steps/s | ratio | pgrad return | SB3 return |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['pgrad_sps']:.1f} | {r['sb3_sps']:.1f} | {r['ratio']:.2f}x | "
              f"{r['pgrad_return']:.1f} | {r['sb3_return']:.1f} |")
    ratios = [r["ratio"] for r in rows]
    print(f"\nratio: mean {statistics.mean(ratios):.2f}x, min {min(ratios):.2f}x, max {max(ratios):.2f}x; "
          f"returns: pgrad {np.mean([r['pgrad_return'] for r in rows]):.1f}, "
          f"SB3 {np.mean([r['sb3_return'] for r in rows]):.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": ENV, "steps": args.steps, "version": args.version, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
