"""Command line: ``pgrad train | eval | plot | list`` (and the commands later modules register).

Hyperparameter flags are generated from each algorithm's Config dataclass: ``--name VALUE`` for every field,
documented by the docstring under the field. Configs are plain dataclasses and the bridge to argparse is
this file, rather than a CLI library: it lets every bad input end in one line (``pgrad: error: ...``) with
exit code 2, and keeps ``--key value`` the same syntax as the YAML presets for every type (bools included).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import textwrap
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pgrad.errors import ConfigError, Interrupted, NumericsError, PgradError

# Extra subcommands: name -> (one-line help, main(argv) -> int). Modules add themselves here.
COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {}


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting."""

    def error(self, message: str) -> typing.NoReturn:  # type: ignore[override]
        raise ConfigError(message)


# ----------------------------------------------------------------------------- hyperparameter flags
def _flag_type(tp: Any) -> str:
    from pgrad.config import type_name

    return type_name(tp).upper() if typing.get_origin(tp) is not typing.Literal else type_name(tp)


def _config_help(algo: str, env_id: str | None) -> str:
    from pgrad.algos import get_algo, summary
    from pgrad.config import BaseConfig, field_types, load_presets, preset_for

    module = get_algo(algo)
    cls = module.Config
    docs, tps = cls.docs(), field_types(cls)
    defaults = cls()
    preset = preset_for(algo, env_id) if env_id else {}
    base_names = set(BaseConfig.field_names())
    ranges = cls.ranges()
    lines = [f"usage: pgrad train {algo} ENV [--steps N] [--seed S] [--out DIR] [--resume DIR] [--KEY VALUE ...]", "",
             *textwrap.wrap(summary(module, full=True), 110), f"action spaces: {', '.join(module.SPACES)}", ""]
    if env_id:
        lines.append(f"defaults below include the preset for {env_id}" if preset else f"no preset for {env_id}")
        lines.append("")
    else:
        envs = ", ".join(load_presets(algo)) or "none"
        lines.append(f"presets (applied first, your values win; `pgrad train {algo} ENV --help` shows them): {envs}")
        lines.append("")

    def block(title: str, names: list[str]) -> None:
        lines.append(title)
        for name in names:
            value = preset.get(name, getattr(defaults, name))
            if isinstance(value, tuple):
                value = " ".join(map(str, value))
            flag = f"  --{name.replace('_', '-')} {_flag_type(tps[name])}"
            extra = f" [range {ranges[name]}]" if name in ranges else ""
            lines.append(f"{flag}  (default: {value}){extra}")
            doc = docs.get(name, "")
            if doc:
                lines.extend(textwrap.wrap(doc, 100, initial_indent="      ", subsequent_indent="      "))
        lines.append("")

    algo_names = [n for n in cls.field_names() if n not in base_names]
    block(f"{algo} hyperparameters:", algo_names)
    block("run settings (every algorithm):", [n for n in cls.field_names() if n in base_names and n != "env"])
    return "\n".join(lines)


def _parse_overrides(algo: str, tokens: list[str]) -> dict[str, Any]:
    """``--key value`` pairs -> {field: raw value}; unknown keys end in a one-line error with suggestions."""
    from pgrad.algos import get_algo
    from pgrad.config import field_types

    cls = get_algo(algo).Config
    tps = field_types(cls)
    names = cls.field_names()
    out: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--"):
            raise ConfigError(f"unexpected argument {tok!r}: hyperparameters are given as --name value")
        key, _, inline = tok[2:].partition("=")
        name = key.replace("-", "_")
        if name not in names:
            close = difflib.get_close_matches(name, names, n=3)
            hint = f"; did you mean {', '.join('--' + c.replace('_', '-') for c in close)}?" if close else \
                f"; `pgrad train {algo} --help` lists them"
            raise ConfigError(f"unknown hyperparameter --{key} for {algo}{hint}")
        values: list[str] = [inline] if inline else []
        j = i + 1
        if not inline:
            while j < len(tokens) and not (tokens[j].startswith("--") and not _is_number(tokens[j])):
                values.append(tokens[j])
                j += 1
        tp = tps[name]
        if typing.get_origin(tp) is tuple:
            if not values:
                raise ConfigError(f"--{key} needs one or more values")
            out[name] = values
        elif tp is bool and not values:
            out[name] = True
        else:
            if len(values) != 1:
                raise ConfigError(f"--{key} takes exactly one value, got {len(values)}")
            out[name] = values[0]
        i = j
    return out


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


# ----------------------------------------------------------------------------- train
TRAIN_USAGE = """usage: pgrad train ALGO ENV [--steps N] [--seed S] [--out DIR] [--resume DIR] [--KEY VALUE ...]
       pgrad train ALGO --env ENV ...  the same
       ENV: a Gymnasium id, or module:Class / module:factory for your own env (an importable module; the
       current directory counts), checked once with Gymnasium's env checker
       pgrad train --resume RUN_DIR [--steps N]   (or the original command with --resume RUN_DIR added)
       pgrad train ALGO --help        every hyperparameter of ALGO, with its docstring and default

Ctrl-C or SIGTERM stops after the current update, writes a checkpoint, prints how to continue and exits 130 / 143.
--stop-at RETURN stops once an evaluation reaches RETURN. --steps N runs whole batches (rollouts): the true count
is printed and logged.
"""


def _take(rest: list[str], flag: str) -> str | None:
    """Remove ``flag VALUE`` or ``flag=VALUE`` from ``rest``; its value (None when absent)."""
    for k, tok in enumerate(rest):
        if tok == flag:
            if k + 1 >= len(rest) or rest[k + 1].startswith("--"):
                raise ConfigError(f"{flag} needs a value")
            value = rest[k + 1]
            del rest[k:k + 2]
            return value
        if tok.startswith(flag + "="):
            del rest[k]
            return tok[len(flag) + 1:]
    return None


def cmd_train(argv: list[str]) -> int:
    from pgrad.algos import ALGOS, summary

    if not argv or argv[0] in ("-h", "--help"):
        print(TRAIN_USAGE)
        print("algorithms:")
        for name in ALGOS:
            print(f"  {name:15s} {summary(ALGOS[name])}")
        from pgrad.config import BaseConfig

        print("\nrun settings (every algorithm; `pgrad train ALGO --help` adds the algorithm's own):")
        for name, doc in BaseConfig.docs().items():
            if name != "env":
                print(f"  --{name.replace('_', '-'):18s} {doc}")
        return 0
    positional: list[str] = []
    rest = list(argv)
    while rest and not rest[0].startswith("-") and len(positional) < 2:
        positional.append(rest.pop(0))
    resume = _take(rest, "--resume")
    out_dir = _take(rest, "--out")  # the run directory is not a Config field: out before parsing hyperparameters
    env_flag = _take(rest, "--env")  # `pgrad train ALGO --env ID`, as well as the positional id
    if env_flag is not None:
        if len(positional) > 1 and positional[1] != env_flag:
            raise ConfigError(f"two environments given: {positional[1]} and --env {env_flag}; give one")
        if not positional:
            if resume is None:
                raise ConfigError(f"name an algorithm: pgrad train ALGO --env {env_flag} (see `pgrad list`)")
            positional = [_saved_algo(resume)]
        positional = [positional[0], env_flag]
    if not positional and resume is None:
        raise ConfigError("name an algorithm: pgrad train ALGO ENV (see `pgrad list`)")
    if not positional:
        positional = [_saved_algo(resume), _saved_config(resume).get("env", "")]
    algo = positional[0]
    ALGOS[algo]  # unknown algorithm -> one-line error
    env_id = positional[1] if len(positional) > 1 else None
    if "-h" in rest or "--help" in rest:
        print(_config_help(algo, env_id))
        return 0
    if env_id is None and resume is None:
        raise ConfigError(f"name an environment: pgrad train {algo} ENV (e.g. CartPole-v1)")
    overrides = _parse_overrides(algo, rest)
    from pgrad.api import train

    agent = train(algo, env_id, resume=resume, out=overrides.pop("out", out_dir), **overrides)
    if agent.stop_reason:
        print(f"stopped at step {agent.steps_trained:,}: {agent.stop_reason}")
    elif agent.steps_trained is not None and agent.steps_trained != agent.cfg.steps:
        print(f"trained {agent.steps_trained:,} env steps (--steps {agent.cfg.steps:,}, run in whole batches)")
    res = agent.evaluate(episodes=20)
    print(f"evaluation ({'best' if agent.cfg.select == 'best' else 'last'} policy, 20 episodes, deterministic): "
          f"{res.mean_return:.2f} ± {res.std_return:.2f}" + (" per agent" if res.per_agent else ""))
    _print_per_agent(res)
    print(f"run directory: {agent.run_dir}")
    print(f"learning curve: {agent.run_dir / 'curve.png'}")
    if agent.cfg.tensorboard:
        print(f"all metrics:    tensorboard --logdir {agent.run_dir}   (columns explained in docs/metrics.md)")
    return 0


def _saved_config(run_dir: str) -> dict[str, Any]:
    import yaml

    cfg_path = Path(run_dir) / "config.yaml"
    if not cfg_path.exists():
        raise PgradError(f"{run_dir} is not a pgrad run directory (no config.yaml)")
    try:
        saved = yaml.safe_load(cfg_path.read_text()) or {}
    except yaml.YAMLError:
        saved = None
    if not isinstance(saved, dict):
        raise PgradError(f"{cfg_path} is not a pgrad config.yaml")
    return saved


def _saved_algo(run_dir: str) -> str:
    return str(_saved_config(run_dir).get("algo", ""))


# ----------------------------------------------------------------------------- eval, plot, list
def cmd_eval(argv: list[str]) -> int:
    p = _Parser(prog="pgrad eval", description="Evaluate a run directory or checkpoint deterministically.")
    p.add_argument("run", help="run directory (uses best.pt, else last.pt) or a checkpoint file")
    p.add_argument("--episodes", type=int, default=20, help="fresh episodes to evaluate (default 20)")
    p.add_argument("--seed", type=int, default=12_345, help="seed of the first episode (default 12345)")
    p.add_argument("--env", default=None,
                   help="evaluate on this env (a Gymnasium id or module:Class) instead of the training env")
    p.add_argument("--video", action="store_true",
                   help="also record mp4s of the deterministic policy (needs the video extra: moviepy)")
    p.add_argument("--video-dir", default=None, help="where the mp4s go (default: RUN/videos)")
    p.add_argument("--video-episodes", type=int, default=1, help="episodes to record (default 1)")
    args = p.parse_args(argv)
    if args.episodes < 1:
        raise ConfigError("--episodes must be at least 1")
    if args.video:
        from pgrad.video import require_video_extra

        require_video_extra()  # before the evaluation, not after it
    from pgrad.api import load

    agent = load(args.run, env=args.env)
    if args.video:
        from pgrad.video import check_supported

        check_supported(agent)
    res = agent.evaluate(episodes=args.episodes, seed=args.seed, env=args.env)
    print(f"{agent.algo} on {args.env or agent.spec.env_id} (step {agent.step}): "
          f"mean return {res.mean_return:.2f} ± {res.std_return:.2f} over {args.episodes} episodes"
          + (" (per agent)" if res.per_agent else ""))
    _print_per_agent(res)
    if args.video:
        from pgrad.video import record_video

        run = Path(args.run)
        video_dir = Path(args.video_dir) if args.video_dir else (run if run.is_dir() else run.parent) / "videos"
        paths, rets = record_video(agent, video_dir, max(1, args.video_episodes), args.seed, args.env)
        for path, ret in zip(paths, rets):
            print(f"video: {path} (return {ret:.2f})")
    return 0


def _print_per_agent(res: Any) -> None:
    """Multi-agent evaluations: each agent's mean return and the total."""
    if getattr(res, "per_agent", None):
        agents = ", ".join(f"{ag} {v:.2f}" for ag, v in res.per_agent.items())
        print(f"  per agent: {agents}; total {res.total_return:.2f}")


def cmd_plot(argv: list[str]) -> int:
    p = _Parser(prog="pgrad plot", description="Overlay the learning curves of runs in one PNG.")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("-o", "--output", default="curve.png", help="the PNG to write (default curve.png)")
    p.add_argument("--title", default=None, help="figure title (default: what the runs share)")
    args = p.parse_args(argv)
    for r in args.runs:
        if not (Path(r) / "progress.csv").exists() and not (Path(r) / "evaluations.csv").exists():
            raise PgradError(f"{r} is not a pgrad run directory (no progress.csv)")
    from pgrad.plot import plot_runs

    out = plot_runs(args.runs, args.output, args.title)
    print(f"wrote {out}")
    return 0


def cmd_list(argv: list[str]) -> int:
    p = _Parser(prog="pgrad list", description="List algorithms (or environments).")
    p.add_argument("--envs", action="store_true",
                   help="list registered Gymnasium environment ids, marking those whose extra is not installed")
    args = p.parse_args(argv)
    if args.envs:
        return _list_envs()
    from pgrad.algos import ALGOS, POST_ORDER, summary

    width = max(15, *(len(",".join(m.SPACES)) for m in ALGOS.values()))
    print(f"{'algorithm':15s} {'actions':{width}s} description")
    for name in ALGOS:
        m = ALGOS[name]
        print(f"{name:15s} {','.join(m.SPACES):{width}s} {summary(m)}")
    missing = [n for n in POST_ORDER if n not in ALGOS]
    if missing:
        print(f"\nnot yet implemented: {', '.join(missing)}")
    return 0


def _list_envs() -> int:
    """Registered ids, one a line; an id whose extra is not installed is marked with the pip command. Atari and
    MinAtar ids are registered only by their packages: without them, one line says how to get them."""
    import gymnasium as gym

    from pgrad.envs import extra_hint, extra_installed, missing_extra

    ids = sorted(gym.registry.keys())
    width = max(map(len, ids), default=0)
    for k in ids:
        extra = missing_extra(k)
        print(f"{k:{width}s}  (needs {extra_hint(extra)})" if extra else k)
    for extra, family in (("atari", "ALE/... (Atari)"), ("minatar", "MinAtar/...")):
        if not extra_installed(extra):
            print(f"{family} ids: not installed; they need {extra_hint(extra)}")
    print("\nyour own env: module:Class or module:factory (an importable module), e.g. pgrad train ppo mymod:MyEnv")
    return 0


BUILTIN = {
    "train": ("train an algorithm on an environment", cmd_train),
    "eval": ("evaluate a run or checkpoint", cmd_eval),
    "plot": ("plot learning curves of runs", cmd_plot),
    "list": ("list algorithms or environments", cmd_list),
}


def _load_plugins() -> None:
    """Import modules that register extra subcommands (theory, compare, bench) when they exist."""
    import importlib

    for mod in ("pgrad.theory.cli", "pgrad.compare", "pgrad.bench"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name is None or not mod.startswith(e.name):
                raise


def _show_env_checker_warnings() -> None:
    """Gymnasium's env checker warnings about a custom env as ``pgrad: warning: ...`` lines, each once; other
    warnings as Python shows them."""
    import warnings

    from pgrad.envs import EnvCheckerWarning

    show = warnings.showwarning
    if getattr(show, "_pgrad", False):
        return

    def showwarning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, EnvCheckerWarning):
            print(f"pgrad: warning: {' '.join(str(message).split())}", file=sys.stderr)
        else:
            show(message, category, *args, **kwargs)

    showwarning._pgrad = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.getcwd() not in sys.path and "" not in sys.path:  # `pgrad train ppo mymod:MyEnv` beside mymod.py
        sys.path.append(os.getcwd())  # last: a file here never shadows an installed package
    try:
        _show_env_checker_warnings()
        _load_plugins()
        commands = {**BUILTIN, **COMMANDS}
        if not argv or argv[0] in ("-h", "--help"):
            print("usage: pgrad COMMAND ...\n\ncommands:")
            for name, (help_, _) in commands.items():
                print(f"  {name:8s} {help_}")
            print("\n`pgrad COMMAND --help` for details. Quick start: pgrad train ppo CartPole-v1")
            return 0
        cmd = argv[0]
        if cmd not in commands:
            close = difflib.get_close_matches(cmd, list(commands), n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; commands: {', '.join(commands)}"
            raise PgradError(f"unknown command {cmd!r}{hint}")
        return commands[cmd][1](argv[1:]) or 0
    except NumericsError as e:  # training diverged (not a usage error): its own exit code for scripts
        print(f"pgrad: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 3
    except PgradError as e:
        msg = " ".join(str(e).split())
        print(f"pgrad: error: {msg}", file=sys.stderr)
        return 2
    except Interrupted as e:  # SIGINT / SIGTERM during training: the checkpoint is written (or the last one kept)
        print(e, file=sys.stderr, flush=True)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("pgrad: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `pgrad train ppo --help | head`: the reader left; no traceback, nothing more to write
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    # `python -m pgrad.cli`: run the imported module's main, whose COMMANDS the plugins register into
    # (this file's copy, __main__, would not see them).
    from pgrad.cli import main as _main

    sys.exit(_main())
