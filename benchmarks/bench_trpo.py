"""TRPO on CartPole-v1 at the rl-baselines3-zoo settings: pgrad and sb3-contrib alternated in one invocation.

rl-zoo (hyperparams/trpo.yml, CartPole-v1): 100k steps, 2 envs, n_steps 512, batch_size 512 (value minibatch),
cg_damping 1e-3, gae_lambda 0.98, gamma 0.99, learning_rate 1e-3 (value function), n_critic_updates 20;
sb3-contrib defaults otherwise: target_kl 0.01, cg_max_steps 15, line search 0.8 x 10, advantages normalised,
separate 64x64 tanh policy and value networks. pgrad's CartPole-v1 preset is exactly these values
(max_kl 0.01, cg_iters 15, ls_shrink 0.8, ls_max_iter 10, vf_epochs 20). Both run with one torch thread.

Reported per run: env-steps/s over the training loop (sb3-contrib: ``learn()``; pgrad: its loop up to the last
progress row, without periodic evaluations; pgrad's final evaluation, checkpoint and plot are excluded, as sb3 does
none of them, as in benchmarks/vs_sb3.py), the same over the whole call (construction included), the final
policy's mean return over 20 evaluation episodes with deterministic actions (pgrad: select='last', like sb3's
final model), and the ratio of loop steps/s. Runs alternate pgrad, sb3, sb3, pgrad, ... so that load on a
shared machine hits both alike.

    .venv/bin/python benchmarks/bench_trpo.py [--steps 100000] [--seeds 0 1 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
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

ENV = "CartPole-v1"
ZOO = dict(n_envs=2, n_steps=512, batch_size=512, cg_damping=1e-3, gae_lambda=0.98, gamma=0.99,
           learning_rate=1e-3, n_critic_updates=20)


def run_pgrad(steps: int, seed: int, out: str) -> tuple[float, float, float]:
    t = time.perf_counter()
    agent = pgrad.train("trpo", ENV, steps=steps, seed=seed, out=out, num_envs=ZOO["n_envs"],
                        n_steps=ZOO["n_steps"], batch_size=ZOO["batch_size"], cg_damping=ZOO["cg_damping"],
                        lam=ZOO["gae_lambda"], gamma=ZOO["gamma"], lr=ZOO["learning_rate"],
                        vf_epochs=ZOO["n_critic_updates"], max_kl=0.01, cg_iters=15, ls_shrink=0.8, ls_max_iter=10,
                        eval_every=0, eval_episodes=1, checkpoint_every=0, select="last", progress=False,
                        tensorboard=False)
    elapsed = time.perf_counter() - t
    with open(f"{out}/progress.csv") as f:
        last = list(csv.DictReader(f))[-1]
    loop = float(last["step"]) / float(last["time"])
    return loop, steps / elapsed, agent.evaluate(episodes=20, seed=10_000 + seed).mean_return


def run_sb3(steps: int, seed: int) -> tuple[float, float, float]:
    from sb3_contrib import TRPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    kw = {k: v for k, v in ZOO.items() if k != "n_envs"}
    t = time.perf_counter()
    model = TRPO("MlpPolicy", make_vec_env(ENV, n_envs=ZOO["n_envs"], seed=seed), seed=seed, device="cpu",
                 verbose=0, **kw)
    t_learn = time.perf_counter()
    model.learn(total_timesteps=steps)
    end = time.perf_counter()
    env = gym.make(ENV)
    env.reset(seed=10_000 + seed)
    mean, _ = evaluate_policy(model, env, n_eval_episodes=20, deterministic=True)
    return steps / (end - t_learn), steps / (end - t), float(mean)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    # the first optimiser built in a process imports torch._dynamo (seconds): pay it here, outside both timings
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, seed in enumerate(args.seeds):
            order = ["pgrad", "sb3"] if i % 2 == 0 else ["sb3", "pgrad"]
            res = {}
            for who in order:
                res[who] = run_pgrad(args.steps, seed, f"{tmp}/pgrad-{seed}") if who == "pgrad" \
                    else run_sb3(args.steps, seed)
                print(f"seed {seed} {who:5s}: {res[who][0]:7.1f} env-steps/s (loop), {res[who][1]:7.1f} (whole "
                      f"call), return {res[who][2]:6.1f}", flush=True)
            rows.append({"seed": seed, "pgrad_sps": res["pgrad"][0], "sb3_sps": res["sb3"][0],
                         "ratio": res["pgrad"][0] / res["sb3"][0], "pgrad_call_sps": res["pgrad"][1],
                         "sb3_call_sps": res["sb3"][1], "call_ratio": res["pgrad"][1] / res["sb3"][1],
                         "pgrad_return": res["pgrad"][2], "sb3_return": res["sb3"][2]})
    print(f"\nTRPO {ENV}, {args.steps} steps, rl-zoo settings, 1 torch thread, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print("| seed | pgrad steps/s | sb3-contrib steps/s | ratio | ratio, whole call | pgrad return | sb3 return |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['pgrad_sps']:.0f} | {r['sb3_sps']:.0f} | {r['ratio']:.2f}x | {r['call_ratio']:.2f}x | "
              f"{r['pgrad_return']:.1f} | {r['sb3_return']:.1f} |")
    ratios = [r["ratio"] for r in rows]
    print(f"\nloop ratio: mean {statistics.mean(ratios):.2f}x, min {min(ratios):.2f}x, max {max(ratios):.2f}x; "
          f"returns: pgrad {np.mean([r['pgrad_return'] for r in rows]):.1f}, "
          f"sb3-contrib {np.mean([r['sb3_return'] for r in rows]):.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": ENV, "steps": args.steps, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
