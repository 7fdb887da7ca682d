"""pgrad.theory: exactly solvable problems, to check every policy-gradient estimator against exact maths.

- ``TabularMDP``: small episodic MDPs with a softmax policy table; exact J(θ), ∇J(θ) (policy gradient
  theorem), Q^π, V^π, d^π, d^β, the off-policy gradient, optimal values; vectorised sampling. Gymnasium id
  ``pgrad/TabularMDP-v0``. See ``pgrad.theory.tabular``.
- ``LQR``: discounted linear-quadratic regulator; exact J(K), ∇_K J, K* (Riccati), Q^μ; Gymnasium id
  ``pgrad/LQR-v0``. See ``pgrad.theory.lqr``.
- ``pgrad.theory.estimators``: sample gradients through pgrad's own losses, compared with the exact ones.

Importing this package registers the Gymnasium ids (``import pgrad`` does it), so
``pgrad train dpg pgrad/LQR-v0`` works from the command line. ``pgrad theory`` prints the comparison.
"""

from __future__ import annotations

import gymnasium as gym

from pgrad.theory.lqr import LQR, LQREnv
from pgrad.theory.tabular import Episodes, TabularEnv, TabularMDP, Transitions, softmax_policy


def _register() -> None:
    # No max_episode_steps: each env truncates itself (LQR at its ``horizon``, TabularMDP at
    # ``max_episode_steps``), both of which users may change through gym.make kwargs.
    if "pgrad/LQR-v0" not in gym.registry:
        gym.register(id="pgrad/LQR-v0", entry_point="pgrad.theory.lqr:LQREnv")
    if "pgrad/TabularMDP-v0" not in gym.registry:
        gym.register(id="pgrad/TabularMDP-v0", entry_point="pgrad.theory.tabular:TabularEnv")


_register()

__all__ = ["LQR", "Episodes", "LQREnv", "TabularEnv", "TabularMDP", "Transitions", "softmax_policy"]
