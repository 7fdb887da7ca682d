"""Gymnasium ids and spaces: resolving an env (id, instance or factory), describing its spaces as an EnvSpec,
and mapping actions between a policy's range and the env's bounds."""

from __future__ import annotations

import copy
import difflib
import functools
import importlib
import importlib.util
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from pgrad.errors import EnvError

EnvLike = Any  # a Gymnasium id, "module:Class" or "module:factory", a gymnasium.Env instance, or a factory

# The optional extras of pyproject.toml: extra -> (the package it installs, the module that package imports as).
EXTRAS = {
    "mujoco": ("mujoco", "mujoco"),
    "box2d": ("box2d", "Box2D"),
    "atari": ("ale-py", "ale_py"),
    "minatar": ("minatar", "minatar"),
    "marl": ("pettingzoo", "pettingzoo"),
    "ray": ("ray", "ray"),
    "video": ("moviepy", "moviepy"),
}


# ----------------------------------------------------------------------------- resolving and describing
class GameFactory:
    """A factory whose training envs differ from its evaluation envs: Atari trains on lives with clipped rewards
    and is evaluated on full games with the raw score (DESIGN.md section 6). Calling it makes a training env."""

    def __init__(self, train: Callable[[], gym.Env], evaluation: Callable[[], gym.Env]):
        self.train, self.evaluation = train, evaluation

    def __call__(self) -> gym.Env:
        return self.train()


def evaluation_factory(factory: Callable[[], gym.Env]) -> Callable[[], gym.Env]:
    """The factory of evaluation (and video) envs: full games and raw scores where training wraps them."""
    return factory.evaluation if isinstance(factory, GameFactory) else factory


def _game_maker(env_id: str) -> Callable[..., gym.Env] | None:
    """make(env_id, train, **kwargs) for the families with their own preprocessing (Atari, MinAtar), else None."""
    if env_id.startswith("MinAtar/"):
        from pgrad.envs.minatar import make_minatar

        return make_minatar
    from pgrad.envs import atari

    if atari.is_atari_id(env_id):
        return atari.make_atari
    return None


def env_factory(env: EnvLike, **make_kwargs: Any) -> tuple[Callable[[], gym.Env], str]:
    """Return (zero-argument factory, display id) for an id, an instance or a factory.

    A string ``module:attr`` names a custom env: a gymnasium.Env subclass or a factory in an importable module,
    called with ``make_kwargs``; its display id is the string itself, so config.yaml keeps it and ``pgrad eval
    RUN`` makes the env again. (Gymnasium's own ``module:EnvId``, an id that importing the module registers,
    still goes to gym.make.)"""
    if isinstance(env, str):
        env_id = env
        if (custom := custom_env(env_id)) is not None:
            factory = functools.partial(_make_custom, env_id, custom, **make_kwargs)
            factory().close()  # fail early: a constructor that raises or returns something else
            return factory, env_id
        if (extra := missing_extra(env_id)) is not None:  # the package and the extra, never "unknown environment"
            raise EnvError(f"{env_id} needs {extra_hint(extra)}")
        if (make := _game_maker(env_id)) is not None:
            make(env_id, True, **make_kwargs).close()  # fail early: a missing extra names it
            return GameFactory(functools.partial(make, env_id, True, **make_kwargs),
                               functools.partial(make, env_id, False, **make_kwargs)), env_id
        _make(env_id, **make_kwargs).close()  # fail early with a clear message

        def factory() -> gym.Env:
            return _make(env_id, **make_kwargs)

        return factory, env_id
    if isinstance(env, gym.Env):
        template = env
        env_id = template.spec.id if template.spec is not None else type(template.unwrapped).__name__

        def factory() -> gym.Env:
            return copy.deepcopy(template)

        return factory, env_id
    if callable(env):
        probe = env()
        if not isinstance(probe, gym.Env):
            raise EnvError(f"the env factory returned {type(probe).__name__}, not a gymnasium.Env")
        env_id = probe.spec.id if probe.spec is not None else type(probe.unwrapped).__name__
        probe.close()
        return env, env_id
    raise EnvError(f"env must be a Gymnasium id, a gymnasium.Env or a factory, got {type(env).__name__}")


def is_custom_id(env_id: Any) -> bool:
    """True for a ``module:attr`` string whose attr names a class or factory (see ``env_factory``)."""
    return isinstance(env_id, str) and custom_env(env_id) is not None


def custom_env(env_id: str) -> Callable[..., gym.Env] | None:
    """The class or factory that ``module:attr`` names, or None for any other id (Gymnasium's ``module:EnvId``
    included). A module that cannot be imported, or that lacks ``attr``, is a one-line EnvError."""
    mod_name, sep, attr = env_id.partition(":")
    if not sep or not mod_name or not attr or "/" in mod_name:
        return None
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        if e.name is not None and (mod_name == e.name or mod_name.startswith(e.name + ".")):
            raise EnvError(f"cannot import the module {mod_name!r} of the env {env_id!r}: no module named "
                           f"{e.name!r}; it must be importable (installed, on PYTHONPATH, or a file in the "
                           "current directory)") from None
        extra = _extra_of_module(e.name or "")
        how = f": {extra_hint(extra)}" if extra is not None else ""
        raise EnvError(f"cannot import the module {mod_name!r} of the env {env_id!r}: it needs {e.name!r}, "
                       f"which is not installed{how}") from None
    except Exception as e:  # a relative name (".:x"), or the module's own code failing
        msg = (str(e).splitlines() or [""])[0]
        raise EnvError(f"cannot import the module {mod_name!r} of the env {env_id!r}: "
                       f"{type(e).__name__}: {msg}") from None
    obj = getattr(module, attr, None)
    if obj is None:
        try:  # PettingZoo envs are submodules (mpe2:simple_spread_v3)
            obj = importlib.import_module(f"{mod_name}.{attr}")
        except ModuleNotFoundError as e:  # no such submodule, or one that needs a package not installed
            if e.name is not None and (extra := _extra_of_module(e.name)) is not None:
                raise EnvError(f"{env_id} needs {e.name.split('.')[0]!r}, which is not installed: "
                               f"{extra_hint(extra)}") from None
            obj = None
        except Exception:  # noqa: BLE001 - a submodule that fails to import: decided below
            obj = None
    if obj is None and env_id not in gym.registry and attr not in gym.registry:
        names = [n for n in dir(module) if not n.startswith("_")]
        close = difflib.get_close_matches(attr, names, n=3)
        hint = f"; did you mean {', '.join(f'{mod_name}:{c}' for c in close)}?" if close else ""
        raise EnvError(f"{mod_name} has no {attr!r}: name a gymnasium.Env subclass or a zero-argument factory "
                       f"in it, as module:Class{hint}")
    if obj is None:
        return None  # Gymnasium's module:EnvId: importing the module registered the id
    if hasattr(obj, "parallel_env") or hasattr(obj, "raw_env"):
        raise EnvError(f"{env_id} is a PettingZoo (multi-agent) env; this algorithm takes Gymnasium envs "
                       "(maddpg takes PettingZoo envs)")
    if not callable(obj):
        raise EnvError(f"{env_id} names {str(obj)[:40]!r} ({type(obj).__name__}), not a gymnasium.Env subclass "
                       "or a factory")
    return obj


def _make_custom(env_id: str, make: Callable[..., gym.Env], **kwargs: Any) -> gym.Env:
    try:
        env = make(**kwargs)
    except Exception as e:  # noqa: BLE001 - the user's constructor: one line that says which
        msg = (str(e).splitlines() or [""])[0]
        raise EnvError(f"{env_id}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) raised "
                       f"{type(e).__name__}: {msg}") from None
    if not isinstance(env, gym.Env):
        raise EnvError(f"{env_id} returned {type(env).__name__}, not a gymnasium.Env")
    return env


class EnvCheckerWarning(UserWarning):
    """A warning of Gymnasium's env checker about a custom env (``check_custom_env``)."""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def check_custom_env(factory: Callable[[], gym.Env], env_id: str) -> list[str]:
    """Run Gymnasium's env checker (gymnasium.utils.env_checker.check_env) on a fresh env of ``factory``; its
    warnings are re-issued as EnvCheckerWarning (and returned); an error it raises is a one-line EnvError.
    The env checked is the unwrapped one, as Gymnasium recommends; rendering is not checked."""
    from gymnasium.utils.env_checker import check_env

    env = factory()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env.unwrapped, skip_render_check=True)
    except Exception as e:  # noqa: BLE001 - AssertionError, TypeError, ...: whatever the env got wrong
        msg = _ANSI.sub("", (str(e).strip().splitlines() or [""])[0])
        raise EnvError(f"{env_id} fails Gymnasium's env checker: {type(e).__name__}"
                       + (f": {msg}" if msg else "")) from None
    finally:
        env.close()
    found = []
    for w in caught:
        msg = _ANSI.sub("", str(w.message)).strip().removeprefix("WARN: ")
        if msg and msg not in found:
            found.append(msg)
    for msg in found:
        warnings.warn(f"{env_id}: {msg}", EnvCheckerWarning, stacklevel=2)
    return found


# ----------------------------------------------------------------------------- optional extras
def extra_for(env_id: str) -> str | None:
    """The extra of pyproject.toml that ``env_id`` needs (None: none): Atari, MinAtar, Box2D or MuJoCo ids."""
    if not isinstance(env_id, str):
        return None
    if env_id.startswith("MinAtar/"):
        return "minatar"
    if env_id.startswith("ALE/") or env_id.endswith(("NoFrameskip-v4", "NoFrameskip-v0")):
        return "atari"
    spec = gym.registry.get(env_id)
    if spec is None:
        return None
    entry = spec.entry_point if isinstance(spec.entry_point, str) else getattr(spec.entry_point, "__module__", "")
    for family in ("box2d", "mujoco"):
        if entry.startswith(f"gymnasium.envs.{family}"):
            return family
    if entry.replace(":", ".").startswith("ale_py."):
        return "atari"
    return None


def _extra_of_module(name: str) -> str | None:
    """The extra whose package imports as ``name`` (or its top-level package), else None."""
    return next((x for x, (_, m) in EXTRAS.items() if m == name.split(".")[0]), None)


def extra_installed(extra: str) -> bool:
    """Whether the package of an extra can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(EXTRAS[extra][1]) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


def missing_extra(env_id: str) -> str | None:
    """The extra ``env_id`` needs and that is not installed, else None."""
    extra = extra_for(env_id)
    return extra if extra is not None and not extra_installed(extra) else None


def extra_hint(extra: str) -> str:
    """The package and the command that installs it: "ale-py: pip install 'pgrad[atari]'"."""
    return f"{EXTRAS[extra][0]}: pip install 'pgrad[{extra}]'"


def _make(env_id: str, **kwargs: Any) -> gym.Env:
    if (extra := missing_extra(env_id)) is not None:
        raise EnvError(f"{env_id} needs {extra_hint(extra)}")
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as e:  # before gym.error.Error, its base: never "unknown environment"
        extra = extra_for(env_id)
        msg = (str(e).splitlines() or [""])[0]
        hint = f"; it needs {extra_hint(extra)}" if extra is not None else ""
        raise EnvError(f"cannot make {env_id!r}: {msg}{hint}") from None
    except gym.error.Error:
        close = difflib.get_close_matches(env_id, list(gym.registry.keys()), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `pgrad list --envs` shows the registered ids"
        raise EnvError(f"unknown environment {env_id!r}{hint}") from None
    except ModuleNotFoundError as e:
        raise EnvError(f"cannot make {env_id!r}: {e.msg}; install the package that registers it") from None
    except (ImportError, gym.error.DependencyNotInstalled) as e:
        msg = str(e).splitlines()[0]
        newer = f"{env_id.rsplit('-v', 1)[0]}-v5"  # MuJoCo's v2/v3 ids need mujoco-py, which pgrad does not use
        if "mujoco" in msg.lower() and newer in gym.registry:
            msg = f"{msg.rstrip('.')}; use {newer} ({extra_hint('mujoco')})"
        raise EnvError(f"cannot make {env_id!r}: {msg}") from None
    except (TypeError, ValueError) as e:  # an id gym cannot parse (".:x": a relative import), or bad kwargs
        msg = (str(e).splitlines() or [""])[0]
        raise EnvError(f"cannot make {env_id!r}: {type(e).__name__}: {msg}") from None


@dataclass
class EnvSpec:
    """What networks need to know about an env: the observation spec and the action space.

    Observations keep their shape and dtype from the env to the network (DESIGN.md section 6): ``obs_shape`` is
    what the networks see, (D,) for vectors and (C, H, W) for images; ``obs_dim`` is the width an MLP reads
    (prod(obs_shape), or the one-hot size of a Discrete observation).
    """

    env_id: str
    obs_dim: int
    obs_kind: str  # "box", "discrete" (one-hot encoded) or "image" (uint8 or bool frames, CHW)
    n_obs_discrete: int  # number of discrete observations when obs_kind == "discrete"
    action_kind: str  # "discrete", "box", "multidiscrete" or "multibinary"
    n_actions: int  # discrete: number of actions; box: action dimension; multi*: number of components k
    act_low: np.ndarray | None = None
    act_high: np.ndarray | None = None
    max_episode_steps: int | None = None
    obs_shape: tuple[int, ...] = ()  # (obs_dim,) for vectors, (C, H, W) for images
    obs_dtype: str = "float32"  # "uint8": pixels, scaled by 1/255 inside the encoder; "bool": binary (MinAtar)
    obs_hwc: bool = False  # the env gives channel-last frames: transposed to CHW once, at the env boundary
    act_nvec: tuple[int, ...] = ()  # multidiscrete: the number of choices of each of the k components

    def __post_init__(self) -> None:
        self.obs_shape = tuple(int(x) for x in self.obs_shape) or (self.obs_dim,)
        self.act_nvec = tuple(int(x) for x in self.act_nvec)

    @property
    def act_dim(self) -> int:
        return self.n_actions

    @property
    def is_image(self) -> bool:
        return self.obs_kind == "image"

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for k in ("act_low", "act_high"):
            if d[k] is not None:
                d[k] = np.asarray(d[k]).tolist()
        d["obs_shape"] = list(self.obs_shape)
        d["act_nvec"] = list(self.act_nvec)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EnvSpec:
        d = dict(d)
        for k in ("act_low", "act_high"):
            if d.get(k) is not None:
                d[k] = np.asarray(d[k], dtype=np.float32)
        return cls(**d)


def _image_layout(space: gym.spaces.Box) -> tuple[tuple[int, int, int], bool] | None:
    """(CHW shape, channel-last?) for an image space, else None. An image is a Box of rank 2 (one channel) or 3
    of uint8 pixels bounded to [0, 255] or of bool (binary frames); a uint8 Box with other bounds stays a vector
    of numbers. The channel axis is the first when it is smaller than the last (4x84x84), otherwise the last
    (Gymnasium's 210x160x3, MinAtar's 10x10xC)."""
    if len(space.shape) not in (2, 3):
        return None
    if space.dtype == np.uint8:
        if not (np.all(space.low == 0) and np.all(space.high == 255)):
            return None
    elif space.dtype != np.bool_:
        return None
    if len(space.shape) == 2:
        return (1, *space.shape), False
    a, b, c = space.shape
    return ((a, b, c), False) if a < c else ((c, a, b), True)


def encode_obs(spec: EnvSpec, o: Any, batch: bool = False) -> np.ndarray:
    """An env observation (or a batch of them) as the networks see it: one-hot for Discrete, float32 [D] for a
    Box, the native dtype in CHW for images (transposed from channel-last here, and nowhere else)."""
    if spec.obs_kind == "discrete":
        eye = np.eye(spec.obs_dim, dtype=np.float32)
        return eye[np.asarray(o, np.int64)]
    if spec.obs_kind == "image":
        x = np.asarray(o, dtype=spec.obs_dtype)
        if spec.obs_hwc:
            x = np.moveaxis(x, -1, -3)
        return x.reshape((-1, *spec.obs_shape) if batch else spec.obs_shape)
    x = np.asarray(o, np.float32)
    return x.reshape(-1, spec.obs_dim) if batch else x.reshape(-1)


def describe(env: gym.Env, env_id: str) -> EnvSpec:
    """Build an EnvSpec, raising EnvError for spaces pgrad does not handle."""
    obs_space, act_space = env.observation_space, env.action_space
    obs_extra: dict[str, Any] = {}
    if isinstance(obs_space, gym.spaces.Box) and (img := _image_layout(obs_space)) is not None:
        shape, hwc = img
        obs_kind, obs_dim, n_obs = "image", int(np.prod(shape)), 0
        obs_extra = {"obs_shape": shape, "obs_dtype": np.dtype(obs_space.dtype).name, "obs_hwc": hwc}
    elif isinstance(obs_space, gym.spaces.Box):
        obs_kind, obs_dim, n_obs = "box", int(np.prod(obs_space.shape)), 0
    elif isinstance(obs_space, gym.spaces.Discrete):
        obs_kind, obs_dim, n_obs = "discrete", int(obs_space.n), int(obs_space.n)
    else:
        raise EnvError(
            f"{env_id}: observation space {type(obs_space).__name__} is not supported; pgrad reads Box (vectors, "
            "images) and Discrete observations: wrap the env with gymnasium.wrappers.FlattenObservation to get a Box"
        )
    if isinstance(act_space, gym.spaces.Discrete):
        if act_space.start != 0:
            raise EnvError(f"{env_id}: Discrete action spaces must start at 0 (got start={act_space.start})")
        return EnvSpec(env_id, obs_dim, obs_kind, n_obs, "discrete", int(act_space.n),
                       max_episode_steps=_max_steps(env), **obs_extra)
    if isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
        low, high = act_space.low.astype(np.float32), act_space.high.astype(np.float32)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise EnvError(f"{env_id}: Box action space must have finite bounds to rescale actions")
        return EnvSpec(env_id, obs_dim, obs_kind, n_obs, "box", int(act_space.shape[0]), low, high,
                       max_episode_steps=_max_steps(env), **obs_extra)
    if isinstance(act_space, gym.spaces.MultiDiscrete) and len(act_space.shape) == 1:
        if np.any(act_space.start != 0):
            raise EnvError(f"{env_id}: MultiDiscrete action spaces must start at 0 (got start={act_space.start})")
        nvec = tuple(int(n) for n in act_space.nvec)
        return EnvSpec(env_id, obs_dim, obs_kind, n_obs, "multidiscrete", len(nvec),
                       max_episode_steps=_max_steps(env), act_nvec=nvec, **obs_extra)
    if isinstance(act_space, gym.spaces.MultiBinary) and len(act_space.shape) == 1:
        return EnvSpec(env_id, obs_dim, obs_kind, n_obs, "multibinary", int(act_space.shape[0]),
                       max_episode_steps=_max_steps(env), **obs_extra)
    raise EnvError(
        f"{env_id}: action space {act_space} is not supported; pgrad handles Discrete, 1-D Box, 1-D MultiDiscrete "
        "and 1-D MultiBinary actions"
    )


def _max_steps(env: gym.Env) -> int | None:
    return env.spec.max_episode_steps if env.spec is not None else None


SPACE_NAMES = {"discrete": "Discrete", "box": "Box", "multidiscrete": "MultiDiscrete", "multibinary": "MultiBinary"}


def check_action_space(spec: EnvSpec, algo: str, supported: tuple[str, ...]) -> None:
    """A one-line EnvError when ``algo`` (whose SPACES are ``supported``) cannot act in ``spec``'s action space."""
    if spec.action_kind not in supported:
        kind = "Box (continuous)" if spec.action_kind == "box" else SPACE_NAMES[spec.action_kind]
        names = [SPACE_NAMES[s] for s in supported]
        ok = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        raise EnvError(
            f"{algo} does not support {kind} actions of {spec.env_id}; it needs {ok} actions "
            f"(`pgrad list` shows which algorithms fit)"
        )


# ----------------------------------------------------------------------------- action conversion
def scale_action(a: np.ndarray, spec: EnvSpec) -> np.ndarray:
    """Map actions in [-1, 1] (tanh-squashed or deterministic policies) to the env's [low, high]."""
    return spec.act_low + (a + 1.0) * 0.5 * (spec.act_high - spec.act_low)


def clip_action(a: np.ndarray, spec: EnvSpec) -> np.ndarray:
    """Clip unbounded Gaussian samples to the env's bounds (the learner keeps the unclipped sample)."""
    return np.clip(a, spec.act_low, spec.act_high)
