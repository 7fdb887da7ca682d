"""DDPG, TD3 and D4PG bench rows of BENCHMARKS.md (MuJoCo, too slow for CI): HalfCheetah-v5 >= 4500 at 100k steps.

Settings: pgrad's HalfCheetah-v5 presets (rl-zoo's MuJoCo values for DDPG and TD3: 400x300 ReLU, lr 1e-3,
batch 256, Gaussian σ 0.1, 10k uniform random steps, one update per step; D4PG: 5-step returns, 51 atoms on
[-100, 1000], lr 3e-4, prioritised replay, in-process actor unless --actors K). The return reported is that of
the policy pgrad.train returns (the best periodic evaluation, checkpoints/best.pt) re-evaluated on 20 fresh
episodes with deterministic actions, and also the last evaluation's. Also the 1M-transition replay memory figure.
Needs `pip install -c constraints.txt "gymnasium[mujoco]"` (the `mujoco` extra).

    .venv/bin/python benchmarks/bench_dpg_mujoco.py [--algos ddpg td3 d4pg] [--steps 100000] [--seeds 0]
                                                    [--actors 0] [--bf16]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

import pgrad  # noqa: E402
from pgrad.data.replay import PrioritizedReplayBuffer, ReplayBuffer  # noqa: E402

ENV = "HalfCheetah-v5"
THRESHOLD = 4500.0


def replay_megabytes() -> dict[str, float]:
    """Bytes of a 1M-transition HalfCheetah-v5 replay (obs 17, act 6, float32), uniform and prioritised."""
    out = {}
    for name, cls in (("uniform", ReplayBuffer), ("prioritised", PrioritizedReplayBuffer)):
        buf = cls(1_000_000, 1, (17,), (6,))
        n = sum(t.numel() * t.element_size() for t in buf.fields.values())
        if hasattr(buf, "tree"):
            n += buf.tree.nodes.nbytes
        out[name] = n / 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algos", nargs="+", default=["ddpg", "td3", "d4pg"], choices=["ddpg", "td3", "d4pg"])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--actors", type=int, default=0, help="D4PG actor processes (0: in-process)")
    ap.add_argument("--bf16", action="store_true", help="DDPG/TD3 updates in bfloat16")
    ap.add_argument("--out", default="runs/bench-dpg", help="run directories go under this folder")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    mb = replay_megabytes()
    print(f"1M-transition {ENV} replay: uniform {mb['uniform']:.1f} MB, prioritised {mb['prioritised']:.1f} MB",
          flush=True)
    rows = []
    for algo in args.algos:
        for seed in args.seeds:
            kw = {"actors": args.actors} if algo == "d4pg" else {"bf16": args.bf16}
            out = f"{args.out}/{algo}-{ENV}-s{seed}-{int(time.time())}"
            t = time.perf_counter()
            agent = pgrad.train(algo, ENV, steps=args.steps, seed=seed, out=out, eval_every=10_000, progress=False,
                                **kw)
            wall = time.perf_counter() - t
            ret = agent.evaluate(episodes=20, seed=10_000 + seed).mean_return
            with open(f"{out}/evaluations.csv") as f:
                evals = list(csv.DictReader(f))
            rows.append({"algo": algo, "seed": seed, "return": ret, "last_eval": float(evals[-1]["mean_return"]),
                         "best_eval": max(float(e["mean_return"]) for e in evals), "sps": args.steps / wall,
                         "pass": ret >= THRESHOLD})
            print(f"{algo} seed {seed}: best-checkpoint return {ret:.0f} (threshold {THRESHOLD:.0f}), last evaluation "
                  f"{rows[-1]['last_eval']:.0f}, {rows[-1]['sps']:.0f} env-steps/s", flush=True)
    print(f"\n| algo | seed | return (20 episodes) | last evaluation | >= {THRESHOLD:.0f} | env-steps/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['algo']} | {r['seed']} | {r['return']:.0f} | {r['last_eval']:.0f} | {'yes' if r['pass'] else 'no'} | "
              f"{r['sps']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": ENV, "steps": args.steps, "replay_mb": mb, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
