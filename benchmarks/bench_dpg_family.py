"""DDPG and TD3 on Pendulum-v1 at the rl-baselines3-zoo settings: pgrad and Stable-Baselines3 alternated in one run.

rl-zoo (hyperparams/ddpg.yml and td3.yml, Pendulum-v1): 20k steps, gamma 0.98, buffer_size 200000,
learning_starts 10000, Gaussian action noise σ 0.1, train_freq 1, gradient_steps 1, learning_rate 1e-3,
net_arch [400, 300]; SB3 defaults otherwise: batch_size 256, tau 0.005, ReLU, one learning rate for actor and
critic; TD3: policy_delay 2, target_policy_noise 0.2, target_noise_clip 0.5, 2 critics. pgrad runs exactly these
values (its Pendulum-v1 presets use smaller networks: they are overridden here).

Reported per run: env-steps/s over the whole training call (construction, 10k random steps, 10k learning steps;
pgrad's run directory bookkeeping included, no periodic evaluation, no checkpoints but the final one), measured
on the wall clock and on the process's CPU clock (CPU time is far less sensitive to other processes sharing the
machine: with a loaded machine, compare the CPU-time ratio), and the final policy's mean return over 20
evaluation episodes with deterministic actions (pgrad: select='last', like SB3's final model). Runs alternate
pgrad, sb3, sb3, pgrad, ... so that load hits both alike. ``--bf16`` adds pgrad runs with bf16=true (matmuls in
bfloat16, float32 weights and optimiser: a speed option, not the same numerics as SB3).

    .venv/bin/python benchmarks/bench_dpg_family.py [--algos ddpg td3] [--seeds 0 1 2] [--steps 20000]
                                                    [--bf16] [--json out.json]
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
ZOO = dict(gamma=0.98, buffer_size=200_000, learning_starts=10_000, noise_std=0.1, train_freq=1, gradient_steps=1,
           learning_rate=1e-3, net_arch=[400, 300], batch_size=256, tau=0.005)
TD3_EXTRA = dict(policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5)


def run_pgrad(algo: str, steps: int, seed: int, out: str, bf16: bool = False) -> dict[str, float]:
    kw = dict(gamma=ZOO["gamma"], buffer_size=ZOO["buffer_size"], learning_starts=ZOO["learning_starts"],
              noise_sigma=ZOO["noise_std"], train_freq=ZOO["train_freq"], gradient_steps=ZOO["gradient_steps"],
              lr=ZOO["learning_rate"], hidden=tuple(ZOO["net_arch"]), batch_size=ZOO["batch_size"], tau=ZOO["tau"],
              bf16=bf16)
    if algo == "ddpg":
        kw["noise"] = "gaussian"
    else:
        kw.update(policy_delay=TD3_EXTRA["policy_delay"], target_noise=TD3_EXTRA["target_policy_noise"],
                  target_noise_clip=TD3_EXTRA["target_noise_clip"], n_critics=2)
    t, c = time.perf_counter(), time.process_time()
    agent = pgrad.train(algo, ENV, steps=steps, seed=seed, out=out, eval_every=0, eval_episodes=1,
                        checkpoint_every=0, select="last", progress=False, tensorboard=False, **kw)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    ret = agent.evaluate(episodes=20, seed=10_000 + seed).mean_return
    return {"sps": steps / wall, "cpu_sps": steps / cpu, "return": ret}


def run_sb3(algo: str, steps: int, seed: int) -> dict[str, float]:
    from stable_baselines3 import DDPG, TD3
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.noise import NormalActionNoise

    cls = DDPG if algo == "ddpg" else TD3
    extra = TD3_EXTRA if algo == "td3" else {}
    t, c = time.perf_counter(), time.process_time()
    env = gym.make(ENV)
    model = cls("MlpPolicy", env, gamma=ZOO["gamma"], buffer_size=ZOO["buffer_size"],
                learning_starts=ZOO["learning_starts"], train_freq=ZOO["train_freq"],
                gradient_steps=ZOO["gradient_steps"], learning_rate=ZOO["learning_rate"],
                batch_size=ZOO["batch_size"], tau=ZOO["tau"], policy_kwargs=dict(net_arch=ZOO["net_arch"]),
                action_noise=NormalActionNoise(np.zeros(1), ZOO["noise_std"] * np.ones(1)), seed=seed,
                device="cpu", verbose=0, **extra)
    model.learn(total_timesteps=steps)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    ev = gym.make(ENV)
    ev.reset(seed=10_000 + seed)
    mean, _ = evaluate_policy(model, ev, n_eval_episodes=20, deterministic=True)
    return {"sps": steps / wall, "cpu_sps": steps / cpu, "return": float(mean)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algos", nargs="+", default=["ddpg", "td3"], choices=["ddpg", "td3"])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--bf16", action="store_true", help="also run pgrad with bf16=true")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for algo in args.algos:
            for i, seed in enumerate(args.seeds):
                order = ["pgrad", "sb3"] if i % 2 == 0 else ["sb3", "pgrad"]
                if args.bf16:
                    order.insert(1, "pgrad-bf16")
                res = {}
                for who in order:
                    if who == "sb3":
                        res[who] = run_sb3(algo, args.steps, seed)
                    else:
                        res[who] = run_pgrad(algo, args.steps, seed, f"{tmp}/{who}-{algo}-{seed}", who == "pgrad-bf16")
                    r = res[who]
                    print(f"{algo} seed {seed} {who:10s}: {r['sps']:7.1f} env-steps/s (CPU clock {r['cpu_sps']:7.1f}), "
                          f"return {r['return']:7.1f}", flush=True)
                for who in res:
                    if who == "sb3":
                        continue
                    rows.append({"algo": algo, "seed": seed, "pgrad": who, **{f"pgrad_{k}": v for k, v in res[who].items()},
                                 **{f"sb3_{k}": v for k, v in res["sb3"].items()},
                                 "ratio": res[who]["sps"] / res["sb3"]["sps"],
                                 "cpu_ratio": res[who]["cpu_sps"] / res["sb3"]["cpu_sps"]})
    print(f"\n{ENV}, {args.steps} steps, rl-zoo settings, 1 torch thread, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    print("| algo | seed | pgrad | pgrad steps/s (CPU clock) | SB3 steps/s (CPU clock) | ratio wall | ratio CPU | "
          "pgrad return | SB3 return |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['algo']} | {r['seed']} | {r['pgrad']} | {r['pgrad_sps']:.0f} ({r['pgrad_cpu_sps']:.0f}) | "
              f"{r['sb3_sps']:.0f} ({r['sb3_cpu_sps']:.0f}) | {r['ratio']:.2f}x | {r['cpu_ratio']:.2f}x | "
              f"{r['pgrad_return']:.1f} | {r['sb3_return']:.1f} |")
    for algo in args.algos:
        for who in sorted({r["pgrad"] for r in rows}):
            sel = [r for r in rows if r["algo"] == algo and r["pgrad"] == who]
            if not sel:
                continue
            print(f"{algo} {who}: ratio wall {statistics.mean(r['ratio'] for r in sel):.2f}x, CPU "
                  f"{statistics.mean(r['cpu_ratio'] for r in sel):.2f}x; return pgrad "
                  f"{np.mean([r['pgrad_return'] for r in sel]):.1f}, SB3 {np.mean([r['sb3_return'] for r in sel]):.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": ENV, "steps": args.steps, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
