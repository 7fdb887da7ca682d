"""A3C throughput: env-steps/s with 1 and 2 Hogwild! worker processes and with the Ray backend, in one invocation.

Setting: CartPole-v1, the post's A3C (one env per worker, t_max = 5, 64x64 networks, RMSprop with shared
statistics), no periodic evaluation. Each configuration runs ``--repeats`` times, interleaved (hogwild-1,
hogwild-2, ray-1, ray-2, sb3, hogwild-1, ...), so that load on a shared machine hits all alike.

Two rates per run:
- ``steady``: env steps/s between the first progress row after 20% of the budget and the last row, i.e. with
  the workers running (process spawn / Ray actor start-up excluded);
- ``total``: steps / wall time of the whole ``pgrad.train`` call (start-up included).
Scaling = steady rate with 2 workers / steady rate with 1 worker (ideal: 2.0 on 2 free cores).
Reference peer, single process: Stable-Baselines3 A2C with one env and n_steps = 5 (the same computation per
update as a one-worker A3C), its rate measured over the whole ``learn`` call.

    .venv/bin/python benchmarks/bench_a3c.py [--steps 30000] [--repeats 2] [--no-ray] [--json out.json]
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

import torch

import pgrad

ENV = "CartPole-v1"
POST = dict(num_envs=1, n_steps=5, lr=7e-4, ent_coef=0.0, hidden=(64, 64), eval_every=0, eval_episodes=1,
            checkpoint_every=0, select="last", progress=False, tensorboard=False)


def steady_rate(run_dir: str, steps: int) -> float:
    with open(os.path.join(run_dir, "progress.csv")) as f:
        rows = [(float(r["step"]), float(r["time"])) for r in csv.DictReader(f)]
    start = next(((s, t) for s, t in rows if s >= 0.2 * steps), rows[0])
    end = rows[-1]
    return (end[0] - start[0]) / max(end[1] - start[1], 1e-9)


def run_pgrad(backend: str, workers: int, steps: int, seed: int, base: str) -> dict:
    out = os.path.join(base, f"a3c-{backend}-{workers}-s{seed}-{time.time_ns()}")
    t = time.perf_counter()
    pgrad.train("a3c", ENV, steps=steps, seed=seed, out=out, workers=workers, backend=backend,
                log_every=max(500, steps // 50), **POST)
    total = steps / (time.perf_counter() - t)
    return {"config": f"{backend}-{workers}", "steady": steady_rate(out, steps), "total": total}


def run_sb3(steps: int, seed: int) -> dict:
    from stable_baselines3 import A2C

    t = time.perf_counter()
    model = A2C("MlpPolicy", ENV, n_steps=5, learning_rate=7e-4, seed=seed, device="cpu", verbose=0)
    model.learn(total_timesteps=steps)
    rate = steps / (time.perf_counter() - t)
    return {"config": "sb3-a2c-1env", "steady": rate, "total": rate}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray backend")
    ap.add_argument("--no-sb3", action="store_true", help="skip the Stable-Baselines3 reference")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    configs = [("hogwild", 1), ("hogwild", 2)]
    ray = None
    if not args.no_ray:
        import ray

        t = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
        print(f"ray.init: {time.perf_counter() - t:.1f}s (not counted)", flush=True)
        configs += [("ray", 1), ("ray", 2)]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as base:
        for rep in range(args.repeats):
            for backend, workers in configs:
                r = run_pgrad(backend, workers, args.steps, rep, base)
                rows.append(r)
                print(json.dumps(r), flush=True)
            if not args.no_sb3:
                r = run_sb3(args.steps, rep)
                rows.append(r)
                print(json.dumps(r), flush=True)
    if ray is not None:
        ray.shutdown()
    summary: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r["config"] for r in rows):
        sel = [r for r in rows if r["config"] == name]
        summary[name] = {"steady": statistics.median(r["steady"] for r in sel),
                         "total": statistics.median(r["total"] for r in sel)}
    print(f"\nA3C {ENV}, {args.steps} steps x {args.repeats}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
          f"{platform.processor() or platform.machine()}")
    print(f"{'config':16s} {'steady steps/s':>15s} {'total steps/s':>14s}")
    for name, s in summary.items():
        print(f"{name:16s} {s['steady']:15.0f} {s['total']:14.0f}")
    scaling = {}
    for backend in ("hogwild", "ray"):
        one, two = summary.get(f"{backend}-1"), summary.get(f"{backend}-2")
        if one and two:
            scaling[backend] = two["steady"] / one["steady"]
            print(f"scaling {backend}: 2 workers / 1 worker = {scaling[backend]:.2f}x (steady)")
    if "sb3-a2c-1env" in summary and "hogwild-1" in summary:
        print(f"hogwild-1 / SB3 A2C (1 env, n_steps 5): {summary['hogwild-1']['steady'] / summary['sb3-a2c-1env']['steady']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "summary": summary, "scaling": scaling, "steps": args.steps,
                       "load": os.getloadavg()}, f, indent=2)


if __name__ == "__main__":
    main()
