"""The docs cannot drift from the code: generated tables match the Configs, equations map and metrics table;
every algorithm has a page; every metric an algorithm logs is documented (and only those)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from pgrad.algos import ALGOS

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("gen_hparams", ROOT / "docs" / "gen_hparams.py")
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)


def logged_metrics(path: Path) -> set[str]:
    """Metric names an algorithm file logs, read from its source: string keys of the dicts returned by its
    update*/train* functions, of ``metrics[...] =`` / ``out[...] =`` and ``metrics.update({...})``, and of a
    module-level ``METRICS`` list."""
    tree = ast.parse(path.read_text())
    keys: set[str] = set()

    def dict_keys(d: ast.Dict) -> set[str]:
        return {k.value for k in d.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}

    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "METRICS" for t in node.targets):
            keys |= {e.value for e in getattr(node.value, "elts", []) if isinstance(e, ast.Constant)}
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef) or not (fn.name.startswith("update") or "train" in fn.name):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Return) and node.value is not None:
                v = node.value
                for d in [v] if isinstance(v, ast.Dict) else getattr(v, "elts", []):
                    if isinstance(d, ast.Dict):
                        keys |= dict_keys(d)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in ("metrics", "out"):
                for a in node.args:
                    if isinstance(a, ast.Dict):
                        keys |= dict_keys(a)
            elif isinstance(node, (ast.Assign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) \
                            and t.value.id in ("metrics", "out") and isinstance(t.slice, ast.Constant):
                        keys.add(t.slice.value)
                    if isinstance(t, ast.Name) and t.id in ("metrics", "out") and isinstance(node.value, ast.Dict):
                        keys |= dict_keys(node.value)
    return keys


def test_generated_tables_are_current():
    stale = gen.stale_pages()
    assert not stale, f"stale docs (run `make docs` or `python docs/gen_hparams.py`): {stale}"


def test_index_lists_every_algorithm_page():
    index = (ROOT / "docs" / "algorithms" / "index.md").read_text()
    for algo in ALGOS:
        assert f"({algo}.md)" in index, algo


@pytest.mark.parametrize("algo", list(ALGOS))
def test_logged_metrics_are_documented(algo):
    logged = logged_metrics(ROOT / "src" / "pgrad" / "algos" / f"{algo}.py")
    assert logged, f"found no metrics in {algo}.py"
    documented = {r["metric"] for r in gen.read_metrics() if algo in r["algos"]}
    assert logged <= documented, f"{algo} logs {sorted(logged - documented)}: add rows to docs/metrics.md"
    assert documented <= logged, f"docs/metrics.md lists {sorted(documented - logged)} for {algo}, which it does not log"


def test_metric_extraction_matches_a_real_run(tmp_path):
    """The static reading above agrees with the columns PPO actually writes to progress.csv."""
    import csv

    import pgrad

    pgrad.train("ppo", "CartPole-v1", steps=128, out=tmp_path / "r", n_steps=64, batch_size=64, epochs=1,
                eval_every=0, eval_episodes=1, log_every=64, progress=False, tensorboard=False)
    with open(tmp_path / "r" / "progress.csv") as f:
        cols = set(next(csv.reader(f)))
    run_cols = {"step", "time", "steps_per_s", "episodes", "updates", "return_mean", "length_mean"}
    assert cols - run_cols == logged_metrics(ROOT / "src" / "pgrad" / "algos" / "ppo.py")
    assert run_cols <= cols
    page = (ROOT / "docs" / "metrics.md").read_text()
    for c in run_cols:
        assert f"| `{c}` |" in page


def test_relative_links_in_the_docs_resolve():
    import re

    pages = [*(ROOT / "docs").glob("*.md"), *(ROOT / "docs" / "algorithms").glob("*.md"), ROOT / "examples" / "README.md"]
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"
