"""Optimisers with less Python per step: the same kernels, hence the same bits, as torch.optim's.

A small PPO update spends about a tenth of its time in ``torch.optim.Adam.step`` outside the kernel: per-call
grouping of tensors by device and dtype, and the increment of one 0-dim ``step`` tensor per parameter, which on
CPU runs tensor by tensor. ``Adam`` and ``RMSprop`` below are torch.optim's classes (same constructor, state
dict, checkpoints, learning-rate changes through ``param_groups``) whose ``step`` calls the kernels directly
on cached lists when it can, and torch's own ``step`` otherwise.

- Adam, CPU, fused=True: ``torch._fused_adam_`` as torch.optim calls it; the per-parameter ``step`` counters
  are kept as views of one buffer, so that one ``add_`` advances them all.
- RMSprop, no momentum, not centred: the update of torch.optim's foreach implementation,
  v ← α v + (1 - α) g², θ ← θ - lr g / (√v + ε), in ``torch._foreach_*`` calls.

Both fall back to torch.optim whenever a parameter has no gradient, a closure is given, or an option outside
these cases is set, and go through torch's step wrapper (profiler label, step hooks) only when a step hook is
registered; ``zero_grad`` sets the gradients to None in a plain loop. tests/unit/test_optim.py checks equality
with torch.optim bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import optimizer as _torch_optimizer


def _has_step_hooks(opt: torch.optim.Optimizer) -> bool:
    return bool(opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks
                or _torch_optimizer._global_optimizer_pre_hooks or _torch_optimizer._global_optimizer_post_hooks)


class _Lean:
    """What the lean optimisers share: the dispatch between the lean step and torch's, the cache of state lists
    with every parameter's ``step`` counter a view of one buffer, and a plain ``zero_grad``. Subclasses (first
    base: this, second: the torch.optim class) give ``_group_ok``, ``_init_state``, ``_state_keys`` and
    ``_update(group, params, *state lists)``."""

    _state_keys: tuple[str, ...] = ()

    def __init__(self, params: Any, **kwargs: Any):
        self._cache: tuple[Any, ...] | None = None
        super().__init__(params, **kwargs)

    def _lean_ok(self) -> bool:
        for g in self.param_groups:
            if g["capturable"] or g["differentiable"] or g["maximize"] or isinstance(g["lr"], torch.Tensor) \
                    or not self._group_ok(g):
                return False
            for p in g["params"]:
                if p.grad is None or p.device.type != "cpu" or p.grad.is_sparse or p.is_complex():
                    return False
        return True

    def _build_cache(self) -> tuple[Any, ...]:
        """Initialise missing state as torch does, then make every ``step`` a view of one counter buffer."""
        state = self.state
        params = [p for g in self.param_groups for p in g["params"]]
        for p in params:
            if len(state[p]) == 0:
                self._init_state(state[p], p)
        steps = torch.stack([state[p]["step"].detach().to(torch.float32) for p in params])
        for i, p in enumerate(params):
            state[p]["step"] = steps[i]
        groups = [(g, list(g["params"]), *([state[p][k] for p in g["params"]] for k in self._state_keys))
                  for g in self.param_groups]
        return (state, steps, params, groups)

    def step(self, closure: Any = None) -> Any:
        if closure is not None or not self._lean_ok():
            return super().step(closure)
        if _has_step_hooks(self):
            return torch.optim.Optimizer.profile_hook_step(type(self)._lean_step)(self)
        return self._lean_step()

    step.hooked = True  # torch wraps step() of each class unless marked; hooks above

    @torch.no_grad()
    def _lean_step(self) -> None:
        c = self._cache
        if c is None or c[0] is not self.state or self.state[c[2][0]]["step"]._base is not c[1]:
            c = self._cache = self._build_cache()
        c[1].add_(1)
        for group in c[3]:
            self._update(*group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        if not set_to_none:
            return super().zero_grad(set_to_none=False)
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._cache = None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._cache = None


class Adam(_Lean, torch.optim.Adam):
    """torch.optim.Adam whose fused CPU step skips torch's per-call grouping (same kernel, same results)."""

    _state_keys = ("exp_avg", "exp_avg_sq", "step")

    @staticmethod
    def _group_ok(g: dict[str, Any]) -> bool:
        return g["fused"] and not g["amsgrad"] and not g.get("decoupled_weight_decay", False) \
            and not any(isinstance(b, torch.Tensor) for b in g["betas"])

    @staticmethod
    def _init_state(st: dict[str, Any], p: torch.Tensor) -> None:
        st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        st["step"] = torch.zeros((), dtype=torch.float32)

    @staticmethod
    def _update(g: dict[str, Any], params: list[torch.Tensor], exp_avgs: list[torch.Tensor],
                exp_avg_sqs: list[torch.Tensor], steps: list[torch.Tensor]) -> None:
        beta1, beta2 = g["betas"]
        torch._fused_adam_(params, [p.grad for p in params], exp_avgs, exp_avg_sqs, [], steps,
                           amsgrad=False, lr=g["lr"], beta1=beta1, beta2=beta2, weight_decay=g["weight_decay"],
                           eps=g["eps"], maximize=False, grad_scale=None, found_inf=None)


class RMSprop(_Lean, torch.optim.RMSprop):
    """torch.optim.RMSprop whose plain step (no momentum, not centred) runs as a few foreach calls."""

    _state_keys = ("square_avg",)

    @staticmethod
    def _group_ok(g: dict[str, Any]) -> bool:
        return g["momentum"] == 0 and not g["centered"]

    @staticmethod
    def _init_state(st: dict[str, Any], p: torch.Tensor) -> None:
        st["step"] = torch.tensor(0.0, dtype=torch.float32)
        st["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    @staticmethod
    def _update(g: dict[str, Any], params: list[torch.Tensor], square_avgs: list[torch.Tensor]) -> None:
        grads = [p.grad for p in params]
        if g["weight_decay"] != 0:
            grads = torch._foreach_add(grads, params, alpha=g["weight_decay"])
        alpha = g["alpha"]
        torch._foreach_mul_(square_avgs, alpha)
        torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - alpha)
        avg = torch._foreach_sqrt(square_avgs)
        torch._foreach_add_(avg, g["eps"])
        torch._foreach_addcdiv_(params, grads, avg, value=-g["lr"])


class RMSpropTF(torch.optim.Optimizer):
    """RMSprop as TensorFlow's RMSPropOptimizer computes it, which the A3C and A2C reference code ran:

        v ← α v + (1 - α) g²,   θ ← θ - lr g / √(v + ε),   v starting at 1,

    where torch.optim.RMSprop starts v at 0 and adds ε outside the root (θ ← θ - lr g / (√v + ε)). With ε = 1e-5
    the two differ most in the first steps (a start at 0 divides the first gradients by |g|√(1 - α)) and where
    g² is below ε. State: ``step`` and ``square_avg`` per parameter, as torch's RMSprop, so A3C can share it.
    """

    def __init__(self, params: Any, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-5):
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps})

    @staticmethod
    def init_state(st: dict[str, Any], p: torch.Tensor) -> None:
        st["step"] = torch.zeros((), dtype=torch.float32)
        st["square_avg"] = torch.ones_like(p, memory_format=torch.preserve_format)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    self.init_state(st, p)
                st["step"] += 1
                v = st["square_avg"]
                v.mul_(g["alpha"]).addcmul_(p.grad, p.grad, value=1 - g["alpha"])
                p.addcdiv_(p.grad, (v + g["eps"]).sqrt_(), value=-g["lr"])
        return loss
