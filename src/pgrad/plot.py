"""Learning curves from run directories: training return (recent mean) and evaluation return against steps."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import yaml


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _config(run_dir: Path) -> dict:
    cfg_path = run_dir / "config.yaml"
    if cfg_path.exists():
        return yaml.safe_load(cfg_path.read_text()) or {}
    return {}


def run_label(run_dir: Path) -> str:
    cfg = _config(Path(run_dir))
    if cfg:
        return f"{cfg.get('algo', '?')} {cfg.get('env', '')} s{cfg.get('seed', '')}"
    return Path(run_dir).name


def _labels(run_dirs: list[Path]) -> tuple[list[str], str]:
    """Short per-run labels (only what differs between the runs) and a title for what they share."""
    cfgs = [_config(d) for d in run_dirs]
    keys = ("algo", "env", "seed")
    shared = {k: cfgs[0].get(k) for k in keys if cfgs[0] and all(c.get(k) == cfgs[0].get(k) for c in cfgs)}
    labels = []
    for d, c in zip(run_dirs, cfgs):
        if not c:
            labels.append(d.name)
            continue
        parts = [str(c.get("algo"))] if "algo" not in shared else []
        if "env" not in shared:
            parts.append(str(c.get("env")))
        if "seed" not in shared:
            parts.append(f"seed {c.get('seed')}")
        label = " ".join(parts) or d.name
        labels.append(label if labels.count(label) == 0 else f"{label} ({d.name})")
    title_parts = []
    if "algo" in shared:
        title_parts.append(str(shared["algo"]))
    if "env" in shared:
        title_parts.append(f"on {shared['env']}")
    if "seed" in shared:
        title_parts.append(f"(seed {shared['seed']})")
    return labels, " ".join(title_parts)


def _steps_formatter():
    from matplotlib.ticker import FuncFormatter

    def fmt(x: float, _pos: int) -> str:
        if abs(x) >= 1e6:
            return f"{x / 1e6:g}M"
        if abs(x) >= 1e3:
            return f"{x / 1e3:g}k"
        return f"{x:g}"

    return FuncFormatter(fmt)


TRAIN = "training (mean of the last 100 episodes, exploring)"
EVAL = "evaluation (deterministic policy, mean ± std of {n} episodes)"


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path, title: str | None = None) -> Path:
    """Overlay the curves of several runs in one PNG; returns its path.

    Per run: the evaluation return of the deterministic policy (mean ± std over its evaluation episodes, solid
    with markers) and the training return (mean of the last 100 training episodes, with exploration; faint).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dirs = [Path(d) for d in run_dirs]
    labels, shared = _labels(dirs)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    single = len(dirs) == 1
    for i, (d, label) in enumerate(zip(dirs, labels)):
        c = colors[i % len(colors)]
        prog = [r for r in _read_csv(d / "progress.csv") if r.get("return_mean")]
        if prog:
            ax.plot([float(r["step"]) for r in prog], [float(r["return_mean"]) for r in prog], color=c,
                    alpha=0.45, lw=1.2, label=TRAIN if single else None)
        ev = [r for r in _read_csv(d / "evaluations.csv") if r.get("mean_return")]
        if ev:
            n = ev[-1].get("episodes", "")
            ax.errorbar([float(r["step"]) for r in ev], [float(r["mean_return"]) for r in ev],
                        yerr=[float(r["std_return"]) for r in ev], color=c, marker="o", ms=3.5, lw=1.8,
                        capsize=2, label=EVAL.format(n=n) if single else label)
    if not single:  # one entry per run (its colour), and one per line style
        ax.plot([], [], color="gray", marker="o", ms=3.5, lw=1.8, label=EVAL.format(n="its").replace(
            "of its episodes", "over episodes"))
        ax.plot([], [], color="gray", alpha=0.45, lw=1.2, label=TRAIN)
    ax.set_xlabel("environment steps")
    ax.xaxis.set_major_formatter(_steps_formatter())
    ax.set_ylabel("episode return")
    ax.set_title(title or (shared if single else f"learning curves {shared}".strip()) or "learning curves")
    ax.grid(alpha=0.3)
    if ax.has_data():
        ax.legend(fontsize=8, loc="best")
    else:
        ax.text(0.5, 0.5, "no finished episode or evaluation yet", ha="center", va="center",
                transform=ax.transAxes, color="gray")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
