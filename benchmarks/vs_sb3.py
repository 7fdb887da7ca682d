"""pgrad against Stable-Baselines3, side by side in one invocation, at the same hyperparameters.

    .venv/bin/python benchmarks/vs_sb3.py                 # PPO and A2C on CartPole-v1, 3 repetitions
    .venv/bin/python benchmarks/vs_sb3.py --reps 5 --only ppo

Each run is a fresh subprocess with one torch thread (OMP_NUM_THREADS=1); the two libraries alternate
(pgrad first on even repetitions, SB3 first on odd ones) so drift in machine load hits both. Steps/s is
environment steps over the training loop's wall time: SB3's ``learn()``; pgrad's loop up to its last
progress row (its final evaluation, checkpoint and plot are excluded, as SB3 does none of them).
Both final policies (pgrad ``select="last"``) are evaluated on 20 fresh deterministic episodes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

WORK = {
    # rl-baselines3-zoo hyperparameters for PPO on CartPole-v1 (pgrad's preset is the same)
    "ppo": dict(env="CartPole-v1", steps=100_000, pgrad=dict(
        num_envs=8, n_steps=32, batch_size=256, lam=0.8, gamma=0.98, epochs=20, ent_coef=0.0, lr=1e-3,
        anneal_lr=True, clip_eps=0.2, anneal_clip=True, vf_coef=0.5, max_grad_norm=0.5, hidden=(64, 64))),
    # Stable-Baselines3's A2C defaults with 8 envs
    "a2c": dict(env="CartPole-v1", steps=100_000, pgrad=dict(
        num_envs=8, n_steps=5, lr=7e-4, gamma=0.99, lam=1.0, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5,
        optimizer="rmsprop", rms_alpha=0.99, opt_eps=1e-5, hidden=(64, 64))),
}


def sb3_model(work: str, seed: int):
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(WORK[work]["env"], n_envs=8, seed=seed)
    if work == "ppo":
        return PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                   ent_coef=0.0, learning_rate=lambda f: 1e-3 * f, clip_range=lambda f: 0.2 * f, seed=seed,
                   device="cpu", verbose=0)
    return A2C("MlpPolicy", env, seed=seed, device="cpu", verbose=0)


def evaluate_sb3(model, env_id: str, episodes: int = 20, seed: int = 777) -> float:
    import gymnasium as gym
    import numpy as np

    rets = []
    for i in range(episodes):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            a, _ = model.predict(obs, deterministic=True)
            obs, r, term, trunc, _ = env.step(a)
            total += r
            done = term or trunc
        rets.append(total)
    return float(np.mean(rets))


def child(lib: str, work: str, seed: int) -> dict:
    import torch

    torch.set_num_threads(1)
    w = WORK[work]
    if lib == "sb3":
        model = sb3_model(work, seed)
        t = time.perf_counter()
        model.learn(w["steps"])
        dt = time.perf_counter() - t
        return {"steps_per_s": w["steps"] / dt, "train_s": dt, "return": evaluate_sb3(model, w["env"])}
    import csv

    import pgrad

    with tempfile.TemporaryDirectory() as d:
        agent = pgrad.train(work, w["env"], steps=w["steps"], seed=seed, out=f"{d}/run", progress=False,
                            tensorboard=False, eval_every=0, eval_episodes=1, select="last", **w["pgrad"])
        with open(f"{d}/run/progress.csv") as f:
            last = list(csv.DictReader(f))[-1]
        dt, steps = float(last["time"]), int(last["step"])
        ret = agent.evaluate(episodes=20, seed=777).mean_return
    return {"steps_per_s": steps / dt, "train_s": dt, "return": ret}


def run_child(lib: str, work: str, seed: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "--child", lib, work, str(seed)], capture_output=True, text=True,
                         env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{lib} {work} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt(xs: list[float], digits: int = 0) -> str:
    med = statistics.median(xs)
    return f"{med:,.{digits}f} [{min(xs):,.{digits}f}-{max(xs):,.{digits}f}]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--only", default="ppo,a2c")
    p.add_argument("--child", nargs=3, metavar=("LIB", "WORK", "SEED"))
    args = p.parse_args()
    if args.child:
        lib, work, seed = args.child
        print(json.dumps(child(lib, work, int(seed))))
        return
    works = args.only.split(",")
    print(f"machine: {os.cpu_count()} cores, 1 torch thread per run; {args.reps} repetitions, alternating order")
    rows = []
    for work in works:
        res: dict[str, list[dict]] = {"pgrad": [], "sb3": []}
        for rep in range(args.reps):
            order = ["pgrad", "sb3"] if rep % 2 == 0 else ["sb3", "pgrad"]
            for lib in order:
                r = run_child(lib, work, seed=rep)
                res[lib].append(r)
                print(f"  {work} rep {rep} {lib:5s}: {r['steps_per_s']:8,.0f} steps/s, return {r['return']:.1f}",
                      flush=True)
        ratios = [a["steps_per_s"] / b["steps_per_s"] for a, b in zip(res["pgrad"], res["sb3"])]
        rows.append((work, WORK[work]["env"], WORK[work]["steps"], res, ratios))
    print("\n| work | env | steps | pgrad steps/s | SB3 steps/s | pgrad/SB3 | pgrad return | SB3 return |")
    print("|---|---|---|---|---|---|---|---|")
    for work, env, steps, res, ratios in rows:
        print(f"| {work} | {env} | {steps:,} | {fmt([r['steps_per_s'] for r in res['pgrad']])} | "
              f"{fmt([r['steps_per_s'] for r in res['sb3']])} | {fmt(ratios, 2)}x | "
              f"{fmt([r['return'] for r in res['pgrad']], 1)} | {fmt([r['return'] for r in res['sb3']], 1)} |")


if __name__ == "__main__":
    main()
