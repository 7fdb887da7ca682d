"""Encoders: observation -> features, the part of a network that reads frames (DESIGN.md section 6).

Every encoder maps observations [..., *obs_shape] in the dtype they keep from the env (uint8 pixels, bool
MinAtar frames) to float32 features [..., out_dim], casting and scaling inside ``forward`` (uint8 / 255; bool
as {0, 1}): storage never holds scaled frames. Leading dims are flattened and restored, so ACER's [T, B] batches
pass as they are. Activations are never in place (K-FAC's hooks read the layers' outputs).

- NatureCNN: Mnih et al. (2015), "Human-level control through deep reinforcement learning", Methods: conv
  32x8x8/4, 64x4x4/2, 64x3x3/1, then 512 units; the encoder of the A3C, ACER, ACKTR and PPO Atari runs.
- MinAtarCNN: Young & Tian (2019), "MinAtar", section 4: one conv of 16 3x3 filters, stride 1, then 128 units.
- ImpalaCNN: Espeholt et al. (2018), "IMPALA", figure 3 (right): three stages of conv 3x3, max-pool 3x3/2 and two
  residual blocks (16, 32, 32 channels), then 256 units.
Orthogonal initialisation with gain sqrt(2) on every layer, as the baselines code of those papers does.

``make_encoder(spec, kind)`` returns None for flat vectors, so vector runs keep their modules, state_dict keys,
RNG draws and bit-exact resume. A user's encoder is any ``torch.nn.Module`` (or an import path "pkg.mod:factory"
called with the EnvSpec) that takes the batch of observations and returns [B, F] features; see docs/encoders.md.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn

from pgrad.envs import EnvSpec
from pgrad.errors import ConfigError, EnvError

NAMED = ("nature", "minatar", "impala")
NATURE_MIN_SIDE = 36  # the smallest frame the Nature CNN's three convolutions accept


def _init(m: nn.Module, gain: float = math.sqrt(2)) -> nn.Module:
    nn.init.orthogonal_(m.weight, gain)
    nn.init.zeros_(m.bias)
    return m


def _scale(dtype: str) -> float:
    return 1.0 / 255.0 if dtype == "uint8" else 1.0


class FrameEncoder(nn.Module):
    """Base of the CNNs: cast and scale frames, flatten leading dims, run ``self.net``, restore leading dims."""

    out_dim: int

    def __init__(self, obs_shape: Sequence[int], dtype: str):
        super().__init__()
        self.obs_shape, self.scale = tuple(obs_shape), _scale(dtype)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[: obs.dim() - len(self.obs_shape)]
        flat = obs.reshape(-1, *self.obs_shape)
        # one copy: cast and channels-last layout (oneDNN's convolutions run 1.3-1.6x faster on it on this CPU)
        x = flat.to(torch.float32, memory_format=torch.channels_last)
        if self.scale != 1.0:
            x = x * self.scale if x is flat else x.mul_(self.scale)
        return self.net(x).reshape(*lead, self.out_dim)

    def _channels_last(self) -> None:
        """Convolution weights in channels-last layout, matching the inputs (same values, other strides)."""
        self.net.to(memory_format=torch.channels_last)


class NatureCNN(FrameEncoder):
    """Mnih et al. (2015): [C, H, W] frames (H, W >= 36) -> 512 features."""

    def __init__(self, obs_shape: Sequence[int], dtype: str = "uint8", out_dim: int = 512):
        super().__init__(obs_shape, dtype)
        c, h, w = obs_shape
        if min(h, w) < NATURE_MIN_SIDE:
            raise EnvError(f"frames of {h}x{w} are smaller than the Nature CNN accepts ({NATURE_MIN_SIDE}x"
                           f"{NATURE_MIN_SIDE} at least): use --net minatar, the small encoder for small frames")
        convs = nn.Sequential(_init(nn.Conv2d(c, 32, 8, 4)), nn.ReLU(), _init(nn.Conv2d(32, 64, 4, 2)), nn.ReLU(),
                              _init(nn.Conv2d(64, 64, 3, 1)), nn.ReLU(), nn.Flatten())
        n = _flat_size(convs, obs_shape)
        self.net = nn.Sequential(*convs, _init(nn.Linear(n, out_dim)), nn.ReLU())
        self.out_dim = out_dim
        self._channels_last()


class MinAtarCNN(FrameEncoder):
    """Young & Tian (2019): [C, H, W] frames (10x10 in MinAtar) -> 128 features."""

    def __init__(self, obs_shape: Sequence[int], dtype: str = "bool", out_dim: int = 128):
        super().__init__(obs_shape, dtype)
        c, h, w = obs_shape
        if min(h, w) < 3:
            raise EnvError(f"frames of {h}x{w} are smaller than the 3x3 MinAtar encoder accepts")
        convs = nn.Sequential(_init(nn.Conv2d(c, 16, 3, 1)), nn.ReLU(), nn.Flatten())
        n = _flat_size(convs, obs_shape)
        self.net = nn.Sequential(*convs, _init(nn.Linear(n, out_dim)), nn.ReLU())
        self.out_dim = out_dim
        self._channels_last()


class _Residual(nn.Module):
    """x + conv(relu(conv(relu(x)))), IMPALA's residual block (no in-place ReLU)."""

    def __init__(self, ch: int):
        super().__init__()
        self.block = nn.Sequential(nn.ReLU(), _init(nn.Conv2d(ch, ch, 3, padding=1)), nn.ReLU(),
                                   _init(nn.Conv2d(ch, ch, 3, padding=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ImpalaCNN(FrameEncoder):
    """Espeholt et al. (2018): three stages (conv, max-pool /2, two residual blocks) -> 256 features."""

    def __init__(self, obs_shape: Sequence[int], dtype: str = "uint8", channels: Sequence[int] = (16, 32, 32),
                 out_dim: int = 256):
        super().__init__(obs_shape, dtype)
        layers: list[nn.Module] = []
        c = obs_shape[0]
        for ch in channels:
            layers += [_init(nn.Conv2d(c, ch, 3, padding=1)), nn.MaxPool2d(3, 2, padding=1), _Residual(ch),
                       _Residual(ch)]
            c = ch
        convs = nn.Sequential(*layers, nn.ReLU(), nn.Flatten())
        n = _flat_size(convs, obs_shape)
        self.net = nn.Sequential(*convs, _init(nn.Linear(n, out_dim)), nn.ReLU())
        self.out_dim = out_dim
        self._channels_last()


class FlatFrames(nn.Module):
    """Frames flattened to a vector for an MLP (``--net mlp`` on images): cast and scaled, nothing learned."""

    def __init__(self, obs_shape: Sequence[int], dtype: str):
        super().__init__()
        self.obs_shape, self.scale = tuple(obs_shape), _scale(dtype)
        self.out_dim = math.prod(self.obs_shape)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.reshape(*obs.shape[: obs.dim() - len(self.obs_shape)], self.out_dim).float()
        return x * self.scale if self.scale != 1.0 else x


class UserEncoder(nn.Module):
    """A user's module, its output checked once: [B, *obs_shape] -> [B, F] float features."""

    def __init__(self, module: nn.Module, spec: EnvSpec):
        super().__init__()
        self.module, self.obs_shape = module, tuple(spec.obs_shape)
        dtype = {"uint8": torch.uint8, "bool": torch.bool}.get(spec.obs_dtype, torch.float32) if spec.is_image \
            else torch.float32
        with torch.no_grad():
            try:
                out = module(torch.zeros(2, *self.obs_shape, dtype=dtype))
            except Exception as e:
                raise ConfigError(f"the encoder {type(module).__name__} failed on a batch [2, "
                                  f"{', '.join(map(str, self.obs_shape))}] of {dtype}: {type(e).__name__}: "
                                  f"{str(e).splitlines()[0] if str(e) else ''}") from None
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2 or not out.is_floating_point():
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ConfigError(f"the encoder {type(module).__name__} must map [B, {', '.join(map(str, self.obs_shape))}]"
                              f" observations to float features [B, F]; for B=2 it returned {got}")
        self.out_dim = int(out.shape[1])

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[: obs.dim() - len(self.obs_shape)]
        return self.module(obs.reshape(-1, *self.obs_shape)).reshape(*lead, self.out_dim)


def _flat_size(convs: nn.Module, obs_shape: Sequence[int]) -> int:
    with torch.no_grad():
        return int(convs(torch.zeros(1, *obs_shape)).shape[1])


_warned_mlp = False


def make_encoder(spec: EnvSpec, kind: str | nn.Module | Callable = "auto") -> nn.Module | None:
    """The encoder for ``spec`` (``--net``): None for flat vectors under auto/mlp.

    ``kind``: "auto" (images -> "nature" when both sides are >= 36, else "minatar"), "cnn" (the same, refusing
    vectors), "mlp" (frames flattened, with a warning), "nature", "minatar", "impala", an ``nn.Module`` instance,
    or "pkg.module:factory" / a callable, called with the EnvSpec and returning the module.
    """
    global _warned_mlp
    if isinstance(kind, nn.Module):
        return UserEncoder(kind, spec)
    if callable(kind):
        return UserEncoder(_call_factory(kind, spec, getattr(kind, "__name__", "factory")), spec)
    if ":" in kind:
        return UserEncoder(_call_factory(_import(kind), spec, kind), spec)
    if kind not in ("auto", "mlp", "cnn", *NAMED):
        raise ConfigError(f"net={kind!r} is not an encoder: use auto, mlp, cnn, {', '.join(NAMED)} or "
                          "'package.module:factory' (a function of the EnvSpec returning a torch.nn.Module)")
    if not spec.is_image:
        if kind in ("auto", "mlp"):
            return None
        raise EnvError(f"--net {kind} needs image observations; {spec.env_id} gives flat vectors of "
                       f"{spec.obs_dim}: use --net mlp")
    if kind == "mlp":
        if not _warned_mlp:
            warnings.warn(f"--net mlp on the {'x'.join(map(str, spec.obs_shape))} frames of {spec.env_id}: the MLP "
                          "reads every pixel as a separate input; --net auto gives a CNN", stacklevel=2)
            _warned_mlp = True
        return FlatFrames(spec.obs_shape, spec.obs_dtype)
    if kind == "auto" and min(spec.obs_shape[1:]) < 3:  # too small for any convolution: read as a vector
        return FlatFrames(spec.obs_shape, spec.obs_dtype)
    if kind in ("auto", "cnn"):
        kind = "nature" if min(spec.obs_shape[1:]) >= NATURE_MIN_SIDE else "minatar"
    cls = {"nature": NatureCNN, "minatar": MinAtarCNN, "impala": ImpalaCNN}[kind]
    return cls(spec.obs_shape, spec.obs_dtype)


def _import(path: str) -> Callable:
    mod_name, _, attr = path.partition(":")
    try:
        obj = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"net={path!r}: cannot import it ({type(e).__name__}: {e}); give 'package.module:factory' "
                          "of a module on the Python path") from None
    return obj


def _call_factory(factory: Callable, spec: EnvSpec, name: str) -> nn.Module:
    module = factory(spec)
    if not isinstance(module, nn.Module):
        raise ConfigError(f"net={name!r} returned {type(module).__name__}, not a torch.nn.Module")
    return module
