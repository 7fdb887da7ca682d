"""Soak test (not CI): long runs whose resident memory must stay flat. 1M steps of PPO on CartPole-v1 and 200k
steps of SAC on Pendulum-v1, with their presets and the default run settings (periodic evaluations every 10k
steps, checkpoints every 50k, TensorBoard and progress.csv written), the RSS of the process (VmRSS of
/proc/self/status) sampled every ``--sample`` env steps from inside ``Run.advance``.

Flat means: after a warm-up (the first quarter of the run: allocator pools, lazily created evaluation envs, and
SAC's replay buffer, sized here to fill during the warm-up, ``--sac-buffer``; its capacity is allocated up front
but its pages are touched as it fills), the RSS grows less than 5% by the end of the run. Reported per run:
RSS at the end of the warm-up, at the end, its maximum after the warm-up, the growth and the slope (least squares
over the post-warm-up samples, MiB per 100k steps).

    nice -n 10 .venv/bin/python benchmarks/soak.py [--only ppo|sac] [--ppo-steps 1000000] [--sac-steps 200000]
                                                   [--sample 5000] [--json soak.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np

import pgrad
from pgrad.bench import rss_mib
from pgrad.run import Run


class Sampler:
    """Wraps Run.advance: (step, RSS MiB, seconds) every ``every`` env steps."""

    def __init__(self, every: int):
        self.every, self.samples, self._next, self._t0 = every, [], 0, 0.0
        self._orig = Run.advance

    def __enter__(self) -> Sampler:
        sampler, orig = self, self._orig
        self._t0 = time.perf_counter()

        def advance(run: Run, steps: int, metrics=None, updates: int = 1) -> bool:
            keep = orig(run, steps, metrics, updates)
            if run.step >= sampler._next:
                sampler.samples.append((run.step, rss_mib(), time.perf_counter() - sampler._t0))
                while sampler._next <= run.step:
                    sampler._next += sampler.every
            return keep

        Run.advance = advance
        return self

    def __exit__(self, *exc) -> None:
        Run.advance = self._orig


def summarise(name: str, steps: int, samples: list[tuple[int, float, float]], seconds: float) -> dict:
    warm = steps // 4
    post = [(s, r) for s, r, _ in samples if s >= warm]
    at_warm = post[0][1]
    end = post[-1][1]
    peak = max(r for _, r in post)
    x = np.array([s for s, _ in post], np.float64)
    y = np.array([r for _, r in post], np.float64)
    slope = float(np.polyfit(x, y, 1)[0] * 100_000) if len(post) > 1 else 0.0
    return {"run": name, "steps": steps, "seconds": round(seconds, 1), "steps_per_s": round(steps / seconds, 1),
            "rss_start_mib": round(samples[0][1], 1), "rss_warm_mib": round(at_warm, 1), "rss_end_mib": round(end, 1),
            "rss_peak_after_warm_mib": round(peak, 1), "growth_pct": round(100.0 * (peak - at_warm) / at_warm, 2),
            "slope_mib_per_100k": round(slope, 3), "samples": samples}


def soak(name: str, algo: str, env: str, steps: int, every: int, out: str, **kw) -> dict:
    t0 = time.perf_counter()
    with Sampler(every) as sampler:
        pgrad.train(algo, env, steps=steps, seed=0, out=os.path.join(out, name), progress=False, **kw)
    res = summarise(name, steps, sampler.samples, time.perf_counter() - t0)
    print(f"{name}: {steps:,} steps in {res['seconds']:.0f}s ({res['steps_per_s']:.0f} steps/s); RSS "
          f"{res['rss_start_mib']:.0f} MiB at the first sample, {res['rss_warm_mib']:.0f} after warm-up, "
          f"{res['rss_end_mib']:.0f} at the end, peak after warm-up {res['rss_peak_after_warm_mib']:.0f}: growth "
          f"{res['growth_pct']:+.2f}% (slope {res['slope_mib_per_100k']:+.2f} MiB/100k steps) -> "
          f"{'FLAT' if res['growth_pct'] < 5.0 else 'GROWS'}", flush=True)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=["ppo", "sac"], default=None)
    p.add_argument("--ppo-steps", type=int, default=1_000_000)
    p.add_argument("--sac-steps", type=int, default=200_000)
    p.add_argument("--sac-buffer", type=int, default=50_000, help="SAC replay capacity (fills during the warm-up)")
    p.add_argument("--sample", type=int, default=5000, help="env steps between RSS samples")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as out:
        if args.only in (None, "ppo"):
            results.append(soak("ppo-CartPole-v1", "ppo", "CartPole-v1", args.ppo_steps, args.sample, out))
        if args.only in (None, "sac"):
            results.append(soak("sac-Pendulum-v1", "sac", "Pendulum-v1", args.sac_steps, args.sample, out,
                                buffer_size=args.sac_buffer))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": platform.platform(), "cpus": os.cpu_count(), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
