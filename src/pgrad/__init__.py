"""pgrad: every algorithm of the post "Policy Gradient Algorithms", checked against exact maths.

    import pgrad
    agent = pgrad.train("ppo", "CartPole-v1", steps=100_000)
    agent.evaluate(episodes=10)
"""

import pgrad.theory  # noqa: E402,F401  registers the gymnasium ids pgrad/LQR-v0, pgrad/TabularMDP-v0
from pgrad.algos import ALGOS
from pgrad.api import Agent, EvalResult, evaluate, load, train
from pgrad.callbacks import Callback, RunState, StopTraining
from pgrad.errors import CheckpointError, ConfigError, EnvError, Interrupted, NumericsError, PgradError

__version__ = "0.1.0"
__all__ = ["ALGOS", "Agent", "EvalResult", "evaluate", "load", "train", "PgradError", "ConfigError", "EnvError",
           "CheckpointError", "NumericsError", "Interrupted", "Callback", "RunState", "StopTraining", "__version__"]
