"""The algorithms, one flat file each. ``ALGOS`` maps a name to its module, imported on first use.

Every algorithm module defines: a docstring (post section, paper, equations), ``Config(BaseConfig)``,
``SPACES`` (the action spaces it supports: "discrete", "box", "multidiscrete", "multibinary"),
``build(cfg, spec)``, ``update(...)``, ``act(nets, obs, deterministic) -> numpy env actions`` and
``train(cfg, run) -> nets``.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Iterator, Mapping
from types import ModuleType

from pgrad.errors import PgradError

# The post's algorithms in its order; a name appears in ALGOS once its file exists.
POST_ORDER = ["reinforce", "actor_critic", "off_policy_ac", "a3c", "a2c", "dpg", "ddpg", "d4pg", "maddpg",
              "td3", "trpo", "ppo", "acer", "acktr", "sac"]


def _names() -> list[str]:
    found = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    return [n for n in POST_ORDER if n in found] + sorted(found - set(POST_ORDER))


class _Registry(Mapping):
    """name -> algorithm module (lazy: importing pgrad does not import every algorithm)."""

    def __getitem__(self, name: str) -> ModuleType:
        key = name.lower().replace("-", "_")
        if key not in _names():
            close = difflib.get_close_matches(key, _names(), n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise PgradError(f"unknown algorithm {name!r}{hint} (available: {', '.join(_names())})")
        return importlib.import_module(f"pgrad.algos.{key}")

    def __iter__(self) -> Iterator[str]:
        return iter(_names())

    def __len__(self) -> int:
        return len(_names())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower().replace("-", "_") in _names()

    def __repr__(self) -> str:
        return f"ALGOS({', '.join(_names())})"


ALGOS = _Registry()


def get_algo(name: str) -> ModuleType:
    return ALGOS[name]


def summary(module: ModuleType, full: bool = False) -> str:
    """The docstring's first paragraph as one line; unless ``full``, without its "(post: ...; paper)" reference."""
    first = " ".join((module.__doc__ or "").strip().split("\n\n")[0].split())
    return first if full else first.split(" (post:")[0].rstrip(".")
