"""Regenerate the tables of docs/algorithms/*.md that come from the code, so they cannot drift from it.

    python docs/gen_hparams.py           # rewrite the generated blocks in place
    python docs/gen_hparams.py --check   # exit 1 and name the stale pages (tests/unit/test_docs.py runs this)

Three kinds of block, each between ``<!-- generated:KIND start -->`` and ``<!-- generated:KIND end -->``:
- ``hparams`` (an algorithm page): every field of the algorithm's Config that is not a run setting, with its CLI flag,
  default, valid range and the docstring under the field (which names the post's symbol), plus the envs with a preset;
- ``equations`` (an algorithm page): its rows of docs/equations.md (equation, function, tagged line);
- ``metrics`` (an algorithm page): its rows of docs/metrics.md (metric, formula, what it tells you);
- ``run-settings`` (index.md): the BaseConfig fields every algorithm shares.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "docs" / "algorithms"
EQUATIONS = ROOT / "docs" / "equations.md"
METRICS = ROOT / "docs" / "metrics.md"
BLOCK = re.compile(r"(<!-- generated:(?P<kind>[a-z-]+) start -->\n)(?P<body>.*?)(<!-- generated:(?P=kind) end -->)",
                   re.DOTALL)


# ----------------------------------------------------------------------------- docs/equations.md
def read_equations(path: Path = EQUATIONS) -> list[dict[str, str]]:
    """Rows of the equations map: {eq, algo, n, section, equation, function, file, tag}; raises on a malformed row."""
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.startswith("| ") or line.startswith("| eq |"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) != 6:
            raise ValueError(f"{path.name}:{lineno}: {len(cells)} cells, not 6 (a '|' inside LaTeX? use \\mid)")
        eq, section, equation, function, file, tag = cells
        m = re.fullmatch(r"([a-z0-9_]+) \(([0-9a-z]+)\)", eq)
        if not m:
            raise ValueError(f"{path.name}:{lineno}: eq {eq!r} is not '<algo> (n)'")
        rows.append({"eq": eq, "algo": m.group(1), "n": m.group(2), "section": section, "equation": equation,
                     "function": function.strip("`"), "file": file.strip("`"), "tag": tag.strip("`"),
                     "line": str(lineno)})
    return rows


def read_metrics(path: Path = METRICS) -> list[dict[str, Any]]:
    """Rows of the per-algorithm table of docs/metrics.md: {metric, algos, formula, notes}."""
    rows = []
    text = path.read_text().split("## Per algorithm", 1)[1]
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) != 4:
            raise ValueError(f"{path.name}: {len(cells)} cells, not 4, in {line[:60]!r}")
        metric, algos, formula, notes = cells
        rows.append({"metric": metric.strip("`"), "algos": re.findall(r"`([a-z0-9_]+)`", algos),
                     "formula": formula, "notes": notes})
    return rows


# ----------------------------------------------------------------------------- tables
def _fmt_default(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value)) if value else "(empty)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def hparams_table(algo: str) -> str:
    from pgrad.algos import get_algo
    from pgrad.cli import _flag_type
    from pgrad.config import BaseConfig, field_types, load_presets

    cls = get_algo(algo).Config
    base = set(BaseConfig.field_names())
    docs, tps, ranges, defaults = cls.docs(), field_types(cls), cls.ranges(), cls()
    lines = ["| flag | default | range | meaning (symbol in the post) |", "|---|---|---|---|"]
    for name in cls.field_names():
        if name in base:
            continue
        flag = f"`--{name.replace('_', '-')} {_flag_type(tps[name])}`"
        lines.append(f"| {_cell(flag)} | `{_cell(_fmt_default(getattr(defaults, name)))}` | "
                     f"{_cell(ranges.get(name, ''))} | {_cell(docs.get(name, ''))} |")
    changed = [n for n in base if n != "env" and getattr(defaults, n) != getattr(BaseConfig(), n)]
    if changed:
        lines += ["", "Run settings whose default differs for this algorithm: "
                  + ", ".join(f"`--{n.replace('_', '-')} {_fmt_default(getattr(defaults, n))}`" for n in sorted(changed))
                  + "."]
    presets = load_presets(algo)
    if presets:
        lines += ["", f"Presets (applied first when you train on these envs; your flags win; "
                  f"[`src/pgrad/presets/{algo}.yaml`](../../src/pgrad/presets/{algo}.yaml)): "
                  + ", ".join(f"`{env}`" for env in presets) + "."]
    return "\n".join(lines)


def run_settings_table() -> str:
    from pgrad.cli import _flag_type
    from pgrad.config import BaseConfig, field_types

    docs, tps, ranges, defaults = BaseConfig.docs(), field_types(BaseConfig), BaseConfig.ranges(), BaseConfig()
    lines = ["| flag | default | range | meaning |", "|---|---|---|---|"]
    for name in BaseConfig.field_names():
        if name == "env":
            continue
        flag = f"`--{name.replace('_', '-')} {_flag_type(tps[name])}`"
        lines.append(f"| {_cell(flag)} | `{_fmt_default(getattr(defaults, name))}` | {ranges.get(name, '')} | "
                     f"{_cell(docs.get(name, ''))} |")
    return "\n".join(lines)


def equations_table(algo: str, rows: list[dict[str, str]] | None = None) -> str:
    rows = [r for r in (rows if rows is not None else read_equations()) if r["algo"] == algo]
    lines = ["| eq | equation | computed by | where it is applied |", "|---|---|---|---|"]
    for r in rows:
        rel = "../../" + r["file"]
        where = f"[`{Path(r['file']).name}`]({rel})" + (f", line tagged `{r['tag']}`" if r["tag"] != "—" else "")
        lines.append(f"| ({r['n']}) | {r['equation']} | `{r['function']}` | {where} |")
    return "\n".join(lines)


def metrics_table(algo: str) -> str:
    lines = ["| metric | formula | what it tells you |", "|---|---|---|"]
    for r in read_metrics():
        if algo in r["algos"]:
            lines.append(f"| `{r['metric']}` | {r['formula']} | {r['notes']} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- pages
def render(text: str, page: str) -> str:
    """The page with every generated block replaced by its current content."""
    def repl(m: re.Match) -> str:
        kind = m.group("kind")
        if kind == "hparams":
            body = hparams_table(page)
        elif kind == "equations":
            body = equations_table(page)
        elif kind == "metrics":
            body = metrics_table(page)
        elif kind == "run-settings":
            body = run_settings_table()
        else:  # blocks other scripts write (docs/make_curves.py: learning curves from measured runs)
            return m.group(0)
        return m.group(1) + body + "\n" + m.group(4)

    return BLOCK.sub(repl, text)


def stale_pages() -> list[str]:
    """Pages whose generated blocks differ from what the code says now (and algorithms with no page)."""
    from pgrad.algos import ALGOS

    stale = []
    for algo in ALGOS:
        path = PAGES / f"{algo}.md"
        if not path.exists():
            stale.append(f"{path.relative_to(ROOT)} (missing)")
            continue
        text = path.read_text()
        for kind in ("equations", "metrics", "hparams"):
            if f"<!-- generated:{kind} start -->" not in text:
                stale.append(f"{path.relative_to(ROOT)} (no {kind} block)")
        if render(text, algo) != text:
            stale.append(str(path.relative_to(ROOT)))
    index = PAGES / "index.md"
    if index.exists() and render(index.read_text(), "index") != index.read_text():
        stale.append(str(index.relative_to(ROOT)))
    return stale


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = stale_pages()
        for s in stale:
            print(f"stale: {s}")
        if stale:
            print("run: python docs/gen_hparams.py")
        return 1 if stale else 0
    for path in sorted(PAGES.glob("*.md")):
        text = path.read_text()
        new = render(text, path.stem)
        if new != text:
            path.write_text(new)
            print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main(sys.argv[1:]))
