"""``pgrad compare``: several algorithms over several seeds, with honest statistics.

    pgrad compare ppo a2c --env CartPole-v1 --seeds 5

runs every (algorithm, seed) pair in its own process (at most ``--jobs`` at once, one torch thread each), each
into its own run directory ``DIR/<algo>/s<seed>``, then writes into ``DIR``:

- ``curves.png``: per algorithm, the mean over seeds of the evaluation return (deterministic policy), each
  run's curve linearly interpolated onto a common step grid, with a pointwise 95% percentile-bootstrap band
  (seeds resampled; faint lines: the seeds themselves); beside it, the interquartile mean (IQM) of the final scores with its 95% bootstrap interval;
- ``results.md``: the table of final scores (IQM, mean, median, min, max) with 95% stratified bootstrap
  confidence intervals; ``scores.csv``: every run's final score.

A run's final score is the mean return of its last evaluation, at the end of training, of the *last*
policy (not the best one seen: picking the best of noisy evaluations would flatter every algorithm).

The statistics follow Agarwal et al., 2021, "Deep RL at the Edge of the Statistical Precipice": the IQM is
the mean of the middle 50% of the scores (robust to an outlier seed, less noisy than the median), and its
confidence interval is a percentile bootstrap that resamples runs within each task (stratified).

Interrupted comparisons resume: run the same command again. Finished runs are skipped, interrupted ones
continue from their ``checkpoints/last.pt``, and a run killed before its first checkpoint starts over.
``--steps`` may be raised on a finished comparison: every run then continues to the new budget.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pgrad.errors import ConfigError, PgradError

MARKER = "compare.json"  # written into a run directory when its run reached its budget


# ----------------------------------------------------------------------------- statistics
def iqm(scores: Any) -> float:
    """Interquartile mean: the mean of the scores left after cutting ⌊n/4⌋ from each end of the sorted scores
    (scipy.stats.trim_mean(x, 0.25), as rliable computes it). All entries are pooled."""
    x = np.sort(np.asarray(scores, dtype=float).ravel())
    if x.size == 0:
        return math.nan
    k = int(0.25 * x.size)
    return float(x[k:x.size - k].mean())


def stratified_bootstrap_ci(scores: Any, statistic: Any = iqm, reps: int = 2000, conf: float = 0.95,
                            seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` over ``scores`` [runs] or [runs, tasks].

    Each replicate resamples the runs with replacement *within each task* (column) independently, which is
    the stratified bootstrap of Agarwal et al. (2021); with one task it is the ordinary bootstrap over seeds.
    """
    x = np.asarray(scores, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    n, m = x.shape
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(reps, n, m))  # per replicate, per task: n draws among that task's runs
    samples = np.take_along_axis(np.broadcast_to(x, (reps, n, m)), idx, axis=1)
    stats = np.array([statistic(s) for s in samples])
    lo, hi = np.percentile(stats, [100 * (1 - conf) / 2, 100 * (1 + conf) / 2])
    return float(lo), float(hi)


def bootstrap_band(ys: Any, reps: int = 2000, conf: float = 0.95, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over runs of curves ``ys`` [runs, points] and its pointwise percentile bootstrap interval
    (runs resampled with replacement, the same resample at every point); a single run has no interval."""
    ys = np.asarray(ys, dtype=float)
    mean = ys.mean(axis=0)
    n = ys.shape[0]
    if n < 2:
        return mean, mean, mean
    idx = np.random.default_rng(seed).integers(0, n, size=(reps, n))
    means = ys[idx].mean(axis=1)  # [reps, points]
    lo, hi = np.percentile(means, [100 * (1 - conf) / 2, 100 * (1 + conf) / 2], axis=0)
    return mean, lo, hi


def interpolate_curves(curves: Sequence[tuple[np.ndarray, np.ndarray]], points: int = 100
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Put curves (steps, values) on one grid spanning the steps every curve covers; returns (grid, [runs, points]).

    Linear interpolation between evaluations; nothing is extrapolated beyond a run's first or last one.
    """
    curves = [(np.asarray(s, float), np.asarray(v, float)) for s, v in curves if len(s)]
    if not curves:
        return np.zeros(0), np.zeros((0, 0))
    lo = max(s[0] for s, _ in curves)
    hi = min(s[-1] for s, _ in curves)
    grid = np.array([lo]) if hi <= lo else np.linspace(lo, hi, points)
    return grid, np.stack([np.interp(grid, s, v) for s, v in curves])


# ----------------------------------------------------------------------------- one run (in a worker process)
@dataclass
class Job:
    algo: str
    env: str
    seed: int
    steps: int
    run_dir: str
    hparams: dict[str, Any]


def _worker_init() -> None:
    # Ctrl-C reaches every process of the terminal's group: an idle worker ignores it, a training one saves a
    # checkpoint and stops (pgrad.run installs its own handler while training).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["OMP_NUM_THREADS"] = "1"
    import warnings

    import torch

    from pgrad.envs import EnvCheckerWarning

    torch.set_num_threads(1)
    warnings.simplefilter("ignore", EnvCheckerWarning)  # shown once by the parent (_check_runs_can_start)


def _run_one(job: Job) -> dict[str, Any]:
    """Train (or resume) one run; returns its status and final score."""
    import pgrad

    d = Path(job.run_dir)
    t0 = time.perf_counter()
    try:
        if (d / "checkpoints" / "last.pt").exists():
            agent = pgrad.train(job.algo, resume=d, steps=job.steps, progress=False, select="last")
            how = "resumed"
        else:
            if d.exists():  # killed before its first checkpoint: nothing to keep
                shutil.rmtree(d)
            agent = pgrad.train(job.algo, job.env, steps=job.steps, seed=job.seed, out=d, progress=False,
                                select="last", **job.hparams)
            how = "trained"
    except PgradError as e:
        return {"status": "failed", "error": " ".join(str(e).split())}
    except Exception as e:  # noqa: BLE001 - one failed run must not stop the comparison
        return {"status": "failed", "error": f"{type(e).__name__}: {e}"}
    seconds = time.perf_counter() - t0
    if (agent.step or 0) < job.steps:
        return {"status": "interrupted", "step": agent.step}
    final = _final_eval(d)
    res = {"status": how, "step": agent.step, "seconds": round(seconds, 1), **(final or {})}
    (d / MARKER).write_text(json.dumps({"steps": job.steps, **res}))
    return res


# ----------------------------------------------------------------------------- reading run directories
def _read_evals(run_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import csv

    path = run_dir / "evaluations.csv"
    if not path.exists():
        return np.zeros(0), np.zeros(0), np.zeros(0)
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("step")]
    steps = np.array([float(r["step"]) for r in rows])
    order = np.argsort(steps, kind="stable")
    mean = np.array([float(r["mean_return"]) for r in rows])[order]
    std = np.array([float(r["std_return"]) for r in rows])[order]
    return steps[order], mean, std


def _final_eval(run_dir: Path) -> dict[str, float] | None:
    steps, mean, std = _read_evals(run_dir)
    if not len(steps):
        return None
    return {"final_step": int(steps[-1]), "final_return": float(mean[-1]), "final_std": float(std[-1])}


def _is_done(run_dir: Path, steps: int) -> bool:
    marker = run_dir / MARKER
    if not marker.exists():
        return False
    try:
        return json.loads(marker.read_text()).get("steps", -1) >= steps
    except (OSError, ValueError):
        return False


# ----------------------------------------------------------------------------- the comparison
def _default_steps(algo: str, env: str) -> int:
    from pgrad.algos import get_algo
    from pgrad.config import preset_for

    preset = preset_for(algo, env)
    return int(float(preset.get("steps", get_algo(algo).Config.steps)))


def _split_hparams(algos: Sequence[str], hparams: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Give each algorithm the hyperparameters its Config has; a name no algorithm has is an error."""
    from pgrad.algos import get_algo

    names = {a: set(get_algo(a).Config.field_names()) for a in algos}
    per: dict[str, dict[str, Any]] = {a: {} for a in algos}
    for key, value in hparams.items():
        k = key.replace("-", "_")
        if k in ("steps", "seed", "env", "progress", "select"):
            raise ConfigError(f"--{key.replace('_', '-')} is set by pgrad compare itself")
        owners = [a for a in algos if k in names[a]]
        if not owners:
            raise ConfigError(f"no algorithm of {', '.join(algos)} has a hyperparameter --{key.replace('_', '-')}")
        for a in owners:
            per[a][k] = value
    return per


def _check_runs_can_start(algos: Sequence[str], env: str, per_algo: dict[str, dict[str, Any]]) -> None:
    """Fail now, in one line, on an unknown env, an unsupported action space or a bad hyperparameter value,
    rather than once per run in the worker processes."""
    from pgrad.algos import get_algo
    from pgrad.api import _env_api
    from pgrad.config import make_config
    from pgrad.envs import check_action_space, check_custom_env, is_custom_id

    checked = False
    for a in algos:
        module = get_algo(a)
        make_env, describe_env, _, _ = _env_api(module)
        factory, env_id = make_env(env)
        probe = factory()
        spec = describe_env(probe, env_id)
        probe.close()
        check_action_space(spec, a, module.SPACES)
        make_config(module.Config, a, env_id, per_algo[a])
        if not checked and not getattr(module, "MULTI_AGENT", False) and is_custom_id(env_id):  # a user's module:Class: Gymnasium's checker once, here (the
            check_custom_env(factory, env_id)  # workers run it again quietly)
            checked = True


def default_out(algos: Sequence[str], env: str) -> Path:
    safe = env.replace("/", "_").replace(":", "_")
    return Path("comparisons") / f"{'-'.join(algos)}-{safe}"


def compare(algos: Sequence[str], env: str, seeds: int = 5, steps: int | None = None, out: str | Path | None = None,
            jobs: int | None = None, eval_every: int | None = None, eval_episodes: int = 10,
            hparams: dict[str, Any] | None = None, verbose: bool = True) -> dict[str, Any]:
    """Run ``algos`` x ``seeds`` on ``env`` (resuming what an earlier call left), then write the plot and table.

    ``steps``: per run (default: each algorithm's preset for ``env``, else its Config default).
    ``eval_every``: default steps // 20 (20 points per curve). ``hparams``: applied to every algorithm whose
    Config has the name. Returns {"dir", "plot", "table", "scores": {algo: [final score per seed]}, "failed"}.
    """
    from pgrad.algos import ALGOS

    if not algos:
        raise ConfigError("name at least one algorithm: pgrad compare ppo a2c --env CartPole-v1")
    algos = [ALGOS[a].__name__.rsplit(".", 1)[-1] for a in algos]  # normalise names; unknown -> one-line error
    if len(set(algos)) != len(algos):
        raise ConfigError("an algorithm is named twice")
    if seeds < 1:
        raise ConfigError("--seeds must be at least 1")
    if steps is not None and steps < 1:
        raise ConfigError("--steps must be at least 1")
    if eval_episodes < 1:
        raise ConfigError("--eval-episodes must be at least 1")
    if eval_every is not None and eval_every < 1:
        raise ConfigError("--eval-every must be at least 1")
    jobs = (os.cpu_count() or 1) if jobs is None else jobs
    if jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    per_algo = _split_hparams(algos, dict(hparams or {}))
    _check_runs_can_start(algos, env, per_algo)
    out = Path(out) if out is not None else default_out(algos, env)
    budget = {a: steps if steps is not None else _default_steps(a, env) for a in algos}
    settings = {"env": env, "eval_episodes": eval_episodes, "eval_every": eval_every, "hparams": per_algo}
    _check_settings(out, settings, budget)

    jobs_todo: list[Job] = []
    done = 0
    for a in algos:
        ev = eval_every if eval_every is not None else max(1, budget[a] // 20)
        for s in range(seeds):
            d = out / a / f"s{s}"
            if _is_done(d, budget[a]):
                done += 1
                continue
            hp = {"eval_every": ev, "eval_episodes": eval_episodes, "checkpoint_every": max(1, budget[a] // 10),
                  **per_algo[a]}
            jobs_todo.append(Job(a, env, s, budget[a], str(d), hp))
    _write_settings(out, settings, budget, algos, seeds)

    def say(*args: Any, **kw: Any) -> None:
        if verbose:
            print(*args, **kw, flush=True)  # progress must show when stdout is a file or a pipe

    total = done + len(jobs_todo)
    if done:
        say(f"{done} of {total} runs already finished in {out}; {len(jobs_todo)} to go")
    failed: dict[str, str] = {}
    interrupted = False
    if jobs_todo:
        todo = ", ".join(f"{sum(j.algo == a for j in jobs_todo)} {a}" for a in algos
                         if any(j.algo == a for j in jobs_todo))
        say(f"running {len(jobs_todo)} runs on {env} ({todo}), "
            f"{min(jobs, len(jobs_todo))} at a time; logs in {out}/<algo>/s<seed>/")
        interrupted = _run_all(jobs_todo, jobs, failed, say, done, total)
    if interrupted:
        say(f"interrupted: rerun the same command to resume ({out})")
        raise KeyboardInterrupt

    result = summarise(out, algos, seeds, env, budget)
    result["failed"] = failed
    say("")
    say(result["table_text"])
    say(f"plot:  {result['plot']}\ntable: {result['table']}\nevery run's metrics: tensorboard --logdir {out}")
    if failed:
        say(f"{len(failed)} run(s) failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    return result


def _check_settings(out: Path, settings: dict[str, Any], budget: dict[str, int]) -> None:
    path = out / "compare.yaml"
    if not path.exists():
        if out.exists() and any(out.iterdir()):
            raise PgradError(f"{out} exists and is not a pgrad comparison; choose another --out")
        return
    old = yaml.safe_load(path.read_text()) or {}
    for key in ("env", "eval_episodes", "eval_every"):
        if old.get(key) != settings[key]:
            raise PgradError(f"{out} holds a comparison with {key}={old.get(key)!r}, not {settings[key]!r}; "
                             "rerun it with the same settings to resume, or choose another --out")
    for a, hp in settings["hparams"].items():
        if a in old.get("hparams", {}) and old["hparams"][a] != hp:
            raise PgradError(f"{out} ran {a} with hyperparameters {old['hparams'][a]}, not {hp}; "
                             "choose another --out")
    for a, n in budget.items():
        if n < old.get("steps", {}).get(a, 0):
            raise PgradError(f"{out} ran {a} for {old['steps'][a]} steps; --steps may only be raised "
                             "(or choose another --out)")


def _write_settings(out: Path, settings: dict[str, Any], budget: dict[str, int], algos: list[str],
                    seeds: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "compare.yaml"
    old = yaml.safe_load(path.read_text()) if path.exists() else {}
    old = old or {}
    merged_algos = list(dict.fromkeys(list(old.get("algos", [])) + algos))
    doc = {"algos": merged_algos, "seeds": max(seeds, old.get("seeds", 0)), **settings,
           "hparams": {**old.get("hparams", {}), **settings["hparams"]},
           "steps": {**old.get("steps", {}), **budget}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _run_all(todo: list[Job], jobs: int, failed: dict[str, str], say: Any, done: int, total: int) -> bool:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # fresh interpreters: no forked torch/OpenMP state
    finished = done
    interrupted = False
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx, initializer=_worker_init)
    futures: dict[Future, Job] = {pool.submit(_run_one, j): j for j in todo}
    pending = set(futures)
    try:
        while pending:
            try:
                ready, pending = wait(pending, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                interrupted = True
                say("\npgrad compare: stopping; each running run saves a checkpoint first", file=sys.stderr)
                for f in pending:
                    f.cancel()
                continue
            for f in ready:
                j = futures[f]
                if f.cancelled():
                    continue
                try:
                    r = f.result()
                except Exception as e:  # noqa: BLE001 - a worker that died
                    r = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
                name = f"{j.algo} seed {j.seed}"
                if r["status"] == "failed":
                    failed[name] = r["error"]
                    say(f"  {name}: FAILED: {r['error']}")
                elif r["status"] == "interrupted":
                    interrupted = True
                    say(f"  {name}: stopped at step {r['step']:,} (checkpoint saved)")
                else:
                    finished += 1
                    score = f"{r['final_return']:.1f}" if "final_return" in r else "?"
                    say(f"  [{finished}/{total}] {name}: final evaluation {score} "
                        f"({r['status']}, {r['seconds']:.0f} s)")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return interrupted


# ----------------------------------------------------------------------------- summary: table and plot
def summarise(out: str | Path, algos: Sequence[str] | None = None, seeds: int | None = None,
              env: str | None = None, budget: dict[str, int] | None = None) -> dict[str, Any]:
    """Write results.md, scores.csv and curves.png from the finished runs in ``out``; returns their paths."""
    out = Path(out)
    cfg = yaml.safe_load((out / "compare.yaml").read_text()) if (out / "compare.yaml").exists() else {}
    algos = list(algos or cfg.get("algos", []))
    seeds = seeds or cfg.get("seeds", 0)
    env = env or cfg.get("env", "")
    budget = budget or cfg.get("steps", {})
    scores: dict[str, list[float]] = {}
    curves: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    rows = ["algo,seed,steps,final_return,final_std"]
    for a in algos:
        scores[a], curves[a] = [], []
        for s in range(seeds):
            d = out / a / f"s{s}"
            if not _is_done(d, budget.get(a, 0)):
                continue
            steps, mean, _ = _read_evals(d)
            final = _final_eval(d)
            if final is None:
                continue
            scores[a].append(final["final_return"])
            curves[a].append((steps, mean))
            rows.append(f"{a},{s},{final['final_step']},{final['final_return']:.6g},{final['final_std']:.6g}")
    (out / "scores.csv").write_text("\n".join(rows) + "\n")
    table_text = results_table(scores, env, budget, seeds)
    (out / "results.md").write_text(table_text + "\n")
    plot = plot_comparison(curves, scores, out / "curves.png", env)
    return {"dir": out, "plot": plot, "table": out / "results.md", "scores": scores, "table_text": table_text}


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{x:.1f}" if abs(x) < 1e4 else f"{x:.3g}"


def results_table(scores: dict[str, list[float]], env: str, budget: dict[str, int], seeds: int) -> str:
    """The markdown table of final scores: IQM and mean with 95% stratified bootstrap intervals."""
    lines = [
        (f"Final scores on {env}: the mean return of each run's last evaluation (deterministic policy at the end "
         f"of training), over {seeds} seed{'s' if seeds != 1 else ''} per algorithm. IQM: interquartile mean; "
         "[95% CI]: percentile stratified bootstrap (2000 resamples of the runs)."),
        "",
        "| algorithm | steps | runs | IQM [95% CI] | mean [95% CI] | median | min | max |",
        "|---|---:|---:|---|---|---:|---:|---:|",
    ]
    for a, x in scores.items():
        if not x:
            lines.append(f"| {a} | {budget.get(a, 0):,} | 0 | - | - | - | - | - |")
            continue
        v = np.asarray(x)
        ilo, ihi = stratified_bootstrap_ci(v, iqm)
        mlo, mhi = stratified_bootstrap_ci(v, np.mean)
        lines.append(f"| {a} | {budget.get(a, 0):,} | {len(v)} | {_fmt(iqm(v))} [{_fmt(ilo)}, {_fmt(ihi)}] | "
                     f"{_fmt(float(v.mean()))} [{_fmt(mlo)}, {_fmt(mhi)}] | {_fmt(float(np.median(v)))} | "
                     f"{_fmt(float(v.min()))} | {_fmt(float(v.max()))} |")
    if any(0 < len(x) < 5 for x in scores.values()):
        lines += ["", ("With fewer than 5 runs the intervals are rough: the IQM of fewer than 4 runs is their mean, "
                       "and a bootstrap over so few values cannot see beyond them.")]
    return "\n".join(lines)


def plot_comparison(curves: dict[str, list[tuple[np.ndarray, np.ndarray]]], scores: dict[str, list[float]],
                    path: str | Path, env: str) -> Path:
    """Left: mean evaluation curve per algorithm with a 95% band; right: final-score IQM with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.6), dpi=120, gridspec_kw={"width_ratios": [2.6, 1]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = list(curves)
    for i, a in enumerate(names):
        c = colors[i % len(colors)]
        runs = curves[a]
        if not runs:
            continue
        grid, ys = interpolate_curves(runs)
        mean, lo, hi = bootstrap_band(ys)
        ax.plot(grid, mean, color=c, lw=2, label=f"{a} ({len(runs)} seed{'s' if len(runs) != 1 else ''})")
        if len(runs) > 1:
            ax.fill_between(grid, lo, hi, color=c, alpha=0.2, lw=0)
        for s, v in runs:  # each seed, faint: shows the spread the band summarises
            ax.plot(s, v, color=c, lw=0.8, alpha=0.35)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return (deterministic policy)")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k" if abs(x) >= 1000 else f"{x:g}"))
    ax.set_title(f"{env}: mean over seeds, 95% bootstrap confidence band", fontsize=10)
    ax.grid(alpha=0.3)
    if names:
        ax.legend(fontsize=9, loc="best")

    ys_pos = np.arange(len(names))[::-1]
    for i, a in enumerate(names):
        c = colors[i % len(colors)]
        x = np.asarray(scores.get(a, []))
        if not len(x):
            continue
        lo, hi = stratified_bootstrap_ci(x, iqm)
        m = iqm(x)
        bx.plot([lo, hi], [ys_pos[i]] * 2, color=c, lw=8, alpha=0.35, solid_capstyle="butt")
        bx.plot([m], [ys_pos[i]], marker="|", ms=16, mew=2.5, color=c)
        bx.scatter(x, [ys_pos[i]] * len(x), s=10, color="black", alpha=0.5, zorder=3)
    bx.set_yticks(ys_pos, names)
    bx.set_xlabel("final score: IQM, 95% CI, runs")
    bx.set_title("final scores", fontsize=10)
    bx.grid(axis="x", alpha=0.3)
    bx.set_ylim(-0.8, len(names) - 0.2)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- CLI
USAGE = """usage: pgrad compare ALGO [ALGO ...] --env ENV [--seeds 5] [--steps N] [--out DIR] [--jobs J]
                     [--eval-every N] [--eval-episodes N] [--KEY VALUE ...]

Train each algorithm on ENV with seeds 0..S-1 (one process per run, J at a time), then write
DIR/curves.png (mean evaluation curves with 95% confidence bands, final-score IQM) and DIR/results.md
(final scores: interquartile mean and mean with 95% stratified bootstrap intervals).

  --env ENV            Gymnasium environment id, or module:Class / module:factory for your own env (required)
  --seeds S            seeds per algorithm (default 5)
  --steps N            env steps per run (default: each algorithm's preset for ENV, else its default)
  --out DIR            comparison directory (default comparisons/<algos>-<env>)
  --jobs J             runs at once (default: the number of CPU cores; each run uses one torch thread;
                       a3c workers and d4pg actors add processes of their own)
  --eval-every N       evaluate every N steps (default: steps / 20)
  --eval-episodes N    episodes per evaluation (default 10); the last evaluation is the final score
  --KEY VALUE          a hyperparameter, given to every named algorithm whose Config has it

Interrupted (Ctrl-C, a crash)? Run the same command again: finished runs are kept, the others resume from
their last checkpoint. Raising --steps continues every run to the new budget.
"""


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or "--help" in argv or "-h" in argv:
        print(USAGE)
        return 0
    algos: list[str] = []
    rest = list(argv)
    while rest and not rest[0].startswith("-"):
        algos.append(rest.pop(0))
    opts: dict[str, str] = {}
    known = {"env", "seeds", "steps", "out", "jobs", "eval-every", "eval-episodes"}
    hp_tokens: list[str] = []
    i = 0
    while i < len(rest):
        tok = rest[i]
        key = tok[2:].partition("=")[0] if tok.startswith("--") else None
        if key in known:
            if "=" in tok:
                opts[key] = tok.partition("=")[2]
                i += 1
            else:
                if i + 1 >= len(rest):
                    raise ConfigError(f"--{key} needs a value")
                opts[key] = rest[i + 1]
                i += 2
        else:
            hp_tokens.append(tok)
            i += 1
    if "env" not in opts:
        raise ConfigError("name an environment: pgrad compare ppo a2c --env CartPole-v1")
    if not algos:
        raise ConfigError("name at least one algorithm: pgrad compare ppo a2c --env CartPole-v1")
    hparams = _parse_hparams(hp_tokens)

    def as_int(key: str) -> int | None:
        if key not in opts:
            return None
        try:
            return int(float(opts[key].replace("_", "")))
        except ValueError:
            raise ConfigError(f"--{key} takes an integer, got {opts[key]!r}") from None

    seeds, eval_episodes = as_int("seeds"), as_int("eval-episodes")
    compare(algos, opts["env"], seeds=5 if seeds is None else seeds, steps=as_int("steps"), out=opts.get("out"),
            jobs=as_int("jobs"), eval_every=as_int("eval-every"),
            eval_episodes=10 if eval_episodes is None else eval_episodes, hparams=hparams)
    return 0


def _parse_hparams(tokens: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--"):
            raise ConfigError(f"unexpected argument {tok!r}: options are --name value (see pgrad compare --help)")
        key, _, inline = tok[2:].partition("=")
        values = [inline] if inline else []
        j = i + 1
        while not inline and j < len(tokens) and not tokens[j].startswith("--"):
            values.append(tokens[j])
            j += 1
        out[key.replace("-", "_")] = values[0] if len(values) == 1 else (values or "true")
        i = j
    return out


def _register() -> None:
    from pgrad.cli import COMMANDS

    COMMANDS["compare"] = ("compare algorithms over seeds: curves with 95% bands, IQM table", main)


_register()
