"""docs/equations.md cannot rot: every function it names exists, every file it names carries the tag and uses the
function, and every equation an algorithm's docstring numbers has a row."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

from pgrad.algos import ALGOS

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("gen_hparams", ROOT / "docs" / "gen_hparams.py")
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)
ROWS = gen.read_equations()


def resolve(dotted: str):
    """Import the longest module prefix of a dotted path, then follow attributes (classes, methods)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj, parts[i:]
    raise ModuleNotFoundError(dotted)


def tags_in(text: str) -> set[str]:
    """Equation numbers in comments: '# (1)', '# (1), (2): ...', '# (3): δ = ...'."""
    out: set[str] = set()
    for line in text.splitlines():
        if "#" in line:
            out.update(re.findall(r"\((\d+)\)", line.split("#", 1)[1]))
    return out


def test_the_map_has_rows():
    assert len(ROWS) >= 80
    assert len({r["eq"] for r in ROWS}) == len(ROWS), "an equation is listed twice"


@pytest.mark.parametrize("row", ROWS, ids=[r["eq"] for r in ROWS])
def test_row_points_at_real_code(row):
    obj, attrs = resolve(row["function"])
    assert attrs, f"{row['function']} names a module, not a function or class"
    assert callable(obj), row["function"]
    path = ROOT / row["file"]
    assert path.exists(), row["file"]
    text = path.read_text()
    top = attrs[0]  # the function or class defined at module level
    assert re.search(rf"\b{re.escape(top)}\b", text), f"{row['file']} never mentions {top}"
    if row["tag"] == "—":
        assert re.search(rf"^\s*(def|class) {re.escape(attrs[-1])}\b", text, re.MULTILINE) or \
            re.search(rf"^\s*(def|class) {re.escape(top)}\b", text, re.MULTILINE), f"{attrs[-1]} not defined in {row['file']}"
    else:
        assert row["tag"] == f"# ({row['n']})", f"{row['eq']}: tag {row['tag']} does not match its number"
        assert row["n"] in tags_in(text), f"no '# ({row['n']})' comment in {row['file']}"


@pytest.mark.parametrize("algo", list(ALGOS))
def test_every_numbered_equation_of_an_algorithm_has_a_row(algo):
    doc = ALGOS[algo].__doc__ or ""
    numbered = set(re.findall(r"^\s+\((\d+)\)\s", doc, re.MULTILINE))
    assert numbered, f"{algo}'s docstring numbers no equations"
    mapped = {r["n"] for r in ROWS if r["algo"] == algo}
    assert numbered <= mapped, f"{algo}: equations {sorted(numbered - mapped)} have no row in docs/equations.md"
    assert mapped <= numbered, f"{algo}: rows {sorted(mapped - numbered)} are not numbered in its docstring"
    for r in ROWS:
        if r["algo"] == algo:
            assert r["file"] == f"src/pgrad/algos/{algo}.py" or r["tag"] == "—", r["eq"]


def test_rows_name_known_algorithms():
    assert {r["algo"] for r in ROWS} <= set(ALGOS) | {"post"}
