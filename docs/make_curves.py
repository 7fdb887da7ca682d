"""Put the learning curves of finished `pgrad compare` runs into the algorithm pages.

    python docs/make_curves.py COMPARISON_DIR...

For each comparison directory (made by `pgrad compare`): copies its curves.png to docs/algorithms/img/<name>.png and
writes, into the page of every algorithm it compared, the block between ``<!-- generated:curve start -->`` and
``<!-- generated:curve end -->``: the figure, the command that reproduces it, and the table of final scores.
These come from measured runs, not from the code, so no test regenerates them; rerun this script when a new
comparison is made. Pages no comparison covers say so.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "docs" / "algorithms"
START, END = "<!-- generated:curve start -->", "<!-- generated:curve end -->"
MISSING = ("Not measured yet: no `pgrad compare` run of this algorithm is in the docs (the comparisons here ran on "
           "a shared 2-core machine and were limited to the fastest settings). Make one with the command in "
           "[the index](index.md#reading-the-learning-curves).")


def command(cfg: dict) -> str:
    algos = " ".join(cfg["algos"])
    steps = set(cfg["steps"].values())
    parts = [f"pgrad compare {algos} --env {cfg['env']} --seeds {cfg['seeds']}"]
    if len(steps) == 1:
        parts.append(f"--steps {steps.pop()}")
    if cfg.get("eval_every"):
        parts.append(f"--eval-every {cfg['eval_every']}")
    shared = {}
    for hp in cfg.get("hparams", {}).values():
        shared.update(hp)
    parts += [f"--{k.replace('_', '-')} {v}" for k, v in shared.items()]
    return " ".join(parts)


def block(algo: str, comp: Path, cfg: dict) -> str:
    name = comp.name
    table = (comp / "results.md").read_text().strip().splitlines()
    rows = [ln.replace(f"| {algo} |", f"| **{algo}** |") for ln in table if ln.startswith("|")]
    others = [a for a in cfg["algos"] if a != algo]
    with_ = f" beside {', '.join(others)}" if others else ""
    return "\n".join([
        (f"{algo} on {cfg['env']}{with_}, {cfg['seeds']} seeds, evaluation return of the deterministic policy "
         "(mean over seeds, 95% bootstrap band; right: final-score IQM with its 95% stratified bootstrap "
         "interval):"),
        "", f"![{algo} learning curve on {cfg['env']}](img/{name}.png)", "",
        "Reproduce:", "", "```bash", command(cfg), "```", "",
        "Final scores (the last evaluation of each run, on 10 fresh episodes):", "", *rows, "",
    ])


def main(dirs: list[str]) -> int:
    covered: dict[str, str] = {}
    (PAGES / "img").mkdir(exist_ok=True)
    for d in map(Path, dirs):
        cfg = yaml.safe_load((d / "compare.yaml").read_text())
        shutil.copyfile(d / "curves.png", PAGES / "img" / f"{d.name}.png")
        for algo in cfg["algos"]:
            covered[algo] = covered.get(algo, "") + block(algo, d, cfg) + "\n"
    for page in sorted(PAGES.glob("*.md")):
        if page.stem == "index":
            continue
        text = page.read_text()
        if START not in text:
            continue
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        body = covered.get(page.stem, MISSING + "\n")
        page.write_text(f"{head}{START}\n{body}{END}{tail}")
        print(f"{page.relative_to(ROOT)}: {'curve' if page.stem in covered else 'no curve'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
