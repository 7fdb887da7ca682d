"""Configs: one dataclass per algorithm, presets from YAML, validation with messages that name the range.

Every algorithm's ``Config`` subclasses :class:`BaseConfig`. A field's documentation is the string literal
written under it (shown by ``pgrad train ALGO --help``); its valid range, where it has one, is declared in the
class attribute ``RANGES`` as an interval such as ``"(0, 1]"`` or ``"[1, inf)"``.

Values are merged in this order, later winning: the dataclass defaults, the preset for (algorithm, env id)
in ``presets/<algo>.yaml``, the user's keyword arguments or ``--key value`` flags.

The ``pgrad train ALGO --flag`` parser is generated from these dataclasses here, not by a CLI library such as
tyro: presets must sit between the defaults and the user's flags, ``--help`` shows each field's range, and every
bad value must end in one line that names the field and its range (tyro's errors are multi-line panels).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import textwrap
import types
import typing
from dataclasses import dataclass, field, fields
from importlib import resources
from typing import Any, ClassVar, Literal

import yaml

from pgrad.errors import ConfigError


@dataclass
class BaseConfig:
    """Settings every algorithm shares."""

    env: str = "CartPole-v1"
    """Gymnasium environment id, or ``module:Class`` / ``module:factory`` of an importable custom env (or a
    description of the env object the API was given)."""
    steps: int = 100_000
    """Total environment steps, summed over parallel envs and workers. Training runs in whole batches (a rollout of
    n_steps x num_envs, or one step of every env), so it stops at the first batch that reaches this count; the true
    count is logged (run.log, progress.csv)."""
    seed: int = 0
    """Random seed: the same seed and config on the same machine give the same loss trace."""
    num_envs: int = 1
    """Parallel environments N in the vector env."""
    vectorization: Literal["sync", "async"] = "sync"
    """Vector env kind: 'sync' steps envs in this process, 'async' in subprocesses (for slow envs)."""
    net: str = "auto"
    """Observation encoder: auto (a CNN for image observations, the Nature CNN for frames of 36x36 and more, the
    MinAtar CNN for smaller ones; none for vectors), mlp, cnn, nature, minatar, impala, or 'package.module:factory'
    (a function of the EnvSpec returning a torch.nn.Module; see docs/encoders.md)."""
    device: str = "cpu"
    """Torch device. CPU is fastest for the small networks of classic control."""
    threads: int = 1
    """torch intra-op threads for this process (1 avoids OpenMP thrashing on small networks)."""
    compile: bool = False
    """Wrap the update function with torch.compile (opt-in; measure its warm-up)."""
    norm_obs: bool = False
    """Normalise observations with running statistics (saved in checkpoints, frozen at evaluation)."""
    norm_reward: bool = False
    """Scale rewards by the running std of the discounted return (training only)."""
    clip_obs: float = 10.0
    """Clip normalised observations to [-clip_obs, clip_obs]."""
    eval_every: int = 10_000
    """Evaluate the deterministic policy every this many env steps (0: only at the end)."""
    eval_episodes: int = 10
    """Episodes per periodic evaluation (run in parallel on a separate env)."""
    stop_at: float | None = None
    """Stop the run once an evaluation's mean return reaches this (a final checkpoint is written; None: train for
    all the steps). Needs eval_every > 0 to stop before the end."""
    checkpoint_every: int = 50_000
    """Write checkpoints/last.pt every this many env steps (always at the end, and on Ctrl-C or SIGTERM)."""
    log_every: int = 0
    """Write a progress.csv row every this many env steps (0: about 200 rows per run)."""
    select: Literal["best", "last"] = "best"
    """Policy returned by train(): 'best' periodic evaluation (re-loaded from checkpoints/best.pt) or 'last'."""
    progress: bool = True
    """Show a progress bar (plain periodic lines when stdout is not a terminal)."""
    tensorboard: bool = True
    """Write TensorBoard event files into the run directory."""
    track: bool = False
    """Also stream the logs to Weights & Biases (needs wandb, and TensorBoard on; project: WANDB_PROJECT or
    'pgrad')."""
    on_nonfinite: Literal["stop", "skip"] = "stop"
    """A non-finite loss, gradient or parameter: 'stop' the run with a diagnostic, keeping the last good checkpoint
    (the CLI exits with code 3), or 'skip' every optimiser step whose gradients are not all finite (counted in
    progress.csv as skipped_updates; a non-finite parameter still stops the run)."""

    RANGES: ClassVar[dict[str, str]] = {
        "steps": "[1, inf)",
        "seed": "[0, 4294967295]",
        "num_envs": "[1, inf)",
        "threads": "[1, 256]",
        "clip_obs": "(0, inf)",
        "eval_every": "[0, inf)",
        "eval_episodes": "[1, inf)",
        "stop_at": "(-inf, inf)",
        "checkpoint_every": "[0, inf)",
        "log_every": "[0, inf)",
    }

    # ------------------------------------------------------------------ helpers
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def docs(cls) -> dict[str, str]:
        """Field name -> its docstring, gathered from the class and its bases."""
        out: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            if klass is object or not dataclasses.is_dataclass(klass):
                continue
            out.update(_attribute_docstrings(klass))
        return out

    @classmethod
    def ranges(cls) -> dict[str, str]:
        out: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            out.update(klass.__dict__.get("RANGES", {}))
        return out

    def validate(self) -> None:
        """Raise ConfigError naming the first field outside its declared range."""
        for name, interval in self.ranges().items():
            if not hasattr(self, name):
                continue
            value = getattr(self, name)
            if value is None:
                continue
            values = value if isinstance(value, (tuple, list)) else (value,)
            for v in values:
                if not _in_interval(v, interval):
                    raise ConfigError(f"{name}={value!r} is out of range: {name} must be in {interval}")
        self._check_device()
        self._check_cross_fields()
        if getattr(self, "track", False):  # fail before a run directory exists
            import importlib.util

            if importlib.util.find_spec("wandb") is None:
                raise ConfigError("--track needs Weights & Biases: pip install wandb (then wandb login)")
            if not self.tensorboard:
                raise ConfigError("--track streams the TensorBoard logs to W&B: leave --tensorboard true")

    def _check_device(self) -> None:
        """device must name a torch device this machine has (a typo would otherwise fail inside the run)."""
        import torch

        try:
            dev = torch.device(self.device)
        except (RuntimeError, TypeError, ValueError):
            raise ConfigError(f"device={self.device!r} is not a torch device: use cpu, cuda or cuda:N") from None
        if dev.type == "cuda":
            n = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if n == 0:
                raise ConfigError(f"device={self.device!r} but torch sees no CUDA GPU here: use device=cpu")
            if dev.index is not None and dev.index >= n:
                raise ConfigError(f"device={self.device!r} but this machine has {n} CUDA GPU(s): use cuda:0..cuda:{n - 1}")
        elif dev.type == "mps":
            if not torch.backends.mps.is_available():
                raise ConfigError(f"device={self.device!r} but MPS is not available here: use device=cpu")
        elif dev.type != "cpu" or dev.index not in (None, 0):
            raise ConfigError(f"device={self.device!r} is not supported: use cpu, cuda, cuda:N or mps")

    def _check_cross_fields(self) -> None:
        """Checks between fields, by name, for every Config that has them (each range alone cannot see these)."""
        for lo, hi in (("v_min", "v_max"), ("log_std_min", "log_std_max")):
            a, b = getattr(self, lo, None), getattr(self, hi, None)
            if a is not None and b is not None and not a < b:  # None: derived later (D4PG's support)
                raise ConfigError(f"{lo}={getattr(self, lo)!r} must be below {hi}={getattr(self, hi)!r}")
        size = getattr(self, "buffer_size", None)
        if size is None or getattr(self, "replay", True) is False:
            return
        if hasattr(self, "n_steps"):  # a replay of rollout segments (ACER): room for one segment at least
            need = self.n_steps * self.num_envs
            if size < need:
                raise ConfigError(f"buffer_size={size} holds no segment of n_steps*num_envs={need} transitions: "
                                  f"use buffer_size >= {need}")
        else:  # a replay of transitions: room for an n-step window of every env
            need = self.num_envs * (getattr(self, "n_step", 1) + 1)
            if size < need:
                raise ConfigError(f"buffer_size={size} is too small for num_envs={self.num_envs} and "
                                  f"n_step={getattr(self, 'n_step', 1)}: use buffer_size >= {need}")
        batch = getattr(self, "batch_size", None)
        if batch is not None and batch > size:
            raise ConfigError(f"batch_size={batch} exceeds buffer_size={size}: a minibatch cannot be larger than "
                              "the replay buffer")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


# ---------------------------------------------------------------------------- intervals
def _in_interval(value: Any, interval: str) -> bool:
    lo_s, hi_s = [s.strip() for s in interval[1:-1].split(",")]
    lo, hi = float(lo_s), float(hi_s)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return False
    if math.isnan(v):
        return False
    lo_ok = v > lo if interval[0] == "(" else v >= lo
    hi_ok = v < hi if interval[-1] == ")" else v <= hi
    return lo_ok and hi_ok


# ---------------------------------------------------------------------------- docstrings
_DOC_CACHE: dict[type, dict[str, str]] = {}


def _attribute_docstrings(klass: type) -> dict[str, str]:
    """Read the string literal written under each annotated attribute of a class."""
    if klass in _DOC_CACHE:
        return _DOC_CACHE[klass]
    docs: dict[str, str] = {}
    try:
        src = textwrap.dedent(inspect.getsource(klass))
        tree = ast.parse(src)
    except (OSError, TypeError, SyntaxError):
        _DOC_CACHE[klass] = docs
        return docs
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    _DOC_CACHE[klass] = docs
    return docs


# ---------------------------------------------------------------------------- typing / coercion
def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "{" + ",".join(str(a) for a in typing.get_args(tp)) + "}"
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return type_name(args[0]) if len(args) == 1 else "|".join(type_name(a) for a in args)
    if origin is tuple:
        return f"{type_name(typing.get_args(tp)[0])}..."
    return getattr(tp, "__name__", str(tp))


def coerce(name: str, tp: Any, value: Any) -> Any:
    """Convert a value (a CLI string, a YAML scalar or a Python object) to the field's type, or raise."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(name, a, value)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{name}: cannot use {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        for c in choices:
            if value == c or (isinstance(value, str) and str(c) == value):
                return c
        raise ConfigError(f"{name}={value!r} is not valid: choose one of {', '.join(map(str, choices))}")
    if origin is tuple:
        (elem, *_rest) = typing.get_args(tp)
        if isinstance(value, str):
            parts = [p for p in value.replace(",", " ").split() if p]
        elif isinstance(value, (list, tuple)):
            parts = list(value)
        else:
            parts = [value]
        return tuple(coerce(name, elem, p) for p in parts)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{name}={value!r} is not a boolean: use true or false")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name}={value!r} is not an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value.replace("_", ""))
            except ValueError:
                raise ConfigError(f"{name}={value!r} is not an integer") from None
            if f.is_integer():
                return int(f)
        raise ConfigError(f"{name}={value!r} is not an integer")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name}={value!r} is not a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}={value!r} is not a number") from None
    if tp is str:
        if isinstance(value, (str, int, float)):
            return str(value)
        raise ConfigError(f"{name}={value!r} is not a string")
    return value


# ---------------------------------------------------------------------------- presets and merging
def load_presets(algo: str) -> dict[str, dict[str, Any]]:
    try:
        text = resources.files("pgrad.presets").joinpath(f"{algo}.yaml").read_text()
    except (FileNotFoundError, ModuleNotFoundError):
        return {}
    return yaml.safe_load(text) or {}


def env_family(env_id: str) -> str | None:
    """The preset key shared by a family of envs with one preprocessing: "atari" or "minatar", else None."""
    if env_id.startswith("MinAtar/"):
        return "minatar"
    from pgrad.envs.atari import is_atari_id

    return "atari" if is_atari_id(env_id) else None


def preset_for(algo: str, env_id: str | None) -> dict[str, Any]:
    """The preset for (algo, env id): the id's own entry, else its family's ("atari", "minatar"), else none."""
    if env_id is None:
        return {}
    presets = load_presets(algo)
    if env_id in presets:
        return dict(presets[env_id] or {})
    family = env_family(env_id)
    return dict(presets.get(family, {}) or {}) if family else {}


def make_config(cls: type[BaseConfig], algo: str, env_id: str | None, overrides: dict[str, Any],
                use_preset: bool = True) -> BaseConfig:
    """Defaults <- preset[env_id] <- overrides, each value coerced and the result validated."""
    names = cls.field_names()
    tps = field_types(cls)
    merged: dict[str, Any] = {}
    layers = [preset_for(algo, env_id) if use_preset else {}, overrides]
    for layer_i, layer in enumerate(layers):
        for key, value in layer.items():
            k = key.replace("-", "_")
            if k not in names:
                where = f"preset {algo}.yaml for {env_id}" if layer_i == 0 else "hyperparameter"
                raise ConfigError(
                    f"unknown {where} {key!r} for {algo}; valid: {', '.join(sorted(names))}"
                )
            merged[k] = coerce(k, tps[k], value)
    if env_id is not None:
        merged.setdefault("env", env_id)
    cfg = cls(**merged)
    cfg.validate()
    return cfg


def config_from_dict(cls: type[BaseConfig], d: dict[str, Any]) -> BaseConfig:
    """Rebuild a config saved by to_dict (checkpoints, config.yaml), ignoring keys it does not know."""
    tps = field_types(cls)
    kept = {k: coerce(k, tps[k], v) for k, v in d.items() if k in tps and k in cls.field_names()}
    return cls(**kept)


__all__ = ["BaseConfig", "field", "make_config", "config_from_dict", "coerce", "type_name", "load_presets"]
