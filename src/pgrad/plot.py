"""Learning curves from run directories: training return (recent mean) and evaluation return against steps."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import yaml


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run_label(run_dir: Path) -> str:
    cfg_path = run_dir / "config.yaml"
    if cfg_path.exists():
        cfg = yaml.safe_load(cfg_path.read_text()) or {}
        return f"{cfg.get('algo', '?')} {cfg.get('env', '')} s{cfg.get('seed', '')}"
    return run_dir.name


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path, title: str | None = None) -> Path:
    """Overlay the curves of several runs in one PNG; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, d in enumerate(map(Path, run_dirs)):
        c = colors[i % len(colors)]
        label = run_label(d)
        prog = [r for r in _read_csv(d / "progress.csv") if r.get("return_mean")]
        if prog:
            ax.plot([float(r["step"]) for r in prog], [float(r["return_mean"]) for r in prog], color=c,
                    alpha=0.55, lw=1.2, label=f"{label} (training, last 100 episodes)")
        ev = _read_csv(d / "evaluations.csv")
        if ev:
            ax.errorbar([float(r["step"]) for r in ev], [float(r["mean_return"]) for r in ev],
                        yerr=[float(r["std_return"]) for r in ev], color=c, marker="o", ms=3.5, lw=1.6,
                        capsize=2, label=f"{label} (evaluation, deterministic)")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title or ("learning curve" if len(run_dirs) == 1 else "learning curves"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
