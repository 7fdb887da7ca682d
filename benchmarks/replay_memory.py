"""Replay memory per transition for Atari observations (4x84x84 uint8 frame stacks), issue 18 item 5: 1M
transitions must fit in under 8 GB.

Bytes per transition are the bytes of the arrays each buffer allocates (``nbytes``) at ``--capacity``
transitions, extrapolated linearly to 1M: pgrad's ReplayBuffer storing uint8 obs and next_obs, pgrad's
ReplayBuffer with ``frame_stack=4`` (each frame once), and Stable-Baselines3's ReplayBuffer with
``optimize_memory_usage`` False and True. Then, in a fresh child process each, pgrad's buffers are filled with
``--fill`` transitions of a fake Atari-like vector env (``--envs`` envs of random 84x84 frames, stacked 4 deep as
pgrad's FrameStack does, episodes ending with probability 1/``--episode`` per step): the growth of the process's
resident memory (VmRSS), the side tables that frame dedup grew (one frame per episode end), and the CPU time
(process time, not wall: the machine may be shared) of ``add`` per vector step and of ``sample(32)`` and
``sample(256)``. Both include page faults: an ``add`` touches fresh calloc'd pages until the buffer has wrapped.

    nice -n 10 .venv/bin/python benchmarks/replay_memory.py [--capacity 10000] [--fill 20000] [--envs 8]
                                                            [--episode 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from pgrad.bench import rss_mib
from pgrad.data.replay import ReplayBuffer, replay_bytes

SHAPE, K = (4, 84, 84), 4
MILLION = 1_000_000


def pgrad_buffer(capacity: int, envs: int, frame_stack: int) -> ReplayBuffer:
    return ReplayBuffer(capacity, envs, SHAPE, (), torch.long, gamma=0.99, obs_dtype=torch.uint8,
                        frame_stack=frame_stack)


def pgrad_bytes(buf: ReplayBuffer) -> int:
    """Every array the buffer holds (its side tables included, as allocated: 16 entries before any is used)."""
    n = sum(t.nbytes for t in buf.fields.values())
    if buf.frame_stack:
        n += sum(t.nbytes for t in buf.side.values()) + buf._stacks.data.nbytes + buf._finals.data.nbytes
    return n


def sb3_bytes(capacity: int, optimize: bool) -> int | None:
    try:
        from gymnasium import spaces
        from stable_baselines3.common.buffers import ReplayBuffer as SB3Replay
    except ImportError:
        return None
    buf = SB3Replay(capacity, spaces.Box(0, 255, SHAPE, np.uint8), spaces.Discrete(6), device="cpu",
                    optimize_memory_usage=optimize, handle_timeout_termination=not optimize)
    arrays = [buf.observations, buf.actions, buf.rewards, buf.dones, getattr(buf, "timeouts", None)]
    if not optimize:
        arrays.append(buf.next_observations)
    return sum(a.nbytes for a in arrays if a is not None)


def fill(spec: dict) -> dict:
    """Child: fill a fresh buffer with a fake frame-stacking vector env, measure RSS growth and timings."""
    N, T, p_end = spec["envs"], spec["fill"] // spec["envs"], 1.0 / spec["episode"]
    g = torch.Generator().manual_seed(0)
    frame = lambda n: torch.randint(0, 256, (n, 1) + SHAPE[1:], generator=g, dtype=torch.uint8)  # noqa: E731
    obs = frame(N).expand(N, *SHAPE).clone()
    before = rss_mib()
    buf = pgrad_buffer(spec["fill"], N, spec["frame_stack"])
    allocated = rss_mib()
    add_s = 0.0
    ends = 0
    for _ in range(T):
        nxt = torch.cat([obs[:, 1:], frame(N)], 1)
        u = torch.rand(N, generator=g)
        term, trunc = u < p_end / 2, (u >= p_end / 2) & (u < p_end)
        act, rew = torch.randint(0, 6, (N,), generator=g), torch.randn(N, generator=g)
        t0 = time.process_time()
        buf.add(obs, act, rew, term, trunc, nxt)
        add_s += time.process_time() - t0
        done = term | trunc
        ends += int(done.sum())
        obs = torch.where(done.view(N, 1, 1, 1), frame(N).expand(N, *SHAPE), nxt)
    after = rss_mib()
    torch.manual_seed(0)
    buf.sample(32)
    sample_us = {}
    for B in (32, 256):
        t0 = time.process_time()
        for _ in range(200):
            buf.sample(B)
        sample_us[B] = (time.process_time() - t0) / 200 * 1e6
    side = 0
    if buf.frame_stack:
        side = sum(pool.used * pool.data.element_size() * math.prod(pool.data.shape[1:])
                   for pool in (buf._stacks, buf._finals))
    return {"frame_stack": spec["frame_stack"], "transitions": T * N, "episode_ends": ends,
            "rss_alloc_mib": allocated - before, "rss_growth_mib": after - before,
            "nominal_mib": pgrad_bytes(buf) / 2**20, "side_used_bytes": side,
            "add_us": add_s / T * 1e6, "sample32_us": sample_us[32], "sample256_us": sample_us[256]}


def child(spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"child {spec} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--capacity", type=int, default=10_000)
    p.add_argument("--fill", type=int, default=20_000)
    p.add_argument("--envs", type=int, default=8)
    p.add_argument("--episode", type=int, default=200, help="mean episode length of the fake env (steps)")
    p.add_argument("--json", default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(fill(json.loads(a.child))))
        return

    cap = a.capacity
    rows = []
    for name, k in (("pgrad, uint8 obs + next_obs", 0), ("pgrad, frame_stack=4 (each frame once)", 4)):
        buf = pgrad_buffer(cap, 1, k)
        nb = pgrad_bytes(buf)
        assert replay_bytes(cap, 1, SHAPE, torch.uint8, k, (), torch.long) <= nb
        rows.append((name, nb))
        del buf
    for opt in (False, True):
        nb = sb3_bytes(cap, opt)
        if nb is not None:
            rows.append((f"SB3 ReplayBuffer, optimize_memory_usage={opt}", nb))

    print(f"Replay memory, 4x84x84 uint8 observations, 1 env, capacity {cap:,} (arrays' nbytes), "
          f"extrapolated to 1M transitions\n")
    print("| buffer | bytes / transition | 1M transitions | under 8 GB |")
    print("|---|---:|---:|:-:|")
    table = []
    for name, nb in rows:
        per = nb / cap
        table.append({"buffer": name, "bytes_per_transition": per, "gb_per_million": per * MILLION / 1e9})
        print(f"| {name} | {per:,.0f} | {per * MILLION / 1e9:.2f} GB | {'yes' if per * MILLION < 8e9 else 'no'} |")

    fills = [child({"frame_stack": k, "fill": a.fill, "envs": a.envs, "episode": a.episode}) for k in (4, 0)]
    print(f"\nFilled with {a.fill:,} transitions ({a.envs} envs, random 84x84 frames, mean episode {a.episode} "
          f"steps), each in a fresh process\n")
    print("| buffer | RSS after allocating | RSS growth filled | of which side tables | bytes / transition (RSS)"
          " | add / vector step | sample(32) | sample(256) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in fills:
        name = "pgrad, frame_stack=4" if r["frame_stack"] else "pgrad, uint8 obs + next_obs"
        per = r["rss_growth_mib"] * 2**20 / r["transitions"]
        side = (f"{r['side_used_bytes'] / 2**20:.2f} MiB ({r['episode_ends']} episode ends)" if r["frame_stack"]
                else "-")
        print(f"| {name} | {r['rss_alloc_mib']:.1f} MiB | {r['rss_growth_mib']:.1f} MiB | "
              f"{side} | {per:,.0f} | "
              f"{r['add_us']:.0f} us | {r['sample32_us']:.0f} us | {r['sample256_us']:.0f} us |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"capacity": cap, "nominal": table, "fills": fills}, f, indent=1)


if __name__ == "__main__":
    main()
