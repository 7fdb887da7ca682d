"""SAC bench rows of BENCHMARKS.md (MuJoCo, too slow for CI): HalfCheetah-v5 >= 5000 and Hopper-v5 >= 2000 at 100k.

Settings: the SAC paper's (lr 3e-4, 256x256 ReLU, batch 256, τ 0.005, γ 0.99, one update per step, replay 1e6)
with rl-zoo's 10k uniform random steps (pgrad's presets for these envs); version 'auto' unless --version 2018.
The return reported is that of the policy pgrad.train returns (the best periodic evaluation, checkpoints/best.pt)
re-evaluated on 20 fresh episodes with deterministic actions, and also the last policy's.
Needs `pip install -c constraints.txt "gymnasium[mujoco]"` (the `mujoco` extra).

    .venv/bin/python benchmarks/bench_sac_mujoco.py --env HalfCheetah-v5 [--steps 100000] [--seeds 0]
    .venv/bin/python benchmarks/bench_sac_mujoco.py --env Hopper-v5
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

import pgrad  # noqa: E402

THRESHOLDS = {"HalfCheetah-v5": 5000.0, "Hopper-v5": 2000.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="HalfCheetah-v5", choices=sorted(THRESHOLDS))
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--version", default="auto", choices=["auto", "2018"])
    ap.add_argument("--out", default="runs/bench-sac", help="run directories go under this folder")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        out = f"{args.out}/{args.env}-{args.version}-s{seed}-{int(time.time())}"
        t = time.perf_counter()
        agent = pgrad.train("sac", args.env, steps=args.steps, seed=seed, version=args.version, out=out,
                            eval_every=5000, eval_episodes=10, progress=False)
        elapsed = time.perf_counter() - t
        best = agent.evaluate(episodes=20, seed=20_000 + seed).mean_return
        last = pgrad.load(f"{out}/checkpoints/last.pt").evaluate(episodes=20, seed=20_000 + seed).mean_return
        row = {"env": args.env, "seed": seed, "steps": args.steps, "best_ckpt_return": best,
               "last_return": last, "env_steps_per_s": args.steps / elapsed, "threshold": THRESHOLDS[args.env],
               "passed": best >= THRESHOLDS[args.env], "run_dir": out}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
