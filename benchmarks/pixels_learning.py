"""Pixel learning rows of issue 18 (MinAtar and Atari; hours on 2 CPU cores, so not in CI).

Each row trains ``pgrad train ALGO ENV`` with the env family's preset (src/pgrad/presets/<algo>.yaml: minatar or
atari) for its budget and seeds. Runs live in --out/<algo>-<env>-s<seed>; a run that exists is resumed with
``--resume`` (so a row longer than a session continues in the next), one that finished is only read. The score
is the raw game score: the mean of the last evaluation in evaluations.csv (full games, unclipped), averaged over
the seeds; ``--report`` writes the table and one curve per row (docs/benchmarks.md links them), copies each run's
evaluations.csv to benchmarks/results/pixels/ and reads seeds whose run directory is gone from there.

    .venv/bin/python benchmarks/pixels_learning.py --rows ppo-minatar-breakout --seeds 0 1 2
    .venv/bin/python benchmarks/pixels_learning.py --report docs/img/pixels   # table + curves of what exists
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

# name -> (algo, env id, steps, threshold of issue 18 on the raw score)
ROWS: dict[str, tuple[str, str, int, float]] = {
    "ppo-minatar-spaceinvaders": ("ppo", "MinAtar/SpaceInvaders-v1", 2_000_000, 60.0),
    "ppo-minatar-freeway": ("ppo", "MinAtar/Freeway-v1", 1_000_000, 40.0),
    "ppo-minatar-asterix": ("ppo", "MinAtar/Asterix-v1", 3_000_000, 8.0),
    "ppo-minatar-breakout": ("ppo", "MinAtar/Breakout-v1", 3_000_000, 5.0),
    "a2c-minatar-spaceinvaders": ("a2c", "MinAtar/SpaceInvaders-v1", 3_000_000, 60.0),
    "a3c-minatar-spaceinvaders": ("a3c", "MinAtar/SpaceInvaders-v1", 3_000_000, 60.0),
    "acer-minatar-spaceinvaders": ("acer", "MinAtar/SpaceInvaders-v1", 2_000_000, 50.0),
    "acktr-minatar-spaceinvaders": ("acktr", "MinAtar/SpaceInvaders-v1", 2_000_000, 50.0),
    "trpo-minatar-spaceinvaders": ("trpo", "MinAtar/SpaceInvaders-v1", 2_000_000, 40.0),
    "ppo-atari-pong": ("ppo", "PongNoFrameskip-v4", 3_000_000, 18.0),
}


RESULTS = Path(__file__).parent / "results" / "pixels"  # evaluations.csv of every run, committed


def run_dir(out: Path, row: str, seed: int) -> Path:
    algo, env, _, _ = ROWS[row]
    return out / f"{algo}-{env.replace('/', '_')}-s{seed}"


def evaluations(d: Path) -> list[tuple[int, float]]:
    path = d / "evaluations.csv" if d.is_dir() else d
    if not path.exists():
        return []
    with open(path) as f:
        return [(int(r["step"]), float(r["mean_return"])) for r in csv.DictReader(f)]


def committed(row: str, seed: int) -> Path:
    """The evaluation record of a run kept in the repository (the run directories are not: they are gigabytes)."""
    return RESULTS / f"{run_dir(Path(), row, seed).name}.csv"


def seed_source(out: Path, row: str, seed: int) -> Path | None:
    """Where a seed's evaluations are: its run directory, or, when the run is gone (another machine), the
    committed record; the record is refreshed from a run directory that has gone further."""
    d, rec = run_dir(out, row, seed), committed(row, seed)
    live, kept = evaluations(d), evaluations(rec)
    if live and (not kept or live[-1][0] >= kept[-1][0]):
        RESULTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(d / "evaluations.csv", rec)
        return d
    if kept:
        algo, env, _, _ = ROWS[row]
        d = Path(tempfile.mkdtemp(prefix="pixels-")) / d.name  # a stand-in run directory for `pgrad plot`
        d.mkdir()
        shutil.copyfile(rec, d / "evaluations.csv")
        (d / "config.yaml").write_text(f"algo: {algo}\nenv: {env}\nseed: {seed}\n")
        return d
    return None


def train(row: str, seed: int, out: Path, threads: int) -> int:
    """Start or resume one run in a child process (Ctrl-C or a kill leaves a checkpoint to resume from)."""
    algo, env, steps, _ = ROWS[row]
    d = run_dir(out, row, seed)
    pgrad = [sys.executable, "-m", "pgrad.cli"]
    common = ["--progress", "false", "--threads", str(threads)]
    if (d / "config.yaml").exists():
        evals = evaluations(d)
        if evals and evals[-1][0] >= steps:
            print(f"{row} seed {seed}: finished ({evals[-1][1]:.1f} at {evals[-1][0]:,})", flush=True)
            return 0
        cmd = [*pgrad, "train", algo, "--resume", str(d), "--steps", str(steps), *common]
    else:
        cmd = [*pgrad, "train", algo, env, "--steps", str(steps), "--seed", str(seed), "--out", str(d), *common]
    print(" ".join(cmd[2:]), flush=True)
    return subprocess.call(cmd)


def report(out: Path, img: Path | None) -> str:
    lines = ["| row | steps | threshold (raw score) | seeds: last evaluation (at step) | mean | met |",
             "|---|---|---|---|---|---|"]
    for row, (_, _, steps, threshold) in ROWS.items():
        sources = {s: seed_source(out, row, s) for s in range(10)}
        sources = {s: d for s, d in sources.items() if d is not None}
        runs = {s: evaluations(d) for s, d in sources.items()}
        if not runs:
            continue
        last = {s: e[-1] for s, e in runs.items()}
        done = all(step >= steps for step, _ in last.values())
        mean = sum(v for _, v in last.values()) / len(last)
        met = ("yes" if mean >= threshold else "no") if done and len(last) >= 3 else \
            f"not yet ({len(last)} seed{'s' if len(last) > 1 else ''}{'' if done else ', running'})"
        seeds = ", ".join(f"s{s}: {v:.1f} ({step:,})" for s, (step, v) in last.items())
        lines.append(f"| {row} | {steps:,} | ≥ {threshold:g} | {seeds} | {mean:.1f} | {met} |")
        if img is not None:
            img.mkdir(parents=True, exist_ok=True)
            dirs = [str(sources[s]) for s in runs]
            subprocess.call([sys.executable, "-m", "pgrad.cli", "plot", *dirs, "-o", str(img / f"{row}.png")])
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", nargs="+", default=[], choices=list(ROWS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="runs/pixels", help="run directories go under this folder")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report", default=None, metavar="IMG_DIR", help="print the table and write curves there")
    args = ap.parse_args()
    out = Path(args.out)
    for row in args.rows:
        for seed in args.seeds:
            rc = train(row, seed, out, args.threads)
            if rc != 0:
                print(f"{row} seed {seed}: exit code {rc}; resume with the same command", flush=True)
                sys.exit(rc)
    if args.report is not None:
        print(report(out, Path(args.report)))


if __name__ == "__main__":
    main()
