"""pgrad.theory: exactly solvable problems, to check every policy-gradient estimator against exact maths.

- ``LQR``: discounted linear-quadratic regulator; exact J(K), ∇_K J, K* (Riccati), Q^μ; Gymnasium id
  ``pgrad/LQR-v0``. See ``pgrad.theory.lqr``.

Importing this package registers the Gymnasium ids (``import pgrad`` does it), so
``pgrad train dpg pgrad/LQR-v0`` works from the command line.
"""

from __future__ import annotations

import gymnasium as gym

from pgrad.theory.lqr import LQR, LQREnv


def _register() -> None:
    if "pgrad/LQR-v0" not in gym.registry:
        # No max_episode_steps here: the env truncates itself at its own ``horizon`` (a kwarg users may change).
        gym.register(id="pgrad/LQR-v0", entry_point="pgrad.theory.lqr:LQREnv")


_register()

__all__ = ["LQR", "LQREnv"]
